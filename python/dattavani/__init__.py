"""dattavani: fast, local speech-to-text for Python on whisper.cpp.

>>> from dattavani import Transcriber
>>> result = Transcriber("ggml-tiny.en.bin").transcribe("jfk.flac")   # doctest: +SKIP
>>> print(result.text)                                                 # doctest: +SKIP

Importing the package is light: the native core, numpy and the audio libraries load on first use
of a name that needs them.
"""

from __future__ import annotations

import importlib
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

if TYPE_CHECKING:
    from ._core import CancelToken
    from .audio import load_audio
    from .mel import log_mel_spectrogram
    from .options import TranscribeOptions
    from .results import Segment, TranscriptionResult, Word
    from .transcriber import Transcriber

# name -> module that defines it, imported on first access (PEP 562).
_LAZY = {
    "Transcriber": "transcriber",
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
