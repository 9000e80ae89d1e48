"""Long audio in bounded memory: cut the 16 kHz stream into windows of a few minutes at silences.

whisper.cpp holds a whole call's audio and its mel spectrogram in memory, so a two-hour file is fed
to it window by window. Each window ends at the quietest moment near its nominal end, so no word
is cut in two; the remainder starts the next window, so no audio is lost or doubled.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16000
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
    in their final ``search_seconds``. Memory holds one window plus one chunk; a single chunk
    shorter than a window passes through without a copy.
    """
    window = max(int(window_seconds * SAMPLE_RATE), FRAME)
    search = min(int(search_seconds * SAMPLE_RATE), window // 2)
    pending: list[Samples] = []
    pending_len = 0
    offset = 0
    for chunk in chunks:
        pending.append(chunk)
        pending_len += len(chunk)
        while pending_len > window:
            buffer = pending[0] if len(pending) == 1 else np.concatenate(pending)
            cut = quietest_point(buffer, window - search, window)
            yield offset, buffer[:cut]
            offset += cut
            # Copy the short remainder so this window's buffer is freed once its caller is done
            # with it, rather than living on (as a view's base) beside the next one.
            pending = [buffer[cut:].copy()]
            pending_len = len(pending[0])
            del buffer
    if pending_len:
        yield offset, pending[0] if len(pending) == 1 else np.concatenate(pending)
