"""Tests for the transformers (safetensors or torch.save) and openai .pt converters and the
format dispatch.

The transformers checkpoints are built here from the real faster-whisper tiny.en: its weights,
converted to GGML by the CTranslate2 converter, are renamed to the transformers layout (names
spelled out below from transformers' WhisperForConditionalGeneration) and written with the
``safetensors`` package itself, or as the ``pytorch_model.bin`` of older checkpoints. The openai
``.pt`` checkpoints hold the same weights under whisper.cpp's names. Both torch.save kinds are
written without torch by ``tests/torch_save.py``. Converting any of them back must give the
CTranslate2 conversion's tensors bit for bit.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
import shutil
import struct
import sys
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from safetensors.numpy import save_file

import torch_save
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
from dattavani.convert.torch_zip import read_torch_file
from dattavani.errors import ModelLoadError
from dattavani.models import LoadParameters

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
    model = LoadParameters(use_gpu=False).load_model(out)
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
    model = LoadParameters(use_gpu=False).load_model(out)
    assert model.n_mels == 128 and model.n_vocab == 51866 and model.is_multilingual


# -- failures --------------------------------------------------------------------------------------


def test_pickle_only_checkpoint_converts(
    hf_tiny_en: Path, ct2_f16: GgmlModelInfo, tiny_en_weights: Arrays, tmp_path: Path
) -> None:
    """Only torch.save weights (pytorch_model.bin, as older checkpoints and many fine-tunes have):
    read without torch, one file or sharded, the same model as the CTranslate2 conversion."""
    state = OrderedDict(hf_state(ct2_f16.hparams, tiny_en_weights))
    single = copy_without_weights(hf_tiny_en, tmp_path / "single")
    torch_save.save(state, single / "pytorch_model.bin")
    sharded = copy_without_weights(hf_tiny_en, tmp_path / "sharded")
    files = ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin"]
    weight_map = {name: files[".decoder." in name] for name in state}
    for file in files:
        shard = {name: a for name, a in state.items() if weight_map[name] == file}
        torch_save.save(OrderedDict(shard), sharded / file)
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (sharded / "pytorch_model.bin.index.json").write_text(json.dumps(index))

    for src in (single, sharded):
        assert checkpoint_format(src) == "transformers"
        out = convert_checkpoint(src, tmp_path / f"{src.name}.bin")
        assert_same_model(read_ggml(out), ct2_f16)


def test_pickle_only_checkpoint_refusals(
    hf_tiny_en: Path, ct2_f16: GgmlModelInfo, tiny_en_weights: Arrays, tmp_path: Path
) -> None:
    """A pickle holding no state dict, or integers for a weight, is refused with the reason and
    leaves no output."""
    src = copy_without_weights(hf_tiny_en, tmp_path / "src")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    torch_save.save((1, 2), src / "pytorch_model.bin")
    with pytest.raises(ConversionError, match=r"pytorch_model\.bin: holds a tuple, not a state"):
        convert_transformers(src, out_dir / "m.bin")
    state = hf_state(ct2_f16.hparams, tiny_en_weights)
    state["model.decoder.layer_norm.bias"] = np.arange(384, dtype=np.int64)
    torch_save.save(state, src / "pytorch_model.bin")
    with pytest.raises(ConversionError) as err:
        convert_transformers(src, out_dir / "m.bin")
    assert str(err.value) == (
        f"{src}: tensor 'model.decoder.layer_norm.bias' is int64; expected floats"
    )
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
# The checkpoints are written without torch: tests/torch_save.py writes torch.save's zip archive
# and pickle opcodes by hand. The last test checks that module against torch, where it is installed.


def openai_checkpoint(hp: WhisperHParams, weights: Arrays) -> dict[str, object]:
    """openai-whisper's file: ``{"dims": asdict(dims), "model_state_dict": model.state_dict()}``."""
    state = OrderedDict(
        (name, array.reshape(-1) if name in CONV_BIASES else array)
        for name, array in weights.items()
    )
    vars(state)["_metadata"] = OrderedDict({"": {"version": 1}})  # as Module.state_dict() sets
    return {"dims": dataclasses.asdict(hp), "model_state_dict": state}


