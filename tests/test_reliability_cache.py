"""The model cache never holds a partial model: killed processes, a full disk, racing processes.

Real processes are killed with SIGKILL part-way through a real download (from the hub on
127.0.0.1 of tests/hub_server.py) and a real conversion; a full disk is RLIMIT_FSIZE in a child
process (Python ignores SIGXFSZ, so a write past the limit fails with EFBIG as on a full disk).
After each, the cache shows no entry that looks complete, and the next run makes a good one.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dattavani.models import DiskCache, LoadParameters, resolve_model
from dattavani.models.hub import HubSettings, remove_stale_downloads
from hub_server import HubServer
from test_models_hub import GGML_REPO, hub, isolated

__all__ = ["hub", "isolated"]  # fixtures: fresh caches under tmp_path, the hub on 127.0.0.1

FULL_DISK_BYTES = 20_000_000  # a quarter of tiny.en f16: every model write hits it


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def start(code: str, *, file_size_limit: int | None = None) -> subprocess.Popen[str]:
    """Another interpreter running ``code`` (logging INFO to stderr, a JSON line on stdout)."""

    def limit_file_size() -> None:
        if file_size_limit is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (file_size_limit, file_size_limit))

    prelude = "import json, logging, sys\nlogging.basicConfig(level=logging.INFO)\n"
    return subprocess.Popen(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=limit_file_size,
    )


def finish(process: subprocess.Popen[str]) -> tuple[dict[str, str], str]:
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.splitlines()[-1]), err


def resolve_code(spec: str, go: Path | None = None) -> str:
    """Resolve ``spec``; with ``go``, first say ready (``go`` + ".<pid>") and wait for ``go``,
    then mark the start (``go`` + ".started.<pid>") and report which children had started by
    the time this one was done: an order of events, not clocks."""
    return f"""
        import glob, os, time
        from pathlib import Path
        from dattavani.models import resolve_model
        go = {str(go) if go else None!r}
        if go:
            Path(f"{{go}}.{{os.getpid()}}").touch()
            while not os.path.exists(go):
                time.sleep(0.005)
            Path(f"{{go}}.started.{{os.getpid()}}").touch()
        model = resolve_model({spec!r}, progress=False)
        started = sorted(glob.glob(f"{{go}}.started.*")) if go else []
        print(json.dumps({{"path": str(model.path), "source": model.source,
                          "started_before_done": len(started)}}))
    """


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[str], what: str) -> None:
    deadline = time.monotonic() + 120
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the child ended before {what}: {process.stderr.read()[-2000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.005)  # tiny.en converts in a fraction of a second


def kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)
    assert process.returncode == -signal.SIGKILL


def growing_file(folder: Path, pattern: str, at_least: int) -> Callable[[], bool]:
    """Whether a file matching ``pattern`` under ``folder`` holds ``at_least`` bytes yet."""

    def check() -> bool:
        return any(p.stat().st_size >= at_least for p in folder.rglob(pattern) if p.is_file())

    return check


def models_on_disk(cache_root: Path) -> dict[str, list[str]]:
    """Every folder under the cache's models/ with the files in it, temporary ones included."""
    models = cache_root / "models"
    if not models.is_dir():
        return {}
    return {
        str(folder.relative_to(models)): sorted(p.name for p in folder.iterdir() if p.is_file())
        for folder in sorted(models.rglob("*"))
        if folder.is_dir() and folder.name != ".locks"
    }


def assert_no_complete_looking_entry(cache: DiskCache) -> None:
    """No entry is served, and no folder outside .tmp holds a model file."""
    assert cache.entries() == []
    for folder, files in models_on_disk(cache.root).items():
        if not folder.startswith(".tmp"):
            assert not files, f"{folder} holds {files}"


# -- killed part-way ---------------------------------------------------------------------------


