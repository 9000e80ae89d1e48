"""The FastAPI application behind ``dattavani serve``: :func:`create_app`.

Requests decode in parallel on one Transcriber per model (``[server] workers`` at once, sharing
``threads`` CPU threads); up to ``max_queue`` more wait for a worker and the rest are answered 429
with ``Retry-After``. A client that disconnects stops its decode. There is no request timeout:
a long file takes as long as it takes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import math
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from importlib import resources
from typing import TYPE_CHECKING, Any

import anyio
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dattavani.errors import (
    AudioError,
    Cancelled,
    DattavaniError,
    GPUMemoryError,
    ModelNotFoundError,
    OptionsError,
)
from dattavani.transcriber import default_threads

from .metrics import Metrics
from .openai_format import (
    APIError,
    AudioRequest,
    error_body,
    parse_audio_request,
    render,
    sse_event,
)
from .registry import LoadedModel, ModelRegistry

if TYPE_CHECKING:
    from dattavani.config import Config
    from dattavani.results import Segment, TranscriptionResult

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("dattavani.server.access")

AUDIO_PATHS = ("/v1/audio/transcriptions", "/v1/audio/translations")
#: Room for the form's text fields beside the file in a request body.
FORM_OVERHEAD = 1024 * 1024
#: How much of a refused upload is read (and dropped) so the client sees the answer rather than a
#: reset connection; past this the connection is closed.
MAX_DRAIN = 256 * 1024 * 1024
#: How often a decode checks that its client is still there.
DISCONNECT_POLL_SECONDS = 0.2


class BodyTooLarge(Exception):
    """The request body passed the upload limit while it was being read."""


class _BodyLimit:
    """Counts an upload's bytes as they arrive; past ``limit`` the read raises BodyTooLarge."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self._receive = receive
        self.limit = limit
        self.read = 0
        self.complete = False
        self.tripped = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self.read += len(message.get("body", b""))
            self.complete = not message.get("more_body", False)
            if self.read > self.limit and not self.tripped:
                self.tripped = True
                raise BodyTooLarge
        elif message["type"] == "http.disconnect":
            self.complete = True
        return message

    async def drain(self) -> None:
        """Read the rest of the body and drop it (up to MAX_DRAIN)."""
        while not self.complete and self.read < self.limit + MAX_DRAIN:
            await self.receive()


class _Gateway:
    """Pure ASGI middleware: upload limits, per-request metrics and the structured access log.

    Pure ASGI rather than FastAPI's ``@middleware``, which would buffer streamed responses.
    """

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        path = scope["path"]
        if path in AUDIO_PATHS:
            limit = _BodyLimit(receive, self.state.settings.max_upload_size + FORM_OVERHEAD)
            scope.setdefault("state", {})["body_limit"] = limit
            receive = limit.receive

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        except asyncio.CancelledError:
            status = 499  # the client went away (nginx's code for it)
            raise
        finally:
            endpoint = _endpoint(path)
            self.state.metrics.request_done(endpoint, status)
            if self.state.settings.access_log:
                state = scope.get("state", {})
                client = scope.get("client")
                record = {
                    "method": scope["method"],
                    "path": path,
                    "status": status,
                    "duration_s": round(time.perf_counter() - started, 4),
                    "client": f"{client[0]}:{client[1]}" if client else None,
                    "model": state.get("model"),
                    "audio_s": state.get("audio_seconds"),
                }
                access_logger.info(json.dumps(record))


def _endpoint(path: str) -> str:
    if path.startswith("/v1/models/"):
        return "/v1/models/{id}"
    known = (*AUDIO_PATHS, "/v1/models", "/health", "/metrics", "/")
    return path if path in known else "other"


