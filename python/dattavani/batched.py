"""Batched long-form transcription, as faster-whisper's ``BatchedInferencePipeline``.

Speech found by VAD is packed into chunks of at most 30 s (:func:`~dattavani.pieces.chunk_pieces`),
each chunk is decoded on its own (no conditioning on earlier text, by default without timestamp
tokens: a segment per chunk, timed by the chunk), and several chunks are decoded at once, each on
a decoder state of the model's pool with the threads shared out among them. Results are put back
in input order on the original timeline, and reported (``on_segment``, ``on_progress``) in that
order. The input streams through window by window, so memory holds one window and the chunks in
flight whatever the input's length.

Why states in parallel rather than one batched graph: on the CPU the encoder's matrix products
are as large with one window as with eight, so batching them gains little, while decoding (one
token at a time, small products) scales badly over threads that meet at a barrier after every
node; one thread per chunk removes those waits (``bench/batched.py``, ``docs/performance.md``).

>>> from dattavani import Transcriber
>>> Transcriber("base").transcribe("podcast.mp3", batch_size=8).text   # doctest: +SKIP

:class:`~dattavani.BatchedInferencePipeline` takes faster-whisper's call for code moving over.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from .audio import SAMPLE_RATE
from .pieces import CHUNK_SECONDS, Piece, chunk_pieces
from .vad import VadOptions

if TYPE_CHECKING:
    from . import _core

#: A chunk's decoding under way: its language and whisper.cpp's result.
Decoding = concurrent.futures.Future[tuple[str, "_core.FullResult"]]


class ChunkRun(Protocol):
    """What batched decoding needs of a transcription (the Transcriber's run of one input)."""

    #: The threads of the whole call.
    threads: int

    def ensure_language(self, speech: np.ndarray) -> None:
        """Settle the call's language on ``speech`` where it is not known yet."""

    def decode_chunk(
        self, piece: Piece, threads: int, *, first: bool
    ) -> tuple[str, _core.FullResult]:
        """Decode one chunk on ``threads`` threads (any thread may call it)."""

    def take_in_chunk(self, piece: Piece, language: str, native: _core.FullResult) -> None:
        """Add a decoded chunk's segments, in input order (the calling thread's only)."""


#: faster-whisper's default batch size.
DEFAULT_BATCH_SIZE = 8


def batched_vad_options(vad_parameters: VadOptions | Mapping[str, Any] | None) -> VadOptions:
    """faster-whisper's VAD settings in batched mode: pauses of 160 ms end a span, and no span is
    longer than a chunk (whatever ``max_speech_duration_s`` was given).

    >>> batched_vad_options({"threshold": 0.4}).max_speech_duration_s
    30.0
    """
    given = (
        VadOptions(min_silence_duration_ms=160)
        if vad_parameters is None
        else VadOptions.of(vad_parameters)
    )
    return dataclasses.replace(given, max_speech_duration_s=CHUNK_SECONDS)


def concurrency(batch_size: int, workers: int, threads: int, use_gpu: bool) -> tuple[int, int]:
    """How many chunks decode at once, and the threads each gets.

    On the CPU no more chunks run than there are threads to give them, one thread at least each:
    more would only take turns on the same cores with a state each to hold in memory. A GPU
    overlaps the chunks' work, so there up to ``batch_size`` run (bounded by the state pool).

    >>> concurrency(8, 4, 2, use_gpu=False), concurrency(8, 4, 8, use_gpu=False)
    ((2, 1), (4, 2))
    >>> concurrency(8, 4, 2, use_gpu=True)
    (4, 1)
    """
    at_once = min(batch_size, workers) if use_gpu else min(batch_size, workers, threads)
    return at_once, max(1, threads // at_once)


def run_batched(
    run: ChunkRun,
    windows: Iterable[tuple[int, np.ndarray]],
    vad: VadOptions | None,
    batch_size: int,
    workers: int,
    use_gpu: bool,
) -> float:
    """Decode ``windows`` (``(offset in samples, samples)``) chunk by chunk into ``run``, several
    chunks at once (at most ``workers``: the model's states); the input time covered."""
    at_once, threads = concurrency(batch_size, workers, run.threads, use_gpu)
    covered = 0.0

    def pieces() -> Iterator[tuple[Piece, bool]]:
        """Each chunk, and whether it is the input's last (one chunk is held back to know)."""
        nonlocal covered
        held: Piece | None = None
        for offset, samples in windows:
            start = offset / SAMPLE_RATE
            covered = max(covered, start + len(samples) / SAMPLE_RATE)
            for piece in chunk_pieces(start, samples, vad):
                if held is not None:
                    yield held, False
                held = piece
        if held is not None:
            yield held, True

    in_flight: deque[tuple[Piece, Decoding]] = deque()

    def take_in_oldest() -> None:
        piece, decoding = in_flight.popleft()
        run.take_in_chunk(piece, *decoding.result())

    with concurrent.futures.ThreadPoolExecutor(at_once, thread_name_prefix="dattavani") as pool:
        try:
            for index, (piece, last) in enumerate(pieces()):
                # The call's language is settled before the chunks go out, so that all use it.
                run.ensure_language(piece.speech)
                # batch_size chunks are held at most: the oldest is taken in before more go out.
                while len(in_flight) >= max(batch_size, at_once):
                    take_in_oldest()
                # A chunk decoded alone (a short file's only one) gets all the threads.
                share = run.threads if last and not in_flight else threads
                decoding = pool.submit(run.decode_chunk, piece, share, first=index == 0)
                in_flight.append((piece, decoding))
            while in_flight:
                take_in_oldest()
        finally:
            # On an error or cancel, the calls still queued are dropped; those running finish.
            for _, future in in_flight:
                future.cancel()
    return covered