def test_killed_while_downloading_leaves_no_entry_and_the_next_download_cleans_up(
    hub: HubServer, tiny_en_ggml: Path, tmp_path: Path
) -> None:
    hub.add_repo(GGML_REPO, {"ggml-tiny.en.bin": tiny_en_ggml})
    hub.slow_down("ggml-tiny.en.bin", 0.1)  # 7.5 s for the whole file
    child = start(resolve_code("tiny.en"))
    hf_home = tmp_path / "hf-home"
    wait_for(growing_file(hf_home, "*.incomplete", 5_000_000), child, "5 MB downloaded")
    kill(child)

    cache = DiskCache(tmp_path / "cache")
    assert_no_complete_looking_entry(cache)
    assert cache.lookup("tiny.en-f16") is None
    # huggingface_hub's own cache holds only the partial file: no blob, nothing in snapshots/.
    (killed_partial,) = hf_home.rglob("*.incomplete")
    blobs = killed_partial.parent
    assert os.listdir(blobs) == [killed_partial.name]
    assert not [p for p in hf_home.rglob("ggml-tiny.en.bin") if p.exists()]

    # The next download removes the killed one's file first (huggingface_hub never reuses it),
    # and nobody removes the file of a download under way (its lock is held).
    hub.slow_down("ggml-tiny.en.bin", 0.05)
    child = start(resolve_code("tiny.en"))
    wait_for(
        lambda: not killed_partial.exists() and growing_file(blobs, "*.incomplete", 1_000_000)(),
        child,
        "the next download replaced the killed one's file",
    )
    (running_partial,) = blobs.glob("*.incomplete")
    assert remove_stale_downloads(GGML_REPO, HubSettings.from_env().cache_dir) == []
    assert running_partial.exists()
    report, log = finish(child)

    assert report["source"] == "hub"
    assert f"removed a partial download a killed process left: {killed_partial}" in log
    assert sha256(Path(report["path"])) == sha256(tiny_en_ggml)
    assert [e.key for e in cache.entries()] == ["tiny.en-f16"]
    # Only the complete blob is left, under its sha256 (huggingface_hub's LFS etag).
    assert os.listdir(blobs) == [sha256(tiny_en_ggml)]
    assert not list(hf_home.rglob("*.incomplete"))


def test_killed_while_converting_leaves_no_entry_and_the_next_run_cleans_up(
    ct2_tiny_en: Path, tiny_en_ggml: Path, tmp_path: Path
) -> None:
    cache = DiskCache(tmp_path / "cache")
    child = start(resolve_code(str(ct2_tiny_en)))
    work = cache.models_dir / ".tmp"
    wait_for(growing_file(work, "ggml-*.bin", 1_000_000), child, "1 MB converted")
    kill(child)

    assert_no_complete_looking_entry(cache)
    (leftover,) = work.iterdir()  # the killed process's work folder, out of sight
    assert leftover.name.endswith(".new")

    model = resolve_model(ct2_tiny_en, progress=False)
    assert model.source == "file"
    assert sha256(model.path) == sha256(tiny_en_ggml) == model.metadata["sha256"]
    assert not list(work.iterdir())  # the next run of that key removed the leftover
    assert [e.key for e in cache.entries()] == [model.path.parent.name]


# -- a full disk -------------------------------------------------------------------------------


def failing_child(code: str) -> str:
    """Run ``code`` under RLIMIT_FSIZE; it must fail with one of our errors. Its message."""
    body = textwrap.indent(textwrap.dedent(code).strip(), "    ")
    child = start(
        "from dattavani.errors import DattavaniError\n"
        f"try:\n{body}\n"
        "except DattavaniError as error:\n"
        "    print(json.dumps({'type': type(error).__name__, 'message': str(error)}))\n"
        "else:\n"
        "    print(json.dumps({'type': None, 'message': 'no error'}))\n",
        file_size_limit=FULL_DISK_BYTES,
    )
    report, _ = finish(child)
    assert report["type"] is not None, "the write past RLIMIT_FSIZE did not fail"
    return f"{report['type']}: {report['message']}"


