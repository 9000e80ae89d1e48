"""Word timestamps against faster-whisper's on the same weights: how far apart the words start.

    python bench/word_times.py --models tiny.en,base --clips jfk,long,noisy

Both engines transcribe each clip greedily with word timestamps (dattavani f16, faster-whisper
float32, each from the same CTranslate2 weights); the words both heard, matched in order
(difflib), are compared by start time. ``noisy`` is jfk with 10 s of low noise before it and 25 s
after, where the first word after a pause and what is said over the noise show. There is no
ground truth here: this measures agreement with openai-whisper's algorithm as faster-whisper
implements it, which is what users of the peers see.
"""

from __future__ import annotations

import argparse
import difflib
import statistics

import numpy as np
import soundfile as sf

from common import SAMPLE_RATE, clip, ct2_model, ggml_model


def noisy_clip() -> np.ndarray:
    jfk = load("jfk")
    noise = np.random.default_rng(0).normal(0, 0.01, 25 * SAMPLE_RATE).astype(np.float32)
    return np.concatenate([noise[: 10 * SAMPLE_RATE], jfk, noise])


def load(name: str) -> np.ndarray:
    samples, _ = sf.read(clip(name), dtype="float32")
    return samples


def differences(
    words: list[tuple[str, float, float]], other: list[tuple[str, float, float]]
) -> tuple[list[float], list[float]]:
    """|start difference| and |end difference| of the words both lists hold, matched in order by
    their text."""
    a = [w.strip(" .,?!").lower() for w, _, _ in words]
    b = [w.strip(" .,?!").lower() for w, _, _ in other]
    starts, ends = [], []
    for block in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            mine, theirs = words[block.a + k], other[block.b + k]
            starts.append(abs(mine[1] - theirs[1]))
            ends.append(abs(mine[2] - theirs[2]))
    return starts, ends


def summary(d: list[float]) -> str:
    within = sum(x <= 0.3 for x in d) / len(d)
    return f"{statistics.median(d):.2f} | {statistics.fmean(d):.2f} | {100 * within:.0f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="tiny.en,base")
    parser.add_argument("--clips", default="jfk,long,noisy")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    from faster_whisper import WhisperModel

    from dattavani import Transcriber

    print(
        "| model | clip | words matched | start: median | mean | within 0.3 s "
        "| end: median | mean | within 0.3 s |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for name in args.models.split(","):
        ours = Transcriber(ggml_model(name), device="cpu", threads=args.threads)
        theirs = WhisperModel(
            str(ct2_model(name)), device="cpu", compute_type="float32", cpu_threads=args.threads
        )
        for clip_name in args.clips.split(","):
            audio = noisy_clip() if clip_name == "noisy" else load(clip_name)
            result = ours.transcribe(audio, language="en", word_timestamps=True)
            mine = [(w.word, w.start, w.end) for s in result.segments for w in s.words or ()]
            segments, _ = theirs.transcribe(audio, language="en", word_timestamps=True, beam_size=1)
            reference = [(w.word, w.start, w.end) for s in segments for w in s.words or ()]
            starts, ends = differences(mine, reference)
            print(
                f"| {name} | {clip_name} | {len(starts)} of {len(mine)}/{len(reference)} "
                f"| {summary(starts)} | {summary(ends)} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
