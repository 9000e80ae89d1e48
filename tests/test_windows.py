"""dattavani.windows: long input cut into windows at its quietest moments, without a model."""

from __future__ import annotations

import numpy as np
import pytest

from dattavani.audio import SAMPLE_RATE as SR
from dattavani.windows import cut_windows, quietest_point


def test_quietest_point_is_the_middle_of_the_quietest_frame() -> None:
    x = np.ones(10 * SR, np.float32)
    x[int(4.2 * SR) : int(4.6 * SR)] = 0.0
    cut = quietest_point(x, 2 * SR, 8 * SR)
    assert 4.2 * SR <= cut <= 4.6 * SR
    # Only inside [lo, hi): a quieter moment outside is not taken.
    x[int(9.0 * SR) : int(9.9 * SR)] = 0.0
    assert 4.2 * SR <= quietest_point(x, 2 * SR, 8 * SR) <= 4.6 * SR


def test_short_input_is_one_window() -> None:
    audio = np.ones(20 * SR, np.float32)
    windows = [(o, w.copy()) for o, w in cut_windows([audio], window_seconds=60)]
    assert len(windows) == 1 and windows[0][0] == 0
    np.testing.assert_array_equal(windows[0][1], audio)
    assert list(cut_windows([], window_seconds=60)) == []


def test_cut_windows_cover_the_input_and_cut_at_silence() -> None:
    rng = np.random.default_rng(1)
    noise = rng.standard_normal(100 * SR).astype(np.float32)
    noise[int(52.3 * SR) : int(52.8 * SR)] = 0.0  # the only quiet moment near 60 s
    chunks = [noise[i : i + 7 * SR] for i in range(0, len(noise), 7 * SR)]
    # A window is valid until the next is asked for (the buffer is reused): keep copies.
    windows = [(o, w.copy()) for o, w in cut_windows(chunks, window_seconds=60, search_seconds=10)]
    assert windows[0][0] == 0
    cut = windows[1][0]
    assert 52.3 * SR <= cut <= 52.8 * SR
    joined = np.concatenate([w for _, w in windows])
    np.testing.assert_array_equal(joined, noise)
    assert all(len(w) <= 60 * SR for _, w in windows)


@pytest.mark.parametrize("chunk_seconds", [0.3, 7.0, 30.0, 59.99, 60.0, 61.0, 250.0, 1000.0])
def test_cut_windows_cover_any_chunking_in_one_reused_buffer(chunk_seconds: float) -> None:
    rng = np.random.default_rng(2)
    audio = rng.standard_normal(int(245.5 * SR)).astype(np.float32)
    step = int(chunk_seconds * SR)
    chunks = [audio[i : i + step] for i in range(0, len(audio), step)]
    offsets, copies, bases = [], [], []
    for offset, window in cut_windows(chunks, window_seconds=60, search_seconds=10):
        assert 0 < len(window) <= 60 * SR
        offsets.append(offset)
        copies.append(window.copy())
        bases.append(window.base)  # held, so that no freed buffer's id is reused
    np.testing.assert_array_equal(np.concatenate(copies), audio)
    assert offsets == list(np.cumsum([0] + [len(c) for c in copies[:-1]]))
    if len(chunks) > 1:
        # Streamed input is assembled in one buffer, grown at most a few times, never per window.
        assert len({id(b) for b in bases}) <= 3
