"""Code-switched speech with and without ``multilingual=True``, beside faster-whisper's.

    python bench/multilingual.py --threads 2

Four recordings are built from the FLEURS test sentences of ../shared/speech: two English
sentences, a second of silence, then two sentences in German, Spanish, French or Portuguese (each
part 15-35 s). dattavani (base, f16 GGML) and faster-whisper (base, float32, from the same
CTranslate2 weights) transcribe each greedily, with ``multilingual=True`` and without, on the same
threads. Each part is scored by word error rate against its references (lower case, words of any
script, punctuation aside; no other normalisation, so numbers and spellings count for both
engines alike), its segments being those that end before the silence or start after it.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from common import REPO, SAMPLE_RATE, ct2_model, ggml_model
from dattavani.testing import any_words, speech_manifest, word_error_rate

SPEECH = REPO.parent / "shared" / "speech"
GAP = np.zeros(SAMPLE_RATE, np.float32)
#: (second language, its clips), each after English clips of the same numbers.
PAIRS = (
    ("de", ("001", "003")),
    ("es", ("000", "003")),
    ("fr", ("000", "003")),
    ("pt", ("000", "002")),
)
ENGLISH = {"de": ("000", "005"), "es": ("001", "002"), "fr": ("008", "009"), "pt": ("006", "007")}


def references() -> dict[str, str]:
    return {row.path: row.reference for row in speech_manifest(SPEECH)}


def recording(
    language: str, numbers: tuple[str, ...]
) -> tuple[np.ndarray, float, list[str], list[str]]:
    """English then ``language``: the audio, where the second part starts (s), and the two
    parts' reference words."""
    from dattavani import load_audio

    refs = references()
    parts: list[tuple[np.ndarray, list[str]]] = []
    for lang, clips in (("en", ENGLISH[language]), (language, numbers)):
        paths = [f"fleurs/fleurs-{lang}-{n}.ogg" for n in clips]
        audio = np.concatenate([x for p in paths for x in (load_audio(SPEECH / p), GAP)])
        parts.append((audio, [w for p in paths for w in any_words(refs[p])]))
    (english, ref_en), (other, ref_other) = parts
    return np.concatenate([english, other]), len(english) / SAMPLE_RATE, ref_en, ref_other


def split(segments: list[tuple[float, float, str]], boundary: float) -> tuple[list[str], list[str]]:
    before = "".join(t for s, e, t in segments if e <= boundary + 0.5)
    after = "".join(t for s, e, t in segments if e > boundary + 0.5)
    return any_words(before), any_words(after)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--languages", default="de,es,fr,pt", help="the second languages, comma-separated"
    )
    args = parser.parse_args()
    chosen = args.languages.split(",")

    from faster_whisper import WhisperModel

    from dattavani import Transcriber

    ours = Transcriber(ggml_model("base"), device="cpu", threads=args.threads)
    theirs = WhisperModel(
        str(ct2_model("base")), device="cpu", compute_type="float32", cpu_threads=args.threads
    )

    def run_ours(audio: np.ndarray, multilingual: bool) -> list[tuple[float, float, str]]:
        result = ours.transcribe(audio, multilingual=multilingual)
        return [(s.start, s.end, s.text) for s in result.segments]

    def run_theirs(audio: np.ndarray, multilingual: bool) -> list[tuple[float, float, str]]:
        segments, _ = theirs.transcribe(audio, multilingual=multilingual, beam_size=1)
        return [(s.start, s.end, s.text) for s in segments]

    print("| recording | engine | multilingual | WER English part | WER second part | time (s) |")
    print("|---|---|---|---:|---:|---:|", flush=True)
    totals: dict[tuple[str, bool], float] = {}
    for language, numbers in (pair for pair in PAIRS if pair[0] in chosen):
        audio, boundary, ref_en, ref_other = recording(language, numbers)
        for multilingual in (False, True):
            for engine, run in (("dattavani", run_ours), ("faster-whisper", run_theirs)):
                started = time.perf_counter()
                said_en, said_other = split(run(audio, multilingual), boundary)
                seconds = time.perf_counter() - started
                totals[engine, multilingual] = totals.get((engine, multilingual), 0.0) + seconds
                print(
                    f"| en+{language} ({len(audio) / SAMPLE_RATE:.0f} s) | {engine} | "
                    f"{'yes' if multilingual else 'no'} | {word_error_rate(ref_en, said_en):.1%} | "
                    f"{word_error_rate(ref_other, said_other):.1%} | {seconds:.1f} |",
                    flush=True,
                )
    print()
    for multilingual in (False, True):
        ratio = totals["faster-whisper", multilingual] / totals["dattavani", multilingual]
        print(
            f"multilingual={multilingual}: dattavani {totals['dattavani', multilingual]:.1f} s, "
            f"faster-whisper {totals['faster-whisper', multilingual]:.1f} s "
            f"(dattavani {ratio:.2f}x as fast)"
        )


if __name__ == "__main__":
    main()
