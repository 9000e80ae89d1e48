"""The native core through the public API: real whisper.cpp, the real tiny.en, real speech."""

from __future__ import annotations

import json
import logging
import math
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import dattavani
from dattavani import Cancelled, OptionsError, Transcriber, _core
from dattavani.models import LoadParameters
from dattavani.testing import JFK_WORDS, words


@pytest.fixture(scope="module")
def transcriber(tiny_en_ggml: Path, test_device: str) -> Transcriber:
    return Transcriber(tiny_en_ggml, device=test_device, threads=2, workers=4)


def test_jfk_word_for_word(transcriber: Transcriber, jfk_audio: Path) -> None:
    result = transcriber.transcribe(jfk_audio)
    assert words(result.text) == JFK_WORDS
    assert result.segments[0].start == 0.0
    assert 10.0 <= result.segments[-1].end <= 11.1
    assert result.language == "en"
    assert result.language_probability == 1.0
    assert result.duration == pytest.approx(11.0, abs=0.05)
    assert result.processing_time > 0
    assert result.model == transcriber.model_name
    assert result.device == transcriber.device.name
    assert result.text == "".join(s.text for s in result.segments)


def test_segments_are_ordered_and_carry_tokens(transcriber: Transcriber, jfk) -> None:
    result = transcriber.transcribe(jfk)
    previous_end = 0.0
    for i, segment in enumerate(result.segments):
        assert segment.id == i
        assert previous_end <= segment.start < segment.end
        previous_end = segment.end
        assert segment.tokens and all(0 <= t < 50257 for t in segment.tokens)
        assert -5.0 < segment.avg_logprob <= 0.0
        assert 0.0 <= segment.no_speech_prob <= 1.0
        assert segment.compression_ratio > 0


def test_words_join_to_segment_text(transcriber: Transcriber, jfk) -> None:
    result = transcriber.transcribe(jfk, word_timestamps=True)
    all_words = [w for s in result.segments for w in s.words or ()]
    assert words("".join(w.word for w in all_words)) == JFK_WORDS
    for segment in result.segments:
        assert segment.words is not None
        assert segment.text == "".join(w.word for w in segment.words)
        last = segment.start
        for word in segment.words:
            assert segment.start <= word.start <= word.end <= segment.end
            assert word.start >= last - 1e-6
            last = word.start
            assert 0.0 < word.probability <= 1.0


def test_four_threads_share_one_model(transcriber: Transcriber, jfk) -> None:
    results: list[list[str]] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def work() -> None:
        try:
            barrier.wait()
            results.append(words(transcriber.transcribe(jfk).text))
        except BaseException as e:  # surfaced by the assertion below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert results == [JFK_WORDS] * 4
    # One copy of the weights, and four decoder states: the four calls really ran at once.
    assert transcriber.native_model.states_created == 4


@pytest.mark.parametrize(
    "options", [{}, {"beam_size": 1}, {"beam_size": 5}, {"temperature": 0.6}], ids=str
)
def test_same_audio_same_result_on_every_call(transcriber: Transcriber, jfk, options: dict) -> None:
    # Beam search and sampling at a fallback temperature draw from the decoders' random
    # generators, which whisper.cpp reseeded on every call but for the first decoder's; and
    # beam_size=1 ran whisper.cpp's beam search, which draws its candidates: each call of a
    # reused state gave another text.
    results = [transcriber.transcribe(jfk, **options) for _ in range(3)]
    assert results[1].segments == results[0].segments
    assert results[2].segments == results[0].segments


def test_one_beam_is_greedy(transcriber: Transcriber, jfk) -> None:
    one_beam = transcriber.transcribe(jfk, beam_size=1)
    assert one_beam.segments == transcriber.transcribe(jfk).segments


