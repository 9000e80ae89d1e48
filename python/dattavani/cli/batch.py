"""``dattavani batch``: the command line of :func:`dattavani.batch.transcribe_dataset`.

Only the standard library loads here (``dattavani --help`` stays fast); Ray and pyarrow load when
the command runs, and a missing ``ray`` extra is a usage error that says how to install it.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
from typing import TYPE_CHECKING, Any

from ._common import UsageError

if TYPE_CHECKING:
    from ..config import Config

INSTALL_HINT = 'pip install "dattavani[ray]"'


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Register ``batch`` with the CLI's sub-commands."""
    p = commands.add_parser(
        "batch",
        parents=[common],
        help="transcribe a corpus on Ray: one Parquet row per file, resumable",
        description="Transcribe every audio file of INPUT (folders, globs, files, text files of "
        "paths or URIs, Parquet manifests, s3:// or gs:// URIs) on Ray Data into a Parquet "
        "dataset in --output, one row per file. A rerun skips the files already done with the "
        "same content, model and options, and tries failed ones again. Needs the ray extra: "
        f"{INSTALL_HINT}. See docs/distributed.md.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="what to transcribe")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="the Parquet folder")
    p.add_argument("-m", "--model", help="model name, alias or path (default: config)")
    p.add_argument(
        "--address",
        help="the Ray cluster to join: auto, HOST:PORT or ray://HOST:10001 "
        "(default: start a local Ray for the job)",
    )
    p.add_argument("--actors", type=int, metavar="N", help="actors at most (default: fill)")
    p.add_argument(
        "--threads-per-actor", type=int, metavar="T", help="CPUs per actor (default: up to 4)"
    )
    p.add_argument(
        "--states-per-actor",
        type=int,
        metavar="S",
        help="files an actor decodes at once on its one model (default: T/2 on CPUs, 4 on a GPU)",
    )
    p.add_argument("--gpus-per-actor", type=float, default=1.0, metavar="G", help="default 1")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, vulkan, metal")
    p.add_argument(
        "-f",
        "--output-format",
        metavar="FORMATS",
        help="also write these per file (srt,vtt,json,txt,tsv or all) into DIR/_transcripts",
    )
    p.add_argument("-l", "--language", help="language code or name (default: config, or detect)")
    p.add_argument("--task", choices=("transcribe", "translate"))
    p.add_argument("--beam-size", type=int, help="beam search width (default: greedy)")
    on_off = argparse.BooleanOptionalAction
    p.add_argument("--word-timestamps", action=on_off, help="times for every word, in the rows")
    p.add_argument("--vad", action=on_off, help="skip silence with Silero VAD")
    p.add_argument(
        "--max-retries",
        type=int,
        default=2,
        metavar="N",
        help="tries more for a file whose worker process dies (default 2)",
    )
    p.add_argument(
        "--file-timeout",
        type=float,
        metavar="SECONDS",
        help="stop a file not transcribed within this time; it gets an error row (default: none)",
    )
    p.add_argument(
        "--rows-per-file", type=int, default=100, metavar="N", help="rows per Parquet file"
    )
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="a progress bar in audio hours (default: when stderr is a terminal)",
    )
    p.set_defaults(command="batch", handler=run_batch_command)


def run_batch_command(args: argparse.Namespace, config: Config) -> int:
    """``dattavani batch``: 0 when every file is done, 1 when some failed, 2 for usage errors."""
    from ..config import parse_output_formats
    from ..errors import InputError

    missing = [m for m in ("ray", "pyarrow") if importlib.util.find_spec(m) is None]
    if missing:
        raise UsageError(f"batch needs {' and '.join(missing)}: {INSTALL_HINT}")
    from ..batch.pipeline import transcribe_dataset

    name = args.model or config.native_models.default_model
    alias = config.resolve_model_alias(name)
    model = alias.spec
    cache_dir = config.native_models.cache_dir
    if alias.precision:
        # As `transcribe` does: the alias's precision is made here, and the actors load the file
        # (on a cluster, give --model a path every node has instead).
        from ..models import resolve_model

        model = str(resolve_model(model, cache_dir=cache_dir, precision=alias.precision).path)
    # Unset options come from dattavani.toml's [transcribe] section, as for `transcribe`.
    defaults = config.transcribe

    options = dict(defaults.options)
    for name in ("language", "task", "beam_size", "word_timestamps"):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if defaults.vad if args.vad is None else args.vad:
        options["vad_filter"] = True
    try:
        summary = transcribe_dataset(
            args.inputs,
            args.output,
            model,
            address=args.address,
            device=args.device,
            actors=args.actors,
            threads_per_actor=args.threads_per_actor,
            states_per_actor=args.states_per_actor,
            gpus_per_actor=args.gpus_per_actor,
            max_retries=args.max_retries,
            file_timeout=args.file_timeout,
            cache_dir=None if cache_dir is None else str(cache_dir),
            output_formats=parse_output_formats(args.output_format) if args.output_format else (),
            rows_per_file=args.rows_per_file,
            progress=sys.stderr.isatty() if args.progress is None else args.progress,
            **options,
        )
    except InputError as error:
        raise UsageError(str(error)) from None
    print(summary.format())
    return summary.exit_code
