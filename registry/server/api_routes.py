"""JSON API under /api/v1 (being written)."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Add the /api/v1 routes and the JSON error handlers to `app`."""
