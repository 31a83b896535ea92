"""Reading modules: the list (with search), one version, a module's versions, a manifest.

    GET /api/v1/modules                   latest of each registered module and the working
                                          tree's unregistered ones; kind, input_unit,
                                          output_unit, q filter both (`Registry.search`);
                                          `limit` per page (100, at most 1000), then
                                          `cursor=<next_cursor>` for the next one
    GET /api/v1/modules/{ref}             one version, with the module's versions and stages
    GET /api/v1/modules/{name}/versions   every registered version of a module
    GET /api/v1/modules/{ref}/manifest    the manifest as JSON
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from fastapi import Query, Request, Response

from registry.core.manifest import NAME_PATTERN
from registry.errors import NotFound
from registry.server.handlers import openapi_errors
from registry.server.routes.common import (
    NameParam,
    RefParam,
    api_router,
    entry,
    etag_matches,
    in_workspace,
    parse_name,
    registry_of,
    resolve_ref,
    resolve_ref_async,
    stage_map,
)
from registry.server.schemas import ModuleDetail, ModuleList, VersionList, WorkspaceEntry

router = api_router()

DEFAULT_PAGE = 100
MAX_PAGE = 1000


@router.get("/modules", response_model=ModuleList, summary="List modules",
            responses=openapi_errors(422))
def list_modules(
    request: Request,
    kind: Annotated[Literal["equation", "network", "composite"] | None,
                    Query(description="only modules of this kind")] = None,
    input_unit: Annotated[str | None, Query(max_length=120, description="only modules with an "
                                            "input in this unit (same dimension and scale)")]
    = None,
    output_unit: Annotated[str | None, Query(max_length=120, description="only modules with "
                                             "an output in this unit")] = None,
    q: Annotated[str | None, Query(max_length=200, description="text in the name or summary "
                                   "(case-insensitive)")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="modules per page")]
    = DEFAULT_PAGE,
    cursor: Annotated[str | None, Query(max_length=64, pattern=NAME_PATTERN,
                                        description="`next_cursor` of the previous page")]
    = None,
) -> ModuleList:
    found = registry_of(request).search(q, kind=kind, input_unit=input_unit,
                                        output_unit=output_unit)
    rows = [row for row in found.modules if cursor is None or row.name > cursor]
    page = rows[:limit]
    return ModuleList(
        modules=[entry(row) for row in page],
        # The working tree's unregistered modules come with the first page only.
        unregistered=[] if cursor is not None else
        [WorkspaceEntry(**m.to_dict()) for m in found.unregistered],
        next_cursor=page[-1].name if len(rows) > limit else None)


@router.get("/modules/{ref}", response_model=ModuleDetail, summary="One module version",
            responses=openapi_errors(404, 422))
def get_module(request: Request, ref: RefParam) -> ModuleDetail:
    reg = registry_of(request)
    resolved = resolve_ref(reg, ref)
    manifest = resolved.manifest
    versions = [row.version for row in reg.versions(manifest.name)]
    stages = stage_map(reg, manifest.name)
    here = sorted(s for s, v in stages.items() if v == manifest.version) if resolved.commit \
        else []
    return ModuleDetail(ref=resolved.exact, name=manifest.name, version=manifest.version,
                        kind=manifest.kind, summary=manifest.summary, tag=resolved.tag,
                        commit=resolved.commit, stages=here,
                        inputs=manifest.port_units("inputs"),
                        outputs=manifest.port_units("outputs"), versions=versions,
                        stage_map=stages,
                        manifest=manifest.model_dump(mode="json", by_alias=True))


@router.get("/modules/{name}/versions", response_model=VersionList,
            summary="Every registered version of a module", responses=openapi_errors(404, 422))
def list_versions(request: Request, name: NameParam) -> VersionList:
    reg = registry_of(request)
    module = parse_name(name)
    rows = reg.versions(module)
    here = in_workspace(reg, module)
    if not rows and not here:
        raise NotFound(f"no module `{module}`; GET /api/v1/modules lists what exists")
    return VersionList(name=module, versions=[entry(r) for r in rows],
                       stages=stage_map(reg, module), in_workspace=here)


@router.get("/modules/{ref}/manifest", summary="The manifest as JSON",
            response_model=dict[str, Any], responses={
                200: {"description": "The manifest; `ETag` is the sha256 of this body"},
                304: {"description": "Not modified (If-None-Match matched the ETag)"},
                **openapi_errors(404, 422)})
async def get_manifest(request: Request, ref: RefParam) -> Response:
    resolved = await resolve_ref_async(registry_of(request), ref)
    # Encoded here (not by FastAPI's generic encoder: 20x the cost of the dump itself).
    body = json.dumps(resolved.manifest.model_dump(mode="json", by_alias=True),
                      ensure_ascii=False, separators=(",", ":")).encode()
    sha = hashlib.sha256(body).hexdigest()
    headers = {"ETag": f'"{sha}"', "Cache-Control": "no-cache"}
    if etag_matches(request.headers.get("if-none-match"), sha):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)
