"""Where batched transcription's gain comes from on the CPU: one state with all the threads, or a
state per thread (issue 14).

    python bench/batched_threads.py --model base --repeat 2

In one process, on the ``speech`` clip (302 s of read English, bench/common.py), one Transcriber
transcribes sequentially, batched with ``batch_size=1`` (the same chunks, one at a time with all the
threads) and batched with ``batch_size=8`` (as many chunks at once as threads, one thread each),
in turn; prints each time (the best of ``--repeat``) and WER. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import time

import soundfile as sf

import common
from dattavani import Transcriber
from dattavani.testing import word_error_rate, words

MODES = {
    "sequential": {},
    "batched, batch_size=1 (one chunk, all threads)": {"batch_size": 1},
    "batched, batch_size=8 (a chunk per thread)": {"batch_size": 8},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="base", choices=common.MODELS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    audio, _ = sf.read(common.clip("speech"), dtype="float32")
    reference = words(common.reference_text("speech"))
    model = str(common.ggml_model(args.model, "q8_0"))
    transcriber = Transcriber(model, device="cpu", threads=args.threads)
    transcriber.transcribe(audio[: 5 * common.SAMPLE_RATE], language="en")  # warm-up
    best: dict[str, float] = {}
    wer: dict[str, float] = {}
    for _ in range(args.repeat):
        for name, keywords in MODES.items():
            started = time.perf_counter()
            result = transcriber.transcribe(audio, language="en", **keywords)
            elapsed = time.perf_counter() - started
            best[name] = min(best.get(name, elapsed), elapsed)
            wer[name] = word_error_rate(reference, words(result.text))
    print(f"{args.model} q8_0, {len(audio) / common.SAMPLE_RATE:.0f} s, {args.threads} threads")
    print("| mode | seconds | WER % |\n|---|---:|---:|")
    for name in MODES:
        print(f"| {name} | {best[name]:.2f} | {100 * wer[name]:.2f} |")


if __name__ == "__main__":
    main()
