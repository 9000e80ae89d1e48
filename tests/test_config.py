"""dattavani.toml: lookup order, precedence, every validation error, and the log level rules."""

from __future__ import annotations

import logging
import os
import textwrap
from pathlib import Path

import pytest

from dattavani.config import (
    ModelAlias,
    find_config_file,
    load_config,
    parse_output_formats,
    parse_size,
    parse_temperatures,
)
from dattavani.errors import ConfigError
from dattavani.log import resolve_log_level, setup_logging

# The shape our users already write (the example), every section present.
SEED_EXAMPLE = """
[native_models]
cache_dir = "~/models/dattavani"
max_cached_models = 3
default_model = "base"
gpu_memory_limit = "4GB"
fallback_to_cpu = true

[native_models.models]
base = { model_id = "openai/whisper-base", precision = "fp16" }
small-q = { model_id = "openai/whisper-small", precision = "q5_0", revision = "main" }

[transcribe]
language = "en"
output_format = "srt,vtt"
word_timestamps = true
hallucination_silence_threshold = 2
threads = 4
beam_size = 5
temperature = [0.4, 0.7, 1.0]

[logging]
level = "info"
"""


def write(folder: Path, text: str, name: str = "dattavani.toml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """No config variables from the outside, an empty user config dir, an empty working dir."""
    for name in ("CONFIG", "CACHE_DIR", "MODEL", "DEVICE", "LOG_LEVEL"):
        monkeypatch.delenv(f"DATTAVANI_{name}", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return {}


def test_seed_example_loads_with_every_value_converted(tmp_path: Path, clean_env: dict) -> None:
    config = load_config(write(tmp_path, SEED_EXAMPLE), env=clean_env)
    models = config.native_models
    assert models.cache_dir == Path.home() / "models" / "dattavani"
    assert (models.max_cached_models, models.default_model) == (3, "base")
    assert models.gpu_memory_limit == 4_000_000_000
    assert models.fallback_to_cpu is True
    assert models.models["base"] == ModelAlias("openai/whisper-base", precision="f16")
    assert models.models["small-q"] == ModelAlias("openai/whisper-small", "q5_0", "main")
    assert config.resolve_model_alias("base").model_id == "openai/whisper-base"
    assert config.resolve_model_alias("tiny.en") == ModelAlias("tiny.en")
    t = config.transcribe
    assert (t.options["language"], t.output_format) == ("en", ("srt", "vtt"))
    assert (t.options["beam_size"], t.options["temperature"]) == (5, (0.4, 0.7, 1.0))
    assert t.options["word_timestamps"] is True and t.threads == 4
    assert t.options["hallucination_silence_threshold"] == 2.0
    assert t.device == "auto" and t.overwrite is False  # untouched keys keep their defaults
    assert config.logging.level == "INFO"
    assert config.source == tmp_path / "dattavani.toml"


def test_lookup_order_flag_then_env_then_cwd_then_user_dir(
    tmp_path: Path, clean_env: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert find_config_file(env={}) is None
    assert load_config(env={}).source is None
    (tmp_path / "xdg" / "dattavani").mkdir(parents=True)
    user = write(tmp_path / "xdg" / "dattavani", "")
    assert find_config_file(env={}) == user
    cwd = write(Path.cwd(), "")
    assert find_config_file(env={}) == cwd
    from_env = write(tmp_path, "", name="env.toml")
    assert find_config_file(env={"DATTAVANI_CONFIG": str(from_env)}) == from_env
    explicit = write(tmp_path, "", name="explicit.toml")
    assert find_config_file(explicit, env={"DATTAVANI_CONFIG": str(from_env)}) == explicit


@pytest.mark.parametrize("named_by", ["--config", "DATTAVANI_CONFIG"])
def test_a_named_config_file_must_exist(tmp_path: Path, named_by: str) -> None:
    missing = tmp_path / "nope.toml"
    with pytest.raises(
        ConfigError, match=rf"nope\.toml: config file not found \(named by {named_by}"
    ):
        if named_by == "--config":
            find_config_file(missing, env={})
        else:
            find_config_file(None, env={"DATTAVANI_CONFIG": str(missing)})


def test_environment_beats_the_file_and_the_file_beats_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
        [native_models]
        default_model = "small"
        cache_dir = "/from/file"
        [transcribe]
        device = "cpu"
        threads = 3
        [logging]
        level = "ERROR"
        """,
    )
    env = {"DATTAVANI_MODEL": "tiny.en", "DATTAVANI_LOG_LEVEL": "debug"}
    config = load_config(path, env=env)
    assert config.native_models.default_model == "tiny.en"  # env
    assert config.logging.level == "DEBUG"  # env
    assert config.native_models.cache_dir == Path("/from/file")  # file
    assert (config.transcribe.device, config.transcribe.threads) == ("cpu", 3)  # file
    assert "beam_size" not in config.transcribe.options  # TranscribeOptions' default
    assert config.env_overrides == ("DATTAVANI_MODEL", "DATTAVANI_LOG_LEVEL")
    env_cache = load_config(path, env={"DATTAVANI_CACHE_DIR": str(tmp_path / "c")})
    assert env_cache.native_models.cache_dir == tmp_path / "c"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        # unknown key: names the key and lists what the section allows
        (
            "[native_models]\ncache_directory = 'x'",
            r"unknown key native_models\.cache_directory; "
            r"allowed keys in \[native_models\]: cache_dir, max_cached_models",
        ),
        ("[transcribe]\nbeam = 5", r"unknown key transcribe\.beam; allowed keys .*beam_size"),
        (
            "[native_models.models]\nbase = { model_id = 'x', dtype = 'f16' }",
            r"unknown key native_models\.models\.base\.dtype; allowed keys .*model_id, precision",
        ),
        (
            "[output]\nformat = 'srt'",
            r"unknown section \[output\]; allowed sections: "
            r"\[native_models\], \[transcribe\], \[logging\]",
        ),
        # bad size
        (
            "[native_models]\ngpu_memory_limit = '4 gigs'",
            r"native_models\.gpu_memory_limit = '4 gigs' is invalid \(a string\); allowed: a size "
            r"such as \"4GB\"",
        ),
        ("[native_models]\ngpu_memory_limit = -1", r"gpu_memory_limit = -1 is invalid"),
        # wrong type
        (
            "[native_models]\nmax_cached_models = '3'",
            r"max_cached_models = '3' is invalid \(a string\); allowed: an integer >= 1",
        ),
        ("[native_models]\nmax_cached_models = 0", r"allowed: an integer >= 1"),
        ("[native_models]\nfallback_to_cpu = 'yes'", r"fallback_to_cpu = 'yes' .*true or false"),
        ("[transcribe]\nword_timestamps = 1", r"word_timestamps = 1 is invalid \(an integer\)"),
        ("[transcribe]\nmultilingual = 'yes'", r"multilingual = 'yes' is invalid \(a string\)"),
        ("[transcribe]\nthreads = 2.5", r"threads = 2.5 is invalid \(a float\)"),
        (
            "[transcribe]\nhallucination_silence_threshold = 0",
            r"hallucination_silence_threshold = 0 is invalid \(an integer\): "
            r"hallucination_silence_threshold must be > 0",
        ),
        ("native_models = 3", r"\[native_models\] must be a table, got an integer"),
        (
            "[native_models]\nmodels = 'base'",
            r"\[native_models\.models\] must be a table of aliases",
        ),
        (
            "[native_models.models]\nbase = 'openai/whisper-base'",
            r"\[native_models\.models\.base\] must be a table, got a string",
        ),
        # bad choices
        (
            "[native_models.models]\nbase = { model_id = 'x', precision = 'fp8' }",
            r"precision = 'fp8' is invalid .*allowed: one of f32, f16, q8_0",
        ),
        (
            "[native_models.models]\nbase = { precision = 'f16' }",
            r"native_models\.models\.base needs model_id",
        ),
        (
            "[transcribe]\ntask = 'summarise'",
            r"task = 'summarise' is invalid \(a string\): task must be 'transcribe' or 'translate'",
        ),
        ("[transcribe]\noutput_format = 'srt,docx'", r"unknown output format 'docx'"),
        ("[transcribe]\ntemperature = [0.0, 3.0]", r"temperatures must be in \[0, 2\]"),
        # any TranscribeOptions field, checked by TranscribeOptions
        ("[transcribe]\nmax_initial_timestamp = -1", r"max_initial_timestamp must be >= 0"),
        ("[transcribe]\nlanguage = 'klingon'", r"transcribe\.language .*unknown language"),
        ("[transcribe]\ntemperature = '0,hot'", r"transcribe\.temperature: invalid temperature"),
        ("[logging]\nlevel = 'loud'", r"level = 'loud' .*one of DEBUG, INFO, WARNING"),
        # [server]
        (
            "[server]\nport = 70000",
            r"server\.port = 70000 is invalid .*port number from 0 to 65535",
        ),
        ("[server]\nmax_queue = -1", r"server\.max_queue = -1 .*an integer >= 0"),
        ("[server]\nworkers = 0", r"server\.workers = 0 .*an integer >= 1"),
        ("[server]\nmax_upload_size = 'big'", r"server\.max_upload_size = 'big' .*a size such"),
        ("[server]\nmodel_ttl = -5", r"server\.model_ttl = -5 .*a number >= 0"),
        ("[server]\napi_keys = 'x'", None),
        ("[server]\napi_keys = ['a', '']", r"server\.api_keys = \['a', ''\] .*non-empty strings"),
        ("[server]\ncors_origins = [1]", r"server\.cors_origins = \[1\] .*list of non-empty"),
        (
            "[server]\nbind = '0.0.0.0'",
            r"unknown key server\.bind; allowed keys in \[server\]: host",
        ),
        # not TOML at all
        ("[transcribe\nlanguage = 'en'", r"not valid TOML: .*line 1"),
    ],
)
def test_each_validation_error_names_file_key_and_what_is_allowed(
    tmp_path: Path, toml: str, expected: str | None
) -> None:
    path = write(tmp_path, toml)
    if expected is None:  # valid after all: a single key may be written as a string
        load_config(path, env={})
        return
    with pytest.raises(ConfigError, match=expected) as caught:
        load_config(path, env={})
    assert str(caught.value).startswith(str(path))


