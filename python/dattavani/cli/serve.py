"""``dattavani serve``: its options and handler (FastAPI and uvicorn load only when it runs)."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from ._common import EXIT_USAGE

if TYPE_CHECKING:
    from ..config import Config


def add_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """Add ``serve`` to the ``dattavani`` command's sub-commands."""
    parser = commands.add_parser(
        "serve",
        parents=[common],
        help="serve OpenAI's audio API (transcriptions, translations) over HTTP",
        description="An OpenAI-compatible transcription server: POST /v1/audio/transcriptions, "
        "/v1/audio/translations, GET /v1/models, /health, /metrics and a web page at /. Unset "
        "options come from dattavani.toml's [server] table. "
        'Needs pip install "dattavani[server]".',
    )
    parser.add_argument("--host", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8000)")
    parser.add_argument(
        "-m", "--model", help="the served model, also answering to whisper-1 (default: config)"
    )
    parser.add_argument(
        "--preload",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="load the model before serving (/health answers 503 until then)",
    )
    parser.set_defaults(command="serve", handler=run_serve)


def run_serve(args: argparse.Namespace, config: Config) -> int:
    """Run the server until interrupted; exit code 2 when the server extra is not installed."""
    try:
        import fastapi  # noqa: F401
        import multipart  # noqa: F401
        import uvicorn
    except ImportError as error:
        print(
            f"dattavani: error: serve needs {error.name}, which is not installed: "
            'pip install "dattavani[server]"',
            file=sys.stderr,
        )
        return EXIT_USAGE

    from ..errors import ConfigError
    from ..server.app import create_app

    settings = config.server
    overrides = {
        key: value
        for key, value in (("host", args.host), ("port", args.port), ("model", args.model))
        if value is not None
    }
    if "port" in overrides and not 0 <= overrides["port"] <= 65535:
        raise ConfigError(f"--port {overrides['port']}: a port number from 0 to 65535")
    settings = replace(settings, **overrides)
    config = replace(config, server=settings)
    if settings.access_log:
        _log_access()
    app = create_app(config, preload=args.preload)
    served = app.state.server.registry.served
    print(
        f"dattavani: serving {served} (also as whisper-1) on http://{settings.host}:{settings.port}",
        file=sys.stderr,
    )
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,  # ours is structured: one JSON object a line
        timeout_graceful_shutdown=10,
    )
    return 0


def _log_access() -> None:
    """Access log lines (JSON) to stderr, whatever the level of the ``dattavani`` logger."""
    access = logging.getLogger("dattavani.server.access")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False
