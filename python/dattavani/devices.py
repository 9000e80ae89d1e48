"""Which compute device a model runs on: chosen loudly, never a silent fallback.

``auto`` takes the first GPU that is both compiled into this build and present on the machine,
else the CPU, and logs which and why. Naming a device that is missing raises :class:`DeviceError`
listing what was compiled in and what is present, since "I installed the GPU build and it runs on
the CPU" is the complaint users have with every peer.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from .errors import DeviceError

logger = logging.getLogger(__name__)

#: Device names users write, mapped to the ggml backend registry that serves them.
_BACKENDS = {"cuda": "CUDA", "metal": "Metal", "vulkan": "Vulkan"}
_DEVICE_RE = re.compile(r"^(auto|cpu|cuda|metal|vulkan)(?::(\d+))?$")


@dataclass(frozen=True)
class DeviceChoice:
    """The device a model loads on; ``name`` is what results record, e.g. ``"cuda:0"``."""

    name: str
    use_gpu: bool
    gpu_device: int = 0
    description: str = ""
    memory_free: int = 0
    memory_total: int = 0


def select_device(device: str = "auto", *, fallback_to_cpu: bool | None = None) -> DeviceChoice:
    """Resolve a device spec (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``metal``, ``vulkan``).

    A GPU that is not compiled in or not present raises :class:`DeviceError`, or with
    ``fallback_to_cpu`` gives the CPU with a warning that says why; ``None`` (the default) asks
    the config (:func:`configured_fallback_to_cpu`), and only then. An unknown spec always raises.

    >>> select_device("cpu").use_gpu
    False
    """
    from . import _core

    match = _DEVICE_RE.match(device.strip().lower())
    if match is None:
        raise DeviceError(
            f"unknown device {device!r}: use auto, cpu, cuda, cuda:N, metal or vulkan"
        )
    kind, index_text = match.group(1), match.group(2)
    compiled = list(_core.compiled_backends())
    gpus = _gpus()
    if kind == "cpu":
        return _cpu_choice()
    if kind == "auto":
        if gpus:
            choice = _gpu_choice(gpus, 0)
            logger.info(
                "device auto: using %s (%s), the first GPU compiled in and present",
                choice.name,
                choice.description,
            )
            return choice
        why = (
            "no GPU backend is compiled into this build"
            if compiled == ["CPU"]
            else f"no GPU of the compiled backends ({', '.join(compiled)}) is present"
        )
        logger.info("device auto: using the CPU: %s", why)
        return _cpu_choice()

    backend = _BACKENDS[kind]
    present = [d for d in gpus if d["backend"] == backend]
    index = int(index_text) if index_text is not None else 0
    if backend not in compiled or index >= len(present):
        error = DeviceError(
            f"device {device!r} is not available: compiled backends: {', '.join(compiled)}; "
            f"devices present: {', '.join(_describe(d) for d in _core.list_devices())}. "
            + (
                f"Rebuild with DATTAVANI_GPU={kind} (see docs/gpu.md)."
                if backend not in compiled
                else f"This build has {backend} but found {len(present)} such device(s)."
            )
        )
        if fallback_to_cpu is None:
            fallback_to_cpu = configured_fallback_to_cpu()
        if not fallback_to_cpu:
            raise error
        logger.warning("%s Running on the CPU (fallback_to_cpu).", error)
        return _cpu_choice()
    # whisper.cpp's gpu_device counts GPUs of every backend in registry order.
    return _gpu_choice(gpus, gpus.index(present[index]), name=f"{kind}:{index}")


def configured_fallback_to_cpu() -> bool:
    """``[native_models] fallback_to_cpu`` of the config in effect: whether a GPU that is missing
    or too small means the CPU, with a warning, rather than an error. Read when that happens, not
    on every load: most loads never ask."""
    from .config import load_config

    return load_config().native_models.fallback_to_cpu


def device_name(spec: str) -> str:
    """The name results and the model cache give the device ``spec`` names: ``"cuda"`` is
    ``"cuda:0"``. ``auto`` names no device until it is resolved, so it is refused.

    >>> device_name("CUDA"), device_name("vulkan:1"), device_name("cpu")
    ('cuda:0', 'vulkan:1', 'cpu')
    """
    match = _DEVICE_RE.match(spec.strip().lower())
    if match is None or match.group(1) == "auto":
        raise DeviceError(f"not a device name: {spec!r}: use cpu, cuda, cuda:N, metal or vulkan")
    kind, index = match.group(1), match.group(2) or "0"
    return "cpu" if kind == "cpu" else f"{kind}:{index}"


def device_of_load(use_gpu: bool, gpu_device: int = 0) -> DeviceChoice:
    """The device a model loaded with ``use_gpu`` and ``gpu_device`` (``LoadParameters``) is
    on, with its free memory as the backend reports it now.

    whisper.cpp counts ``gpu_device`` over the GPUs of every backend in registry order, and loads
    on the CPU when there is no such GPU (a CPU build, or an index past the last GPU).

    >>> device_of_load(use_gpu=False).name
    'cpu'
    """
    if use_gpu:
        gpus = _gpus()
        if 0 <= gpu_device < len(gpus):
            return _gpu_choice(gpus, gpu_device)
    return _cpu_choice()


def _gpus() -> list[dict[str, Any]]:
    """The GPUs present, of every compiled backend, in ggml's registry order."""
    from . import _core

    return [d for d in _core.list_devices() if d["type"] in ("gpu", "igpu")]


def _cpu_choice() -> DeviceChoice:
    return DeviceChoice("cpu", use_gpu=False, description=_cpu_description())


def _gpu_choice(gpus: list[dict[str, Any]], position: int, name: str = "") -> DeviceChoice:
    d = gpus[position]
    backend_name = next((k for k, v in _BACKENDS.items() if v == d["backend"]), "gpu")
    same_backend = [g for g in gpus if g["backend"] == d["backend"]]
    return DeviceChoice(
        name=name or f"{backend_name}:{same_backend.index(d)}",
        use_gpu=True,
        gpu_device=position,
        description=str(d["description"]),
        memory_free=int(d["memory_free"]),
        memory_total=int(d["memory_total"]),
    )


def _describe(d: dict[str, Any]) -> str:
    return f"{d['name']} ({d['description']})"


def _cpu_description() -> str:
    from . import _core

    cpu = next((d for d in _core.list_devices() if d["type"] == "cpu"), None)
    return str(cpu["description"]) if cpu else "CPU"
