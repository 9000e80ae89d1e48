"""Real-time factor on GPU vs CPU, flash attention on and off (issue 6).

    python bench/gpu_rtf.py --models tiny.en,base --clip long --repeat 2

Each model is loaded on each device with flash attention on and off, warmed up on jfk, then
timed on the clip; the best of ``--repeat`` runs is reported as x real time (audio seconds per
second of processing). Models are names or GGML paths. Needs a GPU build (DATTAVANI_GPU=cuda).
"""

from __future__ import annotations

import argparse
import time

import soundfile as sf

from common import clip
from dattavani import Transcriber, build_info
from dattavani.models import ModelCache


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="tiny.en,base")
    parser.add_argument("--clip", default="long")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--cpu-threads", type=int, default=0, help="0: all cores, at most 8")
    args = parser.parse_args()

    info = build_info()
    gpus = [d for d in info["devices"] if d["type"] == "gpu"]
    print(f"whisper.cpp {info['whisper_cpp_version']}, backends {info['compiled_backends']}")
    print(f"GPU: {gpus[0]['description'] if gpus else 'none'}")
    samples, _ = sf.read(clip(args.clip), dtype="float32")
    warm, _ = sf.read(clip("jfk"), dtype="float32")
    duration = len(samples) / 16000
    print(f"clip {args.clip}: {duration:.0f} s\n")
    print("| model | device | flash attn | best s | x real time |")
    print("|---|---|---|---|---|")
    devices = (["cuda"] if gpus else []) + ["cpu"]
    for model in args.models.split(","):
        for device in devices:
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
                    transcriber.transcribe(samples, language="en")
                    best = min(best, time.perf_counter() - started)
                transcriber.close()
                on = "on" if flash else "off"
                print(f"| {model} | {device} | {on} | {best:.2f} | {duration / best:.0f}x |")


if __name__ == "__main__":
    main()
