"""The FastAPI application factory.

`create_app(root)` serves the registry at `root` (a git repository with
`modules/`). The JSON API lives in `registry.server.api_routes` under
`/api/v1`; the server-rendered pages in `registry.server.web` at `/`.
The Registry object is shared on `app.state.registry`; settings (tokens,
size limits) on `app.state.settings`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI


@dataclass(frozen=True)
class Settings:
    """Server configuration; tokens allow writes (bearer auth), sizes are hard limits."""

    tokens: frozenset[str] = field(default_factory=frozenset)
    max_upload_bytes: int = 64 * 1024 * 1024
    max_body_bytes: int = 64 * 1024 * 1024


def create_app(root: str | Path | None = None, *, settings: Settings | None = None) -> FastAPI:
    import registry
    from registry.server import api_routes, web

    app = FastAPI(title="registry", version="1", docs_url="/api/docs",
                  openapi_url="/api/v1/openapi.json", redoc_url=None)
    app.state.registry = registry.open(root)
    app.state.settings = settings or Settings()
    api_routes.install(app)
    web.install(app)
    return app
