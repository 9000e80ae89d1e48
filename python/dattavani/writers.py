"""Write a transcription as txt, srt, vtt, tsv or json, the way openai-whisper writes them.

The files match openai-whisper's byte for byte in layout: the same timestamp formats, the same
subtitle line breaking (``max_line_width``, ``max_line_count``, ``max_words_per_line``) and word
highlighting (``highlight_words``) when the result has word timestamps, and the same JSON field
names. Files are written atomically and never overwrite an existing file unless asked.

>>> from dattavani.writers import write_result
>>> write_result(result, "talk.mp3", "out", formats=("srt", "vtt"))   # doctest: +SKIP
[PosixPath('out/talk.srt'), PosixPath('out/talk.vtt')]
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TextIO

from dattavani.errors import DattavaniError, OptionsError, OutputExistsError
from dattavani.results import Segment, TranscriptionResult

logger = logging.getLogger(__name__)


def format_timestamp(
    seconds: float, always_include_hours: bool = False, decimal_marker: str = "."
) -> str:
    """``MM:SS.mmm``, with ``HH:`` in front when asked or needed, as openai-whisper formats it.

    >>> format_timestamp(1.0, always_include_hours=True, decimal_marker=",")   # srt
    '00:00:01,000'
    >>> format_timestamp(61.5), format_timestamp(3725.25)                       # vtt
    ('01:01.500', '01:02:05.250')
    """
    if seconds < 0:
        raise ValueError(f"a timestamp cannot be negative: {seconds}")
    milliseconds = round(seconds * 1000.0)
    hours, milliseconds = divmod(milliseconds, 3_600_000)
    minutes, milliseconds = divmod(milliseconds, 60_000)
    whole_seconds, milliseconds = divmod(milliseconds, 1_000)
    hours_marker = f"{hours:02d}:" if always_include_hours or hours > 0 else ""
    return f"{hours_marker}{minutes:02d}:{whole_seconds:02d}{decimal_marker}{milliseconds:03d}"


@dataclass(frozen=True)
class Cue:
    """One subtitle: its time span in seconds and its text (lines joined by ``\\n``)."""

    start: float
    end: float
    text: str


class ResultWriter(ABC):
    """Writes one result in one format to a text stream."""

    extension: ClassVar[str]

    @abstractmethod
    def write(self, result: TranscriptionResult, file: TextIO) -> None:
        """Write ``result`` to ``file``."""

    def to_string(self, result: TranscriptionResult) -> str:
        """What :meth:`write` would write, as a string."""
        buffer = io.StringIO()
        self.write(result, buffer)
        return buffer.getvalue()


class TxtWriter(ResultWriter):
    """Plain text: each segment's text on a line of its own."""

    extension = "txt"

    def write(self, result: TranscriptionResult, file: TextIO) -> None:
        for segment in result.segments:
            file.write(segment.text.strip() + "\n")


class TsvWriter(ResultWriter):
    """``start<TAB>end<TAB>text`` with times in integer milliseconds, after a header line.

    Integer milliseconds read the same in every locale, unlike a decimal comma or point.
    """

    extension = "tsv"

    def write(self, result: TranscriptionResult, file: TextIO) -> None:
        file.write("start\tend\ttext\n")
        for segment in result.segments:
            text = segment.text.strip().replace("\t", " ")
            file.write(f"{round(1000 * segment.start)}\t{round(1000 * segment.end)}\t{text}\n")


class JsonWriter(ResultWriter):
    """openai-whisper's JSON: ``text``, ``segments`` and ``language``, with its field names.

    Each segment has ``id``, ``seek``, ``start``, ``end``, ``text``, ``tokens``, ``temperature``,
    ``avg_logprob``, ``compression_ratio``, ``no_speech_prob`` and, with word timestamps,
    ``words`` (``word``, ``start``, ``end``, ``probability``). whisper.cpp reports neither the
    window a segment was decoded in nor the fallback temperature that decoded it, so ``seek`` is
    the segment's start in 10 ms frames (openai-whisper's unit) and ``temperature`` the first of
    the schedule used. ``TranscriptionResult.to_json()`` keeps everything dattavani knows.
    """

    extension = "json"

    def write(self, result: TranscriptionResult, file: TextIO) -> None:
        json.dump(whisper_json(result), file, ensure_ascii=False)


