"""Tests for the transformers (safetensors) and openai .pt converters and the format dispatch.

The transformers checkpoints are built here from the real faster-whisper tiny.en: its weights,
converted to GGML by the CTranslate2 converter, are renamed to the transformers layout (names
spelled out below from transformers' WhisperForConditionalGeneration) and written with the
``safetensors`` package itself. Converting them back must give the CTranslate2 conversion's
tensors bit for bit.
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from safetensors.numpy import save_file

from dattavani import _core
from dattavani.convert import (
    ConversionError,
    checkpoint_format,
    convert_checkpoint,
    convert_ct2,
    convert_openai_pt,
    convert_transformers,
    ggml_precision,
)
from dattavani.convert.ct2 import ggml_vocabulary
from dattavani.convert.ggml_writer import (
    GgmlModelInfo,
    WhisperHParams,
    expected_tensor_shapes,
    read_ggml,
)
from dattavani.convert.openai_pt import read_tiktoken
from dattavani.errors import ModelLoadError

Arrays = dict[str, npt.NDArray[np.floating]]

# transformers' names inside one layer block -> whisper.cpp's (openai-whisper's) names.
HF_LAYER_NAMES = {
    "self_attn_layer_norm": "attn_ln",
    "self_attn.q_proj": "attn.query",
    "self_attn.k_proj": "attn.key",
    "self_attn.v_proj": "attn.value",
    "self_attn.out_proj": "attn.out",
    "encoder_attn_layer_norm": "cross_attn_ln",
    "encoder_attn.q_proj": "cross_attn.query",
    "encoder_attn.k_proj": "cross_attn.key",
    "encoder_attn.v_proj": "cross_attn.value",
    "encoder_attn.out_proj": "cross_attn.out",
    "final_layer_norm": "mlp_ln",
    "fc1": "mlp.0",
    "fc2": "mlp.2",
}
# Stored as (n,) vectors by transformers and openai-whisper, as (n, 1) columns by whisper.cpp.
CONV_BIASES = frozenset({"encoder.conv1.bias", "encoder.conv2.bias"})
HF_GLOBAL_NAMES = {
    "model.encoder.conv1.weight": "encoder.conv1.weight",
    "model.encoder.conv1.bias": "encoder.conv1.bias",
    "model.encoder.conv2.weight": "encoder.conv2.weight",
    "model.encoder.conv2.bias": "encoder.conv2.bias",
    "model.encoder.embed_positions.weight": "encoder.positional_embedding",
    "model.encoder.layer_norm.weight": "encoder.ln_post.weight",
    "model.encoder.layer_norm.bias": "encoder.ln_post.bias",
    "model.decoder.embed_tokens.weight": "decoder.token_embedding.weight",
    "model.decoder.embed_positions.weight": "decoder.positional_embedding",
    "model.decoder.layer_norm.weight": "decoder.ln.weight",
    "model.decoder.layer_norm.bias": "decoder.ln.bias",
}


def hf_names(hp: WhisperHParams) -> dict[str, str]:
    """Every transformers tensor name of a WhisperForConditionalGeneration -> whisper.cpp name."""
    names = dict(HF_GLOBAL_NAMES)
    for side, layers in (("encoder", hp.n_audio_layer), ("decoder", hp.n_text_layer)):
        for i in range(layers):
            for hf, ggml in HF_LAYER_NAMES.items():
                if side == "encoder" and hf.startswith("encoder_attn"):
                    continue
                for kind in ("weight", "bias"):
                    if kind == "bias" and hf.endswith("k_proj"):
                        continue  # whisper's key projections have no bias
                    names[f"model.{side}.layers.{i}.{hf}.{kind}"] = (
                        f"{side}.blocks.{i}.{ggml}.{kind}"
                    )
    return names


def hf_state(hp: WhisperHParams, ggml: Arrays) -> Arrays:
    """The transformers state dict holding the given whisper.cpp tensors."""
    return {
        hf: ggml[name].reshape(-1) if name in CONV_BIASES else ggml[name]
        for hf, name in hf_names(hp).items()
    }


def write_config(path: Path, hp: WhisperHParams, **overrides: object) -> None:
    """The parts of transformers' WhisperConfig that describe the architecture."""
    config = {
        "architectures": ["WhisperForConditionalGeneration"],
        "model_type": "whisper",
        "vocab_size": hp.n_vocab,
        "num_mel_bins": hp.n_mels,
        "d_model": hp.n_audio_state,
        "encoder_layers": hp.n_audio_layer,
        "encoder_attention_heads": hp.n_audio_head,
        "decoder_layers": hp.n_text_layer,
        "decoder_attention_heads": hp.n_text_head,
        "max_source_positions": hp.n_audio_ctx,
        "max_target_positions": hp.n_text_ctx,
        "torch_dtype": "float16",
        **overrides,
    }
    path.write_text(json.dumps(config))