class Admission:
    """The bounded queue: ``workers`` decodes at once, ``max_queue`` more waiting, then 429."""

    def __init__(self, workers: int, max_queue: int, metrics: Metrics) -> None:
        self.workers = workers
        self.capacity = workers + max_queue
        self.metrics = metrics
        self.admitted = 0
        self.decoding = 0
        self._slots = asyncio.Semaphore(workers)
        # Recent decode time, for Retry-After: how long until a place frees up, roughly.
        self.mean_decode_seconds = 5.0

    def enter(self) -> None:
        """Take a place (queued or decoding), or raise 429 when there is none."""
        if self.admitted >= self.capacity:
            retry = math.ceil(
                self.mean_decode_seconds * max(1, self.admitted - self.workers + 1) / self.workers
            )
            raise APIError(
                429,
                f"The server is busy: {self.decoding} requests decoding and "
                f"{self.admitted - self.decoding} waiting; try again later",
                type="rate_limit_error",
                code="queue_full",
                headers={"Retry-After": str(min(max(retry, 1), 600))},
            )
        self.admitted += 1

    def leave(self) -> None:
        self.admitted -= 1

    @contextlib.asynccontextmanager
    async def worker(self) -> AsyncIterator[int]:
        """Wait for a worker; yields how many decodes then run, this one included."""
        waited_from = time.perf_counter()
        self.metrics.queued += 1
        try:
            await self._slots.acquire()
        finally:
            self.metrics.queued -= 1
        self.metrics.waited(time.perf_counter() - waited_from)
        self.decoding += 1
        self.metrics.in_flight = self.decoding
        started = time.perf_counter()
        try:
            yield self.decoding
        finally:
            self.decoding -= 1
            self.metrics.in_flight = self.decoding
            self._slots.release()
            self.mean_decode_seconds = 0.8 * self.mean_decode_seconds + 0.2 * (
                time.perf_counter() - started
            )


@dataclass
class ServerState:
    """What the application's routes share."""

    config: Config
    registry: ModelRegistry
    metrics: Metrics
    admission: Admission
    threads: int
    executor: ThreadPoolExecutor
    background: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def settings(self) -> Any:
        return self.config.server


