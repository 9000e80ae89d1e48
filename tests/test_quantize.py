"""Tests for native quantization (dattavani.convert.quantize, ggml through dattavani._core)."""

from __future__ import annotations

import contextlib
import os
import struct
import threading
from pathlib import Path

import numpy as np
import pytest

from dattavani import ConversionError, ModelLoadError, OptionsError, Transcriber
from dattavani.convert import convert_ct2, quantize
from dattavani.convert.ggml_writer import GGML_QUANTIZED_BLOCKS, GgmlModelInfo, read_ggml
from dattavani.testing import JFK_WORDS, word_error_rate, words

# ggml_type of each precision, and the ftype whisper.cpp's quantizer writes (GGML_QNT_VERSION 2
# times GGML_QNT_VERSION_FACTOR 1000, plus the ggml_ftype).
GGML_TYPES = {"q4_0": 2, "q5_0": 6, "q5_1": 7, "q8_0": 8}
FTYPES = {"q4_0": 2002, "q5_0": 2008, "q5_1": 2009, "q8_0": 2007}
# Matrices whisper.cpp allocates as F32 in every model.
F32_MATRICES = {
    "encoder.conv1.bias",
    "encoder.conv2.bias",
    "encoder.positional_embedding",
    "decoder.positional_embedding",
}


@pytest.fixture(scope="module")
def f16(tiny_en_ggml: Path) -> GgmlModelInfo:
    return read_ggml(tiny_en_ggml)


