"""The index: a derived cache of every registered version, in SQL.

It is rebuilt from git whenever the tags or HEAD change (a fingerprint of the
refs is stored beside it), and only new tags are read; a SQLite rebuild that meets
many at once parses each module's latest manifest and leaves the others to their
first read (`index_rebuild`). Deleting it loses nothing. SQLite by default
(`.registry/index.sqlite`); any SQLAlchemy URL through `REGISTRY_INDEX_URL`, e.g. PostgreSQL
(`postgresql+psycopg://user:pass@host:5432/db`).

One database may hold the index of several repositories (a PostgreSQL shared
by servers of different registries): every row carries the repository's key
(`repo`: a hash of its absolute path, or of `REGISTRY_INDEX_KEY` when set), so
repositories never see or clobber each other's rows. Tables are prefixed
`registry_` so that they can live beside other applications' tables.

Concurrency: a refresh runs in one transaction, under a file lock beside the
repository and, on PostgreSQL, a transaction-scoped advisory lock per
repository (processes on other hosts sharing the database queue there too).
Readers read versions and stages in one statement, so they see the index
either before or after a refresh, never half of it.

Example:
    >>> index = Index.for_repo(GitRepo(root))
    >>> [row.version for row in index.versions("gravity")]
    ['1.0.0', '1.1.0']
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from registry.errors import RegistryError
from registry.store.base import VersionRow
from registry.store.git import GitRepo, Tag
from registry.store.index_engine import _advisory_xact_lock, _engine, dispose_engines
from registry.store.index_reads import (
    is_corruption,
    is_database_error,
    is_missing_table,
    is_operational_error,
    meta_sql,
    names_sql,
    read_sqlite,
    sqlite_path,
    stages_sql,
    version_names_sql,
    versions_sql,
)
from registry.store.index_rebuild import complete, rebuild
from registry.store.index_rows import version_row
from registry.store.index_schema import (
    META_TABLE,
    SCHEMA_VERSION,
    STAGES_TABLE,
    VERSIONS_TABLE,
    build_metadata,
)

if TYPE_CHECKING:
    import sqlalchemy as sa

__all__ = ["VERSIONS_TABLE", "Index", "dispose_engines"]

T = TypeVar("T")
log = logging.getLogger("registry.index")

MEMO_ENTRIES = 256  # query results kept per index object (`Index._remembered`)
# PostgreSQL advisory lock guarding CREATE TABLE (shared by every repository).
_DDL_LOCK = int.from_bytes(hashlib.sha256(b"registry-index-ddl").digest()[:8], "big",
                           signed=True)



class Index:
    """SQL tables `VERSIONS_TABLE`, `registry_stages`, `registry_meta`, refreshed from git.

    `key` names this repository's rows (default: its absolute path); the
    tables may hold other repositories' rows too.
    """

    def __init__(self, repo: GitRepo, url: str, *, lock_path: Path,
                 key: str | None = None) -> None:
        self.repo = repo
        self.url = url
        self.lock_path = lock_path
        self.key = key or str(Path(repo.root).resolve())
        self.repo_id = hashlib.sha256(self.key.encode()).hexdigest()[:32]
        self.is_postgres = url.split(":", 1)[0].split("+", 1)[0] in ("postgresql", "postgres")
        self._lock_id = int.from_bytes(bytes.fromhex(self.repo_id[:16]), "big", signed=True)
        self._tables_ready = False
        self._fresh_at: str | None = None  # the ref state last found matching the index
        # Query results while the refs stay as they were (`_remembered`): rows are shared,
        # read-only; dropped whole when the state moves.
        self._memo: dict[tuple[Any, ...], Any] = {}
        self._memo_at: str | None = None

    # SQLAlchemy is imported only to write (a rebuild) or to read a server database.

    @cached_property
    def engine(self) -> sa.Engine:
        return _engine(self.url)

    @cached_property
    def metadata(self) -> sa.MetaData:
        return build_metadata()

    @property
    def versions_t(self) -> sa.Table:
        return self.metadata.tables[VERSIONS_TABLE]

    @property
    def stages_t(self) -> sa.Table:
        return self.metadata.tables[STAGES_TABLE]

    @property
    def meta_t(self) -> sa.Table:
        return self.metadata.tables[META_TABLE]

    def _read(self, sql: str, **params: Any) -> list[Any]:
        """One read statement (`index_reads`), rows read by column name: the standard
        library's sqlite3 for a SQLite file, the engine otherwise."""
        path = self._sqlite_path()
        if path is not None:
            return list(read_sqlite(path, sql, {"repo": self.repo_id, **params}))
        import sqlalchemy as sa

        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(sql), {"repo": self.repo_id, **params}).mappings())

    @classmethod
    def for_repo(cls, repo: GitRepo) -> Index:
        cache = repo.root / ".registry"
        cache.mkdir(exist_ok=True)
        url = os.environ.get("REGISTRY_INDEX_URL") or f"sqlite:///{cache / 'index.sqlite'}"
        return cls(repo, url, lock_path=cache / "index.lock",
                   key=os.environ.get("REGISTRY_INDEX_KEY") or None)

    @property
    def safe_url(self) -> str:
        """The URL with its password hidden (for messages)."""
        return self.engine.url.render_as_string(hide_password=True)

    def is_fresh(self) -> bool:
        """Whether this object last found the index matching the refs as they are now (a
        few file stats; False on a shared database, which is always asked)."""
        state = self._state()
        return state is not None and state == self._fresh_at

    def refresh(self, *, force: bool = False) -> bool:
        """Bring the cache up to date with git; returns True when anything was rebuilt."""
        return self._rebuilding_if_corrupt(lambda: self._refresh(force=force))

    def _refresh(self, *, force: bool) -> bool:
        # Taken before the refs are read: a change after this point makes the next read
        # look again.
        refs = self.repo.ref_state() if self._sqlite_path() is not None else None
        state = self._state(refs)
        if not force and state is not None and state == self._fresh_at:
            return False  # nothing git keeps refs in has changed: no git process, no query
        stored = self._stored_meta()
        if not force and state is not None and stored.get("ref_state") == state:
            self._fresh_at = state  # as the last refresh (of any process) left the refs
            return False
        if (not force and state is None and "fingerprint" in stored
                and stored["fingerprint"] == self._fingerprint()):
            return False
        from filelock import FileLock  # (only to write: a fresh read never loads it)

        with FileLock(str(self.lock_path), timeout=120), self._errors():
            self._ensure_tables()
            with self.engine.begin() as conn:
                if self.is_postgres:  # other hosts sharing the database queue here
                    conn.execute(_advisory_xact_lock(self._lock_id))
                tags = self.repo.tags()  # one listing: the fingerprint and the rebuild's
                fingerprint = self._fingerprint(tags)
                if not force and self._stored_meta(conn).get("fingerprint") == fingerprint:
                    self._write_meta(conn, {"ref_state": state})
                    self._fresh_at = state
                    return False
                rebuild(self, conn, fingerprint, tags, force=force)
                if state is None and refs is not None:  # the SQLite file was made now
                    state = self._state(refs)  # (with the refs as read before the rebuild)
                self._write_meta(conn, {"ref_state": state})
        self._fresh_at = state
        return True

    def _write_meta(self, conn: sa.Connection, values: dict[str, str | None]) -> None:
        """Replace these keys of this repository's meta rows (a None value: only delete)."""
        m = self.meta_t
        conn.execute(m.delete().where((m.c.repo == self.repo_id) & m.c.key.in_(list(values))))
        rows = [{"repo": self.repo_id, "key": k, "value": v} for k, v in values.items()
                if v is not None]
        if rows:
            conn.execute(m.insert(), rows)

    def _state(self, refs: str | None = None) -> str | None:
        """The refs' file summary (`GitRepo.ref_state`) with the SQLite file's inode (a
        deleted or replaced index file is read again); None: check with git. A shared
        database (PostgreSQL) is always checked: other hosts rebuild it."""
        path = self._sqlite_path()
        refs = refs if refs is not None else self.repo.ref_state() if path is not None else None
        if path is None or refs is None:
            return None
        try:
            st = path.stat()
        except OSError:
            return None
        return f"{SCHEMA_VERSION}:{refs}:{st.st_ino}"  # a new row layout is a new state

    def _fingerprint(self, tags: list[Tag] | None = None) -> str:
        return f"{SCHEMA_VERSION}:{self.repo.fingerprint(tags)}"

    def _stored_meta(self, conn: sa.Connection | None = None) -> dict[str, str]:
        """This repository's meta rows (fingerprint, ref_state, root); {} with no tables."""
        if conn is not None:
            import sqlalchemy as sa

            rows = conn.execute(sa.text(meta_sql(META_TABLE)), {"repo": self.repo_id})
            return {str(k): str(v) for k, v in rows}
        try:
            return {str(r["key"]): str(r["value"]) for r in self._read(meta_sql(META_TABLE))}
        except Exception as exc:
            if is_missing_table(exc) and not is_corruption(exc):
                return {}  # no tables yet (or no server: refresh says so)
            raise

    def _ensure_tables(self) -> None:
        if self._tables_ready:
            return
        with self.engine.begin() as conn:
            if self.is_postgres:  # concurrent CREATE TABLEs collide in the catalog
                conn.execute(_advisory_xact_lock(_DDL_LOCK))
            self.metadata.create_all(conn)
        self._tables_ready = True

    def versions(self, name: str | None = None, *, kind: str | None = None,
                 manifests: bool = False, latest: bool = False,
                 version: str | None = None) -> list[VersionRow]:
        """Registered versions (with the stages they hold), ordered by name; each row's
        manifest only with `manifests` (a listing needs the ports' units, not manifests);
        only the latest of each module with `latest` (rows are made for those alone);
        only `name`'s `version` with a version (a deferred row: that one is parsed, not
        the module's others)."""
        return self.remembered(("versions", name, kind, manifests, latest, version),
                               lambda: self._versions(name, kind, manifests, latest, version))

    def version_names(self, name: str) -> list[str]:
        """`name`'s version strings, deferred rows included: nothing is parsed (one of
        them may turn out not to be a version of ours when it is: `versions` then lacks
        it)."""
        def work() -> list[str]:
            with self._errors():
                rows = self._read(version_names_sql(VERSIONS_TABLE), name=name)
            return [str(r["version"]) for r in rows]
        return self.remembered(("version_names", name), work)

    def remembered(self, key: tuple[Any, ...], work: Callable[[], T]) -> T:
        """`work()` (reads of this index), remembered under `key` while the refs are
        unchanged (one freshness check for the whole of it), rebuilt once if corrupt."""
        return self._rebuilding_if_corrupt(lambda: self._remembered(key, work))

    def _remembered(self, key: tuple[Any, ...], work: Callable[[], T]) -> T:
        """`work()`, or what it gave last time while the ref state is unchanged (SQLite
        only: its state is read from the refs' files; a shared database is asked)."""
        self.refresh()
        state = self._fresh_at
        if state is None:
            return work()
        if self._memo_at != state or len(self._memo) >= MEMO_ENTRIES:
            self._memo.clear()
            self._memo_at = state
        if key not in self._memo:
            self._memo[key] = work()
            if self._fresh_at != state:  # refreshed meanwhile: not kept
                return self._memo.pop(key)
        return self._memo[key]

    def names(self) -> set[str]:
        """The names of the registered modules (one small query)."""
        def work() -> set[str]:
            with self._errors():
                return {str(r["name"]) for r in self._read(names_sql(VERSIONS_TABLE))}
        return self.remembered(("names",), work)

    def _versions(self, name: str | None, kind: str | None, manifests: bool,
                  latest: bool, version: str | None) -> list[VersionRow]:
        # (Refreshed by `_remembered`.) One statement, so one snapshot: a concurrent
        # refresh is seen whole or not at all.
        if version is not None and name is None:
            raise ValueError("a version is asked of one module: give its name")
        sql = versions_sql(VERSIONS_TABLE, STAGES_TABLE, name=name, kind=kind,
                           manifests=manifests, latest=latest, version=version)
        with self._errors():
            result = self._read(sql, name=name, kind=kind, version=version)
            if any(r["pending"] for r in result):  # parsed at their first read
                complete(self, name, version)
                result = self._read(sql, name=name, kind=kind, version=version)
        found: dict[tuple[str, str], tuple[Any, list[str]]] = {}
        for r in result:  # (ordered by name, version; a row a stage held)
            if r["pending"]:  # (made pending by a rebuild just now: read at the next call)
                continue
            _, held = found.setdefault((r["name"], r["version"]), (r, []))
            if r["stage"] is not None:
                held.append(r["stage"])
        return [version_row(r, held, with_manifest=manifests) for r, held in found.values()]

    def stages(self, name: str | None = None) -> dict[tuple[str, str], str]:
        """{(module, stage): version} for the stages currently assigned."""
        return self.remembered(("stages", name), lambda: self._stages(name))

    def _stages(self, name: str | None) -> dict[tuple[str, str], str]:
        with self._errors():
            rows = self._read(stages_sql(STAGES_TABLE, name=name), name=name)
        return {(r["name"], r["stage"]): r["version"] for r in rows}

    def _rebuilding_if_corrupt(self, work: Callable[[], T]) -> T:
        """Run `work`; a SQLite index file that is not a database (or a damaged one) is
        deleted and rebuilt from git, with one line saying so, and `work` runs again."""
        try:
            return work()
        except Exception as exc:
            path = self._sqlite_path()
            if path is None or not is_database_error(exc) or not is_corruption(exc):
                raise
            orig = getattr(exc, "orig", None)
            reason = str(orig if orig is not None else exc).strip().splitlines()[0]
            log.warning("registry: the index %s was corrupt (%s); rebuilt it from git", path,
                        reason)
            if "engine" in self.__dict__:
                self.engine.dispose()
            self._fresh_at = None
            self._memo.clear()
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            self._tables_ready = False
            return work()

    def _sqlite_path(self) -> Path | None:
        return sqlite_path(self.url, parse=lambda _: self.engine.url)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """A database that cannot be reached is one line naming it, not a driver stack."""
        try:
            yield
        except Exception as exc:
            if not is_operational_error(exc):
                raise
            if self._sqlite_path() is not None and is_corruption(exc):
                raise  # rebuilt by `_rebuilding_if_corrupt`
            orig = getattr(exc, "orig", None)
            lines = str(orig if orig is not None else exc).strip().splitlines()
            reason = lines[0] if lines else type(exc).__name__
            raise RegistryError(
                f"the index database {self.safe_url} cannot be used ({reason}); check that it "
                "is running and that REGISTRY_INDEX_URL is right (unset it for the local "
                "SQLite index)") from exc

