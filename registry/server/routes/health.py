"""GET /api/v1/health: status, version, module counts, index backend, worker pid."""

from __future__ import annotations

import os

from fastapi import Request

import registry
from registry.server.routes.common import api_router, registry_of
from registry.server.schemas import Health

router = api_router()


@router.get("/health", response_model=Health, summary="Server status")
def health(request: Request) -> Health:
    reg = registry_of(request)
    return Health(status="ok", version=registry.__version__, modules=len(reg.list()),
                  unregistered=len(reg.unregistered()), index_backend=reg.index_backend,
                  pid=os.getpid())