@pytest.mark.parametrize(
    "options",
    [{}, {"beam_size": 5}, {"word_timestamps": True}, {"without_timestamps": True}],
    ids=str,
)
def test_prefix_starts_the_transcript_and_keeps_its_times(
    transcriber: Transcriber, jfk, options: dict
) -> None:
    # faster-whisper's prefix: the first window's first tokens, forced after the start of
    # transcript (and a timestamp at 0) by whisper.cpp's decoder, fixed at extraction.
    result = transcriber.transcribe(jfk, prefix="And so my fellow Americans", **options)
    assert words(result.text) == JFK_WORDS
    assert result.segments[0].text.startswith(" And so my fellow Americans")
    assert result.segments[0].start == 0.0
    assert 10.0 <= result.segments[-1].end <= 11.0
    assert result.options["prefix"] == "And so my fellow Americans"


def test_prefix_is_forced_in_the_first_window_only(
    transcriber: Transcriber, tiny_en_ggml: Path, jfk
) -> None:
    # jfk, 25 s of silence, jfk again: two of whisper.cpp's 30 s windows in one call (greedy),
    # and two calls with 30 s windows (beam search). A prefix the speech does not say is written
    # once, at the start.
    audio = np.concatenate([jfk, np.zeros(25 * 16000, np.float32), jfk])
    short_windows = Transcriber(tiny_en_ggml, device=transcriber.device.name, window_seconds=30)
    for engine, beam_size in ((transcriber, None), (short_windows, 5)):
        result = engine.transcribe(audio, prefix=" And so my fellow citizens ", beam_size=beam_size)
        got = words(result.text)
        assert got[:5] == ["and", "so", "my", "fellow", "citizens"], result.text
        assert got.count("citizens") == 1 and got.count("americans") == 1, result.text
        assert got[-len(JFK_WORDS) :] == JFK_WORDS, result.text
        assert result.segments[0].start == 0.0


@pytest.mark.parametrize("beam_size", [None, 5])
def test_silence_after_speech_gives_no_segment(
    transcriber: Transcriber, jfk, beam_size: int | None
) -> None:
    # The 6 s left after the first 30 s window are silent. whisper.cpp 1.8.5 read the no-speech
    # probability from a logits row it never wrote (here the previous text's), so the silent
    # window was transcribed ("You", "Thank you.") instead of skipped.
    audio = np.concatenate([jfk, np.zeros(25 * 16000, np.float32)])
    result = transcriber.transcribe(audio, beam_size=beam_size)
    assert words(result.text) == JFK_WORDS
    assert result.segments[-1].end <= 11.1
    assert all(s.no_speech_prob < 0.2 for s in result.segments)


@pytest.mark.parametrize("initial_prompt", [None, "Ask not what your country can do."])
def test_no_speech_probability_of_silence(
    transcriber: Transcriber, initial_prompt: str | None
) -> None:
    # Thresholds off: the silent window is transcribed, and reports how sure the model is that
    # nothing was said (openai-whisper's probability of <|nospeech|> at the start of transcript).
    # With a prompt the start-of-transcript token is not the first of the batch: whisper.cpp
    # 1.8.5 read the first token's row, which it never wrote.
    silence = np.zeros(20 * 16000, np.float32)
    result = transcriber.transcribe(
        silence,
        no_speech_threshold=None,
        logprob_threshold=None,
        initial_prompt=initial_prompt,
    )
    assert result.segments
    assert all(s.no_speech_prob > 0.6 for s in result.segments)


def test_music_symbols_are_suppressed_with_the_non_speech_tokens(
    transcriber: Transcriber, jfk
) -> None:
    # Noise around jfk. Over the noise after it tiny.en wrote " ♪♪♪♪" (tokens "\xe2\x99" and
    # "\xaa"): whisper.cpp suppresses only symbols that are one token, openai-whisper the first
    # token of each music symbol too.
    noise = np.random.default_rng(0).normal(0, 0.03, 25 * 16000).astype(np.float32)
    audio = np.concatenate([noise[: 10 * 16000], jfk, noise])
    result = transcriber.transcribe(audio, word_timestamps=True)
    assert words(result.text)[:22] == JFK_WORDS
    assert "♪" not in result.text
    note = transcriber.native_model.tokenize(" ♪")[0]
    assert all(note not in s.tokens for s in result.segments)


