"""``dattavani transcribe``: audio files, folders or globs into txt/srt/vtt/tsv/json.

Flags beat ``dattavani.toml``'s ``[transcribe]`` values, which beat the defaults.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._common import UsageError, load_transcriber
from ._files import OutputSettings, TableReporter, exit_code, expand_inputs, transcribe_files

if TYPE_CHECKING:
    from ..config import Config


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``dattavani transcribe``."""
    parser = commands.add_parser(
        "transcribe",
        parents=[common],
        help="transcribe audio files, folders or globs into txt/srt/vtt/tsv/json",
        description="Transcribe audio files, folders (searched recursively) or glob patterns. "
        "Unset options come from dattavani.toml's [transcribe] section.",
    )
    add_transcribe_arguments(parser)
    parser.set_defaults(command="transcribe", handler=run_transcribe)


def _temperatures(value: str) -> tuple[float, ...]:
    from ..config import parse_temperatures
    from ..errors import ConfigError

    try:
        return parse_temperatures(value)
    except ConfigError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


#: The transcription options ``transcribe`` has flags for: TranscribeOptions field -> the flag's
#: names and argparse keywords. ``[transcribe]`` takes every field by its name; a flag given beats
#: the file's value, which beats TranscribeOptions' default. A new flag is one line here.
OPTION_FLAGS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "language": (("-l", "--language"), {"help": "language code or name (default: detect)"}),
    "task": (("--task",), {"choices": ("transcribe", "translate")}),
    "word_timestamps": (
        ("--word-timestamps",),
        {"action": argparse.BooleanOptionalAction, "help": "times for every word"},
    ),
    "multilingual": (
        ("--multilingual",),
        {
            "action": argparse.BooleanOptionalAction,
            "help": "detect and decode each 30 s window's own language",
        },
    ),
    "hallucination_silence_threshold": (
        ("--hallucination-silence-threshold",),
        {
            "type": float,
            "metavar": "SECONDS",
            "help": "with --word-timestamps: drop a likely hallucination between longer silences",
        },
    ),
    "beam_size": (("--beam-size",), {"type": int, "help": "beam search width (default: greedy)"}),
    "temperature": (
        ("--temperature",),
        {
            "type": _temperatures,
            "metavar": "T[,T...]",
            "help": "temperature, or fallback schedule in equal steps up to 1, e.g. 0,0.5,1",
        },
    ),
    "initial_prompt": (
        ("--initial-prompt",),
        {"metavar": "TEXT", "help": "text to prime the decoder"},
    ),
    "batch_size": (
        ("--batch-size",),
        {
            "type": int,
            "metavar": "N",
            "help": "batched, as faster-whisper's BatchedInferencePipeline: speech in 30 s chunks, "
            "N at once (VAD on unless --no-vad)",
        },
    ),
}


def add_transcribe_arguments(parser: argparse.ArgumentParser) -> None:
    """``dattavani transcribe``'s options; None means "take it from the config"."""
    parser.add_argument("files", nargs="+", metavar="FILE", help="audio files, folders or globs")
    parser.add_argument("-m", "--model", help="model name, alias or path (default: config)")
    for name, (flags, keywords) in OPTION_FLAGS.items():
        parser.add_argument(*flags, dest=name, **keywords)
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
    parser.add_argument("--vad", action=on_off, help="skip silence with Silero VAD")
    parser.add_argument("--device", help="auto (default), cpu, cuda, cuda:N, metal or vulkan")
    parser.add_argument("--threads", type=int, help="CPU threads per file")
    parser.add_argument("--workers", type=int, help="files transcribed at once (default 1)")
    parser.add_argument("--overwrite", action=on_off, help="replace existing output files")


def run_transcribe(args: argparse.Namespace, config: Config) -> int:
    """``dattavani transcribe``: flags beat the config's [transcribe] values and defaults."""
    from ..config import parse_output_formats
    from ..options import TranscribeOptions
    from ..transcriber import default_threads

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
    options = dict(defaults.options)
    for name in OPTION_FLAGS:
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if args.vad is not None or defaults.vad:
        # Given: a --no-vad turns batched mode's VAD off too.
        options["vad_filter"] = pick(args.vad, defaults.vad)
    TranscribeOptions.from_kwargs(**options)  # a bad option is a usage error before any work
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
    return exit_code(transcribe_files(transcriber, jobs, options, output, reporter, workers))