def test_server_table_values_defaults_and_the_api_keys_variable(tmp_path: Path) -> None:
    defaults = load_config(write(tmp_path, ""), env={}).server
    assert (defaults.host, defaults.port, defaults.max_upload_size) == ("127.0.0.1", 8000, 25 << 20)
    assert defaults.api_keys == () and not defaults.allow_model_paths
    path = write(
        tmp_path,
        """
        [server]
        host = "0.0.0.0"
        port = 9000
        model = "base.en"
        preload = true
        workers = 4
        max_queue = 0
        max_upload_size = "100MB"
        model_ttl = 60
        max_loaded_models = 1
        api_keys = ["one", "two"]
        cors_origins = ["https://notes.example"]
        """,
    )
    server = load_config(path, env={}).server
    assert (server.host, server.port, server.model, server.preload) == (
        "0.0.0.0",
        9000,
        "base.en",
        True,
    )
    assert (server.workers, server.max_queue, server.max_upload_size) == (4, 0, 100_000_000)
    assert (server.model_ttl, server.max_loaded_models) == (60.0, 1)
    assert server.api_keys == ("one", "two")
    assert server.cors_origins == ("https://notes.example",)
    from_env = load_config(path, env={"DATTAVANI_API_KEYS": "k1, k2"})
    assert from_env.server.api_keys == ("k1", "k2")
    assert from_env.env_overrides == ("DATTAVANI_API_KEYS",)