def test_suppress_tokens_keeps_those_ids_out(transcriber: Transcriber, jfk) -> None:
    # faster-whisper's suppress_tokens: the token " country" never comes (tiny.en writes
    # " Country" instead).
    country = transcriber.native_model.tokenize(" country")
    assert len(country) == 1
    plain = transcriber.transcribe(jfk)
    assert any(country[0] in s.tokens for s in plain.segments)
    result = transcriber.transcribe(jfk, suppress_tokens=[-1, country[0]])
    assert all(country[0] not in s.tokens for s in result.segments)
    assert " country" not in result.text and result.text != plain.text
    # -1 is the non-speech tokens: [-1] is the default, [] turns them off as well.
    default = transcriber.transcribe(jfk, suppress_tokens=[-1])
    assert default.text == plain.text
    off = transcriber.transcribe(jfk, suppress_tokens=[])
    assert off.text == transcriber.transcribe(jfk, suppress_non_speech_tokens=False).text


def test_repetition_penalty_and_no_repeat_ngram_size(transcriber: Transcriber, jfk) -> None:
    # faster-whisper's, over the tokens written in the current 30 s step (jfk is one).
    def bigrams(result: dattavani.TranscriptionResult) -> list[tuple[int, int]]:
        pairs = (zip(s.tokens[:-1], s.tokens[1:], strict=True) for s in result.segments)
        return [pair for segment_pairs in pairs for pair in segment_pairs]

    plain = transcriber.transcribe(jfk)
    assert len(set(bigrams(plain))) < len(bigrams(plain))  # "can do", "do for" come twice
    for beam_size in (None, 5):  # each beam's own tokens
        blocked = transcriber.transcribe(jfk, no_repeat_ngram_size=2, beam_size=beam_size)
        assert len(set(bigrams(blocked))) == len(bigrams(blocked)), beam_size
    # The penalty makes the written tokens less likely: jfk's second half comes in other tokens
    # (" Ask, What You Can Do..."), the same words.
    penalised = transcriber.transcribe(jfk, repetition_penalty=1.5)
    assert penalised.text != plain.text
    assert words(penalised.text) == JFK_WORDS


def test_progress_and_segment_callbacks(transcriber: Transcriber, jfk) -> None:
    progress: list[float] = []
    seen: list[dattavani.Segment] = []
    events: list[str] = []  # the order the two callbacks came in
    result = transcriber.transcribe(
        jfk,
        on_progress=lambda p: (progress.append(p), events.append("progress")),
        on_segment=lambda s: (seen.append(s), events.append("segment")),
    )
    assert all(0.0 <= p <= 1.0 for p in progress)
    # Segments come as they are decoded, and the call's end is reported after the last of them.
    assert progress[-1] == 1.0 and events[-1] == "progress"
    assert events.count("segment") == len(result.segments)
    assert [s.text for s in seen] == [s.text for s in result.segments]
    assert [s.id for s in seen] == list(range(len(seen)))


def test_every_segment_is_reported_with_word_timestamps(transcriber: Transcriber, jfk) -> None:
    # With DTW, whisper.cpp 1.8.5 passed a segment's index as the number of new segments: jfk's
    # two segments came as one callback, and after the first 30 s none came at all.
    audio = np.tile(jfk, 3)  # 33 s: two of whisper.cpp's 30 s steps
    seen: list[dattavani.Segment] = []
    result = transcriber.transcribe(audio, word_timestamps=True, on_segment=seen.append)
    assert result.segments[-1].end > 30.0  # from the second step
    assert [(s.id, s.start, s.end, s.text, s.words) for s in seen] == [
        (s.id, s.start, s.end, s.text, s.words) for s in result.segments
    ]


