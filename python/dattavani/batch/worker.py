"""What runs in each actor of the pool: one Transcriber, shared by the calls Ray runs at once.

An actor gets each file's path or URI, never its bytes through the object store, and opens it
itself (a URI through pyarrow's filesystems). It returns one small record per file: the result as
JSON, or the error, and which worker did it; the driver makes the row.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa


def result_schema() -> pa.Schema:
    """What an actor returns for each file."""
    import pyarrow as pa

    return pa.schema(
        [
            ("id", pa.string()),
            ("result_json", pa.string()),
            ("error", pa.string()),
            ("worker", pa.string()),
            ("processing_time", pa.float64()),
        ]
    )


class TranscribeWorker:
    """A Ray Data callable class: loads the model once, then transcribes one file per call.

    ``states`` calls run at once (``max_concurrent_calls_per_actor`` with true multi-threading),
    each with ``threads // states`` CPU threads, all on the one loaded model. A call that runs past
    ``file_timeout`` seconds is cancelled: its file gets a ``TimeoutError`` row and the actor's
    state is free for the next file.
    """

    def __init__(
        self,
        model: str,
        device: str,
        threads: int,
        states: int,
        options: dict[str, Any],
        cache_dir: str | None,
        file_timeout: float | None = None,
    ) -> None:
        from ..transcriber import Transcriber

        self.transcriber = Transcriber(
            model, device=device, threads=threads, workers=states, cache_dir=cache_dir
        )
        self.options = dict(options, threads=max(1, threads // states))
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.file_timeout = file_timeout

    def __call__(self, batch: pa.Table) -> pa.Table:
        import pyarrow as pa

        records = [
            self._transcribe(file_id, path)
            for file_id, path in zip(
                batch.column("id").to_pylist(), batch.column("path").to_pylist(), strict=True
            )
        ]
        return pa.Table.from_pylist(records, result_schema())

    def _transcribe(self, file_id: str, path: str) -> dict[str, Any]:
        from .. import _core
        from ..errors import Cancelled
        from .inputs import is_uri, open_uri

        started = time.perf_counter()
        record: dict[str, Any] = {"id": file_id, "worker": self.name}
        cancel = _core.CancelToken()
        timer = None
        if self.file_timeout is not None:
            timer = threading.Timer(self.file_timeout, cancel.cancel)
            timer.daemon = True
            timer.start()
        try:
            if is_uri(path):
                filesystem, inner = open_uri(path)
                with filesystem.open_input_file(inner) as stream:
                    result = self.transcriber.transcribe(stream, cancel=cancel, **self.options)
            else:
                result = self.transcriber.transcribe(path, cancel=cancel, **self.options)
            record["result_json"] = result.to_json()
        except Cancelled:
            # Only the timer cancels here: Ray stops a job's actors by ending their processes.
            record["error"] = (
                f"TimeoutError: {path}: not transcribed within {self.file_timeout:g} s "
                "(file_timeout); a later run tries it again"
            )
        except Exception as error:  # any failure of one file is that file's row, not the job's
            record["error"] = f"{type(error).__name__}: {error}"
        finally:
            if timer is not None:
                timer.cancel()
        record["processing_time"] = time.perf_counter() - started
        return record
