"""The files of a batch: inputs expanded to paths and URIs, each with its key and fingerprint.

A local file's fingerprint is a hash of its content, so a file rewritten in place is transcribed
again and a file merely touched is not. A remote file (``s3://``, ``gs://``, any URI pyarrow's
filesystems open) is not downloaded to be listed: its fingerprint is a hash of its URI, size and
modification time.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from ..errors import DattavaniError, InputError

if TYPE_CHECKING:
    import pyarrow.fs

#: A list of paths or URIs, one a line, is a file with one of these suffixes.
LIST_SUFFIXES = frozenset({".txt", ".lst", ".list"})
#: A Parquet manifest names its files in the first of these columns it has.
MANIFEST_COLUMNS = ("path", "uri", "audio", "file")

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# Files are hashed and probed by a few threads: hashing and header reads release the GIL.
_PROBE_THREADS = 8


def is_uri(source: str) -> bool:
    """Whether ``source`` is a URI (``s3://...``, ``file:///...``) rather than a local path."""
    return bool(_URI.match(source))


@dataclass(frozen=True)
class BatchFile:
    """One file of a batch: its key, what decides whether it changed, and how long it is.

    ``duration`` is None where it is not known before transcribing (a remote file, or a file whose
    header cannot be read: transcribing it then reports why).
    """

    id: str
    path: str
    fingerprint: str
    size: int
    duration: float | None


def file_id(path: str) -> str:
    """The row key of ``path``: 16 hex digits of its SHA-256, stable across runs and machines."""
    return hashlib.sha256(path.encode("utf-8")).hexdigest()[:16]


def expand_sources(items: Sequence[str]) -> list[str]:
    """Folders (searched recursively for audio), globs, files, lists of paths or URIs, Parquet
    manifests and URIs, expanded to local paths and URIs, in order, each once.

    Raises :class:`~dattavani.errors.InputError` for an item that names no file.
    """
    from ..cli._files import expand_inputs

    sources: list[str] = []
    for item in items:
        if is_uri(item):
            found = _expand_uri(item)
        elif item.lower().endswith(".parquet") and os.path.isfile(item):
            found = _read_manifest(item)
        elif os.path.splitext(item)[1].lower() in LIST_SUFFIXES and os.path.isfile(item):
            found = _read_list(item)
        else:
            found = []
            for job in expand_inputs([item]):
                if job.path is None:
                    raise InputError(f"{item}: {job.error}")
                found.append(os.path.abspath(job.path))
        if not found:
            raise InputError(f"{item}: names no audio files")
        sources.extend(found)
    return list(dict.fromkeys(sources))


def _relative_to(base_file: str, entry: str) -> str:
    """An entry of a list or manifest: URIs as they are, relative paths from the list's folder."""
    if is_uri(entry) or os.path.isabs(entry):
        return entry
    return os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(base_file)), entry))


def _read_list(path: str) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        lines = [line.strip() for line in handle]
    return [_relative_to(path, line) for line in lines if line and not line.startswith("#")]


def _read_manifest(path: str) -> list[str]:
    import pyarrow.parquet as pq

    names = pq.read_schema(path).names
    column = next((c for c in MANIFEST_COLUMNS if c in names), None)
    if column is None:
        raise InputError(
            f"{path}: a manifest needs a column named one of {', '.join(MANIFEST_COLUMNS)}; "
            f"it has {', '.join(names)}"
        )
    values = pq.read_table(path, columns=[column]).column(column).to_pylist()
    return [_relative_to(path, str(v)) for v in values if v]


def open_uri(uri: str) -> tuple[pyarrow.fs.FileSystem, str]:
    """pyarrow's filesystem for ``uri`` and the path within it."""
    import pyarrow.fs

    try:
        return pyarrow.fs.FileSystem.from_uri(uri)  # type: ignore[no-any-return]
    except (pyarrow.ArrowException, ValueError, OSError) as error:
        raise InputError(f"{uri}: cannot be opened: {error}") from error


def _expand_uri(uri: str) -> list[str]:
    """A remote file as it is; a remote folder as the audio files under it."""
    import pyarrow.fs

    from ..cli._files import AUDIO_EXTENSIONS

    filesystem, path = open_uri(uri)
    scheme = uri[: uri.index("://") + 3]
    info = filesystem.get_file_info(path)
    if info.type == pyarrow.fs.FileType.File:
        return [uri]
    if info.type != pyarrow.fs.FileType.Directory:
        raise InputError(f"{uri}: no such file or folder")
    selector = pyarrow.fs.FileSelector(path, recursive=True)
    return sorted(
        scheme + entry.path
        for entry in filesystem.get_file_info(selector)
        if entry.type == pyarrow.fs.FileType.File
        and PurePosixPath(entry.path).suffix.lower() in AUDIO_EXTENSIONS
    )


def describe_files(sources: Sequence[str]) -> list[BatchFile]:
    """Each source with its key, fingerprint, size and (local files) duration, in order."""
    with ThreadPoolExecutor(max_workers=_PROBE_THREADS) as pool:
        return list(pool.map(_describe, sources))


def _describe(source: str) -> BatchFile:
    if is_uri(source):
        filesystem, path = open_uri(source)
        info = filesystem.get_file_info(path)
        mtime = info.mtime_ns if info.mtime_ns is not None else ""
        stamp = f"{source}\0{info.size}\0{mtime}".encode()
        fingerprint = "stat:" + hashlib.sha256(stamp).hexdigest()
        return BatchFile(file_id(source), source, fingerprint, int(info.size or 0), None)
    # SHA-256 for its speed: with the CPU's SHA extensions it hashed twice as fast as BLAKE2b here.
    digest = hashlib.sha256()
    try:
        size = os.path.getsize(source)
        with open(source, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError as error:
        raise InputError(f"{source}: cannot be read: {error.strerror or error}") from error
    return BatchFile(file_id(source), source, "sha256:" + digest.hexdigest(), size, _probe(source))


def _probe(path: str) -> float | None:
    from ..audio import audio_duration

    try:
        return audio_duration(path)
    except DattavaniError:
        return None


def longest_first(files: Sequence[BatchFile]) -> list[BatchFile]:
    """Files of known length longest first, then the others largest first: the long ones start
    early, so the last file of the run is a short one and the actors finish together."""
    return sorted(files, key=lambda f: (f.duration is None, -(f.duration or 0.0), -f.size))
