"""The JSON API under /api/v1: the same verbs as the CLI, over HTTP.

Reads (open to everyone):

    GET  /api/v1/health                          status, version, module count, index backend
    GET  /api/v1/modules                         registered modules (latest version each) and
                                                 the working tree's unregistered ones;
                                                 filters: kind, input_unit, output_unit, q
    GET  /api/v1/modules/{ref}                   one version, with the module's versions/stages
    GET  /api/v1/modules/{name}/versions         every registered version of a module
    GET  /api/v1/modules/{ref}/manifest          the manifest as JSON
    GET  /api/v1/modules/{ref}/files/{file}      a file of the module folder (ETag = sha256)
    GET  /api/v1/modules/{ref}/cost              the recorded cost; ?measure=true measures afresh

Writes (``Authorization: Bearer <token>``, see `registry.server.auth`):

    POST /api/v1/modules                         register an uploaded module folder
    POST /api/v1/modules/{name}/stages           assign a stage to a version

`{ref}` is one path segment, URL-encoded: ``gravity@1.0.1``, ``gravity@%5E1``,
``gravity%23prod``, ``gravity@workspace``; a malformed one is a 422
``invalid_reference`` carrying the parser's message. Errors are JSON
``{"type", "message"}`` (`registry.server.handlers`).

Unit filters match by dimension *and* scale (`output_unit=N` finds modules with
an output in newtons or ``kg m/s^2``, not kilonewtons).

Measuring (`cost?measure=true`) builds the module and times it on this
machine, so it is rationed: one measurement at a time per server process (a
second concurrent request gets 429 with ``Retry-After``), results are cached
per exact version for `MEASURE_CACHE_S` seconds, and modules recording more
than `MEASURE_MAX_PARAMS` parameters are refused (422 ``measure_refused``):
measure those with `registry cost REF` where they run.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from registry.errors import ManifestError, NotFound, RegistryError
from registry.core.reference import Reference, Version, parse_reference
from registry.server.auth import SAFE_METHODS, bearer_scheme, check_write_access
from registry.server.handlers import ApiError, error_response, openapi_errors
from registry.server.handlers import install as install_errors

if TYPE_CHECKING:
    from tarfile import TarFile, TarInfo

__all__ = ["install", "router"]

MAX_REF_LENGTH = 200
MAX_FILE_PATH = 200
MAX_PATH_DEPTH = 8
MAX_UPLOAD_MEMBERS = 256
MEASURE_MAX_PARAMS = 1_000_000
MEASURE_CACHE_S = 600.0
CHUNK = 64 * 1024

_PART = re.compile(r"[A-Za-z0-9._-]+")
_STAGE = r"^[a-z][a-z0-9_-]{0,40}$"


def install(app: FastAPI) -> None:
    """Add the /api/v1 routes and the JSON error handlers to `app`."""
    install_errors(app)
    app.include_router(router)


class ApiRoute(APIRoute):
    """Checks the bearer token of writes *before* the body is read, renders errors as JSON.

    FastAPI parses a request body before it solves dependencies, so a token
    check in a dependency would answer a malformed body with 422 instead of
    401; here writes are authorised first. Errors raised by the route (and by
    FastAPI's parameter validation) become JSON here too, whatever exception
    handlers other parts of the app install.
    """

    def get_route_handler(self) -> Any:
        handler = super().get_route_handler()
        needs_token = bool(set(self.methods or ()) - SAFE_METHODS)

        async def route_handler(request: Request) -> Response:
            try:
                if needs_token:
                    check_write_access(request)
                return await handler(request)
            except Exception as exc:  # every error becomes the JSON error body
                return error_response(exc, request)

        return route_handler


router = APIRouter(prefix="/api/v1", route_class=ApiRoute, tags=["api"])


# models ----------------------------------------------------------------------

class ModuleEntry(BaseModel):
    """One registered version, as listed."""

    name: str
    version: str
    kind: str
    summary: str
    tag: str
    commit: str
    created: str
    stages: list[str] = Field(description="stages that point at this version")
    inputs: dict[str, str] = Field(description="input port -> unit")
    outputs: dict[str, str] = Field(description="output port -> unit")


class WorkspaceEntry(BaseModel):
    """A module in the server's working tree with no registered version."""

    name: str
    version: str | None = None
    kind: str | None = None
    summary: str | None = None
    inputs: dict[str, str] = Field(default_factory=dict)
    outputs: dict[str, str] = Field(default_factory=dict)
    error: str | None = Field(default=None, description="why its manifest does not load")


class ModuleList(BaseModel):
    modules: list[ModuleEntry]
    unregistered: list[WorkspaceEntry]


class ModuleDetail(BaseModel):
    """One resolved version, with what the module has besides it."""

    ref: str = Field(description="the exact version (`name@1.0.1`) or `name@workspace`")
    name: str
    version: str
    kind: str
    summary: str
    tag: str | None
    commit: str | None
    stages: list[str]
    inputs: dict[str, str]
    outputs: dict[str, str]
    versions: list[str] = Field(description="every registered version, oldest first")
    stage_map: dict[str, str] = Field(description="stage -> version, for the whole module")
    manifest: dict[str, Any]


class VersionList(BaseModel):
    name: str
    versions: list[ModuleEntry]
    stages: dict[str, str]
    in_workspace: bool


class CostOut(BaseModel):
    ref: str
    recorded: dict[str, Any] = Field(description="the manifest's `cost` section")
    measured: dict[str, Any] | None = Field(
        default=None, description="a fresh measurement (only with `measure=true`)")
    measured_cached: bool | None = None


class Health(BaseModel):
    status: str
    version: str
    modules: int
    unregistered: int
    index_backend: str
    pid: int


class Registered(BaseModel):
    name: str
    version: str
    ref: str
    tag: str
    commit: str
    created: bool = Field(description="false: the same content was registered already")


class StageRequest(BaseModel):
    version: Annotated[str, Field(max_length=100, examples=["1.0.1"])]
    stage: Annotated[str, Field(pattern=_STAGE, examples=["prod"])]


class StageAssigned(BaseModel):
    name: str
    version: str
    stage: str
    tag: str


# helpers ---------------------------------------------------------------------

def _registry(request: Request) -> Any:
    return request.app.state.registry


def _parse_ref(text: str) -> Reference:
    if len(text) > MAX_REF_LENGTH:
        raise ApiError(422, "invalid_reference", f"reference is longer than {MAX_REF_LENGTH} "
                       "characters")
    try:
        return parse_reference(text)
    except NotFound as exc:
        raise ApiError(422, "invalid_reference", str(exc)) from None


def _parse_name(text: str) -> str:
    ref = _parse_ref(text)
    if ref.spec is not None or ref.stage is not None:
        raise ApiError(422, "invalid_reference", f"{text!r}: give a module name here (such as "
                       "`gravity`), without `@version` or `#stage`")
    return ref.name


def _ports(ports: Any) -> dict[str, str]:
    out = {}
    for name, port in (ports or {}).items():
        unit = port.get("unit", "1") if isinstance(port, dict) else getattr(port, "unit", "1")
        out[str(name)] = str(unit)
    return out


def _entry(row: Any) -> ModuleEntry:
    return ModuleEntry(name=row.name, version=row.version, kind=row.kind, summary=row.summary,
                       tag=row.tag, commit=row.commit, created=row.created,
                       stages=list(row.stages), inputs=_ports(row.manifest.get("inputs")),
                       outputs=_ports(row.manifest.get("outputs")))


def _has_unit(ports: dict[str, str], wanted: Any) -> bool:
    from registry.core.units import parse_unit, units_match

    for unit in ports.values():
        try:
            if units_match(parse_unit(unit), wanted):
                return True
        except RegistryError:
            continue
    return False


def _stage_map(reg: Any, name: str) -> dict[str, str]:
    return {stage: version for (_, stage), version in sorted(reg.store.index.stages(name).items())}


def _resolve(reg: Any, ref: Reference) -> Any:
    return reg.store.resolve(ref)


def _exact(resolved: Any) -> str:
    name = resolved.manifest.name
    return resolved.manifest.ref if resolved.commit is not None else f"{name}@workspace"


def clean_relpath(text: str, *, what: str = "file") -> str:
    """A relative path inside a module folder, or `ApiError` 422 saying what is wrong.

    Only ``[A-Za-z0-9._-]`` in `/`-separated parts; no absolute paths, no
    backslashes, no empty, `.` or `..` parts, nothing under `.git*`, at most
    `MAX_FILE_PATH` characters and `MAX_PATH_DEPTH` levels.
    """
    def refuse(why: str) -> ApiError:
        return ApiError(422, "invalid_path", f"{what} {text[:80]!r}: {why}; paths are relative "
                        "to the module folder, with letters, digits, `.`, `_`, `-` and `/`")

    if not text:
        raise refuse("is empty")
    if len(text) > MAX_FILE_PATH:
        raise refuse(f"is longer than {MAX_FILE_PATH} characters")
    if "\\" in text:
        raise refuse("contains a backslash")
    if text.startswith("/"):
        raise refuse("is absolute")
    parts = text.split("/")
    if len(parts) > MAX_PATH_DEPTH:
        raise refuse(f"is deeper than {MAX_PATH_DEPTH} levels")
    for part in parts:
        if part in ("", ".", ".."):
            raise refuse("has an empty, `.` or `..` part")
        if not _PART.fullmatch(part):
            raise refuse("has characters outside [A-Za-z0-9._-/]")
        if part.lower().startswith(".git"):
            raise refuse("names a git file")
    return text


# reads -----------------------------------------------------------------------

@router.get("/health", response_model=Health, summary="Server status")
def health(request: Request) -> Health:
    import os

    import registry

    reg = _registry(request)
    registered = reg.list()
    unregistered = reg.unregistered()
    try:
        from sqlalchemy.engine import make_url

        backend = make_url(reg.store.index.url).get_backend_name()
    except Exception:  # an odd URL must not take health down, nor leak
        backend = "unknown"
    return Health(status="ok", version=registry.__version__, modules=len(registered),
                  unregistered=len(unregistered), index_backend=backend, pid=os.getpid())


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
) -> ModuleList:
    from registry.core.manifest import MANIFEST_FILE, load_manifest
    from registry.store.local import MODULES_DIR
    from registry.core.units import parse_unit

    reg = _registry(request)
    wanted_in = parse_unit(input_unit, where="input_unit") if input_unit is not None else None
    wanted_out = parse_unit(output_unit, where="output_unit") if output_unit is not None else None
    needle = q.strip().lower() if q else ""

    def keep(name: str, summary: str | None, entry_kind: str | None,
             inputs: dict[str, str], outputs: dict[str, str]) -> bool:
        if kind is not None and entry_kind != kind:
            return False
        if needle and needle not in name.lower() and needle not in (summary or "").lower():
            return False
        if wanted_in is not None and not _has_unit(inputs, wanted_in):
            return False
        return wanted_out is None or _has_unit(outputs, wanted_out)

    modules = [e for e in (_entry(row) for row in reg.list(kind=kind))
               if keep(e.name, e.summary, e.kind, e.inputs, e.outputs)]
    unregistered = []
    for name in reg.unregistered():
        try:
            manifest = load_manifest(reg.root / MODULES_DIR / name / MANIFEST_FILE)
        except RegistryError as exc:
            if kind is None and wanted_in is None and wanted_out is None and (
                    not needle or needle in name.lower()):
                unregistered.append(WorkspaceEntry(name=name, error=str(exc)))
            continue
        entry = WorkspaceEntry(name=name, version=manifest.version, kind=manifest.kind,
                               summary=manifest.summary, inputs=_ports(manifest.inputs),
                               outputs=_ports(manifest.outputs))
        if keep(name, entry.summary, entry.kind, entry.inputs, entry.outputs):
            unregistered.append(entry)
    return ModuleList(modules=modules, unregistered=unregistered)