def create_app(config: Config, *, model: str | None = None, preload: bool | None = None) -> FastAPI:
    """The server's application for ``config``'s ``[server]`` table.

    ``model`` is the served model (default ``[server] model``, else ``[native_models]
    default_model``); ``preload`` (default ``[server] preload``) loads it at start-up, and
    ``/health`` answers 503 until it is loaded.
    """
    settings = config.server
    served = model or settings.model or config.native_models.default_model
    preload = settings.preload if preload is None else preload
    metrics = Metrics()
    state = ServerState(
        config=config,
        registry=ModelRegistry(config, served),
        metrics=metrics,
        admission=Admission(settings.workers, settings.max_queue, metrics),
        threads=settings.threads or default_threads(),
        executor=ThreadPoolExecutor(settings.workers, thread_name_prefix="dattavani-decode"),
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.background.append(asyncio.create_task(state.registry.reap_forever()))
        if preload:
            state.background.append(asyncio.create_task(state.registry.preload()))
        try:
            yield
        finally:
            for task in state.background:
                task.cancel()
            await asyncio.gather(*state.background, return_exceptions=True)
            state.executor.shutdown(wait=True)
            state.registry.close()

    app = FastAPI(
        title="dattavani",
        summary="OpenAI-compatible speech-to-text on whisper.cpp",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.server = state
    app.state.preload = preload
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(_Gateway, state=state)
    _add_error_handlers(app)
    _add_routes(app, state)
    return app


# --- errors ----------------------------------------------------------------------------------


def _add_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, APIError)
        limit = request.scope.get("state", {}).get("body_limit")
        if limit is not None:
            # The client may still be sending: read what it sends so it sees this answer.
            with contextlib.suppress(BodyTooLarge, OSError):
                await limit.drain()
        return JSONResponse(error.body(), status_code=error.status, headers=error.headers)

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        message = str(error.detail) if error.detail else "error"
        if error.status_code == 404:
            message = f"Unknown request URL: {request.method} {request.url.path}"
        return await api_error(request, APIError(error.status_code, message))

    async def unexpected(request: Request, error: Exception) -> Response:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=error)
        body = error_body(f"internal error: {type(error).__name__}: {error}", "server_error")
        return JSONResponse(body, status_code=500)

    app.add_exception_handler(APIError, api_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def api_error_of(error: DattavaniError) -> APIError:
    """The HTTP answer to an error of ours."""
    if isinstance(error, AudioError):
        return APIError(400, str(error), param="file", code="invalid_value")
    if isinstance(error, OptionsError):
        return APIError(400, str(error), code="invalid_value")
    if isinstance(error, ModelNotFoundError):
        return APIError(404, str(error), param="model", code="model_not_found")
    if isinstance(error, GPUMemoryError):
        return APIError(503, str(error), type="server_error", code="model_unavailable")
    return APIError(500, str(error), type="server_error")


# --- routes ----------------------------------------------------------------------------------


def _add_routes(app: FastAPI, state: ServerState) -> None:
    keys = tuple(key.encode() for key in state.settings.api_keys)

    def check_key(request: Request) -> None:
        if not keys:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and any(
            hmac.compare_digest(given.strip().encode(), key) for key in keys
        ):
            return
        raise APIError(
            401,
            "Incorrect or missing API key: send 'Authorization: Bearer <key>' with a key from "
            "[server] api_keys",
            code="invalid_api_key",
        )

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        html = resources.files("dattavani.server").joinpath("static/index.html").read_text("utf-8")
        return HTMLResponse(html)

    @app.get("/health")
    async def health() -> JSONResponse:
        registry = state.registry
        body: dict[str, Any] = {"model": registry.served, "loaded": sorted(registry.loaded)}
        if app.state.preload and registry.served not in registry.loaded:
            if registry.load_error is not None:
                body.update(status="error", error=registry.load_error)
            else:
                body.update(status="loading")
            return JSONResponse(body, status_code=503)
        body["status"] = "ok"
        return JSONResponse(body)

    @app.get("/metrics")
    async def metrics() -> Response:
        state.metrics.models_loaded = len(state.registry.loaded)
        return Response(state.metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def list_models(request: Request) -> JSONResponse:
        check_key(request)
        data = [_model_object(name, created) for name, created in state.registry.listed()]
        return JSONResponse({"object": "list", "data": data})

    @app.get("/v1/models/{model_id:path}")
    async def get_model(request: Request, model_id: str) -> JSONResponse:
        check_key(request)
        for name, created in state.registry.listed():
            if name == model_id:
                return JSONResponse(_model_object(name, created))
        state.registry.canonical(model_id)  # 404 unless a request could use it
        return JSONResponse(_model_object(model_id, int(time.time())))

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request) -> Response:
        check_key(request)
        return await _audio(request, state, "transcribe")

    @app.post("/v1/audio/translations")
    async def translations(request: Request) -> Response:
        check_key(request)
        return await _audio(request, state, "translate")


def _model_object(name: str, created: int) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": created, "owned_by": "dattavani"}


async def _audio(request: Request, state: ServerState, task: str) -> Response:
    """One transcription or translation request, from upload to response."""
    settings = state.settings
    length = request.headers.get("content-length")
    if (
        length is not None
        and length.isdigit()
        and int(length) > (settings.max_upload_size + FORM_OVERHEAD)
    ):
        raise _too_large(settings.max_upload_size)  # refused before the body is read
    state.admission.enter()
    async with contextlib.AsyncExitStack() as cleanup:
        cleanup.callback(state.admission.leave)
        try:
            form = await request.form(max_files=1, max_fields=32, max_part_size=64 * 1024)
        except BodyTooLarge:
            raise _too_large(settings.max_upload_size) from None
        cleanup.push_async_callback(form.close)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise APIError(400, "file is required: the audio file to transcribe", param="file")
        if upload.size is not None and upload.size > settings.max_upload_size:
            raise _too_large(settings.max_upload_size)
        fields = {k: [v for v in form.getlist(k) if isinstance(v, str)] for k in form}
        audio_request = parse_audio_request(fields, task)
        state.registry.canonical(audio_request.model)  # a 404 before the audio is read
        source = _named(upload)
        try:
            from dattavani.audio import audio_duration

            request.state.audio_seconds = await asyncio.to_thread(audio_duration, source)
        except AudioError as error:
            raise api_error_of(error) from None
        model = await state.registry.acquire(audio_request.model)
        cleanup.callback(state.registry.release, model)
        request.state.model = model.name
        if audio_request.stream:
            events = _events(state, model, source, audio_request)
            return _EventStream(events, cleanup.pop_all())
        result = await _decode(state, model, source, audio_request, None, request.is_disconnected)
        body, media_type = render(result, audio_request)
        return Response(body, media_type=media_type)


def _too_large(limit: int) -> APIError:
    return APIError(
        413,
        f"The uploaded file is larger than the limit of {limit} bytes ([server] max_upload_size)",
        param="file",
        code="file_too_large",
    )


def _named(upload: UploadFile) -> Any:
    """The upload's spooled file, named after the client's file name in error messages."""
    return _UploadStream(upload.file, upload.filename or "upload")


class _UploadStream:
    """A binary file object whose ``name`` is the client's file name (audio errors name it)."""

    def __init__(self, file: Any, name: str) -> None:
        self._file = file
        self.name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._file, attribute)


