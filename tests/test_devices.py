"""Device selection (issue 6): loud, checked, never a silent fallback to the CPU."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from dattavani import DeviceError, Transcriber, _core
from dattavani.config import config_from_dict
from dattavani.devices import device_name, device_of_load, select_device
from dattavani.testing import JFK_WORDS, words

HAS_GPU = any(d["type"] in ("gpu", "igpu") for d in _core.list_devices())


def test_cpu_is_always_available() -> None:
    choice = select_device("cpu")
    assert (choice.name, choice.use_gpu) == ("cpu", False)


@pytest.mark.parametrize("spec", ["tpu", "cuda:x", "gpu", ""])
def test_unknown_device_names_are_refused(spec: str) -> None:
    with pytest.raises(DeviceError, match="unknown device"):
        select_device(spec)


@pytest.mark.skipif(HAS_GPU, reason="checks the CPU-only build's answers")
def test_auto_on_a_machine_without_gpu_picks_cpu_and_says_why(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="dattavani.devices"):
        choice = select_device("auto")
    assert choice.name == "cpu" and not choice.use_gpu
    assert any("using the CPU" in r.getMessage() for r in caplog.records)


@pytest.mark.skipif(HAS_GPU, reason="checks the CPU-only build's answers")
@pytest.mark.parametrize("spec", ["cuda", "cuda:1", "metal", "vulkan"])
def test_asking_for_a_missing_gpu_raises(spec: str) -> None:
    with pytest.raises(DeviceError) as info:
        select_device(spec, fallback_to_cpu=False)  # whatever a config on this machine says
    message = str(info.value)
    assert "compiled backends: " + ", ".join(_core.compiled_backends()) in message
    assert "devices present:" in message and "CPU" in message


@pytest.mark.skipif(HAS_GPU, reason="checks the CPU-only build's answers")
def test_fallback_to_cpu_gives_the_cpu_for_a_missing_gpu_and_says_why(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="dattavani.devices"):
        choice = select_device("cuda", fallback_to_cpu=True)
    assert choice.name == "cpu" and not choice.use_gpu
    [warning] = [r.getMessage() for r in caplog.records]
    assert "device 'cuda' is not available" in warning and "fallback_to_cpu" in warning
    # A spec that names no device is a mistake, not a missing GPU: no fallback.
    with pytest.raises(DeviceError, match="unknown device"):
        select_device("tpu", fallback_to_cpu=True)


@pytest.mark.skipif(HAS_GPU, reason="checks the CPU-only build's answers")
def test_transcriber_follows_the_configs_fallback_to_cpu(
    tiny_en_ggml: Path, jfk_audio: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "dattavani.toml"
    monkeypatch.setenv("DATTAVANI_CONFIG", str(config))
    config.write_text("[native_models]\nfallback_to_cpu = false\n", encoding="utf-8")
    with pytest.raises(DeviceError, match="'cuda' is not available"):
        Transcriber(tiny_en_ggml, device="cuda")
    config.write_text("[native_models]\nfallback_to_cpu = true\n", encoding="utf-8")
    result = Transcriber(tiny_en_ggml, device="cuda", threads=2).transcribe(jfk_audio)
    assert result.device == "cpu"
    assert words(result.text) == JFK_WORDS
    # A config passed in is the one followed, whatever the config in effect says.
    config.write_text("[native_models]\nfallback_to_cpu = false\n", encoding="utf-8")
    given = config_from_dict({"native_models": {"fallback_to_cpu": True}})
    assert Transcriber(tiny_en_ggml, device="cuda", config=given).device.name == "cpu"


@pytest.mark.skipif(not HAS_GPU, reason="needs a GPU build on a machine with a GPU")
def test_auto_picks_the_gpu(caplog) -> None:
    with caplog.at_level(logging.INFO, logger="dattavani.devices"):
        choice = select_device("auto")
    assert choice.use_gpu and choice.name.startswith(("cuda:", "metal:", "vulkan:"))
    assert choice.memory_total > 0
    assert any("first GPU compiled in and present" in r.getMessage() for r in caplog.records)


@pytest.mark.skipif(not HAS_GPU, reason="needs a GPU build on a machine with a GPU")
def test_gpu_and_cpu_give_the_same_text(tiny_en_ggml: Path, jfk_audio: Path) -> None:
    gpu = Transcriber(tiny_en_ggml, device="auto", threads=4).transcribe(jfk_audio)
    cpu = Transcriber(tiny_en_ggml, device="cpu", threads=4).transcribe(jfk_audio)
    assert gpu.device != "cpu" and cpu.device == "cpu"
    assert words(gpu.text) == words(cpu.text)


def test_device_names_are_the_names_results_use() -> None:
    assert [device_name(s) for s in ("cpu", "CUDA", "cuda:1", " metal ", "vulkan:2")] == [
        "cpu",
        "cuda:0",
        "cuda:1",
        "metal:0",
        "vulkan:2",
    ]
    for spec in ("auto", "gpu", "cuda:x"):
        with pytest.raises(DeviceError, match=repr(spec)):
            device_name(spec)


def test_a_load_asking_for_a_gpu_that_is_missing_runs_on_the_cpu() -> None:
    # whisper.cpp's own rule, which the model cache books memory by.
    gpus = [d for d in _core.list_devices() if d["type"] in ("gpu", "igpu")]
    assert device_of_load(use_gpu=False).name == "cpu"
    assert device_of_load(use_gpu=True, gpu_device=len(gpus)).name == "cpu"
    first = device_of_load(use_gpu=True, gpu_device=0)
    assert first.use_gpu == bool(gpus)
    if gpus:
        assert first.name == select_device("auto").name and first.memory_free > 0