RefParam = Annotated[str, PathParam(max_length=MAX_REF_LENGTH, examples=["gravity@1.0.0"],
                                    description="a module reference, URL-encoded: "
                                    "`gravity@1.0.1`, `gravity@%5E1`, `gravity%23prod`, "
                                    "`gravity@workspace`")]
NameParam = Annotated[str, PathParam(max_length=MAX_REF_LENGTH, examples=["gravity"],
                                     description="a module name")]


@router.get("/modules/{ref}", response_model=ModuleDetail, summary="One module version",
            responses=openapi_errors(404, 422))
def get_module(request: Request, ref: RefParam) -> ModuleDetail:
    reg = _registry(request)
    resolved = _resolve(reg, _parse_ref(ref))
    manifest = resolved.manifest
    versions = [row.version for row in reg.versions(manifest.name)]
    stage_map = _stage_map(reg, manifest.name)
    here = sorted(s for s, v in stage_map.items() if v == manifest.version) if resolved.commit \
        else []
    return ModuleDetail(ref=_exact(resolved), name=manifest.name, version=manifest.version,
                        kind=manifest.kind, summary=manifest.summary, tag=resolved.tag,
                        commit=resolved.commit, stages=here, inputs=_ports(manifest.inputs),
                        outputs=_ports(manifest.outputs), versions=versions,
                        stage_map=stage_map,
                        manifest=manifest.model_dump(mode="json", by_alias=True))


