"""Voice activity detection: transcribe only the speech, report times on the original timeline.

Silero VAD runs natively (whisper.cpp's ggml port; the model ships inside the package). The speech
spans are cut out and joined, whisper.cpp transcribes the joined audio, and :class:`SpeechMap`
maps every segment and word time back to where it was in the input.

>>> from dattavani import Transcriber
>>> Transcriber("tiny.en").transcribe("meeting.mp3", vad_filter=True)   # doctest: +SKIP
"""

from __future__ import annotations

import bisect
import functools
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from .audio import SAMPLE_RATE
from .errors import OptionsError

if TYPE_CHECKING:
    from . import _core

VAD_MODEL_NAME = "silero-v6.2.0-ggml.bin"


@dataclass(frozen=True)
class VadOptions:
    """faster-whisper's ``vad_parameters``, with its defaults.

    ``speech_pad_ms`` of padding keeps word onsets and endings; ``min_silence_duration_ms`` is the
    pause that ends a stretch of speech.
    """

    threshold: float = 0.5
    min_speech_duration_ms: int = 0
    max_speech_duration_s: float = math.inf
    min_silence_duration_ms: int = 2000
    speech_pad_ms: int = 400

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold < 1.0:
            raise OptionsError(f"vad threshold must be in (0, 1), got {self.threshold}")
        if min(self.min_speech_duration_ms, self.min_silence_duration_ms, self.speech_pad_ms) < 0:
            raise OptionsError("vad durations must be >= 0")
        if not self.max_speech_duration_s > 0:
            raise OptionsError("vad max_speech_duration_s must be > 0")

    @classmethod
    def of(cls, parameters: VadOptions | Mapping[str, Any] | None) -> VadOptions:
        """``vad_parameters`` as given to ``transcribe()``: options, a dict of them, or None for
        the defaults; an unknown name is an OptionsError.

        >>> VadOptions.of({"threshold": 0.3}).threshold
        0.3
        """
        if parameters is None:
            return cls()
        if isinstance(parameters, VadOptions):
            return parameters
        try:
            return cls(**dict(parameters))
        except TypeError as error:
            raise OptionsError(f"vad_parameters: {error}") from error


def default_vad_model() -> Path:
    """The Silero model installed beside the native module (``dattavani/data``)."""
    from . import _core

    return Path(_core.__file__).parent / "data" / VAD_MODEL_NAME


_lock = threading.Lock()


@functools.lru_cache(maxsize=4)
def _vad_model(path: str, use_gpu: bool) -> _core.VadModel:
    from . import _core

    return _core.VadModel(path, n_threads=1, use_gpu=use_gpu)


def speech_spans(
    samples: npt.NDArray[np.float32],
    options: VadOptions,
    model_path: Path | None = None,
    use_gpu: bool = False,
) -> list[tuple[float, float]]:
    """Speech spans ``(start, end)`` in seconds, in order and not overlapping."""
    with _lock:  # lru_cache may build one model twice under a race; the lock keeps it single
        model = _vad_model(str(model_path or default_vad_model()), use_gpu)
    max_speech = (
        options.max_speech_duration_s if math.isfinite(options.max_speech_duration_s) else 1e9
    )
    spans: list[tuple[float, float]] = model.speech(
        samples,
        threshold=options.threshold,
        min_speech_duration_ms=options.min_speech_duration_ms,
        min_silence_duration_ms=options.min_silence_duration_ms,
        max_speech_duration_s=max_speech,
        speech_pad_ms=options.speech_pad_ms,
    )
    return spans


class SpeechMap:
    """The joined speech of some spans, and the map from its timeline back to the original.

    >>> m = SpeechMap(np.zeros(16000 * 10, np.float32), [(2.0, 3.0), (5.0, 6.5)])
    >>> len(m.samples) / 16000, m.to_original(0.5), m.to_original(1.25)
    (2.5, 2.5, 5.25)
    """

    def __init__(self, samples: npt.NDArray[np.float32], spans: list[tuple[float, float]]) -> None:
        pieces = []
        self._joined_starts: list[float] = []
        self._original_starts: list[float] = []
        self._lengths: list[float] = []
        joined = 0.0
        for start, end in spans:
            a, b = round(start * SAMPLE_RATE), min(round(end * SAMPLE_RATE), len(samples))
            if b <= a:
                continue
            pieces.append(samples[a:b])
            self._joined_starts.append(joined)
            self._original_starts.append(a / SAMPLE_RATE)
            self._lengths.append((b - a) / SAMPLE_RATE)
            joined += (b - a) / SAMPLE_RATE
        self.samples: npt.NDArray[np.float32] = (
            np.ascontiguousarray(np.concatenate(pieces)) if pieces else np.zeros(0, np.float32)
        )

    def to_original(self, t: float, *, is_end: bool = False) -> float:
        """Original time of joined time ``t``. At a join, a start maps to the later span and an
        end to the earlier one, so no time falls inside removed silence."""
        if not self._joined_starts:
            return t
        find = bisect.bisect_left if is_end else bisect.bisect_right
        i = max(0, find(self._joined_starts, t) - 1)
        offset = min(max(t - self._joined_starts[i], 0.0), self._lengths[i])
        return self._original_starts[i] + offset