def test_full_disk_while_converting_into_the_cache(ct2_tiny_en: Path, tmp_path: Path) -> None:
    message = failing_child(
        "from dattavani.models import resolve_model\n"
        f"resolve_model({str(ct2_tiny_en)!r}, progress=False)\n"
    )
    # The model's source and the entry's file, not the work folder the converter wrote in.
    cache = DiskCache(tmp_path / "cache")
    source = ct2_tiny_en.resolve()
    assert re.fullmatch(
        rf"ConversionError: cannot make model '{re.escape(str(source))}' at "
        rf"{re.escape(str(cache.models_dir))}/(local-\w+-f16)/ggml-\1\.bin: File too large",
        message,
    ), message
    assert_no_complete_looking_entry(cache)
    assert not [f for f in models_on_disk(cache.root).values() if f]  # .tmp is empty too


def test_full_disk_while_downloading(hub: HubServer, tiny_en_ggml: Path, tmp_path: Path) -> None:
    hub.add_repo(GGML_REPO, {"ggml-tiny.en.bin": tiny_en_ggml})
    message = failing_child(
        "from dattavani.models import resolve_model\nresolve_model('tiny.en', progress=False)\n"
    )
    assert message.startswith("DownloadError: ") and "File too large" in message
    assert_no_complete_looking_entry(DiskCache(tmp_path / "cache"))
    assert not [p for p in (tmp_path / "hf-home").rglob("ggml-tiny.en.bin") if p.exists()]


def test_full_disk_while_quantizing(tiny_en_ggml: Path, tmp_path: Path) -> None:
    target = tmp_path / "out" / "tiny.en-q8_0.bin"
    target.parent.mkdir()
    message = failing_child(
        "from dattavani.convert import quantize\n"
        f"quantize({str(tiny_en_ggml)!r}, {str(target)!r}, 'q8_0')\n"
    )
    assert message.startswith("ConversionError: ") and str(target) in message
    assert "File too large" in message
    assert not list(target.parent.iterdir())  # no partial output, no temporary file


def test_full_disk_while_quantizing_into_the_cache(tiny_en_ggml: Path, tmp_path: Path) -> None:
    message = failing_child(
        "from dattavani.models import resolve_model\n"
        f"resolve_model({str(tiny_en_ggml)!r}, precision='q8_0', progress=False)\n"
    )
    cache = DiskCache(tmp_path / "cache")
    # The native quantizer's reason names the file it was writing: as the entry's, not the work
    # folder's.
    assert ".tmp" not in message, message
    assert re.match(
        rf"ConversionError: cannot make model '{re.escape(str(tiny_en_ggml.resolve()))}' at "
        rf"{re.escape(str(cache.models_dir))}/(local-\w+-q8_0)/ggml-\1\.bin: ",
        message,
    ), message
    assert message.endswith("File too large")
    assert_no_complete_looking_entry(cache)
    assert not [f for f in models_on_disk(cache.root).values() if f]


# -- racing processes --------------------------------------------------------------------------


def test_two_processes_converting_one_model_both_succeed_and_convert_once(
    ct2_tiny_en: Path, tiny_en_ggml: Path, tmp_path: Path
) -> None:
    go = tmp_path / "go"
    children = [start(resolve_code(str(ct2_tiny_en), go)) for _ in range(2)]
    ready = [Path(f"{go}.{child.pid}") for child in children]
    for child in children:
        wait_for(lambda: all(p.exists() for p in ready), child, "both children are ready")
    go.touch()
    (one, one_log), (two, two_log) = (finish(child) for child in children)

    # They raced: each had started before either was done.
    assert one["started_before_done"] == two["started_before_done"] == 2
    assert one["path"] == two["path"]
    assert sorted([one["source"], two["source"]]) == ["cache", "file"]
    assert (one_log + two_log).count("made local-") == 1  # converted once; the other waited
    path = Path(one["path"])
    assert sha256(path) == sha256(tiny_en_ggml)
    assert LoadParameters(use_gpu=False).load_model(path).n_text_layer == 4
    assert os.listdir(path.parents[1] / ".tmp") == []
