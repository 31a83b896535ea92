"""The FastAPI application factory.

`create_app(root)` serves the registry at `root` (a git repository with
`modules/`). The JSON API lives in `registry.server.routes` (one module per
resource) under `/api/v1`; the server-rendered pages in `registry.server.pages`
at `/`. The Registry object is shared on `app.state.registry`; settings
(tokens, size limits) on `app.state.settings`; the rationed measurer of
`cost?measure=true` (`registry.cost.rationed.RationedMeter`, one per process)
on `app.state.meter`.

`app_from_env()` is the factory `registry serve` hands uvicorn (by import
string, so `--workers N` can start N processes): it reads `REGISTRY_ROOT`,
the tokens (`REGISTRY_TOKENS`, `REGISTRY_TOKEN_FILE`) and, when set,
`REGISTRY_MAX_UPLOAD_BYTES` / `REGISTRY_MAX_BODY_BYTES` from the environment.
On SIGTERM a served process waits at most `GRACE_S` for requests in flight (a
registration queued on the lock would otherwise hold it up forever), then ends.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import FastAPI

GRACE_S = 10  # uvicorn's timeout_graceful_shutdown


@dataclass(frozen=True)
class Settings:
    """Server configuration; tokens allow writes (bearer auth), sizes are hard limits."""

    tokens: frozenset[str] = field(default_factory=frozenset)
    max_upload_bytes: int = 64 * 1024 * 1024
    max_body_bytes: int = 64 * 1024 * 1024


def create_app(root: str | Path | None = None, *, settings: Settings | None = None) -> FastAPI:
    import registry
    from registry.cost.rationed import RationedMeter
    from registry.server import pages, routes

    app = FastAPI(title="registry", version="1", docs_url="/api/docs",
                  openapi_url="/api/v1/openapi.json", redoc_url=None)
    app.state.registry = registry.open(root)
    app.state.settings = settings or Settings()
    app.state.meter = RationedMeter()
    routes.install(app)
    pages.install(app)
    return app


def settings_from_env(env: dict[str, str] | None = None) -> Settings:
    """Settings from the environment (see the module docstring)."""
    from registry.errors import RegistryError
    from registry.server.auth import load_tokens

    env = dict(os.environ) if env is None else env
    sizes = {}
    for key, field_name in (("REGISTRY_MAX_UPLOAD_BYTES", "max_upload_bytes"),
                            ("REGISTRY_MAX_BODY_BYTES", "max_body_bytes")):
        if env.get(key):
            try:
                sizes[field_name] = int(env[key])
            except ValueError:
                raise RegistryError(f"{key}={env[key]!r} is not a number of bytes") from None
    return Settings(tokens=load_tokens(env), **sizes)


def app_from_env() -> FastAPI:
    """The app for `REGISTRY_ROOT` with settings from the environment (uvicorn's factory)."""
    return create_app(os.environ.get("REGISTRY_ROOT"), settings=settings_from_env())