def test_callback_exception_stops_the_call(transcriber: Transcriber, jfk) -> None:
    def boom(_segment: object) -> None:
        raise RuntimeError("stop here")

    with pytest.raises(RuntimeError, match="stop here"):
        transcriber.transcribe(jfk, on_segment=boom)
    assert words(transcriber.transcribe(jfk).text) == JFK_WORDS


def test_cancel_from_another_thread(transcriber: Transcriber, jfk) -> None:
    # Two minutes of speech: five of whisper's 30 s chunks if it ran to the end.
    long_audio = np.ascontiguousarray(np.tile(jfk, 11))
    token = dattavani.CancelToken()
    first_segment = threading.Event()
    token_set = threading.Event()
    segments: list[dattavani.Segment] = []

    def on_segment(segment: dattavani.Segment) -> None:
        segments.append(segment)
        first_segment.set()
        token_set.wait(timeout=600)  # the other thread has cancelled before decoding goes on

    def cancel_soon() -> None:
        first_segment.wait(timeout=600)
        token.cancel()
        token_set.set()

    canceller = threading.Thread(target=cancel_soon)
    canceller.start()
    with pytest.raises(Cancelled):
        transcriber.transcribe(long_audio, cancel=token, on_segment=on_segment)
    canceller.join()
    assert token.cancelled
    # Promptly, counted in work rather than in wall time (which a busy machine stretches):
    # whisper.cpp checks the token between graph nodes, so only the segments of the first 30 s
    # chunk, decoded before the token was set, arrive.
    assert segments
    assert max(s.end for s in segments) <= 30.5


def test_bad_options_raise_options_error(transcriber: Transcriber, jfk) -> None:
    """Every rule is in test_options.py, model-free; here: a transcription raises them, and the
    one that needs the model's vocabulary."""
    for options, reason in [
        ({"beam_size": 0}, "beam_size"),
        ({"suppress_regex": "(["}, "not a valid regular expression"),
        ({"suppress_tokens": [60_000]}, "60000 is not a token of this model"),
        # The prefix's length in tokens needs the model's vocabulary.
        ({"prefix": "ask not " * 150}, "prefix is 300 tokens; at most 216 fit in a window"),
    ]:
        with pytest.raises(OptionsError, match=reason):
            transcriber.transcribe(jfk, **options)


@pytest.mark.parametrize(
    ("parameters", "reason"),
    [
        # The fallback starts above 1.0, where whisper.cpp's schedule ends: it had no temperature
        # to decode at and read a decoder that never ran (a segfault).
        ({"temperature": 1.2, "temperature_inc": 0.2}, "temperature must be at most 1.0"),
        # A step too small to raise the float: whisper.cpp's schedule never ended (a hang that
        # filled the memory).
        ({"temperature": 0.0, "temperature_inc": 1e-9}, "more than 1000 fallback temperatures"),
        # whisper.cpp turns it into a timestamp token in int arithmetic, which these overflowed
        # into an index far before the logits (a segfault).
        ({"max_initial_ts": 1e8}, "max_initial_ts must be at most 30 seconds"),
        ({"max_initial_ts": math.inf}, "max_initial_ts must be at most 30 seconds"),
    ],
    ids=str,
)
def test_parameters_that_broke_whisper_cpp_are_refused(
    transcriber: Transcriber, jfk, parameters: dict[str, float], reason: str
) -> None:
    """The native check each call runs, for callers of _core itself (TranscribeOptions refuses
    the same when it is made: test_options.py)."""
    native = _core.FullParams()
    native.n_threads, native.language = 1, "en"
    for name, value in parameters.items():
        setattr(native, name, value)
    with pytest.raises(OptionsError, match=reason):
        transcriber.native_model.transcribe(jfk, native)


