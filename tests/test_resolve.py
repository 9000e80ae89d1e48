"""dattavani.models.resolve: what each kind of spec resolves to, offline, without loading a model
(the hub's part is in test_models_hub.py, packages in test_models_packages.py)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dattavani.convert import ggml_precision
from dattavani.errors import ModelLoadError, ModelNotFoundError
from dattavani.models import resolve_model


def test_a_ggml_file_is_used_where_it_is_at_its_own_precision(
    tiny_en_ggml: Path, tmp_path: Path
) -> None:
    model = resolve_model(tiny_en_ggml, cache_dir=tmp_path, offline=True)
    assert (model.path, model.source, model.precision) == (tiny_en_ggml, "file", "f16")
    assert not list(tmp_path.rglob("local-*"))  # nothing made in the cache


def test_a_ggml_file_at_another_precision_is_quantized_into_the_cache_once(
    tiny_en_ggml: Path, tmp_path: Path
) -> None:
    first = resolve_model(tiny_en_ggml, cache_dir=tmp_path, offline=True, precision="q8_0")
    assert first.precision == "q8_0" and ggml_precision(first.path) == "q8_0"
    assert first.path.is_relative_to(tmp_path)
    again = resolve_model(tiny_en_ggml, cache_dir=tmp_path, offline=True, precision="int8")
    assert again.path == first.path  # "int8" is q8_0's other spelling; made once


def test_a_checkpoint_folder_is_converted_at_the_default_precision(
    ct2_tiny_en: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "ct2"
    shutil.copytree(ct2_tiny_en, folder)
    model = resolve_model(folder, cache_dir=tmp_path / "cache", offline=True)
    assert (model.source, model.precision, model.metadata["source_format"]) == (
        "file",
        "f16",
        "ctranslate2",
    )
    on_cpu = resolve_model(
        folder, cache_dir=tmp_path / "cache", offline=True, default_precision="q8_0"
    )
    assert on_cpu.precision == "q8_0" and on_cpu.path != model.path


@pytest.mark.parametrize(
    ("spec", "error", "reason"),
    [
        ("models/ggml-missing.bin", ModelNotFoundError, "no such file"),
        ("tiny.en-q9_9", ModelNotFoundError, "tiny.en-q9_9"),
        ("whisper-tiny-typo", ModelNotFoundError, "whisper-tiny-typo"),
    ],
)
def test_names_that_are_nothing(tmp_path: Path, spec: str, error: type, reason: str) -> None:
    with pytest.raises(error, match=reason):
        resolve_model(spec, cache_dir=tmp_path, offline=True)


def test_a_file_that_is_no_model(tmp_path: Path) -> None:
    notes = tmp_path / "notes.bin"
    notes.write_bytes(b"not a model at all" * 10)
    with pytest.raises(ModelLoadError, match="not a whisper GGML model file"):
        resolve_model(notes, cache_dir=tmp_path / "cache", offline=True)
