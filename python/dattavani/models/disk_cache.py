"""The on-disk model cache: one folder per model, holding its GGML file and ``metadata.json``.

Layout under the cache root (``DATTAVANI_CACHE_DIR``, ``[native_models] cache_dir`` or the user
cache folder)::

    models/<key>/ggml-<key>.bin       the model
    models/<key>/metadata.json        model_id, source repo/revision/format, precision,
                                      sha256, size, created_at, last_used
    models/.locks/<key>.lock          held while the entry is being made or removed
    models/.tmp/<key>.<random>/       an entry being made

An entry is made in a temporary folder and renamed into place whole, so a reader sees either no
entry or a complete one, never a partial file, even if the writer is killed. Making one holds the
key's file lock, so processes racing on one model download and convert it once: the others wait,
then find the entry. Every use checks the file size (cheap); :meth:`DiskCache.verify` checks the
sha256 too. A broken entry is removed and made again. Past ``max_bytes`` the least recently used
entries are evicted.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dattavani.errors import ConfigError, ConversionError

if TYPE_CHECKING:
    from filelock import FileLock

    from dattavani.config import Config

logger = logging.getLogger(__name__)

METADATA_FILE = "metadata.json"
#: How stale ``last_used`` may be before a lookup rewrites it (eviction is by days, not seconds).
LAST_USED_RESOLUTION = timedelta(minutes=1)
#: Cache size past which least-recently-used models are evicted, unless configured otherwise.
DEFAULT_MAX_BYTES = 20 * 1000**3
MAX_SIZE_ENV = "DATTAVANI_CACHE_MAX_SIZE"
_HASH_CHUNK = 1 << 20

#: What a producer returns: metadata fields describing where the model came from.
Produce = Callable[[Path], dict[str, Any]]


def default_cache_dir(config: Config | None = None) -> Path:
    """The cache root: ``[native_models] cache_dir`` of ``config`` (default: the config in
    effect, where ``DATTAVANI_CACHE_DIR`` overrides the file), else the user cache folder
    (``~/.cache/dattavani`` on Linux).
    """
    if config is None:
        from dattavani.config import load_config

        config = load_config()
    configured = config.native_models.cache_dir
    if configured is not None:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("dattavani", appauthor=False))


def default_max_bytes() -> int | None:
    """``DATTAVANI_CACHE_MAX_SIZE`` (``"10GB"``, ``0`` for no limit), else 20 GB."""
    value = os.environ.get(MAX_SIZE_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_BYTES
    from dattavani.config import parse_size

    try:
        limit = parse_size(int(value) if value.isdigit() else value)
    except ConfigError as error:
        raise ConfigError(f"{MAX_SIZE_ENV}: {error}") from None
    return limit or None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def sha256_of(path: Path) -> str:
    """The sha256 hex digest of a file, read in 1 MiB pieces."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def copy_or_link(source: Path, target: Path) -> None:
    """Put ``source``'s bytes at ``target``: a hard link when on the same file system, else a copy.

    A hard link makes a hub download and its cache entry share the disk space.
    """
    real = source.resolve()
    try:
        os.link(real, target)
    except OSError:
        shutil.copyfile(real, target)


