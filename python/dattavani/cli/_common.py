"""What every command shares: exit codes, :class:`UsageError`, the common arguments, loading the
model, and the formatting of sizes and durations.

Command modules import from here (and from :mod:`._files`), never from each other or from the
package's ``__init__``: that is what keeps the command line free of import cycles.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, DattavaniError, DeviceError, ModelNotFoundError, OptionsError

if TYPE_CHECKING:
    from ..config import Config
    from ..transcriber import Transcriber

PROG = "dattavani"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

#: Errors that mean the command line or the config asked for something impossible (exit 2).
USAGE_ERRORS = (ConfigError, OptionsError, ModelNotFoundError, DeviceError)


class UsageError(DattavaniError):
    """The command line is inconsistent in a way argparse cannot check (exit code 2)."""


def common_parser(long_verbose: bool = True) -> argparse.ArgumentParser:
    """The options every command takes after its name, as a parent parser.

    SUPPRESS as their default keeps a value given before the command name.
    """
    common = argparse.ArgumentParser(add_help=False)
    add_common_arguments(common, argparse.SUPPRESS, long_verbose)
    return common


def add_common_arguments(
    parser: argparse.ArgumentParser, default: Any, long_verbose: bool = True
) -> None:
    """``--config``, ``--log-level`` and ``-v``; ``long_verbose`` adds ``--verbose`` for ``-v``."""
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


def load_transcriber(
    model: str | None, config: Config, *, device: str, threads: int | None, workers: int
) -> Transcriber:
    """Load ``model`` (a config alias, a name or a path; None: the config's default) on ``device``
    with the command's ``config``: the Transcriber resolves aliases and follows
    ``fallback_to_cpu`` and ``gpu_memory_limit`` itself."""
    from ..transcriber import Transcriber

    return Transcriber(model, device=device, threads=threads, workers=workers, config=config)


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
