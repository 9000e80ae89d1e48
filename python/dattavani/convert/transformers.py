"""Convert a Hugging Face transformers Whisper checkpoint to whisper.cpp GGML.

A transformers checkpoint directory holds ``config.json``, the weights as ``model.safetensors`` or
as shards listed in ``model.safetensors.index.json`` (older checkpoints and many fine-tunes: as
``torch.save`` files, ``pytorch_model.bin`` or shards in ``pytorch_model.bin.index.json``), and
the tokenizer (``vocab.json`` with ``added_tokens.json``, or ``tokenizer.json``). The weights are
memory-mapped and handed to the GGML writer one tensor at a time.

The mapping is a rename: transformers keeps openai-whisper's ``(out, in)`` matrices and separate
Q/K/V projections, and only the names differ (``layers.N.self_attn.q_proj`` for whisper.cpp's
``blocks.N.attn.query``, ``fc1`` for ``mlp.0``, ...). openai-whisper's own ``.pt`` names are
whisper.cpp's already, so :func:`iter_whisper_tensors` serves both converters.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dattavani.convert.ct2 import ggml_vocabulary, read_vocabulary
from dattavani.convert.formats import PICKLE_FILE, PICKLE_INDEX, SHARD_INDEX, SINGLE_FILE
from dattavani.convert.ggml_writer import (
    OutDType,
    WhisperHParams,
    expected_tensor_shapes,
    write_ggml,
)
from dattavani.convert.mel import mel_filters
from dattavani.convert.safetensors_reader import SafetensorsTensor, read_safetensors_index
from dattavani.convert.torch_zip import TorchTensor, read_torch_file
from dattavani.errors import ConversionError

Tensor = tuple[str, npt.NDArray[np.floating]]

# whisper.cpp name -> transformers name, for the tensors outside the layer blocks (the conv
# layers are named alike).
_GLOBAL_NAMES = {
    "encoder.positional_embedding": "encoder.embed_positions.weight",
    "encoder.ln_post.weight": "encoder.layer_norm.weight",
    "encoder.ln_post.bias": "encoder.layer_norm.bias",
    "decoder.positional_embedding": "decoder.embed_positions.weight",
    "decoder.token_embedding.weight": "decoder.embed_tokens.weight",
    "decoder.ln.weight": "decoder.layer_norm.weight",
    "decoder.ln.bias": "decoder.layer_norm.bias",
}
# The module inside a layer block: whisper.cpp (openai) name -> transformers name.
_BLOCK_MODULES = {
    "attn_ln": "self_attn_layer_norm",
    "attn.query": "self_attn.q_proj",
    "attn.key": "self_attn.k_proj",
    "attn.value": "self_attn.v_proj",
    "attn.out": "self_attn.out_proj",
    "cross_attn_ln": "encoder_attn_layer_norm",
    "cross_attn.query": "encoder_attn.q_proj",
    "cross_attn.key": "encoder_attn.k_proj",
    "cross_attn.value": "encoder_attn.v_proj",
    "cross_attn.out": "encoder_attn.out_proj",
    "mlp_ln": "final_layer_norm",
    "mlp.0": "fc1",
    "mlp.2": "fc2",
}
_BLOCK_RE = re.compile(r"^(encoder|decoder)\.blocks\.(\d+)\.(.+)\.(weight|bias)$")
_LAYER_RE = re.compile(r"^(?:model\.)?(encoder|decoder)\.layers\.(\d+)\.")
# whisper.cpp broadcasts the conv biases over time as (n, 1) columns; checkpoints store (n,).
_CONV_BIASES = frozenset({"encoder.conv1.bias", "encoder.conv2.bias"})


def transformers_name(ggml_name: str) -> str:
    """The transformers name (without the ``model.`` prefix) of a whisper.cpp tensor.

    >>> transformers_name("decoder.blocks.3.cross_attn.query.weight")
    'decoder.layers.3.encoder_attn.q_proj.weight'
    """
    if ggml_name in _GLOBAL_NAMES:
        return _GLOBAL_NAMES[ggml_name]
    match = _BLOCK_RE.match(ggml_name)
    if match is None:
        return ggml_name
    side, index, module, kind = match.groups()
    return f"{side}.layers.{index}.{_BLOCK_MODULES[module]}.{kind}"


def iter_whisper_tensors(
    hp: WhisperHParams, load: Callable[[str], npt.NDArray[np.floating]]
) -> Iterator[Tensor]:
    """Yield every tensor whisper.cpp needs for ``hp``, fetching each by its whisper.cpp name.

    ``load`` maps a whisper.cpp name to the source's array; it is called lazily, one tensor per
    step, so a memory-mapped source is never held in memory whole. The key projections' biases
    are not asked for: whisper has none, and whisper.cpp has no place for one.
    """
    for name in expected_tensor_shapes(hp):
        array = load(name)
        yield name, array.reshape(-1, 1) if name in _CONV_BIASES else array


#: A tensor of the checkpoint, where it lies: both kinds have ``shape`` and ``load()``.
Weight = SafetensorsTensor | TorchTensor


class TransformersCheckpoint:
    """The weights of a transformers checkpoint directory, indexed by name: safetensors, else
    torch.save files (read without torch, their pickle never run: :mod:`.torch_zip`)."""

    def __init__(self, src_dir: Path) -> None:
        self.src = src_dir
        self.tensors: dict[str, Weight]
        if (src_dir / SINGLE_FILE).is_file():
            self.tensors = dict(read_safetensors_index(src_dir / SINGLE_FILE))
        elif (src_dir / SHARD_INDEX).is_file():
            self.tensors = _read_shards(src_dir / SHARD_INDEX, read_safetensors_index)
        elif (src_dir / PICKLE_FILE).is_file():
            self.tensors = dict(read_pickled_weights(src_dir / PICKLE_FILE))
        elif (src_dir / PICKLE_INDEX).is_file():
            self.tensors = _read_shards(src_dir / PICKLE_INDEX, read_pickled_weights)
        else:
            raise ConversionError(
                f"{src_dir}: no {SINGLE_FILE}, {SHARD_INDEX}, {PICKLE_FILE} or {PICKLE_INDEX}; "
                "not a transformers checkpoint"
            )
        # WhisperForConditionalGeneration prefixes everything but proj_out with "model.";
        # a bare WhisperModel does not.
        if "model.encoder.conv1.weight" in self.tensors:
            self.prefix = "model."
        elif "encoder.conv1.weight" in self.tensors:
            self.prefix = ""
        else:
            raise ConversionError(
                f"{src_dir}: no tensor 'model.encoder.conv1.weight'; "
                "not a Whisper transformers checkpoint"
            )

    def entry(self, name: str) -> Weight:
        """The tensor ``name`` (without the prefix); ConversionError if the checkpoint lacks it."""
        tensor = self.tensors.get(self.prefix + name)
        if tensor is None:
            raise ConversionError(f"{self.src}: missing tensor {self.prefix + name!r}")
        return tensor

    def load_ggml(self, ggml_name: str) -> npt.NDArray[np.floating]:
        """The array behind whisper.cpp tensor ``ggml_name``."""
        name = transformers_name(ggml_name)
        array = self.entry(name).load()
        if array.dtype.kind != "f":  # safetensors' reader refuses these itself
            raise ConversionError(
                f"{self.src}: tensor {self.prefix + name!r} is {array.dtype}; expected floats"
            )
        return array

    def count_layers(self, side: str) -> int:
        indices = {
            int(m.group(2))
            for m in map(_LAYER_RE.match, self.tensors)
            if m is not None and m.group(1) == side
        }
        if not indices or indices != set(range(len(indices))):
            raise ConversionError(
                f"{self.src}: {side} layers are missing or not numbered 0..n-1: {sorted(indices)}"
            )
        return len(indices)

    def check_projection_is_tied(self) -> None:
        """whisper.cpp computes logits with the token embedding; refuse a model that does not.

        Tied weights are normally saved once, so ``proj_out.weight`` is usually absent; when a
        checkpoint does store it, it must equal the embedding (compared in slices, both mapped).
        """
        proj = self.tensors.get("proj_out.weight")
        if proj is None:
            return
        emb = self.entry("decoder.embed_tokens.weight")
        untied = proj.shape != emb.shape
        if not untied:
            a, b = emb.load(), proj.load()
            rows = 4096
            untied = any(
                not np.array_equal(a[i : i + rows], b[i : i + rows])
                for i in range(0, a.shape[0], rows)
            )
        if untied:
            raise ConversionError(
                f"{self.src}: proj_out is not tied to the token embedding; "
                "whisper.cpp cannot represent that"
            )


def read_pickled_weights(path: Path) -> dict[str, TorchTensor]:
    """The tensors of a transformers ``torch.save`` weights file (a state dict) by name."""
    state = read_torch_file(path)
    if not isinstance(state, dict):
        raise ConversionError(f"{path}: holds a {type(state).__name__}, not a state dict")
    return {name: t for name, t in state.items() if isinstance(t, TorchTensor)}


def _read_shards(
    index_path: Path, read: Callable[[Path], Mapping[str, Weight]]
) -> dict[str, Weight]:
    """Merge the shards that an index (``model.safetensors.index.json``, or its torch.save
    twin) lists, read with ``read``, checking each name's shard."""
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
        weight_map = index["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError("weight_map is not an object")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ConversionError(f"{index_path}: unreadable shard index: {exc!r}") from exc
    shards: dict[str, Mapping[str, Weight]] = {}
    tensors: dict[str, Weight] = {}
    for name, file_name in weight_map.items():
        if not isinstance(file_name, str) or Path(file_name).name != file_name:
            raise ConversionError(f"{index_path}: tensor {name!r} maps to {file_name!r}")
        if file_name not in shards:
            shard = index_path.parent / file_name
            if not shard.is_file():
                raise ConversionError(f"{index_path}: shard {file_name} is missing")
            shards[file_name] = read(shard)
        tensor = shards[file_name].get(name)
        if tensor is None:
            raise ConversionError(f"{index_path.parent / file_name}: no tensor {name!r}")
        tensors[name] = tensor
    return tensors


def read_json_object(path: Path) -> dict[str, Any]:
    """A checkpoint's JSON file (``config.json``) as a dict; ConversionError when it is not one."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConversionError(f"{path}: unreadable config: {exc}") from exc
    if not isinstance(config, dict):
        raise ConversionError(f"{path}: expected a JSON object")
    return config


def read_config(path: Path) -> dict[str, Any]:
    """``config.json`` as a dict, checked to describe a Whisper model."""
    if not path.is_file():
        raise ConversionError(f"{path}: missing (a transformers checkpoint needs its config.json)")
    config = read_json_object(path)
    model_type = config.get("model_type", "whisper")
    if model_type != "whisper":
        raise ConversionError(f"{path}: model_type is {model_type!r}, not a Whisper model")
    return config


def read_hparams(ckpt: TransformersCheckpoint, config: dict[str, Any]) -> WhisperHParams:
    """Dimensions from the tensor shapes, head counts from the config (shapes cannot tell)."""
    audio_ctx, audio_state = _matrix_shape(ckpt, "encoder.embed_positions.weight")
    text_ctx, text_state = _matrix_shape(ckpt, "decoder.embed_positions.weight")
    n_vocab, _ = _matrix_shape(ckpt, "decoder.embed_tokens.weight")
    conv1 = ckpt.entry("encoder.conv1.weight").shape
    if len(conv1) != 3:
        raise ConversionError(f"{ckpt.src}: encoder.conv1.weight has shape {conv1}, not 3-D")
    hp = WhisperHParams(
        n_vocab=n_vocab,
        n_audio_ctx=audio_ctx,
        n_audio_state=audio_state,
        n_audio_head=_config_int(ckpt.src, config, "encoder_attention_heads"),
        n_audio_layer=ckpt.count_layers("encoder"),
        n_text_ctx=text_ctx,
        n_text_state=text_state,
        n_text_head=_config_int(ckpt.src, config, "decoder_attention_heads"),
        n_text_layer=ckpt.count_layers("decoder"),
        n_mels=conv1[1],
    )
    # The config repeats what the shapes say; a disagreement means a mislabelled checkpoint.
    for key, value in (
        ("vocab_size", hp.n_vocab),
        ("d_model", hp.n_audio_state),
        ("num_mel_bins", hp.n_mels),
        ("encoder_layers", hp.n_audio_layer),
        ("decoder_layers", hp.n_text_layer),
        ("max_source_positions", hp.n_audio_ctx),
        ("max_target_positions", hp.n_text_ctx),
    ):
        if key in config and config[key] != value:
            raise ConversionError(
                f"{ckpt.src}: config.json says {key}={config[key]!r}, the weights say {value}"
            )
    return hp


def _matrix_shape(ckpt: TransformersCheckpoint, name: str) -> tuple[int, int]:
    shape = ckpt.entry(name).shape
    if len(shape) != 2:
        raise ConversionError(f"{ckpt.src}: {name} has shape {shape}, expected a matrix")
    return shape[0], shape[1]


def _config_int(src: Path, config: dict[str, Any], key: str) -> int:
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConversionError(f"{src}: config.json has no valid {key} (got {value!r})")
    return value


def read_transformers_tokens(src: Path) -> list[str]:
    """The token strings by id from ``vocab.json`` + ``added_tokens.json``, else tokenizer.json.

    Ids missing from both (the multilingual vocabulary's placeholder rank) become empty tokens.
    """
    vocab_path = src / "vocab.json"
    if not vocab_path.is_file():
        if (src / "tokenizer.json").is_file():
            return read_vocabulary(src)
        raise ConversionError(f"{src}: no vocab.json or tokenizer.json (the tokenizer is needed)")
    added_path = src / "added_tokens.json"
    by_id: dict[int, str] = {}
    for path in (vocab_path, added_path) if added_path.is_file() else (vocab_path,):
        try:
            table = json.loads(path.read_text(encoding="utf-8"))
            by_id.update({int(i): token for token, i in table.items()})
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConversionError(f"{path}: unreadable: {exc}") from exc
        except (AttributeError, TypeError, ValueError) as exc:
            raise ConversionError(f"{path}: expected a JSON object of token -> id") from exc
    size = max(by_id) + 1 if by_id else 0
    return [by_id.get(i, "") for i in range(size)]


def convert_transformers(
    src_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    dtype: OutDType = "f16",
) -> Path:
    """Convert a Hugging Face transformers Whisper checkpoint directory to a GGML file.

    Works for every Whisper size, English-only or multilingual (large-v3's 128 mel bins and
    51866 tokens included), the turbo and distil-whisper models with their shallow decoders, and
    fine-tunes of any of them. Weights may be F32, F16 or BF16, in one file or sharded, as
    safetensors or, where there are none, as ``torch.save`` files (read without torch: their
    pickle is never run, only tensors are taken from it).

    ``dtype`` is ``"f16"`` (whisper.cpp's usual layout; quantize it further with
    :func:`dattavani.convert.quantize`) or ``"f32"`` (an intermediate: whisper.cpp 1.8.5 cannot
    run an all-f32 model on the CPU). Peak memory stays near the largest tensor. The output
    appears only when complete.

    >>> convert_transformers("whisper-small", "ggml-small.bin")     # doctest: +SKIP
    PosixPath('ggml-small.bin')

    Raises:
      ConversionError: the directory or a file in it is unusable, or the output cannot be
        written; the message names the path and the reason.
    """
    src = Path(src_dir)
    if not src.is_dir():
        reason = "not a directory" if src.exists() else "no such directory"
        raise ConversionError(f"{src}: {reason} (expected a transformers checkpoint directory)")
    config = read_config(src / "config.json")
    ckpt = TransformersCheckpoint(src)
    hp = read_hparams(ckpt, config)
    ckpt.check_projection_is_tied()
    vocab = ggml_vocabulary(read_transformers_tokens(src), hp.n_vocab, src)
    return write_ggml(
        out_path,
        hp,
        mel_filters(hp.n_mels),
        vocab,
        iter_whisper_tensors(hp, ckpt.load_ggml),
        dtype=dtype,
    )
