"""``dattavani.toml``: where it is looked up, what it may hold, and how it is checked.

Lookup order (the first that exists wins): an explicit path (``--config``), ``$DATTAVANI_CONFIG``,
``./dattavani.toml``, then ``dattavani.toml`` in the user config folder (e.g.
``~/.config/dattavani/`` on Linux). Values are checked on load: an unknown section or key, a
value of the wrong type or a size that does not parse raises :class:`~dattavani.ConfigError`
naming the file, the key and what is allowed, so a typo never silently falls back to a default.

A few environment variables override the file (precedence: flags > env > file > defaults);
:data:`ENV_OVERRIDES` lists them. ``docs/configuration.md`` documents every key.

>>> config = load_config()                                   # doctest: +SKIP
>>> config.native_models.gpu_memory_limit                     # doctest: +SKIP
4000000000
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .errors import ConfigError

CONFIG_FILENAME = "dattavani.toml"

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


class _Invalid(Exception):
    """A value failed a check; the message says what is allowed."""


@dataclass(frozen=True)
class ModelAlias:
    """A name in ``[native_models.models]`` standing for a model spec and a precision.

    ``base = { model_id = "openai/whisper-base", precision = "fp16" }`` makes ``--model base``
    load ``openai/whisper-base`` converted to f16.
    """

    model_id: str
    precision: str | None = None
    revision: str | None = None

    @property
    def spec(self) -> str:
        """What to resolve: the model id, at the revision when one is given.

        >>> ModelAlias("openai/whisper-base", revision="v1").spec
        'openai/whisper-base@v1'
        """
        return f"{self.model_id}@{self.revision}" if self.revision else self.model_id


@dataclass(frozen=True)
class NativeModelsConfig:
    """``[native_models]``: where models are cached and how they are loaded."""

    cache_dir: Path | None = None
    max_cached_models: int = 2
    default_model: str = "base"
    gpu_memory_limit: int | None = None
    fallback_to_cpu: bool = False
    models: Mapping[str, ModelAlias] = field(default_factory=dict)


@dataclass(frozen=True)
class TranscribeConfig:
    """``[transcribe]``: defaults of ``dattavani transcribe``. Its own settings are fields here;
    any :class:`~dattavani.options.TranscribeOptions` field may be set too, and is kept, checked by
    TranscribeOptions itself, in ``options`` (``{"beam_size": 5}``: only the keys the file sets).
    """

    output_format: tuple[str, ...] = ("all",)
    output_dir: Path | None = None
    vad: bool = False
    device: str = "auto"
    threads: int | None = None
    workers: int = 1
    overwrite: bool = False
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LoggingConfig:
    """``[logging]``: the level of the ``dattavani`` logger when the command line sets none."""

    level: str = "WARNING"


#: OpenAI's own upload limit for the audio endpoints.
DEFAULT_MAX_UPLOAD_SIZE = 25 * 1024 * 1024


@dataclass(frozen=True)
class ServerConfig:
    """``[server]``: ``dattavani serve`` (``host``, ``port``, ``model`` and ``preload`` have flags).

    ``workers`` requests decode at once (sharing ``threads`` CPU threads), ``max_queue`` more wait
    for a worker; past that a request is answered 429. ``model_ttl`` seconds after its last
    request a model that was not preloaded is unloaded (0: never).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    model: str | None = None
    preload: bool = False
    device: str = "auto"
    threads: int | None = None
    workers: int = 2
    max_queue: int = 16
    max_upload_size: int = DEFAULT_MAX_UPLOAD_SIZE
    model_ttl: float = 900.0
    max_loaded_models: int = 2
    api_keys: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    allow_model_paths: bool = False
    access_log: bool = True