def test_openai_pt_converts_without_torch(
    ct2_f16: GgmlModelInfo,
    tiny_en_weights: Arrays,
    ct2_tiny_en: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """tiny.en as openai's float16 .pt gives the CTranslate2 conversion's model bit for bit."""
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails, installed or not
    src = tmp_path / "tiny.en.pt"
    torch_save.save(openai_checkpoint(ct2_f16.hparams, tiny_en_weights), src)
    shutil.copy(ct2_tiny_en / "tokenizer.json", tmp_path)  # the vocabulary, next to the .pt
    assert checkpoint_format(src) == "openai-pt"
    out = convert_checkpoint(src, tmp_path / "pt.bin")
    assert_same_model(read_ggml(out), ct2_f16)
    assert_dir_holds(tmp_path, {"tiny.en.pt", "tokenizer.json", "pt.bin"})


def test_openai_pt_storage_types_and_views(
    ct2_f16: GgmlModelInfo, tiny_en_weights: Arrays, ct2_tiny_en: Path, tmp_path: Path
) -> None:
    """What else torch.save may write: float32 and bfloat16 storages, big-endian bytes, tensors
    sharing a storage at offsets (the decoder's query and key weights), a transposed view (the
    token embedding), and the archive's folder named after the file, as older torch named it."""
    storages: dict[str, bytes] = {}

    def stored(kind: str, data: npt.NDArray[np.generic]) -> torch_save.Storage:
        key = str(len(storages))
        storages[key] = data.astype(data.dtype.newbyteorder(">")).tobytes()
        return torch_save.Storage(kind, key, data.size)

    def tensor(storage: torch_save.Storage, shape: tuple[int, ...]) -> torch_save.Tensor:
        return torch_save.Tensor(storage, 0, shape, torch_save.contiguous_stride(shape))

    weights = {n: a.reshape(-1) if n in CONV_BIASES else a for n, a in tiny_en_weights.items()}
    want = {n: a.astype(np.float32) for n, a in tiny_en_weights.items()}
    state: dict[str, object] = {}
    for name, array in weights.items():
        if name.startswith("encoder."):
            state[name] = tensor(stored("FloatStorage", array.astype(np.float32)), array.shape)
        elif name.startswith("decoder.blocks."):
            bits = _to_bfloat16_bits(array)
            state[name] = tensor(stored("BFloat16Storage", bits), array.shape)
            want[name] = (bits.astype(np.uint32) << 16).view(np.float32)
        else:
            state[name] = tensor(stored("HalfStorage", array), array.shape)
    for i in range(ct2_f16.hparams.n_text_layer):
        names = [f"decoder.blocks.{i}.attn.{p}.weight" for p in ("query", "key")]
        query, key = (weights[name] for name in names)
        both = stored("HalfStorage", np.concatenate([query.reshape(-1), key.reshape(-1)]))
        for name, offset in zip(names, (0, query.size), strict=True):
            state[name] = torch_save.Tensor(
                both, offset, query.shape, torch_save.contiguous_stride(query.shape)
            )
            want[name] = tiny_en_weights[name].astype(np.float32)
    embedding = weights["decoder.token_embedding.weight"]
    transposed = stored("HalfStorage", np.ascontiguousarray(embedding.T))
    state["decoder.token_embedding.weight"] = torch_save.Tensor(
        transposed, 0, embedding.shape, (1, embedding.shape[0])
    )
    src = tmp_path / "tiny.en.pt"
    checkpoint = {"dims": dataclasses.asdict(ct2_f16.hparams), "model_state_dict": state}
    data_pkl = torch_save.pickle_bytes(checkpoint)
    torch_save.write_archive(src, data_pkl, storages, folder="tiny.en", byteorder="big")

    out = read_ggml(convert_openai_pt(src, tmp_path / "pt.bin", dtype="f32", tokenizer=ct2_tiny_en))
    for name in ct2_f16.tensors:
        assert np.array_equal(out.load(name), want[name]), name
    assert out.vocab == ct2_f16.vocab


@pytest.mark.parametrize("byteorder", ["little", "big", None])
def test_torch_file_tensors(byteorder: str | None, tmp_path: Path) -> None:
    """Each storage type a checkpoint may hold, read back by value through views of it; no
    byteorder member means little-endian (torch < 1.13 wrote none)."""
    order = ">" if byteorder == "big" else "<"
    values = {
        "HalfStorage": np.arange(-3, 3, dtype=np.float16) / 4,
        "FloatStorage": np.linspace(-1, 1, 6, dtype=np.float32),
        "DoubleStorage": np.linspace(0, 5, 6),
        "BFloat16Storage": np.array([1.5, -2, 0.25, 2.0**127, 2.0**-130, 0], dtype=np.float32),
        "LongStorage": np.arange(6, dtype=np.int64) - 2**40,
        "BoolStorage": np.array([True, False] * 3),
    }
    storages: dict[str, bytes] = {}
    tensors: dict[str, object] = {}
    for kind, array in values.items():
        data = _to_bfloat16_bits(array) if kind == "BFloat16Storage" else array
        storages[kind] = data.astype(data.dtype.newbyteorder(order)).tobytes()
        storage = torch_save.Storage(kind, kind, 6)
        tensors[kind] = torch_save.Tensor(storage, 0, (2, 3), (3, 1))
        tensors[f"{kind} tail"] = torch_save.Tensor(storage, 2, (4,), (1,))
        tensors[f"{kind} transposed"] = torch_save.Tensor(storage, 0, (3, 2), (1, 3))
        tensors[f"{kind} empty"] = torch_save.Tensor(storage, 6, (0, 3), (3, 1))
    tensors["parameter"] = torch_save.Call(
        torch_save.Global("torch._utils", "_rebuild_parameter"),
        (tensors["HalfStorage"], True, OrderedDict()),
    )
    src = tmp_path / "t.pt"
    data_pkl = torch_save.pickle_bytes(tensors)
    torch_save.write_archive(src, data_pkl, storages, byteorder=byteorder)

    got = read_torch_file(src)
    assert set(got) == set(tensors)
    for kind, array in values.items():
        matrix = array.reshape(2, 3)
        views = {"": matrix, " tail": array[2:], " transposed": matrix.T, " empty": matrix[:0]}
        for suffix, want in views.items():
            tensor = got[kind + suffix]
            assert tensor.is_float == (array.dtype.kind == "f")
            loaded = tensor.load()
            assert loaded.shape == want.shape and np.array_equal(loaded, want), kind + suffix
    assert np.array_equal(got["parameter"].load(), values["HalfStorage"].reshape(2, 3))


def test_openai_pt_missing_tensor_fails_midway_without_output(
    ct2_f16: GgmlModelInfo, tiny_en_weights: Arrays, ct2_tiny_en: Path, tmp_path: Path
) -> None:
    last = list(expected_tensor_shapes(ct2_f16.hparams))[-1]
    weights = {name: array for name, array in tiny_en_weights.items() if name != last}
    src = tmp_path / "tiny.en.pt"
    torch_save.save(openai_checkpoint(ct2_f16.hparams, weights), src)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "m.bin").write_bytes(b"previous model")
    with pytest.raises(ConversionError, match=f"missing tensor {re.escape(repr(last))}"):
        convert_openai_pt(src, out_dir / "m.bin", tokenizer=ct2_tiny_en)
    assert (out_dir / "m.bin").read_bytes() == b"previous model"
    assert_dir_holds(out_dir, {"m.bin"})


