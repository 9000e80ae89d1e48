"""``dattavani whisper``: openai-whisper's command line, so a script switches by changing one word.

``whisper audio.mp3 --model base --output_format srt`` becomes
``dattavani whisper audio.mp3 --model base --output_format srt``: the same arguments, spellings,
defaults (beam search of 5, a temperature fallback schedule, every output format, the current
folder) and output file names (``<output_dir>/<audio name without extension>.<format>``).

Arguments that only steer PyTorch (``--fp16``) are accepted and ignored. Arguments whisper.cpp has
no counterpart for, and whose absence changes little, are accepted with a warning.

``--engine openai-whisper`` (or ``DATTAVANI_WHISPER_ENGINE=openai-whisper``) is the way back: the
same command line runs openai-whisper itself, where it is installed.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..options import TranscribeOptions
from ._common import UsageError, common_parser, load_transcriber
from ._files import Job, OutputSettings, TableReporter, exit_code, expand_inputs, transcribe_files

if TYPE_CHECKING:
    from ..config import Config
    from ..results import Segment

logger = logging.getLogger("dattavani.cli")

#: What runs ``dattavani whisper``: dattavani (the default), or openai-whisper itself, the way
#: back for a team whose scripts moved over (docs/migrating-from-openai-whisper.md).
ENGINES = ("native", "openai-whisper")
ENGINE_VARIABLE = "DATTAVANI_WHISPER_ENGINE"

_WORD_OPTIONS = ("highlight_words", "max_line_count", "max_line_width", "max_words_per_line")


def str2bool(value: str) -> bool:
    """openai-whisper's boolean arguments: ``True`` or ``False`` (any case here)."""
    spelled = {"true": True, "false": False}.get(value.lower())
    if spelled is None:
        raise argparse.ArgumentTypeError(f"expected True or False, got {value!r}")
    return spelled


def optional_int(value: str) -> int | None:
    return None if value == "None" else int(value)


