"""Server-rendered pages (being written)."""

from __future__ import annotations

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Add the HTML pages (/, /modules/{name}, /leaderboard) and static files to `app`."""
