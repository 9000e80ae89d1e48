"""Word-time corrections (dattavani.segments.WordTimer) on segments made by hand.

The end-to-end case, noise before jfk against faster-whisper, is in tests/test_transcribe.py.
"""

from __future__ import annotations

from types import SimpleNamespace

from dattavani.options import TranscribeOptions
from dattavani.results import Segment, Word
from dattavani.segments import WordTimer, build_segment, drop_hallucinations, is_anomalous


def segment(
    start: float, end: float, *words: tuple[str, float, float], probability: float = 0.9
) -> Segment:
    return Segment(
        id=0,
        start=start,
        end=end,
        text="".join(w for w, _, _ in words),
        tokens=(),
        avg_logprob=0.0,
        no_speech_prob=0.0,
        compression_ratio=1.0,
        words=tuple(Word(start=a, end=b, word=w, probability=probability) for w, a, b in words),
    )


def spans(s: Segment) -> list[tuple[float, float]]:
    return [(round(w.start, 3), round(w.end, 3)) for w in s.words or ()]


def test_the_first_word_after_a_pause_is_cut_to_twice_the_median() -> None:
    # Durations 8.0, 0.3, 0.4, 0.3, 0.3: median 0.3, so " And" keeps its last 0.6 s.
    before = segment(
        0.0,
        9.3,
        (" And", 0.0, 8.0),
        (" so", 8.0, 8.3),
        (" my", 8.3, 8.7),
        (" fellow", 8.7, 9.0),
        (" Americans", 9.0, 9.3),
    )
    after = WordTimer(last_speech_end=0.0).tighten(before)
    assert spans(after)[0] == (7.4, 8.0)
    assert spans(after)[1:] == spans(before)[1:]
    assert (round(after.start, 3), after.end) == (7.4, 9.3)  # the segment spans its words


def test_no_cut_after_speech_that_just_ended() -> None:
    # The same words right after other speech (7.9 s): not a pause, nothing moves.
    before = segment(7.5, 9.0, (" And", 7.5, 8.0), (" so", 8.0, 8.3), (" my", 8.3, 9.0))
    after = WordTimer(last_speech_end=7.4).tighten(before)
    assert spans(after) == spans(before) and (after.start, after.end) == (7.5, 9.0)


def test_a_long_word_beside_a_sentence_end_is_cut_away_from_it() -> None:
    # Median 0.3 s, longest 0.6 s. " you." holds the pause after it; " Ask" the pause before it.
    before = segment(
        1.0,
        6.8,
        (" for", 1.0, 1.3),
        (" you.", 1.3, 3.3),
        (" Ask", 3.3, 5.0),
        (" what", 5.0, 5.3),
        (" you", 5.3, 5.6),
        (" can", 5.6, 5.9),
        (" do", 5.9, 6.2),
        (" now", 6.2, 6.5),
        (" too", 6.5, 6.8),
    )
    after = WordTimer(last_speech_end=0.9).tighten(before)
    assert spans(after)[1] == (1.3, 1.9)
    assert spans(after)[2] == (4.4, 5.0)


def test_whisper_bounds_inside_long_edge_words_cut_them() -> None:
    # Median 0.6 s, no pause before. whisper's segment is 2.0..5.0; its first word starts 1.5 s
    # before that and its last ends 2 s after: the first is cut to its last median (1.8), the
    # last to whisper's end.
    before = segment(
        2.0,
        5.0,
        (" one", 0.5, 2.4),
        (" two", 2.4, 3.0),
        (" three", 3.0, 3.6),
        (" four", 3.6, 4.2),
        (" five", 4.2, 7.0),
    )
    after = WordTimer(last_speech_end=0.4).tighten(before)
    assert spans(after)[0] == (1.8, 2.4) and spans(after)[-1] == (4.2, 5.0)
    assert spans(after)[1:-1] == spans(before)[1:-1]
    assert (round(after.start, 3), after.end) == (1.8, 5.0)


def test_the_pause_is_judged_from_the_last_word_of_the_segment_before() -> None:
    timer = WordTimer(last_speech_end=0.0)
    timer.tighten(segment(0.0, 1.0, (" a", 0.0, 0.3), (" b", 0.3, 0.6), (" c", 0.6, 1.0)))
    assert timer.last_speech_end == 1.0
    later = timer.tighten(segment(1.0, 6.3, (" d", 1.0, 6.0), (" e", 6.0, 6.3)))
    assert spans(later)[0] == (5.4, 6.0) and later.start == 5.4


def test_a_segment_without_words_is_left_as_it_is() -> None:
    empty = segment(1.0, 2.0)
    assert WordTimer(last_speech_end=0.0).tighten(empty) == empty


