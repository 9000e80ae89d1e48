"""dattavani.options without a model: every rule of TranscribeOptions, the native parameters it
maps to (whisper.cpp's own check included, which needs no model and runs when the options are
made), names and aliases.

The checks that need a loaded model (a token id past the vocabulary) are in test_core.py; this
table holds what test_core.py and test_reliability_inputs.py each checked through a transcription.
"""

from __future__ import annotations

import math

import pytest

from dattavani.errors import OptionsError
from dattavani.options import DEFAULT_TEMPERATURES, TranscribeOptions, _scalar_kinds


def checked(**options: object) -> TranscribeOptions:
    """The options as a transcription checks them: built from keywords (whisper.cpp's own
    validate() runs then too)."""
    return TranscribeOptions.from_kwargs(**options)


@pytest.mark.parametrize(
    ("options", "reason"),
    [
        ({"language": "xx"}, "unknown language 'xx'"),
        ({"language": "klingon"}, "unknown language 'klingon'"),
        ({"language": 5}, "language must be a string"),
        ({"allowed_languages": ["en", "klingon"]}, "unknown language 'klingon'"),
        ({"beam_size": 0}, "beam_size.*got 0"),
        ({"beam_size": 1000}, "beam_size.*got 1000"),
        ({"beam_size": -1}, "beam_size.*got -1"),
        ({"beam_size": 2.5}, "beam_size must be an integer"),
        ({"best_of": 0}, "best_of.*got 0"),
        ({"best_of": 9}, "best_of must be at most 8 .*got 9"),
        ({"beam_size": 2**31}, "beam_size must fit in 32 bits"),
        ({"audio_ctx": 2**40}, "audio_ctx must fit in 32 bits"),
        ({"max_segment_length": 2**33}, "max_segment_length must fit in 32 bits"),
        ({"no_repeat_ngram_size": 2**31}, "no_repeat_ngram_size must fit in 32 bits"),
        ({"suppress_tokens": [2**40]}, "suppress_tokens must be token ids"),
        ({"max_segment_length": -1}, "max_segment_length must be >= 0"),
        ({"max_tokens_per_segment": -1}, "max_tokens_per_segment must be >= 0"),
        ({"audio_ctx": -1}, "audio_ctx must be >= 0"),
        ({"no_speech_threshold": -0.5}, "no_speech_threshold.*-0.5"),
        ({"no_speech_threshold": 1.5}, "no_speech_threshold must be <= 1"),
        ({"compression_ratio_threshold": -1.0}, "compression_ratio_threshold.*-1"),
        ({"entropy_threshold": -2.0}, "entropy_threshold.*-2"),
        ({"temperature": 5.0}, "temperature"),
        ({"temperature": -0.2}, "temperature.*-0.2"),
        ({"temperature": float("nan")}, "temperature.*nan"),
        # whisper.cpp falls back from the first temperature in equal steps up to 1.0: a schedule
        # that starts above 1.0 crashed it, one of a step too small to raise a float never ended,
        # and others ran as another schedule.
        ({"temperature": (1.2, 1.4)}, r"temperature must be at most 1.0 with a fallback"),
        ({"temperature": (0.0, 1e-9)}, "makes more than 1000 fallback temperatures"),
        ({"temperature": (0.0, 0.5)}, r"would decode at \(0.0, 0.5, 1.0\)"),
        ({"temperature": (0.0, 0.2, 0.4)}, r"would decode at \(0.0, 0.2, 0.4, 0.6, 0.8, 1.0\)"),
        ({"temperature": (0.4, 0.2)}, r"would decode at \(0.4,\)"),
        ({"temperature": (0.0, 0.3, 1.0)}, r"would decode at \(0.0, 0.5, 1.0\)"),
        ({"offset": -1.0}, "offset"),
        ({"offset": 1e7}, r"offset and duration must be in \[0, 10\^6\] seconds"),
        ({"duration": 2e6}, r"offset and duration must be in \[0, 10\^6\] seconds"),
        ({"offset": float("nan")}, "offset must be finite"),
        ({"logprob_threshold": float("nan")}, "logprob_threshold must be a number"),
        ({"task": "summarise"}, "task.*summarise"),
        ({"bogus": 1}, "unknown transcription option"),
        ({"suppress_regex": "(["}, "not a valid regular expression"),
        ({"patience": -1.0}, "patience"),
        ({"hallucination_silence_threshold": 0}, "hallucination_silence_threshold must be > 0"),
        ({"suppress_tokens": [-2]}, "suppress_tokens must be token ids"),
        ({"suppress_tokens": 5}, "suppress_tokens must be token ids"),
        ({"prefix": 5}, "prefix must be a string"),
        ({"language_detection_segments": 0}, "language_detection_segments must be >= 1"),
        (
            {"language_detection_threshold": 1.5},
            r"language_detection_threshold must be in \[0, 1\]",
        ),
        ({"multilingual": "yes"}, "multilingual must be True or False"),
        ({"multilingual": True, "language": "en"}, "give allowed_languages= to limit the choice"),
        ({"batch_size": 0}, "batch_size must be >= 1"),
        ({"batch_size": 2.5}, "batch_size must be an integer"),
        ({"repetition_penalty": 0.0}, "repetition_penalty must be > 0"),
        ({"repetition_penalty": 1e7}, r"repetition_penalty must be > 0 and below 10\^6"),
        ({"no_repeat_ngram_size": -1}, "no_repeat_ngram_size must be >= 0"),
        ({"logprob_threshold": -1, "log_prob_threshold": -1}, "not both"),
        ({"max_initial_timestamp": -1.0}, "max_initial_timestamp must be >= 0"),
        # Past whisper.cpp's 30 s window: a large value overflowed its int into a segfault.
        ({"max_initial_timestamp": 30.5}, "max_initial_ts must be at most 30 seconds"),
        ({"max_initial_timestamp": 1e8}, r"max_initial_ts must be at most 30 seconds.*1e\+08"),
        ({"max_initial_timestamp": 1e39}, "max_initial_ts must be at most 30 seconds.*inf"),
        ({"max_initial_timestamp": float("inf")}, "max_initial_timestamp must be finite"),
        ({"audio_ctx": 2000}, "audio_ctx must be <= 1500"),
        ({"vad_filter": 1}, "vad_filter must be True or False"),
        ({"clip_timestamps": "5,2"}, "clip_timestamps '5,2': spans must be start < end"),
        ({"clip_timestamps": [0, 5, 3, 8]}, "spans must be in order"),
        ({"clip_timestamps": "a,b"}, "clip_timestamps 'a,b'"),
    ],
)
def test_bad_option(options: dict[str, object], reason: str) -> None:
    with pytest.raises(OptionsError, match=reason):
        checked(**options)