@dataclass(frozen=True)
class Config:
    """A loaded configuration; ``source`` is the file it came from (None: defaults only)."""

    native_models: NativeModelsConfig = field(default_factory=NativeModelsConfig)
    transcribe: TranscribeConfig = field(default_factory=TranscribeConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    server: ServerConfig = field(default_factory=ServerConfig)
    source: Path | None = None
    #: Environment variables that overrode a value, e.g. ``("DATTAVANI_LOG_LEVEL",)``.
    env_overrides: tuple[str, ...] = ()

    def resolve_model_alias(self, name: str) -> ModelAlias:
        """The alias ``name`` stands for, or ``name`` itself as a model id when it is no alias.

        >>> Config().resolve_model_alias("tiny.en")
        ModelAlias(model_id='tiny.en', precision=None, revision=None)
        """
        return self.native_models.models.get(name, ModelAlias(model_id=name))


# --- value checks: each returns the converted value or raises _Invalid(what is allowed) ---------


def _string(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise _Invalid("a non-empty string")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Invalid("true or false")
    return value


def _integer(minimum: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise _Invalid(f"an integer >= {minimum}")
        return value

    return check


def _non_negative_number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < math.inf:
        raise _Invalid("a number >= 0")
    return float(value)


def _port(value: Any) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)  # from an environment variable
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise _Invalid("a port number from 0 to 65535 (0: any free port)")
    return value


def _strings(value: Any) -> tuple[str, ...]:
    """A list of non-empty strings, or one comma-separated string (as an environment variable)."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) and i.strip() for i in items):
        raise _Invalid('a list of non-empty strings such as ["a", "b"], or "a,b"')
    return tuple(i.strip() for i in items)


def _choice(*allowed: str, case: Callable[[str], str] = str.lower) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or case(value) not in allowed:
            raise _Invalid("one of " + ", ".join(allowed))
        return case(value)

    return check


def _path(value: Any) -> Path:
    return Path(os.path.expandvars(_string(value))).expanduser()


_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b|b)?\s*$", re.IGNORECASE)
_SIZE_UNITS: dict[str, int] = {
    "b": 1,
    **{f"{p}b": 1000 ** (i + 1) for i, p in enumerate("kmgt")},
    **{f"{p}ib": 1024 ** (i + 1) for i, p in enumerate("kmgt")},
}
_SIZE_ALLOWED = (
    'a size such as "4GB", "512MiB" or "1.5 GB" (KB/MB/GB/TB are powers of 1000, '
    "KiB/MiB/GiB/TiB powers of 1024), or a whole number of bytes"
)


def parse_size(value: str | int) -> int:
    """Bytes in a size written as users write them.

    >>> parse_size("4GB"), parse_size("512MiB"), parse_size(1024)
    (4000000000, 536870912, 1024)
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    match = _SIZE_RE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(f"invalid size {value!r}: expected {_SIZE_ALLOWED}")
    number, unit = match.groups()
    return round(float(number) * _SIZE_UNITS[(unit or "b").lower()])


def _size(value: Any) -> int:
    try:
        return parse_size(value)
    except ConfigError:
        raise _Invalid(_SIZE_ALLOWED) from None


def parse_output_formats(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Output formats from ``"srt,vtt"``, ``"all"`` or a list; order kept, duplicates dropped.

    >>> parse_output_formats("srt, vtt"), parse_output_formats("all")[:2]
    (('srt', 'vtt'), ('txt', 'vtt'))
    """
    from .writers import WRITERS, expand_formats

    items = value.split(",") if isinstance(value, str) else list(value)
    names = [item.strip().lower() if isinstance(item, str) else repr(item) for item in items]
    for item, name in zip(items, names, strict=True):
        if name != "all" and name not in WRITERS:
            raise ConfigError(
                f"unknown output format {item!r}: use {', '.join(WRITERS)} or all, comma-separated"
            )
    if not names:
        raise ConfigError(f"no output format given: use {', '.join(WRITERS)} or all")
    return tuple(expand_formats(names))


def _formats(value: Any) -> tuple[str, ...]:
    if not isinstance(value, (str, list)):
        raise _Invalid('a string such as "srt,vtt" or "all", or a list such as ["srt", "vtt"]')
    try:
        return parse_output_formats(value)
    except ConfigError as error:
        raise _Invalid(str(error)) from None


def parse_temperatures(value: str | float | list[float] | tuple[float, ...]) -> tuple[float, ...]:
    """A temperature schedule from ``0.2``, ``"0,0.2,0.4"`` or a list (the range is
    :class:`~dattavani.options.TranscribeOptions`' to check).

    >>> parse_temperatures("0, 0.5"), parse_temperatures(0)
    ((0.0, 0.5), (0.0,))
    """
    items: list[Any]
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        items = [value]
    temperatures: list[float] = []
    for item in items:
        try:
            if isinstance(item, bool):
                raise ValueError
            temperatures.append(float(item))
        except (TypeError, ValueError):
            raise ConfigError(
                f"invalid temperature {item!r}: a number in [0, 2] or a comma-separated "
                "list rising in equal steps up to 1, such as 0,0.2,0.4,0.6,0.8,1"
            ) from None
    if not temperatures:
        raise ConfigError("no temperature given")
    return tuple(temperatures)


def _precision(value: Any) -> str:
    from .errors import ModelNotFoundError
    from .models.specs import PRECISIONS, normalize_precision

    if isinstance(value, str):
        with contextlib.suppress(ModelNotFoundError):
            return normalize_precision(value)
    raise _Invalid("one of " + ", ".join(PRECISIONS) + " (fp16, fp32 and int8 are accepted too)")


def _log_level(value: Any) -> str:
    return _choice(*LOG_LEVELS, case=str.upper)(value)


# --- sections ------------------------------------------------------------------------------------

_Checks = Mapping[str, Callable[[Any], Any]]

_ALIAS_CHECKS: _Checks = {
    "model_id": _string,
    "precision": _precision,
    "revision": _string,
}
_NATIVE_MODELS_CHECKS: _Checks = {
    "cache_dir": _path,
    "max_cached_models": _integer(1),
    "default_model": _string,
    "gpu_memory_limit": _size,
    "fallback_to_cpu": _boolean,
}
#: ``[transcribe]``'s keys of its own; any TranscribeOptions field is a key there too.
_TRANSCRIBE_CHECKS: _Checks = {
    "output_format": _formats,
    "output_dir": _path,
    "vad": _boolean,
    "device": _string,
    "threads": _integer(1),
    "workers": _integer(1),
    "overwrite": _boolean,
}
_LOGGING_CHECKS: _Checks = {"level": _log_level}
_SERVER_CHECKS: _Checks = {
    "host": _string,
    "port": _port,
    "model": _string,
    "preload": _boolean,
    "device": _string,
    "threads": _integer(1),
    "workers": _integer(1),
    "max_queue": _integer(0),
    "max_upload_size": _size,
    "model_ttl": _non_negative_number,
    "max_loaded_models": _integer(1),
    "api_keys": _strings,
    "cors_origins": _strings,
    "allow_model_paths": _boolean,
    "access_log": _boolean,
}
_SECTIONS = ("native_models", "transcribe", "logging", "server")

#: Environment variables read by :func:`load_config`: name -> (section, key). They beat the file.
ENV_OVERRIDES: Mapping[str, tuple[str, str]] = {
    "DATTAVANI_CACHE_DIR": ("native_models", "cache_dir"),
    "DATTAVANI_MODEL": ("native_models", "default_model"),
    "DATTAVANI_DEVICE": ("transcribe", "device"),
    "DATTAVANI_LOG_LEVEL": ("logging", "level"),
    "DATTAVANI_API_KEYS": ("server", "api_keys"),
}


def _check_table(
    table: Any, checks: _Checks, where: str, source: str, required: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Check every key of ``table`` against ``checks``; the errors name ``source`` and ``where``."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: [{where}] must be a table, got {_toml_type(table)}")
    unknown = sorted(set(table) - set(checks))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {where}.{unknown[0]}; allowed keys in [{where}]: "
            + ", ".join(checks)
        )
    missing = [key for key in required if key not in table]
    if missing:
        raise ConfigError(f"{source}: {where} needs {missing[0]} (a non-empty string)")
    checked = {}
    for key, value in table.items():
        try:
            checked[key] = checks[key](value)
        except _Invalid as invalid:
            raise ConfigError(
                f"{source}: {where}.{key} = {value!r} is invalid ({_toml_type(value)}); "
                f"allowed: {invalid}"
            ) from None
    return checked


def _check_transcribe(table: Any, source: str) -> dict[str, Any]:
    """``[transcribe]``: the command's settings by their checks, every other key as a
    TranscribeOptions field, checked by TranscribeOptions (the same code as a call's options)."""
    from .errors import OptionsError
    from .options import TranscribeOptions

    option_names = TranscribeOptions.field_names()
    checks = dict(_TRANSCRIBE_CHECKS, **dict.fromkeys(option_names, _any))
    checked = _check_table(table, checks, "transcribe", source)
    given = {key: checked.pop(key) for key in option_names if key in checked}
    if "temperature" in given and isinstance(given["temperature"], str):
        try:  # "0,0.2,0.4", as the flag takes it
            given["temperature"] = parse_temperatures(given["temperature"])
        except ConfigError as error:
            raise ConfigError(f"{source}: transcribe.temperature: {error}") from None
    for key, value in given.items():
        try:
            TranscribeOptions.from_kwargs(**{key: value})
        except OptionsError as error:
            raise ConfigError(
                f"{source}: transcribe.{key} = {value!r} is invalid ({_toml_type(value)}): {error}"
            ) from None
    try:
        options = TranscribeOptions.from_kwargs(**given)
    except OptionsError as error:
        raise ConfigError(f"{source}: [transcribe]: {error}") from None
    # As TranscribeOptions holds them: "English" is "en", a list is a tuple.
    checked["options"] = {key: getattr(options, key) for key in given}
    return checked


def _any(value: Any) -> Any:
    return value


def _toml_type(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a float", str: "a string"}
    names.update({list: "an array", dict: "a table"})
    return names.get(type(value), type(value).__name__)


def config_from_dict(data: Mapping[str, Any], source: str = "<config>") -> Config:
    """Check a parsed TOML document and build a :class:`Config`; ``source`` names it in errors.

    >>> config_from_dict({"logging": {"level": "info"}}).logging.level
    'INFO'
    """
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        raise ConfigError(
            f"{source}: unknown section [{unknown[0]}]; allowed sections: "
            + ", ".join(f"[{s}]" for s in _SECTIONS)
            + ", [native_models.models]"
        )
    native_table = data.get("native_models", {})
    aliases_table: Any = {}
    if isinstance(native_table, dict):
        native_table = dict(native_table)
        aliases_table = native_table.pop("models", {})
    native = _check_table(native_table, _NATIVE_MODELS_CHECKS, "native_models", source)
    if not isinstance(aliases_table, dict):
        raise ConfigError(
            f"{source}: [native_models.models] must be a table of aliases such as "
            'base = { model_id = "openai/whisper-base", precision = "fp16" }, '
            f"got {_toml_type(aliases_table)}"
        )
    aliases = {
        name: ModelAlias(
            **_check_table(
                spec, _ALIAS_CHECKS, f"native_models.models.{name}", source, ("model_id",)
            )
        )
        for name, spec in aliases_table.items()
    }
    transcribe = _check_transcribe(data.get("transcribe", {}), source)
    logging_values = _check_table(data.get("logging", {}), _LOGGING_CHECKS, "logging", source)
    server = _check_table(data.get("server", {}), _SERVER_CHECKS, "server", source)
    return Config(
        native_models=NativeModelsConfig(**native, models=aliases),
        transcribe=TranscribeConfig(**transcribe),
        logging=LoggingConfig(**logging_values),
        server=ServerConfig(**server),
        source=None if source == "<config>" else Path(source),
    )


def _read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:
        import tomli as tomllib
    try:
        with path.open("rb") as file:
            document: dict[str, Any] = tomllib.load(file)
            return document
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the config file: {error.strerror}") from None


def user_config_path() -> Path:
    """``dattavani.toml`` in the user config folder (platformdirs), whether or not it exists."""
    import platformdirs

    return Path(platformdirs.user_config_dir("dattavani", appauthor=False)) / CONFIG_FILENAME


def find_config_file(
    explicit: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Path | None:
    """The config file in effect, by the lookup order in the module docstring; None if none.

    A file named by ``explicit`` or ``$DATTAVANI_CONFIG`` must exist (ConfigError otherwise):
    asking for a file and silently getting defaults hides mistakes.
    """
    env = os.environ if env is None else env
    for path, named_by in (
        (explicit, "--config"),
        (env.get("DATTAVANI_CONFIG"), "DATTAVANI_CONFIG"),
    ):
        if path:
            if not Path(path).is_file():
                raise ConfigError(f"{path}: config file not found (named by {named_by})")
            return Path(path)
    for candidate in (Path.cwd() / CONFIG_FILENAME, user_config_path()):
        try:
            if candidate.is_file():
                return candidate
        except OSError as error:
            # A service that drops privileges may keep a HOME it cannot read: no config there.
            logging.getLogger(__name__).warning("cannot look for %s: %s", candidate, error)
    return None


def load_config(
    path: str | os.PathLike[str] | None = None, *, env: Mapping[str, str] | None = None
) -> Config:
    """Find, read and check the config file, then apply the environment overrides.

    This is the library's only implicit read of the configuration: everything that takes a
    ``config=`` (:class:`~dattavani.Transcriber`, :class:`~dattavani.models.ModelCache`) calls it
    when given none. The file is found on every call (the lookup order can change with the
    working folder and the environment) but read and checked once for as long as it is
    unchanged, so a call costs a few ``stat()`` calls.

    >>> load_config("dattavani.toml").transcribe.output_format   # doctest: +SKIP
    ('srt', 'vtt')
    """
    env = os.environ if env is None else env
    source = find_config_file(path, env)
    overrides = tuple((name, env.get(name, "")) for name in ENV_OVERRIDES)
    return _load_config(source, _file_stamp(source), overrides)


def _file_stamp(source: Path | None) -> tuple[str, int, int] | None:
    """What tells a rewritten config file from the one read before."""
    if source is None:
        return None
    try:
        stat = source.stat()
    except OSError as error:
        raise ConfigError(f"{source}: cannot read the config file: {error.strerror}") from None
    return (str(source.resolve()), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=32)
def _load_config(
    source: Path | None,
    stamp: tuple[str, int, int] | None,
    overrides: tuple[tuple[str, str], ...],
) -> Config:
    config = Config() if source is None else config_from_dict(_read_toml(source), str(source))
    return _apply_env(config, dict(overrides))


def _apply_env(config: Config, env: Mapping[str, str]) -> Config:
    sections: dict[str, Any] = {
        "native_models": config.native_models,
        "transcribe": config.transcribe,
        "logging": config.logging,
        "server": config.server,
    }
    checks = {
        "native_models": _NATIVE_MODELS_CHECKS,
        "transcribe": _TRANSCRIBE_CHECKS,
        "logging": _LOGGING_CHECKS,
        "server": _SERVER_CHECKS,
    }
    used = []
    for variable, (section, key) in ENV_OVERRIDES.items():
        value = env.get(variable)
        if not value:
            continue
        try:
            checked = checks[section][key](value)
        except _Invalid as invalid:
            raise ConfigError(
                f"environment variable {variable}={value!r} is invalid; allowed: {invalid}"
            ) from None
        sections[section] = replace(sections[section], **{key: checked})
        used.append(variable)
    return replace(config, **sections, env_overrides=tuple(used))
