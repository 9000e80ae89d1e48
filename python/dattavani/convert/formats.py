"""Which kind of Whisper model a path, or a folder's list of file names, holds: the one place
that tells.

A folder is judged from its file names alone, so a local folder, an installed package and the
hub's file listing of a repository (before anything is downloaded) are judged alike. A ``.pt``
file is an openai-whisper checkpoint; any other file is taken for a whisper.cpp GGML model, which
its reader then checks.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Collection
from pathlib import Path
from typing import Literal

from dattavani.errors import ConversionError

#: What a model is stored as: whisper.cpp's own GGML file, or a checkpoint to convert.
CheckpointFormat = Literal["ggml", "transformers", "ctranslate2", "openai-pt"]

#: A transformers checkpoint's weights: one safetensors file, or shards listed in an index.
SINGLE_FILE = "model.safetensors"
SHARD_INDEX = "model.safetensors.index.json"
#: transformers' PyTorch pickle weights, which dattavani does not read.
PICKLE_FILES = ("pytorch_model.bin", "pytorch_model.bin.index.json")

#: The files converting a CTranslate2 (faster-whisper) model reads.
CT2_FILES = ("model.bin", "config.json", "vocabulary.json", "vocabulary.txt", "tokenizer.json")
#: The files converting a transformers checkpoint reads: never the pickles, TF or Flax weights.
TRANSFORMERS_FILES = (
    "config.json",
    "*.safetensors",
    SHARD_INDEX,
    "vocab.json",
    "added_tokens.json",
    "tokenizer.json",
    "generation_config.json",
)


def pickle_only_reason(where: str) -> str:
    """Why a transformers checkpoint with only pickle weights is refused, and what to do."""
    return (
        f"{where}: only PyTorch pickle weights (pytorch_model.bin), no model.safetensors. "
        "dattavani does not read pickles: unpickling can run arbitrary code, and it needs "
        "torch. Use a revision of the repository that has model.safetensors, or convert "
        "once with transformers: WhisperForConditionalGeneration.from_pretrained(src)"
        ".save_pretrained(dst, safe_serialization=True)"
    )


def folder_format(names: Collection[str], where: str) -> CheckpointFormat:
    """The checkpoint format of a folder holding files of these names (paths in it, for a hub
    listing).

    Safetensors win over a ``model.bin`` beside them: they are the full-precision weights. A
    folder is taken at its weights' word; the converter then names any other file it lacks.

    >>> folder_format(["config.json", "model.bin", "vocabulary.json"], "x")
    'ctranslate2'
    >>> folder_format(["config.json", "model.bin", "model.safetensors"], "x")
    'transformers'

    Raises:
      ConversionError: the folder holds none of them, naming ``where`` and the reason (pickle
        weights only, GGML files to pick from, nothing Whisper-like).
    """
    if SHARD_INDEX in names or any(fnmatch.fnmatch(n, "*.safetensors") for n in names):
        return "transformers"
    if "model.bin" in names:
        return "ctranslate2"
    if any(n in names for n in PICKLE_FILES):
        raise ConversionError(pickle_only_reason(where))
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


def checkpoint_format(src: str | os.PathLike[str]) -> CheckpointFormat:
    """The format of the model at ``src``, a folder or a file (nothing is parsed).

    Raises:
      ConversionError: ``src`` does not exist, or is a folder :func:`folder_format` refuses.
    """
    path = Path(src)
    if path.is_dir():
        return folder_format([p.name for p in path.iterdir()], str(path))
    if path.is_file():
        return "openai-pt" if path.suffix == ".pt" else "ggml"
    raise ConversionError(f"{path}: no such file or directory")


def files_to_fetch(source_format: CheckpointFormat | None) -> tuple[str, ...]:
    """Glob patterns of the files that converting a folder of ``source_format`` reads; for a
    folder not yet known (``None``), those of every format.

    >>> files_to_fetch("ctranslate2")[:2]
    ('model.bin', 'config.json')
    """
    if source_format == "ctranslate2":
        return CT2_FILES
    if source_format == "transformers":
        return TRANSFORMERS_FILES
    return (*CT2_FILES, *TRANSFORMERS_FILES)