def test_whisper_cpps_own_rules_fail_when_the_options_are_made() -> None:
    # The native check runs in __post_init__: a bad option never waits for a transcription, and
    # an int too large for whisper.cpp is an OptionsError, not the binding's TypeError.
    with pytest.raises(OptionsError, match="not a valid regular expression"):
        TranscribeOptions(suppress_regex="([")
    with pytest.raises(OptionsError, match="beam_size must be at most 8"):
        TranscribeOptions(beam_size=9)
    with pytest.raises(OptionsError, match="audio_ctx must fit in 32 bits"):
        TranscribeOptions(audio_ctx=2**31)


def test_defaults_are_openai_whispers() -> None:
    options = checked()
    assert options.temperatures == DEFAULT_TEMPERATURES
    assert (options.beam_size, options.best_of) == (None, 5)
    assert (options.compression_ratio_threshold, options.logprob_threshold) == (2.4, -1.0)
    assert options.no_speech_threshold == 0.6
    assert options.condition_on_previous_text is True
    assert options.clips is None and options.vad_filter is False


def test_language_names_become_codes() -> None:
    assert checked(language="English").language == "en"
    assert checked(language="castilian").language == "es"  # openai-whisper's other names
    assert checked(language="auto").language is None
    assert checked(allowed_languages=["German", "fr"]).allowed_languages == ("de", "fr")


def test_clip_timestamps_become_spans() -> None:
    assert checked(clip_timestamps="0,10,20").clips == [(0.0, 10.0), (20.0, None)]
    assert checked(clip_timestamps=[8, 11]).clip_timestamps == (8.0, 11.0)
    for whole in ("0", [], None):
        assert checked(clip_timestamps=whole).clips is None


def test_faster_whisper_names_are_taken() -> None:
    assert checked(log_prob_threshold=-0.5).logprob_threshold == -0.5


def test_native_parameters() -> None:
    native = checked(
        temperature=(0.0, 0.25, 0.5, 0.75, 1.0),
        logprob_threshold=None,
        task="translate",
        beam_size=3,
    ).to_native(threads=2)
    assert (native.temperature, round(native.temperature_inc, 6)) == (0.0, 0.25)
    assert native.logprob_thold == -math.inf
    assert native.translate and native.beam_size == 3 and native.n_threads == 2
    assert checked(suppress_tokens=[-1, 50]).to_native(1).suppress_tokens == [50]


@pytest.mark.parametrize(
    "schedule",
    [
        DEFAULT_TEMPERATURES,
        (0.0, 1.0),
        (0.5,),
        (1.5,),  # one temperature, no fallback: above 1.0 is allowed
        # Rounded steps, as `dattavani whisper --temperature_increment_on_fallback` writes them:
        # the step taken from the second value alone (0.166667) made whisper.cpp's float sums
        # pass 1.0 early and drop the last temperature.
        tuple(round(i / 6, 6) for i in range(7)),
        tuple(round(0.3 + 0.1 * i, 6) for i in range(8)),
        tuple(round(i / 100, 6) for i in range(101)),
    ],
    ids=len,
)
def test_whisper_cpp_falls_back_through_the_schedule_given(schedule: tuple[float, ...]) -> None:
    native = checked(temperature=schedule).to_native(1)
    assert native.fallback_temperatures() == pytest.approx(schedule, abs=1e-6)


def test_the_kinds_table_covers_every_scalar_field() -> None:
    kinds = _scalar_kinds()
    assert kinds["beam_size"] is int and kinds["language"] is str
    assert kinds["max_initial_timestamp"] is float and kinds["vad_filter"] is bool
    # Options of other shapes are checked by their own rules, not by kind.
    assert not {"task", "temperature", "allowed_languages", "suppress_tokens"} & set(kinds)


def test_adding_an_option_is_one_field(tmp_path) -> None:
    """max_initial_timestamp is one field of TranscribeOptions: the API, [transcribe] and the
    result's options take it with nothing else written for it."""
    from dattavani.config import load_config

    config = tmp_path / "dattavani.toml"
    config.write_text("[transcribe]\nmax_initial_timestamp = 0.5\n", encoding="utf-8")
    options = load_config(config, env={}).transcribe.options
    assert checked(**options).to_dict()["max_initial_timestamp"] == 0.5
    assert checked(**options).to_native(1).max_initial_ts == 0.5
    assert checked(max_initial_timestamp=30).to_native(1).max_initial_ts == 30
