"""Loaded models shared within a process: :class:`ModelCache`.

Two Transcribers of the same model file (and the same load options) share one loaded
``dattavani._core.Model``. The cache keeps at most ``max_models`` of them; past that the least
recently used one that nobody holds is freed. A model is held through a :class:`ModelLease` and
is never freed while a lease on it is open, however full the cache is.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dattavani import _core

#: ``(resolved path, size, mtime, sorted load options)``: a rewritten file loads afresh.
_Key = tuple[str, int, int, tuple[tuple[str, Any], ...]]


@dataclass
class _Slot:
    """One model: loaded (or being loaded by the first thread that asked) and its holders."""

    path: str
    load_kwargs: dict[str, Any]
    refs: int = 0
    model: _core.Model | None = None
    error: BaseException | None = None
    ready: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class CachedModelInfo:
    """A model in the cache, as :meth:`ModelCache.info` reports it."""

    path: str
    load_kwargs: dict[str, Any]
    refs: int
    loaded: bool


class ModelLease:
    """A hold on a loaded model; ``.model`` is the ``dattavani._core.Model``.

    Use it as a context manager, or call :meth:`release` when done; a lease that is garbage
    collected is released too, so a forgotten one cannot pin a model forever.
    """

    def __init__(self, cache: ModelCache, key: _Key, model: _core.Model) -> None:
        self.model = model
        self._finalizer = weakref.finalize(self, cache._release, key)

    @property
    def released(self) -> bool:
        return not self._finalizer.alive

    def release(self) -> None:
        """Let the cache free the model when it needs room (idempotent)."""
        self._finalizer()

    def __enter__(self) -> ModelLease:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class ModelCache:
    """Thread-safe LRU cache of loaded models, reference-counted.

    >>> cache = ModelCache(max_models=2)
    >>> with cache.acquire("ggml-tiny.en.bin", use_gpu=False) as lease:   # doctest: +SKIP
    ...     lease.model.transcribe(samples, options)
    """

    def __init__(self, max_models: int = 2) -> None:
        if max_models < 1:
            from dattavani.errors import OptionsError

            raise OptionsError(f"max_models must be at least 1, got {max_models}")
        self.max_models = max_models
        self._lock = threading.Lock()
        self._slots: OrderedDict[_Key, _Slot] = OrderedDict()

    def acquire(self, path: str | os.PathLike[str], **load_kwargs: Any) -> ModelLease:
        """A lease on the model at ``path`` loaded with ``load_kwargs`` (``dattavani._core.Model``'s
        ``use_gpu``, ``gpu_device``, ``flash_attn``, ``max_states``), loading it if needed.

        Threads asking for the same model at once wait for one load. A failed load is not
        cached: its error is raised to every thread waiting on it, and the next call tries again.
        """
        resolved = Path(path).resolve()
        try:
            stat = resolved.stat()
        except OSError as error:
            from dattavani.errors import ModelLoadError

            raise ModelLoadError(f"{path}: {error.strerror or error}") from error
        key: _Key = (
            str(resolved),
            stat.st_size,
            stat.st_mtime_ns,
            tuple(sorted(load_kwargs.items())),
        )
        with self._lock:
            slot = self._slots.get(key)
            loads = slot is None
            if slot is None:
                slot = self._slots[key] = _Slot(str(resolved), dict(load_kwargs))
            slot.refs += 1
            self._slots.move_to_end(key)
        if loads:
            self._load(key, slot)
        else:
            slot.ready.wait()
        if slot.error is not None:
            with self._lock:
                slot.refs -= 1
            raise slot.error
        assert slot.model is not None
        return ModelLease(self, key, slot.model)

    def _load(self, key: _Key, slot: _Slot) -> None:
        from dattavani import _core

        try:
            slot.model = _core.Model(slot.path, **slot.load_kwargs)
        except BaseException as error:
            slot.error = error
            with self._lock:
                if self._slots.get(key) is slot:
                    del self._slots[key]
        finally:
            slot.ready.set()
        with self._lock:
            self._evict()

    def _release(self, key: _Key) -> None:
        with self._lock:
            slot = self._slots.get(key)
            if slot is not None:
                slot.refs -= 1
                self._evict()

    def _evict(self) -> None:
        """Free least-recently-used unheld models past ``max_models`` (lock held)."""
        loaded = [k for k, s in self._slots.items() if s.model is not None]
        excess = len(loaded) - self.max_models
        for key in loaded:
            if excess <= 0:
                break
            if self._slots[key].refs == 0:
                del self._slots[key]
                excess -= 1

    def clear(self) -> None:
        """Free every model nobody holds."""
        with self._lock:
            for key in [k for k, s in self._slots.items() if s.refs == 0 and s.ready.is_set()]:
                del self._slots[key]

    def info(self) -> list[CachedModelInfo]:
        """The models in the cache, least recently used first."""
        with self._lock:
            return [
                CachedModelInfo(s.path, dict(s.load_kwargs), s.refs, s.model is not None)
                for s in self._slots.values()
            ]

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for s in self._slots.values() if s.model is not None)

    def __bool__(self) -> bool:
        # An empty cache is still a cache: `cache or default_model_cache()` must keep it.
        return True


_default: ModelCache | None = None
_default_lock = threading.Lock()


def default_model_cache() -> ModelCache:
    """The process-wide cache Transcribers share; ``max_models`` is ``[native_models]
    max_cached_models`` of the config file (default 2).
    """
    global _default
    with _default_lock:
        if _default is None:
            from dattavani.config import load_config

            _default = ModelCache(load_config().native_models.max_cached_models)
        return _default
