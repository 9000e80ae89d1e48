"""Convert Whisper checkpoints from other runtimes into whisper.cpp GGML model files.

Only numpy is needed at runtime: the source formats are parsed directly, never through the
libraries that wrote them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from dattavani.convert.ct2 import (
    Ct2ModelBin,
    ggml_vocabulary,
    iter_ggml_tensors,
    read_hparams,
    read_vocabulary,
)
from dattavani.convert.ggml_writer import OutDType, write_ggml
from dattavani.convert.mel import mel_filters
from dattavani.convert.openai_pt import convert_openai_pt
from dattavani.convert.quantize import QUANTIZE_PRECISIONS, Precision, quantize
from dattavani.convert.transformers import (
    PICKLE_FILES,
    SHARD_INDEX,
    SINGLE_FILE,
    convert_transformers,
    read_json_object,
)
from dattavani.errors import ConversionError

__all__ = [
    "QUANTIZE_PRECISIONS",
    "CheckpointFormat",
    "ConversionError",
    "Precision",
    "checkpoint_format",
    "convert_checkpoint",
    "convert_ct2",
    "convert_openai_pt",
    "convert_transformers",
    "quantize",
]

CheckpointFormat = Literal["transformers", "ctranslate2", "openai-pt"]


def convert_ct2(
    src_dir: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    dtype: OutDType = "f16",
) -> Path:
    """Convert a CTranslate2 / faster-whisper Whisper model directory to a GGML file.

    ``src_dir`` holds ``model.bin`` plus a vocabulary (``vocabulary.json``, ``vocabulary.txt``
    or ``tokenizer.json``); ``config.json`` is checked when present but not needed. ``dtype`` is
    ``"f16"`` (whisper.cpp's usual mixed f16/f32 layout) or ``"f32"``. int8/int16/bfloat16
    models are dequantised first, so their f16 output carries the quantisation error.

    Prefer f16: whisper.cpp 1.8.5 loads an all-f32 file, but its CPU backend then aborts in the
    encoder's first convolution (``ggml_conv_1d`` forces an f16 im2col that asserts on f32
    kernels; upstream whisper.cpp issue #2557).

    The file appears at ``out_path`` only when complete (written to a temporary file in the same
    directory, then renamed). Returns ``out_path`` as a :class:`~pathlib.Path`.

    Raises:
      ConversionError: the directory, a file in it, or the output is unusable; the message
        names the path and the reason.
    """
    src = Path(src_dir)
    if not src.exists():
        raise ConversionError(f"{src}: no such directory")
    if not src.is_dir():
        raise ConversionError(f"{src}: not a directory (expected a CTranslate2 model directory)")
    model_path = src / "model.bin"
    if not model_path.is_file():
        raise ConversionError(f"{src}: no model.bin; not a CTranslate2 model directory")
    _check_config(src / "config.json")

    tokens = read_vocabulary(src)
    with Ct2ModelBin(model_path) as model:
        hparams = read_hparams(model)
        vocab = ggml_vocabulary(tokens, hparams.n_vocab, src)
        return write_ggml(
            out_path,
            hparams,
            mel_filters(hparams.n_mels),
            vocab,
            iter_ggml_tensors(model, hparams),
            dtype=dtype,
        )


def _check_config(path: Path) -> None:
    """config.json only matters to ctranslate2's decoding; just make sure it is not garbage."""
    if path.exists():
        read_json_object(path)


def checkpoint_format(src: str | os.PathLike[str]) -> CheckpointFormat:
    """Tell which converter reads ``src``, from the files it holds (nothing is parsed).

    A directory with ``model.safetensors`` (or its shard index, or only a ``pytorch_model.bin``,
    which :func:`convert_transformers` then refuses with the reason) is a transformers checkpoint;
    one with ``model.bin`` a CTranslate2 model; a ``.pt`` file an openai-whisper checkpoint.
    Safetensors win over ``model.bin`` in a directory holding both: they are the full-precision
    weights.

    Raises:
      ConversionError: ``src`` is none of these; the message says what was looked for.
    """
    path = Path(src)
    if path.is_dir():
        if any((path / name).is_file() for name in (SINGLE_FILE, SHARD_INDEX, *PICKLE_FILES)):
            return "transformers"
        if (path / "model.bin").is_file():
            return "ctranslate2"
        raise ConversionError(
            f"{path}: no {SINGLE_FILE}, {SHARD_INDEX} (transformers) or model.bin (CTranslate2); "
            "not a Whisper checkpoint directory"
        )
    if path.is_file():
        if path.suffix == ".pt":
            return "openai-pt"
        raise ConversionError(
            f"{path}: not a checkpoint to convert (expected a transformers or CTranslate2 "
            "directory, or an openai-whisper .pt file)"
        )
    raise ConversionError(f"{path}: no such file or directory")


def convert_checkpoint(
    src: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    dtype: OutDType = "f16",
) -> Path:
    """Convert any supported Whisper checkpoint to a GGML file: one entry point for all formats.

    Dispatches on :func:`checkpoint_format` to :func:`convert_transformers`,
    :func:`convert_ct2` or :func:`convert_openai_pt`; see those for the details. For a quantized
    model, convert to f16 and then :func:`quantize`.

    >>> convert_checkpoint("whisper-base", "ggml-base.bin")         # doctest: +SKIP
    PosixPath('ggml-base.bin')

    Raises:
      ConversionError: ``src`` is not a checkpoint, or its converter failed.
    """
    source_format = checkpoint_format(src)
    if source_format == "transformers":
        return convert_transformers(src, out_path, dtype=dtype)
    if source_format == "ctranslate2":
        return convert_ct2(src, out_path, dtype=dtype)
    return convert_openai_pt(src, out_path, dtype=dtype)