def write_tokenizer(dst: Path, tokenizer_json: Path) -> None:
    """The slow-tokenizer files of a hub repository: vocab.json and added_tokens.json."""
    data = json.loads(tokenizer_json.read_text(encoding="utf-8"))
    (dst / "vocab.json").write_text(json.dumps(data["model"]["vocab"]), encoding="utf-8")
    added = {t["content"]: t["id"] for t in data["added_tokens"]}
    (dst / "added_tokens.json").write_text(json.dumps(added), encoding="utf-8")


def load_all(info: GgmlModelInfo) -> Arrays:
    return {name: info.load(name) for name in info.tensors}


def assert_same_model(ours: GgmlModelInfo, reference: GgmlModelInfo) -> None:
    assert ours.hparams == reference.hparams
    assert ours.ftype == reference.ftype
    assert np.array_equal(ours.mel_filters, reference.mel_filters)
    assert ours.vocab == reference.vocab
    assert set(ours.tensors) == set(reference.tensors)
    for name, info in reference.tensors.items():
        assert ours.tensors[name].ggml_type == info.ggml_type, name
        assert ours.tensors[name].shape == info.shape, name
        assert np.array_equal(ours.load(name), reference.load(name)), name


def assert_dir_holds(folder: Path, names: set[str]) -> None:
    """No output and no temporary file beyond ``names``."""
    assert {p.name for p in folder.iterdir()} == names


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ct2_f16(ct2_tiny_en: Path, tmp_path_factory: pytest.TempPathFactory) -> GgmlModelInfo:
    out = tmp_path_factory.mktemp("ct2") / "tiny.en-f16.bin"
    return read_ggml(convert_ct2(ct2_tiny_en, out, dtype="f16"))


@pytest.fixture(scope="module")
def tiny_en_weights(ct2_f16: GgmlModelInfo) -> Arrays:
    """tiny.en's tensors by whisper.cpp name, as float16 (every value came from float16)."""
    return {name: array.astype(np.float16) for name, array in load_all(ct2_f16).items()}


