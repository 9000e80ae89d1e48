"""Concurrency stress, cancellation under load, isolation between calls, and a short leak check.

The stress test runs 8 threads x ``DATTAVANI_STRESS_ROUNDS`` transcriptions (2 here; the issue's
8 x 20 with ``DATTAVANI_STRESS_ROUNDS=20``, see docs/reliability.md) over two models, tiny.en f16
and its q8_0 quantization, through one ModelCache(max_models=1): every Transcriber made for a
request holds its model while it works, and the cache frees the other one whenever nobody holds
it, so models are loaded, evicted and reloaded while the other model's work is in flight.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import dattavani
from dattavani import Cancelled, Transcriber, load_audio
from dattavani.convert import quantize
from dattavani.models import ModelCache
from dattavani.testing import JFK_WORDS, words

REPO = Path(__file__).resolve().parents[1]
ROUNDS = int(os.environ.get("DATTAVANI_STRESS_ROUNDS", "2"))
THREADS = 8
# "Ask not what your country can do for you" (3.2 s to 7.7 s of jfk), decoded greedily with a
# 7.7 s encoder context: a second of work per call on one core instead of a 30 s window's four.
CLIP_SECONDS = (3.2, 7.7)
FAST = {"temperature": 0.0, "audio_ctx": 384}
CLIP_WORDS = ["ask", "not", "what", "your", "country", "can", "do", "for", "you"]


@pytest.fixture(scope="module")
def clip(jfk_audio: Path) -> np.ndarray:
    samples = load_audio(jfk_audio)
    start, end = (round(s * 16000) for s in CLIP_SECONDS)
    return np.ascontiguousarray(samples[start:end])


@pytest.fixture(scope="module")
def two_models(tiny_en_ggml: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """tiny.en f16 and a q8_0 quantization of it: two different GGML files of one model."""
    q8 = quantize(tiny_en_ggml, tmp_path_factory.mktemp("q8") / "tiny.en-q8_0.bin", "q8_0")
    return [tiny_en_ggml, q8]


@dataclass
class Use:
    """One transcription: which loaded model it ran on, when, and what came out."""

    model: int  # ModelWatch's serial number of the dattavani._core.Model
    started: float
    ended: float
    text: str


class ModelWatch:
    """Numbers each loaded model object and records when it is freed (weakref finalizers).

    Objects get serial numbers rather than ``id()``s: a reloaded model may reuse a freed one's
    address, and the test counts loads.
    """

    def __init__(self) -> None:
        self.changed = threading.Condition()
        self.serials: weakref.WeakKeyDictionary[object, int] = weakref.WeakKeyDictionary()
        self.paths: list[Path] = []  # by serial: the file each load came from
        self.freed: dict[int, float] = {}

    def watch(self, model: object, path: Path) -> int:
        with self.changed:
            serial = self.serials.get(model)
            if serial is None:
                serial = len(self.paths)
                self.paths.append(path)
                self.serials[model] = serial
                weakref.finalize(model, self._freed, serial)
            return serial

    def _freed(self, serial: int) -> None:
        with self.changed:
            self.freed[serial] = time.perf_counter()
            self.changed.notify_all()

    def wait_freed(self, path: Path, timeout: float) -> None:
        """Wait until a model loaded from ``path`` has been freed."""
        with self.changed:
            self.changed.wait_for(lambda: any(self.paths[s] == path for s in self.freed), timeout)


def run_threads(count: int, work) -> list[BaseException]:
    errors: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            work(index)
        except BaseException as error:  # reported by the caller's assertion
            errors.append(error)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


@pytest.fixture(scope="module")
def references(two_models: list[Path], clip: np.ndarray) -> dict[Path, str]:
    """Each model's transcript of the clip, one call at a time on a fresh load."""
    texts = {}
    for path in two_models:
        with Transcriber(path, device="cpu", threads=1, model_cache=ModelCache(1)) as transcriber:
            texts[path] = transcriber.transcribe(clip, **FAST).text
    return texts


def test_eight_threads_two_models_one_cache_slot(
    two_models: list[Path], clip: np.ndarray, references: dict[Path, str], jfk_audio: Path
) -> None:
    for text in references.values():
        assert words(text) == CLIP_WORDS
    cache = ModelCache(max_models=1)
    watch = ModelWatch()
    uses: list[Use] = []
    uses_lock = threading.Lock()

    def hold_until_first_model_freed(segment: dattavani.Segment) -> None:
        # The second model's first transcriptions stay open until the cache has evicted the first
        # model, which happens when its round-0 users are done (from round 1 on they use the
        # second model): an eviction during other work, and a reload in round 1, on any schedule.
        watch.wait_freed(two_models[0], timeout=600)

    def work(index: int) -> None:
        for round_ in range(ROUNDS):
            path = two_models[(index + round_) % 2]
            hold = round_ == 0 and path == two_models[1]
            with Transcriber(
                path, device="cpu", threads=1, workers=4, model_cache=cache
            ) as transcriber:
                model = watch.watch(transcriber.native_model, path)
                started = time.perf_counter()
                text = transcriber.transcribe(
                    clip, on_segment=hold_until_first_model_freed if hold else None, **FAST
                ).text
                use = Use(model, started, time.perf_counter(), text)
            with uses_lock:
                uses.append(use)
            assert text == references[path], (path, text)

    cancelled = CancelUnderLoad(two_models[0], jfk_audio)
    cancelled.start()
    errors = run_threads(THREADS, work)
    cancelled.join()
    assert not errors, errors
    assert len(uses) == THREADS * ROUNDS
    # The cache really evicted and reloaded: more loads than models.
    assert len(watch.paths) > 2
    # No model was freed while a transcription was running on it ...
    for use in uses:
        freed_at = watch.freed.get(use.model)
        assert freed_at is None or freed_at > use.ended
    # ... and models were freed while the other model's transcriptions were running.
    assert any(
        use.started < freed_at < use.ended and use.model != model
        for model, freed_at in watch.freed.items()
        for use in uses
    )
    cancelled.check()
    cache.clear()
    assert len(cache) == 0