def test_a_bad_environment_value_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"DATTAVANI_LOG_LEVEL='chatty' is invalid; allowed: one"):
        load_config(None, env={"DATTAVANI_LOG_LEVEL": "chatty", "DATTAVANI_CONFIG": ""})


def test_sizes_formats_and_temperatures_parse_as_documented() -> None:
    assert parse_size("4GB") == 4 * 1000**3
    assert parse_size("4 gib") == 4 * 1024**3
    assert parse_size("1.5GB") == 1_500_000_000
    assert parse_size("512MiB") == 512 * 1024**2
    assert parse_size("100") == 100 == parse_size(100)
    for bad in ("", "GB", "4 XB", "-4GB", "4e9"):
        with pytest.raises(ConfigError, match="invalid size"):
            parse_size(bad)
    assert parse_output_formats("all") == ("txt", "vtt", "srt", "tsv", "json")
    assert parse_output_formats(["SRT", "srt", "vtt"]) == ("srt", "vtt")
    assert parse_temperatures("0,0.2") == (0.0, 0.2)
    with pytest.raises(ConfigError, match="invalid temperature 'hot'"):
        parse_temperatures("hot")


def test_log_level_precedence_flag_then_v_then_env_then_config() -> None:
    env = {"DATTAVANI_LOG_LEVEL": "ERROR"}
    assert resolve_log_level("debug", verbose=1, env=env, config_level="INFO") == logging.DEBUG
    assert resolve_log_level(None, verbose=1, env=env, config_level="INFO") == logging.INFO
    assert resolve_log_level(None, verbose=2, env=env) == logging.DEBUG
    assert resolve_log_level(None, env=env, config_level="INFO") == logging.ERROR
    assert resolve_log_level(None, env={}, config_level="INFO") == logging.INFO
    with pytest.raises(ConfigError, match=r"--log-level: unknown log level 'loud'"):
        resolve_log_level("loud", env={})


