"""jfk in every format, rate and channel layout, transcribed word for word through the public API.

``Transcriber.transcribe(path)`` decodes each file with dattavani.audio.load_audio, so this checks
the whole path from a user's file to the words. The files are made by tests/test_audio.py's
``make_jfk_files`` with real encoders.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dattavani import Transcriber
from speech import JFK_WORDS, words
from test_audio import FORMATS, LAYOUTS, RATES, make_jfk_files


@pytest.fixture(scope="module")
def transcriber(tiny_en_ggml: Path) -> Transcriber:
    return Transcriber(tiny_en_ggml, threads=2)


@pytest.fixture(scope="module")
def jfk_files(jfk_audio: Path, tmp_path_factory: pytest.TempPathFactory):
    return make_jfk_files(jfk_audio, tmp_path_factory.mktemp("jfk-formats"))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("rate", RATES)
@pytest.mark.parametrize("fmt", FORMATS)
def test_jfk_word_for_word(transcriber, jfk_files, fmt: str, rate: int, layout: str) -> None:
    result = transcriber.transcribe(jfk_files[fmt, rate, layout])
    assert words(result.text) == JFK_WORDS, f"{fmt} at {rate} Hz, {layout}: {result.text!r}"
    assert result.duration == pytest.approx(11.0, rel=0.01)
