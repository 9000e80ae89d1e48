"""Tests for dattavani.convert.formats: which format a folder listing or a path holds, and which
files converting it reads. Model-free: only file names and empty files."""

from __future__ import annotations

from pathlib import Path

import pytest

from dattavani.convert.formats import (
    CT2_FILES,
    TRANSFORMERS_FILES,
    checkpoint_format,
    files_to_fetch,
    folder_format,
)
from dattavani.errors import ConversionError


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["model.bin", "config.json", "vocabulary.json"], "ctranslate2"),
        # The converter, not the listing, names a missing vocabulary.
        (["model.bin"], "ctranslate2"),
        (["config.json", "model.safetensors", "vocab.json"], "transformers"),
        (["config.json", "model.safetensors.index.json", "vocab.json"], "transformers"),
        # Both: the safetensors are the full-precision weights.
        (["config.json", "model.bin", "tokenizer.json", "model.safetensors"], "transformers"),
        # torch.save weights: read only where no safetensors are beside them.
        (["config.json", "pytorch_model.bin", "model.safetensors"], "transformers"),
        (["config.json", "pytorch_model.bin"], "transformers"),
        (["config.json", "pytorch_model.bin.index.json"], "transformers"),
    ],
)
def test_folder_format_from_names(names: list[str], expected: str) -> None:
    assert folder_format(names, "repo") == expected


@pytest.mark.parametrize(
    ("names", "reason"),
    [
        (["README.md", "ggml-tiny.bin", "models/ggml-base.bin"], "GGML files to choose from"),
        (["README.md", "config.json"], "neither a CTranslate2 model"),
        ([], "neither a CTranslate2 model"),
    ],
)
def test_folder_format_refuses_with_the_reason(names: list[str], reason: str) -> None:
    with pytest.raises(ConversionError, match=reason) as err:
        folder_format(names, "owner/repo@main")
    assert str(err.value).startswith("owner/repo@main: ")


def test_the_ggml_files_to_choose_from_are_named() -> None:
    with pytest.raises(ConversionError) as err:
        folder_format(["ggml-tiny.bin", "models/ggml-base.bin"], "r")
    assert "ggml-tiny.bin, models/ggml-base.bin" in str(err.value)


def test_checkpoint_format_of_paths(tmp_path: Path) -> None:
    ct2 = tmp_path / "ct2"
    ct2.mkdir()
    (ct2 / "model.bin").write_bytes(b"")
    (tmp_path / "small.en.pt").write_bytes(b"")
    (tmp_path / "ggml-tiny.bin").write_bytes(b"")
    assert checkpoint_format(ct2) == "ctranslate2"
    assert checkpoint_format(str(tmp_path / "small.en.pt")) == "openai-pt"
    # Any other file is taken for GGML; its reader checks it (ggml_precision, the native load).
    assert checkpoint_format(tmp_path / "ggml-tiny.bin") == "ggml"
    with pytest.raises(ConversionError, match="no such file or directory") as err:
        checkpoint_format(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConversionError, match=f"{empty}: neither"):
        checkpoint_format(empty)


def test_files_to_fetch() -> None:
    safetensors = ["config.json", "model.safetensors", "pytorch_model.bin", "tf_model.h5"]
    pickles = ["config.json", "pytorch_model.bin.index.json", "pytorch_model-00001-of-00002.bin"]
    assert files_to_fetch("ctranslate2", ["model.bin"]) == CT2_FILES
    assert files_to_fetch("transformers", safetensors) == TRANSFORMERS_FILES
    # The torch.save weights only where they are the only weights; never TF or Flax ones.
    fetched = files_to_fetch("transformers", pickles)
    assert {"pytorch_model*.bin", "pytorch_model.bin.index.json", "config.json"} <= set(fetched)
    assert not any("safetensors" in p or p.startswith(("tf_", "flax_")) for p in fetched)
    # Not known yet (offline: only the cache's files are used): every format's.
    assert set(files_to_fetch(None, [])) == {*CT2_FILES, *TRANSFORMERS_FILES}
    assert not any(
        p.startswith(("pytorch_model", "tf_model", "flax_model")) for p in files_to_fetch(None, [])
    )