def whisper_json(result: TranscriptionResult) -> dict[str, Any]:
    """``result`` as openai-whisper's ``transcribe()`` returns it (see :class:`JsonWriter`)."""
    schedule = result.options.get("temperature", 0.0)
    temperature = float(schedule[0] if isinstance(schedule, Sequence) else schedule)
    return {
        "text": result.text,
        "segments": [_whisper_segment(s, temperature) for s in result.segments],
        "language": result.language,
    }


def _whisper_segment(segment: Segment, temperature: float) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": segment.id,
        "seek": int(segment.start * 100),
        "start": segment.start,
        "end": segment.end,
        "text": segment.text,
        "tokens": list(segment.tokens),
        "temperature": temperature,
        "avg_logprob": segment.avg_logprob,
        "compression_ratio": segment.compression_ratio,
        "no_speech_prob": segment.no_speech_prob,
    }
    if segment.words is not None:
        data["words"] = [
            {"word": w.word, "start": w.start, "end": w.end, "probability": w.probability}
            for w in segment.words
        ]
    return data


class SubtitleWriter(ResultWriter):
    """srt and vtt: cues from segments, or from words when the result has word timestamps.

    With words, ``max_line_width`` (characters) wraps lines, ``max_line_count`` (lines) and
    ``max_words_per_line`` split cues, and ``highlight_words`` repeats each cue once per word with
    that word underlined (``<u>word</u>``), exactly as openai-whisper does. Without words these
    options have no effect, as in openai-whisper.
    """

    always_include_hours: ClassVar[bool]
    decimal_marker: ClassVar[str]

    def __init__(
        self,
        *,
        max_line_width: int | None = None,
        max_line_count: int | None = None,
        highlight_words: bool = False,
        max_words_per_line: int | None = None,
    ) -> None:
        for name, value in (
            ("max_line_width", max_line_width),
            ("max_line_count", max_line_count),
            ("max_words_per_line", max_words_per_line),
        ):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise OptionsError(f"{name}={value!r}: expected None or a positive int")
        self.max_line_width = max_line_width
        self.max_line_count = max_line_count
        self.highlight_words = bool(highlight_words)
        self.max_words_per_line = max_words_per_line

    def timestamp(self, seconds: float) -> str:
        return format_timestamp(seconds, self.always_include_hours, self.decimal_marker)

    def cues(self, result: TranscriptionResult) -> Iterator[Cue]:
        """The subtitles this writer writes for ``result``, in order."""
        segments = result.segments
        if not segments or any(s.words is None for s in segments):
            if self._uses_words():
                logger.warning(
                    "max_line_width, max_line_count, max_words_per_line and highlight_words "
                    "need word timestamps; writing one cue per segment"
                )
            for segment in segments:
                yield Cue(segment.start, segment.end, _cue_text(segment.text.strip()))
            return
        for subtitle in self._subtitles(segments):
            text = "".join(word.text for word in subtitle)
            if not self.highlight_words:
                yield Cue(subtitle[0].start, subtitle[-1].end, _cue_text(text))
                continue
            # One cue per word with that word underlined; gaps between words keep the plain text.
            last = subtitle[0].start
            for i, word in enumerate(subtitle):
                if self.timestamp(last) != self.timestamp(word.start):
                    yield Cue(last, word.start, _cue_text(text))
                underlined = "".join(
                    re.sub(r"^(\s*)(.*)$", r"\1<u>\2</u>", w.text, flags=re.DOTALL)
                    if j == i
                    else w.text
                    for j, w in enumerate(subtitle)
                )
                yield Cue(word.start, word.end, _cue_text(underlined))
                last = word.end

    def _uses_words(self) -> bool:
        limits = (self.max_line_width, self.max_line_count, self.max_words_per_line)
        return self.highlight_words or any(limit is not None for limit in limits)

    def _subtitles(self, segments: Sequence[Segment]) -> Iterator[list[_TimedText]]:
        """openai-whisper's ``iterate_subtitles``: words grouped into cues, ``\\n`` between lines.

        Cues follow segments unless both ``max_line_width`` and ``max_line_count`` are set; then
        they fill up to ``max_line_count`` lines and also break at pauses over 3 s.
        """
        preserve_segments = self.max_line_count is None or self.max_line_width is None
        max_line_width = self.max_line_width or 1000
        max_words_per_line = self.max_words_per_line or 1000
        line_len = 0
        line_count = 1
        subtitle: list[_TimedText] = []
        last = next((w.start for s in segments for w in s.words or ()), segments[0].start)
        for segment in segments:
            words = segment.words or ()
            for chunk_start in range(0, len(words), max_words_per_line):
                for i, original in enumerate(words[chunk_start : chunk_start + max_words_per_line]):
                    timing = _TimedText(original.start, original.end, original.word)
                    long_pause = not preserve_segments and timing.start - last > 3.0
                    has_room = line_len + len(timing.text) <= max_line_width
                    seg_break = i == 0 and len(subtitle) > 0 and preserve_segments
                    if line_len > 0 and has_room and not long_pause and not seg_break:
                        line_len += len(timing.text)  # the line goes on
                    else:
                        timing.text = timing.text.strip()
                        if (
                            len(subtitle) > 0
                            and self.max_line_count is not None
                            and (long_pause or line_count >= self.max_line_count)
                        ) or seg_break:
                            yield subtitle  # a new cue
                            subtitle = []
                            line_count = 1
                        elif line_len > 0:
                            line_count += 1  # a new line in this cue
                            timing.text = "\n" + timing.text
                        line_len = len(timing.text.strip())
                    subtitle.append(timing)
                    last = timing.start
        if subtitle:
            yield subtitle


