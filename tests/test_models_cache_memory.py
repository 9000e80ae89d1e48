"""The model cache's device-memory account (issue 6): what each model is booked at, and idle
models freed, least recently used first, to make room under a per-device budget.

On the CPU only the cache's explicit ``memory_limit`` applies, so these tests set one; on a GPU
the same path compares with the device's free memory and ``gpu_memory_limit`` as well.
"""

from __future__ import annotations

import re
import threading
from dataclasses import asdict
from pathlib import Path

import pytest

from dattavani import DeviceError, GPUMemoryError, OptionsError, Transcriber
from dattavani.convert import quantize
from dattavani.memory import MB, estimate_memory
from dattavani.models import ModelCache

CPU = {"use_gpu": False, "max_states": 1}


@pytest.fixture(scope="module")
def models(tiny_en_ggml: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """tiny.en f16, the same file under another name (a second model) and its q8_0 quantization."""
    folder = tmp_path_factory.mktemp("models")
    copy = folder / "copy-of-tiny.en.bin"
    copy.write_bytes(tiny_en_ggml.read_bytes())
    q8 = quantize(tiny_en_ggml, folder / "tiny.en-q8_0.bin", "q8_0")
    return {"f16": tiny_en_ggml, "copy": copy, "q8_0": q8}


def need(path: Path, *, flash_attn: bool = True) -> int:
    return estimate_memory(path, states=1, flash_attn=flash_attn).total


def names(cache: ModelCache) -> list[str]:
    return [Path(i.path).name for i in cache.info()]


def test_the_account_books_each_model_at_its_estimate(models: dict[str, Path]) -> None:
    cache = ModelCache(max_models=3)
    assert cache.memory_in_use() == {}
    f16, q8 = need(models["f16"]), need(models["q8_0"])
    # The word-timestamp (DTW) variant runs without flash attention, which costs more.
    f16_dtw = need(models["f16"], flash_attn=False)
    assert q8 < f16 < f16_dtw
    with (
        cache.acquire(models["f16"], **CPU),
        cache.acquire(models["q8_0"], **CPU),
        cache.acquire(models["f16"], **CPU, dtw=True),
    ):
        booked = [(Path(i.path).name, i.device, i.memory) for i in cache.info()]
        assert booked == [
            (models["f16"].name, "cpu", f16),
            (models["q8_0"].name, "cpu", q8),
            (models["f16"].name, "cpu", f16_dtw),
        ]
        assert cache.memory_in_use() == {"cpu": f16 + q8 + f16_dtw}
    cache.clear()
    assert cache.memory_in_use() == {}


def test_a_budget_frees_the_least_recently_used_idle_model(models: dict[str, Path]) -> None:
    f16 = need(models["f16"])
    cache = ModelCache(max_models=3, memory_limit={"cpu": 2 * f16 + 10 * MB})
    for path in (models["f16"], models["copy"], models["f16"]):  # the copy is now the LRU one
        with cache.acquire(path, **CPU):
            pass

    with cache.acquire(models["q8_0"], **CPU):
        # Freeing the copy alone makes room: the f16 model, used more recently, stays.
        assert sorted(names(cache)) == sorted([models["f16"].name, models["q8_0"].name])
        assert cache.memory_in_use() == {"cpu": f16 + need(models["q8_0"])}


def test_a_model_in_use_is_never_freed_and_the_error_names_both_figures(
    models: dict[str, Path],
) -> None:
    f16, q8 = need(models["f16"]), need(models["q8_0"])
    limit = f16 + q8 + 10 * MB
    cache = ModelCache(max_models=3, memory_limit={"cpu": limit})
    held = cache.acquire(models["f16"], **CPU)
    with cache.acquire(models["q8_0"], **CPU):
        pass  # idle now, but freeing it would not make room for another f16 model

    with pytest.raises(GPUMemoryError) as info:
        cache.acquire(models["copy"], **CPU)

    message = str(info.value)
    assert str(models["copy"]) in message
    assert f"needs about {f16 / MB:,.0f} MB on cpu" in message
    assert f"memory_limit of {limit / MB:,.0f} MB for cpu" in message
    assert f"models in use hold {f16 / MB:,.0f} MB" in message
    assert f"leaves it {(limit - f16) / MB:,.0f} MB" in message
    # Nothing was freed for a load that could not fit anyway.
    assert names(cache) == [models["f16"].name, models["q8_0"].name]

    held.release()
    with cache.acquire(models["copy"], **CPU) as lease:
        assert lease.model.n_vocab == 51864
        # Now the released f16 model is the least recently used idle one: it alone goes.
        assert names(cache) == [models["q8_0"].name, models["copy"].name]


def test_loads_racing_for_the_last_room_cannot_both_have_it(models: dict[str, Path]) -> None:
    cache = ModelCache(max_models=3, memory_limit={"cpu": need(models["f16"]) + 10 * MB})
    start = threading.Barrier(2)
    outcomes: list[object] = []

    def load(path: Path) -> None:
        start.wait()
        try:
            outcomes.append(cache.acquire(path, **CPU))  # held: it may not be freed
        except GPUMemoryError as error:
            outcomes.append(error)

    threads = [threading.Thread(target=load, args=(models[k],)) for k in ("f16", "copy")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(type(o).__name__ for o in outcomes) == ["GPUMemoryError", "ModelLease"]
    assert cache.memory_in_use() == {"cpu": need(models["f16"])}


def test_the_transcriber_loads_through_the_same_check(models: dict[str, Path]) -> None:
    cache = ModelCache(memory_limit={"cpu": 50 * MB})
    with pytest.raises(GPUMemoryError) as info:
        Transcriber(models["f16"], device="cpu", threads=1, workers=1, model_cache=cache)
    assert f"needs about {need(models['f16']) / MB:,.0f} MB on cpu" in str(info.value)
    assert "memory_limit of 50 MB for cpu leaves it 50 MB" in str(info.value)
    assert cache.memory_in_use() == {}

    roomy = ModelCache(memory_limit={"cpu": need(models["f16"])})
    with Transcriber(models["f16"], device="cpu", threads=1, workers=1, model_cache=roomy):
        assert roomy.memory_in_use() == {"cpu": need(models["f16"])}


def test_memory_limits_are_checked_and_named_as_results_name_devices() -> None:
    assert ModelCache(memory_limit={"CUDA": 5, "cpu": 7}).memory_limit == {"cuda:0": 5, "cpu": 7}
    with pytest.raises(DeviceError, match="'auto'"):
        ModelCache(memory_limit={"auto": 5})
    for bad in (0, -1, 1.5, True, "4GB"):
        with pytest.raises(OptionsError, match=r"memory_limit\['cpu'\]"):
            ModelCache(memory_limit={"cpu": bad})  # type: ignore[dict-item]


def test_the_estimate_and_the_load_take_the_same_parameters(models: dict[str, Path]) -> None:
    # acquire() without options must be booked as the model is loaded. LoadParameters alone has
    # defaults: dattavani._core.Model takes every load parameter as a required keyword, so a
    # field missing on either side, or a default anywhere else, fails here.
    from dattavani import _core
    from dattavani.models import LoadParameters

    signature = str(_core.Model.__init__.__doc__)
    keywords = re.search(r"path: str, \*, (.*)\) -> None", signature)
    assert keywords is not None, signature
    assert "=" not in keywords.group(1)
    assert set(re.findall(r"(\w+): ", keywords.group(1))) == set(asdict(LoadParameters()))
    with pytest.raises(TypeError):
        _core.Model(str(models["q8_0"]))  # type: ignore[call-arg]
    with ModelCache().acquire(models["q8_0"]) as lease:
        loaded = {name: getattr(lease.model, name) for name in asdict(LoadParameters())}
        assert loaded == asdict(LoadParameters())