SPEECH = segment(1.0, 2.0, (" Ask", 1.0, 1.3), (" not", 1.3, 1.6), (" now.", 1.6, 2.0))
# Words lasting no time, as the alignment leaves a hallucination's words over noise.
SUSPECT = segment(20.0, 20.6, (" Thank", 20.0, 20.6), (" you.", 20.6, 20.6))


def test_the_anomaly_score() -> None:
    assert not is_anomalous(SPEECH)
    assert is_anomalous(SUSPECT)  # " you." scores 2.0 for lasting 0 s: 2 of 2 words
    unsure = segment(
        5.0, 6.2, (" a", 5.0, 5.4), (" b", 5.4, 5.8), (" c", 5.8, 6.2), probability=0.1
    )
    assert is_anomalous(unsure)  # each word below 0.15
    long = segment(5.0, 10.0, (" a", 5.0, 10.0))
    assert is_anomalous(long)  # 3 s over 2 s
    punctuated = segment(1.0, 2.3, (" Ask", 1.0, 1.3), (" -", 1.3, 1.3), (" now.", 1.3, 2.3))
    assert not is_anomalous(punctuated)  # punctuation alone does not count


def test_a_suspect_segment_between_silences_is_dropped() -> None:
    kept = drop_hallucinations([SPEECH, SUSPECT], 2.0, last_speech_end=0.0, window=(0.0, 30.0))
    assert kept == [SPEECH]


def test_a_suspect_segment_next_to_speech_is_kept() -> None:
    # Speech right before it (0.5 s): no silence before, so it stays, as in openai-whisper.
    near = segment(2.5, 3.1, (" Thank", 2.5, 3.1), (" you.", 3.1, 3.1))
    later = segment(30.0, 31.0, (" Ask", 30.0, 30.3), (" not", 30.3, 30.6), (" now", 30.6, 31.0))
    segments = [SPEECH, near, later]
    assert drop_hallucinations(segments, 2.0, last_speech_end=0.0, window=(0.0, 40.0)) == segments
    # With speech right after it instead (0.4 s), likewise.
    after = segment(21.0, 22.0, (" Ask", 21.0, 21.3), (" not", 21.3, 21.6), (" now", 21.6, 22.0))
    early = segment(19.0, 19.6, (" Thank", 19.0, 19.6), (" you.", 19.6, 19.6))
    segments = [SPEECH, early, after]
    assert drop_hallucinations(segments, 2.0, last_speech_end=0.0, window=(0.0, 40.0)) == segments


def token(text: bytes, dtw_time: float) -> SimpleNamespace:
    """A decoded token as the native layer gives it, with its DTW time."""
    return SimpleNamespace(id=0, text=text, dtw_time=dtw_time, probability=0.9, start=0.0, end=0.0)


def words_of(tokens: list[SimpleNamespace], **options: object) -> list[tuple[str, float, float]]:
    native = SimpleNamespace(
        start=1.0,
        end=tokens[-1].dtw_time,
        text=b"".join(t.text for t in tokens).decode(),
        tokens=tokens,
        avg_logprob=-0.1,
        no_speech_prob=0.0,
    )
    opts = TranscribeOptions(word_timestamps=True, **options)  # type: ignore[arg-type]
    built = build_segment(0, native, opts, lambda t, _: t)
    return [(w.word, w.start, w.end) for w in built.words or ()]


# Tokens and DTW times as base gave them for jfk: the comma holds the pause after " Americans".
AMERICANS = [
    token(b" fellow", 1.58),
    token(b" Americans", 2.3),
    token(b",", 3.18),
    token(b" ask", 4.2),
]


def test_punctuation_after_a_word_is_text_not_time() -> None:
    # " Americans," ends at 2.3, where the word does; " ask" begins at 3.18.
    assert words_of(AMERICANS) == [
        (" fellow", 1.0, 1.58),
        (" Americans,", 1.58, 2.3),
        (" ask", 3.18, 4.2),
    ]
    # Without "," among the append punctuation, the comma is timed with its word.
    assert words_of(AMERICANS, append_punctuations=".")[1] == (" Americans,", 1.58, 3.18)


def test_punctuation_before_a_word_joins_it() -> None:
    # ' "' is a word of its own by the spaces; openai-whisper merges it into the word after.
    quoted = [token(b" said", 1.5), token(b' "', 1.9), token(b" ask", 2.4), token(b'"', 2.6)]
    assert words_of(quoted) == [(" said", 1.0, 1.5), (' " ask"', 1.9, 2.4)]
    assert words_of(quoted, prepend_punctuations="")[1] == (' "', 1.5, 1.9)