@router.get("/modules/{name}/versions", response_model=VersionList,
            summary="Every registered version of a module", responses=openapi_errors(404, 422))
def list_versions(request: Request, name: NameParam) -> VersionList:
    reg = _registry(request)
    module = _parse_name(name)
    rows = reg.versions(module)
    in_workspace = module in reg.store.workspace_names()
    if not rows and not in_workspace:
        raise NotFound(f"no module `{module}`; GET /api/v1/modules lists what exists")
    return VersionList(name=module, versions=[_entry(r) for r in rows],
                       stages=_stage_map(reg, module), in_workspace=in_workspace)


@router.get("/modules/{ref}/manifest", summary="The manifest as JSON",
            response_model=dict[str, Any], responses=openapi_errors(404, 422))
def get_manifest(request: Request, ref: RefParam) -> dict[str, Any]:
    resolved = _resolve(_registry(request), _parse_ref(ref))
    data: dict[str, Any] = resolved.manifest.model_dump(mode="json", by_alias=True)
    return data


_INLINE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp", "application/json",
                 "text/plain", "text/csv"}
_SHA_CACHE: dict[tuple[str, str], str] = {}
_SHA_CACHE_LOCK = threading.Lock()


def _etag_matches(header: str | None, sha: str) -> bool:
    if not header:
        return False
    for item in header.split(","):
        tag = item.strip()
        if tag == "*":
            return True
        tag = tag.removeprefix("W/")
        if tag == f'"{sha}"':
            return True
    return False


