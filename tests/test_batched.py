"""Batched transcription (issue 14): transcribe(batch_size=N) and BatchedInferencePipeline."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from dattavani import (
    BatchedInferencePipeline,
    Cancelled,
    CancelToken,
    OptionsError,
    Transcriber,
)
from dattavani.batched import batched_vad_options, concurrency
from dattavani.testing import JFK_WORDS, check_invariants, word_error_rate, words
from dattavani.vad import VadOptions

SR = 16000


@pytest.fixture(scope="module")
def transcriber(tiny_en_ggml: Path, test_device: str) -> Transcriber:
    return Transcriber(tiny_en_ggml, device=test_device, threads=2)


@pytest.fixture(scope="module")
def speech_batched(transcriber: Transcriber, read_speech):
    return transcriber.transcribe(read_speech[0], batch_size=8, word_timestamps=True)


def test_jfk_batched_word_for_word(transcriber: Transcriber, jfk: np.ndarray) -> None:
    result = transcriber.transcribe(jfk, batch_size=8)
    assert words(result.text) == JFK_WORDS
    # Without timestamp tokens a chunk is one segment, timed by the speech VAD found in it.
    assert len(result.segments) == 1
    assert 0.0 <= result.segments[0].start < 0.5
    assert 10.5 < result.segments[0].end <= 11.0
    assert result.options["batch_size"] == 8
    assert result.options["without_timestamps"] is True
    assert result.options["condition_on_previous_text"] is False


def test_batched_gives_the_sequential_words(
    transcriber: Transcriber, read_speech, speech_batched
) -> None:
    audio, reference = read_speech
    sequential = transcriber.transcribe(audio)
    between = word_error_rate(words(sequential.text), words(speech_batched.text))
    assert between <= 0.02, f"batched differs from sequential by {between:.2%}"
    # And it is no further from what was said.
    assert (
        word_error_rate(reference, words(speech_batched.text))
        <= word_error_rate(reference, words(sequential.text)) + 0.01
    )


def test_batched_invariants(read_speech, speech_batched) -> None:
    audio, _ = read_speech
    check_invariants(speech_batched)
    assert speech_batched.duration == pytest.approx(len(audio) / SR)
    assert speech_batched.segments[0].start >= 0.0
    assert speech_batched.segments[-1].end <= speech_batched.duration
    # Each chunk holds at most 30 s of speech; with the pauses between its spans it spans more.
    assert all(s.end - s.start < 45 for s in speech_batched.segments)
    assert [s.id for s in speech_batched.segments] == list(range(len(speech_batched.segments)))


def test_segments_with_timestamp_tokens(transcriber: Transcriber, read_speech) -> None:
    audio = read_speech[0][: 90 * SR]
    result = transcriber.transcribe(audio, batch_size=4, without_timestamps=False)
    check_invariants(result, with_words=False)
    # whisper's own timestamps split the chunks into sentences.
    assert len(result.segments) > 90 / 30 + 1


def test_without_vad_chunks_are_cut_at_silences(transcriber: Transcriber, read_speech) -> None:
    audio = read_speech[0][: 95 * SR]
    result = transcriber.transcribe(audio, batch_size=4, vad_filter=False)
    # 95 s in four chunks of at most 30 s, each cut in a pause: one segment each, nothing lost.
    assert [s.end - s.start <= 30.0 + 1e-6 for s in result.segments] == [True] * 4
    assert result.segments[0].start == 0.0
    assert result.segments[-1].end == pytest.approx(95.0, abs=0.01)
    sequential = transcriber.transcribe(audio)
    assert word_error_rate(words(sequential.text), words(result.text)) <= 0.03


def test_on_segment_and_progress_follow_the_input_order(
    transcriber: Transcriber, read_speech
) -> None:
    audio = read_speech[0][: 120 * SR]
    seen, progress = [], []
    result = transcriber.transcribe(
        audio, batch_size=4, on_segment=seen.append, on_progress=progress.append
    )
    assert seen == list(result.segments)
    # One report per chunk as it is taken in, in input order, then the end.
    assert len(progress) >= len(result.segments)
    assert progress == sorted(progress)
    assert progress[-1] == 1.0


def test_four_threads_on_one_transcriber(transcriber: Transcriber, read_speech) -> None:
    # 45 s: each call has two chunks in flight over the shared pool of states.
    audio = read_speech[0][: 45 * SR]
    alone = transcriber.transcribe(audio, batch_size=4).text
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            results[i] = transcriber.transcribe(audio, batch_size=4).text
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == dict.fromkeys(range(4), alone)
    assert len(words(alone)) > 80


def test_cancel_stops_a_batched_call(transcriber: Transcriber, read_speech) -> None:
    token = CancelToken()
    seen = []

    def on_segment(segment) -> None:
        seen.append(segment)
        token.cancel()

    with pytest.raises(Cancelled):
        transcriber.transcribe(read_speech[0], batch_size=2, on_segment=on_segment, cancel=token)
    # The first chunk's segment came; the rest of the 150 s (5 chunks) was never decoded.
    assert len(seen) == 1
    # The states are back in the pool: the Transcriber goes on working.
    assert transcriber.transcribe(read_speech[0][: 11 * SR], batch_size=2).text


def test_pipeline_returns_segments_and_info(transcriber: Transcriber, jfk: np.ndarray) -> None:
    segments, info = BatchedInferencePipeline(transcriber).transcribe(jfk, batch_size=4)
    segments = list(segments)
    assert words("".join(s.text for s in segments)) == JFK_WORDS
    assert info.language == "en"
    assert info.duration == pytest.approx(11.0, abs=0.01)
    assert info.options["batch_size"] == 4


@pytest.mark.parametrize("bad", [0, -1, 2.5, "8", True])
def test_bad_batch_size(transcriber: Transcriber, jfk: np.ndarray, bad: object) -> None:
    with pytest.raises(OptionsError, match="batch_size"):
        transcriber.transcribe(jfk, batch_size=bad)


def test_batched_vad_options_bound_spans_by_the_chunk() -> None:
    assert batched_vad_options(None) == VadOptions(
        max_speech_duration_s=30.0, min_silence_duration_ms=160
    )
    given = batched_vad_options({"threshold": 0.3, "max_speech_duration_s": 100})
    assert (given.threshold, given.max_speech_duration_s) == (0.3, 30.0)
    assert batched_vad_options(VadOptions(speech_pad_ms=100)).speech_pad_ms == 100
    with pytest.raises(OptionsError, match="vad_parameters"):
        batched_vad_options({"no_such": 1})


@pytest.mark.parametrize(
    ("batch_size", "workers", "threads", "gpu", "expected"),
    [
        (8, 4, 2, False, (2, 1)),  # the CPU: a thread each, no more chunks than threads
        (1, 4, 8, False, (1, 8)),
        (8, 4, 8, False, (4, 2)),  # bounded by the state pool
        (16, 4, 2, True, (4, 1)),  # a GPU overlaps the pool's states
    ],
)
def test_concurrency(batch_size, workers, threads, gpu, expected) -> None:
    assert concurrency(batch_size, workers, threads, gpu) == expected
