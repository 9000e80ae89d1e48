"""The device-memory estimate (issue 6), held against what whisper.cpp reports allocating."""

from __future__ import annotations

import logging
import re
import threading
from pathlib import Path

import numpy as np
import pytest

from dattavani import GPUMemoryError, _core
from dattavani.convert import quantize
from dattavani.memory import MemoryEstimate, check_fits, estimate_memory
from dattavani.models import LoadParameters

SIZE_LINE = re.compile(r"(?:model size|kv \w+\s+size|compute buffer \(\w+\))\s*=\s*([\d.]+) MB")


def reported_allocation(
    path: Path, flash_attn: bool, use_gpu: bool, caplog, states: int = 1
) -> tuple[float, int]:
    """Bytes whisper.cpp logs for the weights plus the KV caches and compute buffers of the
    decoder states it allocated, and how many states that was: ``states`` transcriptions start
    at once (a barrier), so up to ``states`` are made."""
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="dattavani.native"):
        load = LoadParameters(use_gpu=use_gpu, flash_attn=flash_attn, max_states=states)
        model = load.load_model(path)
        options = _core.FullParams()
        options.n_threads = 1
        options.language = "en"
        start = threading.Barrier(states)

        def transcribe() -> None:
            start.wait()
            model.transcribe(np.zeros(3 * 16000, np.float32), options)  # allocates a state

        threads = [threading.Thread(target=transcribe) for _ in range(states)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    created = model.states_created
    sizes = [float(m.group(1)) for r in caplog.records if (m := SIZE_LINE.search(r.getMessage()))]
    assert len(sizes) == 1 + 7 * created, sizes  # weights; per state 3 KV caches, 4 buffers
    return sum(sizes) * 1e6, created


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
    actual, _ = reported_allocation(path, flash_attn, test_device != "cpu", caplog)
    assert abs(estimate.total - actual) / actual < 0.15, (estimate, actual)
    assert estimate.weights == _core.inspect_model(str(path))["weights_bytes"]


def test_the_estimate_of_several_states_against_whisper_cpp(
    tiny_en_ggml: Path, test_device: str, caplog
) -> None:
    """Four transcriptions at once: the estimate for the states whisper.cpp then made is held
    against what it allocated (the weights once, the buffers per state)."""
    actual, created = reported_allocation(
        tiny_en_ggml, True, test_device != "cpu", caplog, states=4
    )
    assert created >= 2  # the calls overlapped: the estimate's per-state part is exercised
    estimate = estimate_memory(tiny_en_ggml, states=created, flash_attn=True)
    assert abs(estimate.total - actual) / actual < 0.15, (estimate, actual, created)


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
