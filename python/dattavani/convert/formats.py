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
#: Its weights as torch.save files (older checkpoints and fine-tunes have only these), read only
#: where no safetensors are beside them.
PICKLE_FILE = "pytorch_model.bin"
PICKLE_INDEX = "pytorch_model.bin.index.json"

#: The files converting a CTranslate2 (faster-whisper) model reads.
CT2_FILES = ("model.bin", "config.json", "vocabulary.json", "vocabulary.txt", "tokenizer.json")
#: The files converting a transformers checkpoint with safetensors reads: never the torch.save
#: weights beside them, nor TF or Flax ones.
TRANSFORMERS_FILES = (
    "config.json",
    "*.safetensors",
    SHARD_INDEX,
    "vocab.json",
    "added_tokens.json",
    "tokenizer.json",
    "generation_config.json",
)
#: The files converting one with torch.save weights only reads (shards: pytorch_model-*.bin).
TRANSFORMERS_PICKLE_FILES = (
    *(p for p in TRANSFORMERS_FILES if p not in ("*.safetensors", SHARD_INDEX)),
    "pytorch_model*.bin",
    PICKLE_INDEX,
)


def has_safetensors(names: Collection[str]) -> bool:
    """Whether a transformers checkpoint with these files has its weights as safetensors."""
    return SHARD_INDEX in names or any(fnmatch.fnmatch(n, "*.safetensors") for n in names)


def folder_format(names: Collection[str], where: str) -> CheckpointFormat:
    """The checkpoint format of a folder holding files of these names (paths in it, for a hub
    listing).

    Safetensors win over a ``model.bin`` beside them: they are the full-precision weights; a
    transformers checkpoint with only ``torch.save`` weights (``pytorch_model.bin``) is one too.
    A folder is taken at its weights' word; the converter then names any other file it lacks.

    >>> folder_format(["config.json", "model.bin", "vocabulary.json"], "x")
    'ctranslate2'
    >>> folder_format(["config.json", "model.bin", "model.safetensors"], "x")
    'transformers'

    Raises:
      ConversionError: the folder holds none of them, naming ``where`` and the reason (GGML
        files to pick from, nothing Whisper-like).
    """
    if has_safetensors(names):
        return "transformers"
    if "model.bin" in names:
        return "ctranslate2"
    if PICKLE_FILE in names or PICKLE_INDEX in names:
        return "transformers"
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


def files_to_fetch(
    source_format: CheckpointFormat | None, names: Collection[str]
) -> tuple[str, ...]:
    """Glob patterns of the files that converting a folder of ``source_format`` holding
    ``names`` reads; for a folder not yet known (``None``), those of every format.

    >>> files_to_fetch("ctranslate2", ["model.bin", "config.json"])[:2]
    ('model.bin', 'config.json')
    >>> "pytorch_model*.bin" in files_to_fetch("transformers", ["config.json", "pytorch_model.bin"])
    True
    """
    if source_format == "ctranslate2":
        return CT2_FILES
    if source_format == "transformers":
        return TRANSFORMERS_FILES if has_safetensors(names) else TRANSFORMERS_PICKLE_FILES
    return (*CT2_FILES, *TRANSFORMERS_FILES)