@dataclass
class _TimedText:
    start: float
    end: float
    text: str


def _cue_text(text: str) -> str:
    # "-->" inside a cue's text would end the cue for every srt and vtt parser.
    return text.replace("-->", "->")


class SrtWriter(SubtitleWriter):
    """SubRip: numbered cues, ``HH:MM:SS,mmm`` times."""

    extension = "srt"
    always_include_hours = True
    decimal_marker = ","

    def write(self, result: TranscriptionResult, file: TextIO) -> None:
        for number, cue in enumerate(self.cues(result), start=1):
            file.write(f"{number}\n{self.timestamp(cue.start)} --> {self.timestamp(cue.end)}\n")
            file.write(f"{cue.text}\n\n")


class VttWriter(SubtitleWriter):
    """WebVTT: a ``WEBVTT`` header, ``MM:SS.mmm`` times (``HH:`` from an hour on)."""

    extension = "vtt"
    always_include_hours = False
    decimal_marker = "."

    def write(self, result: TranscriptionResult, file: TextIO) -> None:
        file.write("WEBVTT\n\n")
        for cue in self.cues(result):
            file.write(f"{self.timestamp(cue.start)} --> {self.timestamp(cue.end)}\n")
            file.write(f"{cue.text}\n\n")


#: Format name -> writer class, in openai-whisper's order for "all".
WRITERS: dict[str, type[ResultWriter]] = {
    "txt": TxtWriter,
    "vtt": VttWriter,
    "srt": SrtWriter,
    "tsv": TsvWriter,
    "json": JsonWriter,
}


