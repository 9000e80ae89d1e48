"""``dattavani serve``'s application on 127.0.0.1, run by uvicorn in a thread, for the tests.

>>> with RunningServer(config_from_dict({"server": {"workers": 2}}), model=path) as server:
...     server.client().audio.transcriptions.create(model="whisper-1", file=audio)
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import openai
import uvicorn

from dattavani.config import Config
from dattavani.server import create_app


@dataclass(frozen=True)
class Reply:
    """An HTTP answer read whole."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


class RunningServer:
    """The real server on a free loopback port, stopped (and its models unloaded) on exit."""

    def __init__(self, config: Config, *, model: str, preload: bool = True) -> None:
        self.app = create_app(config, model=model, preload=preload)
        self._server = uvicorn.Server(
            uvicorn.Config(
                self.app, host="127.0.0.1", port=0, log_level="warning", access_log=False
            )
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self.base_url = ""

    def __enter__(self) -> RunningServer:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)

    def client(self, api_key: str = "unused", **kwargs: Any) -> openai.OpenAI:
        """OpenAI's own client, pointed at this server (no retries unless asked)."""
        kwargs.setdefault("max_retries", 0)
        return openai.OpenAI(base_url=f"{self.base_url}/v1", api_key=api_key, **kwargs)

    def request(
        self,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        method: str | None = None,
    ) -> Reply:
        """One request with the standard library; 4xx and 5xx come back as replies too."""
        request = urllib.request.Request(
            f"{self.base_url}{path}", data=body, headers=headers or {}, method=method
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                return Reply(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return Reply(error.code, dict(error.headers), error.read())

    def get(self, path: str) -> Reply:
        return self.request(path)

    def wait_ready(self) -> None:
        """Until ``/health`` answers 200 (the preloaded model is in)."""
        deadline = time.monotonic() + 120
        while (response := self.get("/health")).status != 200:
            assert response.json()["status"] == "loading", response.json()
            assert time.monotonic() < deadline, "the model did not load"
            time.sleep(0.05)

    def metrics(self) -> dict[str, float]:
        """``/metrics`` as ``{'name{labels}': value}``."""
        text = self.get("/metrics").text
        values = {}
        for line in text.splitlines():
            match = re.match(r"^(\S+) (\S+)$", line)
            if match and not line.startswith("#"):
                values[match[1]] = float(match[2])
        return values

    def wait_for(self, condition: Any, what: str, timeout: float = 120) -> dict[str, float]:
        """Poll ``/metrics`` until ``condition(metrics)`` holds; return those metrics."""
        deadline = time.monotonic() + timeout
        while True:
            metrics = self.metrics()
            if condition(metrics):
                return metrics
            assert time.monotonic() < deadline, f"never saw {what}: {metrics}"
            time.sleep(0.05)


def multipart(
    fields: dict[str, str | list[str]], file: tuple[str, bytes] | None = None
) -> tuple[bytes, str]:
    """A ``multipart/form-data`` body and its content type, as an HTML form or a client sends."""
    boundary = "dattavani-test-boundary"
    parts = []
    for name, values in fields.items():
        for value in [values] if isinstance(values, str) else values:
            parts.append(
                f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                f"{value}\r\n".encode()
            )
    if file is not None:
        filename, data = file
        parts.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; '
            f'filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode()
            + data
            + b"\r\n"
        )
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"
