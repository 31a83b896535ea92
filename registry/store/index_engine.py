"""The index's database engines: one per SQLite file, one shared pool per server URL."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["dispose_engines"]

_ENGINES: dict[str, sa.Engine] = {}
_ENGINES_LOCK = threading.Lock()


def _engine(url: str) -> sa.Engine:
    """An engine; for server databases one shared pool per URL and process."""
    import sqlalchemy as sa

    if url.startswith("sqlite"):
        # A file per repository, which tests delete: no pooled handle may outlive it.
        engine = sa.create_engine(url)
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    with _ENGINES_LOCK:
        shared = _ENGINES.get(url)
        if shared is None:
            shared = _ENGINES[url] = sa.create_engine(url, pool_pre_ping=True)
        return shared


def dispose_engines() -> None:
    """Close the shared pools (tests that drop databases; forked workers)."""
    with _ENGINES_LOCK:
        for engine in _ENGINES.values():
            engine.dispose()
        _ENGINES.clear()


def _advisory_xact_lock(key: int) -> sa.Select[Any]:
    import sqlalchemy as sa

    return sa.select(sa.func.pg_advisory_xact_lock(key))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
