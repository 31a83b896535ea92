"""What the API's routes share: the route class, the registry, reference parsing, path params.

`ApiRoute` checks the bearer token of writes before the body is read and
renders every error as the JSON error body; `api_router()` makes a router of
such routes. `{ref}` path segments parse with `parse_ref` (422
``invalid_reference`` with the parser's message), `{name}` ones with
`parse_name`. `refusals()` turns the upload checks' `UploadRefused` into the
matching `ApiError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Request, Response
from fastapi import Path as PathParam
from fastapi.routing import APIRoute

from registry.core.reference import Reference, parse_reference
from registry.errors import NotFound
from registry.server.auth import SAFE_METHODS, check_write_access
from registry.server.handlers import ApiError, error_response
from registry.server.schemas import ModuleEntry
from registry.server.uploads import UploadRefused

if TYPE_CHECKING:
    from registry.api import Registry
    from registry.store.base import Resolved, VersionRow

__all__ = ["MAX_REF_LENGTH", "ApiRoute", "NameParam", "RefParam", "api_router", "entry",
           "etag_matches", "in_workspace", "parse_name", "parse_ref", "refusals", "registry_of",
           "resolve_ref", "resolve_ref_async", "stage_map"]

MAX_REF_LENGTH = 200


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


def api_router() -> APIRouter:
    """A router whose routes are `ApiRoute`s (prefix and tags come from `routes.router`)."""
    return APIRouter(route_class=ApiRoute)


RefParam = Annotated[str, PathParam(max_length=MAX_REF_LENGTH, examples=["gravity@1.0.0"],
                                    description="a module reference, URL-encoded: "
                                    "`gravity@1.0.1`, `gravity@%5E1`, `gravity%23prod`, "
                                    "`gravity@workspace`")]
NameParam = Annotated[str, PathParam(max_length=MAX_REF_LENGTH, examples=["gravity"],
                                     description="a module name")]


def registry_of(request: Request) -> Registry:
    reg: Registry = request.app.state.registry
    return reg


def parse_ref(text: str) -> Reference:
    if len(text) > MAX_REF_LENGTH:
        raise ApiError(422, "invalid_reference", f"reference is longer than {MAX_REF_LENGTH} "
                       "characters")
    try:
        return parse_reference(text)
    except NotFound as exc:
        raise ApiError(422, "invalid_reference", str(exc)) from None


def resolve_ref(reg: Registry, text: str) -> Resolved:
    """The version the `{ref}` segment `text` names (checked by `parse_ref` first)."""
    parse_ref(text)
    return reg.resolve(text)


def parse_name(text: str) -> str:
    ref = parse_ref(text)
    if ref.spec is not None or ref.stage is not None:
        raise ApiError(422, "invalid_reference", f"{text!r}: give a module name here (such as "
                       "`gravity`), without `@version` or `#stage`")
    return ref.name


@contextmanager
def refusals() -> Iterator[None]:
    """Raise the upload checks' `UploadRefused` as the `ApiError` of the same status and type."""
    try:
        yield
    except UploadRefused as exc:
        raise ApiError(exc.status, exc.type, exc.message) from None


def entry(row: VersionRow) -> ModuleEntry:
    return ModuleEntry(name=row.name, version=row.version, kind=row.kind, summary=row.summary,
                       tag=row.tag, commit=row.commit, created=row.created,
                       stages=list(row.stages), inputs=dict(row.inputs),
                       outputs=dict(row.outputs))


def stage_map(reg: Registry, name: str) -> dict[str, str]:
    """stage -> version, for the module `name`."""
    return dict(reg.stages(name).get(name, {}))


def in_workspace(reg: Registry, name: str) -> bool:
    """Whether `modules/<name>/module.yaml` is in the working tree (valid or not)."""
    return reg.in_workspace(name)


async def resolve_ref_async(reg: Registry, ref: str) -> Resolved:
    """`resolve_ref` for an async route: inline while the index is fresh (no git, no lock:
    a thread hop would cost more than the read), in the thread pool otherwise (a rebuild
    must not hold up the event loop)."""
    if reg.reads_from_memory():
        return resolve_ref(reg, ref)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(resolve_ref, reg, ref)


def etag_matches(header: str | None, etag: str) -> bool:
    """Whether an `If-None-Match` header names this (strong) ETag value, or `*`."""
    if not header:
        return False
    for item in header.split(","):
        tag = item.strip()
        if tag == "*" or tag.removeprefix("W/") == f'"{etag}"':
            return True
    return False
