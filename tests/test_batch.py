"""dattavani.batch on a real local Ray cluster (num_cpus=2), with real tiny.en and real speech.

One cluster serves the module. Each test builds its own corpus in a tmp folder from
../shared/audio (whisper.cpp's samples/jfk.mp3 when that is absent), with a broken file among the
good ones, and reads the Parquet rows back with pyarrow.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile

ray = pytest.importorskip("ray", reason='the ray extra: pip install "dattavani[ray]"')
pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from conftest import SHARED_AUDIO, WHISPER_CPP_SAMPLES  # noqa: E402
from dattavani.batch import transcribe_dataset  # noqa: E402
from dattavani.errors import OptionsError  # noqa: E402

JFK_WORDS = "ask not what your country can do for you"


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    """One local Ray for the module: two CPUs, no dashboard, Ray's logs kept in its files."""
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield str(context.address_info["address"])
    ray.shutdown()


@pytest.fixture(scope="module")
def model(tiny_en_ggml: Path) -> str:
    return str(tiny_en_ggml)


def _speech_files() -> list[Path]:
    shared = [SHARED_AUDIO / name for name in ("jfk.flac", "jfk.mp3", "hotwords.mp3")]
    found = [p for p in shared if p.is_file()]
    return found or [WHISPER_CPP_SAMPLES / "jfk.mp3"]


