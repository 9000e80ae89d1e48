"""Corpus-scale transcription on Ray Data: one Parquet row per file, resumable.

>>> from dattavani.batch import transcribe_dataset                       # doctest: +SKIP
>>> summary = transcribe_dataset(["archive/"], "out/", "base.en")         # doctest: +SKIP
>>> print(summary.format())                                             # doctest: +SKIP

Needs the ``ray`` extra (``pip install "dattavani[ray]"``); Ray and pyarrow load only when a batch
runs. See docs/distributed.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .pipeline import BatchSummary, WorkerStats, transcribe_dataset

__all__ = ["BatchSummary", "WorkerStats", "transcribe_dataset"]


def __getattr__(name: str) -> Any:
    # Loaded on first use: the CLI imports this package's command module to build its parser.
    if name not in __all__:
        raise AttributeError(f"module 'dattavani.batch' has no attribute {name!r}")
    value = getattr(importlib.import_module(".pipeline", __name__), name)
    globals()[name] = value
    return value
