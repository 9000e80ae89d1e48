"""Models by name: resolution, hub downloads, conversion, the disk cache and loaded-model sharing.

>>> from dattavani.models import resolve_model, default_model_cache
>>> model = resolve_model("base.en-q5_0")                           # doctest: +SKIP
>>> with default_model_cache().acquire(model.path, use_gpu=False) as lease:   # doctest: +SKIP
...     print(lease.model.type)
base

``docs/models.md`` describes the names, the order of resolution and the cache.
"""

from __future__ import annotations

from dattavani.models.disk_cache import CacheEntry, DiskCache, default_cache_dir
from dattavani.models.model_cache import ModelCache, ModelLease, default_model_cache
from dattavani.models.resolve import ResolvedModel, resolve_model
from dattavani.models.specs import PRECISIONS, SIZES

__all__ = [
    "PRECISIONS",
    "SIZES",
    "CacheEntry",
    "DiskCache",
    "ModelCache",
    "ModelLease",
    "ResolvedModel",
    "default_cache_dir",
    "default_model_cache",
    "resolve_model",
]