@pytest.fixture(scope="module")
def f32_path(ct2_tiny_en: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert_ct2(ct2_tiny_en, tmp_path_factory.mktemp("f32") / "tiny.en-f32.bin", dtype="f32")


@pytest.fixture(scope="module")
def quantized(tiny_en_ggml: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("quantized")
    return {p: quantize(tiny_en_ggml, out / f"tiny.en-{p}.bin", p) for p in GGML_TYPES}


def assert_dir_holds(folder: Path, names: set[str]) -> None:
    """No output and no temporary file beyond ``names``."""
    assert {p.name for p in folder.iterdir()} == names


@pytest.mark.parametrize("precision", ["q8_0", "q5_0"])
def test_quantized_tiny_en_transcribes_jfk(
    precision: str, quantized: dict[str, Path], jfk_audio: Path
) -> None:
    result = Transcriber(quantized[precision], threads=2).transcribe(jfk_audio)
    assert word_error_rate(JFK_WORDS, words(result.text)) <= 0.05, result.text


@pytest.mark.parametrize("precision", list(GGML_TYPES))
def test_layout_types_and_size(
    precision: str, quantized: dict[str, Path], f16: GgmlModelInfo
) -> None:
    path = quantized[precision]
    (ftype,) = struct.unpack("<i", path.read_bytes()[44:48])
    assert ftype == FTYPES[precision]
    info = read_ggml(path)
    assert info.hparams == f16.hparams
    assert info.vocab == f16.vocab
    assert np.array_equal(info.mel_filters, f16.mel_filters)
    assert list(info.tensors) == list(f16.tensors)
    elements, block_bytes = GGML_QUANTIZED_BLOCKS[GGML_TYPES[precision]]
    expected_size = f16.path.stat().st_size
    for name, source in f16.tensors.items():
        ours = info.tensors[name]
        assert ours.shape == source.shape, name
        if len(source.shape) == 2 and name not in F32_MATRICES:
            assert ours.ggml_type == GGML_TYPES[precision], name
            count = int(np.prod(source.shape))
            expected_size += count // elements * block_bytes - count * 2
        else:  # vectors and kept matrices stay f32, conv kernels f16, all byte for byte
            assert ours.ggml_type == source.ggml_type, name
            assert np.array_equal(info.load(name), f16.load(name)), name
    assert path.stat().st_size == expected_size


def test_sizes_shrink_with_precision(quantized: dict[str, Path], tiny_en_ggml: Path) -> None:
    # Per 32 weights q8_0 stores 34 bytes (53% of f16), q5_1 24, q5_0 22, q4_0 18 (28%);
    # tiny.en's f32 positional embeddings, 15% of its f16 file, stay as they are.
    ratio = {p: path.stat().st_size / tiny_en_ggml.stat().st_size for p, path in quantized.items()}
    assert 0.55 < ratio["q8_0"] < 0.58
    assert ratio["q8_0"] > ratio["q5_1"] > ratio["q5_0"] > ratio["q4_0"]
    assert 0.37 < ratio["q5_0"] < 0.40
    assert 0.31 < ratio["q4_0"] < 0.34


def test_quantized_model_loads_in_whisper_cpp(quantized: dict[str, Path]) -> None:
    for precision, path in quantized.items():
        model = Transcriber(path, threads=2).native_model
        assert model.ftype == FTYPES[precision]
        assert model.file_bytes == path.stat().st_size


def test_f32_source_gives_the_same_files(
    f32_path: Path, tiny_en_ggml: Path, quantized: dict[str, Path], tmp_path: Path
) -> None:
    """tiny.en's weights are f16 values, so the f32 route must give identical bytes.

    f32 -> f16 also proves the conv kernels are narrowed to f16, which whisper.cpp needs.
    """
    to_f16 = quantize(f32_path, tmp_path / "f16.bin", "f16")
    assert to_f16.read_bytes() == tiny_en_ggml.read_bytes()
    to_q8 = quantize(f32_path, tmp_path / "q8_0.bin", "q8_0")
    assert to_q8.read_bytes() == quantized["q8_0"].read_bytes()


def test_unknown_precision(tiny_en_ggml: Path, tmp_path: Path) -> None:
    with pytest.raises(OptionsError, match=r"unknown quantization type 'q3_k'.*q8_0, q5_0"):
        quantize(tiny_en_ggml, tmp_path / "m.bin", "q3_k")  # type: ignore[arg-type]
    assert_dir_holds(tmp_path, set())


def test_broken_source(tiny_en_ggml: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.bin"
    with tiny_en_ggml.open("rb") as f:
        truncated.write_bytes(f.read(30_000_000))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    previous = out_dir / "m.bin"
    previous.write_bytes(b"previous model")
    for src, reason in (
        (truncated, "truncated"),
        (tmp_path / "missing.bin", "no such file"),
        (out_dir, "directory"),
    ):
        with pytest.raises(ModelLoadError, match=reason) as err:
            quantize(src, previous, "q5_0")
        assert str(src) in str(err.value)
    assert previous.read_bytes() == b"previous model"
    assert_dir_holds(out_dir, {"m.bin"})


def test_quantized_source_and_unwritable_output(
    quantized: dict[str, Path], tiny_en_ggml: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConversionError, match="quantized already") as err:
        quantize(quantized["q8_0"], tmp_path / "m.bin", "q4_0")
    assert str(quantized["q8_0"]) in str(err.value)
    with pytest.raises(ConversionError, match="does not exist") as err:
        quantize(tiny_en_ggml, tmp_path / "nowhere" / "m.bin", "q4_0")
    assert str(tmp_path / "nowhere") in str(err.value)
    assert_dir_holds(tmp_path, set())


def test_gil_is_released(tiny_en_ggml: Path, tmp_path: Path) -> None:
    """Python threads keep running while ggml quantizes: this thread watches the temporary file
    the native call writes (it exists only inside the call) grow. Holding the GIL for the call
    would let it see the file at no size at all; no clock is read."""
    worker = threading.Thread(target=quantize, args=(tiny_en_ggml, tmp_path / "m.bin", "q8_0"))
    sizes_seen: set[int] = set()
    worker.start()
    while worker.is_alive():
        for entry in os.scandir(tmp_path):
            if entry.name != "m.bin":
                with contextlib.suppress(FileNotFoundError):  # renamed meanwhile
                    sizes_seen.add(entry.stat().st_size)
    worker.join()
    assert (tmp_path / "m.bin").is_file()
    assert len(sizes_seen) >= 2, sizes_seen
