"""Convert Whisper checkpoints from other runtimes into whisper.cpp GGML model files.

Only numpy is needed at runtime: the source formats are parsed directly, never through the
libraries that wrote them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from dattavani.convert.ct2 import (
    Ct2ModelBin,
    ggml_vocabulary,
    iter_ggml_tensors,
    read_hparams,
    read_vocabulary,
)
from dattavani.convert.formats import CheckpointFormat, checkpoint_format
from dattavani.convert.ggml_writer import OutDType, write_ggml
from dattavani.convert.mel import mel_filters
from dattavani.convert.openai_pt import convert_openai_pt
from dattavani.convert.quantize import ggml_precision, quantize
from dattavani.convert.transformers import convert_transformers, read_json_object
from dattavani.errors import ConversionError
from dattavani.models.specs import PRECISIONS, Precision

__all__ = [
    "CheckpointFormat",
    "ConversionError",
    "checkpoint_format",
    "convert_checkpoint",
    "convert_ct2",
    "convert_openai_pt",
    "convert_transformers",
    "ggml_precision",
    "quantize",
]


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


def convert_checkpoint(
    src: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    precision: Precision = "f16",
) -> Path:
    """Write the model at ``src``, in any format :func:`checkpoint_format` knows, to a GGML file
    at ``precision``: one entry point for every format and precision.

    A checkpoint goes to :func:`convert_transformers`, :func:`convert_ct2` or
    :func:`convert_openai_pt` (see those for the details); for a quantized precision it is
    converted to f16 first (a temporary file beside ``out_path``), then quantized natively. A
    GGML file can only be narrowed: quantized from f16 or f32 with :func:`quantize`.

    >>> convert_checkpoint("whisper-base", "ggml-base-q5_0.bin", precision="q5_0")  # doctest: +SKIP
    PosixPath('ggml-base-q5_0.bin')

    Raises:
      ConversionError: ``src`` is not a model, or cannot become ``precision``, or its converter
        failed.
      ModelLoadError: ``src`` is a file that is not a whisper GGML model.
    """
    out = Path(out_path)
    source_format = checkpoint_format(src)
    if source_format == "ggml":
        have = ggml_precision(src)
        if have not in ("f16", "f32") or PRECISIONS.index(precision) <= PRECISIONS.index(have):
            raise ConversionError(
                f"{src}: cannot make {precision} from this {have} GGML file (quantizing starts "
                "from f16 or f32 and narrows; convert the original checkpoint instead)"
            )
        return quantize(src, out, precision)
    converter = _CONVERTERS[source_format]
    if precision in ("f16", "f32"):
        return converter(src, out, dtype=precision)
    intermediate = out.with_name(f".{out.name}.f16")
    try:
        converter(src, intermediate, dtype="f16")
        return quantize(intermediate, out, precision)
    finally:
        intermediate.unlink(missing_ok=True)


_CONVERTERS: dict[CheckpointFormat, Callable[..., Path]] = {
    "transformers": convert_transformers,
    "ctranslate2": convert_ct2,
    "openai-pt": convert_openai_pt,
}