def optional_float(value: str) -> float | None:
    return None if value == "None" else float(value)


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``dattavani whisper`` with openai-whisper's arguments and defaults.

    ``common`` is not used: openai-whisper's ``--verbose`` takes True/False, so here only ``-v``
    counts log verbosity.
    """
    p = commands.add_parser(
        "whisper",
        parents=[common_parser(long_verbose=False)],
        help="openai-whisper's command line: same arguments, same output files",
        description="Drop-in for openai-whisper's `whisper` command. "
        "See docs/migrating-from-openai-whisper.md.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    # Every argument but --engine is openai-whisper's, and is handed to it by --engine
    # openai-whisper: what a user changed from the default is passed on as given.
    forwarded: list[argparse.Action] = []

    def add(*names: str, **keywords: Any) -> None:
        forwarded.append(p.add_argument(*names, **keywords))

    p.add_argument(
        "--engine",
        choices=ENGINES,
        default=os.environ.get(ENGINE_VARIABLE) or "native",
        help=f"native (dattavani), or openai-whisper to run openai-whisper itself with these "
        f"arguments (rollback; needs openai-whisper installed); env {ENGINE_VARIABLE}",
    )
    add("audio", nargs="+", type=str, help="audio file(s) to transcribe")
    add("--model", default=None, help="model name, config alias or GGML path (default: config)")
    add("--model_dir", type=str, default=None, help="the model cache folder")
    add("--device", default="auto", help="auto, cpu, cuda, cuda:N, metal or vulkan")
    add("--output_dir", "-o", type=str, default=".", help="directory to save the outputs")
    add(
        "--output_format",
        "-f",
        type=str,
        default="all",
        choices=["txt", "vtt", "srt", "tsv", "json", "all"],
        help="format of the output file",
    )
    add("--verbose", type=str2bool, default=True, help="print each segment as it is decoded")
    add("--task", type=str, default="transcribe", choices=["transcribe", "translate"])
    add("--language", type=str, default=None, help="language spoken (default: detect)")
    add("--temperature", type=float, default=0, help="temperature to use for sampling")
    add("--best_of", type=optional_int, default=5, help="candidates when sampling")
    add("--beam_size", type=optional_int, default=5, help="beams in beam search")
    add("--patience", type=optional_float, default=None, help="beam search patience")
    add("--length_penalty", type=optional_float, default=None, help="length penalty alpha")
    add("--suppress_tokens", type=str, default="-1", help='"-1": non-speech tokens; "": none')
    add("--initial_prompt", type=str, default=None, help="text to prime the first window")
    add("--carry_initial_prompt", type=str2bool, default=False, help="prompt every window")
    add("--condition_on_previous_text", type=str2bool, default=True)
    add("--fp16", type=str2bool, default=True, help="accepted and ignored (no PyTorch here)")
    add("--temperature_increment_on_fallback", type=optional_float, default=0.2)
    add("--compression_ratio_threshold", type=optional_float, default=2.4)
    add("--logprob_threshold", type=optional_float, default=-1.0)
    add("--no_speech_threshold", type=optional_float, default=0.6)
    add("--word_timestamps", type=str2bool, default=False, help="times for every word")
    add(
        "--prepend_punctuations",
        type=str,
        default=TranscribeOptions.prepend_punctuations,
        help="with --word_timestamps: merged into the word after them",
    )
    add(
        "--append_punctuations",
        type=str,
        default=TranscribeOptions.append_punctuations,
        help="with --word_timestamps: merged into the word before them",
    )
    add("--highlight_words", type=str2bool, default=False, help="underline words in srt/vtt")
    add("--max_line_width", type=optional_int, default=None, help="characters in a line")
    add("--max_line_count", type=optional_int, default=None, help="lines in a segment")
    add("--max_words_per_line", type=optional_int, default=None, help="words in a line")
    add("--threads", type=optional_int, default=0, help="CPU threads (0: all, up to 8)")
    add("--clip_timestamps", type=str, default="0", help="start,end,... seconds to transcribe")
    add(
        "--hallucination_silence_threshold",
        type=optional_float,
        default=None,
        help="(requires --word_timestamps True) drop a likely hallucination between silences "
        "longer than this many seconds",
    )
    p.set_defaults(command="whisper", handler=run_whisper, openai_whisper_arguments=forwarded)


def options_from_arguments(args: argparse.Namespace) -> dict[str, Any]:
    """openai-whisper's arguments as :meth:`dattavani.Transcriber.transcribe` options."""
    if not args.word_timestamps:
        for name in _WORD_OPTIONS:
            if getattr(args, name):
                raise UsageError(f"--{name} requires --word_timestamps True")
    increment = args.temperature_increment_on_fallback
    temperature: tuple[float, ...] = (float(args.temperature),)
    if increment:
        # openai-whisper: numpy.arange(temperature, 1.0 + 1e-6, increment).
        steps = int((1.0 + 1e-6 - args.temperature) / increment) + 1
        temperature = tuple(round(args.temperature + i * increment, 6) for i in range(steps))
    options: dict[str, Any] = {
        "language": args.language,
        "task": args.task,
        "temperature": temperature,
        "best_of": args.best_of if args.best_of is not None else 5,
        "beam_size": args.beam_size,
        "patience": args.patience,
        "length_penalty": args.length_penalty,
        "compression_ratio_threshold": args.compression_ratio_threshold,
        "logprob_threshold": args.logprob_threshold,
        "no_speech_threshold": args.no_speech_threshold,
        "condition_on_previous_text": args.condition_on_previous_text,
        "initial_prompt": args.initial_prompt,
        "carry_initial_prompt": args.carry_initial_prompt,
        "word_timestamps": args.word_timestamps,
        "prepend_punctuations": args.prepend_punctuations,
        "append_punctuations": args.append_punctuations,
        "hallucination_silence_threshold": args.hallucination_silence_threshold,
    }
    try:
        options["suppress_tokens"] = tuple(
            int(t) for t in args.suppress_tokens.split(",") if t.strip()
        )
    except ValueError:
        raise UsageError(
            f"--suppress_tokens {args.suppress_tokens!r}: token ids separated by commas"
        ) from None
    if args.clip_timestamps != "0":
        options["clip_timestamps"] = args.clip_timestamps
    return options


