"""Real-time factor on GPU vs CPU, flash attention on and off (issue 6).

    python bench/gpu_rtf.py --models tiny.en,base --clip long --repeat 2

Each model is loaded on each device with flash attention on and off, warmed up on jfk, then
timed on the clip; the best of ``--repeat`` runs is reported as x real time (audio seconds per
second of processing). Models are names or GGML paths. Needs a GPU build (DATTAVANI_GPU=cuda,
or vulkan: ``--device vulkan``). ``--cpu-seconds`` times the CPU on the clip's first seconds
only: x real time hardly depends on the length past a few windows, and the CPU's runs are what
makes this long on a lent machine's clock.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import soundfile as sf

from common import clip
from dattavani import Transcriber, build_info
from dattavani.devices import select_device
from dattavani.models import ModelCache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="tiny.en,base")
    parser.add_argument("--clip", default="long")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--cpu-threads", type=int, default=0, help="0: all cores, at most 8")
    parser.add_argument("--cpu-seconds", type=float, default=0, help="0: the whole clip")
    parser.add_argument("--device", default="auto", help="the GPU: auto (the first), cuda, ...")
    args = parser.parse_args()

    info = build_info()
    gpu = select_device(args.device)
    print(f"whisper.cpp {info['whisper_cpp_version']}, backends {info['compiled_backends']}")
    print(f"GPU: {gpu.name} ({gpu.description})" if gpu.use_gpu else "GPU: none")
    samples, _ = sf.read(clip(args.clip), dtype="float32")
    warm, _ = sf.read(clip("jfk"), dtype="float32")
    cpu_samples = samples[: int(args.cpu_seconds * 16000)] if args.cpu_seconds else samples
    print(
        f"clip {args.clip}: {len(samples) / 16000:.0f} s (CPU: {len(cpu_samples) / 16000:.0f} s)\n"
    )
    print("| model | device | flash attn | best s | x real time |")
    print("|---|---|---|---|---|")
    devices = ([gpu.name] if gpu.use_gpu else []) + ["cpu"]
    for model in args.models.split(","):
        for device in devices:
            audio = cpu_samples if device == "cpu" else samples
            duration = len(audio) / 16000
            for flash in (True, False):
                # A cache of one: each configuration is loaded afresh and the last one freed.
                transcriber = Transcriber(
                    model,
                    device=device,
                    threads=args.cpu_threads or None,
                    flash_attn=flash,
                    model_cache=ModelCache(1),
                )
                transcriber.transcribe(warm, language="en")
                best = float("inf")
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    transcriber.transcribe(audio, language="en")
                    best = min(best, time.perf_counter() - started)
                transcriber.close()
                on = "on" if flash else "off"
                speed = duration / best
                shown = f"{speed:.0f}x" if speed >= 10 else f"{speed:.1f}x"
                print(f"| {Path(model).name} | {device} | {on} | {best:.2f} | {shown} |")


if __name__ == "__main__":
    main()
