"""GGML files' precision: read from the header, and narrowed natively through ggml in
``dattavani._core``."""

from __future__ import annotations

import os
from pathlib import Path

from dattavani.errors import ConversionError, ModelLoadError
from dattavani.models.specs import Precision

# The GGML header's ftype (ggml_writer.read_ggml_header): quantized files store
# ftype + 1000 * GGML_QNT_VERSION; the remainder is ggml's ggml_ftype.
_GGML_FTYPES: dict[int, Precision] = {
    0: "f32",
    1: "f16",
    2: "q4_0",
    7: "q8_0",
    8: "q5_0",
    9: "q5_1",
}
_QNT_VERSION_FACTOR = 1000


def ggml_precision(path: str | os.PathLike[str]) -> Precision:
    """The precision a whisper GGML file is stored in, from its header.

    Raises:
      ModelLoadError: ``path`` cannot be read or is not a whisper GGML model.
    """
    from dattavani.convert.ggml_writer import read_ggml_header

    p = Path(path)
    try:
        with p.open("rb") as f:
            _, stored = read_ggml_header(f, p)
    except OSError as error:
        raise ModelLoadError(f"{p}: cannot read: {error.strerror or error}") from error
    except (ConversionError, EOFError):
        raise ModelLoadError(f"{p}: not a whisper GGML model file") from None
    ftype = stored % _QNT_VERSION_FACTOR
    precision = _GGML_FTYPES.get(ftype)
    if precision is None:
        raise ModelLoadError(f"{p}: GGML ftype {ftype} is not one dattavani handles")
    return precision


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
