"""A Hugging Face hub on 127.0.0.1: enough of its HTTP protocol for huggingface_hub's downloads.

Point huggingface_hub at it with ``HF_ENDPOINT=hub.endpoint``. It answers what
``hf_hub_download`` and ``snapshot_download`` ask, the way huggingface.co does:

* ``GET /api/models/{repo}[/revision/{rev}]``: the model info (commit ``sha``, ``siblings``);
* ``GET /api/models/{repo}/tree/{rev}``: the file list with git and LFS ids and sizes;
* ``HEAD|GET /{repo}/resolve/{rev}/{file}``: for a branch, a 307 to the same file at the
  commit (``/api/resolve-cache/...``); at a commit, small files come back directly (``ETag`` =
  git blob id, ``X-Repo-Commit``, ``Content-Length``) and LFS files (``*.bin``,
  ``*.safetensors``) as a 302 to a second server standing for the CDN, with ``X-Linked-Etag``
  (the sha256) and ``X-Linked-Size``;
* byte ranges (``Range: bytes=N-``), as huggingface_hub resumes interrupted downloads;
* errors with the hub's ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``,
  ``EntryNotFound``); a repo added with a ``token`` answers 401 without it.

Every request is logged (:attr:`HubServer.requests`), and :meth:`HubServer.drop_connection`
makes the server hang up halfway through a file, as a flaky network would.
"""

from __future__ import annotations

import functools
import hashlib
import json
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote, unquote, urlsplit

_LFS_SUFFIXES = (".bin", ".safetensors", ".pt", ".h5", ".msgpack")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class LoggedRequest:
    """One request as the server saw it."""

    server: str  # "hub" or "cdn"
    method: str
    path: str
    range: str | None
    authorized: bool


@dataclass(frozen=True)
class HubFile:
    """A file of a repo: its bytes (in memory or on disk) and the ids the hub gives it."""

    name: str
    source: bytes | Path
    size: int
    sha256: str
    git_oid: str

    @property
    def lfs(self) -> bool:
        return self.name.endswith(_LFS_SUFFIXES)

    def read(self, start: int, end: int) -> bytes:
        if isinstance(self.source, bytes):
            return self.source[start:end]
        with self.source.open("rb") as f:
            f.seek(start)
            return f.read(end - start)

    @classmethod
    def of(cls, name: str, source: bytes | Path) -> HubFile:
        if isinstance(source, bytes):
            return cls(name, source, len(source), *_digests(source))
        stat = source.stat()
        return cls(name, source, stat.st_size, *_file_digests(source, stat.st_size, stat.st_mtime))


def _digests(data: bytes) -> tuple[str, str]:
    """sha256 (the LFS id) and the git blob id of some bytes."""
    git = hashlib.sha1(f"blob {len(data)}\0".encode())
    git.update(data)
    return hashlib.sha256(data).hexdigest(), git.hexdigest()


@functools.lru_cache(maxsize=64)
def _file_digests(path: Path, size: int, mtime: float) -> tuple[str, str]:
    """:func:`_digests` of a file, once per version of it (tests serve the same models often)."""
    data_sha256 = hashlib.sha256()
    git = hashlib.sha1(f"blob {size}\0".encode())
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            data_sha256.update(chunk)
            git.update(chunk)
    return data_sha256.hexdigest(), git.hexdigest()


@dataclass
class HubRepo:
    repo_id: str
    commit: str
    files: dict[str, HubFile]
    branches: dict[str, str] = field(default_factory=dict)
    token: str | None = None


