"""Convert an openai-whisper ``.pt`` checkpoint to GGML, with numpy alone (no PyTorch).

The checkpoint is a ``torch.save`` file of ``{"dims": {...}, "model_state_dict": {...}}`` whose
tensor names are whisper.cpp's own, so the conversion is the shared :func:`iter_whisper_tensors`
walk. :mod:`dattavani.convert.torch_zip` reads it: the pickle through an unpickler that resolves
only tensors, storages and ``OrderedDict`` (so the file cannot run code), the tensors memory-mapped
from the archive one at a time.

The vocabulary is not in the checkpoint: openai-whisper keeps it in ``whisper/assets/*.tiktoken``.
It is read from an explicit ``tokenizer`` path, else from a transformers tokenizer next to the
``.pt``, else from an installed openai-whisper package.
"""

from __future__ import annotations

import base64
import binascii
import importlib.util
import os
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dattavani.convert.ct2 import MULTILINGUAL_MIN_VOCAB, _byte_decoder, ggml_vocabulary
from dattavani.convert.ggml_writer import (
    OutDType,
    WhisperHParams,
    expected_tensor_shapes,
    write_ggml,
)
from dattavani.convert.mel import mel_filters
from dattavani.convert.torch_zip import TorchTensor, read_torch_file
from dattavani.convert.transformers import iter_whisper_tensors, read_transformers_tokens
from dattavani.errors import ConversionError


def read_tiktoken(path: Path) -> list[str]:
    """Token strings by id from an openai ``.tiktoken`` file (base64 bytes and a rank a line).

    The byte strings are mapped to GPT-2's byte-level characters, the form the other
    vocabularies use; ``<|endoftext|>``, the first special token, follows the last rank, as in
    openai-whisper's tokenizer.
    """
    encode = {byte: char for char, byte in _byte_decoder().items()}
    ranks: dict[int, str] = {}
    try:
        for line in path.read_bytes().splitlines():
            if line:
                token, rank = line.split()
                data = base64.b64decode(token, validate=True)
                ranks[int(rank)] = "".join(encode[b] for b in data)
    except OSError as exc:
        raise ConversionError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except (ValueError, binascii.Error) as exc:
        raise ConversionError(f"{path}: not a tiktoken file ({exc})") from exc
    if sorted(ranks) != list(range(len(ranks))):
        raise ConversionError(f"{path}: ranks are not 0..n-1")
    return [ranks[i] for i in range(len(ranks))] + ["<|endoftext|>"]


def _tokens(src: Path, tokenizer: Path | None, n_vocab: int) -> list[str]:
    if tokenizer is not None and tokenizer.is_file():
        return read_tiktoken(tokenizer)
    if tokenizer is not None:
        return read_transformers_tokens(tokenizer)
    if (src.parent / "vocab.json").is_file() or (src.parent / "tokenizer.json").is_file():
        return read_transformers_tokens(src.parent)
    spec = importlib.util.find_spec("whisper")
    if spec is not None and spec.origin is not None:
        name = "multilingual" if n_vocab >= MULTILINGUAL_MIN_VOCAB else "gpt2"
        asset = Path(spec.origin).parent / "assets" / f"{name}.tiktoken"
        if asset.is_file():
            return read_tiktoken(asset)
    raise ConversionError(
        f"{src}: no vocabulary: pass tokenizer= (a .tiktoken file or a directory with vocab.json "
        "or tokenizer.json), put the tokenizer next to the checkpoint, or install openai-whisper"
    )


def _hparams(src: Path, dims: Any) -> WhisperHParams:
    try:
        return WhisperHParams(**{f.name: int(dims[f.name]) for f in fields(WhisperHParams)})
    except (KeyError, TypeError, ValueError) as exc:
        raise ConversionError(f"{src}: checkpoint 'dims' lacks a valid {exc}") from exc


def convert_openai_pt(
    src: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    dtype: OutDType = "f16",
    tokenizer: str | os.PathLike[str] | None = None,
) -> Path:
    """Convert an openai-whisper ``.pt`` checkpoint (e.g. ``small.en.pt``) to a GGML file.

    Reads the file without PyTorch (any ``torch.save`` zip file, torch >= 1.6; tensors in
    float16, float32, float64 or bfloat16). ``dtype`` as for :func:`convert_transformers`. The
    vocabulary comes from ``tokenizer`` (a ``.tiktoken`` file or a transformers tokenizer
    directory), else from next to ``src``, else from openai-whisper.

    The pickle inside is never run as code: anything in it other than tensors, storages and
    ``OrderedDict`` is refused. The output appears only when complete.

    >>> convert_openai_pt("small.en.pt", "ggml-small.en.bin")       # doctest: +SKIP
    PosixPath('ggml-small.en.bin')

    Raises:
      ConversionError: ``src`` is not a readable openai-whisper checkpoint (not a torch zip
        file, damaged or truncated, a global other than those above, no or bad ``dims``, a
        missing tensor), there is no vocabulary, or the output cannot be written; the message
        names the path and the reason.
    """
    path = Path(src)
    if not path.is_file():
        raise ConversionError(f"{path}: no such file")
    checkpoint = read_torch_file(path)
    if not (isinstance(checkpoint, Mapping) and {"dims", "model_state_dict"} <= checkpoint.keys()):
        raise ConversionError(
            f"{path}: not an openai-whisper checkpoint: expected a dict with 'dims' and "
            f"'model_state_dict', found {_describe(checkpoint)}"
        )
    dims, state = checkpoint["dims"], checkpoint["model_state_dict"]
    if not isinstance(state, Mapping):
        raise ConversionError(f"{path}: 'model_state_dict' is {_describe(state)}, not a dict")
    hp = _hparams(path, dims)
    vocab = ggml_vocabulary(
        _tokens(path, None if tokenizer is None else Path(tokenizer), hp.n_vocab), hp.n_vocab, path
    )

    shapes = expected_tensor_shapes(hp)

    def load(name: str) -> npt.NDArray[np.floating]:
        tensor = state.get(name)
        if tensor is None:
            raise ConversionError(f"{path}: missing tensor {name!r}")
        if not isinstance(tensor, TorchTensor):
            raise ConversionError(f"{path}: {name!r} is {_describe(tensor)}, not a tensor")
        if not tensor.is_float:
            raise ConversionError(
                f"{path}: tensor {name!r} is held in a {tensor.storage.type.name}; expected "
                "float16, float32, float64 or bfloat16"
            )
        want = shapes[name]
        if tensor.shape != want and (*tensor.shape, 1) != want:  # conv biases: (n,) for (n, 1)
            raise ConversionError(
                f"{path}: tensor {name!r} has shape {tensor.shape}, but the checkpoint's dims "
                f"make it {want}"
            )
        array: npt.NDArray[np.floating] = tensor.load()
        return array

    return write_ggml(
        out_path, hp, mel_filters(hp.n_mels), vocab, iter_whisper_tensors(hp, load), dtype=dtype
    )


def _describe(value: object) -> str:
    if isinstance(value, Mapping):
        return f"a dict with keys {sorted(map(str, value))[:5]}"
    return f"a {type(value).__name__}"