@pytest.fixture(scope="module")
def hf_tiny_en(
    ct2_tiny_en: Path,
    ct2_f16: GgmlModelInfo,
    tiny_en_weights: Arrays,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """tiny.en in the layout of the hub's openai/whisper-tiny.en: one F16 model.safetensors."""
    src = tmp_path_factory.mktemp("hf") / "whisper-tiny.en"
    src.mkdir()
    save_file(hf_state(ct2_f16.hparams, tiny_en_weights), src / "model.safetensors")
    write_config(src / "config.json", ct2_f16.hparams)
    write_tokenizer(src, ct2_tiny_en / "tokenizer.json")
    return src


def copy_without_weights(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for name in ("config.json", "vocab.json", "added_tokens.json"):
        shutil.copy(src / name, dst / name)
    return dst


# -- conversions -----------------------------------------------------------------------------------


def test_transformers_f16_equals_ct2_conversion(
    hf_tiny_en: Path, ct2_f16: GgmlModelInfo, tmp_path: Path
) -> None:
    out = convert_transformers(hf_tiny_en, tmp_path / "hf.bin")
    assert out == tmp_path / "hf.bin"
    assert_same_model(read_ggml(out), ct2_f16)
    assert_dir_holds(tmp_path, {"hf.bin"})


def _to_bfloat16_bits(array: npt.NDArray[np.floating]) -> npt.NDArray[np.uint16]:
    """bfloat16 by truncation: the top half of each float32."""
    return (np.ascontiguousarray(array, dtype=np.float32).view(np.uint32) >> 16).astype(np.uint16)


def _write_bf16(path: Path, tensors: Arrays) -> None:
    """safetensors' numpy API has no bfloat16: save the bits as U16, then relabel the header."""
    save_file({k: _to_bfloat16_bits(v) for k, v in tensors.items()}, path)
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    for name, entry in header.items():
        if name != "__metadata__":
            entry["dtype"] = "BF16"
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + raw[8 + n :])


def test_sharded_mixed_precision_checkpoint(
    hf_tiny_en: Path,
    ct2_f16: GgmlModelInfo,
    tiny_en_weights: Arrays,
    tmp_path: Path,
) -> None:
    """Three shards: the encoder in F32, the decoder's globals in F16, its layers in BF16.

    Also stores the tied ``proj_out.weight`` that some checkpoints keep next to the embedding.
    """
    src = copy_without_weights(hf_tiny_en, tmp_path / "sharded")
    state = hf_state(ct2_f16.hparams, tiny_en_weights)
    state["proj_out.weight"] = state["model.decoder.embed_tokens.weight"]
    shards: dict[str, Arrays] = {"encoder": {}, "decoder": {}, "layers": {}}
    for name, array in state.items():
        key = "encoder" if ".encoder." in name else "layers" if ".layers." in name else "decoder"
        shards[key][name] = array
    files = {key: f"model-0000{i}-of-00003.safetensors" for i, key in enumerate(shards, 1)}
    save_file(
        {k: v.astype(np.float32) for k, v in shards["encoder"].items()}, src / files["encoder"]
    )
    save_file(shards["decoder"], src / files["decoder"])
    _write_bf16(src / files["layers"], shards["layers"])
    weight_map = {name: files[key] for key, tensors in shards.items() for name in tensors}
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (src / "model.safetensors.index.json").write_text(json.dumps(index))

    out = read_ggml(convert_transformers(src, tmp_path / "sharded.bin", dtype="f32"))
    to_ggml = hf_names(ct2_f16.hparams)
    bf16_names = {to_ggml[name] for name in shards["layers"]}
    assert len(bf16_names) == 4 * 24
    for name in ct2_f16.tensors:
        want = tiny_en_weights[name].astype(np.float32)
        if name in bf16_names:
            want = (_to_bfloat16_bits(want).astype(np.uint32) << 16).view(np.float32)
        assert np.array_equal(out.load(name), want), name
    assert out.vocab == ct2_f16.vocab


def test_untied_output_projection_is_refused(
    hf_tiny_en: Path, ct2_f16: GgmlModelInfo, tiny_en_weights: Arrays, tmp_path: Path
) -> None:
    src = copy_without_weights(hf_tiny_en, tmp_path / "untied")
    state = hf_state(ct2_f16.hparams, tiny_en_weights)
    projection = state["model.decoder.embed_tokens.weight"].copy()
    projection[51000, 7] += 1
    state["proj_out.weight"] = projection
    save_file(state, src / "model.safetensors")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(ConversionError, match="proj_out is not tied") as err:
        convert_transformers(src, out_dir / "m.bin")
    assert str(src) in str(err.value)
    assert_dir_holds(out_dir, set())


def test_shallow_decoder_like_distil_whisper_loads_in_whisper_cpp(
    hf_tiny_en: Path, ct2_f16: GgmlModelInfo, tiny_en_weights: Arrays, tmp_path: Path
) -> None:
    """distil-whisper keeps 2 decoder layers, large-v3-turbo 4 of 32: only the count changes."""
    src = copy_without_weights(hf_tiny_en, tmp_path / "distil")
    hp = ct2_f16.hparams
    state = {
        k: v
        for k, v in hf_state(hp, tiny_en_weights).items()
        if not k.startswith(("model.decoder.layers.2.", "model.decoder.layers.3."))
    }
    save_file(state, src / "model.safetensors")
    write_config(src / "config.json", hp, decoder_layers=2)
    out = convert_checkpoint(src, tmp_path / "distil.bin")
    info = read_ggml(out)
    assert info.hparams.n_text_layer == 2 and info.hparams.n_audio_layer == 4
    assert len(info.tensors) == 7 + 15 * 4 + 4 + 24 * 2
    model = _core.Model(str(out), use_gpu=False)
    assert (model.n_text_layer, model.n_audio_layer) == (2, 4)


def test_large_v3_dimensions(ct2_tiny_en: Path, tmp_path: Path) -> None:
    """128 mel bins and 51866 tokens, on random weights of width 64 so the test stays small."""
    hp = WhisperHParams(
        n_vocab=51866,
        n_audio_ctx=1500,
        n_audio_state=64,
        n_audio_head=2,
        n_audio_layer=1,
        n_text_ctx=448,
        n_text_state=64,
        n_text_head=2,
        n_text_layer=1,
        n_mels=128,
    )
    rng = np.random.default_rng(3)
    weights = {
        name: rng.standard_normal(shape).astype(np.float16)
        for name, shape in expected_tensor_shapes(hp).items()
    }
    src = tmp_path / "large-v3-like"
    src.mkdir()
    save_file(hf_state(hp, weights), src / "model.safetensors")
    write_config(src / "config.json", hp)
    # A multilingual vocabulary: the 50257 ranks, then <|endoftext|> at 50257 (tiny.en's ranks
    # stand in for the multilingual ones; the ids are what matters).
    english = json.loads((ct2_tiny_en / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = {t: i for t, i in english["model"]["vocab"].items() if i < 50256}
    vocab["<|endoftext|>"] = 50257
    (src / "vocab.json").write_text(json.dumps(vocab))

    out = convert_transformers(src, tmp_path / "large.bin")
    info = read_ggml(out)
    assert info.hparams == hp
    assert info.mel_filters.shape == (128, 201)
    assert len(info.vocab) == 50257 and info.vocab[50256] == b""
    for name, array in weights.items():
        assert np.array_equal(info.load(name).astype(np.float16), array), name
    model = _core.Model(str(out), use_gpu=False)
    assert model.n_mels == 128 and model.n_vocab == 51866 and model.is_multilingual


# -- failures --------------------------------------------------------------------------------------


def test_pickle_only_checkpoint_is_refused(hf_tiny_en: Path, tmp_path: Path) -> None:
    src = copy_without_weights(hf_tiny_en, tmp_path / "pickle")
    (src / "pytorch_model.bin").write_bytes(b"PK\x03\x04 a torch zip archive would be here")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    # Refused from its file names, and by the converter when called on it directly.
    for call in (
        lambda: convert_checkpoint(src, out_dir / "m.bin"),
        lambda: convert_transformers(src, out_dir / "m.bin"),
    ):
        with pytest.raises(ConversionError) as err:
            call()
        message = str(err.value)
        assert str(src) in message
        assert "pickle" in message and "arbitrary code" in message and "torch" in message
        assert "safe_serialization=True" in message  # what to do about it
    assert_dir_holds(out_dir, set())


def _header(entries: object) -> bytes:
    encoded = json.dumps(entries).encode()
    return struct.pack("<Q", len(encoded)) + encoded


CORRUPT_FILES = {
    "empty": (b"", "not a safetensors file"),
    "huge header length": (struct.pack("<Q", 1 << 40) + b"{}", "header length"),
    "not json": (struct.pack("<Q", 5) + b"{oops", "not JSON"),
    "not an object": (_header([1, 2]), "not a JSON object"),
    "unknown dtype": (
        _header({"w": {"dtype": "F17", "shape": [1], "data_offsets": [0, 4]}}) + bytes(4),
        "unknown dtype",
    ),
    "size mismatch": (
        _header({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 8]}}) + bytes(8),
        "spans 8 bytes, but F32 [2, 2] needs 16",
    ),
    "truncated data": (
        _header({"w": {"dtype": "F16", "shape": [4], "data_offsets": [0, 8]}}) + bytes(3),
        "truncated",
    ),
    "negative offset": (
        _header({"w": {"dtype": "F16", "shape": [1], "data_offsets": [-2, 0]}}),
        "invalid data_offsets",
    ),
}


@pytest.mark.parametrize("case", list(CORRUPT_FILES))
def test_corrupt_safetensors_is_refused(case: str, hf_tiny_en: Path, tmp_path: Path) -> None:
    content, reason = CORRUPT_FILES[case]
    src = copy_without_weights(hf_tiny_en, tmp_path / "corrupt")
    (src / "model.safetensors").write_bytes(content)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(ConversionError, match=re.escape(reason)) as err:
        convert_transformers(src, out_dir / "m.bin")
    assert str(src / "model.safetensors") in str(err.value)
    assert_dir_holds(out_dir, set())


def test_missing_tensor_fails_midway_without_output(
    hf_tiny_en: Path, ct2_f16: GgmlModelInfo, tiny_en_weights: Arrays, tmp_path: Path
) -> None:
    """The last tensor written is missing: the error comes after ~75 MB, and nothing remains."""
    src = copy_without_weights(hf_tiny_en, tmp_path / "partial")
    state = hf_state(ct2_f16.hparams, tiny_en_weights)
    del state["model.decoder.layer_norm.bias"]
    save_file(state, src / "model.safetensors")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "m.bin").write_bytes(b"previous model")
    with pytest.raises(ConversionError, match=r"missing tensor 'model\.decoder\.layer_norm\.bias'"):
        convert_transformers(src, out_dir / "m.bin")
    assert (out_dir / "m.bin").read_bytes() == b"previous model"
    assert_dir_holds(out_dir, {"m.bin"})