class CancelUnderLoad(threading.Thread):
    """A two-minute transcription on its own Transcriber, cancelled a second after it starts."""

    def __init__(self, model: Path, jfk_audio: Path) -> None:
        super().__init__()
        self.transcriber = Transcriber(model, device="cpu", threads=1, model_cache=ModelCache(1))
        self.audio = np.ascontiguousarray(np.tile(load_audio(jfk_audio), 11))
        self.token = dattavani.CancelToken()
        self.segments: list[dattavani.Segment] = []
        self.decoded_at_cancel = 0.0
        self.outcome: BaseException | None = None

    def cancel(self) -> None:
        self.decoded_at_cancel = max((s.end for s in self.segments), default=0.0)
        self.token.cancel()

    def run(self) -> None:
        threading.Timer(1.0, self.cancel).start()
        try:
            self.transcriber.transcribe(
                self.audio, cancel=self.token, on_segment=self.segments.append
            )
        except BaseException as error:
            self.outcome = error

    def check(self) -> None:
        assert isinstance(self.outcome, Cancelled), self.outcome
        # Promptly, counted in work rather than in wall time (9 busy threads on 2 cores stretch
        # that): whisper.cpp polls between graph nodes, so at most the 30 s chunk being decoded
        # when the token was set is delivered after it.
        decoded = max((s.end for s in self.segments), default=0.0)
        assert decoded - self.decoded_at_cancel <= 30.5
        self.transcriber.close()


def test_a_call_waiting_for_a_state_can_be_cancelled(tiny_en_ggml: Path, jfk_audio: Path) -> None:
    # One state: the second call waits for the first to finish, until it is cancelled. The first
    # call is held inside its progress callback until then, so the state is busy throughout.
    transcriber = Transcriber(
        tiny_en_ggml, device="cpu", threads=1, workers=1, model_cache=ModelCache(1)
    )
    long_audio = np.ascontiguousarray(np.tile(load_audio(jfk_audio), 3))
    busy = threading.Event()
    release = threading.Event()
    first: list[str] = []

    def hold(_fraction: float) -> None:
        busy.set()
        release.wait(timeout=600)

    def hold_the_state() -> None:
        first.append(transcriber.transcribe(long_audio, on_progress=hold).text)

    holder = threading.Thread(target=hold_the_state)
    holder.start()
    busy.wait(timeout=600)
    token = dattavani.CancelToken()
    threading.Timer(0.5, token.cancel).start()
    with pytest.raises(Cancelled):
        transcriber.transcribe(long_audio[:16000], cancel=token)
    assert not first  # it was cancelled while waiting, not after the state came free
    release.set()
    holder.join()
    assert len(words(first[0])) > 50  # the holder finished undisturbed
    transcriber.close()


def test_a_call_inherits_nothing_from_the_previous_call_on_its_state(
    tiny_en_ggml: Path, jfk_audio: Path
) -> None:
    # One state, used by three calls in turn. whisper.cpp kept each call's text in the state as
    # the next call's prompt: after a prompted call jfk came out as "... for you. Ask what ...".
    # (test_core.py's copy of this check, on a pool of states, is merged here.)
    samples = load_audio(jfk_audio)
    prompt = "HELLO, WORLD! THIS MEETING IS TRANSCRIBED IN CAPITAL LETTERS ONLY."
    with Transcriber(
        tiny_en_ggml, device="cpu", threads=1, workers=1, model_cache=ModelCache(1)
    ) as transcriber:
        first = transcriber.transcribe(samples, temperature=0.0)
        prompted = transcriber.transcribe(samples, temperature=0.0, initial_prompt=prompt)
        again = transcriber.transcribe(samples, temperature=0.0)
    assert again.text == first.text and words(again.text) == JFK_WORDS
    # Not prompted with the earlier call's text: the same log probabilities, not just the words.
    assert [s.avg_logprob for s in again.segments] == [s.avg_logprob for s in first.segments]
    assert prompted.options["initial_prompt"] == prompt
    assert again.options["initial_prompt"] is None


def test_loading_and_transcribing_repeatedly_does_not_grow_memory(tiny_en_ggml: Path) -> None:
    # A short run of bench/leak.py in its own process, with a loose bound: a leaked model (75 MB)
    # or a state per call (tens of MB) shows; allocator noise does not.
    leak = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "leak.py"),
            "--model",
            str(tiny_en_ggml),
            *("--loads", "10", "--transcriptions", "6", "--warmup", "2"),
            *("--max-growth-mb", "40", "--json"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    report = json.loads(leak.stdout.splitlines()[-1])
    assert leak.returncode == 0 and report["ok"], report
    assert report["load_and_free"]["runs"] == 10 and report["transcribe"]["runs"] == 6
