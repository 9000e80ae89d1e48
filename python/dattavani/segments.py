"""From whisper.cpp's segments and tokens to our :class:`Segment` and :class:`Word` results.

Times are mapped through a caller's function (window offset, VAD joins) so segments and words are
always on the original timeline.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .options import TranscribeOptions
from .results import Segment, Word

if TYPE_CHECKING:
    from . import _core

#: Maps a time (seconds) of the audio whisper.cpp saw to the original timeline; ``is_end`` picks
#: the earlier side where two stretches of kept audio meet.
TimeMap = Callable[[float, bool], float]


def compression_ratio(text: str) -> float:
    """openai-whisper's repetition measure: text bytes over zlib-compressed bytes.

    >>> round(compression_ratio("la " * 40), 1) > 2.4
    True
    """
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def build_segment(
    index: int,
    native: _core.Segment,
    opts: TranscribeOptions,
    to_time: TimeMap,
    previous: _core.Segment | None = None,
) -> Segment:
    """One result segment, with words when asked for and flags for what looks wrong.

    ``previous`` is the segment decoded just before in the same whisper.cpp call: with DTW, where
    its last token ends is where this segment's first word begins.
    """
    start = to_time(native.start, False)
    end = max(to_time(native.end, True), start)
    text = native.text
    words = None
    if opts.word_timestamps:
        first_start = start
        if previous is not None and previous.tokens and previous.tokens[-1].dtw_time >= 0:
            first_start = max(start, to_time(previous.tokens[-1].dtw_time, False))
        words = _words(native, start, end, to_time, first_start)
    ratio = compression_ratio(text)
    flags = []
    if opts.compression_ratio_threshold is not None and ratio > opts.compression_ratio_threshold:
        flags.append("high_compression_ratio")
    if opts.logprob_threshold is not None and native.avg_logprob < opts.logprob_threshold:
        flags.append("low_logprob")
    return Segment(
        id=index,
        start=start,
        end=end,
        text=text,
        tokens=tuple(t.id for t in native.tokens),
        avg_logprob=float(native.avg_logprob),
        no_speech_prob=float(native.no_speech_prob),
        compression_ratio=ratio,
        words=words,
        flags=tuple(flags),
    )


def flag_repetitions(segments: Sequence[Segment]) -> list[Segment]:
    """Mark runs of identical consecutive segments (a decoding loop) with ``"repetition"``."""
    import dataclasses

    marked = list(segments)
    for i in range(1, len(marked)):
        same = marked[i].text.strip().lower() == marked[i - 1].text.strip().lower()
        if same and marked[i].text.strip():
            for j in (i - 1, i):
                if "repetition" not in marked[j].flags:
                    marked[j] = dataclasses.replace(
                        marked[j], flags=(*marked[j].flags, "repetition")
                    )
    return marked


def _words(
    native: _core.Segment, seg_start: float, seg_end: float, to_time: TimeMap, first_start: float
) -> tuple[Word, ...]:
    """Merge tokens into words: a word starts at a token that begins with a space.

    Tokens are joined as bytes before decoding, since a character may span two tokens, so the
    words join back to exactly the segment's text. With DTW, each token's time is where the
    alignment leaves it (openai-whisper's word boundaries): a word ends there and the next begins
    (the first word at ``first_start``); without, whisper.cpp's timestamp-token estimates are used.
    """
    groups: list[list[_core.Token]] = []
    for token in native.tokens:
        if not groups or token.text.startswith(b" "):
            groups.append([token])
        else:
            groups[-1].append(token)
    words = []
    previous_end = min(first_start, seg_end)
    for group in groups:
        text = b"".join(t.text for t in group).decode("utf-8", errors="replace")
        probability = sum(t.probability for t in group) / len(group)
        if group[-1].dtw_time >= 0:
            start = previous_end
            end = to_time(group[-1].dtw_time, True)
        else:
            start = to_time(group[0].start, False)
            end = to_time(group[-1].end, True)
        start = min(max(start, previous_end, seg_start), seg_end)
        end = min(max(end, start), seg_end)
        words.append(Word(start=start, end=end, word=text, probability=probability))
        previous_end = end
    return tuple(words)
