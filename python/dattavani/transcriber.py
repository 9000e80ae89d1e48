"""The public entry point: :class:`Transcriber` loads a model once and transcribes audio with it.

Policy lives here (which model, which device, how many threads, how long audio is windowed, how
results look); the work is done by the native core with the GIL released, so several threads
share one Transcriber and one copy of the weights.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .audio import SAMPLE_RATE
from .batched import DEFAULT_BATCH_SIZE, batched_vad_options, run_batched
from .devices import DeviceChoice, select_device
from .errors import Cancelled, OptionsError
from .options import TranscribeOptions
from .pieces import Piece
from .results import Segment, TranscriptionResult
from .segments import SegmentBuilder, TimeMap, drop_hallucinations, flag_repetitions
from .vad import VadOptions
from .windows import cut_windows

if TYPE_CHECKING:
    from . import _core
    from .config import Config
    from .models import ModelCache, ModelLease

logger = logging.getLogger(__name__)

AudioInput = str | os.PathLike[str] | bytes | np.ndarray | Any
#: The precision a model named without one (``"base"``, a hub repo) is made at for the CPU: q8_0
#: gave f16's words greedily in 5-9% less time, with half the weights' memory (with beam search a
#: word differs either way; bench/results/cpu-2t-f16-q8_0.md, docs/models.md). GPUs get f16.
CPU_PRECISION = "q8_0"
#: With ``multilingual=True`` the audio is cut (at silences) into windows of at most whisper's
#: 30 s, each detected and decoded in its own language, as faster-whisper does per 30 s window.
MULTILINGUAL_WINDOW_SECONDS = 30.0


def default_threads() -> int:
    """Threads for one transcription: the CPUs this process may run on, at most 8.

    whisper.cpp's workers spin at barriers, so more threads than free cores costs time.
    """
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(available, 8))


@dataclass(frozen=True)
class BatchItem:
    """One outcome of :meth:`Transcriber.transcribe_many`: a result or the error it raised."""

    source: AudioInput
    result: TranscriptionResult | None = None
    error: BaseException | None = None


class Transcriber:
    """Speech to text with one whisper model, loaded once and shared by every call and thread.

    >>> from dattavani import Transcriber
    >>> transcriber = Transcriber("tiny.en", threads=2)                # doctest: +SKIP
    >>> result = transcriber.transcribe("jfk.flac")                   # doctest: +SKIP
    >>> result.text                                                   # doctest: +SKIP
    ' And so my fellow Americans ask not what your country can do for you ...'

    ``model`` is a name (``"base.en"``, ``"small-q5_0"``), a hub repo, a local GGML file, a
    checkpoint folder (see ``docs/models.md``) or an alias of ``[native_models.models]`` in the
    config; None is the config's ``default_model``. A name without a precision runs at q8_0 on
    the CPU and f16 on a GPU; a GGML file runs at its own. ``config`` (default: the config in
    effect, :func:`~dattavani.config.load_config`) also gives the cache folder,
    ``fallback_to_cpu`` and ``gpu_memory_limit``. ``workers`` bounds how many
    transcriptions run at once on the loaded model (each needs its own decoder state).
    ``window_seconds`` bounds how much audio is decoded and held at once: longer input is cut
    into windows at silences. Its default, 360 s, keeps peak memory flat with the input's length
    (whisper.cpp's state keeps what one window's decoding grew, and the next window's mel is
    computed beside it; 600 s windows grew it by 85 MB from a 10 to a 60 minute file) and
    decodes recordings of up to six minutes in one piece: each cut starts the decoder without
    context, which cost tiny.en 0.7 points of WER on the 306 s clip cut at 300 s and 2.4-3.8
    points with 120-180 s windows (``bench/window_wer.py``).
    Transcribers of the same model share one loaded copy through ``model_cache``.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        device: str = "auto",
        threads: int | None = None,
        *,
        workers: int = 4,
        flash_attn: bool | None = None,
        window_seconds: float = 360.0,
        cache_dir: str | os.PathLike[str] | None = None,
        offline: bool | None = None,
        model_cache: ModelCache | None = None,
        config: Config | None = None,
    ) -> None:
        from .config import load_config
        from .models import LoadParameters, default_cache_dir, default_model_cache, resolve_model

        if threads is not None and threads < 1:
            raise OptionsError(f"threads must be >= 1, got {threads}")
        if workers < 1:
            raise OptionsError(f"workers must be >= 1, got {workers}")
        if window_seconds < 30:
            raise OptionsError(f"window_seconds must be >= 30, got {window_seconds}")
        self.config = load_config() if config is None else config
        self.device: DeviceChoice = select_device(
            device, fallback_to_cpu=self.config.native_models.fallback_to_cpu
        )
        self.threads = default_threads() if threads is None else int(threads)
        self.workers = workers
        self.window_seconds = float(window_seconds)
        spec, precision = self._model_spec(model)
        self.resolved = resolve_model(
            spec,
            cache_dir=default_cache_dir(self.config) if cache_dir is None else cache_dir,
            offline=offline,
            precision=precision,
            default_precision=None if self.device.use_gpu else CPU_PRECISION,
        )
        self.model_name = str(self.resolved.model_id or Path(self.resolved.path).name)
        self._cache = model_cache if model_cache is not None else default_model_cache()
        self._load = LoadParameters(
            use_gpu=self.device.use_gpu,
            gpu_device=self.device.gpu_device,
            flash_attn=True if flash_attn is None else flash_attn,
            max_states=workers,
        )
        self._leases: dict[bool, ModelLease] = {}
        self._lock = threading.Lock()
        started = time.perf_counter()
        native = self._load_or_fall_back()
        logger.info(
            "model %s %s (%s, %s, from %s) ready on %s in %.3f s",
            self.model_name,
            self.resolved.precision,
            native.type,
            "multilingual" if native.is_multilingual else "English-only",
            self.resolved.source,
            self.device.name,
            time.perf_counter() - started,
        )

    def _model_spec(
        self, model: str | os.PathLike[str] | None
    ) -> tuple[str | os.PathLike[str], str | None]:
        """What to resolve for ``model``, and at which precision (None: the spec's own): a
        config alias stands for its model id, revision and precision."""
        if model is None:
            model = self.config.native_models.default_model
        if not isinstance(model, str):
            return model, None
        alias = self.config.resolve_model_alias(model)
        spec = alias.spec
        if model != spec or alias.precision:
            logger.info("model %s is an alias of %s (precision %s)", model, spec, alias.precision)
        return spec, alias.precision

    def _load_or_fall_back(self) -> _core.Model:
        """The model, loaded through the cache, which checks that it fits its device (freeing
        idle models to make room); one that does not fit on a GPU runs on the CPU, with a
        warning, when ``[native_models] fallback_to_cpu`` is set."""
        from .errors import GPUMemoryError

        try:
            return self._native(dtw=False)
        except GPUMemoryError:
            if not self.device.use_gpu or not self.config.native_models.fallback_to_cpu:
                raise
            logger.warning(
                "%s does not fit on %s; running on the CPU (fallback_to_cpu)",
                self.model_name,
                self.device.name,
                exc_info=True,
            )
        self.device = select_device("cpu")
        self._load = replace(self._load, use_gpu=False, gpu_device=0)
        return self._native(dtw=False)

    def _native(self, *, dtw: bool) -> _core.Model:
        """The loaded model; with ``dtw``, a load of the same weights with DTW alignment.

        Word timestamps need whisper.cpp's cross-attention DTW, which needs flash attention off:
        that variant is loaded on the first call that asks for words (and shared by the cache).
        """
        with self._lock:
            lease = self._leases.get(dtw)
            if lease is None:
                load = replace(self._load, dtw=dtw)
                if dtw and self._load.flash_attn:
                    logger.info(
                        "word timestamps: loading %s with DTW, flash attention off", self.model_name
                    )
                lease = self._leases[dtw] = self._cache.acquire(
                    self.resolved.path, load, config=self.config
                )
            return lease.model

    @property
    def native_model(self) -> _core.Model:
        """The loaded ``dattavani._core.Model`` (hyper-parameters, memory size, states in use)."""
        return self._native(dtw=False)

    @property
    def is_multilingual(self) -> bool:
        return bool(self.native_model.is_multilingual)

    def close(self) -> None:
        """Give the loaded model(s) back to the cache, which frees them when nobody holds them."""
        with self._lock:
            leases, self._leases = self._leases, {}
        for lease in leases.values():
            lease.release()

    def __enter__(self) -> Transcriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        leases = getattr(self, "_leases", None)
        if leases:
            self.close()

    def transcribe(
        self,
        audio: AudioInput,
        *,
        on_progress: Callable[[float], Any] | None = None,
        on_segment: Callable[[Segment], Any] | None = None,
        cancel: _core.CancelToken | None = None,
        vad_filter: bool | None = None,
        vad_parameters: VadOptions | Mapping[str, Any] | None = None,
        clip_timestamps: Sequence[float] | str | None = None,
        threads: int | None = None,
        batch_size: int | None = None,
        **options: Any,
    ) -> TranscriptionResult:
        """Transcribe a file path, bytes, a file-like object or 16 kHz mono float32 samples.

        Options are openai-whisper's (see :class:`~dattavani.options.TranscribeOptions` and
        ``docs/options.md``): ``language``, ``task``, ``beam_size``, ``temperature``,
        ``initial_prompt``, ``prefix``, ``hotwords``, ``word_timestamps``, ``multilingual`` (a
        language detected and decoded per 30 s window)... ``vad_filter`` skips
        non-speech (Silero VAD; ``vad_parameters`` as faster-whisper's) and ``clip_timestamps``
        (``[start, end, start, end, ...]`` seconds, or ``"0,10,20,30"``) transcribes only those
        spans; times are always on the original timeline. ``on_progress(fraction)`` and
        ``on_segment(segment)`` are called as decoding goes; ``cancel.cancel()`` from another
        thread stops the call with :class:`~dattavani.Cancelled`.

        ``batch_size=N`` transcribes as faster-whisper's ``BatchedInferencePipeline``: the
        speech (``vad_filter`` is on unless turned off) is packed into chunks of at most 30 s,
        each decoded on its own with the first temperature only and the initial prompt, by
        default without timestamp tokens (a segment per chunk), up to N at once
        (:mod:`dattavani.batched`).
        """
        if batch_size is not None:
            # faster-whisper's batched defaults: VAD on, no timestamp tokens.
            options.setdefault("without_timestamps", True)
            vad_filter = True if vad_filter is None else vad_filter
        opts = TranscribeOptions.from_kwargs(
            vad_filter=bool(vad_filter),
            clip_timestamps=clip_timestamps,
            batch_size=batch_size,
            **options,
        )
        if opts.batch_size is not None:
            # Each chunk stands alone: no earlier text, the prompt on every chunk, no fallback.
            opts = replace(
                opts,
                condition_on_previous_text=False,
                carry_initial_prompt=True,
                temperature=opts.temperatures[0],
            )
        vad_options = batched_vad_options if opts.batch_size is not None else VadOptions.of
        vad = vad_options(vad_parameters) if opts.vad_filter else None
        clips = opts.clips
        run = _Run(self, opts, vad, on_segment, cancel, threads or self.threads)
        started = time.perf_counter()
        if on_progress is not None:
            run.progress = _Progress(on_progress, self._expected_duration(audio))
        if opts.batch_size is not None:
            windows = self._windows(audio, clips, self.window_seconds)
            covered = run_batched(
                run, windows, vad, opts.batch_size, self.workers, self.device.use_gpu
            )
        else:
            covered = 0.0
            # With multilingual each window of at most 30 s is decoded in its own language.
            seconds = MULTILINGUAL_WINDOW_SECONDS if run.multilingual else self.window_seconds
            for offset, samples in self._windows(audio, clips, seconds):
                run.window(offset / SAMPLE_RATE, samples)
                covered = max(covered, (offset + len(samples)) / SAMPLE_RATE)
        if run.progress is not None:
            run.progress.finish()
        duration = covered if clips is None else self._expected_duration(audio)
        return run.result(duration, time.perf_counter() - started)

    def detect_language(self, audio: AudioInput) -> list[tuple[str, float]]:
        """Probabilities of every language for the first 30 s, most likely first.

        An English-only model answers ``[("en", 1.0)]`` for any input. An input that holds no
        samples (an empty array, a WAV of zero frames) gives ``[]`` on a multilingual model:
        there is nothing to tell the language from, and :meth:`transcribe` of it gives
        ``language=""``, as for audio without speech.
        """
        from .audio import load_audio

        samples = load_audio(audio, sample_rate=SAMPLE_RATE)
        if len(samples) == 0:
            return [] if self.is_multilingual else [("en", 1.0)]
        return list(self.native_model.detect_language(samples, self.threads))

    def transcribe_many(
        self, sources: Iterable[AudioInput], *, workers: int | None = None, **kwargs: Any
    ) -> Iterator[BatchItem]:
        """Transcribe several inputs at once, yielding each outcome as it finishes.

        A failing input yields a :class:`BatchItem` with its ``error`` and the batch goes on. The
        threads of this Transcriber are shared out among the ``workers`` (default: its
        ``workers``), since whisper.cpp's spinning workers lose time on oversubscribed cores.
        """
        n = min(workers or self.workers, self.workers)
        kwargs.setdefault("threads", max(1, self.threads // n))
        with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
            futures = {pool.submit(self.transcribe, s, **kwargs): s for s in sources}
            for future in concurrent.futures.as_completed(futures):
                source = futures[future]
                error = future.exception()
                if error is None:
                    yield BatchItem(source, result=future.result())
                else:
                    yield BatchItem(source, error=error)

    async def atranscribe(self, audio: AudioInput, **kwargs: Any) -> TranscriptionResult:
        """:meth:`transcribe` for asyncio: runs in a worker thread; cancelling the task stops it."""
        import asyncio  # here, not at the top: it takes ~28 ms to import, and few callers need it

        from . import _core

        token = kwargs.pop("cancel", None) or _core.CancelToken()
        try:
            return await asyncio.to_thread(self.transcribe, audio, cancel=token, **kwargs)
        except asyncio.CancelledError:
            token.cancel()
            raise

    def _windows(
        self,
        audio: AudioInput,
        clips: list[tuple[float, float | None]] | None,
        window_seconds: float,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """``(offset in samples, 16 kHz samples)`` windows covering the input or its clips."""
        from .audio import iter_audio, load_audio

        if clips is None:
            chunks = (
                [load_audio(audio)]
                if isinstance(audio, np.ndarray)
                else iter_audio(audio, chunk_seconds=30.0)
            )
            yield from cut_windows(chunks, window_seconds)
            return
        samples = load_audio(audio)
        for start, end in clips:
            a = min(round(start * SAMPLE_RATE), len(samples))
            b = len(samples) if end is None else min(round(end * SAMPLE_RATE), len(samples))
            for offset, window in cut_windows([samples[a:b]], window_seconds):
                yield a + offset, window

    @staticmethod
    def _expected_duration(audio: AudioInput) -> float:
        """The input's length in seconds, from a file's header where it states one."""
        if isinstance(audio, np.ndarray):
            return len(audio) / SAMPLE_RATE
        from .audio import audio_duration

        return audio_duration(audio)


class BatchedInferencePipeline:
    """faster-whisper's ``BatchedInferencePipeline`` for code moving over: the same
    constructor and ``transcribe`` keywords, over a :class:`~dattavani.Transcriber`.

    ``transcribe`` returns ``(segments, info)`` as faster-whisper's does: an iterator of
    :class:`~dattavani.Segment` and the whole :class:`~dattavani.TranscriptionResult`
    (``info.language``, ``info.duration``...). Segments are decoded before it returns.

    >>> from dattavani import BatchedInferencePipeline, Transcriber
    >>> pipeline = BatchedInferencePipeline(Transcriber("base"))          # doctest: +SKIP
    >>> segments, info = pipeline.transcribe("talk.mp3", batch_size=8)    # doctest: +SKIP
    """

    def __init__(self, model: Transcriber | str) -> None:
        self.model = model if isinstance(model, Transcriber) else Transcriber(model)

    def transcribe(
        self,
        audio: AudioInput,
        batch_size: int = DEFAULT_BATCH_SIZE,
        *,
        vad_filter: bool = True,
        **options: Any,
    ) -> tuple[Iterator[Segment], TranscriptionResult]:
        """Transcribe ``audio`` in batches of ``batch_size`` chunks; see
        :meth:`dattavani.Transcriber.transcribe` for the keywords."""
        result = self.model.transcribe(
            audio, batch_size=batch_size, vad_filter=vad_filter, **options
        )
        return iter(result.segments), result


class _Progress:
    """Turns each window's fraction done into a fraction of the whole input, never going back."""

    def __init__(self, callback: Callable[[float], Any], total_seconds: float) -> None:
        self.callback = callback
        self.total = max(total_seconds, 1e-9)
        self.last = 0.0

    def for_window(self, offset: float, length: float) -> Callable[[float], None]:
        def report(fraction: float) -> None:
            self._report((offset + fraction * length) / self.total)

        return report

    def reached(self, seconds: float) -> None:
        """The input is decoded up to ``seconds``."""
        self._report(seconds / self.total)

    def finish(self) -> None:
        self._report(1.0)

    def _report(self, value: float) -> None:
        value = min(max(value, self.last), 1.0)
        if value > self.last or value == 1.0:
            self.last = value
            self.callback(value)


class _Run:
    """One transcription across windows: carries language, prompt and segment ids between them."""

    def __init__(
        self,
        transcriber: Transcriber,
        opts: TranscribeOptions,
        vad: VadOptions | None,
        on_segment: Callable[[Segment], Any] | None,
        cancel: _core.CancelToken | None,
        threads: int,
    ) -> None:
        self.transcriber = transcriber
        self.opts = opts
        self.vad = vad
        self.progress: _Progress | None = None
        self.on_segment = on_segment
        self.cancel = cancel
        self.threads = threads
        self.model = transcriber._native(dtw=opts.word_timestamps)
        self.language = opts.language
        self.language_probability = 1.0 if opts.language else 0.0
        self.language_probs: tuple[tuple[str, float], ...] = ()
        self.segments: list[Segment] = []
        # Where the last word so far ends: a word after a long pause is judged from it.
        self.last_speech_end = 0.0
        self.first_window = True
        threshold = opts.hallucination_silence_threshold
        if threshold is not None and not opts.word_timestamps:
            logger.warning(
                "hallucination_silence_threshold needs word_timestamps=True, as in openai-whisper: "
                "ignored"
            )
        # Segments are then reported after each window, once the suspect ones are dropped.
        self.hallucination_threshold = threshold if opts.word_timestamps else None
        self.multilingual = opts.multilingual and self.model.is_multilingual
        if opts.multilingual and not self.multilingual:
            logger.warning("multilingual=True needs a multilingual model; English-only: ignored")

    def window(self, offset: float, samples: np.ndarray) -> None:
        """Decode one window of the input (sequential mode), its segments reported as decoded."""
        piece = Piece.of(offset, samples, self.vad)
        if piece is None:
            return
        self.ensure_language(piece.speech)
        language = self._window_language(piece.speech)
        callback = self._segment_callback(piece.to_time, language)
        native = self.decode(
            piece,
            language,
            self.threads,
            first=self.first_window,
            on_progress=self.progress.for_window(offset, piece.length) if self.progress else None,
            on_segment=callback,
        )
        self.absorb(piece, language, native, reported=callback is not None)
        self.first_window = False

    def decode_chunk(
        self, piece: Piece, threads: int, *, first: bool
    ) -> tuple[str, _core.FullResult]:
        """Batched mode's call on one chunk: its language (with multilingual, its own), decoded."""
        language = self._window_language(piece.speech)
        return language, self.decode(piece, language, threads, first=first)

    def ensure_language(self, speech: np.ndarray) -> None:
        """Detect the language on ``speech`` unless it is given, known, or the model is English."""
        if self.language is None and self.model.is_multilingual:
            self._detect_language(speech)

    def decode(
        self,
        piece: Piece,
        language: str,
        threads: int,
        *,
        first: bool,
        on_progress: Callable[[float], None] | None = None,
        on_segment: Callable[[_core.DecodedSegment], None] | None = None,
    ) -> _core.FullResult:
        """One whisper.cpp call on ``piece``'s speech in ``language`` (``first``: the input's
        first piece, which gets the prefix): safe to run on several threads at once."""
        native_options = self.opts.to_native(threads)
        native_options.language = language
        native_options.initial_prompt = self._prompt(first)
        native_options.prefix = self._prefix(first)
        return self.model.transcribe(
            piece.speech, native_options, on_progress, on_segment, self.cancel
        )

    def take_in_chunk(self, piece: Piece, language: str, native: _core.FullResult) -> None:
        """Batched mode: a decoded chunk's segments, reported, then the progress they make."""
        # A chunk decoded before the cancel came is not reported after it.
        if self.cancel is not None and self.cancel.cancelled:
            raise Cancelled("transcription cancelled")
        self.absorb(piece, language, native, reported=False)
        if self.progress is not None:
            self.progress.reached(piece.end)

    def absorb(
        self, piece: Piece, language: str, native: _core.FullResult, *, reported: bool
    ) -> None:
        """Add one call's segments, decoded in ``language``, in input order; report them unless
        the call already did."""
        if self.language is None:
            self.language = native.language
            self.language_probability = float(native.language_probability)
            self.language_probs = tuple((lang, float(p)) for lang, p in native.language_probs)
        build = SegmentBuilder(
            len(self.segments), self.opts, piece.to_time, self.last_speech_end, language
        )
        segments = [build(s) for s in native.segments]
        if self.hallucination_threshold is None:
            self.last_speech_end = build.last_speech_end
        else:
            segments = drop_hallucinations(
                segments, self.hallucination_threshold, self.last_speech_end, piece.span
            )
            segments = [replace(s, id=len(self.segments) + i) for i, s in enumerate(segments)]
            if segments:
                self.last_speech_end = segments[-1].end
        if not reported and self.on_segment is not None:
            for segment in segments:
                self.on_segment(segment)
        self.segments.extend(segments)

    def _detect_language(self, speech: np.ndarray) -> None:
        """The call's language, detected as faster-whisper does: over up to
        ``language_detection_segments`` 30 s windows of the first window's speech, until one's
        most likely language is more probable than ``language_detection_threshold``; failing
        that, the language most of them gave (the first on a tie), at its highest probability.
        """
        span = 30 * SAMPLE_RATE
        count = min(self.opts.language_detection_segments, max(1, -(-len(speech) // span)))
        votes: dict[str, list[float]] = {}
        for k in range(count):
            language, probability, self.language_probs = self._most_likely_language(
                speech[k * span : (k + 1) * span]
            )
            if probability > self.opts.language_detection_threshold:
                break
            votes.setdefault(language, []).append(probability)
        else:
            language = max(votes, key=lambda candidate: len(votes[candidate]))
            probability = max(votes[language])
        self.language, self.language_probability = language, probability
        logger.info("detected language %s (p=%.2f)", self.language, self.language_probability)

    def _most_likely_language(
        self, samples: np.ndarray
    ) -> tuple[str, float, tuple[tuple[str, float], ...]]:
        """The most likely allowed language of the first 30 s of ``samples``, its probability,
        and the probabilities of all."""
        probs = tuple(
            (lang, float(p)) for lang, p in self.model.detect_language(samples, self.threads)
        )
        allowed = self.opts.allowed_languages
        candidates = [lp for lp in probs if not allowed or lp[0] in allowed]
        if not candidates:
            raise OptionsError(f"allowed_languages {allowed} holds no language whisper knows")
        return (*candidates[0], probs)

    def _window_language(self, speech: np.ndarray) -> str:
        """The language a window is decoded in: with multilingual, the one detected for it;
        else the call's (English on an English-only model)."""
        if not self.multilingual:
            return self.language or "en"
        language, probability, _ = self._most_likely_language(speech)
        logger.info("window language %s (p=%.2f)", language, probability)
        return language

    def _prompt(self, first: bool) -> str:
        """hotwords, then the user's prompt (the first piece, or every one with carry).

        The previous window's text is not carried over: as plain text it lacks the timestamp
        tokens whisper.cpp's own in-call history has, and prompting with it was measured to push
        the decoder into long timestamp-less segments that drop words (WER 24% vs 12% on the
        5-minute test clip). Within a window whisper.cpp conditions on the previous 30 s itself.
        """
        parts = []
        if self.opts.hotwords:
            parts.append(self.opts.hotwords.strip())
        if self.opts.initial_prompt and (first or self.opts.carry_initial_prompt):
            parts.append(self.opts.initial_prompt.strip())
        return " ".join(parts)

    def _prefix(self, first: bool) -> str:
        """The prefix, for the first piece only, spaced as faster-whisper tokenizes it."""
        text = (self.opts.prefix or "").strip()
        return " " + text if text and first else ""

    def _segment_callback(
        self, to_time: TimeMap, language: str
    ) -> Callable[[_core.DecodedSegment], None] | None:
        """Reports segments while whisper.cpp decodes, unless they must wait for the hallucination
        check of the whole call."""
        if self.on_segment is None or self.hallucination_threshold is not None:
            return None
        callback = self.on_segment
        # Its own builder, from the same start as the one that keeps the segments after the call.
        build = SegmentBuilder(
            len(self.segments), self.opts, to_time, self.last_speech_end, language
        )
        return lambda native: callback(build(native))

    def result(self, duration: float, processing_time: float) -> TranscriptionResult:
        segments = tuple(flag_repetitions(self.segments))
        language = self.language or ("en" if not self.model.is_multilingual else "")
        return TranscriptionResult(
            text="".join(s.text for s in segments),
            segments=segments,
            language=language,
            language_probability=self.language_probability if self.language else 0.0,
            duration=duration,
            processing_time=processing_time,
            model=self.transcriber.model_name,
            device=self.transcriber.device.name,
            all_language_probs=self.language_probs or (((language, 1.0),) if language else ()),
            options=self.opts.to_dict(),
        )
