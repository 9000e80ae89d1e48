"""Models by name from a hub: real huggingface_hub against a real HTTP server on 127.0.0.1.

The server (tests/hub_server.py) serves whisper.cpp's GGML repo, a faster-whisper (CTranslate2)
repo and an openai transformers repo, all holding the real tiny.en. huggingface_hub is pointed
at it with HF_ENDPOINT; the server's request log shows what was fetched, and when nothing was.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

import test_convert_transformers as converter_tests
import torch_save
from dattavani import Transcriber
from dattavani.config import Config, config_from_dict
from dattavani.convert import ggml_precision
from dattavani.errors import ConversionError, DownloadError, ModelNotFoundError
from dattavani.models import LoadParameters, resolve_model
from dattavani.testing import JFK_WORDS, words
from hub_server import HubServer, folder_files

# The transformers tiny.en of the converter tests: safetensors written from the CTranslate2 weights.
ct2_f16 = converter_tests.ct2_f16
tiny_en_weights = converter_tests.tiny_en_weights
hf_tiny_en = converter_tests.hf_tiny_en

GGML_REPO = "ggerganov/whisper.cpp"
CT2_REPO = "Systran/faster-whisper-tiny.en"
HF_REPO = "openai/whisper-tiny.en"


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fresh huggingface_hub and dattavani caches, online, installed model packages ignored."""
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("DATTAVANI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DATTAVANI_MODEL_PACKAGES", "0")
    for name in ("HF_HUB_CACHE", "HF_HUB_OFFLINE", "HF_TOKEN", "DATTAVANI_CACHE_MAX_SIZE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    with HubServer() as server:
        monkeypatch.setenv("HF_ENDPOINT", server.endpoint)
        yield server


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cache_entries(tmp_path: Path) -> list[str]:
    models = tmp_path / "cache" / "models"
    return sorted(p.name for p in models.iterdir()) if models.is_dir() else []


def resolve_in_subprocess(spec: str, *extra: str) -> subprocess.Popen[str]:
    """Start another interpreter that resolves ``spec`` and prints the result as JSON."""
    code = textwrap.dedent(
        f"""
        import json, logging, sys
        logging.basicConfig(level=logging.INFO, stream=sys.stderr)
        from dattavani.models import LoadParameters, resolve_model
        model = resolve_model({spec!r}, progress=False)
        print(json.dumps({{"path": str(model.path), "source": model.source}}))
        """
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_until(condition: Callable[[], bool], process: subprocess.Popen[str], what: str) -> None:
    """Poll ``condition`` while ``process`` runs (a generous deadline only catches a hang)."""
    deadline = time.monotonic() + 300
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the child ended before {what}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no {what} in 300 s")
        time.sleep(0.01)


def finish(process: subprocess.Popen[str]) -> tuple[dict[str, str], str]:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return json.loads(out), err


# -- downloads and conversions ---------------------------------------------------------------------


def test_alias_from_a_ctranslate2_repo_is_converted_transcribed_and_then_cached(
    hub: HubServer, ct2_tiny_en: Path, jfk_audio: Path, tmp_path: Path
) -> None:
    commit = hub.add_repo(CT2_REPO, folder_files(ct2_tiny_en))

    model = resolve_model("tiny.en", progress=False)

    assert model.source == "hub"
    assert (model.model_id, model.precision) == ("tiny.en", "f16")
    assert model.metadata["source_repo"] == CT2_REPO
    assert model.metadata["source_commit"] == commit
    assert model.metadata["source_format"] == "ctranslate2"
    assert model.path.parent == tmp_path / "cache" / "models" / "tiny.en-f16"
    assert model.metadata["sha256"] == sha256(model.path)
    # Downloaded into huggingface_hub's cache under HF_HOME, then converted into ours.
    snapshot = tmp_path / "hf-home" / "hub" / "models--Systran--faster-whisper-tiny.en"
    assert (snapshot / "snapshots" / commit / "model.bin").is_file()
    result = Transcriber(model.path, device="cpu", threads=2).transcribe(jfk_audio)
    assert words(result.text) == JFK_WORDS

    requests_before = len(hub.requests)
    cached, _ = finish(resolve_in_subprocess("tiny.en"))
    assert cached == {"path": str(model.path), "source": "cache"}
    assert len(hub.requests) == requests_before  # the second process asked the hub nothing


def test_whisper_cpp_ggml_file_is_downloaded_as_it_is(
    hub: HubServer, tiny_en_ggml: Path, tmp_path: Path
) -> None:
    hub.add_repo(GGML_REPO, {"ggml-tiny.en.bin": tiny_en_ggml, "README.md": b"# ggml\n"})

    model = resolve_model("tiny.en", progress=False)

    assert model.source == "hub"
    assert model.metadata["source_format"] == "ggml"
    assert model.metadata["source_file"] == "ggml-tiny.en.bin"
    assert sha256(model.path) == sha256(tiny_en_ggml)
    assert len(hub.downloads("ggml-tiny.en.bin")) == 1
    assert not hub.downloads("README.md")  # only the model file is fetched

    by_repo = resolve_model(f"{GGML_REPO}:ggml-tiny.en.bin", progress=False)
    assert by_repo.precision == "f16"  # read from the file's header
    assert by_repo.path.name == "ggml-ggerganov--whisper.cpp--ggml-tiny.en.bin@main.bin"
    assert len(hub.downloads("ggml-tiny.en.bin")) == 1  # in huggingface_hub's cache already


def test_transformers_repo_is_converted_to_the_same_model_as_ctranslate2(
    hub: HubServer, hf_tiny_en: Path, tiny_en_ggml: Path
) -> None:
    hub.add_repo(HF_REPO, {**folder_files(hf_tiny_en), "pytorch_model.bin": b"not fetched"})

    model = resolve_model(HF_REPO, progress=False)

    assert (model.source, model.precision) == ("hub", "f16")
    assert model.metadata["source_format"] == "transformers"
    assert not hub.downloads("pytorch_model.bin")  # not read beside safetensors
    assert_same_tensors(model.path, tiny_en_ggml)


def test_transformers_repo_with_torch_save_weights_only(
    hub: HubServer, hf_tiny_en: Path, tiny_en_ggml: Path, tmp_path: Path
) -> None:
    """An older checkpoint or a fine-tune with pytorch_model.bin alone: fetched and read (without
    torch, its pickle never run), the TF weights beside it left on the hub."""
    weights = tmp_path / "pytorch_model.bin"
    torch_save.save(load_file(hf_tiny_en / "model.safetensors"), weights)
    files: dict[str, bytes | Path] = {**folder_files(hf_tiny_en), "pytorch_model.bin": weights}
    del files["model.safetensors"]
    hub.add_repo("acme/pickle", {**files, "tf_model.h5": b"not fetched"})

    model = resolve_model("acme/pickle", progress=False)

    assert model.metadata["source_format"] == "transformers"
    assert len(hub.downloads("pytorch_model.bin")) == 1 and not hub.downloads("tf_model.h5")
    assert_same_tensors(model.path, tiny_en_ggml)


def assert_same_tensors(path: Path, reference: Path) -> None:
    from dattavani.convert.ggml_writer import read_ggml

    ours, theirs = read_ggml(path), read_ggml(reference)
    assert ours.hparams == theirs.hparams
    assert set(ours.tensors) == set(theirs.tensors)
    for name in theirs.tensors:
        assert (ours.load(name) == theirs.load(name)).all(), name


def test_quantized_alias_is_made_from_the_f16_model(hub: HubServer, tiny_en_ggml: Path) -> None:
    hub.add_repo(GGML_REPO, {"ggml-tiny.en.bin": tiny_en_ggml})

    model = resolve_model("tiny.en-q5_0", progress=False)

    assert (model.model_id, model.precision) == ("tiny.en", "q5_0")
    assert model.metadata["source_repo"] == GGML_REPO
    assert model.path.stat().st_size < tiny_en_ggml.stat().st_size / 2
    assert LoadParameters(use_gpu=False).load_model(model.path).n_text_layer == 4
    # The f16 model it came from stays cached: q8_0 is quantized from it without the hub.
    requests_before = len(hub.requests)
    q8 = resolve_model("tiny.en-q8_0")
    assert q8.metadata["quantized_from"].endswith("ggml-tiny.en-f16.bin")
    assert len(hub.requests) == requests_before


def test_revision_is_honoured_and_recorded(hub: HubServer, tiny_en_ggml: Path) -> None:
    commit = hub.add_repo("acme/whisper", {"ggml-model.bin": tiny_en_ggml}, branches=("v1.0",))

    model = resolve_model("acme/whisper:ggml-model.bin@v1.0", progress=False)
    assert model.metadata["source_revision"] == "v1.0"
    assert model.metadata["source_commit"] == commit

    with pytest.raises(ModelNotFoundError, match=r"no revision 'v2.0'"):
        resolve_model("acme/whisper:ggml-model.bin@v2.0")


def test_a_config_alias_with_revision_and_precision_is_followed(
    hub: HubServer, tiny_en_ggml: Path, jfk: np.ndarray, tmp_path: Path
) -> None:
    """``[native_models.models]`` names a hub file at a revision and a precision: the library
    fetches that revision and quantizes to that precision, as ``dattavani transcribe --model``."""
    commit = hub.add_repo("acme/whisper", {"ggml-model.bin": tiny_en_ggml}, branches=("v1.0",))
    alias = {"model_id": "acme/whisper:ggml-model.bin", "revision": "v1.0", "precision": "q8_0"}

    def config(**changes: str) -> Config:
        models = {"meetings": {**alias, **changes}}
        native = {"cache_dir": str(tmp_path / "config-cache"), "models": models}
        return config_from_dict({"native_models": native})

    transcriber = Transcriber("meetings", device="cpu", threads=2, config=config())
    model = transcriber.resolved
    assert (model.model_id, model.precision) == ("acme/whisper:ggml-model.bin@v1.0", "q8_0")
    assert ggml_precision(model.path) == "q8_0"
    assert model.metadata["source_revision"] == "v1.0"
    assert model.metadata["source_commit"] == commit
    assert model.path.is_relative_to(tmp_path / "config-cache")
    assert words(transcriber.transcribe(jfk).text) == JFK_WORDS

    with pytest.raises(ModelNotFoundError, match=r"no revision 'v2.0'"):
        Transcriber("meetings", device="cpu", config=config(revision="v2.0"))


def test_missing_repo_file_and_unconvertible_repo_are_model_not_found(
    hub: HubServer, tiny_en_ggml: Path
) -> None:
    hub.add_repo("acme/whisper", {"ggml-model.bin": tiny_en_ggml})

    with pytest.raises(ModelNotFoundError, match=r"acme/nothing.*no such repository"):
        resolve_model("acme/nothing")
    with pytest.raises(ModelNotFoundError, match=r"ggml-other.bin@main: file not found"):
        resolve_model("acme/whisper:ggml-other.bin")
    with pytest.raises(ConversionError, match=r"GGML files to choose from: ggml-model.bin"):
        resolve_model("acme/whisper")


def test_private_repo_needs_hf_token(
    hub: HubServer, tiny_en_ggml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.add_repo("acme/private", {"ggml-model.bin": tiny_en_ggml}, token="hf_secret")

    with pytest.raises(ModelNotFoundError, match="HF_TOKEN"):
        resolve_model("acme/private:ggml-model.bin")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    hub.clear_log()
    model = resolve_model("acme/private:ggml-model.bin", progress=False)
    assert model.source == "hub"
    to_the_repo = [r for r in hub.requests if r.server == "hub" and "acme" in r.path]
    assert to_the_repo and all(r.authorized for r in to_the_repo)


# -- offline and failures --------------------------------------------------------------------------


def test_offline_uses_only_what_is_downloaded(
    hub: HubServer, ct2_tiny_en: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    hub.add_repo(CT2_REPO, folder_files(ct2_tiny_en))
    with pytest.raises(ModelNotFoundError, match="not downloaded yet"):
        resolve_model(CT2_REPO, offline=True)
    assert not hub.requests

    resolve_model(CT2_REPO, progress=False)  # downloads into HF_HOME, converts into our cache
    monkeypatch.setenv("DATTAVANI_CACHE_DIR", str(tmp_path / "another-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    hub.clear_log()

    model = resolve_model(CT2_REPO)  # converted again, from huggingface_hub's cache alone
    assert model.source == "hub"
    assert model.path.is_relative_to(tmp_path / "another-cache")
    assert not hub.requests


def test_unreachable_hub_is_a_download_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with HubServer() as gone:
        endpoint = gone.endpoint
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    # A repo, not a file: for a file huggingface_hub retries for ~24 s before giving up.
    with pytest.raises(DownloadError, match=endpoint):
        resolve_model("acme/whisper")


def test_dropped_connection_leaves_no_entry_and_the_next_run_completes(
    hub: HubServer, tiny_en_ggml: Path, tmp_path: Path
) -> None:
    hub.add_repo(GGML_REPO, {"ggml-tiny.en.bin": tiny_en_ggml})
    hub.drop_connection("ggml-tiny.en.bin")

    with pytest.raises(DownloadError):
        resolve_model("tiny.en", progress=False)
    attempts = hub.downloads("ggml-tiny.en.bin")
    assert attempts[0].range is None
    assert all(a.range for a in attempts[1:])  # huggingface_hub tried to resume, in vain
    assert cache_entries(tmp_path) == [".locks"]  # no entry, no half-made one in .tmp

    hub.stop_dropping()
    hub.clear_log()
    model = resolve_model("tiny.en", progress=False)
    assert model.source == "hub"
    assert sha256(model.path) == sha256(tiny_en_ggml)
    assert [d.range for d in hub.downloads("ggml-tiny.en.bin")] == [None]


def test_two_processes_pulling_at_once_download_once(hub: HubServer, tiny_en_ggml: Path) -> None:
    """The overlap is made by the order of events, not by timing: the hub holds the first
    process's download until the second has said it waits for it."""
    hub.add_repo(GGML_REPO, {"ggml-tiny.en.bin": tiny_en_ggml})
    gate = hub.hold("ggml-tiny.en.bin")

    first = resolve_in_subprocess("tiny.en")
    wait_until(lambda: bool(hub.downloads("ggml-tiny.en.bin")), first, "the first download")
    second = resolve_in_subprocess("tiny.en")
    second_log: list[str] = []
    reader = threading.Thread(target=lambda: second_log.extend(second.stderr or ()))
    reader.start()
    wait_until(lambda: "waiting for another process" in "".join(second_log), second, "a wait")
    gate.set()
    one, one_log = finish(first)
    two = json.loads(second.stdout.read() if second.stdout else "")
    second.wait(timeout=120)
    reader.join()
    assert second.returncode == 0, second_log

    assert one["path"] == two["path"]
    assert (one["source"], two["source"]) == ("hub", "cache")  # the second waited, then found it
    assert "waiting for another process" not in one_log
    assert len(hub.downloads("ggml-tiny.en.bin")) == 1
    assert sha256(Path(one["path"])) == sha256(tiny_en_ggml)
