"""Exception types raised by dattavani.

Every error a user can cause (a bad path, a broken model file, an unknown option) is one of these,
with the offending input and the reason in the message, so callers can catch ``DattavaniError``
and never see the interpreter abort.
"""

from __future__ import annotations


class DattavaniError(Exception):
    """Base class of every error dattavani raises on purpose."""


class ModelLoadError(DattavaniError):
    """A model file is missing, unreadable, truncated or not a whisper GGML file."""


class ModelNotFoundError(ModelLoadError):
    """A model name or spec could not be resolved to a file, a cache entry or a hub repository."""


class DownloadError(DattavaniError):
    """A model could not be downloaded: the hub was unreachable or a transfer broke off.

    Unlike :class:`ModelNotFoundError` the model exists; trying again later may work.
    """


class ConversionError(DattavaniError):
    """A checkpoint could not be converted to GGML."""


class AudioError(DattavaniError):
    """An audio source could not be read or decoded."""


class OptionsError(DattavaniError, ValueError):
    """A transcription option is out of range or of the wrong type."""


class DeviceError(DattavaniError):
    """The requested compute device is not compiled in or not present."""


class GPUMemoryError(DattavaniError):
    """The model does not fit in the free memory of the requested device."""


class ConfigError(DattavaniError):
    """A configuration file or value is invalid."""


class TranscriptionError(DattavaniError):
    """whisper.cpp failed while transcribing."""


class Cancelled(DattavaniError):
    """A transcription was cancelled from another thread."""


class OutputExistsError(DattavaniError, FileExistsError):
    """An output file already exists and overwriting was not asked for."""


class InputError(DattavaniError, FileNotFoundError):
    """An input of a batch (a folder, glob, list of paths or manifest) names no audio file."""