@dataclass(frozen=True)
class CacheEntry:
    """One cached model: its folder and what ``metadata.json`` says of it."""

    key: str
    directory: Path
    metadata: dict[str, Any]

    @property
    def path(self) -> Path:
        """The GGML file."""
        return self.directory / str(self.metadata["file"])

    @property
    def size(self) -> int:
        return int(self.metadata["size"])

    @property
    def last_used(self) -> str:
        return str(self.metadata.get("last_used", ""))


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of checking one entry: ``ok``, or the reason it was removed."""

    key: str
    ok: bool
    reason: str = ""


@dataclass(frozen=True)
class PruneResult:
    """What :meth:`DiskCache.prune` removed and how many bytes that freed."""

    removed: tuple[str, ...]
    freed_bytes: int


class DiskCache:
    """GGML models on disk, keyed by a file-name-safe string such as ``"tiny.en-f16"``.

    >>> cache = DiskCache("/tmp/dattavani-cache")                        # doctest: +SKIP
    >>> with cache.lock("tiny.en-f16"):                                   # doctest: +SKIP
    ...     entry = cache.lookup("tiny.en-f16") or cache.store("tiny.en-f16", produce)
    """

    def __init__(self, root: str | os.PathLike[str] | None = None, max_bytes: int | None = -1):
        """``root`` defaults to :func:`default_cache_dir`; ``max_bytes`` to
        :func:`default_max_bytes` (``None``: never evict).
        """
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        self.models_dir = self.root / "models"
        self.max_bytes = default_max_bytes() if max_bytes == -1 else max_bytes

    # -- reading ----------------------------------------------------------------------------------

    def _read(self, key: str) -> CacheEntry | None:
        """The entry as it is on disk, valid or not; ``None`` when there is no readable one."""
        directory = self.models_dir / key
        try:
            metadata = json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return None
        if not isinstance(metadata, dict) or "file" not in metadata or "size" not in metadata:
            return None
        return CacheEntry(key, directory, metadata)

    def _problem(self, entry: CacheEntry) -> str | None:
        """Why a read entry cannot be used (missing file, wrong size), or ``None``."""
        try:
            size = entry.path.stat().st_size
        except OSError:
            return f"{entry.path} is missing"
        if size != entry.size:
            return f"{entry.path} has {size} bytes, metadata says {entry.size}"
        return None

    def lookup(self, key: str) -> CacheEntry | None:
        """The entry for ``key`` if it is complete and its size is right, else ``None``.

        Marks the entry as used now (for LRU eviction) unless it was marked within the last
        minute: a service that makes a Transcriber per request would otherwise rewrite the
        metadata on every one. Needs no lock: entries appear whole.
        """
        entry = self._read(key)
        if entry is None:
            return None
        problem = self._problem(entry)
        if problem is not None:
            logger.warning("cached model %s is broken (%s); it will be fetched again", key, problem)
            return None
        now = datetime.now(timezone.utc)
        with contextlib.suppress(ValueError):
            if now - datetime.fromisoformat(entry.last_used) < LAST_USED_RESOLUTION:
                return entry
        metadata = {**entry.metadata, "last_used": now.isoformat(timespec="microseconds")}
        try:
            _write_json(entry.directory / METADATA_FILE, metadata)
        except OSError:
            if not entry.directory.exists():
                return None  # removed under us (rm, eviction): as good as not cached
            return entry  # a read-only cache still serves its models
        return CacheEntry(key, entry.directory, metadata)

    def entries(self) -> list[CacheEntry]:
        """Every readable entry, least recently used first (no size check, no LRU update)."""
        if not self.models_dir.is_dir():
            return []
        found = [
            entry
            for child in self.models_dir.iterdir()
            if child.is_dir() and not child.name.startswith(".")
            if (entry := self._read(child.name)) is not None
        ]
        return sorted(found, key=lambda e: e.last_used)

    def total_bytes(self) -> int:
        """Bytes taken by every entry folder (temporary folders not counted)."""
        if not self.models_dir.is_dir():
            return 0
        return sum(
            _folder_bytes(child)
            for child in self.models_dir.iterdir()
            if child.is_dir() and not child.name.startswith(".")
        )

    # -- writing ----------------------------------------------------------------------------------

    def _lock(self, key: str) -> FileLock:
        # filelock is imported here, not at the top: a Transcriber of a local file or of a cached
        # model never takes a lock, and the import costs ~10 ms.
        from filelock import FileLock

        locks = self.models_dir / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        return FileLock(locks / f"{key}.lock")

    def _try_lock(self, key: str) -> FileLock | None:
        """``key``'s lock, acquired; ``None`` if another process holds it."""
        from filelock import Timeout

        file_lock = self._lock(key)
        try:
            file_lock.acquire(timeout=0)
        except Timeout:
            return None
        return file_lock

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        """Hold ``key``'s inter-process lock; waits (logging why) while another process has it."""
        from filelock import Timeout

        file_lock = self._lock(key)
        try:
            file_lock.acquire(timeout=1)
        except Timeout:
            logger.info("waiting for another process to finish making %s", key)
            file_lock.acquire()
        try:
            yield
        finally:
            file_lock.release()

    def store(self, key: str, produce: Produce, *, model: str | None = None) -> CacheEntry:
        """Make the entry for ``key``: ``produce(target)`` writes the GGML file at ``target`` and
        returns metadata fields (model_id, precision, source...). Call with :meth:`lock` held.

        Replaces a broken entry. The entry appears only when complete; if ``produce`` fails
        nothing is left behind. Evicts least-recently-used entries past ``max_bytes`` after.

        Raises:
          ConversionError: ``produce`` raised it. The message names ``model`` (what is being
            made, e.g. its source folder; ``key`` by default) and the entry's file, not the
            temporary file ``produce`` was writing; a failed write gives just the system's
            reason (``File too large``, ``No space left on device``).
        """
        self._remove_stale_work(key)
        work = self.models_dir / ".tmp" / f"{key}.{secrets.token_hex(4)}.new"
        work.mkdir(parents=True)
        final = self.models_dir / key
        filename = f"ggml-{key}.bin"
        try:
            fields = produce(work / filename)
            now = _now()
            metadata = {
                **fields,
                "file": filename,
                "size": (work / filename).stat().st_size,
                "sha256": sha256_of(work / filename),
                "created_at": now,
                "last_used": now,
            }
            _write_json(work / METADATA_FILE, metadata)
            if final.exists():
                self._discard(final)
            os.replace(work, final)
        except ConversionError as error:  # from produce: name the entry, not the work folder
            failed_write = _os_error_behind(error)
            if failed_write and failed_write.strerror:
                reason = failed_write.strerror
            else:  # a native error's text names the file it was given: the work folder's
                reason = str(error).replace(str(work / filename), str(final / filename))
            raise ConversionError(
                f"cannot make model {model or key!r} at {final / filename}: {reason}"
            ) from error
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
        entry = CacheEntry(key, final, metadata)
        if self.max_bytes is not None:
            self.evict(self.max_bytes, keep=key)
        return entry

    def remove(self, key: str) -> bool:
        """Delete ``key``'s entry; ``False`` if there was none."""
        final = self.models_dir / key
        with self.lock(key):
            if not final.exists():
                return False
            self._discard(final)
            return True

    def _discard(self, directory: Path) -> None:
        """Move a folder out of sight first, then delete it: no half-deleted entry is visible."""
        trash = self.models_dir / ".tmp" / f"{directory.name}.{secrets.token_hex(4)}.removed"
        trash.parent.mkdir(parents=True, exist_ok=True)
        os.replace(directory, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def _remove_stale_work(self, key: str) -> None:
        """Remove temporary folders of ``key`` left by a killed process (its lock is ours)."""
        work_dir = self.models_dir / ".tmp"
        if work_dir.is_dir():
            for stale in work_dir.iterdir():
                if _work_key(stale.name) == key:
                    shutil.rmtree(stale, ignore_errors=True)

    # -- maintenance ------------------------------------------------------------------------------

    def evict(self, max_bytes: int, *, keep: str | None = None) -> list[str]:
        """Remove least-recently-used entries until the cache fits ``max_bytes``.

        ``keep`` and entries another process holds locked are spared. Returns the removed keys.
        """
        removed = []
        total = self.total_bytes()
        for entry in self.entries():
            if total <= max_bytes:
                break
            if entry.key == keep:
                continue
            file_lock = self._try_lock(entry.key)
            if file_lock is None:
                continue
            try:
                size = _folder_bytes(entry.directory)
                self._discard(entry.directory)
            finally:
                file_lock.release()
            total -= size
            removed.append(entry.key)
            logger.info("evicted cached model %s (%d bytes, least recently used)", entry.key, size)
        return removed

    def verify(self) -> list[VerifyResult]:
        """Check every entry's size and sha256; remove broken ones (they are fetched again)."""
        results: list[VerifyResult] = []
        if not self.models_dir.is_dir():
            return results
        for child in sorted(self.models_dir.iterdir()):
            if not child.is_dir() or child.name.startswith("."):
                continue
            with self.lock(child.name):
                reason = self._check(child.name)
                if reason and child.exists():
                    self._discard(child)
            results.append(VerifyResult(child.name, not reason, reason or ""))
        return results

    def _check(self, key: str) -> str | None:
        entry = self._read(key)
        if entry is None:
            return "no readable metadata.json"
        problem = self._problem(entry)
        if problem is not None:
            return problem
        digest = sha256_of(entry.path)
        if digest != entry.metadata.get("sha256"):
            return f"sha256 is {digest}, metadata says {entry.metadata.get('sha256')}"
        return None

    def prune(self, max_bytes: int | None = None) -> PruneResult:
        """Remove leftovers of killed processes, unreadable entries, and evict least-recently-used
        entries past ``max_bytes`` (default: the cache's own limit).
        """
        removed: list[str] = []
        freed = 0
        if not self.models_dir.is_dir():
            return PruneResult((), 0)
        work_dir = self.models_dir / ".tmp"
        for work in sorted(work_dir.iterdir()) if work_dir.is_dir() else []:
            file_lock = self._try_lock(_work_key(work.name))
            if file_lock is None:
                continue  # being made right now
            try:
                freed += _folder_bytes(work)
                shutil.rmtree(work, ignore_errors=True)
                removed.append(work.name)
            finally:
                file_lock.release()
        for child in sorted(self.models_dir.iterdir()):
            if child.is_dir() and not child.name.startswith(".") and self._read(child.name) is None:
                with self.lock(child.name):
                    if child.exists() and self._read(child.name) is None:
                        freed += _folder_bytes(child)
                        self._discard(child)
                        removed.append(child.name)
        limit = self.max_bytes if max_bytes is None else max_bytes
        if limit is not None:
            sizes = {e.key: _folder_bytes(e.directory) for e in self.entries()}
            evicted = self.evict(limit)
            freed += sum(sizes[key] for key in evicted)
            removed.extend(evicted)
        return PruneResult(tuple(removed), freed)


def _work_key(name: str) -> str:
    """The key of a temporary folder named ``<key>.<random>.new`` or ``<key>.<random>.removed``."""
    return name.rsplit(".", 2)[0]


def _os_error_behind(error: BaseException) -> OSError | None:
    """The OSError an error was raised from, directly or through other errors, if any."""
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, OSError):
        cause = cause.__cause__
    return cause


def _folder_bytes(folder: Path) -> int:
    total = 0
    for path in folder.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file():
                total += path.stat().st_size
    return total


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write JSON atomically: a temporary file beside ``path``, then a rename."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    try:
        temporary.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(temporary, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temporary.unlink()
