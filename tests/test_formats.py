"""jfk in each container family, transcribed word for word through the public API.

tests/test_audio.py checks that every format, rate and channel layout decodes to the signal.
Here one file of each family (44.1 kHz stereo, the recording's own; Opus at 48 kHz, its nearest
rate) goes the whole way from a user's file to the words: ``Transcriber.transcribe(path)`` reads
a path in chunks through dattavani.audio.iter_audio. Two files at 8 kHz show what tiny.en makes
of telephone-band audio. The files are made with real encoders by test_audio's ``write_jfk``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dattavani import Transcriber
from dattavani.testing import JFK_WORDS, word_error_rate, words
from test_audio import FORMATS, jfk_at, write_jfk

#: (format, rate, layout) of the files transcribed: each format once, then the telephone band.
FILES = [
    *((fmt, 44100, "stereo") for fmt in FORMATS),
    *((fmt, 8000, "mono") for fmt in ("wav", "mp3")),
]


@pytest.fixture(scope="module")
def transcriber(tiny_en_ggml: Path) -> Transcriber:
    return Transcriber(tiny_en_ggml, threads=2)


@pytest.mark.parametrize(("fmt", "rate", "layout"), FILES)
def test_jfk_word_for_word(
    transcriber, jfk_audio: Path, tmp_path: Path, fmt: str, rate: int, layout: str
) -> None:
    path = write_jfk(jfk_at(jfk_audio, rate, layout), rate, tmp_path / f"jfk.{fmt}", fmt)
    result = transcriber.transcribe(path)
    where = f"{fmt} at {rate} Hz, {layout}: {result.text!r}"
    if rate == 8000:
        # Telephone-band audio has nothing above 4 kHz, where most of the final "s" of
        # "Americans" lies: tiny.en hears "American" there. faster-whisper 1.2.1's greedy
        # decoding of the same files with the same weights scored (2026-11-27) 1 word wrong of
        # 22 on every file but 8 kHz mono MP3 (2 wrong: "throw" for "so" too) and Opus (none);
        # ours matched it file for file but Opus (1 wrong). Allow what faster-whisper gets.
        limit = 2 if (fmt, layout) == ("mp3", "mono") else 1
        assert word_error_rate(JFK_WORDS, words(result.text)) <= limit / len(JFK_WORDS), where
    else:
        assert words(result.text) == JFK_WORDS, where
    assert result.duration == pytest.approx(11.0, rel=0.01)