class WhisperReporter(TableReporter):
    """openai-whisper's console output: each segment as it is decoded, skipped files named."""

    def __init__(self, verbose: bool) -> None:
        super().__init__(sys.stderr, bars=not verbose and sys.stderr.isatty())
        self.wants_segments = verbose

    def segment(self, job: Job, segment: Segment) -> None:
        from ..writers import format_timestamp

        start, end = format_timestamp(segment.start), format_timestamp(segment.end)
        print(f"[{start} --> {end}] {segment.text}", flush=True)

    def finished(self, outcome: Any, done: int, total: int) -> None:
        if self.bars:
            self.overall.update(1)
        if outcome.error:
            print(f"Skipping {outcome.job.name} due to {outcome.error}", file=sys.stderr)

    def summary(self, outcomes: list[Any]) -> None:
        """openai-whisper prints no summary."""


def openai_whisper_argv(args: argparse.Namespace) -> list[str]:
    """The command line that gives openai-whisper's ``whisper`` the same request: the audio, and
    each option whose value is not its default here (the defaults are openai-whisper's, but for
    --model and --device, which openai-whisper then chooses itself)."""
    argv = list(args.audio)
    for action in args.openai_whisper_arguments:
        value = getattr(args, action.dest)
        if not action.option_strings or value == action.default:
            continue
        argv += [action.option_strings[0], "None" if value is None else str(value)]
    return argv


def run_openai_whisper(args: argparse.Namespace) -> int:
    """``--engine openai-whisper``: openai-whisper's own command, in a child Python, with the same
    arguments; its exit code is the command's."""
    import importlib.metadata
    import subprocess

    try:
        importlib.metadata.distribution("openai-whisper")
    except importlib.metadata.PackageNotFoundError:
        raise UsageError(
            f"--engine openai-whisper (or {ENGINE_VARIABLE}=openai-whisper) runs openai-whisper, "
            "which is not installed: pip install openai-whisper (it brings torch), or use "
            "--engine native"
        ) from None
    argv = [sys.executable, "-m", "whisper", *openai_whisper_argv(args)]
    logger.info("running openai-whisper: %s", " ".join(argv))
    return subprocess.run(argv, check=False).returncode


def run_whisper(args: argparse.Namespace, config: Config) -> int:
    """``dattavani whisper``: openai-whisper's behaviour on dattavani's engine, or openai-whisper
    itself with ``--engine openai-whisper``."""
    from dataclasses import replace

    from ..config import parse_output_formats

    if args.engine not in ENGINES:  # from the environment: argparse checks only the flag
        raise UsageError(f"{ENGINE_VARIABLE}={args.engine!r}: use one of {', '.join(ENGINES)}")
    if args.engine == "openai-whisper":
        return run_openai_whisper(args)
    if args.threads is not None and args.threads < 0:
        raise UsageError("--threads must be 0 (all) or more")
    options = options_from_arguments(args)
    TranscribeOptions.from_kwargs(**options)  # a bad option is a usage error before any work
    if args.model_dir:
        config = replace(
            config, native_models=replace(config.native_models, cache_dir=Path(args.model_dir))
        )
    if not args.fp16:
        logger.info("--fp16 False: ignored; the precision is the model file's")
    jobs = expand_inputs(args.audio)
    # openai-whisper replaces existing outputs; a drop-in must too, or re-runs of scripts fail.
    output = OutputSettings(
        formats=parse_output_formats(args.output_format),
        output_dir=Path(args.output_dir),
        overwrite=True,
        max_line_width=args.max_line_width,
        max_line_count=args.max_line_count,
        max_words_per_line=args.max_words_per_line,
        highlight_words=args.highlight_words,
    )
    transcriber = load_transcriber(
        args.model, config, device=args.device, threads=args.threads or None, workers=1
    )
    reporter = WhisperReporter(verbose=args.verbose)
    return exit_code(transcribe_files(transcriber, jobs, options, output, reporter))
