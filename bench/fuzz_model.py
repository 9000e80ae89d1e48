"""Coverage-guided fuzzing of the model loader with atheris: any file in, a model or ModelLoadError.

Two targets:

``--target header`` (the default) fuzzes cpp/ggml_file.cpp, the check every model file passes
before whisper.cpp reads it. The code is compiled here with clang and
``-fsanitize=address,fuzzer-no-link`` into a small library (with ggml's type tables from the
module's build folder), so libFuzzer is guided by the C++ parser's own branches and ASan stops
at any bad memory access. Inputs are edits of a small but complete whisper model (4-wide, one
layer, 485 kB): int32 values written over its header fields, mel and vocabulary sizes, tensor
headers and names, and an optional cut, so that the search spends its time on the structure
rather than on the weights. A file the check accepts must then load in ``dattavani._core.Model``
(the real whisper.cpp loader).

``--target hparams`` writes consistent models with fuzzed hyper-parameters (contexts, widths,
heads, layers, mel bands, vocabulary size, f16 or f32), loads each through ``_core.Model`` and
transcribes a second of noise with it: any combination the check accepts must run without
aborting. Nothing is instrumented here (libFuzzer sees no coverage): it is a random search.

    python bench/fuzz_model.py -max_total_time=600                     # 10 minutes, header
    python bench/fuzz_model.py --target hparams -max_total_time=600
    python bench/fuzz_model.py -runs=0 CRASH_FILE                        # replay a finding

Needs clang++-14 (``apt-get install clang-14``) for the header target. The script re-runs itself
with atheris's ASan runtime preloaded. Corpora grow in bench/.work/fuzz-model-<target>/.
Arguments other than --target are libFuzzer's.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import struct
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import atheris
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from common import REPO, random_model, work_dir
from dattavani import DattavaniError, ModelLoadError
from dattavani.convert.ggml_writer import WhisperHParams, read_ggml
from dattavani.models import LoadParameters
from dattavani.options import TranscribeOptions

_SHIM = r"""
#include "errors.h"
#include "ggml_file.h"

#include <cstdio>

// 0: the file passes; 1: refused with model_load_error (its message in `message`). Any other
// exception escapes through the C boundary and terminates the process: a finding.
extern "C" int dattavani_fuzz_inspect(const char * path, char * message, size_t size) {
    try {
        dattavani::inspect_ggml_file(path);
        return 0;
    } catch (const dattavani::model_load_error & error) {
        std::snprintf(message, size, "%s", error.what());
        return 1;
    }
}
"""
_ASAN_RUNTIME = Path(atheris.path()) / "asan_with_fuzzer.so"
_VOCAB_SIZES = (51864, 51865, 51866)  # English-only, multilingual, large-v3
# Values the header edits write: boundaries of every range ggml_file.cpp checks, and extremes.
_INTERESTING = (
    -(2**31),
    -1,
    0,
    1,
    2,
    3,
    4,
    7,
    8,
    80,
    81,
    127,
    128,
    129,
    201,
    255,
    256,
    257,
    448,
    449,
    1000,
    1001,
    1023,
    1024,
    1025,
    1500,
    1501,
    8192,
    8193,
    51863,
    51864,
    51866,
    51867,
    (1 << 20),
    (1 << 20) + 1,
    0x67676D6C,
    2**31 - 1,
)


def mini_hparams(
    n_ctx: int = 4, n_state: int = 4, n_head: int = 1, n_layer: int = 1, **changes: int
) -> WhisperHParams:
    values = {
        "n_vocab": 51864,
        "n_audio_ctx": n_ctx,
        "n_audio_state": n_state,
        "n_audio_head": n_head,
        "n_audio_layer": n_layer,
        "n_text_ctx": max(n_ctx, 16),  # the least the check accepts (whisper.cpp's token batch)
        "n_text_state": n_state,
        "n_text_head": n_head,
        "n_text_layer": n_layer,
        "n_mels": 80,
    }
    return WhisperHParams(**{**values, **changes})


# -- header target -----------------------------------------------------------------------------


def native_harness(folder: Path) -> Callable[[str], tuple[int, str]]:
    """cpp/ggml_file.cpp built with clang for libFuzzer and ASan; returns a caller of it."""
    library = folder / "libggml_file_fuzz.so"
    sources = [REPO / "cpp" / "ggml_file.cpp", REPO / "cpp" / "ggml_file.h", Path(__file__)]
    if not library.exists() or library.stat().st_mtime < max(s.stat().st_mtime for s in sources):
        ggml_base = sorted(REPO.glob("build/*-Release/whisper.cpp/ggml/src/libggml-base.a"))
        if not ggml_base:
            sys.exit("build the module first (pip install -e .): ggml's libggml-base.a is needed")
        shim = folder / "shim.cpp"
        shim.write_text(_SHIM)
        command = [
            "clang++-14", "-std=c++17", "-O1", "-g", "-fPIC", "-shared",
            "-fsanitize=address,fuzzer-no-link",
            f"-I{REPO / 'cpp'}", f"-I{REPO / 'third_party/whisper.cpp/ggml/include'}",
            str(shim), str(sources[0]), str(ggml_base[-1]), "-lgomp", "-o", str(library),
        ]  # fmt: skip
        subprocess.run(command, check=True)
    native = ctypes.CDLL(str(library))
    inspect = native.dattavani_fuzz_inspect
    inspect.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t]
    message = ctypes.create_string_buffer(4096)

    def call(path: str) -> tuple[int, str]:
        status = inspect(path.encode(), message, len(message))
        return status, message.value.decode(errors="replace")

    return call


def structure_offsets(path: Path) -> list[int]:
    """Byte offsets of every int32 field and name of a model's layout (not its tensor data)."""
    info = read_ggml(path)
    offsets = list(range(4, 56, 4))  # magic .. ftype, then n_mel and n_fft
    vocab_at = 56 + 4 * info.mel_filters.size
    offsets.append(vocab_at)
    at = vocab_at + 4
    for token in info.vocab:
        offsets.append(at)
        at += 4 + len(token)
    for tensor in info.tensors.values():
        name_at = tensor.offset - len(tensor.name.encode())
        header = name_at - 4 * len(tensor.shape) - 12
        offsets.extend(range(header, name_at, 4))
        offsets.append(name_at)
    return offsets


