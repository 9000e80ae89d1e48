"""Convert an openai-whisper ``.pt`` checkpoint to GGML, when PyTorch happens to be installed.

The checkpoint is a torch pickle ``{"dims": {...}, "model_state_dict": {...}}`` whose tensor names
are whisper.cpp's own, so the conversion is the shared :func:`iter_whisper_tensors` walk. It is
loaded with ``weights_only=True`` (no arbitrary code) and memory-mapped (torch >= 2.1).

The vocabulary is not in the checkpoint: openai-whisper keeps it in ``whisper/assets/*.tiktoken``.
It is read from an explicit ``tokenizer`` path, else from a transformers tokenizer next to the
``.pt``, else from an installed openai-whisper package.
"""

from __future__ import annotations

import base64
import binascii
import importlib.util
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dattavani.convert.ct2 import MULTILINGUAL_MIN_VOCAB, _byte_decoder, ggml_vocabulary
from dattavani.convert.ggml_writer import OutDType, WhisperHParams, write_ggml
from dattavani.convert.mel import mel_filters
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

    Needs PyTorch >= 2.1; without it a :class:`ConversionError` says to install it or to
    convert the model's transformers safetensors instead. ``dtype`` as for
    :func:`convert_transformers`. The vocabulary comes from ``tokenizer`` (a ``.tiktoken`` file
    or a transformers tokenizer directory), else from next to ``src``, else from openai-whisper.

    >>> convert_openai_pt("small.en.pt", "ggml-small.en.bin")       # doctest: +SKIP
    PosixPath('ggml-small.en.bin')
    """
    path = Path(src)
    if not path.is_file():
        raise ConversionError(f"{path}: no such file")
    try:
        import torch
    except ImportError as exc:
        raise ConversionError(
            f"{path}: reading an openai-whisper .pt checkpoint needs PyTorch, which is not "
            "installed. Install it (pip install torch), or convert the model's Hugging Face "
            "safetensors (e.g. openai/whisper-small.en) instead, which needs only numpy"
        ) from exc
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        dims, state = checkpoint["dims"], checkpoint["model_state_dict"]
    except Exception as exc:  # torch raises a zoo of types for a bad file
        raise ConversionError(f"{path}: not a readable openai-whisper checkpoint: {exc}") from exc
    hp = _hparams(path, dims)
    vocab = ggml_vocabulary(
        _tokens(path, None if tokenizer is None else Path(tokenizer), hp.n_vocab), hp.n_vocab, path
    )

    def load(name: str) -> npt.NDArray[np.floating]:
        tensor = state.get(name)
        if tensor is None:
            raise ConversionError(f"{path}: missing tensor {name!r}")
        if tensor.dtype == torch.bfloat16:  # numpy has no bfloat16
            tensor = tensor.float()
        array: npt.NDArray[np.floating] = tensor.detach().numpy()
        return array

    return write_ggml(
        out_path, hp, mel_filters(hp.n_mels), vocab, iter_whisper_tensors(hp, load), dtype=dtype
    )
