"""The index's reads, as plain SQL: on SQLite through the standard library, without
SQLAlchemy (whose import alone is 0.13 s of every `registry list`); on a server database
through the SQLAlchemy engine (`sa.text`). The same statements serve both.

Rebuilds and schema changes stay with SQLAlchemy Core (`registry.store.index`): they
are rare, and need the portable DDL.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["is_corruption", "is_database_error", "is_missing_table", "is_operational_error",
           "meta_sql", "names_sql", "pending_sql", "read_sqlite", "sqlite_path", "stages_sql",
           "version_names_sql", "versions_sql"]

BUSY_TIMEOUT_MS = 30_000  # as the engine's pragma: a refresh in progress is waited for
VERSION_COLUMNS = ("repo", "name", "version", "kind", "summary", "tag", "tag_sha", "commit",
                   "created", "ports", "pending")


def sqlite_path(url: str, *, parse: Callable[[str], Any] | None = None) -> Path | None:
    """The file of a SQLite URL (`sqlite:////abs/index.sqlite`); None for an in-memory
    database or another backend. Plain URLs are read here; one with options goes
    through SQLAlchemy's parser (`parse`)."""
    if not url.startswith("sqlite"):
        return None
    if url.startswith("sqlite:///") and "?" not in url:
        database = url[len("sqlite:///"):]
        return Path(database) if database and database != ":memory:" else None
    if parse is None:
        return None
    parsed = parse(url)
    if not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def read_sqlite(path: Path, sql: str, params: Mapping[str, Any]) -> list[sqlite3.Row]:
    """One statement on a fresh connection (tests delete index files: no handle is kept);
    a missing file is a missing table, never a new empty database."""
    if not path.exists():
        # (No path in the message: `is_corruption` reads it, and paths say anything.)
        raise sqlite3.OperationalError("no such table: the index file does not exist yet")
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        conn.row_factory = sqlite3.Row
        return conn.execute(sql, dict(params)).fetchall()
    finally:
        conn.close()


def versions_sql(table: str, stages: str, *, name: str | None, kind: str | None,
                 manifests: bool, latest: bool = False, version: str | None = None) -> str:
    """Versions with the stages they hold (one statement: one snapshot), by name, version;
    with `latest`, each module's latest alone (the row flagged when the index was built);
    with `version` (and a name), that one version.
    Pending rows (`index_rebuild`) come too, whatever `kind` asks: their kind is not known
    yet, and the reader completes them first."""
    columns = [*VERSION_COLUMNS, *(("manifest",) if manifests else ())]
    sql = (f"SELECT {', '.join(f'v.{_q(c)}' for c in columns)}, s.stage FROM {table} AS v "
           f"LEFT OUTER JOIN {stages} AS s ON s.repo = v.repo AND s.name = v.name "
           "AND s.version = v.version WHERE v.repo = :repo")
    if name is not None:
        sql += " AND v.name = :name"
    if kind is not None:
        sql += " AND (v.kind = :kind OR v.pending = 1)"
    if latest:
        sql += " AND v.latest = 1"
    if version is not None:
        sql += " AND v.version = :version"
    return sql + " ORDER BY v.name, v.version"


def version_names_sql(table: str) -> str:
    """One module's version strings, pending rows included (nothing is parsed for them)."""
    return f"SELECT version FROM {table} WHERE repo = :repo AND name = :name"


def pending_sql(table: str, *, name: str | None, version: str | None = None) -> str:
    """The rows whose manifests are still to be parsed (of one module, or all; of one
    version of it with `version`)."""
    sql = (f'SELECT name, version, tag, "commit" FROM {table} WHERE repo = :repo '
           "AND pending = 1")
    sql += " AND name = :name" if name is not None else ""
    return sql + (" AND version = :version" if version is not None else "")


def stages_sql(stages: str, *, name: str | None) -> str:
    sql = f"SELECT name, stage, version FROM {stages} WHERE repo = :repo"
    return sql + (" AND name = :name" if name is not None else "")


def names_sql(table: str) -> str:
    return f"SELECT DISTINCT name FROM {table} WHERE repo = :repo"


def meta_sql(meta: str) -> str:
    return f"SELECT key, value FROM {meta} WHERE repo = :repo"


def _q(column: str) -> str:
    return '"commit"' if column == "commit" else column  # a keyword in SQL


def _sqlalchemy_errors() -> Any:
    """SQLAlchemy's exception module if it is loaded (never imported for this)."""
    module = sys.modules.get("sqlalchemy.exc")
    return module


def _matches(exc: BaseException, sqlite_types: Sequence[type], names: Sequence[str]) -> bool:
    if isinstance(exc, tuple(sqlite_types)):
        return True
    errors = _sqlalchemy_errors()
    return errors is not None and isinstance(exc, tuple(getattr(errors, n) for n in names))


def is_database_error(exc: BaseException) -> bool:
    return _matches(exc, (sqlite3.DatabaseError,), ("DatabaseError",))


def is_operational_error(exc: BaseException) -> bool:
    return _matches(exc, (sqlite3.OperationalError,), ("OperationalError",))


def is_missing_table(exc: BaseException) -> bool:
    """No tables yet (or a database that cannot be reached: the refresh says so)."""
    return _matches(exc, (sqlite3.OperationalError,), ("OperationalError", "ProgrammingError"))


def is_corruption(exc: BaseException) -> bool:
    text = str(getattr(exc, "orig", None) or exc).lower()
    return any(sign in text for sign in ("not a database", "malformed", "corrupt",
                                          "disk i/o error", "unsupported file format"))
