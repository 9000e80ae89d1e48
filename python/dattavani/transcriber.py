"""The public entry point: :class:`Transcriber` loads a model once and transcribes audio with it.

Policy lives here (which file, which device, how many threads, how results look); the work is
done by the native core, with the GIL released, so several threads can share one Transcriber.
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .devices import DeviceChoice, select_device
from .options import TranscribeOptions
from .results import Segment, TranscriptionResult, Word

if TYPE_CHECKING:
    from . import _core

logger = logging.getLogger(__name__)

AudioInput = str | os.PathLike[str] | bytes | np.ndarray | Any
SAMPLE_RATE = 16000


def default_threads() -> int:
    """Threads for one transcription: the CPUs this process may run on, at most 8.

    whisper.cpp's workers spin at barriers, so more threads than free cores costs time.
    """
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(available, 8))


class Transcriber:
    """Speech to text with one whisper model, loaded once and shared by every call and thread.

    >>> from dattavani import Transcriber
    >>> transcriber = Transcriber("ggml-tiny.en.bin", threads=2)      # doctest: +SKIP
    >>> result = transcriber.transcribe("jfk.flac")                   # doctest: +SKIP
    >>> result.text                                                   # doctest: +SKIP
    ' And so my fellow Americans ask not what your country can do for you ...'

    ``workers`` bounds how many transcriptions run at once (each needs its own decoder state);
    further calls wait for a free one.
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        device: str = "auto",
        threads: int | None = None,
        *,
        workers: int = 4,
        flash_attn: bool | None = None,
    ) -> None:
        from . import _core

        path = Path(model)
        self.device: DeviceChoice = select_device(device)
        self.threads = default_threads() if threads is None else int(threads)
        # Flash attention helps on every backend whisper.cpp has; DTW word timings need it off.
        use_flash = True if flash_attn is None else flash_attn
        started = time.perf_counter()
        self._model: _core.Model = _core.Model(
            str(path),
            use_gpu=self.device.use_gpu,
            gpu_device=self.device.gpu_device,
            flash_attn=use_flash,
            max_states=workers,
        )
        self.model_name = path.name
        logger.info(
            "loaded %s (%s, %s) on %s in %.3f s",
            path,
            self._model.type,
            "multilingual" if self._model.is_multilingual else "English-only",
            self.device.name,
            time.perf_counter() - started,
        )

    @property
    def native_model(self) -> _core.Model:
        """The loaded ``dattavani._core.Model`` (hyper-parameters, memory size, states in use)."""
        return self._model

    @property
    def is_multilingual(self) -> bool:
        return bool(self._model.is_multilingual)

    def transcribe(
        self,
        audio: AudioInput,
        *,
        on_progress: Callable[[float], Any] | None = None,
        on_segment: Callable[[Segment], Any] | None = None,
        cancel: _core.CancelToken | None = None,
        **options: Any,
    ) -> TranscriptionResult:
        """Transcribe a file path, bytes, a file-like object or 16 kHz mono float32 samples.

        Options are openai-whisper's (see :class:`~dattavani.options.TranscribeOptions`):
        ``language``, ``task``, ``beam_size``, ``temperature``, ``initial_prompt``,
        ``word_timestamps``... ``on_progress(fraction)`` and ``on_segment(segment)`` are called
        as decoding goes; ``cancel.cancel()`` from another thread stops the call with
        :class:`~dattavani.Cancelled`.
        """
        opts = TranscribeOptions.from_kwargs(**options)
        samples = self._samples(audio)
        native_options = opts.to_native(self.threads)
        started = time.perf_counter()

        segment_callback = None
        if on_segment is not None:
            counter = iter(range(1 << 62))

            def segment_callback(native_segment: _core.Segment) -> None:
                on_segment(_segment(next(counter), native_segment, opts))

        native = self._model.transcribe(
            samples, native_options, on_progress, segment_callback, cancel
        )
        processing_time = time.perf_counter() - started
        segments = tuple(_segment(i, s, opts) for i, s in enumerate(native.segments))
        return TranscriptionResult(
            text="".join(s.text for s in segments),
            segments=segments,
            language=native.language,
            language_probability=float(native.language_probability),
            duration=len(samples) / SAMPLE_RATE,
            processing_time=processing_time,
            model=self.model_name,
            device=self.device.name,
            all_language_probs=tuple((lang, float(p)) for lang, p in native.language_probs),
            options=opts.to_dict(),
        )

    def detect_language(self, audio: AudioInput) -> list[tuple[str, float]]:
        """Probabilities of every language for the first 30 s, most likely first."""
        return list(self._model.detect_language(self._samples(audio), self.threads))

    @staticmethod
    def _samples(audio: AudioInput) -> np.ndarray:
        from .audio import load_audio

        return load_audio(audio, sample_rate=SAMPLE_RATE)


def _segment(index: int, native: _core.Segment, opts: TranscribeOptions) -> Segment:
    text = native.text
    words = _words(native) if opts.word_timestamps else None
    ratio = compression_ratio(text)
    flags = []
    if opts.compression_ratio_threshold is not None and ratio > opts.compression_ratio_threshold:
        flags.append("high_compression_ratio")
    if opts.logprob_threshold is not None and native.avg_logprob < opts.logprob_threshold:
        flags.append("low_logprob")
    return Segment(
        id=index,
        start=float(native.start),
        end=float(native.end),
        text=text,
        tokens=tuple(t.id for t in native.tokens),
        avg_logprob=float(native.avg_logprob),
        no_speech_prob=float(native.no_speech_prob),
        compression_ratio=ratio,
        words=words,
        flags=tuple(flags),
    )


def _words(native: _core.Segment) -> tuple[Word, ...]:
    """Merge token timestamps into words: a word starts at a token that begins with a space.

    Tokens are joined as bytes before decoding, since a character may span two tokens; the words'
    texts therefore join back to exactly the segment's text.
    """
    groups: list[list[Any]] = []
    for token in native.tokens:
        raw: bytes = token.text
        if not groups or raw.startswith(b" "):
            groups.append([token])
        else:
            groups[-1].append(token)
    words = []
    for group in groups:
        text = b"".join(t.text for t in group).decode("utf-8", errors="replace")
        probability = float(np.mean([t.probability for t in group]))
        start = max(float(group[0].start), float(native.start))
        end = min(max(float(group[-1].end), start), float(native.end))
        words.append(Word(start=start, end=end, word=text, probability=probability))
    return tuple(words)


def compression_ratio(text: str) -> float:
    """openai-whisper's repetition measure: text bytes over zlib-compressed bytes."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0
