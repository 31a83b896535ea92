"""JSON errors for the server: one body shape, one status per error class.

Every error the API returns is ``{"type": "<stable id>", "message": "..."}``;
`type` is a snake_case id clients may switch on, `message` is for people.

The registry's exceptions map to statuses through `registry.errors.WIRE`,
the one table the HTTP store reads answers back with.

FastAPI's `RequestValidationError` is 422 `validation_error`; any
`HTTPException` keeps its status with a type from its status (404
`not_found`, 405 `method_not_allowed`, ...); anything unexpected is a 500
`internal_error` whose message says nothing about the cause (it is logged).
Request bodies over `Settings.max_body_bytes` are refused with 413
`payload_too_large` by `BodyLimitMiddleware`, before the app reads them when
`Content-Length` says so, and while streaming otherwise.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from registry.errors import RegistryError, wire_status

__all__ = ["ApiError", "BodyLimitMiddleware", "ErrorBody", "PayloadTooLarge", "error_response",
           "install", "openapi_errors"]

log = logging.getLogger("registry.server")

HTTP_TYPES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 406: "not_acceptable", 409: "conflict", 411: "length_required",
    413: "payload_too_large", 415: "unsupported_media_type", 422: "unprocessable",
    429: "too_many_requests", 500: "internal_error", 501: "not_implemented",
    503: "unavailable",
}

MAX_MESSAGE = 2000


class ErrorBody(BaseModel):
    """The body of every error response."""

    type: str
    message: str


class ApiError(Exception):
    """An error the API raises on purpose, with its status and stable type id."""

    def __init__(self, status: int, type_: str, message: str,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.headers = dict(headers or {})


class PayloadTooLarge(HTTPException):
    """The request body grew past the limit while it was being read."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than the server's limit of {limit} bytes")


def error_body(type_: str, message: str) -> dict[str, str]:
    return {"type": type_, "message": message[:MAX_MESSAGE]}


def json_error(status: int, type_: str, message: str,
               headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(type_, message), status_code=status,
                        headers=dict(headers or {}))


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:20]:
        loc = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{loc}: {error.get('msg', 'invalid')}" if loc else
                     str(error.get("msg", "invalid")))
    return "; ".join(parts) or "the request is invalid"


def _relative(message: str, request: Request | None) -> str:
    """Messages name files relative to the registry, not by the server's absolute paths."""
    registry = getattr(request.app.state, "registry", None) if request is not None else None
    root = getattr(registry, "root", None)
    if root is None:
        return message
    for prefix in {str(root), str(root.resolve())}:
        message = message.replace(prefix.rstrip("/") + "/", "")
    return message


def error_response(exc: BaseException, request: Request | None = None) -> JSONResponse:
    """The JSON response for any exception (unexpected ones are logged, and say nothing)."""
    if isinstance(exc, ApiError):
        return json_error(exc.status, exc.type, _relative(exc.message, request), exc.headers)
    if isinstance(exc, RegistryError):
        status, type_ = wire_status(exc)
        return json_error(status, type_, _relative(str(exc), request))
    if isinstance(exc, RequestValidationError):
        return json_error(422, "validation_error", _validation_message(exc))
    if isinstance(exc, StarletteHTTPException):
        detail = exc.detail
        message = detail if isinstance(detail, str) else json.dumps(detail, default=str)
        if request is not None and exc.status_code in (404, 405) and message in (
                "Not Found", "Method Not Allowed"):
            message = f"{message}: no route for {request.method} {request.url.path[:200]}"
        type_ = HTTP_TYPES.get(exc.status_code, f"http_{exc.status_code}")
        return json_error(exc.status_code, type_, message, exc.headers)
    where = f" on {request.method} {request.url.path}" if request is not None else ""
    log.error("unexpected error%s", where, exc_info=(type(exc), exc, exc.__traceback__))
    return json_error(500, "internal_error",
                      "internal server error; the server log has the details")


def install(app: FastAPI) -> None:
    """Render every error of `app` as JSON, and limit request bodies."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return error_response(exc, request)

    for cls in (ApiError, RegistryError, RequestValidationError, StarletteHTTPException,
                Exception):
        app.add_exception_handler(cls, handler)
    app.add_middleware(BodyLimitMiddleware, max_bytes=app.state.settings.max_body_bytes)


class BodyLimitMiddleware:
    """Refuse request bodies over `max_bytes` with a JSON 413.

    A `Content-Length` over the limit is refused before the app runs; a body
    without one (chunked) is counted as it streams, and the read that crosses
    the limit raises `PayloadTooLarge`, which the error handlers render.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _content_length(scope)
        if length == -1:
            await json_error(400, "bad_request", "Content-Length is not a non-negative "
                             "integer")(scope, receive, send)
            return
        if length is not None and length > self.max_bytes:
            await json_error(413, "payload_too_large",
                             f"request body of {length} bytes is larger than the server's limit "
                             f"of {self.max_bytes} bytes")(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except PayloadTooLarge as exc:
            if started:
                raise
            await error_response(exc)(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    """The declared body length; None when absent, -1 when malformed."""
    values = [v for k, v in scope.get("headers", ()) if k.lower() == b"content-length"]
    if not values:
        return None
    try:
        lengths = {int(v.decode("latin-1").strip()) for v in values}
    except ValueError:
        return -1
    if len(lengths) != 1 or min(lengths) < 0:
        return -1
    return lengths.pop()


def openapi_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries documenting the error body for `statuses`."""
    descriptions = {400: "Bad request", 401: "Missing bearer token", 403: "Token refused",
                    404: "Not found", 409: "Conflict", 413: "Body too large",
                    415: "Unsupported media type", 422: "Invalid input",
                    429: "Busy, retry later"}
    return {status: {"model": ErrorBody, "description": descriptions.get(status, "Error")}
            for status in statuses}
