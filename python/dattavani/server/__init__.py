"""``dattavani serve``: an OpenAI-compatible speech-to-text server.

It needs the server extra: ``pip install "dattavani[server]"``.

>>> from dattavani.config import load_config
>>> from dattavani.server import create_app
>>> app = create_app(load_config(), model="tiny.en")      # doctest: +SKIP
>>> import uvicorn; uvicorn.run(app, port=8000)           # doctest: +SKIP

``docs/server.md`` describes the endpoints, the ``[server]`` table and the metrics. Importing this
package is light; FastAPI loads with :func:`create_app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module 'dattavani.server' has no attribute {name!r}")
