"""Input files, expanded, transcribed and written: the batch run ``transcribe`` and ``whisper``
share, with its reporters (progress bars or plain lines, then a table).
"""

from __future__ import annotations

import glob
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from ..errors import DattavaniError, OptionsError
from ._common import EXIT_FAILED, EXIT_OK, format_duration

if TYPE_CHECKING:
    from ..results import Segment, TranscriptionResult
    from ..transcriber import Transcriber

#: What a folder given to ``transcribe`` is searched for (files named explicitly are always tried).
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma"}
    | {".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi"}
)


@dataclass(frozen=True)
class Job:
    """One input of a batch: ``path`` to transcribe, or ``error`` found while expanding it."""

    name: str
    path: Path | None = None
    error: str | None = None


@dataclass
class Outcome:
    """What became of one input."""

    job: Job
    result: TranscriptionResult | None = None
    outputs: list[Path] = field(default_factory=list)
    error: str | None = None
    wall_time: float = 0.0


@dataclass(frozen=True)
class OutputSettings:
    """Which files to write for each result, and how."""

    formats: tuple[str, ...]
    output_dir: Path | None  # None: beside each input
    overwrite: bool = False
    max_line_width: int | None = None
    max_line_count: int | None = None
    max_words_per_line: int | None = None
    highlight_words: bool = False


def expand_inputs(items: Sequence[str]) -> list[Job]:
    """Files as given, folders searched recursively for audio, globs expanded; in order, once each.

    Something that matches nothing becomes a Job with an error, so it is reported with the rest.
    """
    jobs: list[Job] = []
    seen: set[Path] = set()

    def add(path: Path, name: str) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            jobs.append(Job(name=name, path=path))

    for item in items:
        path = Path(item)
        if path.is_dir():
            found = sorted(
                p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file()
            )
            if not found:
                jobs.append(Job(name=item, error="folder holds no audio files"))
            for p in found:
                add(p, str(p))
        elif path.exists():
            add(path, item)
        elif glob.has_magic(item):
            matches = sorted(glob.glob(item, recursive=True))
            files = [Path(m) for m in matches if Path(m).is_file()]
            if not files:
                jobs.append(Job(name=item, error="no files match this pattern"))
            for p in files:
                add(p, str(p))
        else:
            jobs.append(Job(name=item, error="no such file or folder"))
    return jobs


class Reporter:
    """How a batch shows itself: hooks called from worker threads, under one lock."""

    #: Whether :meth:`segment` wants every segment as it is decoded.
    wants_segments = False

    def __init__(self) -> None:
        self.lock = threading.Lock()

    @contextmanager
    def running(self, total: int) -> Iterator[None]:
        yield

    def started(self, job: Job) -> Callable[[float], Any] | None:
        """Called as a file starts; may return an ``on_progress(fraction)`` callback."""
        return None

    def segment(self, job: Job, segment: Segment) -> None:
        """Called for each segment as it is decoded (only when ``wants_segments``)."""

    def finished(self, outcome: Outcome, done: int, total: int) -> None:
        """Called once per input, with how many are done so far."""

    def summary(self, outcomes: list[Outcome]) -> None:
        """Called once at the end."""


def transcribe_files(
    transcriber: Transcriber,
    jobs: list[Job],
    options: dict[str, Any],
    output: OutputSettings,
    reporter: Reporter,
    workers: int = 1,
) -> list[Outcome]:
    """Transcribe and write every job, ``workers`` at a time; a failure never stops the rest."""
    from concurrent.futures import ThreadPoolExecutor

    from ..writers import write_result

    done = 0

    def process(job: Job) -> Outcome:
        nonlocal done
        outcome = Outcome(job=job, error=job.error)
        started = time.perf_counter()
        if job.path is not None:
            with reporter.lock:
                on_progress = reporter.started(job)
            on_segment = (lambda s: reporter.segment(job, s)) if reporter.wants_segments else None
            try:
                outcome.result = transcriber.transcribe(
                    job.path, on_progress=on_progress, on_segment=on_segment, **options
                )
                outcome.outputs = write_result(
                    outcome.result,
                    job.path,
                    output.output_dir or job.path.parent,
                    output.formats,
                    overwrite=output.overwrite,
                    max_line_width=output.max_line_width,
                    max_line_count=output.max_line_count,
                    max_words_per_line=output.max_words_per_line,
                    highlight_words=output.highlight_words,
                )
            except OptionsError:
                raise  # the same for every file: a usage error, not a bad file
            except DattavaniError as error:
                outcome.error = f"{type(error).__name__}: {error}"
        outcome.wall_time = time.perf_counter() - started
        with reporter.lock:
            done += 1
            reporter.finished(outcome, done, len(jobs))
        return outcome

    with reporter.running(len(jobs)):
        if workers <= 1:
            outcomes = [process(job) for job in jobs]
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                outcomes = list(pool.map(process, jobs))
    reporter.summary(outcomes)
    return outcomes


