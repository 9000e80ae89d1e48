"""dattavani.results: the JSON round trip of a real result, the derived figures, segment flags."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest

from dattavani import Transcriber, TranscriptionResult
from dattavani.results import Segment, Word
from dattavani.segments import flag_repetitions


@pytest.fixture(scope="module")
def transcriber(tiny_en_ggml: Path, test_device: str) -> Transcriber:
    return Transcriber(tiny_en_ggml, device=test_device, threads=2, workers=1)


def test_a_result_survives_json(transcriber: Transcriber, jfk: np.ndarray) -> None:
    result = transcriber.transcribe(jfk, word_timestamps=True, clip_timestamps=[0, 11])
    text = result.to_json()
    back = TranscriptionResult.from_json(text)
    assert back.segments == result.segments  # words, tokens and flags included
    assert all(s.words for s in back.segments)
    assert back.to_dict() == result.to_dict() == json.loads(text)
    assert (back.text, back.language, back.duration) == (result.text, "en", result.duration)
    # The derived figures are written too, for readers of the file.
    assert json.loads(text)["confidence"] == result.confidence
    assert json.loads(text)["real_time_factor"] == result.real_time_factor
    assert 0.0 < result.confidence <= 1.0 and result.real_time_factor > 0


def segment(id: int, text: str, logprob: float, tokens: int) -> Segment:
    return Segment(id, id, id + 1.0, text, tuple(range(tokens)), logprob, 0.0, 1.0)


def test_confidence_weights_segments_by_their_tokens() -> None:
    result = TranscriptionResult(
        text=" a b",
        segments=(segment(0, " a", math.log(0.5), 1), segment(1, " b", math.log(0.125), 3)),
        language="en",
        language_probability=1.0,
        duration=4.0,
        processing_time=1.0,
        model="test",
    )
    # (1 x ln 0.5 + 3 x ln 0.125) / 4 tokens = ln(0.5 ** 2.5).
    assert math.isclose(result.confidence, 0.5**2.5)
    assert result.real_time_factor == 0.25
    empty = dataclasses.replace(result, segments=(), duration=0.0)
    assert (empty.confidence, empty.real_time_factor) == (0.0, 0.0)


def test_segments_are_flagged_past_the_thresholds(transcriber: Transcriber, jfk) -> None:
    plain = transcriber.transcribe(jfk, temperature=0.0)
    assert all(s.flags == () for s in plain.segments)
    # Thresholds nothing passes: every segment says so (no fallback at temperature 0 alone).
    flagged = transcriber.transcribe(
        jfk, temperature=0.0, logprob_threshold=-1e-6, compression_ratio_threshold=0.1
    )
    assert flagged.text == plain.text
    assert all(set(s.flags) == {"high_compression_ratio", "low_logprob"} for s in flagged.segments)


def test_a_run_of_the_same_segment_is_flagged_as_a_repetition() -> None:
    segments = [
        segment(0, " Thank you.", -0.1, 3),
        segment(1, " thank you.", -0.1, 3),
        segment(2, "Thank you. ", -0.1, 3),
        segment(3, " Goodbye.", -0.1, 2),
        segment(4, " ", -0.1, 1),
        segment(5, " ", -0.1, 1),
    ]
    marked = flag_repetitions(segments)
    assert [s.flags for s in marked] == [("repetition",)] * 3 + [()] * 3
    assert Word(0.0, 1.0, " a", 0.9) == Word(**dataclasses.asdict(Word(0.0, 1.0, " a", 0.9)))
