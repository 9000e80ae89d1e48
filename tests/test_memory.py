"""The device-memory estimate (issue 6), held against what whisper.cpp reports allocating."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest

from dattavani import GPUMemoryError, _core
from dattavani.convert import quantize
from dattavani.memory import MemoryEstimate, check_fits, estimate_memory

SIZE_LINE = re.compile(r"(?:model size|kv \w+\s+size|compute buffer \(\w+\))\s*=\s*([\d.]+) MB")


def reported_allocation(path: Path, flash_attn: bool, use_gpu: bool, caplog) -> float:
    """Bytes whisper.cpp logs for the weights plus one state's KV caches and compute buffers."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="dattavani.native"):
        model = _core.Model(str(path), use_gpu=use_gpu, flash_attn=flash_attn, max_states=1)
        options = _core.TranscribeOptions()
        options.n_threads = 2
        options.language = "en"
        model.transcribe(np.zeros(16000, np.float32), options)  # allocates the state
    sizes = [float(m.group(1)) for r in caplog.records if (m := SIZE_LINE.search(r.getMessage()))]
    assert len(sizes) == 8, sizes  # weights, 3 KV caches, 4 compute buffers
    return sum(sizes) * 1e6


@pytest.mark.parametrize("precision", ["f16", "q8_0"])
@pytest.mark.parametrize("flash_attn", [True, False])
def test_estimate_within_15_percent(
    tiny_en_ggml: Path, tmp_path: Path, precision: str, flash_attn: bool, test_device: str, caplog
) -> None:
    # On the device the tests run on: the CPU here, the GPU where DATTAVANI_TEST_DEVICE names one.
    path = tiny_en_ggml
    if precision != "f16":
        path = quantize(tiny_en_ggml, tmp_path / f"tiny.en-{precision}.bin", precision)
    estimate = estimate_memory(path, states=1, flash_attn=flash_attn)
    actual = reported_allocation(path, flash_attn, test_device != "cpu", caplog)
    assert abs(estimate.total - actual) / actual < 0.15, (estimate, actual)
    assert estimate.weights == _core.inspect_model(str(path))["weights_bytes"]


def test_more_states_cost_more(tiny_en_ggml: Path) -> None:
    one = estimate_memory(tiny_en_ggml, states=1, flash_attn=True)
    four = estimate_memory(tiny_en_ggml, states=4, flash_attn=True)
    assert four.total - one.total == 3 * one.per_state


def test_check_fits_names_both_figures() -> None:
    estimate = MemoryEstimate(weights=3_000_000_000, per_state=500_000_000, states=2)
    check_fits(estimate, device="cuda:0", available=4_000_000_000, source="x", what="large-v3")
    with pytest.raises(GPUMemoryError) as info:
        check_fits(
            estimate,
            device="cuda:0",
            available=3_500_000_000,
            source="the free memory on cuda:0",
            what="large-v3",
        )
    assert str(info.value).startswith(
        "large-v3 needs about 4,000 MB on cuda:0 (3,000 MB of weights + 2 x 500 MB per decoder "
        "state), but the free memory on cuda:0 leaves it 3,500 MB."
    )
    assert "fallback_to_cpu" in str(info.value)
