"""txt, srt, vtt, tsv and json from a real transcription, read back with real parsers."""

from __future__ import annotations

import csv
import json
import os
import re
import resource
import signal
from dataclasses import replace
from pathlib import Path

import pytest
import srt
import webvtt

from dattavani import DattavaniError, OptionsError, Transcriber, TranscriptionResult
from dattavani.errors import OutputExistsError
from dattavani.testing import JFK_WORDS, words
from dattavani.writers import (
    WRITERS,
    expand_formats,
    format_timestamp,
    get_writer,
    whisper_json,
    write_result,
)

# openai-whisper's transcribe() result: these keys and no others.
WHISPER_RESULT_KEYS = {"text", "segments", "language"}
WHISPER_SEGMENT_KEYS = {
    "id",
    "seek",
    "start",
    "end",
    "text",
    "tokens",
    "temperature",
    "avg_logprob",
    "compression_ratio",
    "no_speech_prob",
}
WHISPER_WORD_KEYS = {"word", "start", "end", "probability"}


@pytest.fixture(scope="module")
def with_words(tiny_en_ggml: Path, jfk_audio: Path) -> TranscriptionResult:
    result = Transcriber(tiny_en_ggml, threads=2).transcribe(jfk_audio, word_timestamps=True)
    assert words(result.text) == JFK_WORDS
    assert all(s.words for s in result.segments)
    return result


@pytest.fixture(scope="module")
def without_words(with_words: TranscriptionResult) -> TranscriptionResult:
    """The same transcription as a caller without word timestamps gets it."""
    return replace(with_words, segments=tuple(replace(s, words=None) for s in with_words.segments))


def shifted(result: TranscriptionResult, seconds: float) -> TranscriptionResult:
    """``result`` moved later in time, as if it were from deep inside a long recording."""
    segments = []
    for segment in result.segments:
        moved = None
        if segment.words is not None:
            moved = tuple(
                replace(w, start=w.start + seconds, end=w.end + seconds) for w in segment.words
            )
        segments.append(
            replace(segment, start=segment.start + seconds, end=segment.end + seconds, words=moved)
        )
    return replace(result, segments=tuple(segments))


def all_words(result: TranscriptionResult) -> list:
    return [w for s in result.segments for w in s.words or ()]


def test_timestamps_are_formatted_as_openai_whisper_does() -> None:
    assert format_timestamp(0.0) == "00:00.000"
    assert format_timestamp(1.0, always_include_hours=True, decimal_marker=",") == "00:00:01,000"
    assert format_timestamp(61.5) == "01:01.500"
    assert format_timestamp(3725.25) == "01:02:05.250"
    assert format_timestamp(59.9996) == "01:00.000"
    assert format_timestamp(0.0004, True, ",") == "00:00:00,000"
    assert format_timestamp(36000.0, True, ",") == "10:00:00,000"
    with pytest.raises(ValueError, match="negative"):
        format_timestamp(-0.5)


def test_all_writes_every_format_atomically(with_words, tmp_path: Path) -> None:
    paths = write_result(with_words, "/recordings/jfk.flac", tmp_path, "all")
    assert [p.name for p in paths] == ["jfk.txt", "jfk.vtt", "jfk.srt", "jfk.tsv", "jfk.json"]
    assert sorted(os.listdir(tmp_path)) == sorted(p.name for p in paths)  # no temporaries left
    umask = os.umask(0)
    os.umask(umask)
    assert all((p.stat().st_mode & 0o777) == 0o666 & ~umask for p in paths)


def test_txt_and_tsv(with_words, tmp_path: Path) -> None:
    txt, tsv = write_result(with_words, "jfk", tmp_path, ("txt", "tsv"))
    lines = txt.read_text(encoding="utf-8").splitlines()
    assert lines == [s.text.strip() for s in with_words.segments]
    with open(tsv, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle, delimiter="\t"))
    assert rows[0] == ["start", "end", "text"]
    assert rows[1:] == [
        [str(round(s.start * 1000)), str(round(s.end * 1000)), s.text.strip()]
        for s in with_words.segments
    ]