def test_setup_logging_installs_one_handler_and_native_lines_reach_it() -> None:
    import io

    logger = logging.getLogger("dattavani")
    before = list(logger.handlers)
    stream = io.StringIO()
    try:
        first = setup_logging(logging.INFO, stream)
        second = setup_logging(logging.INFO, stream)
        assert first not in logger.handlers and second in logger.handlers
        logging.getLogger("dattavani.native").warning("from whisper.cpp")
        logging.getLogger("dattavani.native").debug("detail")
        logging.getLogger("dattavani.devices").info("chose the CPU")
        lines = stream.getvalue().splitlines()
        assert [line.split(" ", 1)[1] for line in lines] == [
            "WARNING dattavani.native: from whisper.cpp",
            "INFO dattavani.devices: chose the CPU",
        ]
    finally:
        for handler in list(logger.handlers):
            if handler not in before:
                logger.removeHandler(handler)
        logger.propagate = True
        logger.setLevel(logging.NOTSET)


def test_the_file_is_read_once_until_it_changes(tmp_path: Path, clean_env: dict) -> None:
    path = write(tmp_path, "[transcribe]\nbeam_size = 2\n")
    first = load_config(path, env={})
    assert load_config(path, env={}) is first  # read and checked once
    path.write_text("[transcribe]\nbeam_size = 3\n", encoding="utf-8")
    # Dated a second later: a file system's clock may not tell two quick writes apart.
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 10**9))
    assert load_config(path, env={}).transcribe.options["beam_size"] == 3
    # The environment is read on every call: an override set later is applied.
    assert load_config(path, env={"DATTAVANI_DEVICE": "cpu"}).transcribe.device == "cpu"
    assert load_config(path, env={}).transcribe.device == "auto"


def test_any_transcription_option_is_a_transcribe_key(tmp_path: Path, clean_env: dict) -> None:
    path = write(
        tmp_path,
        """
        [transcribe]
        max_initial_timestamp = 0.5
        language = "English"
        temperature = "0,0.5,1"
        suppress_tokens = [-1, 50]
        batch_size = 8
        """,
    )
    options = load_config(path, env={}).transcribe.options
    assert options == {
        "max_initial_timestamp": 0.5,
        "language": "en",
        "temperature": (0.0, 0.5, 1.0),
        "suppress_tokens": (-1, 50),
        "batch_size": 8,
    }
    multilingual = write(tmp_path, "[transcribe]\nmultilingual = true\n")
    assert load_config(multilingual, env={}).transcribe.options == {"multilingual": True}
