"""pieces: what one whisper.cpp call decodes, and the map back to the input's timeline."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from dattavani.pieces import CHUNK_SECONDS, Piece, chunk_pieces, pack_spans
from dattavani.vad import VadOptions

SR = 16000


def test_pack_spans_keeps_each_group_within_the_chunk() -> None:
    spans = [(0.0, 10.0), (12.0, 25.0), (26.0, 31.0), (40.0, 80.0), (81.0, 82.0), (83.0, 84.0)]
    groups = pack_spans(spans, 30.0)
    assert [s for g in groups for s in g] == spans  # every span once, in order
    assert groups == [spans[:3], [spans[3]], spans[4:]]
    assert pack_spans([]) == []


def test_a_window_piece_maps_and_clamps_times() -> None:
    piece = Piece.of(60.0, np.zeros(10 * SR, np.float32), None)
    assert piece is not None
    assert piece.span == (60.0, 70.0)
    assert piece.to_time(4.0, False) == 64.0
    assert piece.to_time(10.5, True) == 70.0  # whisper.cpp ended past the audio
    assert Piece.of(0.0, np.zeros(SR // 20, np.float32), None) is None  # too short to decode


def test_chunks_without_vad_cover_the_window_in_order() -> None:
    rng = np.random.default_rng(0)
    samples = rng.normal(0, 0.1, 95 * SR).astype(np.float32)
    samples[27 * SR : 28 * SR] = 0.0  # the quietest second in the first cut's search: cut there
    chunks = list(chunk_pieces(100.0, samples, None))
    assert chunks[0].start == 100.0
    assert chunks[-1].end == pytest.approx(195.0)
    for a, b in itertools.pairwise(chunks):
        assert a.end == pytest.approx(b.start)
    assert all(c.length <= CHUNK_SECONDS for c in chunks)
    assert 127.0 <= chunks[0].end <= 128.0
    samples[:] = 1.0  # the chunks are copies, not views of the window
    assert not np.all(chunks[0].speech == 1.0)


def test_chunks_with_vad_hold_at_most_30_s_of_speech_each(jfk_audio) -> None:
    from dattavani import load_audio

    jfk = load_audio(jfk_audio)
    pause = np.zeros(2 * SR, np.float32)
    window = np.concatenate([jfk, pause] * 5)  # 65 s: 55 s of speech
    chunks = list(chunk_pieces(0.0, window, VadOptions(max_speech_duration_s=30.0)))
    assert len(chunks) >= 2
    assert all(len(c.speech) <= CHUNK_SECONDS * SR for c in chunks)
    assert sum(len(c.speech) for c in chunks) >= 50 * SR
    for a, b in itertools.pairwise(chunks):
        assert a.end <= b.start
    # A time in the joined speech maps back into the window, past the removed pauses.
    last = chunks[-1]
    assert last.start <= last.to_time(1.0, False) <= last.end