# Broken .pt files: a writer of each, given the path and tiny.en's hparams, and the reason given.
Writer = Callable[[Path, WhisperHParams], None]
HALF4 = torch_save.Tensor(torch_save.Storage("HalfStorage", "0", 4), 0, (4,), (1,))


def _raw(content: bytes) -> Writer:
    return lambda path, hp: path.write_bytes(content)


def _archive(data_pkl: bytes, storages: dict[str, bytes] | None = None, **options: Any) -> Writer:
    """A torch zip archive of the pickle; by default with float16 storage '0' of 4 elements."""
    content = {"0": bytes(8)} if storages is None else storages
    return lambda path, hp: torch_save.write_archive(path, data_pkl, content, **options)


def _pickled(obj: object, storages: dict[str, bytes] | None = None, **options: Any) -> Writer:
    return _archive(torch_save.pickle_bytes(obj), storages, **options)


def _checkpoint(state: dict[str, object], without: str | None = None) -> Writer:
    """tiny.en's dims (less ``without``) and the tensors of ``state``."""

    def write(path: Path, hp: WhisperHParams) -> None:
        dims = {k: v for k, v in dataclasses.asdict(hp).items() if k != without}
        torch_save.save({"dims": dims, "model_state_dict": state}, path)

    return write


def _truncated(path: Path, hp: WhisperHParams) -> None:
    torch_save.save({"w": np.ones(4096, dtype=np.float16)}, path)
    path.write_bytes(path.read_bytes()[:5000])