def test_missing_shard_and_bad_config(hf_tiny_en: Path, tmp_path: Path) -> None:
    src = copy_without_weights(hf_tiny_en, tmp_path / "shardless")
    index = {"weight_map": {"model.encoder.conv1.weight": "model-00001-of-00002.safetensors"}}
    (src / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(
        ConversionError, match=r"shard model-00001-of-00002\.safetensors is missing"
    ):
        convert_transformers(src, tmp_path / "m.bin")

    (src / "model.safetensors.index.json").unlink()
    (src / "model.safetensors").symlink_to(hf_tiny_en / "model.safetensors")
    config = json.loads((src / "config.json").read_text())
    (src / "config.json").write_text(json.dumps({**config, "decoder_layers": 32}))
    with pytest.raises(ConversionError, match="decoder_layers=32, the weights say 4"):
        convert_transformers(src, tmp_path / "m.bin")
    (src / "config.json").write_text(json.dumps({**config, "model_type": "wav2vec2"}))
    with pytest.raises(ConversionError, match="not a Whisper model"):
        convert_transformers(src, tmp_path / "m.bin")
    del config["encoder_attention_heads"]
    (src / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionError, match="no valid encoder_attention_heads"):
        convert_transformers(src, tmp_path / "m.bin")
    assert not (tmp_path / "m.bin").exists()


# -- vocabularies ----------------------------------------------------------------------------------


def test_tokenizer_json_instead_of_vocab_json(
    hf_tiny_en: Path, ct2_tiny_en: Path, ct2_f16: GgmlModelInfo, tmp_path: Path
) -> None:
    src = tmp_path / "fast-tokenizer-only"
    src.mkdir()
    for name in ("config.json", "model.safetensors"):
        (src / name).symlink_to(hf_tiny_en / name)
    shutil.copy(ct2_tiny_en / "tokenizer.json", src)
    assert read_ggml(convert_transformers(src, tmp_path / "m.bin")).vocab == ct2_f16.vocab


def test_tiktoken_vocabulary(ct2_f16: GgmlModelInfo, tmp_path: Path) -> None:
    """openai-whisper's gpt2.tiktoken: base64 token bytes and ranks, without <|endoftext|>."""
    path = tmp_path / "gpt2.tiktoken"
    lines = [base64.b64encode(token) + b" %d" % i for i, token in enumerate(ct2_f16.vocab[:50256])]
    path.write_bytes(b"\n".join(lines) + b"\n")
    tokens = read_tiktoken(path)
    assert ggml_vocabulary(tokens, 51864, path) == ct2_f16.vocab

    path.write_bytes(b"!!! 0\n")
    with pytest.raises(ConversionError, match="not a tiktoken file"):
        read_tiktoken(path)


# -- openai .pt ------------------------------------------------------------------------------------


def _torch_missing() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return True
    return False


@pytest.mark.skipif(not _torch_missing(), reason="torch is installed; tested by the next test")
def test_openai_pt_without_torch_says_what_to_do(tmp_path: Path) -> None:
    src = tmp_path / "tiny.en.pt"
    src.write_bytes(b"PK\x03\x04")
    assert checkpoint_format(src) == "openai-pt"
    with pytest.raises(ConversionError) as err:
        convert_checkpoint(src, tmp_path / "m.bin")
    message = str(err.value)
    assert str(src) in message and "pip install torch" in message and "safetensors" in message
    assert_dir_holds(tmp_path, {"tiny.en.pt"})


def test_openai_pt_equals_ct2_conversion(
    ct2_f16: GgmlModelInfo, tiny_en_weights: Arrays, ct2_tiny_en: Path, tmp_path: Path
) -> None:
    torch = pytest.importorskip("torch")
    hp = ct2_f16.hparams
    state = {
        name: torch.from_numpy(array.reshape(-1) if name in CONV_BIASES else array)
        for name, array in tiny_en_weights.items()
    }
    dims = {f: getattr(hp, f) for f in hp.__dataclass_fields__}
    src = tmp_path / "tiny.en.pt"
    torch.save({"dims": dims, "model_state_dict": state}, src)
    out = convert_openai_pt(src, tmp_path / "pt.bin", tokenizer=ct2_tiny_en)
    assert_same_model(read_ggml(out), ct2_f16)


# -- dispatch --------------------------------------------------------------------------------------


def test_convert_checkpoint_dispatches_on_the_format(
    hf_tiny_en: Path, ct2_tiny_en: Path, ct2_f16: GgmlModelInfo, tmp_path: Path
) -> None:
    assert checkpoint_format(hf_tiny_en) == "transformers"
    assert checkpoint_format(ct2_tiny_en) == "ctranslate2"
    out = convert_checkpoint(ct2_tiny_en, tmp_path / "ct2.bin")
    assert out.read_bytes() == ct2_f16.path.read_bytes()

    # A quantized precision: converted to f16 beside the output, then quantized; only the
    # output is left.
    q8 = convert_checkpoint(ct2_tiny_en, tmp_path / "q8.bin", precision="q8_0")
    assert ggml_precision(q8) == "q8_0"
    # A GGML file is narrowed, never widened or copied.
    q5 = convert_checkpoint(ct2_f16.path, tmp_path / "q5.bin", precision="q5_0")
    assert ggml_precision(q5) == "q5_0"
    for src, precision in ((q8, "q5_0"), (ct2_f16.path, "f16"), (ct2_f16.path, "f32")):
        with pytest.raises(ConversionError, match=r"cannot make .* GGML file") as err:
            convert_checkpoint(src, tmp_path / "m.bin", precision=precision)
        assert str(src) in str(err.value)

    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(ModelLoadError, match="not a whisper GGML model file"):
        convert_checkpoint(other, tmp_path / "m.bin")
    empty = tmp_path / "empty"
    empty.mkdir()
    for src, reason in (
        (empty, "neither a CTranslate2 model"),
        (tmp_path / "nowhere", "no such file or directory"),
    ):
        with pytest.raises(ConversionError, match=reason) as err:
            convert_checkpoint(src, tmp_path / "m.bin")
        assert str(src) in str(err.value)
    assert_dir_holds(tmp_path, {"ct2.bin", "q8.bin", "q5.bin", "notes.txt", "empty"})


def test_names_cover_every_whisper_cpp_tensor(ct2_f16: GgmlModelInfo) -> None:
    """The test's own transformers table maps onto exactly the tensors whisper.cpp loads."""
    mapped = list(hf_names(ct2_f16.hparams).values())
    assert sorted(mapped) == sorted(ct2_f16.tensors)
