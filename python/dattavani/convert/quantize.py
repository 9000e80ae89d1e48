"""Quantize a whisper GGML model natively, through ggml in ``dattavani._core``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

Precision = Literal["q8_0", "q5_0", "q5_1", "q4_0", "f16"]

#: The precisions :func:`quantize` writes, smallest loss first.
QUANTIZE_PRECISIONS: tuple[Precision, ...] = ("f16", "q8_0", "q5_1", "q5_0", "q4_0")


def quantize(
    src: str | os.PathLike[str], out_path: str | os.PathLike[str], precision: Precision
) -> Path:
    """Write the f16 or f32 GGML model ``src`` to ``out_path`` with its weights as ``precision``.

    The weight matrices (projections, MLPs, token embedding) become ``q8_0``, ``q5_1``,
    ``q5_0``, ``q4_0`` or ``f16`` (the latter from an f32 model); biases, norms and positional
    embeddings stay f32 and the convolution kernels f16, as whisper.cpp expects. Per 32 weights
    q8_0 stores 34 bytes (53% of f16), q5_1 24, q5_0 22 and q4_0 18 (28%); q8_0 and q5_0 keep
    tiny.en's transcript of jfk word for word. Memory stays at a few MB whatever the model's
    size; the GIL is released meanwhile. The output appears only when complete.

    >>> quantize("ggml-base.bin", "ggml-base-q5_0.bin", "q5_0")    # doctest: +SKIP
    PosixPath('ggml-base-q5_0.bin')

    Raises:
      OptionsError: ``precision`` is not one of the above.
      ModelLoadError: ``src`` is missing or not a valid whisper GGML file.
      ConversionError: ``src`` is quantized already, or ``out_path`` cannot be written.
    """
    from dattavani import _core

    out = Path(out_path)
    _core.quantize_model(os.fspath(src), os.fspath(out), precision)
    return out