def get_writer(
    output_format: str,
    *,
    max_line_width: int | None = None,
    max_line_count: int | None = None,
    highlight_words: bool = False,
    max_words_per_line: int | None = None,
) -> ResultWriter:
    """A writer for one format; the subtitle options go to srt and vtt and are ignored by others.

    >>> get_writer("srt", max_line_width=42).to_string(result)   # doctest: +SKIP
    """
    writer_class = WRITERS.get(output_format)
    if writer_class is None:
        raise OptionsError(
            f"unknown output format {output_format!r}: expected one of {', '.join(WRITERS)} or all"
        )
    if issubclass(writer_class, SubtitleWriter):
        return writer_class(
            max_line_width=max_line_width,
            max_line_count=max_line_count,
            highlight_words=highlight_words,
            max_words_per_line=max_words_per_line,
        )
    return writer_class()


def expand_formats(formats: str | Iterable[str]) -> list[str]:
    """Format names in order, once each, with ``"all"`` standing for every format.

    >>> expand_formats("all")
    ['txt', 'vtt', 'srt', 'tsv', 'json']
    """
    names = [formats] if isinstance(formats, str) else list(formats)
    expanded: list[str] = []
    for name in names:
        for one in WRITERS if name == "all" else [name]:
            if one not in expanded:
                expanded.append(one)
    if not expanded:
        raise OptionsError("no output format given")
    return expanded


def write_result(
    result: TranscriptionResult,
    audio_path_or_stem: str | os.PathLike[str],
    output_dir: str | os.PathLike[str],
    formats: str | Iterable[str] = ("txt",),
    *,
    overwrite: bool = False,
    max_line_width: int | None = None,
    max_line_count: int | None = None,
    highlight_words: bool = False,
    max_words_per_line: int | None = None,
) -> list[Path]:
    """Write ``result`` as ``<output_dir>/<stem>.<ext>`` for each format; return the paths.

    The stem is the audio file's name without its extension (``talk.mp3`` -> ``talk``).
    ``output_dir`` is created if needed. Every file is first written to a temporary file in
    ``output_dir`` and then renamed into place, so a reader never sees half a file and a failure
    leaves nothing behind; all formats are rendered before any file is written.

    Raises ``OutputExistsError`` (before writing anything) if a target exists and ``overwrite``
    is false, ``OptionsError`` for an unknown format or a bad option, and ``DattavaniError`` when
    the folder or a file cannot be written (with the path and the system's reason).

    >>> write_result(result, "talk.mp3", "subs", "all", max_line_width=42)   # doctest: +SKIP
    """
    writers = [
        get_writer(
            name,
            max_line_width=max_line_width,
            max_line_count=max_line_count,
            highlight_words=highlight_words,
            max_words_per_line=max_words_per_line,
        )
        for name in expand_formats(formats)
    ]
    stem = os.path.splitext(os.path.basename(os.fspath(audio_path_or_stem)))[0]
    if not stem:
        raise OptionsError(f"{os.fspath(audio_path_or_stem)!r} gives no file name to write")
    folder = Path(output_dir)
    targets = [folder / f"{stem}.{writer.extension}" for writer in writers]
    if not overwrite:
        existing = [str(path) for path in targets if path.exists()]
        if existing:
            raise OutputExistsError(
                f"{', '.join(existing)} already exist(s); pass overwrite=True to replace"
            )
    contents = [writer.to_string(result) for writer in writers]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DattavaniError(f"{folder}: cannot create the output folder: {exc.strerror}") from exc
    _write_atomically(list(zip(targets, contents, strict=True)))
    return targets


def _write_atomically(files: list[tuple[Path, str]]) -> None:
    """Write every file to a temporary sibling, then rename each into place."""
    temporaries: list[tuple[Path, Path]] = []
    current = files[0][0]  # the file being written, for the error message
    try:
        for target, content in files:
            current = target
            temporary = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
            # O_EXCL: never write through a file or link someone else put there; mode 0o666
            # minus the umask, as an ordinary open() would give, not mkstemp's 0o600.
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            temporaries.append((temporary, target))
            with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
        for temporary, target in temporaries:
            current = target
            os.replace(temporary, target)
    except OSError as exc:
        for temporary, _ in temporaries:
            temporary.unlink(missing_ok=True)
        raise DattavaniError(f"{current}: cannot write: {exc.strerror or exc}") from exc
