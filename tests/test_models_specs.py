"""Model specs: aliases and precisions, hub repo ids, where aliases come from, close matches."""

from __future__ import annotations

from pathlib import Path

import pytest

from dattavani.convert import ggml_precision
from dattavani.errors import ModelLoadError, ModelNotFoundError
from dattavani.models import resolve_model
from dattavani.models.specs import (
    AliasSpec,
    HubSource,
    RepoSpec,
    alias_hub_sources,
    parse_spec,
    safe_name,
)


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATTAVANI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.mark.parametrize(
    ("spec", "precision", "expected"),
    [
        ("tiny", None, AliasSpec("tiny", "f16")),
        ("small.en-q5_0", None, AliasSpec("small.en", "q5_0")),
        ("large-v3-turbo-q8_0", None, AliasSpec("large-v3-turbo", "q8_0")),
        ("turbo", None, AliasSpec("large-v3-turbo", "f16")),
        ("large-q4_0", None, AliasSpec("large-v3", "q4_0")),
        ("base", "fp32", AliasSpec("base", "f32")),
        ("medium.en", "int8", AliasSpec("medium.en", "q8_0")),
        ("openai/whisper-small", None, RepoSpec("openai/whisper-small", None, "main", "f16")),
        (
            "Systran/faster-whisper-base@v1.0",
            "q5_1",
            RepoSpec("Systran/faster-whisper-base", None, "v1.0", "q5_1"),
        ),
        (
            "ggerganov/whisper.cpp:ggml-base.bin@refs/pr/3",
            None,
            RepoSpec("ggerganov/whisper.cpp", "ggml-base.bin", "refs/pr/3", None),
        ),
    ],
)
def test_parse_spec(spec: str, precision: str | None, expected: AliasSpec | RepoSpec) -> None:
    assert parse_spec(spec, precision) == expected


def test_cache_keys_are_file_names() -> None:
    assert parse_spec("small.en-q5_0").cache_key == "small.en-q5_0"
    assert parse_spec("org/model@refs/pr/3").cache_key == "org--model@refs--pr--3-f16"
    assert safe_name("a/b:c.bin@x y") == "a--b--c.bin@x_y"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tiny-en", "did you mean tiny.en"),
        ("bse.en", "did you mean base.en"),
        ("small-q3_k", "did you mean small-q8_0, small-q5_1"),
        ("whisper", "an alias"),
    ],
)
def test_unknown_names_list_close_matches(spec: str, message: str) -> None:
    with pytest.raises(ModelNotFoundError, match=message):
        resolve_model(spec)


def test_contradicting_precisions_and_bad_precisions_are_refused() -> None:
    with pytest.raises(ModelNotFoundError, match="asks for precision q5_0"):
        parse_spec("base-q5_0", "f16")
    with pytest.raises(ModelNotFoundError, match="unknown precision 'q2'"):
        parse_spec("base", "q2")


def test_missing_paths_are_reported_as_paths(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"models/ggml-base\.bin: no such file"):
        resolve_model("models/ggml-base.bin")
    with pytest.raises(ModelNotFoundError, match="no such file or folder"):
        resolve_model(tmp_path / "gone")


def test_alias_sources_cheapest_first() -> None:
    assert alias_hub_sources(AliasSpec("base.en", "f16")) == [
        HubSource("ggerganov/whisper.cpp", "ggml-base.en.bin"),
        HubSource("openai/whisper-base.en"),
        HubSource("Systran/faster-whisper-base.en"),
    ]
    assert alias_hub_sources(AliasSpec("large-v3-turbo", "q5_0")) == [
        HubSource("ggerganov/whisper.cpp", "ggml-large-v3-turbo-q5_0.bin")
    ]
    assert alias_hub_sources(AliasSpec("tiny.en", "q4_0")) == []  # quantized from f16 here
    assert alias_hub_sources(AliasSpec("large-v1", "f32")) == [
        HubSource("openai/whisper-large"),
        HubSource("Systran/faster-whisper-large-v1"),
    ]


def test_local_ggml_file_is_used_in_place(tiny_en_ggml: Path, tmp_path: Path) -> None:
    model = resolve_model(tiny_en_ggml, cache_dir=tmp_path)
    assert (model.path, model.source, model.precision) == (tiny_en_ggml, "file", "f16")
    assert not (tmp_path / "models").exists()

    not_a_model = tmp_path / "notes.bin"
    not_a_model.write_bytes(b"hello world" * 10)
    with pytest.raises(ModelLoadError, match="not a whisper GGML model"):
        ggml_precision(not_a_model)


def test_local_ctranslate2_folder_is_converted_once(ct2_tiny_en: Path, tmp_path: Path) -> None:
    first = resolve_model(ct2_tiny_en, cache_dir=tmp_path, precision="q8_0")
    assert (first.source, first.precision) == ("file", "q8_0")
    assert first.metadata["model_id"] == str(ct2_tiny_en.resolve())
    again = resolve_model(ct2_tiny_en, cache_dir=tmp_path, precision="q8_0")
    assert (again.source, again.path) == ("cache", first.path)
