"""Models by name: resolution, hub downloads, conversion, the disk cache and loaded-model sharing.

>>> from dattavani.models import resolve_model, default_model_cache
>>> model = resolve_model("base.en-q5_0")                           # doctest: +SKIP
>>> with default_model_cache().acquire(model.path, use_gpu=False) as lease:   # doctest: +SKIP
...     print(lease.model.type)
base

``docs/models.md`` describes the names, the order of resolution and the cache.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dattavani.models.disk_cache import CacheEntry, DiskCache, default_cache_dir
    from dattavani.models.model_cache import (
        LoadParameters,
        ModelCache,
        ModelLease,
        default_model_cache,
    )
    from dattavani.models.resolve import ResolvedModel, resolve_model
    from dattavani.models.specs import PRECISIONS, SIZES

# name -> submodule, imported on first access: `dattavani --help` and `import dattavani.cli.models`
# should not pay for filelock, the resolver and the caches (PEP 562).
_LAZY = {
    "CacheEntry": "disk_cache",
    "DiskCache": "disk_cache",
    "default_cache_dir": "disk_cache",
    "LoadParameters": "model_cache",
    "ModelCache": "model_cache",
    "ModelLease": "model_cache",
    "default_model_cache": "model_cache",
    "ResolvedModel": "resolve",
    "resolve_model": "resolve",
    "PRECISIONS": "specs",
    "SIZES": "specs",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dattavani.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"dattavani.models.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "PRECISIONS",
    "SIZES",
    "CacheEntry",
    "DiskCache",
    "LoadParameters",
    "ModelCache",
    "ModelLease",
    "ResolvedModel",
    "default_cache_dir",
    "default_model_cache",
    "resolve_model",
]
