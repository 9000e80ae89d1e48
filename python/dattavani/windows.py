"""Long audio in bounded memory: cut the 16 kHz stream into windows of a few minutes at silences.

whisper.cpp holds a whole call's audio and its mel spectrogram in memory, so a two-hour file is fed
to it window by window. Each window ends at the quietest moment near its nominal end, so no word
is cut in two; the remainder starts the next window, so no audio is lost or doubled.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import numpy.typing as npt

from .audio import SAMPLE_RATE

FRAME = SAMPLE_RATE // 10  # energy is compared over 100 ms frames

Samples = npt.NDArray[np.float32]


def quietest_point(samples: Samples, lo: int, hi: int) -> int:
    """Index of the middle of the lowest-energy 100 ms frame within ``samples[lo:hi]``.

    >>> x = np.ones(16000 * 3, np.float32); x[24000:25600] = 0
    >>> quietest_point(x, 16000, 48000)
    24800
    """
    region = samples[lo:hi]
    n_frames = len(region) // FRAME
    if n_frames == 0:
        return hi
    frames = region[: n_frames * FRAME].reshape(n_frames, FRAME)
    energy = np.einsum("ij,ij->i", frames, frames)
    return lo + int(np.argmin(energy)) * FRAME + FRAME // 2


def cut_windows(
    chunks: Iterable[Samples], window_seconds: float, search_seconds: float = 20.0
) -> Iterator[tuple[int, Samples]]:
    """Yield ``(offset in samples, window)`` covering ``chunks`` exactly, in order.

    Windows are at most ``window_seconds`` long and, except the last, end at the quietest 100 ms
    in their final ``search_seconds``. A window is a view that stays valid only until the next one
    is requested: streamed chunks are assembled in one buffer that every window reuses, so memory
    holds one window and two chunks however long the input is. An input that arrives as a single
    chunk (an array given whole) is cut where it lies, without a copy.

    >>> audio = np.zeros(16000 * 100, np.float32)  # silent throughout: cut where the search starts
    >>> [(offset / 16000, len(w) / 16000) for offset, w in cut_windows([audio], 60, 10)]
    [(0.0, 50.05), (50.05, 49.95)]
    """
    window = max(int(window_seconds * SAMPLE_RATE), FRAME)
    search = min(int(search_seconds * SAMPLE_RATE), window // 2)
    buffer = np.empty(0, np.float32)
    filled = 0  # samples of buffer in use
    offset = 0  # of buffer[0] in the input
    stream = iter(chunks)
    chunk = next(stream, None)
    while chunk is not None:
        following = next(stream, None)
        pos = 0
        while pos < len(chunk):
            if filled == 0 and following is None:  # the rest of the input lies in this chunk
                piece = chunk[pos:]
                cut = (
                    len(piece)
                    if len(piece) <= window
                    else quietest_point(piece, window - search, window)
                )
                yield offset, piece[:cut]
                offset += cut
                pos += cut
            elif filled == window:  # full, and more audio follows: cut, keep the short tail
                cut = quietest_point(buffer, window - search, window)
                yield offset, buffer[:cut]
                offset += cut
                filled = window - cut
                buffer[:filled] = buffer[cut:window].copy()
            else:
                n = min(len(chunk) - pos, window - filled)
                if filled + n > len(buffer):  # grow towards one window (short inputs stay small)
                    grown = np.empty(min(window, max(filled + n, 2 * len(buffer))), np.float32)
                    grown[:filled] = buffer[:filled]
                    buffer = grown
                buffer[filled : filled + n] = chunk[pos : pos + n]
                filled += n
                pos += n
        chunk = following
    if filled:
        yield offset, buffer[:filled]