async def _decode(
    state: ServerState,
    model: LoadedModel,
    source: Any,
    audio_request: AudioRequest,
    on_segment: Callable[[Segment], Any] | None,
    disconnected: Callable[[], Awaitable[bool]] | None,
) -> TranscriptionResult:
    """Decode on a worker; stop the decode when the client goes away or the task is cancelled."""
    from dattavani import _core

    metrics = state.metrics

    def count_segment(segment: Segment) -> None:
        metrics.segment_decoded()
        if on_segment is not None:
            on_segment(segment)

    token = _core.CancelToken()
    async with state.admission.worker() as running:
        call = partial(
            model.transcriber.transcribe,
            source,
            cancel=token,
            threads=max(1, state.threads // running),
            on_segment=count_segment,
            **audio_request.transcribe_options(),
        )
        future = asyncio.get_running_loop().run_in_executor(state.executor, call)
        try:
            while not future.done():
                await asyncio.wait({future}, timeout=DISCONNECT_POLL_SECONDS)
                if not future.done() and disconnected is not None and await disconnected():
                    token.cancel()
        except asyncio.CancelledError:
            token.cancel()
            raise
        finally:
            if not future.done():
                # The worker stops at its next check; its slot is free only once it has.
                with anyio.CancelScope(shield=True):
                    await asyncio.wait({future})
            if token.cancelled:
                metrics.decode_cancelled()
            if not future.cancelled():
                future.exception()  # retrieved, for when a cancellation skips the result below
    try:
        result = future.result()
    except Cancelled:
        # Only a client that went away cancels: nobody reads this answer.
        raise APIError(499, "the client closed the request", code="client_closed_request") from None
    except DattavaniError as error:
        raise api_error_of(error) from None
    metrics.transcribed(result.duration, result.processing_time)
    return result


class _EventStream(StreamingResponse):
    """Server-sent events that, however the response ends (the client may leave before the first
    event or in the middle of one), stop their decode and then free what the request held."""

    def __init__(self, events: AsyncGenerator[str, None], cleanup: contextlib.AsyncExitStack):
        super().__init__(
            events,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._events = events
        self._cleanup = cleanup

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await self._events.aclose()
                await self._cleanup.aclose()


async def _events(
    state: ServerState, model: LoadedModel, source: Any, audio_request: AudioRequest
) -> AsyncGenerator[str, None]:
    """``stream=true``: a ``transcript.text.delta`` event per decoded segment, then
    ``transcript.text.done``; an error after the response began arrives as an ``error`` event."""
    loop = asyncio.get_running_loop()
    segments: asyncio.Queue[Segment | None] = asyncio.Queue()

    def on_segment(segment: Segment) -> None:
        loop.call_soon_threadsafe(segments.put_nowait, segment)

    decode = asyncio.ensure_future(_decode(state, model, source, audio_request, on_segment, None))
    decode.add_done_callback(lambda _: segments.put_nowait(None))
    try:
        while (segment := await segments.get()) is not None:
            yield sse_event({"type": "transcript.text.delta", "delta": segment.text})
        result = await decode
        yield sse_event({"type": "transcript.text.done", "text": result.text.strip()})
    except APIError as error:
        yield sse_event({"type": "error", **error.body()})
    finally:
        if not decode.done():
            decode.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait({decode})
