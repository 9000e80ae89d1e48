"""How much device memory a model needs, estimated from its file before anything is loaded.

The weights are the tensor sizes of the file. Each pooled decoder state adds whisper.cpp's KV
caches (their shapes follow from the hyper-parameters, padded as whisper.cpp pads them) and four
compute buffers, whose sizes were measured from whisper.cpp 1.8.5's own accounting on tiny and
base and fitted as linear in the model width. The decode buffer holds logits for one row per
decoder at most (a fix applied to whisper.cpp; it held the whole text context's, ~93 MB).
``tests/test_memory.py`` holds the estimate to within 15% of what whisper.cpp reports allocating
on the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import GPUMemoryError

MB = 1_000_000
_KV_CTX_TEXT = 512  # n_text_ctx (448) padded to 256
_KV_CTX_AUDIO = 1536  # n_audio_ctx (1500) padded to 256
_MAX_DECODERS = 8  # WHISPER_MAX_DECODERS: the most logits rows one decode asks for
_F16 = 2
_F32 = 4


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a model takes on its device: weights once, plus ``per_state`` per pooled state."""

    weights: int
    per_state: int
    states: int

    @property
    def total(self) -> int:
        return self.weights + self.states * self.per_state


def estimate_memory(
    path: str | os.PathLike[str], *, states: int, flash_attn: bool
) -> MemoryEstimate:
    """Estimate the memory of loading ``path`` with ``states`` decoder states.

    >>> estimate_memory("ggml-base.bin", states=4, flash_attn=True).total   # doctest: +SKIP
    466997440
    """
    from . import _core

    h = _core.inspect_model(str(path))
    width = h["n_audio_state"]
    kv_self = h["n_text_layer"] * _KV_CTX_TEXT * h["n_text_state"] * 2 * _F16
    kv_cross = h["n_text_layer"] * _KV_CTX_AUDIO * h["n_text_state"] * 2 * _F16
    kv_pad = _KV_CTX_AUDIO * width * _F16 * 2
    conv = 4.0 * MB + 24_000 * width
    encode = 1.61 * MB + 41_950 * width
    if not flash_attn:
        encode += h["n_audio_head"] * 7.85 * MB  # the materialised attention matrices
    cross = 1.58 * MB + 6_016 * width
    decode = h["n_vocab"] * _MAX_DECODERS * _F32 + 1.30 * MB + 8_984 * width
    if not flash_attn:
        decode += h["n_text_head"] * 2.39 * MB
    per_state = int(kv_self + kv_cross + kv_pad + conv + encode + cross + decode)
    return MemoryEstimate(weights=int(h["weights_bytes"]), per_state=per_state, states=states)


def check_fits(
    estimate: MemoryEstimate, *, device: str, available: int, source: str, what: str
) -> None:
    """Raise GPUMemoryError naming both figures when ``estimate`` needs more than ``available``
    bytes, the most ``device`` can give a new model; ``source`` says what sets that figure.

    The message reads e.g. "large-v3 needs about 4,000 MB on cuda:0 (3,000 MB of weights + 2 x
    500 MB per decoder state), but the gpu_memory_limit leaves it 2,000 MB. Use fewer workers...".
    """
    if estimate.total > available:
        raise GPUMemoryError(
            f"{what} needs about {estimate.total / MB:,.0f} MB on {device} "
            f"({estimate.weights / MB:,.0f} MB of weights + {estimate.states} x "
            f"{estimate.per_state / MB:,.0f} MB per decoder state), but {source} leaves it "
            f"{max(available, 0) / MB:,.0f} MB. Use fewer workers, a smaller or quantized model, "
            "or set fallback_to_cpu = true in [native_models]."
        )
