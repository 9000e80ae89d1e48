"""Encoder context trimmed to a short clip's length: what it saves and what it costs in accuracy.

    python bench/audio_ctx.py --models tiny.en:q8_0,base:q8_0 --margins 0,64,128 --repeat 3

whisper.cpp encodes 30 s (1500 positions) whatever the clip's length; ``audio_ctx`` encodes only
the first N positions (20 ms each). For each clip of real speech shorter than 30 s (jfk, the
hotwords clip, and both joined, from the shared audio) and each model and decoding mode, this
transcribes with the full context and with the clip's own length plus ``margin`` positions, and
reports the median transcription time (in-process, the model loaded once) and the word error
rate against the clip's transcript. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numpy as np

from common import SAMPLE_RATE, TRANSCRIPTS, ggml_model, speech_sources
from dattavani.testing import word_error_rate, words

FULL_CONTEXT = 1500  # positions of whisper's encoder: 30 s in steps of 20 ms
MODES = {"greedy": {"temperature": 0.0}, "beam 5": {"temperature": 0.0, "beam_size": 5}}


def short_clips() -> dict[str, tuple[np.ndarray, str]]:
    """Each shared speech file, and all of them joined with 1 s pauses (under 30 s)."""
    from dattavani import load_audio

    pieces = [(p.stem, load_audio(p), TRANSCRIPTS[p.name]) for p in speech_sources()]
    clips = {name: (samples, text) for name, samples, text in pieces}
    if len(pieces) > 1:
        pause = np.zeros(SAMPLE_RATE, np.float32)
        joined = np.concatenate([part for _, s, _ in pieces for part in (s, pause)][:-1])
        clips["+".join(name for name, _, _ in pieces)] = (joined, " ".join(t for *_, t in pieces))
    return clips


def context_for(samples: np.ndarray, margin: int | None) -> int:
    """Encoder positions for the clip plus ``margin`` (None: the full 30 s)."""
    if margin is None:
        return 0  # whisper.cpp's "all of it"
    return min(FULL_CONTEXT, math.ceil(len(samples) / SAMPLE_RATE * 50) + margin)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="tiny.en:q8_0,base:q8_0", help="name:precision,...")
    parser.add_argument("--margins", default="0,64,128", help="positions added to the clip's")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from dattavani import Transcriber

    margins: list[int | None] = [None, *(int(m) for m in args.margins.split(","))]
    clips = short_clips()
    print(f"{args.threads} threads, median of {args.repeat}; time ratio = full / trimmed")
    print("| model | mode | clip | audio_ctx | time s | ratio | WER |")
    print("|---|---|---|---:|---:|---:|---:|")
    for spec in args.models.split(","):
        name, precision = spec.split(":")
        transcriber = Transcriber(ggml_model(name, precision), device="cpu", threads=args.threads)
        for mode, options in MODES.items():
            for clip_name, (samples, text) in clips.items():
                full_time = None
                for margin in margins:
                    ctx = context_for(samples, margin)
                    times, said = [], ""
                    for _ in range(args.repeat):
                        started = time.perf_counter()
                        said = transcriber.transcribe(samples, audio_ctx=ctx, **options).text
                        times.append(time.perf_counter() - started)
                    seconds = statistics.median(times)
                    full_time = full_time or seconds
                    wer = word_error_rate(words(text), words(said))
                    label = "full" if margin is None else f"{ctx} (+{margin})"
                    print(
                        f"| {name} {precision} | {mode} | {clip_name} | {label} | {seconds:.3f} "
                        f"| {full_time / seconds:.2f} | {100 * wer:.1f}% |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
