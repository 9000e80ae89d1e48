"""dattavani: fast, local speech-to-text for Python on whisper.cpp.

>>> from dattavani import Transcriber
>>> result = Transcriber("ggml-tiny.en.bin").transcribe("jfk.flac")   # doctest: +SKIP
>>> print(result.text)                                                 # doctest: +SKIP

Importing the package is light: the native core, numpy and the audio libraries load on first use
of a name that needs them.
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

from .errors import (
    AudioError,
    Cancelled,
    ConfigError,
    ConversionError,
    DattavaniError,
    DeviceError,
    GPUMemoryError,
    ModelLoadError,
    ModelNotFoundError,
    OptionsError,
    TranscriptionError,
)

__version__ = "0.1.0"

#: How long ggml's CPU workers spin at a barrier before they sleep, unless the user says otherwise.
#: They meet at an OpenMP barrier after every graph node, and libgomp's own default (300,000 spins)
#: hands the CPU a neighbour needs to a worker that only waits: tiny.en on jfk with 2 threads on a
#: busy 2-core machine took 19-27 s spinning that long, 6-7 s with a short spin (one-off runs,
#: docs/performance.md; bench/wait_policy.py is the repeatable measure). libgomp reads the variable
#: once, when the native core loads it, which is always after this package's import.
GOMP_SPINCOUNT = "1000"
if "GOMP_SPINCOUNT" not in os.environ and "OMP_WAIT_POLICY" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = GOMP_SPINCOUNT

if TYPE_CHECKING:
    from ._core import CancelToken
    from .audio import load_audio
    from .mel import log_mel_spectrogram
    from .options import TranscribeOptions
    from .results import Segment, TranscriptionResult, Word
    from .transcriber import BatchedInferencePipeline, Transcriber

# name -> module that defines it, imported on first access (PEP 562).
_LAZY = {
    "Transcriber": "transcriber",
    "BatchedInferencePipeline": "transcriber",
    "TranscribeOptions": "options",
    "TranscriptionResult": "results",
    "Segment": "results",
    "Word": "results",
    "load_audio": "audio",
    "log_mel_spectrogram": "mel",
    "CancelToken": "_core",
}

__all__ = [
    "AudioError",
    "BatchedInferencePipeline",
    "CancelToken",
    "Cancelled",
    "ConfigError",
    "ConversionError",
    "DattavaniError",
    "DeviceError",
    "GPUMemoryError",
    "ModelLoadError",
    "ModelNotFoundError",
    "OptionsError",
    "Segment",
    "TranscribeOptions",
    "Transcriber",
    "TranscriptionError",
    "TranscriptionResult",
    "Word",
    "__version__",
    "build_info",
    "load_audio",
    "log_mel_spectrogram",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'dattavani' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def build_info() -> dict[str, Any]:
    """What this build holds: versions, compiled backends, devices present, CPU features.

    >>> build_info()["whisper_cpp_version"]   # doctest: +SKIP
    '1.8.5'
    """
    from . import _core

    return {
        "version": __version__,
        "whisper_cpp_version": _core.WHISPER_CPP_VERSION,
        "gpu_backend": _core.GPU_BACKEND,
        "compiled_backends": list(_core.compiled_backends()),
        "devices": list(_core.list_devices()),
        "system_info": _core.system_info(),
    }
