"""POST /api/v1/modules: register an uploaded module folder (a write: bearer token).

The form is read here (multipart, bounded); the checks, the staging folder
and the registration are `registry.server.uploads`, which knows no HTTP.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request, Response
from fastapi.responses import JSONResponse

from registry.server.auth import bearer_scheme
from registry.server.handlers import ApiError, openapi_errors
from registry.server.routes.common import api_router, refusals, registry_of
from registry.server.schemas import Registered
from registry.server.uploads import MAX_UPLOAD_MEMBERS, register_upload

router = api_router()

_UPLOAD_BODY: dict[str, Any] = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object",
        "properties": {
            "archive": {"type": "string", "format": "binary",
                        "description": "a .tar.gz (or .tar) of the module folder: "
                                       "module.yaml at its top, or inside one folder named "
                                       "like the module"},
            "files": {"type": "array", "items": {"type": "string", "format": "binary"},
                      "description": "instead of `archive`: the folder's files, each with its "
                                     "relative path as filename (module.yaml, data/test.npz)"},
            "name": {"type": "string", "description": "optional: must equal the manifest's "
                                                      "name"},
        },
    }}},
}


@router.post("/modules", status_code=201, response_model=Registered,
             summary="Register an uploaded module",
             dependencies=[Depends(bearer_scheme)], openapi_extra={"requestBody": _UPLOAD_BODY},
             responses={200: {"model": Registered,
                              "description": "The same content was registered already"},
                        **openapi_errors(400, 401, 403, 409, 413, 415, 422)})
async def upload_module(request: Request) -> Response:
    """Register a module from an upload (an archive, or its files).

    The upload is checked strictly (regular files only, safe relative paths,
    at most `MAX_UPLOAD_MEMBERS` files and `Settings.max_upload_bytes` bytes
    unpacked), unpacked into a private staging folder, and only moved to
    `modules/<name>/` once its manifest parses and its name matches; then
    `Registry.register` validates, measures, commits and tags it. On any
    failure the previous folder is put back and no tag is made.
    """
    from starlette.concurrency import run_in_threadpool
    from starlette.datastructures import UploadFile

    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        raise ApiError(415, "unsupported_media_type", "upload the module as multipart/form-data "
                       "with an `archive` (.tar.gz) or `files` fields")
    settings = request.app.state.settings
    async with request.form(max_files=MAX_UPLOAD_MEMBERS, max_fields=16,
                            max_part_size=64 * 1024) as form:
        archives = [v.file for v in form.getlist("archive") if isinstance(v, UploadFile)]
        files = [(v.filename or "", v.file) for v in form.getlist("files")
                 if isinstance(v, UploadFile)]
        name_field = form.get("name")
        wanted = name_field if isinstance(name_field, str) and name_field else None
        with refusals():
            result = await run_in_threadpool(
                lambda: register_upload(registry_of(request), archives=archives, files=files,
                                        wanted=wanted, limit=settings.max_upload_bytes))
    body = Registered(name=result.manifest.name, version=result.manifest.version,
                      ref=result.manifest.ref, tag=result.tag, commit=result.commit,
                      created=result.created)
    return JSONResponse(body.model_dump(), status_code=201 if result.created else 200,
                        headers={"Location": f"/api/v1/modules/{result.manifest.ref}"})
