"""From whisper.cpp's segments and tokens to our :class:`Segment` and :class:`Word` results.

Times are mapped through a caller's function (window offset, VAD joins) so segments and words are
always on the original timeline. With word timestamps, word times get openai-whisper's
corrections (:class:`WordTimer`) and its hallucination check (:func:`drop_hallucinations`).
"""

from __future__ import annotations

import dataclasses
import statistics
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
    native: _core.DecodedSegment,
    opts: TranscribeOptions,
    to_time: TimeMap,
    previous: _core.DecodedSegment | None = None,
    language: str | None = None,
) -> Segment:
    """One result segment, decoded in ``language``, with words when asked for and flags for what
    looks wrong.

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
        words = _words(native, start, end, to_time, first_start, opts)
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
        language=language,
    )


class SegmentBuilder:
    """One whisper.cpp call's segments, decoded in ``language``, built in decoding order.

    Ids count on from ``first_id``; with DTW each first word starts where the previous segment's
    last token ends; with word timestamps the word times are corrected by a :class:`WordTimer`
    that starts from ``last_speech_end`` (the previous call's). Segments reported while decoding
    and those kept afterwards come out the same when each is built by its own builder.
    """

    def __init__(
        self,
        first_id: int,
        opts: TranscribeOptions,
        to_time: TimeMap,
        last_speech_end: float,
        language: str | None = None,
    ) -> None:
        self.first_id = first_id
        self.language = language
        self.opts = opts
        self.to_time = to_time
        self.timer = WordTimer(last_speech_end) if opts.word_timestamps else None
        self.last_speech_end = last_speech_end
        self._previous: _core.DecodedSegment | None = None
        self._count = 0

    def __call__(self, native: _core.DecodedSegment) -> Segment:
        segment = build_segment(
            self.first_id + self._count,
            native,
            self.opts,
            self.to_time,
            self._previous,
            self.language,
        )
        self._previous, self._count = native, self._count + 1
        if self.timer is not None:
            segment = self.timer.tighten(segment)
            self.last_speech_end = self.timer.last_speech_end
        return segment


def flag_repetitions(segments: Sequence[Segment]) -> list[Segment]:
    """Mark runs of identical consecutive segments (a decoding loop) with ``"repetition"``."""
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
    native: _core.DecodedSegment,
    seg_start: float,
    seg_end: float,
    to_time: TimeMap,
    first_start: float,
    opts: TranscribeOptions,
) -> tuple[Word, ...]:
    """Merge tokens into words: a word starts at a token that begins with a space.

    Tokens are joined as bytes before decoding, since a character may span two tokens, so the
    words join back to exactly the segment's text. As openai-whisper merges punctuation, a word
    of ``opts.prepend_punctuations`` alone (" (", ' "') joins the word after it, and punctuation
    of ``opts.append_punctuations`` stays with the word before it; either is text, not time. With
    DTW, each token's time is where the alignment leaves it: a word spans its spoken tokens (the
    alignment often gives a comma the pause after it) and the next word begins where this one's
    last token ends (the first word at ``first_start``); without, whisper.cpp's timestamp-token
    estimates are used.
    """
    groups: list[list[_core.DecodedToken]] = []
    for token in native.tokens:
        if not groups or token.text.startswith(b" "):
            groups.append([token])
        else:
            groups[-1].append(token)
    for i in range(len(groups) - 2, -1, -1):
        if all(_only(t.text, opts.prepend_punctuations) for t in groups[i]):
            groups[i : i + 2] = [groups[i] + groups[i + 1]]
    words = []
    previous_end = min(first_start, seg_end)
    for group in groups:
        text = b"".join(t.text for t in group).decode("utf-8", errors="replace")
        probability = sum(t.probability for t in group) / len(group)
        if group[-1].dtw_time >= 0:
            first, last = 0, len(group) - 1
            while first < last and _only(group[first].text, opts.prepend_punctuations):
                first += 1
            while last > first and _only(group[last].text, opts.append_punctuations):
                last -= 1
            start = to_time(group[first - 1].dtw_time, False) if first else previous_end
            end = to_time(group[last].dtw_time, True)
            after = to_time(group[-1].dtw_time, True)
        else:
            start = to_time(group[0].start, False)
            end = after = to_time(group[-1].end, True)
        start = min(max(start, previous_end, seg_start), seg_end)
        end = min(max(end, start), seg_end)
        words.append(Word(start=start, end=end, word=text, probability=probability))
        previous_end = min(max(after, end), seg_end)
    return tuple(words)


def _only(token_text: bytes, punctuation: str) -> bool:
    """Whether a token is nothing but characters of ``punctuation`` (and a leading space)."""
    text = token_text.decode("utf-8", errors="ignore").lstrip(" ")
    return bool(text) and all(c in punctuation for c in text)


#: Marks that end a sentence (openai-whisper's): a word too long beside one is cut.
SENTENCE_ENDS = ".。!！?？"  # noqa: RUF001


class WordTimer:
    """openai-whisper's corrections to aligned word times, made segment by segment.

    The alignment gives the first word after a pause the whole pause (jfk after 10 s of noise:
    " And" from 0.0 to 10.72 s), and whisper's own segment start is then the pause's start. As
    openai-whisper and faster-whisper do, with ``median`` the median word duration so far (at most
    0.7 s) and ``longest`` twice that: the first word after a pause of over four medians is cut to
    ``longest`` (with the second, if it is too long too); a word too long beside a sentence end is
    cut on the side away from it; and each segment then spans its words, unless whisper's segment
    bound lies over half a second inside a too-long first or last word, which is then cut to it.

    One timer serves one whisper.cpp call (the medians are that call's), ``last_speech_end``
    carries over from the call before. Segments must come in order; :meth:`tighten` gives each
    back corrected, so segments reported while decoding and those returned are the same.
    """

    def __init__(self, last_speech_end: float) -> None:
        self.last_speech_end = last_speech_end
        self._durations: list[float] = []
        self._previous_word = ""

    def tighten(self, segment: Segment) -> Segment:
        if not segment.words:
            return segment
        spans = [[w.start, w.end] for w in segment.words]
        self._durations += [end - start for start, end in spans if end > start]
        if not self._durations:
            self.last_speech_end = segment.end
            return segment
        median = min(0.7, statistics.median(self._durations))
        longest = 2 * median
        texts = [self._previous_word] + [w.word.strip() for w in segment.words]
        for i, span in enumerate(spans):
            if span[1] - span[0] > longest:
                if _ends_sentence(texts[i + 1]):
                    span[1] = span[0] + longest
                elif _ends_sentence(texts[i]):
                    span[0] = span[1] - longest
        first, last = spans[0], spans[-1]
        second_too_long = len(spans) > 1 and spans[1][1] - first[0] > 2 * longest
        if first[1] - self.last_speech_end > 4 * median and (
            first[1] - first[0] > longest or second_too_long
        ):
            if len(spans) > 1 and spans[1][1] - spans[1][0] > longest:
                first[1] = spans[1][0] = max(spans[1][1] - longest, first[0])
            first[0] = max(first[1] - longest, first[0])
        # whisper's own bounds, where they cut into a long first or last word; else the words'.
        if first[0] + 0.5 < segment.start < first[1]:
            first[0] = max(first[0], min(first[1] - median, segment.start))
        if last[0] < segment.end < last[1] - 0.5:
            last[1] = min(last[1], max(last[0] + median, segment.end))
        start, end = first[0], last[1]
        words = tuple(
            dataclasses.replace(w, start=a, end=b)
            for w, (a, b) in zip(segment.words, spans, strict=True)
        )
        self.last_speech_end = end
        self._previous_word = texts[-1]
        return dataclasses.replace(segment, start=start, end=end, words=words)


def _ends_sentence(word: str) -> bool:
    return bool(word) and word[-1] in SENTENCE_ENDS


#: openai-whisper's punctuation (its default prepend and append sets): words of these alone do
#: not count in a segment's anomaly score.
PUNCTUATION = TranscribeOptions.prepend_punctuations + TranscribeOptions.append_punctuations


def is_anomalous(segment: Segment | None) -> bool:
    """Whether a segment's words look like a hallucination, by openai-whisper's score.

    Of its first eight words that are not punctuation alone, each scores 1 if its probability is
    below 0.15, 15 per second it falls short of 0.133 s, and 1 per second it runs over 2 s; the
    segment is suspect when the score reaches 3 or the number of those words.

    >>> is_anomalous(None)
    False
    """
    if segment is None or not segment.words:
        return False
    words = [w for w in segment.words if w.word.strip(" " + PUNCTUATION)][:8]
    score = sum(_word_anomaly(w) for w in words)
    return score >= 3 or score + 0.01 >= len(words)


def drop_hallucinations(
    segments: Sequence[Segment],
    threshold: float,
    last_speech_end: float,
    window: tuple[float, float],
) -> list[Segment]:
    """The segments of one whisper.cpp call without those that look like hallucinations
    (:func:`is_anomalous`) and have silence of over ``threshold`` seconds on both sides.

    As openai-whisper's ``hallucination_silence_threshold``: before a segment is silence when the
    last kept speech (``last_speech_end`` at first) ended over ``threshold`` earlier, or the
    segment is within ``threshold`` of the audio's start or 2 s of the window's (``window``: its
    start and end); after it, when the next segment with words starts over ``threshold`` later or
    is suspect too, or the window ends within 2 s. openai-whisper then decodes the audio after
    the dropped segment again; whisper.cpp has decoded it already, so the later segments stay.
    Segments without words are kept.
    """
    start, end = window
    kept: list[Segment] = []
    for i, segment in enumerate(segments):
        if segment.words and is_anomalous(segment):
            following = next((s for s in segments[i + 1 :] if s.words), None)
            next_start = following.words[0].start if following and following.words else end
            silence_before = (
                segment.start - last_speech_end > threshold
                or segment.start < threshold
                or segment.start - start < 2.0
            )
            silence_after = (
                next_start - segment.end > threshold
                or is_anomalous(following)
                or end - segment.end < 2.0
            )
            if silence_before and silence_after:
                continue
        kept.append(segment)
        last_speech_end = segment.end
    return kept


def _word_anomaly(word: Word) -> float:
    duration = word.end - word.start
    score = 1.0 if word.probability < 0.15 else 0.0
    if duration < 0.133:
        score += (0.133 - duration) * 15
    if duration > 2.0:
        score += duration - 2.0
    return score
