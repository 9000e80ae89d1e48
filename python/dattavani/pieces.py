"""What one whisper.cpp call decodes: a piece of the input and the map back to its timeline.

Sequential transcription decodes each window of a few minutes in one call (:meth:`Piece.of`),
its speech joined when VAD is on. Batched transcription (faster-whisper's
``BatchedInferencePipeline``) packs the speech of a window into chunks of at most 30 s
(:func:`chunk_pieces`), each decoded on its own, several at once. Either way every time a call
reports is mapped back to the original input by :meth:`Piece.to_time`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .audio import SAMPLE_RATE
from .vad import SpeechMap, VadOptions, speech_spans
from .windows import cut_windows

Samples = npt.NDArray[np.float32]

#: The audio whisper decodes at once: a batched chunk holds at most this much speech.
CHUNK_SECONDS = 30.0
#: Shorter speech is nothing whisper could decode.
MIN_SPEECH = SAMPLE_RATE // 10


@dataclass(frozen=True)
class Piece:
    """``speech`` to decode, and where it lies in the input.

    ``offset`` is the input time of the window the speech was taken from, ``speech_map`` (with
    VAD) maps the speech's timeline into that window, and ``start``/``end`` bound the stretch of
    the input the piece covers: no time a call reports is put past ``end``.
    """

    offset: float
    speech: Samples
    start: float
    end: float
    speech_map: SpeechMap | None = None

    @classmethod
    def of(cls, offset: float, samples: Samples, vad: VadOptions | None) -> Piece | None:
        """The whole window at ``offset``, its speech only when ``vad`` is given; None when it
        holds nothing to decode.

        >>> piece = Piece.of(2.0, np.zeros(16000, np.float32), None)
        >>> piece.span, piece.to_time(0.5, True)
        ((2.0, 3.0), 2.5)
        """
        speech_map = None
        speech = samples
        if vad is not None:
            speech_map = SpeechMap(samples, speech_spans(samples, vad))
            speech = speech_map.samples
        if len(speech) < MIN_SPEECH:
            return None
        return cls(offset, speech, offset, offset + len(samples) / SAMPLE_RATE, speech_map)

    @property
    def span(self) -> tuple[float, float]:
        return self.start, self.end

    @property
    def length(self) -> float:
        return self.end - self.start

    def to_time(self, t: float, is_end: bool) -> float:
        """Input time of time ``t`` in the decoded speech (whisper.cpp may end the last segment
        past the audio it was given: clamped to the piece)."""
        inner = self.speech_map.to_original(t, is_end=is_end) if self.speech_map else t
        return min(self.offset + inner, self.end)


def pack_spans(
    spans: list[tuple[float, float]], max_seconds: float = CHUNK_SECONDS
) -> list[list[tuple[float, float]]]:
    """Consecutive speech spans grouped so that each group's speech adds up to at most
    ``max_seconds`` (a longer span makes a group of its own), as faster-whisper packs them.

    >>> pack_spans([(0, 10), (12, 25), (26, 31), (40, 80), (81, 82)], 30)
    [[(0, 10), (12, 25), (26, 31)], [(40, 80)], [(81, 82)]]
    """
    groups: list[list[tuple[float, float]]] = []
    total = 0.0
    for start, end in spans:
        if groups and total + (end - start) <= max_seconds:
            groups[-1].append((start, end))
            total += end - start
        else:
            groups.append([(start, end)])
            total = end - start
    return groups


def chunk_pieces(offset: float, samples: Samples, vad: VadOptions | None) -> Iterator[Piece]:
    """The window at ``offset`` as chunks of at most :data:`CHUNK_SECONDS` each, in order.

    With ``vad``, the speech it finds is packed into chunks (silence between spans removed,
    mapped back by each piece); without, the window is cut at its quietest moments. The chunks'
    samples are copies: they outlive the window, which the caller may reuse.
    """
    if vad is None:
        for start, chunk in cut_windows([samples], CHUNK_SECONDS, search_seconds=5.0):
            if len(chunk) >= MIN_SPEECH:
                begin = offset + start / SAMPLE_RATE
                yield Piece(begin, chunk.copy(), begin, begin + len(chunk) / SAMPLE_RATE)
        return
    for group in pack_spans(speech_spans(samples, vad)):
        speech_map = SpeechMap(samples, group)
        if len(speech_map.samples) >= MIN_SPEECH:
            end = offset + min(group[-1][1], len(samples) / SAMPLE_RATE)
            yield Piece(offset, speech_map.samples, offset + group[0][0], end, speech_map)