def _read_checked(resolved: Any, relpath: str) -> bytes:
    """`Resolved.read`, refusing working-tree files that are links or leave the folder."""
    if resolved.commit is None:
        base = (resolved.repo.root / resolved.folder).resolve()
        path = resolved.repo.root / resolved.folder / relpath
        if path.is_symlink() or not path.resolve().is_relative_to(base):
            raise NotFound(f"{resolved.where(relpath)}: no such file")
    data: bytes = resolved.read(relpath)
    return data


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
    relpath = clean_relpath(file)
    resolved = _resolve(_registry(request), _parse_ref(ref))
    key = (resolved.commit, f"{resolved.folder}/{relpath}") if resolved.commit else None
    if key is not None:
        with _SHA_CACHE_LOCK:
            cached = _SHA_CACHE.get(key)
        if cached and _etag_matches(request.headers.get("if-none-match"), cached):
            return Response(status_code=304, headers=_file_headers(cached))
    data = _read_checked(resolved, relpath)
    sha = hashlib.sha256(data).hexdigest()
    if key is not None:
        with _SHA_CACHE_LOCK:
            if len(_SHA_CACHE) > 4096:
                _SHA_CACHE.clear()
            _SHA_CACHE[key] = sha
    headers = _file_headers(sha)
    if _etag_matches(request.headers.get("if-none-match"), sha):
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


def _file_headers(sha: str) -> dict[str, str]:
    return {"ETag": f'"{sha}"', "X-Content-SHA256": sha, "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox"}


_MEASURE_LOCK = threading.Lock()
_MEASURED: dict[str, tuple[float, dict[str, Any]]] = {}


@router.get("/modules/{ref}/cost", response_model=CostOut, summary="The module's cost",
            responses=openapi_errors(404, 422, 429))
def get_cost(request: Request, ref: RefParam,
             measure: Annotated[bool, Query(description="measure afresh on this server "
                                            "(rationed: one at a time, cached, small modules "
                                            "only)")] = False) -> CostOut:
    reg = _registry(request)
    resolved = _resolve(reg, _parse_ref(ref))
    manifest = resolved.manifest
    exact = _exact(resolved)
    recorded = manifest.cost.model_dump(mode="json", exclude_none=True)
    if not measure:
        return CostOut(ref=exact, recorded=recorded)
    params = manifest.cost.params
    if params is not None and params > MEASURE_MAX_PARAMS:
        raise ApiError(422, "measure_refused", f"{exact} records {params} parameters; the "
                       f"server measures modules up to {MEASURE_MAX_PARAMS} only; run "
                       f"`registry cost {exact}` on your machine")
    cacheable = resolved.commit is not None
    now = time.monotonic()
    hit = _MEASURED.get(exact) if cacheable else None
    if hit is not None and now - hit[0] < MEASURE_CACHE_S:
        return CostOut(ref=exact, recorded=recorded, measured=hit[1], measured_cached=True)
    if not _MEASURE_LOCK.acquire(blocking=False):
        raise ApiError(429, "too_many_requests", "another measurement is running on this "
                       "server; retry in a few seconds", headers={"Retry-After": "5"})
    try:
        measured: dict[str, Any] = reg.cost(exact).to_dict()
    finally:
        _MEASURE_LOCK.release()
    if cacheable:
        if len(_MEASURED) > 256:
            _MEASURED.clear()
        _MEASURED[exact] = (now, measured)
    return CostOut(ref=exact, recorded=recorded, measured=measured, measured_cached=False)


