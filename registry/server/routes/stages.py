"""POST /api/v1/modules/{name}/stages: point a stage at a version (a write: bearer token)."""

from __future__ import annotations

from fastapi import Depends, Request

from registry.core.reference import Version
from registry.server.auth import bearer_scheme
from registry.server.handlers import ApiError, openapi_errors
from registry.server.routes.common import NameParam, api_router, parse_name, parse_ref, registry_of
from registry.server.schemas import StageAssigned, StageRequest

router = api_router()


@router.post("/modules/{name}/stages", status_code=201, response_model=StageAssigned,
             summary="Assign a stage to a version", dependencies=[Depends(bearer_scheme)],
             responses=openapi_errors(400, 401, 403, 404, 413, 422))
def assign_stage(request: Request, name: NameParam, body: StageRequest) -> StageAssigned:
    module = parse_name(name)
    try:
        Version.parse(body.version)
    except ValueError:
        raise ApiError(422, "invalid_version", f"version: {body.version[:40]!r} is not an exact "
                       "version such as 1.0.1") from None
    ref = parse_ref(f"{module}@{body.version}")
    tag = registry_of(request).promote(str(ref), body.stage)
    return StageAssigned(name=module, version=ref.spec or body.version, stage=body.stage, tag=tag)
