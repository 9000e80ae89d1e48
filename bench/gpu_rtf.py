"""Real-time factor on GPU and CPU: flash attention on and off, sequential and batched.

    python bench/gpu_rtf.py --models tiny.en,base --clip long --repeat 2 --batch-sizes 0,8

Each model is loaded on each device with flash attention on and off, warmed up on jfk, then
timed on the clip; the best of ``--repeat`` runs is reported as x real time (audio seconds per
second of processing). Models are names or GGML paths. Needs a GPU build (DATTAVANI_GPU=cuda,
or vulkan: ``--device vulkan``). ``--cpu-seconds`` times the CPU on the clip's first seconds
only: x real time hardly depends on the length past a few windows, and the CPU's runs are what
makes this long on a lent machine's clock. ``--batch-sizes`` lists the ways to decode: 0 is the
sequential transcription, N > 0 the batched one (``batch_size=N``, a pool of N states so that the
GPU gets N chunks at once); ``--flash`` which flash-attention settings to time.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import soundfile as sf

from common import clip, reference_text
from dattavani import Transcriber, build_info
from dattavani.devices import select_device
from dattavani.models import ModelCache
from dattavani.testing import word_error_rate, words


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="tiny.en,base")
    parser.add_argument("--clip", default="long")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--cpu-threads", type=int, default=0, help="0: all cores, at most 8")
    parser.add_argument("--cpu-seconds", type=float, default=0, help="0: the whole clip")
    parser.add_argument("--device", default="auto", help="the GPU: auto (the first), cuda, ...")
    parser.add_argument("--batch-sizes", default="0", help="0: sequential, N: batch_size=N")
    parser.add_argument("--flash", default="on,off", help="flash attention settings to time")
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
    # WER is scored on the whole clip's runs only (the CPU's may time its first seconds).
    reference = reference_text(args.clip)
    print("| model | device | flash attn | batch | best s | x real time | WER % |")
    print("|---|---|---|---|---|---|---|")
    devices = ([gpu.name] if gpu.use_gpu else []) + ["cpu"]
    flashes = [{"on": True, "off": False}[f] for f in args.flash.split(",")]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    for model in args.models.split(","):
        for device in devices:
            audio = cpu_samples if device == "cpu" else samples
            duration = len(audio) / 16000
            for flash in flashes:
                for batch_size in batch_sizes:
                    # A cache of one: each configuration is loaded afresh and the last one freed.
                    transcriber = Transcriber(
                        model,
                        device=device,
                        threads=args.cpu_threads or None,
                        workers=max(batch_size, 1),
                        flash_attn=flash,
                        model_cache=ModelCache(1),
                    )
                    options = {"language": "en", "batch_size": batch_size or None}
                    transcriber.transcribe(warm, **options)
                    best = float("inf")
                    for _ in range(args.repeat):
                        started = time.perf_counter()
                        text = transcriber.transcribe(audio, **options).text
                        best = min(best, time.perf_counter() - started)
                    transcriber.close()
                    on = "on" if flash else "off"
                    speed = duration / best
                    shown = f"{speed:.0f}x" if speed >= 10 else f"{speed:.1f}x"
                    batch = str(batch_size) if batch_size else "seq"
                    wer = (
                        f"{100 * word_error_rate(words(reference), words(text)):.1f}"
                        if len(audio) == len(samples)
                        else "-"
                    )
                    name = Path(model).name
                    print(f"| {name} | {device} | {on} | {batch} | {best:.2f} | {shown} | {wer} |")


if __name__ == "__main__":
    main()
