"""GET /api/v1/modules/{ref}/files/{file}: a file of the module folder, with its sha256 as ETag.

Registered versions' files are immutable, so their sha256 is cached per
(commit, path) and `If-None-Match` answers 304 without reading the file again.
Working-tree files that are links, or that resolve outside the module folder,
do not exist as far as the API is concerned. Types other than a few safe ones
are served as `application/octet-stream` attachments; nothing is sniffed.
"""

from __future__ import annotations

import mimetypes
import threading
from collections.abc import Iterator
from typing import Annotated

from fastapi import Path as PathParam
from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from registry.core.integrity import sha256_bytes
from registry.errors import NotFound
from registry.server.handlers import openapi_errors
from registry.server.routes.common import (
    RefParam,
    api_router,
    etag_matches,
    refusals,
    registry_of,
    resolve_ref,
)
from registry.server.uploads import CHUNK, MAX_FILE_PATH, clean_relpath
from registry.store.base import Resolved

router = api_router()

_INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "application/json",
                 "text/plain", "text/csv"}
_SHA_CACHE: dict[tuple[str, str], str] = {}
_SHA_CACHE_LOCK = threading.Lock()
_SHA_CACHE_SIZE = 4096


@router.get("/modules/{ref}/files/{file:path}", summary="Download a file of the module",
            response_class=StreamingResponse, responses={
                200: {"content": {"application/octet-stream": {}},
                      "description": "The file; `ETag` and `X-Content-SHA256` give its sha256"},
                304: {"description": "Not modified (If-None-Match matched the ETag)"},
                **openapi_errors(404, 422)})
def get_file(request: Request, ref: RefParam,
             file: Annotated[str, PathParam(max_length=MAX_FILE_PATH, examples=["module.yaml"],
                                            description="path inside the module folder, "
                                            "e.g. `weights.safetensors`")]) -> Response:
    with refusals():
        relpath = clean_relpath(file)
    resolved = resolve_ref(registry_of(request), ref)
    key = (resolved.commit, f"{resolved.folder}/{relpath}") if resolved.commit else None
    if key is not None:
        with _SHA_CACHE_LOCK:
            cached = _SHA_CACHE.get(key)
        if cached and etag_matches(request.headers.get("if-none-match"), cached):
            return Response(status_code=304, headers=_file_headers(cached))
    data = _read_checked(resolved, relpath)
    sha = sha256_bytes(data)
    if key is not None:
        with _SHA_CACHE_LOCK:
            if len(_SHA_CACHE) > _SHA_CACHE_SIZE:
                _SHA_CACHE.clear()
            _SHA_CACHE[key] = sha
    headers = _file_headers(sha)
    if etag_matches(request.headers.get("if-none-match"), sha):
        return Response(status_code=304, headers=headers)
    media = mimetypes.guess_type(relpath)[0] or "application/octet-stream"
    basename = relpath.rsplit("/", 1)[-1]
    if media not in _INLINE_TYPES:
        media = "application/octet-stream"
        headers["Content-Disposition"] = f'attachment; filename="{basename}"'
    else:
        headers["Content-Disposition"] = f'inline; filename="{basename}"'
    headers["Content-Length"] = str(len(data))

    def chunks() -> Iterator[bytes]:
        view = memoryview(data)
        for start in range(0, len(data), CHUNK):
            yield bytes(view[start:start + CHUNK])

    return StreamingResponse(chunks(), media_type=media, headers=headers)


def _read_checked(resolved: Resolved, relpath: str) -> bytes:
    """`Resolved.read`, refusing working-tree files that are links or leave the folder."""
    if resolved.commit is None and resolved.root is not None:
        base = (resolved.root / resolved.folder).resolve()
        path = resolved.root / resolved.folder / relpath
        if path.is_symlink() or not path.resolve().is_relative_to(base):
            raise NotFound(f"{resolved.where(relpath)}: no such file")
    return resolved.read(relpath)


def _file_headers(sha: str) -> dict[str, str]:
    return {"ETag": f'"{sha}"', "X-Content-SHA256": sha, "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox"}
