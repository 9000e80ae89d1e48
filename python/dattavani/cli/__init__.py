"""The ``dattavani`` command: transcribe files, act as openai-whisper's CLI, compare, inspect.

Each command is one module with ``add_parser(commands, common)``, which registers its parser and
sets ``handler``, a function ``(args, config) -> exit code``; :data:`COMMANDS` lists the modules,
in the order ``--help`` shows them. Adding a command is one module and one line there
(``docs/architecture.md``).

``dattavani --help`` and ``--version`` must answer at once, so the command modules import only
the standard library and dattavani's light modules at the top; numpy, the native core, the audio
libraries and tqdm load inside the handlers that need them.

Exit codes: 0 when every file succeeded, 1 when some failed, 2 for a usage or config error.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from .. import __version__
from ..errors import DattavaniError
from ._common import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_USAGE,
    PROG,
    USAGE_ERRORS,
    UsageError,
    add_common_arguments,
    common_parser,
)

__all__ = ["COMMANDS", "EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "UsageError", "build_parser", "main"]

#: The command modules (relative to this package, or absolute), each with ``add_parser``.
COMMANDS: tuple[str, ...] = (
    ".transcribe",
    ".whisper",
    ".compare",
    ".models",
    ".serve",
    ".batch",
    ".info",
)


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
        from ..config import load_config
        from ..log import resolve_log_level, setup_logging

        # Read once, here, and handed to everything the command does (config=).
        config = load_config(args.config)
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
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Fast, local speech-to-text on whisper.cpp.",
        epilog="Run 'dattavani COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    add_common_arguments(parser, None)
    parser.set_defaults(command=None)
    common = common_parser()
    commands = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name, __name__).add_parser(commands, common)
    return parser