def header_target(folder: Path) -> Callable[[bytes], None]:
    inspect = native_harness(folder)
    seed_path = random_model(folder / "mini-f16.bin", mini_hparams(), "f16")
    seed = seed_path.read_bytes()
    offsets = structure_offsets(seed_path)
    scratch = Path(tempfile.gettempdir()) / f"dattavani-fuzz-{os.getpid()}.bin"
    status, message = inspect(str(seed_path))
    if status != 0:
        sys.exit(f"the seed model is refused: {message}")

    def test_one_input(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        model = bytearray(seed)
        for _ in range(fdp.ConsumeIntInRange(0, 8)):
            at = offsets[fdp.ConsumeIntInRange(0, len(offsets) - 1)]
            if fdp.ConsumeBool():
                value = _INTERESTING[fdp.ConsumeIntInRange(0, len(_INTERESTING) - 1)]
            else:
                value = fdp.ConsumeInt(4)
            struct.pack_into("<i", model, at, value)
        if fdp.ConsumeBool():  # cut near a structural boundary
            cut = offsets[fdp.ConsumeIntInRange(0, len(offsets) - 1)] + fdp.ConsumeIntInRange(-4, 4)
            del model[max(cut, 0) :]
        scratch.write_bytes(model)
        status, message = inspect(str(scratch))
        if status == 1:
            if str(scratch) not in message:
                raise AssertionError(f"the refusal does not name the file: {message}")
            return
        # Accepted: whisper.cpp must load it as the check promised.
        LoadParameters(use_gpu=False).load_model(scratch)

    return test_one_input


# -- hparams target ----------------------------------------------------------------------------


def hparams_target(folder: Path) -> Callable[[bytes], None]:
    scratch = Path(tempfile.gettempdir()) / f"dattavani-fuzz-{os.getpid()}.bin"
    noise = np.random.default_rng(0).normal(0, 0.1, 16000).astype(np.float32)
    options = TranscribeOptions(temperature=0.0).to_native(1)

    def test_one_input(data: bytes) -> None:
        fdp = atheris.FuzzedDataProvider(data)
        n_head = fdp.ConsumeIntInRange(1, 4)
        hparams = mini_hparams(
            n_state=n_head * fdp.ConsumeIntInRange(1, 16),
            n_head=n_head,
            n_layer=fdp.ConsumeIntInRange(1, 2),
            n_vocab=_VOCAB_SIZES[fdp.ConsumeIntInRange(0, 2)],
            n_audio_ctx=fdp.ConsumeIntInRange(1, 1500),
            n_text_ctx=fdp.ConsumeIntInRange(1, 448),
            n_mels=(80, 128)[fdp.ConsumeIntInRange(0, 1)],
        )
        dtype = ("f16", "f32")[fdp.ConsumeIntInRange(0, 1)]
        random_model(scratch, hparams, dtype, seed=fdp.ConsumeIntInRange(0, 1000))
        try:
            model = LoadParameters(use_gpu=False, max_states=1).load_model(scratch)
        except ModelLoadError:
            return
        with contextlib.suppress(DattavaniError):
            model.transcribe(noise, options)

    return test_one_input


def main() -> None:
    if os.environ.get("LD_PRELOAD") != str(_ASAN_RUNTIME):
        # ASan's runtime must be loaded before anything else: run again with it preloaded.
        env = {
            **os.environ,
            "LD_PRELOAD": str(_ASAN_RUNTIME),
            # Python and numpy keep memory until exit; the loader's leaks are the leak test's.
            "ASAN_OPTIONS": "detect_leaks=0:allocator_may_return_null=1",
        }
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--target", choices=("header", "hparams"), default="header")
    ours, libfuzzer = parser.parse_known_args()
    import logging

    logging.getLogger("dattavani").setLevel(logging.CRITICAL)  # whisper.cpp's load chatter
    folder = work_dir() / f"fuzz-model-{ours.target}"
    corpus = folder / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    target = header_target(folder) if ours.target == "header" else hparams_target(folder)
    named = [arg for arg in libfuzzer if not arg.startswith("-")]
    # -len_control=0: the edits need their bytes from the start, not after minutes of growth.
    defaults = ["-timeout=30", "-rss_limit_mb=4000", "-max_len=512", "-len_control=0"]
    atheris.Setup([sys.argv[0], *defaults, *libfuzzer, *([] if named else [str(corpus)])], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
