"""Short clips: encoding only the frames a clip needs (``audio_ctx``), against WER (issue 14).

    python bench/short_clips.py --model base --margins 0,64,128 --repeat 2

Every English recording of ../shared/speech (one file at a time, as a user transcribes short
clips) is transcribed greedily with the language given, by dattavani with the whole 30 s context
and with ``audio_ctx`` trimmed to the clip's frames (20 ms each) plus a margin, and by
faster-whisper int8 on the same weights, each engine in turn file by file. Per clip-length bucket
it reports the total time (the best of ``--repeat`` passes) and the WER, scored after Whisper's
English normaliser (``whisper-normalizer``) when it is installed, else on plain lower-case words.
Writes ``bench/results/short-clips-<model>.md``. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path
from typing import Any

import numpy as np

import common
from common import SHARED_SPEECH
from dattavani.testing import speech_manifest, word_error_rate, words

RESULTS = Path(__file__).with_name("results")
BUCKETS = ((0.0, 5.0), (5.0, 10.0), (10.0, 20.0), (20.0, 30.0))
FRAMES_PER_SECOND = 50  # the encoder's positions: 20 ms each


def normalizer() -> Any:
    try:
        from whisper_normalizer.english import EnglishTextNormalizer
    except ImportError:
        return None
    return EnglishTextNormalizer()


def score_words(text: str, normalize: Any) -> list[str]:
    return words(normalize(text) if normalize else text)


def english_clips() -> list[tuple[str, np.ndarray, str]]:
    from dattavani import load_audio

    return [
        (row.path, load_audio(SHARED_SPEECH / row.path), row.reference)
        for row in speech_manifest(SHARED_SPEECH)
        if row.language == "en"
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="base", choices=common.MODELS)
    parser.add_argument("--margins", default="0,64,128", help="frames added to the clip's own")
    parser.add_argument("--repeat", type=int, default=2, help="passes; the best is kept")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    margins = [int(m) for m in args.margins.split(",")]

    from faster_whisper import WhisperModel

    from dattavani import Transcriber

    ours = Transcriber(
        str(common.ggml_model(args.model, "q8_0")), device="cpu", threads=args.threads
    )
    theirs = WhisperModel(
        str(common.ct2_model(args.model)),
        device="cpu",
        compute_type="int8",
        cpu_threads=args.threads,
    )

    def dattavani(samples: np.ndarray, margin: int | None) -> str:
        ctx = 0 if margin is None else min(1500, math.ceil(len(samples) / 16000 * 50) + margin)
        return ours.transcribe(samples, language="en", audio_ctx=ctx).text

    def faster_whisper(samples: np.ndarray, _: int | None) -> str:
        segments, _info = theirs.transcribe(samples, language="en", beam_size=1)
        return "".join(s.text for s in segments)

    engines = [("dattavani q8_0, full context", dattavani, None)]
    engines += [(f"dattavani q8_0, audio_ctx +{m}", dattavani, m) for m in margins]
    engines += [("faster-whisper int8", faster_whisper, None)]
    clips = english_clips()
    normalize = normalizer()
    best: dict[tuple[str, str], float] = {}
    texts: dict[tuple[str, str], str] = {}
    for _ in range(args.repeat):
        for path, samples, _reference in clips:
            for name, run, margin in engines:
                started = time.perf_counter()
                texts[(name, path)] = run(samples, margin)
                elapsed = time.perf_counter() - started
                best[(name, path)] = min(best.get((name, path), math.inf), elapsed)

    lines = [
        f"# Short clips, {args.model}: trimmed encoder context against WER",
        "",
        f"`python bench/short_clips.py --model {args.model} --margins {args.margins} "
        f"--repeat {args.repeat}`: {len(clips)} English recordings of ../shared/speech, one at a "
        f"time, greedy, language en, {args.threads} threads, best of {args.repeat} passes; WER "
        + ("after Whisper's English normaliser." if normalize else "on lower-case words."),
        "",
        "| clips | engine | files | audio s | time s | WER % |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for low, high in (*BUCKETS, (0.0, 30.0)):
        chosen = [c for c in clips if low <= len(c[1]) / 16000 < high]
        if not chosen:
            continue
        label = "all" if (low, high) == (0.0, 30.0) else f"{low:.0f}-{high:.0f} s"
        audio = sum(len(c[1]) for c in chosen) / 16000
        references = {c[0]: score_words(c[2], normalize) for c in chosen}
        n_words = sum(len(r) for r in references.values())
        for name, _, _ in engines:
            # Errors counted file by file, over all the words said.
            errors = sum(
                word_error_rate(ref, score_words(texts[(name, path)], normalize)) * len(ref)
                for path, ref in references.items()
            )
            seconds = sum(best[(name, c[0])] for c in chosen)
            wer = 100 * errors / max(n_words, 1)
            lines.append(
                f"| {label} | {name} | {len(chosen)} | {audio:.0f} | {seconds:.1f} | {wer:.2f} |"
            )
    text = "\n".join(lines) + "\n"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"short-clips-{args.model}.md").write_text(text, encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