def _no_data_pkl(path: Path, hp: WhisperHParams) -> None:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/version", "3\n")


def _torchscript(path: Path, hp: WhisperHParams) -> None:
    torch_save.write_archive(path, torch_save.pickle_bytes({}), {})
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("archive/constants.pkl", torch_save.pickle_bytes(()))
        archive.writestr("archive/code/__torch__.py", "")


def _runs_a_command(path: Path, hp: WhisperHParams) -> None:
    """Would leave a file beside the checkpoint, were its pickle run."""
    touch = torch_save.Call(torch_save.Global("os", "system"), (f"touch {path}.pwned",))
    torch_save.write_archive(path, torch_save.pickle_bytes({"dims": touch}), {})


BROKEN_PT: dict[str, tuple[Writer, str]] = {
    "empty": (_raw(b""), "not a PyTorch checkpoint"),
    "text": (_raw(b"hello"), "not a PyTorch checkpoint"),
    "legacy format": (
        _raw(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19 and so on"),
        "legacy format of torch < 1.6",
    ),
    "truncated": (_truncated, "damaged or truncated zip archive"),
    "no data.pkl": (_no_data_pkl, "no data.pkl in the zip archive"),
    "TorchScript": (_torchscript, "a TorchScript archive"),
    "unknown byte order": (_pickled({"w": HALF4}, byteorder="middle"), "unknown byte order"),
    "compressed": (
        _pickled({"w": HALF4}, compression=zipfile.ZIP_DEFLATED),
        "is compressed or encrypted; torch.save stores its members as they are",
    ),
    "missing storage": (_pickled({"w": HALF4}, {}), "storage '0' has no member archive/data/0"),
    "short storage": (
        _pickled({"w": HALF4}, {"0": bytes(6)}),
        "storage '0' (HalfStorage of 4) needs 8 bytes, member archive/data/0 holds 6",
    ),
    "tensor past its storage": (
        _pickled(torch_save.Tensor(HALF4.storage, 3, (2,), (1,))),
        "a tensor of shape (2,) reaches element 4 of storage '0', which holds 4",
    ),
    "malformed tensor": (
        _pickled(torch_save.Tensor(HALF4.storage, 0, (2, 2), (1,))),
        "a malformed tensor in data.pkl",
    ),
    "os.system": (_runs_a_command, "data.pkl refers to os.system, not allowed"),
    "builtins.exec": (
        _pickled(torch_save.Call(torch_save.Global("builtins", "exec"), ("import os",))),
        "data.pkl refers to builtins.exec, not allowed",
    ),
    "complex storage": (
        _pickled(torch_save.Storage("ComplexFloatStorage", "0", 2)),
        "torch.ComplexFloatStorage, an unsupported storage type",
    ),
    "other persistent id": (
        _archive(b"\x80\x02X\x03\x00\x00\x00abcQ."),  # PROTO 2, BINUNICODE 'abc', BINPERSID
        "unknown persistent id 'abc'",
    ),
    "corrupt pickle": (_archive(b"\x80\x02}(X\x04\x00\x00\x00di"), "corrupt data.pkl"),
    "not a dict": (_pickled((1, 2)), "expected a dict with 'dims' and 'model_state_dict'"),
    "no dims": (_pickled({"model_state_dict": {}}), "found a dict with keys ['model_state_dict']"),
    "dims lack n_mels": (_checkpoint({}, without="n_mels"), "'dims' lacks a valid 'n_mels'"),
    "integer tensor": (
        _checkpoint({"encoder.positional_embedding": np.zeros((1500, 384), np.int64)}),
        "tensor 'encoder.positional_embedding' is held in a LongStorage; expected float16",
    ),
    "not a tensor": (
        _checkpoint({"encoder.positional_embedding": "weights"}),
        "'encoder.positional_embedding' is a str, not a tensor",
    ),
    "wrong shape": (
        _checkpoint({"encoder.positional_embedding": np.zeros((1500, 383), np.float16)}),
        "'encoder.positional_embedding' has shape (1500, 383), but the checkpoint's dims make "
        "it (1500, 384)",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN_PT))
def test_broken_openai_pt_is_refused(
    case: str, ct2_f16: GgmlModelInfo, ct2_tiny_en: Path, tmp_path: Path
) -> None:
    write, reason = BROKEN_PT[case]
    src = tmp_path / "m.pt"
    write(src, ct2_f16.hparams)
    with pytest.raises(ConversionError, match=re.escape(reason)) as err:
        convert_openai_pt(src, tmp_path / "m.bin", tokenizer=ct2_tiny_en)
    assert str(src) in str(err.value)
    assert_dir_holds(tmp_path, {"m.pt"})  # no output, no temporary file, no command run


def test_torch_save_files_agree_with_torch(
    ct2_f16: GgmlModelInfo, tiny_en_weights: Arrays, ct2_tiny_en: Path, tmp_path: Path
) -> None:
    """Where torch is installed: a file torch.save wrote converts as ours do, its views and
    bfloat16 read right, and torch reads tests/torch_save.py's files as written."""
    torch = pytest.importorskip("torch")
    hp = ct2_f16.hparams
    state = {
        name: torch.from_numpy(array.reshape(-1) if name in CONV_BIASES else array)
        for name, array in tiny_en_weights.items()
    }
    src = tmp_path / "tiny.en.pt"
    torch.save({"dims": dataclasses.asdict(hp), "model_state_dict": state}, src)
    out = convert_openai_pt(src, tmp_path / "pt.bin", tokenizer=ct2_tiny_en)
    assert_same_model(read_ggml(out), ct2_f16)

    base = torch.linspace(-2, 2, 12).reshape(3, 4)  # one storage for the first two
    views = {"t": base.t(), "row": base[1], "bf16": base.to(torch.bfloat16)}
    torch.save(views, tmp_path / "views.pt")
    got = read_torch_file(tmp_path / "views.pt")
    assert got["t"].storage == got["row"].storage
    for name, view in views.items():
        assert np.array_equal(got[name].load(), view.float().numpy()), name

    bits = _to_bfloat16_bits(np.array([1.5, -2], dtype=np.float32))
    ours = {"w": np.arange(6, dtype=np.float16).reshape(2, 3), "b": torch_save.BFloat16(bits)}
    torch_save.save(ours, tmp_path / "ours.pt")
    loaded = torch.load(tmp_path / "ours.pt", weights_only=True)
    assert loaded["w"].dtype == torch.float16 and loaded["b"].dtype == torch.bfloat16
    assert np.array_equal(loaded["w"].numpy(), ours["w"])
    assert loaded["b"].float().tolist() == [1.5, -2.0]


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