def test_model_hyperparameters(transcriber: Transcriber, tiny_en_ggml: Path) -> None:
    model = transcriber.native_model
    assert (model.n_vocab, model.n_mels, model.n_audio_layer, model.n_text_layer) == (
        51864,
        80,
        4,
        4,
    )
    assert not model.is_multilingual
    assert model.type == "tiny"
    assert model.file_bytes == os.path.getsize(tiny_en_ggml)
    # The rest of the file is the header, the mel filters, the vocabulary and tensor headers.
    assert 0 < model.file_bytes - model.weights_bytes < 2_000_000


def test_native_log_goes_to_python_logging(tiny_en_ggml: Path, caplog) -> None:
    with caplog.at_level(logging.DEBUG, logger="dattavani.native"):
        LoadParameters(use_gpu=False).load_model(tiny_en_ggml)
    native = [r for r in caplog.records if r.name == "dattavani.native"]
    assert any("n_audio_layer" in r.getMessage() for r in native)


def test_build_info() -> None:
    info = dattavani.build_info()
    assert info["whisper_cpp_version"] == "1.8.5"
    assert "CPU" in info["compiled_backends"]
    assert any(d["type"] == "cpu" for d in info["devices"])
    assert "AVX" in info["system_info"] or "NEON" in info["system_info"]


SPIN_PROBE = """
import json, os, dattavani
before = "libgomp" in open("/proc/self/maps").read()
from dattavani import _core
print(json.dumps({"spin": os.environ.get("GOMP_SPINCOUNT"), "gomp_before_core": before}))
"""


@pytest.mark.parametrize(
    ("env", "spin"),
    [
        ({}, dattavani.GOMP_SPINCOUNT),
        ({"GOMP_SPINCOUNT": "50"}, "50"),  # the user's choice wins
        ({"OMP_WAIT_POLICY": "active"}, None),  # so does a wait policy of theirs
    ],
)
def test_openmp_spin_count_is_in_place_before_libgomp_loads(env: dict[str, str], spin) -> None:
    clean = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    done = subprocess.run(
        [sys.executable, "-c", SPIN_PROBE], env=clean | env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)
    assert probe["spin"] == spin
    # libgomp reads the variable when it is loaded: that must be with _core, after the package.
    assert not probe["gomp_before_core"]


def reference_log_mel(audio: np.ndarray, filters: np.ndarray, padding: int = 0) -> np.ndarray:
    """openai-whisper's log_mel_spectrogram in numpy (torch.stft with center=True, reflect)."""
    audio = np.pad(audio.astype(np.float64), (0, padding))
    padded = np.pad(audio, (200, 200), mode="reflect")
    window = 0.5 * (1 - np.cos(2 * np.pi * np.arange(400) / 400))
    n_frames = 1 + (len(padded) - 400) // 160
    frames = np.stack([padded[i * 160 : i * 160 + 400] * window for i in range(n_frames)])
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    mel = filters.astype(np.float64) @ power[:-1].T
    log_spec = np.log10(np.maximum(mel, 1e-10))
    log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
    return (log_spec + 4.0) / 4.0


@pytest.mark.parametrize("n_mels", [80, 128])
def test_log_mel_matches_openai_whisper(jfk, n_mels: int) -> None:
    from dattavani.convert.mel import mel_filters

    ours = dattavani.log_mel_spectrogram(jfk, n_mels=n_mels, padding=16000, threads=2)
    reference = reference_log_mel(jfk, mel_filters(n_mels), padding=16000)
    assert ours.shape == reference.shape == (n_mels, (len(jfk) + 16000) // 160)
    assert ours.dtype == np.float32
    # float32 output of a float64 computation: agreement to 1e-4 of a range of about 2.
    np.testing.assert_allclose(ours, reference, atol=1e-4)


def test_log_mel_refuses_non_float32(jfk) -> None:
    with pytest.raises(OptionsError, match="float32"):
        _core.log_mel_spectrogram((jfk * 32767).astype(np.int16), np.zeros((80, 201), np.float32))