def _jfk_samples() -> np.ndarray:
    from dattavani import load_audio

    return load_audio(_speech_files()[0])


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """Real speech, a copy of one file under another name, a cut of jfk, and a broken file."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    for path in _speech_files():
        shutil.copy(path, folder / path.name)
    first = _speech_files()[0]
    shutil.copy(first, folder / f"copy-of-{first.name}")
    soundfile.write(folder / "jfk-cut.wav", _jfk_samples()[: 16000 * 7], 16000)
    (folder / "broken.mp3").write_bytes(b"this is not audio at all\n" * 40)
    return folder


def _rows(output: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(output).to_pylist()
    return rows


def _audio_files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.iterdir() if p.is_file())


def test_one_row_per_file_with_text_and_the_broken_files_error(
    ray_address: str, model: str, corpus: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    summary = transcribe_dataset(
        [str(corpus)], output, model, threads_per_actor=1, output_formats=["srt"]
    )

    rows = _rows(output)
    assert sorted(r["path"] for r in rows) == _audio_files(corpus)
    assert len({r["id"] for r in rows}) == len(rows)
    by_name = {Path(r["path"]).name: r for r in rows}
    broken = by_name.pop("broken.mp3")
    assert broken["text"] is None
    assert broken["error"].startswith("AudioError: ")
    assert str(corpus / "broken.mp3") in broken["error"]
    for name, row in by_name.items():
        assert row["error"] is None, name
        assert row["text"].strip(), name
        assert row["segments"], name
        assert row["duration"] > 0 and row["processing_time"] > 0
        assert row["model"] == model and row["options_hash"] and row["dattavani_version"]
    first = _speech_files()[0].name
    assert JFK_WORDS in by_name[first]["text"].lower()
    assert "fellow americans" in by_name["jfk-cut.wav"]["text"].lower()
    # The identical copy is written from the same transcript, not transcribed twice.
    assert by_name[f"copy-of-{first}"]["text"] == by_name[first]["text"]
    assert by_name[f"copy-of-{first}"]["fingerprint"] == by_name[first]["fingerprint"]
    assert (summary.transcribed, summary.reused, summary.failed) == (len(rows) - 2, 1, 1)
    assert summary.exit_code == 1
    assert summary.failures == [(str(corpus / "broken.mp3"), broken["error"])]
    subtitles = sorted(p.name for p in (output / "_transcripts").iterdir())
    assert len(subtitles) == len(rows) - 1 and all(name.endswith(".srt") for name in subtitles)


def test_rerun_after_adding_a_file_transcribes_only_it_and_the_failed_one(
    ray_address: str, model: str, corpus: Path, tmp_path: Path
) -> None:
    output = tmp_path / "out"
    transcribe_dataset([str(corpus)], output, model, threads_per_actor=1)
    before = {r["id"]: r for r in _rows(output)}

    # Added, named in a list beside the folder given before: a file of new content (as a URI,
    # read through pyarrow's filesystems), and a copy of a file already done (reused, not run).
    extra = tmp_path / "extra" / "jfk-start.flac"
    extra.parent.mkdir()
    soundfile.write(extra, _jfk_samples()[: 16000 * 4], 16000)
    first = _speech_files()[0]
    again = shutil.copy(first, tmp_path / "extra" / f"again-{first.name}")
    listing = tmp_path / "more.txt"
    listing.write_text(f"# added later\n{extra.as_uri()}\nextra/{Path(again).name}\n")
    summary = transcribe_dataset([str(corpus), str(listing)], output, model, threads_per_actor=1)

    rows = _rows(output)
    after = {r["id"]: r for r in rows}
    assert len(after) == len(rows) == len(before) + 2
    by_path = {r["path"]: r for r in rows}
    added = by_path[extra.as_uri()]
    assert added["error"] is None and added["text"].strip()
    assert added["fingerprint"].startswith("stat:")
    assert by_path[str(again)]["text"] == by_path[str(corpus / first.name)]["text"]
    failed_id = next(i for i, r in before.items() if r["error"])
    assert after[failed_id]["error"]
    assert after[failed_id]["finished_at"] > before[failed_id]["finished_at"]
    for file_id, row in before.items():
        if file_id != failed_id:
            assert after[file_id] == row  # not transcribed again: the very same row
    assert (summary.transcribed, summary.reused, summary.failed) == (1, 1, 1)
    assert summary.skipped == len(before) - 1


def test_a_file_past_its_timeout_gets_an_error_row_and_a_later_run_transcribes_it(
    ray_address: str, model: str, tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    soundfile.write(folder / "jfk.wav", _jfk_samples(), 16000)
    soundfile.write(folder / "jfk-start.wav", _jfk_samples()[: 16000 * 4], 16000)
    output = tmp_path / "out"
    # No decode of seconds of speech ends within a millisecond: each call is stopped, the actor
    # goes on to the next file, and the job ends with a row for each.
    summary = transcribe_dataset(
        [str(folder)], output, model, threads_per_actor=1, file_timeout=0.001
    )
    rows = _rows(output)
    assert sorted(r["path"] for r in rows) == _audio_files(folder)
    for row in rows:
        assert row["text"] is None
        assert row["error"].startswith(
            f"TimeoutError: {row['path']}: not transcribed within 0.001 s"
        )
    assert (summary.transcribed, summary.failed) == (0, 2)

    summary = transcribe_dataset([str(folder)], output, model, threads_per_actor=1)
    by_name = {Path(r["path"]).name: r for r in _rows(output)}
    assert (summary.transcribed, summary.failed, len(by_name)) == (2, 0, 2)
    assert JFK_WORDS in by_name["jfk.wav"]["text"].lower()
    assert by_name["jfk-start.wav"]["error"] is None


def test_bad_file_timeout_is_an_options_error(model: str, tmp_path: Path) -> None:
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(OptionsError, match="file_timeout must be > 0 seconds"):
            transcribe_dataset([str(tmp_path)], tmp_path / "out", model, file_timeout=bad)


def _part_files(output: Path) -> list[Path]:
    return sorted(output.glob("part-*.parquet")) if output.is_dir() else []


def test_a_run_killed_part_way_resumes_without_duplicate_rows(
    ray_address: str, model: str, corpus: Path, tmp_path: Path
) -> None:
    # A long file first (longest first), so the run is still busy when its first row lands.
    soundfile.write(corpus / "jfk-five-times.wav", np.tile(_jfk_samples(), 5), 16000)
    output = tmp_path / "out"
    command = [str(Path(sys.executable).with_name("dattavani")), "batch", str(corpus)]
    command += ["-o", str(output), "-m", model, "--address", ray_address]
    command += ["--threads-per-actor", "1", "--rows-per-file", "1", "--no-progress"]
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        while not _part_files(output) and run.poll() is None:
            time.sleep(0.02)
        assert run.poll() is None, run.communicate()[0].decode()
        run.send_signal(signal.SIGKILL)
    finally:
        run.wait()
    written = _rows(output)
    assert 0 < len(written) < len(_audio_files(corpus))

    # Resumed from a Parquet manifest of the same files (paths relative to it): rows are keyed
    # by path, so it picks up where the folder's run stopped.
    manifest = tmp_path / "manifest.parquet"
    names = [f"corpus/{Path(p).name}" for p in _audio_files(corpus)]
    pq.write_table(pa.table({"path": names}), manifest)
    summary = transcribe_dataset([str(manifest)], output, model, threads_per_actor=1)

    rows = _rows(output)
    assert sorted(r["path"] for r in rows) == _audio_files(corpus)
    assert len({r["id"] for r in rows}) == len(rows)
    assert not any(p.name.startswith(".") for p in output.iterdir())
    done_before = sum(r["error"] is None for r in written)
    assert summary.skipped == done_before
    assert summary.transcribed + summary.reused + summary.failed + summary.skipped == len(rows)


class _WorkerKiller(threading.Thread):
    """Kills, as the kernel's OOM killer would, any other process that opens ``target``.

    Nothing of dattavani is replaced: the Ray worker transcribing the file dies mid-call, each
    time Ray tries the file again.
    """

    def __init__(self, target: Path) -> None:
        super().__init__(daemon=True)
        self.target = str(target)
        self.killed: set[int] = set()
        self.stop = threading.Event()

    def run(self) -> None:
        me = os.getpid()
        while not self.stop.is_set():
            for pid in filter(str.isdigit, os.listdir("/proc")):
                if int(pid) != me and self._has_open(pid):
                    os.kill(int(pid), signal.SIGKILL)
                    self.killed.add(int(pid))
            time.sleep(0.02)

    def _has_open(self, pid: str) -> bool:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
            return any(os.readlink(f"/proc/{pid}/fd/{fd}") == self.target for fd in fds)
        except OSError:  # gone, or not ours to look at
            return False


def test_a_worker_that_dies_on_one_file_does_not_stop_the_others(
    ray_address: str, model: str, corpus: Path, tmp_path: Path
) -> None:
    # Longer than one decoding window (360 s), so the worker holds it open while it decodes.
    doomed = corpus / "doomed.wav"
    samples = _jfk_samples()
    soundfile.write(doomed, np.tile(samples, int(400 * 16000 / len(samples)) + 1), 16000)
    output = tmp_path / "out"
    killer = _WorkerKiller(doomed)
    killer.start()
    try:
        summary = transcribe_dataset(
            [str(corpus)], output, model, threads_per_actor=1, max_retries=1
        )
    finally:
        killer.stop.set()
        killer.join()

    assert len(killer.killed) == 2  # the first try and one retry
    rows = {Path(r["path"]).name: r for r in _rows(output)}
    assert sorted(rows) == sorted(Path(p).name for p in _audio_files(corpus))
    assert "worker process died" in rows.pop("doomed.wav")["error"]
    assert rows.pop("broken.mp3")["error"].startswith("AudioError")
    assert all(r["error"] is None and r["text"].strip() for r in rows.values())
    assert summary.failed == 2


def test_batch_without_the_ray_extra_names_the_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dattavani.cli import main

    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    assert main(["batch", str(tmp_path), "-o", str(tmp_path / "out")]) == 2
    assert 'pip install "dattavani[ray]"' in capsys.readouterr().err


def test_batch_of_an_input_that_names_nothing_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from dattavani.cli import main

    missing = tmp_path / "nowhere"
    assert main(["batch", str(missing), "-o", str(tmp_path / "out"), "-m", "tiny.en"]) == 2
    assert str(missing) in capsys.readouterr().err


def test_options_hash_tells_other_options_apart_and_fills_in_defaults() -> None:
    from dattavani.batch.pipeline import hash_options

    assert hash_options({}) == hash_options({"language": None, "beam_size": None})
    assert hash_options({}) != hash_options({"beam_size": 5})
    assert hash_options({}) != hash_options({"vad_filter": True})
    with pytest.raises(OptionsError):
        hash_options({"beam_sise": 5})


def test_neither_import_dattavani_nor_the_cli_parser_loads_ray_or_pyarrow() -> None:
    code = (
        "import sys, dattavani, dattavani.batch\n"
        "from dattavani.cli import build_parser\n"
        "build_parser()\n"
        "print(sorted(m for m in ('ray', 'pyarrow') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
