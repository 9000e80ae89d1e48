"""What the tests and the benchmarks both need: the known text of the sample speech
(``../shared/audio/README.md``), read speech with its references (``../shared/speech``), how
transcripts are compared with it, and the invariants every result keeps.

>>> JFK_WORDS[:4]
['and', 'so', 'my', 'fellow']
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .word_errors import normalized_words as words
from .word_errors import word_error_rate

if TYPE_CHECKING:
    import numpy as np

    from .results import TranscriptionResult

__all__ = [
    "HOTWORDS_TEXT",
    "JFK_TEXT",
    "JFK_WORDS",
    "READ_ENGLISH",
    "LabelledRecording",
    "any_words",
    "check_invariants",
    "read_english",
    "speech_manifest",
    "word_error_rate",
    "words",
]

#: Every engine gives these words for jfk (tiny.en drops the commas).
JFK_TEXT = (
    "And so my fellow Americans, ask not what your country can do for you, "
    "ask what you can do for your country."
)

#: hotwords.mp3 (small models misspell "ComfyUI" without a prompt).
HOTWORDS_TEXT = "Then you go into your ComfyUI folder again, in the ComfyUI folder."

JFK_WORDS = words(JFK_TEXT)

#: The read English of ../shared/speech (MFA's spontaneous speech keeps its fillers in the
#: references: left out).
READ_ENGLISH = ("ljspeech/", "fleurs/en", "cmu_arctic/", "pocketsphinx/")


@dataclass(frozen=True)
class LabelledRecording:
    """One row of ``../shared/speech/manifest.tsv``: a recording and what is said in it."""

    path: str  # relative to the speech folder
    duration: float  # seconds
    language: str
    reference: str


def speech_manifest(speech_dir: Path) -> list[LabelledRecording]:
    """The recordings ``speech_dir/manifest.tsv`` lists, in its order; none when it is absent."""
    manifest = speech_dir / "manifest.tsv"
    if not manifest.is_file():
        return []
    rows = []
    for line in manifest.read_text(encoding="utf-8").splitlines()[1:]:
        path, duration, language, reference = line.split("\t")[:4]
        rows.append(LabelledRecording(path, float(duration), language, reference))
    return rows


def read_english(
    speech_dir: Path, seconds: float, pause: float = 1.5
) -> list[tuple[np.ndarray, str]]:
    """Recordings of read English from ``speech_dir`` (``../shared/speech``: manifest order, many
    speakers) with their reference texts, until they add up to ``seconds`` with a ``pause``
    after each; none when the folder is absent."""
    from .audio import load_audio

    pieces: list[tuple[np.ndarray, str]] = []
    total = 0.0
    for row in speech_manifest(speech_dir):
        if row.language == "en" and row.path.startswith(READ_ENGLISH) and total < seconds:
            pieces.append((load_audio(speech_dir / row.path), row.reference))
            total += row.duration + pause
    return pieces


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


def any_words(text: str) -> list[str]:
    """Lower-cased runs of letters and digits in any script (an apostrophe splits a word): how
    transcripts in several languages are compared.

    >>> any_words("L'été, Straße!")
    ['l', 'été', 'straße']
    """
    return re.findall(r"[^\W_]+", text.lower())
