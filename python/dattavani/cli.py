"""The ``dattavani`` command: transcribe files, act as openai-whisper's CLI, compare, inspect.

``dattavani --help`` and ``--version`` must answer at once, so this module imports only the
standard library and dattavani's light modules at the top; numpy, the native core, the audio
libraries and tqdm load inside the commands that need them.

Exit codes: 0 when every file succeeded, 1 when some failed, 2 for a usage or config error.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from . import __version__
from .errors import (
    ConfigError,
    DattavaniError,
    DeviceError,
    ModelNotFoundError,
    OptionsError,
)

if TYPE_CHECKING:
    from .config import Config
    from .results import Segment, TranscriptionResult
    from .transcriber import Transcriber

PROG = "dattavani"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

#: What a folder given to ``transcribe`` is searched for (files named explicitly are always tried).
AUDIO_EXTENSIONS = frozenset(
    {".wav", ".flac", ".mp3", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma"}
    | {".mp4", ".m4v", ".mkv", ".webm", ".mov", ".avi"}
)

#: Errors that mean the command line or the config asked for something impossible (exit 2).
USAGE_ERRORS = (ConfigError, OptionsError, ModelNotFoundError, DeviceError)


class UsageError(DattavaniError):
    """The command line is inconsistent in a way argparse cannot check (exit code 2)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return the exit code.

    >>> main(["--version"])   # doctest: +SKIP
    dattavani 0.1.0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        from .config import load_config
        from .log import resolve_log_level, setup_logging

        config = load_config(args.config)
        if args.config:
            # The library reads the config itself for what the CLI does not pass (the model
            # cache's limits, fallback_to_cpu): --config must be the file it finds too.
            os.environ["DATTAVANI_CONFIG"] = os.path.abspath(args.config)
        setup_logging(
            resolve_log_level(args.log_level, args.log_verbosity, None, config.logging.level)
        )
        code: int = args.handler(args, config)
        return code
    except (*USAGE_ERRORS, UsageError) as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except DattavaniError as error:
        print(f"{PROG}: error: {error}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


def build_parser() -> argparse.ArgumentParser:
    """The whole argument parser (cheap: no command's heavy imports happen here)."""
    from . import cli_compare, cli_whisper
    from .models.cli import add_models_parser

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Fast, local speech-to-text on whisper.cpp.",
        epilog="Run 'dattavani COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    _add_common_arguments(parser, None)
    parser.set_defaults(command=None)
    # The same options after the command name; SUPPRESS keeps a value given before it.
    common = common_parser()
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")

    transcribe = commands.add_parser(
        "transcribe",
        parents=[common],
        help="transcribe audio files, folders or globs into txt/srt/vtt/tsv/json",
        description="Transcribe audio files, folders (searched recursively) or glob patterns. "
        "Unset options come from dattavani.toml's [transcribe] section.",
    )
    add_transcribe_arguments(transcribe)
    transcribe.set_defaults(command="transcribe", handler=run_transcribe)

    # openai-whisper's --verbose takes True/False: there only -v counts log verbosity.
    cli_whisper.add_parser(commands, common_parser(long_verbose=False))
    cli_compare.add_parser(commands, common)
    add_models_parser(commands, [common])

    info = commands.add_parser(
        "info",
        aliases=["doctor"],
        parents=[common],
        help="show versions, backends, devices, the model cache and the config in effect",
    )
    info.add_argument("--json", action="store_true", help="print the report as JSON")
    info.set_defaults(command="info", handler=run_info)
    return parser


def common_parser(long_verbose: bool = True) -> argparse.ArgumentParser:
    """The options every command takes after its name, as a parent parser."""
    common = argparse.ArgumentParser(add_help=False)
    _add_common_arguments(common, argparse.SUPPRESS, long_verbose)
    return common


def _add_common_arguments(
    parser: argparse.ArgumentParser, default: Any, long_verbose: bool = True
) -> None:
    parser.add_argument(
        "--config", metavar="PATH", default=default, help="the dattavani.toml to use"
    )
    parser.add_argument(
        "--log-level",
        metavar="LEVEL",
        default=default,
        help="DEBUG, INFO, WARNING (default), ERROR or CRITICAL; env DATTAVANI_LOG_LEVEL",
    )
    parser.add_argument(
        *(("-v", "--verbose") if long_verbose else ("-v",)),
        dest="log_verbosity",
        action="count",
        default=0 if default is None else default,
        help="-v: log the model, device and backend chosen and why; -vv: whisper.cpp's log too",
    )


def add_transcribe_arguments(parser: argparse.ArgumentParser) -> None:
    """``dattavani transcribe``'s options; None means "take it from the config"."""
    parser.add_argument("files", nargs="+", metavar="FILE", help="audio files, folders or globs")
    parser.add_argument("-m", "--model", help="model name, alias or path (default: config)")
    parser.add_argument("-l", "--language", help="language code or name (default: detect)")
    parser.add_argument("--task", choices=("transcribe", "translate"))
    parser.add_argument(
        "-f",
        "--output-format",
        metavar="FORMATS",
        help="comma-separated txt,srt,vtt,tsv,json, or all (the default)",
    )
    parser.add_argument(
        "-o", "--output-dir", metavar="DIR", help="where outputs go (default: beside each input)"
    )
    on_off = argparse.BooleanOptionalAction
    parser.add_argument("--word-timestamps", action=on_off, help="times for every word")
    parser.add_argument(
        "--multilingual", action=on_off, help="detect and decode each 30 s window's own language"
    )
    parser.add_argument(
        "--hallucination-silence-threshold",
        type=float,
        metavar="SECONDS",
        help="with --word-timestamps: drop a likely hallucination between longer silences",
    )
    parser.add_argument("--vad", action=on_off, help="skip silence with Silero VAD")
    parser.add_argument("--device", help="auto (default), cpu, cuda, cuda:N, metal or vulkan")
    parser.add_argument("--threads", type=int, help="CPU threads per file")
    parser.add_argument("--workers", type=int, help="files transcribed at once (default 1)")
    parser.add_argument("--beam-size", type=int, help="beam search width (default: greedy)")
    parser.add_argument(
        "--temperature", metavar="T[,T...]", help="temperature or fallback schedule, e.g. 0,0.2"
    )
    parser.add_argument("--initial-prompt", metavar="TEXT", help="text to prime the decoder")
    parser.add_argument("--overwrite", action=on_off, help="replace existing output files")


# --- model and options ---------------------------------------------------------------------------


def load_transcriber(
    model: str | None, config: Config, *, device: str, threads: int | None, workers: int
) -> Transcriber:
    """Resolve ``model`` (a config alias, a name or a path) and load it on ``device``.

    With ``[native_models] fallback_to_cpu = true`` a GPU that is missing or too small is logged
    as a warning and the CPU is used instead (the Transcriber's policy); otherwise that is an error.
    """
    import logging

    from .models import resolve_model
    from .transcriber import Transcriber

    name = model or config.native_models.default_model
    alias = config.resolve_model_alias(name)
    spec = f"{alias.model_id}@{alias.revision}" if alias.revision else alias.model_id
    cache_dir = config.native_models.cache_dir
    # Transcriber resolves names itself; only a precision other than the spec's own needs asking.
    source: str | Path = spec
    if alias.precision:
        source = resolve_model(spec, cache_dir=cache_dir, precision=alias.precision).path
    if name != spec:
        logging.getLogger("dattavani.cli").info("model %s is an alias of %s", name, source)

    return Transcriber(source, device=device, threads=threads, workers=workers, cache_dir=cache_dir)


def language_code(language: str | None) -> str | None:
    """A language code from a code or an English name, as openai-whisper accepts both.

    >>> language_code("English"), language_code("en"), language_code(None)   # doctest: +SKIP
    ('en', 'en', None)
    """
    if language is None or language.lower() in ("", "auto"):
        return None
    from . import _core

    wanted = language.strip().lower()
    wanted = _LANGUAGE_ALIASES.get(wanted, wanted)
    for code, name in _core.languages():
        if wanted in (code, name):
            return str(code)
    raise OptionsError(
        f"unknown language {language!r}: use a code such as en, de or zh, or a name such as "
        "English (run 'python -c \"import dattavani._core as c; print(c.languages())\"' for all)"
    )


# openai-whisper's TO_LANGUAGE_CODE accepts these other names too.
_LANGUAGE_ALIASES = {
    "burmese": "my",
    "valencian": "ca",
    "flemish": "nl",
    "haitian": "ht",
    "letzeburgesch": "lb",
    "pushto": "ps",
    "panjabi": "pa",
    "moldavian": "ro",
    "moldovan": "ro",
    "sinhalese": "si",
    "castilian": "es",
    "mandarin": "zh",
}


# --- batches of files ----------------------------------------------------------------------------


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


def run_batch(
    transcriber: Transcriber,
    jobs: list[Job],
    options: dict[str, Any],
    output: OutputSettings,
    reporter: Reporter,
    workers: int = 1,
) -> list[Outcome]:
    """Transcribe and write every job, ``workers`` at a time; a failure never stops the rest."""
    from concurrent.futures import ThreadPoolExecutor

    from .writers import write_result

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


def format_duration(seconds: float) -> str:
    """``11.0 s`` below a minute, else ``m:ss`` or ``h:mm:ss``.

    >>> format_duration(11.04), format_duration(125), format_duration(3725)
    ('11.0 s', '2:05', '1:02:05')
    """
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


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


# --- commands ------------------------------------------------------------------------------------


def run_transcribe(args: argparse.Namespace, config: Config) -> int:
    """``dattavani transcribe``: flags beat the config's [transcribe] values and defaults."""
    from .config import parse_output_formats, parse_temperatures
    from .options import TranscribeOptions
    from .transcriber import default_threads

    defaults = config.transcribe

    def pick(flag: Any, configured: Any) -> Any:
        return configured if flag is None else flag

    workers = pick(args.workers, defaults.workers)
    threads = pick(args.threads, defaults.threads)
    if workers < 1 or (threads is not None and threads < 1):
        raise UsageError("--workers and --threads must be at least 1")
    if threads is None:
        # Files decoded at once share the cores rather than each taking all of them.
        threads = max(1, default_threads() // workers)
    temperature = parse_temperatures(args.temperature) if args.temperature else defaults.temperature
    options: dict[str, Any] = {
        "language": language_code(pick(args.language, defaults.language)),
        "task": pick(args.task, defaults.task),
        "beam_size": pick(args.beam_size, defaults.beam_size),
        "initial_prompt": pick(args.initial_prompt, defaults.initial_prompt),
        "word_timestamps": pick(args.word_timestamps, defaults.word_timestamps),
        "multilingual": pick(args.multilingual, defaults.multilingual),
        "hallucination_silence_threshold": pick(
            args.hallucination_silence_threshold, defaults.hallucination_silence_threshold
        ),
    }
    if temperature is not None:
        options["temperature"] = temperature
    TranscribeOptions.from_kwargs(**options)  # a bad option is a usage error before any work
    if pick(args.vad, defaults.vad):
        options["vad_filter"] = True
    output = OutputSettings(
        formats=(
            parse_output_formats(args.output_format)
            if args.output_format
            else defaults.output_format
        ),
        output_dir=Path(args.output_dir) if args.output_dir else defaults.output_dir,
        overwrite=pick(args.overwrite, defaults.overwrite),
    )
    jobs = expand_inputs(args.files)
    transcriber = load_transcriber(
        args.model,
        config,
        device=pick(args.device, defaults.device),
        threads=threads,
        workers=workers,
    )
    reporter = TableReporter(sys.stderr, bars=sys.stderr.isatty())
    return exit_code(run_batch(transcriber, jobs, options, output, reporter, workers))


def run_info(args: argparse.Namespace, config: Config) -> int:
    """``dattavani info``: what this installation has and would use."""
    import json
    import platform

    from . import build_info
    from .config import CONFIG_FILENAME, user_config_path
    from .models.disk_cache import DiskCache

    info = build_info()
    info["cpu_features"] = cpu_features(info["system_info"])
    cache = DiskCache(config.native_models.cache_dir)
    info["cache"] = {
        "path": str(cache.root),
        "models": [entry.key for entry in cache.entries()],
        "bytes": cache.total_bytes(),
        "max_bytes": cache.max_bytes,
    }
    info["config_file"] = str(config.source) if config.source else None
    info["config_searched"] = [str(Path.cwd() / CONFIG_FILENAME), str(user_config_path())]
    info["env_overrides"] = list(config.env_overrides)
    info["python"] = f"{platform.python_version()} ({platform.system()} {platform.machine()})"
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    devices = [
        f"{d['name']}: {d['description']} ({d['type']}, {d['backend']} backend), "
        f"{format_size(d['memory_free'])} free of {format_size(d['memory_total'])}"
        for d in info["devices"]
    ]
    models = info["cache"]["models"]
    cache_line = (
        f"{cache.root}: {len(models)} model(s), {format_size(info['cache']['bytes'])}"
        + (f" ({', '.join(models)})" if models else "")
        + (f"; limit {format_size(cache.max_bytes)}" if cache.max_bytes else "")
    )
    config_line = (
        str(config.source)
        if config.source
        else "none, defaults in effect (looked for " + ", ".join(info["config_searched"]) + ")"
    )
    rows = [
        ("dattavani", info["version"]),
        ("whisper.cpp", info["whisper_cpp_version"]),
        ("GPU build", info["gpu_backend"]),
        ("backends", ", ".join(info["compiled_backends"])),
        ("CPU features", " ".join(info["cpu_features"]) or "none reported"),
        ("devices", "\n".join(devices) or "none"),
        ("model cache", cache_line),
        ("config file", config_line),
        ("env overrides", ", ".join(config.env_overrides) or "none"),
        ("python", info["python"]),
    ]
    for label, value in rows:
        print(f"{label:<14} " + value.replace("\n", "\n" + " " * 15))
    return EXIT_OK


def cpu_features(system_info: str) -> list[str]:
    """The CPU features whisper.cpp's system-info line reports as on.

    >>> cpu_features("WHISPER : COREML = 0 | CPU : SSE3 = 1 | AVX = 1 | AVX2 = 0 | ")
    ['SSE3', 'AVX']
    """
    section = ""
    features = []
    for part in system_info.split("|"):
        if ":" in part:
            section, part = (s.strip() for s in part.split(":", 1))
        name, _, value = part.partition("=")
        if section == "CPU" and value.strip() == "1":
            features.append(name.strip())
    return features


def format_size(n: int) -> str:
    """Bytes in SI units, as sizes are written in dattavani.toml.

    >>> format_size(4_000_000_000), format_size(512)
    ('4.0 GB', '512 B')
    """
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} TB"


if __name__ == "__main__":
    sys.exit(main())
