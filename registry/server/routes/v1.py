"""The /api/v1 router: every resource's routes, in the OpenAPI document's order."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

from registry.server.handlers import install as install_errors
from registry.server.routes import (
    compare,
    cost,
    files,
    health,
    modules,
    register,
    stages,
)

__all__ = ["install", "router"]

router = APIRouter(prefix="/api/v1", tags=["api"])
for _resource in (health, modules, files, cost, compare, register, stages):
    router.include_router(_resource.router)


def install(app: FastAPI) -> None:
    """Add the /api/v1 routes and the JSON error handlers to `app`."""
    install_errors(app)
    app.include_router(router)
