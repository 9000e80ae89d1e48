"""Reference transcripts, word comparison and result invariants shared by the tests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from dattavani import TranscriptionResult

#: Labelled recordings beside the repository (../shared/speech/README.md).
SHARED_SPEECH = Path(__file__).resolve().parents[2] / "shared" / "speech"
#: Its read English (MFA's spontaneous speech keeps its fillers in the references: left out).
READ_ENGLISH = ("ljspeech/", "fleurs/en", "cmu_arctic/", "pocketsphinx/")

#: ../shared/audio/README.md: every engine gives these words for jfk (tiny.en drops the commas).
JFK_TEXT = (
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)

#: ../shared/audio/README.md: hotwords.mp3 (small models misspell "ComfyUI" without a prompt).
HOTWORDS_TEXT = "Then you go into your ComfyUI folder again, in the ComfyUI folder."


def words(text: str) -> list[str]:
    """Lower-cased words without punctuation: how transcripts are compared."""
    return re.findall(r"[a-z0-9']+", text.lower())


JFK_WORDS = words(JFK_TEXT)


def word_error_rate(reference: list[str], hypothesis: list[str]) -> float:
    """Levenshtein distance over words divided by the reference length."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i] + [0] * len(hypothesis)
        for j, hyp in enumerate(hypothesis, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp))
        previous = current
    return previous[-1] / max(len(reference), 1)


def check_invariants(result: TranscriptionResult, *, with_words: bool = True) -> None:
    """faster-whisper's invariants: ordered segments, words inside them, text == joined words."""
    previous_end = 0.0
    for segment in result.segments:
        assert previous_end - 1e-6 <= segment.start <= segment.end, segment
        previous_end = segment.end
        if not with_words:
            assert segment.words is None
            continue
        assert segment.words is not None
        assert segment.text == "".join(w.word for w in segment.words)
        last = segment.start
        for word in segment.words:
            assert segment.start - 1e-6 <= word.start <= word.end <= segment.end + 1e-6, word
            assert word.start >= last - 1e-6
            last = word.end
    assert result.text == "".join(s.text for s in result.segments)


def read_english(seconds: float, pause: float = 1.5) -> list[tuple[np.ndarray, str]]:
    """Recordings of read English from ../shared/speech (manifest order, many speakers) with
    their reference texts, until they add up to ``seconds`` with a ``pause`` after each; none
    when ../shared/speech is absent."""
    from dattavani import load_audio

    manifest = SHARED_SPEECH / "manifest.tsv"
    if not manifest.is_file():
        return []
    pieces: list[tuple[np.ndarray, str]] = []
    total = 0.0
    for line in manifest.read_text(encoding="utf-8").splitlines()[1:]:
        path, duration, language, reference = line.split("\t")[:4]
        if language == "en" and path.startswith(READ_ENGLISH) and total < seconds:
            pieces.append((load_audio(SHARED_SPEECH / path), reference))
            total += float(duration) + pause
    return pieces
