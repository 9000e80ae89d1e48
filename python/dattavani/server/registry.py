"""The models a server serves: loaded on demand, unloaded when idle, at most so many at once.

A request names a model by a known name (``tiny.en``, ``base-q5_0``, a model package's name), an
alias from ``[native_models.models]``, the served model's own name or ``whisper-1`` (OpenAI's
model name, an alias of the served model). Never a path or a hub repository, unless ``[server]
allow_model_paths`` says so: a request must not make the server read or fetch what it likes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dattavani.errors import DattavaniError, ModelNotFoundError

from .openai_format import APIError

if TYPE_CHECKING:
    from dattavani.config import Config
    from dattavani.transcriber import Transcriber

logger = logging.getLogger(__name__)

#: OpenAI's model name, served as an alias of the served model so that unchanged clients work.
OPENAI_MODEL = "whisper-1"


@dataclass
class LoadedModel:
    """A model in memory and how many requests hold it now."""

    name: str
    transcriber: Transcriber
    pinned: bool  # preloaded: never unloaded for being idle
    users: int = 0
    last_used: float = field(default_factory=time.monotonic)
    created: int = field(default_factory=lambda: int(time.time()))


class ModelRegistry:
    """Loads models by name for requests, keeps at most ``max_loaded_models``, unloads idle ones.

    Loads run in a thread; two requests for a model being loaded wait for one load. A model is
    held while a request uses it (:meth:`acquire` / :meth:`release`), and only idle models are
    unloaded, for room or after ``model_ttl`` seconds unused.
    """

    def __init__(self, config: Config, served: str) -> None:
        self.config = config
        self.settings = config.server
        self.served = served
        self._loaded: dict[str, LoadedModel] = {}
        self._loading: dict[str, asyncio.Future[LoadedModel]] = {}
        self.load_error: str | None = None

    # --- names ----------------------------------------------------------------------------------

    def canonical(self, requested: str) -> str:
        """The model ``requested`` names, or :class:`APIError` 404 when a request may not use it."""
        from dattavani.models.packages import entry_point_names
        from dattavani.models.specs import parse_alias

        name = requested.strip()
        if name in (OPENAI_MODEL, self.served):
            return self.served
        try:
            known = (
                name in self.config.native_models.models
                or parse_alias(name) is not None
                or name in entry_point_names()
            )
        except ModelNotFoundError:
            known = False
        if known or self.settings.allow_model_paths:
            return name
        raise APIError(
            404,
            f"The model {requested!r} does not exist or you do not have access to it; use "
            f"{OPENAI_MODEL}, {self.served} or a model name (paths are not accepted)",
            param="model",
            code="model_not_found",
        )

    def listed(self) -> list[tuple[str, int]]:
        """``(id, created)`` of the models ``/v1/models`` lists: the served one, whisper-1, the
        config's aliases and whatever else is loaded."""
        now = int(time.time())
        names = [self.served, OPENAI_MODEL, *self.config.native_models.models, *self._loaded]
        return [
            (name, self._loaded[name].created if name in self._loaded else now)
            for name in dict.fromkeys(names)
        ]

    def is_listed(self, name: str) -> bool:
        return any(name == listed for listed, _ in self.listed())

    @property
    def loaded(self) -> dict[str, LoadedModel]:
        return dict(self._loaded)

    # --- loading and unloading ------------------------------------------------------------------

    async def acquire(self, requested: str) -> LoadedModel:
        """The loaded model ``requested`` names, held until :meth:`release`."""
        name = self.canonical(requested)
        model = self._loaded.get(name) or await self._load(name, pinned=False)
        model.users += 1
        model.last_used = time.monotonic()
        return model

    def release(self, model: LoadedModel) -> None:
        model.users -= 1
        model.last_used = time.monotonic()

    async def preload(self) -> None:
        """Load the served model and keep it loaded; a failure is kept for ``/health``."""
        try:
            model = self._loaded.get(self.served) or await self._load(self.served, pinned=True)
            model.pinned = True  # a request may have started loading it first
        except (DattavaniError, APIError) as error:
            self.load_error = str(error)
            logger.error("cannot load %s: %s", self.served, error)

    async def _load(self, name: str, *, pinned: bool) -> LoadedModel:
        pending = self._loading.get(name)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[LoadedModel] = asyncio.get_running_loop().create_future()
        self._loading[name] = future
        try:
            self._make_room()
            transcriber = await asyncio.to_thread(self._transcriber, name)
            model = LoadedModel(name, transcriber, pinned)
            self._loaded[name] = model
            future.set_result(model)
            logger.info("loaded %s (%d loaded)", name, len(self._loaded))
            return model
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: a load nobody else waited for is no "never retrieved"
            raise
        finally:
            del self._loading[name]

    def _transcriber(self, name: str) -> Transcriber:
        from ..cli._common import load_transcriber

        try:
            return load_transcriber(
                name,
                self.config,
                device=self.settings.device,
                threads=self.settings.threads,
                workers=self.settings.workers,
            )
        except ModelNotFoundError as error:
            raise APIError(404, str(error), param="model", code="model_not_found") from error

    def _make_room(self) -> None:
        """Unload idle models, least recently used first, until one more fits."""
        loading = len(self._loading)  # this load included
        while len(self._loaded) + loading > self.settings.max_loaded_models:
            idle = [m for m in self._loaded.values() if m.users == 0 and not m.pinned]
            if not idle:
                raise APIError(
                    503,
                    f"{len(self._loaded)} models are loaded and busy "
                    f"(max_loaded_models = {self.settings.max_loaded_models}); try again later",
                    type="server_error",
                    code="model_unavailable",
                    headers={"Retry-After": "5"},
                )
            self.unload(min(idle, key=lambda m: m.last_used).name)

    def unload(self, name: str) -> None:
        """Free a model now (its memory is returned once its last request finishes)."""
        from dattavani.models import default_model_cache

        model = self._loaded.pop(name)
        model.transcriber.close()
        # The process-wide cache keeps idle models for reuse; a server unloading means it.
        default_model_cache().clear()
        logger.info("unloaded %s (%d loaded)", name, len(self._loaded))

    def unload_idle(self, now: float | None = None) -> list[str]:
        """Unload the models unused for ``model_ttl`` seconds; return their names."""
        ttl = self.settings.model_ttl
        if ttl <= 0:
            return []
        now = time.monotonic() if now is None else now
        expired = [
            m.name
            for m in self._loaded.values()
            if m.users == 0 and not m.pinned and now - m.last_used >= ttl
        ]
        for name in expired:
            self.unload(name)
        return expired

    async def reap_forever(self) -> None:
        """Unload expired models now and then, until cancelled."""
        ttl = self.settings.model_ttl
        if ttl <= 0:
            return
        while True:
            await asyncio.sleep(min(max(ttl / 4, 0.1), 30.0))
            self.unload_idle()

    def close(self) -> None:
        for name in list(self._loaded):
            self.unload(name)
