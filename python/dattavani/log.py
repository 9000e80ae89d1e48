"""Logging set-up for the ``dattavani`` command (library code only calls ``logging.getLogger``).

The library logs under ``dattavani`` (e.g. ``dattavani.devices`` says which device was chosen and
why) and whisper.cpp's own lines arrive under ``dattavani.native``. Applications that embed
dattavani configure those loggers as they like; only the command line calls
:func:`setup_logging`.

The native core logs whisper.cpp's INFO lines (every hyper-parameter and buffer) at DEBUG, so
``-v`` (INFO) tells what dattavani decided and ``-vv`` (DEBUG) also what whisper.cpp did.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import TextIO

from .config import LOG_LEVELS
from .errors import ConfigError

LOGGER_NAME = "dattavani"
_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def resolve_log_level(
    flag: str | None,
    verbose: int = 0,
    env: Mapping[str, str] | None = None,
    config_level: str = "WARNING",
) -> int:
    """The level in effect: ``--log-level`` > ``-v`` > ``$DATTAVANI_LOG_LEVEL`` > the config file.

    ``-v`` means INFO and ``-vv`` DEBUG.

    >>> resolve_log_level(None, verbose=1, env={}) == logging.INFO
    True
    """
    env = os.environ if env is None else env
    if flag is not None:
        return _level_number(flag, "--log-level")
    if verbose:
        return logging.INFO if verbose == 1 else logging.DEBUG
    if env.get("DATTAVANI_LOG_LEVEL"):
        return _level_number(env["DATTAVANI_LOG_LEVEL"], "DATTAVANI_LOG_LEVEL")
    return _level_number(config_level, "[logging] level")


def _level_number(name: str, given_by: str) -> int:
    if name.upper() not in LOG_LEVELS:
        raise ConfigError(
            f"{given_by}: unknown log level {name!r}; allowed: {', '.join(LOG_LEVELS)}"
        )
    level: int = getattr(logging, name.upper())
    return level


def setup_logging(level: int, stream: TextIO | None = None) -> logging.Handler:
    """Send ``dattavani`` log records at ``level`` and above to ``stream`` (stderr by default).

    Returns the handler installed; calling again replaces it rather than adding a second one, so
    lines are never printed twice.
    """
    logger = logging.getLogger(LOGGER_NAME)
    for handler in [h for h in logger.handlers if getattr(h, "_dattavani_cli", False)]:
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(logging.Formatter(_FORMAT, datefmt="%H:%M:%S"))
    handler._dattavani_cli = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
    # Records stop here: an application's root handler would print them a second time.
    logger.propagate = False
    return handler
