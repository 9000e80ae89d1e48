"""``dattavani models``: list, pull, convert, rm, verify, prune and package models.

:func:`add_parser` registers the command on the main parser's subcommands; each sub-command's
handler is ``handler(args, config) -> exit code``, as the other commands'.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ModelNotFoundError
from ..models.specs import PRECISIONS
from ._common import EXIT_FAILED, EXIT_OK, EXIT_USAGE, format_size

if TYPE_CHECKING:
    from ..config import Config
    from ..models.disk_cache import DiskCache


def add_parser(commands: Any, common: argparse.ArgumentParser | None = None) -> None:
    """Add ``models`` and its sub-commands to ``commands`` (from ``add_subparsers()``).

    ``common`` (the CLI's common options) is a parent of every sub-command's parser.
    """
    parents = [] if common is None else [common]
    models: argparse.ArgumentParser = commands.add_parser(
        "models",
        help="list, download, convert, verify and package models",
        description="Manage the model cache. NAME is an alias (base.en, small-q5_0, turbo), a hub "
        "repo (openai/whisper-small, ggerganov/whisper.cpp:ggml-base.bin@main) or a path.",
    )
    models.set_defaults(command="models", handler=_usage(models))
    subcommands = models.add_subparsers(title="commands", metavar="COMMAND")

    def add(name: str, help: str, handler: Any) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = subcommands.add_parser(
            name, help=help, description=help[0].upper() + help[1:] + ".", parents=parents
        )
        parser.set_defaults(command=f"models {name}", handler=handler)
        return parser

    listing = add("list", "list cached models and installed model packages", run_list)
    listing.add_argument("--json", action="store_true", help="print JSON")

    pull = add("pull", "download (and convert) a model into the cache", run_pull)
    pull.add_argument("name", metavar="NAME")
    _precision_argument(pull, None)
    pull.add_argument("--offline", action="store_true", help="use only what is downloaded")

    convert = add(
        "convert", "convert a checkpoint or GGML file to GGML at a precision", run_convert
    )
    convert.add_argument(
        "source",
        metavar="SRC",
        help="a transformers or CTranslate2 folder, an openai-whisper .pt, or a GGML file",
    )
    convert.add_argument("-o", "--output", required=True, metavar="OUT", help="the GGML file")
    _precision_argument(convert, "f16")

    remove = add("rm", "remove models from the cache", run_rm)
    remove.add_argument("names", nargs="+", metavar="NAME", help="a spec or a cache folder name")

    add("verify", "check every cached model's size and sha256; remove broken ones", run_verify)

    prune = add("prune", "remove leftovers and least-recently-used models past a size", run_prune)
    prune.add_argument("--max-size", metavar="SIZE", help='e.g. "10GB" (default: the limit)')

    package = add("package", "build a wheel of a model for installing with pip", run_package)
    package.add_argument("name", metavar="NAME")
    _precision_argument(package, None)
    package.add_argument("-o", "--output-dir", default=".", metavar="DIR", help="default: .")
    package.add_argument("--version", default="1.0.0", help="the wheel's version (1.0.0)")


def _precision_argument(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument(
        "--precision",
        default=default,
        metavar="P",
        help=f"one of {', '.join(PRECISIONS)}" + (f" (default {default})" if default else ""),
    )


def _usage(parser: argparse.ArgumentParser) -> Any:
    def show(args: argparse.Namespace, config: Config) -> int:
        parser.print_help(sys.stderr)
        return EXIT_USAGE

    return show


def _cache(config: Config) -> DiskCache:
    from ..models.disk_cache import DiskCache

    return DiskCache(config.native_models.cache_dir)


def run_list(args: argparse.Namespace, config: Config) -> int:
    """``models list``: cached models, least recently used first, and installed packages."""
    from ..models.packages import installed_packages

    cache = _cache(config)
    entries = cache.entries()
    packages = installed_packages()
    if args.json:
        report = {
            "cache_dir": str(cache.root),
            "max_bytes": cache.max_bytes,
            "models": [{"key": e.key, "path": str(e.path), **e.metadata} for e in entries],
            "packages": [
                {"name": p.name, "distribution": p.distribution, "path": str(p.path)}
                for p in packages
            ],
        }
        print(json.dumps(report, indent=2))
        return EXIT_OK
    limit = f" of {format_size(cache.max_bytes)}" if cache.max_bytes else ""
    print(f"{cache.root}: {len(entries)} model(s), {format_size(cache.total_bytes())}{limit}")
    for entry in entries:
        meta = entry.metadata
        origin = meta.get("source_repo") or meta.get("source_package") or meta.get("model_id")
        print(
            f"  {entry.key:<40} {meta.get('precision', '?'):<5} {format_size(entry.size):>9}  "
            f"{meta.get('source', '?')}: {origin}  (used {entry.last_used[:19]})"
        )
    if packages:
        print("installed model packages:")
        for package in packages:
            print(f"  {package.name:<40} {package.distribution}")
    return EXIT_OK


def run_pull(args: argparse.Namespace, config: Config) -> int:
    """``models pull NAME``: resolve NAME, downloading and converting as needed."""
    from ..models.resolve import resolve_model

    model = resolve_model(
        args.name,
        cache_dir=config.native_models.cache_dir,
        offline=True if args.offline else None,
        precision=args.precision,
    )
    print(f"{model.model_id} ({model.precision}, from {model.source}): {model.path}")
    return EXIT_OK


def run_convert(args: argparse.Namespace, config: Config) -> int:
    """``models convert SRC -o OUT``: any checkpoint to GGML, without the cache."""
    from ..convert import convert_checkpoint
    from ..models.specs import normalize_precision

    source, target = Path(args.source), Path(args.output)
    precision = normalize_precision(args.precision)
    if not source.exists():
        raise ModelNotFoundError(f"{source}: no such file or folder")
    convert_checkpoint(source, target, precision=precision)
    print(f"{target} ({precision}, {format_size(target.stat().st_size)})")
    return EXIT_OK


def run_rm(args: argparse.Namespace, config: Config) -> int:
    """``models rm NAME...``: by cache folder name or by spec."""
    from ..models.specs import parse_spec

    cache = _cache(config)
    missing = []
    for name in args.names:
        key = name if (cache.models_dir / name).is_dir() else parse_spec(name).cache_key
        if cache.remove(key):
            print(f"removed {key}")
        else:
            missing.append(name)
    if missing:
        raise ModelNotFoundError(f"not in the cache: {', '.join(missing)}")
    return EXIT_OK


def run_verify(args: argparse.Namespace, config: Config) -> int:
    """``models verify``: sha256 of every entry; broken ones are removed (exit code 1)."""
    results = _cache(config).verify()
    for result in results:
        state = "ok" if result.ok else f"BROKEN, removed ({result.reason})"
        print(f"{result.key}: {state}")
    broken = sum(not r.ok for r in results)
    print(f"{len(results)} model(s) checked, {broken} broken")
    return EXIT_FAILED if broken else EXIT_OK


def run_prune(args: argparse.Namespace, config: Config) -> int:
    """``models prune``: leftovers of killed runs, broken entries, LRU models past the limit."""
    from ..config import parse_size

    limit = parse_size(args.max_size) if args.max_size else None
    result = _cache(config).prune(limit)
    for name in result.removed:
        print(f"removed {name}")
    print(f"freed {format_size(result.freed_bytes)}")
    return EXIT_OK


def run_package(args: argparse.Namespace, config: Config) -> int:
    """``models package NAME``: a wheel with the model, for ``pip install``."""
    from ..models.package_builder import build_model_wheel
    from ..models.resolve import resolve_model

    model = resolve_model(
        args.name, cache_dir=config.native_models.cache_dir, precision=args.precision
    )
    wheel = build_model_wheel(model, args.output_dir, version=args.version)
    print(f"{wheel} ({format_size(wheel.stat().st_size)})")
    return EXIT_OK
