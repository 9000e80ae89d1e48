"""Whisper's log-mel spectrogram, computed in the native core.

>>> import numpy as np
>>> log_mel_spectrogram(np.zeros(16000, np.float32)).shape   # doctest: +SKIP
(80, 100)
"""

from __future__ import annotations

import functools

import numpy as np

from .convert.mel import mel_filters


@functools.lru_cache(maxsize=2)
def _filters(n_mels: int) -> np.ndarray:
    return np.ascontiguousarray(mel_filters(n_mels), dtype=np.float32)


def log_mel_spectrogram(
    audio: np.ndarray, n_mels: int = 80, padding: int = 0, threads: int = 1
) -> np.ndarray:
    """openai-whisper's ``log_mel_spectrogram`` for 16 kHz mono float32 samples.

    Returns float32 of shape ``(n_mels, (len(audio) + padding) // 160)``; ``padding`` zeros are
    appended first, as openai-whisper does with 30 s before transcribing.
    """
    from . import _core

    if n_mels not in (80, 128):
        from .errors import OptionsError

        raise OptionsError(f"n_mels must be 80 or 128, got {n_mels}")
    result: np.ndarray = _core.log_mel_spectrogram(audio, _filters(n_mels), padding, threads)
    return result
