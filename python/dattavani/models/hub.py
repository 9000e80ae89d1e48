"""Downloads from the Hugging Face hub (or a mirror) through huggingface_hub.

Settings are read from the environment at call time, as huggingface_hub documents them:
``HF_ENDPOINT`` (a mirror or a test server), ``HF_TOKEN`` (private and gated repos),
``HF_HOME``/``HF_HUB_CACHE`` (where its download cache lives) and ``HF_HUB_OFFLINE`` (use only
what is already downloaded). Files land in huggingface_hub's own cache, so a model that
transformers or faster-whisper already downloaded is not fetched again. huggingface_hub is
imported only when something is fetched.

A download is written to ``blobs/<etag>.<random>.incomplete`` and renamed to ``blobs/<etag>``
when complete, so a killed process never leaves a file that looks downloaded. It does leave its
``.incomplete`` file, which huggingface_hub never reuses or removes (since huggingface_hub#4306
each download starts over under a new name; see huggingface_hub#4196): the next download from
that repo removes it (:func:`remove_stale_downloads`). Versions before that resumed from
``<etag>.incomplete``; such a file is left for them.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dattavani.convert.formats import CheckpointFormat, files_to_fetch, folder_format
from dattavani.errors import DownloadError, ModelNotFoundError
from dattavani.models.specs import HubSource

if TYPE_CHECKING:
    from tqdm import tqdm

logger = logging.getLogger(__name__)

_TRUE = ("1", "on", "yes", "true")
# What a killed huggingface_hub download leaves: ``<etag>.<uuid4 hex[:8]>.incomplete``.
_ABANDONED_PARTIAL = re.compile(r"(?P<etag>[^.]+)\.[0-9a-f]{8}\.incomplete")


@dataclass(frozen=True)
class HubSettings:
    """Where and how to reach the hub, as the environment says now."""

    endpoint: str | None
    token: str | None
    cache_dir: Path
    offline: bool

    @classmethod
    def from_env(cls, offline: bool | None = None) -> HubSettings:
        """Read ``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_CACHE``/``HF_HOME`` and ``HF_HUB_OFFLINE``;
        ``offline`` overrides the latter.
        """
        env = os.environ
        hf_home = Path(
            env.get("HF_HOME") or Path(env.get("XDG_CACHE_HOME") or "~/.cache") / "huggingface"
        )
        cache_dir = Path(env.get("HF_HUB_CACHE") or hf_home / "hub").expanduser()
        if offline is None:
            offline = env.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE
        return cls(
            endpoint=(env.get("HF_ENDPOINT") or "").rstrip("/") or None,
            token=env.get("HF_TOKEN") or None,
            cache_dir=cache_dir,
            offline=offline,
        )

    @property
    def where(self) -> str:
        return self.endpoint or "the Hugging Face hub"


@dataclass(frozen=True)
class Download:
    """What :func:`download` fetched: a GGML file as it is, or a snapshot folder to convert."""

    path: Path
    source_format: CheckpointFormat  # "ggml": ``path`` is the file, else a folder to convert
    repo_id: str
    revision: str
    commit: str


def download(
    source: HubSource, revision: str, settings: HubSettings, progress: bool | None
) -> Download:
    """Fetch ``source`` at ``revision`` into huggingface_hub's cache.

    A named file is fetched as it is. Otherwise, online, the repo's file list says which format
    it is and which files to get; offline, only what the cache already has is used.

    Raises:
      ModelNotFoundError: no such repo, revision or file (or, offline, none cached).
      DownloadError: the hub could not be reached or a transfer broke off.
    """
    import huggingface_hub as hf
    from huggingface_hub import errors as hf_errors

    network_errors: tuple[type[Exception], ...] = (OSError, *_http_client_errors())
    label = f"{source.repo_id}{':' + source.filename if source.filename else ''}@{revision}"
    common: dict[str, Any] = {
        "cache_dir": settings.cache_dir,
        "local_files_only": settings.offline,
        "endpoint": settings.endpoint,
        "token": settings.token,
    }
    # Before the download, so that the space a killed one took is free for it.
    remove_stale_downloads(source.repo_id, settings.cache_dir)
    try:
        if source.filename is not None:
            path = Path(
                hf.hf_hub_download(
                    source.repo_id,
                    source.filename,
                    revision=revision,
                    tqdm_class=_bars(progress),
                    **common,
                )
            )
            return Download(path, "ggml", source.repo_id, revision, _commit_of(path))
        source_format: CheckpointFormat | None = None
        names: list[str] = []
        if not settings.offline:
            # The file list says the format, hence which files to fetch: never all of them.
            api = hf.HfApi(endpoint=settings.endpoint, token=settings.token)
            info = api.model_info(source.repo_id, revision=revision)
            names = [s.rfilename for s in info.siblings or ()]
            source_format = folder_format(names, label)
        # By revision, not by the commit just seen: huggingface_hub then records which commit
        # the branch or tag was, and finds it again offline.
        folder = Path(
            hf.snapshot_download(
                source.repo_id,
                revision=revision,
                allow_patterns=list(files_to_fetch(source_format, names)),
                tqdm_class=_bars(progress),
                **common,
            )
        )
        if source_format is None:
            source_format = folder_format([p.name for p in folder.iterdir()], label)
        return Download(folder, source_format, source.repo_id, revision, folder.name)
    except (hf_errors.RepositoryNotFoundError, hf_errors.GatedRepoError) as error:
        raise ModelNotFoundError(
            f"{label}: no such repository on {settings.where}, or it is private or gated "
            "(set HF_TOKEN to a token with access)"
        ) from error
    except hf_errors.RevisionNotFoundError as error:
        raise ModelNotFoundError(
            f"{label}: no revision {revision!r} on {settings.where}"
        ) from error
    except hf_errors.LocalEntryNotFoundError as error:
        if not settings.offline:
            raise DownloadError(f"{label}: {settings.where} could not be reached") from error
        raise ModelNotFoundError(
            f"{label}: not downloaded yet, and the hub is off limits "
            "(offline=True or HF_HUB_OFFLINE=1)"
        ) from error
    except hf_errors.EntryNotFoundError as error:
        raise ModelNotFoundError(f"{label}: file not found on {settings.where}") from error
    except network_errors as error:
        raise DownloadError(f"{label}: download from {settings.where} failed: {error}") from error


def remove_stale_downloads(repo_id: str, cache_dir: Path) -> list[Path]:
    """Delete the partial files that killed downloads of ``repo_id`` left in huggingface_hub's
    cache at ``cache_dir``; returns them.

    A partial file is removed only while nobody holds huggingface_hub's download lock for its
    blob (``.locks/<repo folder>/<etag>.lock``), so a download running in another process is
    left alone. ``<etag>.incomplete`` files are kept: older huggingface_hub versions resume them.

    >>> hub_cache = Path.home() / ".cache/huggingface/hub"
    >>> [p.name for p in remove_stale_downloads("ggerganov/whisper.cpp", hub_cache)]
    ['60ed5bc3dd14eea856493d334349b405782ddcaf0028d4b5df4088345fba2efe.3f9c2a1b.incomplete']
    """
    from filelock import FileLock, Timeout
    from huggingface_hub.file_download import repo_folder_name

    folder = repo_folder_name(repo_id=repo_id, repo_type="model")
    blobs = cache_dir / folder / "blobs"
    try:
        candidates = sorted(blobs.iterdir())
    except OSError:  # nothing downloaded from this repo yet
        return []
    removed = []
    for path in candidates:
        match = _ABANDONED_PARTIAL.fullmatch(path.name)
        if match is None:
            continue
        lock = FileLock(cache_dir / ".locks" / folder / f"{match['etag']}.lock")
        try:
            lock.acquire(timeout=0)
        except (Timeout, OSError):
            continue  # being downloaded now, or the lock cannot be taken: not ours to judge
        try:
            size = path.stat().st_size
            path.unlink()
        except OSError:
            continue  # gone already (another process cleaned it), or not ours to delete
        finally:
            lock.release()
        logger.info("removed a partial download a killed process left: %s (%d bytes)", path, size)
        removed.append(path)
    return removed


def _http_client_errors() -> tuple[type[Exception], ...]:
    """The base error of huggingface_hub's HTTP client: httpx2 (2.x) or httpx (1.x); 0.x used
    requests, whose errors are OSErrors already.
    """
    import importlib

    errors = []
    for client in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(client).HTTPError)
        except ImportError:
            continue
    return tuple(errors)


def _commit_of(path: Path) -> str:
    """The commit a file in huggingface_hub's cache belongs to: ``.../snapshots/<commit>/file``."""
    parts = path.parts
    index = len(parts) - 1 - parts[::-1].index("snapshots")
    return parts[index + 1]


def _bars(progress: bool | None) -> type[tqdm] | None:
    """huggingface_hub's progress bars: on a terminal only (``None``), always or never."""
    if progress is None:
        return None
    from huggingface_hub.utils.tqdm import tqdm as hf_tqdm

    class Bars(hf_tqdm):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs["disable"] = not progress
            super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]

    return Bars