# writes ----------------------------------------------------------------------

_UPLOAD_BODY = {
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
        archives = [v for v in form.getlist("archive") if isinstance(v, UploadFile)]
        files = [v for v in form.getlist("files") if isinstance(v, UploadFile)]
        name_field = form.get("name")
        wanted = name_field if isinstance(name_field, str) and name_field else None
        if len(archives) + (1 if files else 0) != 1 or len(archives) > 1:
            raise ApiError(422, "invalid_upload", "send exactly one of: one `archive` file "
                           "(.tar.gz of the module folder), or `files` (the folder's files)")
        reg = _registry(request)
        result = await run_in_threadpool(
            _register_upload, reg, archives[0] if archives else None, files, wanted,
            settings.max_upload_bytes)
    body = Registered(name=result.manifest.name, version=result.manifest.version,
                      ref=result.manifest.ref, tag=result.tag, commit=result.commit,
                      created=result.created)
    return JSONResponse(body.model_dump(), status_code=201 if result.created else 200,
                        headers={"Location": f"/api/v1/modules/{result.manifest.ref}"})


@router.post("/modules/{name}/stages", status_code=201, response_model=StageAssigned,
             summary="Assign a stage to a version", dependencies=[Depends(bearer_scheme)],
             responses=openapi_errors(400, 401, 403, 404, 413, 422))
def assign_stage(request: Request, name: NameParam, body: StageRequest) -> StageAssigned:
    module = _parse_name(name)
    try:
        Version.parse(body.version)
    except ValueError:
        raise ApiError(422, "invalid_version", f"version: {body.version[:40]!r} is not an exact "
                       "version such as 1.0.1") from None
    ref = _parse_ref(f"{module}@{body.version}")
    tag = _registry(request).promote(str(ref), body.stage)
    return StageAssigned(name=module, version=ref.spec or body.version, stage=body.stage, tag=tag)


# uploads ---------------------------------------------------------------------

def _too_large(limit: int) -> ApiError:
    return ApiError(413, "upload_too_large", f"the module unpacks to more than {limit} bytes "
                    "(the server's max_upload_bytes)")


def _invalid(message: str) -> ApiError:
    return ApiError(422, "invalid_upload", message)


def _read_archive(fileobj: IO[bytes], limit: int) -> tuple[TarFile, list[tuple[str, TarInfo]]]:
    """Open a tar archive and check every member; returns it and (path, member) of its files."""
    import lzma
    import tarfile
    import zlib

    damaged = (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError, ValueError)
    try:
        tar = tarfile.open(fileobj=fileobj, mode="r:*")  # noqa: SIM115 - the caller closes it
    except damaged as exc:
        raise _invalid(f"archive: not a readable tar archive ({type(exc).__name__}); upload "
                       "a .tar.gz of the module folder") from None
    found: list[tuple[str, TarInfo]] = []
    total = count = 0
    try:
        while True:
            try:
                member = tar.next()
            except damaged as exc:
                raise _invalid(f"archive: damaged after {count} members "
                               f"({type(exc).__name__})") from None
            if member is None:
                break
            count += 1
            if count > MAX_UPLOAD_MEMBERS:
                raise ApiError(413, "upload_too_large", f"archive: more than "
                               f"{MAX_UPLOAD_MEMBERS} members")
            raw = member.name
            stripped = raw
            while stripped.startswith("./"):
                stripped = stripped[2:]
            if member.isdir():
                stripped = stripped.rstrip("/")
                if stripped not in ("", "."):
                    clean_relpath(stripped, what="archive member")
                continue
            if not member.isreg() or member.issparse():
                raise _invalid(f"archive member {raw[:80]!r}: only regular files and folders "
                               "are allowed (no links, devices, fifos or sparse files)")
            path = clean_relpath(stripped, what="archive member")
            total += member.size
            if member.size < 0 or total > limit:
                raise _too_large(limit)
            found.append((path, member))
    except BaseException:
        tar.close()
        raise
    return tar, found


def _copy_limited(source: IO[bytes], target: Path, budget: list[int], limit: int) -> None:
    with target.open("xb") as out:
        while True:
            chunk = source.read(CHUNK)
            if not chunk:
                break
            budget[0] += len(chunk)
            if budget[0] > limit:
                raise _too_large(limit)
            out.write(chunk)


def _strip_top(paths: list[str]) -> tuple[str | None, dict[str, str]]:
    """Where module.yaml is: at the top, or inside one top folder (returned, then stripped)."""
    from registry.core.manifest import MANIFEST_FILE

    if len(set(paths)) != len(paths):
        dupes = sorted({p for p in paths if paths.count(p) > 1})
        raise _invalid(f"upload: {', '.join(dupes[:5])} given more than once")
    if MANIFEST_FILE in paths:
        return None, {p: p for p in paths}
    tops = {p.split("/", 1)[0] for p in paths}
    if len(tops) == 1:
        top = tops.pop()
        if f"{top}/{MANIFEST_FILE}" in paths:
            return top, {p: p.split("/", 1)[1] for p in paths}
    raise _invalid(f"upload: no {MANIFEST_FILE} at the top of the upload (or inside one folder "
                   "named like the module)")


def _register_upload(reg: Any, archive: Any, files: list[Any], wanted: str | None,
                     limit: int) -> Any:
    """Stage, check, move into `modules/<name>/` and register; undo everything on failure."""
    from registry.core.manifest import MANIFEST_FILE, load_manifest
    from registry.store.local import MODULES_DIR

    uploads = reg.root / ".registry" / "uploads"
    uploads.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="upload-", dir=uploads))
    try:
        staging = work / "module"
        staging.mkdir()
        budget = [0]
        if archive is not None:
            tar, members = _read_archive(archive.file, limit)
            with tar:
                top, renamed = _strip_top([p for p, _ in members])
                for path, member in members:
                    target = staging / renamed[path]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    source = tar.extractfile(member)
                    if source is None:  # pragma: no cover - regular files always have data
                        raise _invalid(f"archive member {path!r} has no data")
                    with source:
                        _copy_limited(source, target, budget, limit)
        else:
            paths = [clean_relpath(f.filename or "", what="file name") for f in files]
            top, renamed = _strip_top(paths)
            for path, upload in zip(paths, files, strict=True):
                target = staging / renamed[path]
                target.parent.mkdir(parents=True, exist_ok=True)
                upload.file.seek(0)
                _copy_limited(upload.file, target, budget, limit)
        try:
            manifest = load_manifest(staging / MANIFEST_FILE)
        except ManifestError as exc:  # name the uploaded file, not the staging folder
            raise ManifestError(str(exc).replace(f"{staging}/", "upload:")) from None
        name = manifest.name
        if top is not None and top != name:
            raise _invalid(f"upload: the folder is named `{top}` but module.yaml says name: "
                           f"`{name}`; rename one so they agree")
        if wanted is not None and wanted != name:
            raise _invalid(f"upload: the form's name `{wanted[:64]}` differs from module.yaml's "
                           f"name `{name}`")
        return _swap_and_register(reg, staging, work, name, MODULES_DIR)
    except NotFound as exc:  # a file the manifest names is missing from the upload
        raise ApiError(422, "missing_file", str(exc)) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _swap_and_register(reg: Any, staging: Path, work: Path, name: str, modules_dir: str) -> Any:
    from filelock import FileLock

    relfolder = f"{modules_dir}/{name}"
    target = reg.root / modules_dir / name
    backup = work / "previous"
    with FileLock(str(reg.store.repo.gitdir / "registry-upload.lock"), timeout=600):
        if target.exists() or target.is_symlink():
            if not target.is_dir() or target.is_symlink():
                raise ApiError(409, "conflict", f"{relfolder} exists and is not a folder")
            status = reg.store.repo.run("status", "--porcelain", "--untracked-files=all", "--",
                                        relfolder)
            if status.strip():
                raise ApiError(409, "working_tree_dirty", f"{relfolder} has uncommitted changes "
                               "in the server's repository; commit or discard them there "
                               "before uploading")
            target.rename(backup)
        head = reg.store.repo.head()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            staging.rename(target)
            return reg.register(target)
        except BaseException:
            if reg.store.repo.head() == head:  # nothing committed: put the old folder back
                shutil.rmtree(target, ignore_errors=True)
                if backup.exists():
                    backup.rename(target)
            raise