class HubServer:
    """The hub and its CDN, each a threading HTTP server on an ephemeral port of 127.0.0.1.

    >>> with HubServer() as hub:                                        # doctest: +SKIP
    ...     hub.add_repo("ggerganov/whisper.cpp", {"ggml-tiny.en.bin": path})
    ...     os.environ["HF_ENDPOINT"] = hub.endpoint
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._repos: dict[str, HubRepo] = {}
        self._requests: list[LoggedRequest] = []
        self._drops: dict[str, int | None] = {}
        self._delays: dict[str, float] = {}
        self._gates: dict[str, threading.Event] = {}
        self._hub = self._serve("hub")
        self._cdn = self._serve("cdn")

    # -- set-up -----------------------------------------------------------------------------------

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._hub.server_address[1]}"

    @property
    def cdn(self) -> str:
        return f"http://127.0.0.1:{self._cdn.server_address[1]}"

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, bytes | Path],
        *,
        token: str | None = None,
        branches: tuple[str, ...] = ("main",),
    ) -> str:
        """Serve ``files`` (name -> bytes or a path) as ``repo_id`` on ``branches``; returns the
        commit id. ``token`` makes it private: requests need ``Authorization: Bearer <token>``.
        """
        hub_files = {name: HubFile.of(name, source) for name, source in files.items()}
        listing = "".join(f"{n}\0{f.git_oid}\n" for n, f in sorted(hub_files.items()))
        commit = hashlib.sha1(f"{repo_id}\n{listing}".encode()).hexdigest()
        with self._lock:
            self._repos[repo_id] = HubRepo(
                repo_id, commit, hub_files, dict.fromkeys(branches, commit), token
            )
        return commit

    def drop_connection(self, filename: str, times: int | None = None) -> None:
        """Hang up halfway through ``filename`` (at its middle byte), ``times`` times or until
        :meth:`stop_dropping`. A request starting past the middle is hung up on at once.
        """
        with self._lock:
            self._drops[filename] = times

    def stop_dropping(self) -> None:
        with self._lock:
            self._drops.clear()

    def slow_down(self, filename: str, seconds_per_mib: float) -> None:
        """Send ``filename`` at a crawl, so that concurrent clients overlap for sure."""
        with self._lock:
            self._delays[filename] = seconds_per_mib

    def hold(self, filename: str) -> threading.Event:
        """Send none of ``filename``'s bytes until the returned event is set: a client is then
        downloading it for as long as a test needs, whatever the machine's speed."""
        gate = threading.Event()
        with self._lock:
            self._gates[filename] = gate
        return gate

    def _gate(self, filename: str) -> threading.Event | None:
        with self._lock:
            return self._gates.get(filename)

    def _delay(self, filename: str) -> float:
        with self._lock:
            return self._delays.get(filename, 0.0)

    @property
    def requests(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._requests)

    def downloads(self, filename: str) -> list[LoggedRequest]:
        """The GETs that fetched (part of) ``filename``'s bytes."""
        with self._lock:
            targets = {
                f"/cdn/{f.sha256}"
                for repo in self._repos.values()
                for f in repo.files.values()
                if f.name == filename
            }
            return [
                r
                for r in self._requests
                if r.method == "GET" and (r.path in targets or r.path.endswith(f"/{filename}"))
            ]

    def clear_log(self) -> None:
        with self._lock:
            self._requests.clear()

    def close(self) -> None:
        for server in (self._hub, self._cdn):
            server.shutdown()
            server.server_close()

    def __enter__(self) -> HubServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- serving ----------------------------------------------------------------------------------

    def _serve(self, role: str) -> ThreadingHTTPServer:
        hub = self

        class Handler(_Handler):
            server_role = role
            state = hub

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True, name=f"hub-{role}").start()
        return server

    def _log(self, request: LoggedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _repo(self, repo_id: str) -> HubRepo | None:
        with self._lock:
            return self._repos.get(repo_id)

    def _file_by_sha256(self, sha256: str) -> HubFile | None:
        with self._lock:
            for repo in self._repos.values():
                for hub_file in repo.files.values():
                    if hub_file.sha256 == sha256:
                        return hub_file
        return None

    def _take_drop(self, filename: str) -> bool:
        """Whether to hang up on this transfer of ``filename`` (counting it down)."""
        with self._lock:
            if filename not in self._drops:
                return False
            left = self._drops[filename]
            if left is not None:
                if left <= 1:
                    del self._drops[filename]
                else:
                    self._drops[filename] = left - 1
            return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_role: str
    state: HubServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is kept in :attr:`HubServer.requests`."""

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_GET(self) -> None:
        self._dispatch()

    # -- routing ----------------------------------------------------------------------------------

    def _dispatch(self) -> None:
        url = urlsplit(self.path)
        self.state._log(
            LoggedRequest(
                self.server_role,
                self.command,
                url.path,
                self.headers.get("Range"),
                self.headers.get("Authorization") is not None,
            )
        )
        parts = [unquote(p) for p in url.path.split("/")[1:]]
        if self.server_role == "cdn":
            hub_file = self.state._file_by_sha256(parts[-1]) if parts[0] == "cdn" else None
            if hub_file is None:
                return self._error(404, "EntryNotFound", "no such object")
            return self._send_file(hub_file, {"ETag": f'"{hub_file.sha256}"'})
        if parts[:2] == ["api", "models"] and len(parts) >= 4:
            repo = self._authorized_repo(f"{parts[2]}/{parts[3]}")
            if repo is None:
                return None
            rest = parts[4:]
            if rest[:1] == ["tree"] and len(rest) >= 2:
                return self._tree(repo, rest[1])
            if rest[:1] == ["revision"] and len(rest) >= 2:
                return self._info(repo, "/".join(rest[1:]))
            if not rest:
                return self._info(repo, "main")
        if parts[:3] == ["api", "resolve-cache", "models"] and len(parts) >= 7:
            repo = self._authorized_repo(f"{parts[3]}/{parts[4]}")
            if repo is not None:
                self._resolve(repo, parts[5], "/".join(parts[6:]))
            return None
        if len(parts) >= 5 and parts[2] == "resolve":
            repo = self._authorized_repo(f"{parts[0]}/{parts[1]}")
            if repo is not None:
                self._resolve(repo, parts[3], "/".join(parts[4:]))
            return None
        return self._error(404, None, "not found")

    def _authorized_repo(self, repo_id: str) -> HubRepo | None:
        repo = self.state._repo(repo_id)
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            return None
        if repo.token is not None and self.headers.get("Authorization") != f"Bearer {repo.token}":
            self._error(401, "RepoNotFound", "Invalid username or password.")
            return None
        return repo

    def _commit(self, repo: HubRepo, revision: str) -> str | None:
        if revision == repo.commit:
            return revision
        commit = repo.branches.get(revision)
        if commit is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
        return commit

    # -- the endpoints ----------------------------------------------------------------------------

    def _info(self, repo: HubRepo, revision: str) -> None:
        commit = self._commit(repo, revision)
        if commit is None:
            return
        self._json(
            {
                "_id": commit[:24],
                "id": repo.repo_id,
                "modelId": repo.repo_id,
                "sha": commit,
                "private": repo.token is not None,
                "lastModified": "2024-01-01T00:00:00.000Z",
                "tags": [],
                "siblings": [{"rfilename": name} for name in sorted(repo.files)],
            }
        )

    def _tree(self, repo: HubRepo, revision: str) -> None:
        commit = self._commit(repo, revision)
        if commit is None:
            return
        entries = []
        for name, hub_file in sorted(repo.files.items()):
            entry: dict[str, Any] = {
                "type": "file",
                "oid": hub_file.git_oid,
                "size": hub_file.size,
                "path": name,
            }
            if hub_file.lfs:
                entry["lfs"] = {"oid": hub_file.sha256, "size": hub_file.size, "pointerSize": 134}
            entries.append(entry)
        self._json(entries)

    def _resolve(self, repo: HubRepo, revision: str, filename: str) -> None:
        commit = self._commit(repo, revision)
        if commit is None:
            return
        hub_file = repo.files.get(filename)
        headers = {"X-Repo-Commit": commit}
        if hub_file is None:
            return self._error(404, "EntryNotFound", f"{filename} does not exist", headers)
        if revision != commit:
            target = f"/api/resolve-cache/models/{repo.repo_id}/{commit}/{quote(filename)}"
            return self._redirect(307, target, headers)
        if hub_file.lfs:
            headers |= {
                "ETag": f'"{hub_file.sha256}"',
                "X-Linked-Etag": f'"{hub_file.sha256}"',
                "X-Linked-Size": str(hub_file.size),
            }
            return self._redirect(302, f"{self.state.cdn}/cdn/{hub_file.sha256}", headers)
        return self._send_file(hub_file, headers | {"ETag": f'"{hub_file.git_oid}"'})

    # -- responses --------------------------------------------------------------------------------

    def _json(self, data: Any) -> None:
        body = json.dumps(data).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(
        self, status: int, code: str | None, message: str, headers: Mapping[str, str] = {}
    ) -> None:
        body = json.dumps({"error": message}).encode()
        self.send_response(status)
        if code is not None:
            self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _redirect(self, status: int, location: str, headers: Mapping[str, str]) -> None:
        body = f"Redirecting to {location}".encode()
        self.send_response(status)
        self.send_header("Location", location)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_file(self, hub_file: HubFile, headers: Mapping[str, str]) -> None:
        start, end = 0, hub_file.size
        requested = self.headers.get("Range")
        if requested and requested.startswith("bytes="):
            first, _, last = requested[len("bytes=") :].partition("-")
            start = int(first) if first else 0
            end = int(last) + 1 if last else hub_file.size
        self.send_response(206 if requested else 200)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        if requested:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{hub_file.size}")
        self.end_headers()
        if self.command == "HEAD":
            return
        stop = end
        drop = self.state._take_drop(hub_file.name)
        if drop:
            stop = min(end, max(start, hub_file.size // 2))
        gate = self.state._gate(hub_file.name)
        if gate is not None:
            gate.wait(timeout=300)
        delay = self.state._delay(hub_file.name)
        for offset in range(start, stop, _CHUNK):
            self.wfile.write(hub_file.read(offset, min(offset + _CHUNK, stop)))
            time.sleep(delay)
        if drop:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True


def folder_files(folder: Path) -> dict[str, Path]:
    """Every file of ``folder`` by its name, to serve as a repo."""
    return {p.name: p for p in sorted(folder.iterdir()) if p.is_file()}