def exit_code(outcomes: Sequence[Outcome]) -> int:
    return EXIT_FAILED if any(o.error for o in outcomes) else EXIT_OK


class TableReporter(Reporter):
    """``transcribe``'s output: bars on a terminal, plain lines otherwise, then a table."""

    def __init__(self, stream: TextIO, bars: bool) -> None:
        super().__init__()
        self.stream = stream
        self.bars = bars
        self.overall: Any = None

    @contextmanager
    def running(self, total: int) -> Iterator[None]:
        if not self.bars:
            yield
            return
        import logging

        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        with (
            logging_redirect_tqdm(loggers=[logging.getLogger("dattavani")]),
            tqdm(total=total, desc="all files", unit="file", file=self.stream) as overall,
        ):
            self.overall = overall
            yield

    def started(self, job: Job) -> Callable[[float], Any] | None:
        if not self.bars:
            return None
        from tqdm import tqdm

        bar = tqdm(
            total=100,
            desc=job.path.name if job.path else job.name,
            unit="%",
            leave=False,
            file=self.stream,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}",
        )

        def on_progress(fraction: float) -> None:
            with self.lock:
                bar.update(round(fraction * 100) - bar.n)
                if fraction >= 1.0:
                    bar.close()

        return on_progress

    def finished(self, outcome: Outcome, done: int, total: int) -> None:
        if self.bars:
            self.overall.update(1)
            if outcome.error:
                self.overall.write(f"{outcome.job.name}: failed: {outcome.error}", file=self.stream)
            return
        print(f"[{done}/{total}] {outcome.job.name}: {_outcome_line(outcome)}", file=self.stream)

    def summary(self, outcomes: list[Outcome]) -> None:
        print(format_table(outcomes), file=sys.stdout)


def _outcome_line(outcome: Outcome) -> str:
    if outcome.error or outcome.result is None:
        return f"failed: {outcome.error}"
    r = outcome.result
    return (
        f"{format_duration(r.duration)} of audio in {r.processing_time:.2f} s "
        f"({_speed(r)} real time) -> {', '.join(str(p) for p in outcome.outputs)}"
    )


def _speed(result: TranscriptionResult) -> str:
    return f"{result.duration / result.processing_time:.1f}x" if result.processing_time else "-"


def format_table(outcomes: Sequence[Outcome]) -> str:
    """The closing table: file, audio length, time, speed as x real time, output files."""
    rows = [("file", "audio", "time", "speed", "output files")]
    for o in outcomes:
        if o.result is not None and not o.error:
            r = o.result
            outputs = ", ".join(p.name for p in o.outputs)
            rows.append(
                (
                    o.job.name,
                    format_duration(r.duration),
                    f"{o.wall_time:.2f} s",
                    _speed(r),
                    outputs,
                )
            )
        else:
            rows.append((o.job.name, "-", f"{o.wall_time:.2f} s", "-", f"FAILED: {o.error}"))
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[4]
        for row in rows
    ]
    ok = [o for o in outcomes if o.result is not None and not o.error]
    audio = sum(o.result.duration for o in ok if o.result)
    busy = sum(o.result.processing_time for o in ok if o.result)
    total = f"{len(outcomes)} file(s): {len(ok)} done, {len(outcomes) - len(ok)} failed"
    if ok:
        total += f"; {format_duration(audio)} of audio in {busy:.2f} s"
        total += f" ({audio / busy:.1f}x real time)" if busy else ""
    return "\n".join([*lines, total])