def test_json_has_openai_whisper_fields_and_round_trips(with_words, tmp_path: Path) -> None:
    (path,) = write_result(with_words, "jfk.flac", tmp_path, "json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data == whisper_json(with_words)
    assert set(data) == WHISPER_RESULT_KEYS
    assert data["text"] == with_words.text and data["language"] == "en"
    assert words(data["text"]) == JFK_WORDS
    assert len(data["segments"]) == len(with_words.segments)
    for written, segment in zip(data["segments"], with_words.segments, strict=True):
        assert set(written) == WHISPER_SEGMENT_KEYS | {"words"}
        assert (written["id"], written["start"], written["end"], written["text"]) == (
            segment.id,
            segment.start,
            segment.end,
            segment.text,
        )
        assert written["tokens"] == list(segment.tokens)
        assert written["seek"] == int(segment.start * 100)
        assert written["temperature"] == 0.0  # the first of the default schedule
        assert written["avg_logprob"] == segment.avg_logprob
        assert written["no_speech_prob"] == segment.no_speech_prob
        assert written["compression_ratio"] == segment.compression_ratio
        assert [set(w) for w in written["words"]] == [WHISPER_WORD_KEYS] * len(segment.words)
        assert [(w["word"], w["start"], w["end"], w["probability"]) for w in written["words"]] == [
            (w.word, w.start, w.end, w.probability) for w in segment.words
        ]


def test_json_without_words_has_no_words_key(without_words) -> None:
    data = whisper_json(without_words)
    assert all(set(s) == WHISPER_SEGMENT_KEYS for s in data["segments"])


def read_srt(path: Path) -> list[tuple[float, float, str]]:
    with open(path, encoding="utf-8") as handle:
        return [
            (cue.start.total_seconds(), cue.end.total_seconds(), cue.content)
            for cue in srt.parse(handle.read())
        ]


def vtt_cues(path: Path) -> list[tuple[float, float, str]]:
    """(start, end, text with its tags) of every cue, as webvtt-py parses them."""
    return [
        (_vtt_seconds(c.start), _vtt_seconds(c.end), c.raw_text) for c in webvtt.read(str(path))
    ]


def _vtt_seconds(timestamp: str) -> float:
    *hours, minutes, seconds = timestamp.split(":")
    return int(hours[0] if hours else 0) * 3600 + int(minutes) * 60 + float(seconds)


@pytest.mark.parametrize("reader", ["srt", "vtt"])
def test_subtitles_without_words_follow_segments(without_words, tmp_path: Path, reader) -> None:
    (path,) = write_result(without_words, "jfk", tmp_path, reader)
    cues = read_srt(path) if reader == "srt" else vtt_cues(path)
    expected = [
        (round(s.start, 3), round(s.end, 3), s.text.strip()) for s in without_words.segments
    ]
    assert [(round(a, 3), round(b, 3), t) for a, b, t in cues] == expected


@pytest.mark.parametrize("reader", ["srt", "vtt"])
def test_subtitles_with_words_span_the_words(with_words, tmp_path: Path, reader) -> None:
    (path,) = write_result(with_words, "jfk", tmp_path, reader)
    cues = read_srt(path) if reader == "srt" else vtt_cues(path)
    expected = [
        (round(s.words[0].start, 3), round(s.words[-1].end, 3), s.text.strip())
        for s in with_words.segments
    ]
    assert [(round(a, 3), round(b, 3), t) for a, b, t in cues] == expected


@pytest.mark.parametrize("reader", ["srt", "vtt"])
def test_hours_in_long_recordings(with_words, tmp_path: Path, reader) -> None:
    late = shifted(with_words, 3725.0)
    (path,) = write_result(late, "late", tmp_path, reader)
    text = path.read_text(encoding="utf-8")
    first = late.segments[0].words[0].start
    assert format_timestamp(first, reader == "srt", "," if reader == "srt" else ".") in text
    assert text.count("01:0") == 2 * text.count(" --> ")  # every time shows its hour
    cues = read_srt(path) if reader == "srt" else vtt_cues(path)
    assert cues[0][0] == pytest.approx(first, abs=0.0005)
    assert cues[-1][1] == pytest.approx(late.segments[-1].words[-1].end, abs=0.0005)


@pytest.mark.parametrize(("width", "count"), [(20, 2), (42, 1), (30, None)])
def test_line_width_and_count(with_words, tmp_path: Path, width, count) -> None:
    (path,) = write_result(
        with_words, "jfk", tmp_path, "srt", max_line_width=width, max_line_count=count
    )
    cues = read_srt(path)
    longest_word = max(len(w.word.strip()) for w in all_words(with_words))
    for _, _, content in cues:
        lines = content.split("\n")
        if count is not None:
            assert len(lines) <= count
        assert all(len(line) <= max(width, longest_word) for line in lines)
    assert words(" ".join(c for _, _, c in cues)) == JFK_WORDS
    starts = [w.start for w in all_words(with_words)]
    ends = [w.end for w in all_words(with_words)]
    for start, end, _ in cues:  # every cue starts at a word's start and ends at a word's end
        assert any(abs(start - s) < 0.0005 for s in starts)
        assert any(abs(end - e) < 0.0005 for e in ends)
    if count is None:  # segments are kept: no cue crosses a segment boundary
        assert len(cues) >= len(with_words.segments)
    else:
        assert len(cues) > len(with_words.segments)


def test_max_words_per_line(with_words, tmp_path: Path) -> None:
    (path,) = write_result(with_words, "jfk", tmp_path, "vtt", max_words_per_line=3)
    cues = vtt_cues(path)
    assert all(len(text.split()) <= 3 for _, _, text in cues)
    assert words(" ".join(t for _, _, t in cues)) == JFK_WORDS


def test_highlight_words_underlines_each_word_in_turn(with_words, tmp_path: Path) -> None:
    (path,) = write_result(with_words, "jfk", tmp_path, "vtt", highlight_words=True)
    cues = vtt_cues(path)
    underlined = [re.findall(r"<u>(.*?)</u>", text) for _, _, text in cues]
    assert all(len(u) <= 1 for u in underlined)
    highlighted = [u[0] for u in underlined if u]
    assert highlighted == [w.word.strip() for w in all_words(with_words)]
    assert all(start <= end for start, end, _ in cues)
    assert not any(re.search(r"<u>\s", text) for _, _, text in cues)  # spaces stay outside
    starts = [c[0] for c in cues]
    assert starts == sorted(starts)


def test_arrows_in_text_cannot_end_a_cue(without_words, tmp_path: Path) -> None:
    segment = replace(without_words.segments[0], text=" left --> right")
    result = replace(without_words, segments=(segment,))
    (path,) = write_result(result, "arrows", tmp_path, "srt")
    assert read_srt(path)[0][2] == "left -> right"


def test_no_overwrite_unless_asked(with_words, without_words, tmp_path: Path) -> None:
    (txt,) = write_result(with_words, "jfk.wav", tmp_path, "txt")
    txt.write_text("notes the user typed\n", encoding="utf-8")
    with pytest.raises(OutputExistsError, match=re.escape(str(txt))) as error:
        write_result(with_words, "jfk.wav", tmp_path, ("srt", "txt"))
    assert isinstance(error.value, FileExistsError)
    assert txt.read_text(encoding="utf-8") == "notes the user typed\n"
    assert sorted(os.listdir(tmp_path)) == ["jfk.txt"]  # not even the srt that was free
    write_result(without_words, "jfk.wav", tmp_path, ("srt", "txt"), overwrite=True)
    assert txt.read_text(encoding="utf-8").splitlines()[0] == with_words.segments[0].text.strip()
    assert sorted(os.listdir(tmp_path)) == ["jfk.srt", "jfk.txt"]


def test_no_partial_files_when_writing_fails(with_words, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    # A file-size limit makes the first file larger than it fail part-way, as a full disk would;
    # it binds root too. SIGXFSZ is ignored so the write fails with EFBIG instead of killing us.
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (200, hard))
    try:
        with pytest.raises(DattavaniError, match=r"jfk\.(vtt|srt|json): cannot write: File too"):
            write_result(with_words, "jfk", out, "all")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert os.listdir(out) == []


def test_output_folder_that_cannot_be_made(with_words, tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(DattavaniError, match="cannot create the output folder") as error:
        write_result(with_words, "jfk", blocker / "subs", "srt")
    assert str(blocker / "subs") in str(error.value)
    created = write_result(with_words, "jfk", tmp_path / "new" / "subs", "srt")
    assert created == [tmp_path / "new" / "subs" / "jfk.srt"]


def test_formats_and_options_are_checked(with_words, tmp_path: Path) -> None:
    assert expand_formats("all") == list(WRITERS) == ["txt", "vtt", "srt", "tsv", "json"]
    assert expand_formats(["srt", "all", "srt"]) == ["srt", "txt", "vtt", "tsv", "json"]
    with pytest.raises(OptionsError, match="unknown output format 'docx'"):
        write_result(with_words, "jfk", tmp_path, ("txt", "docx"))
    with pytest.raises(OptionsError, match="no output format"):
        write_result(with_words, "jfk", tmp_path, ())
    with pytest.raises(OptionsError, match="max_line_width=0"):
        get_writer("srt", max_line_width=0)
    with pytest.raises(OptionsError, match="max_line_count"):
        write_result(with_words, "jfk", tmp_path, "vtt", max_line_count=-2)
    with pytest.raises(OptionsError, match="no file name"):
        write_result(with_words, "/recordings/", tmp_path, "txt")
    assert os.listdir(tmp_path) == []


def test_line_options_without_words_warn_and_keep_segments(
    without_words, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level("WARNING", logger="dattavani.writers"):
        text = get_writer("srt", max_line_width=10, max_line_count=1).to_string(without_words)
    assert "need word timestamps" in caplog.text
    assert text.count(" --> ") == len(without_words.segments)
