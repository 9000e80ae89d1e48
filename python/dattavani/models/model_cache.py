"""Loaded models shared within a process: :class:`ModelCache`.

Two Transcribers of the same model file (and the same load options) share one loaded
``dattavani._core.Model``. The cache keeps at most ``max_models`` of them; past that the least
recently used one that nobody holds is freed. A model is held through a :class:`ModelLease` and
is never freed while a lease on it is open, however full the cache is.

The cache also keeps an account of device memory: each model is booked, on the device it loads
on, at what :func:`dattavani.memory.estimate_memory` says it takes. Before a load the model must
fit that device's budgets: on a GPU its free memory and ``[native_models] gpu_memory_limit``; on
any device the cache's own ``memory_limit`` for it. Idle models on that device are freed, least
recently used first, to make room; when even that would not do, :class:`GPUMemoryError` names
what the model needs and what it could have.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dattavani import _core
    from dattavani.config import Config
    from dattavani.devices import DeviceChoice
    from dattavani.memory import MemoryEstimate


@dataclass(frozen=True)
class LoadParameters:
    """How a model file is loaded: ``dattavani._core.Model``'s parameters and their defaults,
    written here only (the binding takes each as a required keyword), and :meth:`load_model`,
    the one call that loads a model with them.

    ``max_states`` bounds the transcriptions that run at once on the model; ``dtw`` loads it for
    word timestamps from cross-attention, which needs flash attention off.

    >>> LoadParameters(use_gpu=False).max_states
    4
    """

    use_gpu: bool = True
    gpu_device: int = 0
    flash_attn: bool = True
    max_states: int = 4
    dtw: bool = False

    @classmethod
    def of(cls, **parameters: Any) -> LoadParameters:
        """Built from keyword arguments; an unknown one is an OptionsError naming the known."""
        from dattavani.errors import OptionsError

        known = [f.name for f in fields(cls)]
        unknown = sorted(set(parameters) - set(known))
        if unknown:
            raise OptionsError(
                f"unknown model load parameter(s): {', '.join(unknown)}; known: {', '.join(known)}"
            )
        return cls(**parameters)

    def load_model(self, path: str | os.PathLike[str]) -> _core.Model:
        """The GGML model file at ``path``, loaded with these parameters, uncached: the one
        Python call of ``dattavani._core.Model`` (:class:`ModelCache` loads through it)."""
        from dattavani import _core

        return _core.Model(
            os.fspath(path),
            use_gpu=self.use_gpu,
            gpu_device=self.gpu_device,
            flash_attn=self.flash_attn,
            dtw=self.dtw,
            max_states=self.max_states,
        )

    @property
    def uses_flash_attention(self) -> bool:
        """Whether whisper.cpp runs with flash attention: DTW turns it off."""
        return self.flash_attn and not self.dtw


#: ``(resolved path, size, mtime, load parameters)``: a rewritten file loads afresh.
_Key = tuple[str, int, int, LoadParameters]


@dataclass
class _Slot:
    """One model: loaded (or being loaded by the first thread that asked) and its holders."""

    path: str
    load: LoadParameters
    device: str
    memory: int  # estimated bytes on ``device``, booked from before the load starts
    refs: int = 0
    model: _core.Model | None = None
    error: BaseException | None = None
    ready: threading.Event = field(default_factory=threading.Event)


@dataclass(frozen=True)
class CachedModelInfo:
    """A model in the cache, as :meth:`ModelCache.info` reports it."""

    path: str
    load: LoadParameters
    refs: int
    loaded: bool
    device: str  #: where it is loaded, e.g. ``"cpu"`` or ``"cuda:0"``
    memory: int  #: the estimated bytes it takes there


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
    """Thread-safe LRU cache of loaded models, reference-counted, with a device-memory account.

    ``memory_limit`` caps the estimated bytes the cache's models may take on a device, by device
    name (``{"cpu": 2_000_000_000, "cuda:0": 6_000_000_000}``; ``"cuda"`` means ``"cuda:0"``).
    ``config`` gives ``max_models`` when it is not given (its ``[native_models]
    max_cached_models``) and the ``gpu_memory_limit`` that caps each model on a GPU; without one,
    ``max_models`` is 2 and the limit is that of the config in effect at each load.

    >>> cache = ModelCache(max_models=2, memory_limit={"cuda:0": 6_000_000_000})
    >>> with cache.acquire("ggml-tiny.en.bin", use_gpu=False) as lease:   # doctest: +SKIP
    ...     lease.model.transcribe(samples, options)
    >>> cache.memory_in_use()                                            # doctest: +SKIP
    {'cpu': 653469632}
    """

    def __init__(
        self,
        max_models: int | None = None,
        *,
        memory_limit: Mapping[str, int] | None = None,
        config: Config | None = None,
    ) -> None:
        from dattavani.devices import device_name
        from dattavani.errors import OptionsError

        if max_models is None:
            max_models = 2 if config is None else config.native_models.max_cached_models
        if max_models < 1:
            raise OptionsError(f"max_models must be at least 1, got {max_models}")
        self.max_models = max_models
        self.config = config
        self.memory_limit: dict[str, int] = {}
        for name, limit in (memory_limit or {}).items():
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
                raise OptionsError(
                    f"memory_limit[{name!r}] must be a number of bytes >= 1, got {limit!r}"
                )
            self.memory_limit[device_name(name)] = limit
        self._lock = threading.Lock()
        self._slots: OrderedDict[_Key, _Slot] = OrderedDict()

    def acquire(
        self,
        path: str | os.PathLike[str],
        load: LoadParameters | None = None,
        *,
        config: Config | None = None,
        **parameters: Any,
    ) -> ModelLease:
        """A lease on the model at ``path`` loaded with ``load`` (default: ``LoadParameters()``),
        changed by ``parameters`` (``use_gpu=False``...), loading it if needed.

        ``config`` (default: the cache's) gives the ``gpu_memory_limit`` this load must fit.
        Threads asking for the same model at once wait for one load. A failed load is not
        cached: its error is raised to every thread waiting on it, and the next call tries again.
        A model that is not cached must fit its device first (see the module's docs): idle models
        there are freed to make room, or :class:`~dattavani.errors.GPUMemoryError` is raised.
        """
        load = load or LoadParameters()
        if parameters:
            load = LoadParameters.of(**{**asdict(load), **parameters})
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
            load,
        )
        with self._lock:
            slot = self._hold(key)
        loads = False
        if slot is None:
            # Read the file's sizes outside the lock; another thread may book the model meanwhile.
            estimate, model_limit = _needs(resolved, load, config or self.config)
            with self._lock:
                slot = self._hold(key)
                if slot is None:
                    slot = self._book(key, estimate, model_limit)
                    loads = True
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

    def _hold(self, key: _Key) -> _Slot | None:
        """The cached (or loading) model of ``key``, held once more and made the most recently
        used; None when it is not cached (lock held)."""
        slot = self._slots.get(key)
        if slot is not None:
            slot.refs += 1
            self._slots.move_to_end(key)
        return slot

    def _book(self, key: _Key, estimate: MemoryEstimate, model_limit: int | None) -> _Slot:
        """Make room for a model on the device it will load on and book it there, held once and
        not loaded yet (lock held). The device's free memory is read here, under the lock, so
        loads booked by other threads are counted once: by their booking."""
        from dattavani.devices import device_of_load

        load = key[3]
        device = device_of_load(load.use_gpu, load.gpu_device)
        self._make_room(device, estimate, model_limit if device.use_gpu else None, key[0])
        slot = _Slot(key[0], load, device.name, estimate.total, refs=1)
        self._slots[key] = slot
        return slot

    def _make_room(
        self, device: DeviceChoice, estimate: MemoryEstimate, model_limit: int | None, what: str
    ) -> None:
        """Free idle models on ``device``, least recently used first, until ``estimate`` fits
        every budget there (lock held). When freeing all of them would still not do, raise
        GPUMemoryError and free nothing: models in use are never freed."""
        from dattavani.memory import MB, check_fits

        here = [(k, s) for k, s in self._slots.items() if s.device == device.name]
        idle = self._idle(device.name)
        reclaimable = sum(s.memory for _, s in idle)
        held = sum(s.memory for _, s in here) - reclaimable
        # (bytes a new model may take now, whether freeing idle models adds to it, what sets it)
        budgets: list[tuple[int, bool, str]] = []
        if model_limit is not None:  # a cap on each model: freeing others does not help
            budgets.append((model_limit, False, "the gpu_memory_limit"))
        if device.use_gpu:
            # Models still loading have not taken all of theirs yet; loaded ones have.
            loading = sum(s.memory for _, s in here if s.model is None)
            freed = ", once idle cached models are freed," if reclaimable else ""
            budgets.append(
                (device.memory_free - loading, True, f"the free memory on {device.name}{freed}")
            )
        limit = self.memory_limit.get(device.name)
        if limit is not None:
            source = f"this cache's memory_limit of {limit / MB:,.0f} MB for {device.name}"
            if held:
                source += f", of which models in use hold {held / MB:,.0f} MB,"
            budgets.append((limit - held - reclaimable, True, source))
        for room, frees, source in budgets:
            available = room + reclaimable if frees else room
            check_fits(estimate, device=device.name, available=available, source=source, what=what)
        shortfall = max((estimate.total - room for room, frees, _ in budgets if frees), default=0)
        for key, slot in idle:
            if shortfall <= 0:
                break
            del self._slots[key]
            shortfall -= slot.memory

    def _idle(self, device: str | None = None) -> list[tuple[_Key, _Slot]]:
        """Loaded models nobody holds (on ``device``, or anywhere), least recently used first
        (lock held)."""
        return [
            (k, s)
            for k, s in self._slots.items()
            if s.refs == 0 and s.model is not None and device in (None, s.device)
        ]

    def _load(self, key: _Key, slot: _Slot) -> None:
        try:
            slot.model = slot.load.load_model(slot.path)
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
        excess = sum(1 for s in self._slots.values() if s.model is not None) - self.max_models
        for key, _ in self._idle()[: max(excess, 0)]:
            del self._slots[key]

    def clear(self) -> None:
        """Free every model nobody holds."""
        with self._lock:
            for key, _ in self._idle():
                del self._slots[key]

    def info(self) -> list[CachedModelInfo]:
        """The models in the cache, least recently used first."""
        with self._lock:
            return [
                CachedModelInfo(s.path, s.load, s.refs, s.model is not None, s.device, s.memory)
                for s in self._slots.values()
            ]

    def memory_in_use(self) -> dict[str, int]:
        """Estimated bytes the cached models take, by device (models being loaded included).

        >>> default_model_cache().memory_in_use()                          # doctest: +SKIP
        {'cpu': 653469632, 'cuda:0': 1630939136}
        """
        with self._lock:
            account: dict[str, int] = {}
            for s in self._slots.values():
                account[s.device] = account.get(s.device, 0) + s.memory
            return account

    def __len__(self) -> int:
        with self._lock:
            return sum(1 for s in self._slots.values() if s.model is not None)

    def __bool__(self) -> bool:
        # An empty cache is still a cache: `cache or default_model_cache()` must keep it.
        return True


def _needs(
    path: Path, load: LoadParameters, config: Config | None
) -> tuple[MemoryEstimate, int | None]:
    """What loading ``path`` with ``load`` takes, estimated from the file, and the
    ``gpu_memory_limit`` of ``config`` (default: the config in effect), which caps each model on
    a GPU."""
    from dattavani.memory import estimate_memory

    estimate = estimate_memory(path, states=load.max_states, flash_attn=load.uses_flash_attention)
    model_limit = None
    if load.use_gpu:
        if config is None:
            from dattavani.config import load_config

            config = load_config()
        model_limit = config.native_models.gpu_memory_limit
    return estimate, model_limit


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

            # No config kept: each load fits the gpu_memory_limit of the config it is given, or
            # of the one in effect then.
            _default = ModelCache(load_config().native_models.max_cached_models)
        return _default
