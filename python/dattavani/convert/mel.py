"""Slaney-style mel filterbank, as openai-whisper ships it in ``mel_filters.npz``.

whisper.cpp does not compute its filterbank: it reads one from the model file, so every GGML file
we write must carry the exact filters whisper was trained with. openai-whisper generated them once
with ``librosa.filters.mel(sr=16000, n_fft=400, n_mels=N)`` (Slaney mel scale, Slaney area
normalisation); this module reproduces that computation in numpy so the converter needs neither
librosa nor the openai-whisper package.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from dattavani.audio import SAMPLE_RATE

N_FFT = 400

# Slaney's mel scale is linear below 1 kHz (200/3 Hz per mel) and logarithmic above it, with
# 27 mels per factor 6.4 in frequency; these are the constants of the Auditory Toolbox.
_F_SP = 200.0 / 3.0
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOG_STEP = np.log(6.4) / 27.0


def hz_to_mel(hz: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Convert frequencies in Hz to Slaney mels."""
    f = np.asarray(hz, dtype=np.float64)
    linear = f / _F_SP
    # np.maximum keeps log() finite for the entries the where() discards anyway.
    logarithmic = _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOG_STEP
    return np.where(f >= _MIN_LOG_HZ, logarithmic, linear)


def mel_to_hz(mel: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Convert Slaney mels to frequencies in Hz (the inverse of :func:`hz_to_mel`)."""
    m = np.asarray(mel, dtype=np.float64)
    linear = m * _F_SP
    logarithmic = _MIN_LOG_HZ * np.exp(_LOG_STEP * (m - _MIN_LOG_MEL))
    return np.where(m >= _MIN_LOG_MEL, logarithmic, linear)


def mel_filters(
    n_mels: int, *, sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT
) -> npt.NDArray[np.float32]:
    """Return the ``(n_mels, n_fft // 2 + 1)`` float32 filterbank whisper uses.

    Each row is a triangle over the FFT bins, spanning from the previous mel band centre to the
    next one and peaking at its own centre; rows are scaled to equal area (Slaney norm) so that
    wide high-frequency bands do not dominate. Computed in float64 and rounded once, as librosa
    does.
    """
    if n_mels <= 0 or n_fft <= 0 or sample_rate <= 0:
        raise ValueError(f"n_mels, n_fft and sample_rate must be positive, got {n_mels=}, {n_fft=}")
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    # n_mels + 2 edges: every band needs a left edge, a centre and a right edge.
    edges_mel = np.linspace(hz_to_mel(0.0), hz_to_mel(sample_rate / 2.0), n_mels + 2)
    edges_hz = mel_to_hz(edges_mel)

    widths = np.diff(edges_hz)
    ramps = edges_hz[:, np.newaxis] - fft_freqs[np.newaxis, :]
    rising = -ramps[:-2] / widths[:-1, np.newaxis]
    falling = ramps[2:] / widths[1:, np.newaxis]
    weights = np.maximum(0.0, np.minimum(rising, falling))

    area_norm = 2.0 / (edges_hz[2:] - edges_hz[:-2])
    weights *= area_norm[:, np.newaxis]
    return weights.astype(np.float32)
