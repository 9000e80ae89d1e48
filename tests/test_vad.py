"""dattavani.vad: the options and their defaults, the native Silero spans, and SpeechMap's mapping
from the joined speech back to the original timeline (no whisper model needed)."""

from __future__ import annotations

import dataclasses
import itertools
import math
import re

import numpy as np
import pytest

from dattavani import _core
from dattavani.audio import SAMPLE_RATE
from dattavani.errors import OptionsError
from dattavani.vad import SpeechMap, VadOptions, speech_spans


def test_defaults_are_faster_whispers_and_the_native_ones() -> None:
    from faster_whisper.vad import VadOptions as FasterWhisperVadOptions

    ours = dataclasses.asdict(VadOptions())
    theirs = dataclasses.asdict(FasterWhisperVadOptions())
    assert ours == {name: theirs[name] for name in ours}
    assert ours["min_speech_duration_ms"] == 0  # whisper.cpp's own default is 250
    # The native speech() takes the same defaults (cpp/vad.h), but an infinite maximum.
    signature = str(_core.VadModel.speech.__doc__)
    for name, value in ours.items():
        if name != "max_speech_duration_s":
            assert re.search(rf"\b{name}: [\w.| ]+ = {value}\b", signature), (name, signature)


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"threshold": 0.0}, "threshold must be in \\(0, 1\\)"),
        ({"threshold": 1.0}, "threshold must be in \\(0, 1\\)"),
        ({"min_speech_duration_ms": -1}, "durations must be >= 0"),
        ({"min_silence_duration_ms": -1}, "durations must be >= 0"),
        ({"speech_pad_ms": -1}, "durations must be >= 0"),
        ({"max_speech_duration_s": 0.0}, "max_speech_duration_s must be > 0"),
    ],
)
def test_bad_options(options: dict[str, float], reason: str) -> None:
    with pytest.raises(OptionsError, match=reason):
        VadOptions(**options)


def test_speech_map_joins_spans_and_maps_times_back() -> None:
    samples = np.arange(10 * SAMPLE_RATE, dtype=np.float32)
    speech = SpeechMap(samples, [(2.0, 3.0), (5.0, 6.5), (9.5, 12.0)])
    # Past the input's end a span is cut at it; the pieces are the original samples, in order.
    assert len(speech.samples) == 3 * SAMPLE_RATE
    np.testing.assert_array_equal(
        speech.samples[:SAMPLE_RATE], samples[2 * SAMPLE_RATE : 3 * SAMPLE_RATE]
    )
    assert speech.to_original(0.0) == 2.0
    assert speech.to_original(1.25) == 5.25
    assert speech.to_original(2.75) == 9.75
    # At a join a start belongs to the later span, an end to the earlier: never in the silence.
    assert speech.to_original(1.0) == 5.0
    assert speech.to_original(1.0, is_end=True) == 3.0
    # Past the end: clamped to the last span's end.
    assert speech.to_original(10.0) == 10.0


def test_speech_map_without_speech_is_empty_and_the_identity() -> None:
    speech = SpeechMap(np.zeros(SAMPLE_RATE, np.float32), [(0.5, 0.5)])
    assert len(speech.samples) == 0
    assert speech.to_original(0.3) == 0.3


def test_silero_finds_speech_between_silences(jfk_audio) -> None:
    from dattavani import load_audio

    jfk = load_audio(jfk_audio)
    silence = np.zeros(5 * SAMPLE_RATE, np.float32)
    spans = speech_spans(np.concatenate([silence, jfk, silence]), VadOptions(), use_gpu=False)
    assert spans and all(a < b for a, b in spans)
    assert all(b <= c for (_, b), (c, _) in itertools.pairwise(spans))
    # The speech is found where jfk is (the padding reaches at most speech_pad_ms into silence).
    assert 4.5 <= spans[0][0] <= 5.5
    assert 5 + len(jfk) / SAMPLE_RATE - 1.5 <= spans[-1][1] <= 5 + len(jfk) / SAMPLE_RATE + 0.5
    assert math.isclose(
        sum(b - a for a, b in spans), len(jfk) / SAMPLE_RATE, rel_tol=0.35
    )  # mostly speech
