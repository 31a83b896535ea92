"""The index: a derived cache of every registered version, in SQL.

It is rebuilt from git whenever the tags or HEAD change (a fingerprint of the
refs is stored beside it), and only new tags are read. Deleting it loses
nothing. SQLite by default (`.registry/index.sqlite`); any SQLAlchemy URL (e.g.
PostgreSQL) through `REGISTRY_INDEX_URL`.

Example:
    >>> index = Index.for_repo(GitRepo(root))
    >>> [row.version for row in index.versions("gravity")]
    ['1.0.0', '1.1.0']
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.reference import Version
from registry.store.git import GitRepo, StageTag, VersionTag

__all__ = ["Index", "IndexRow"]

SCHEMA_VERSION = "1"


@dataclass(frozen=True)
class IndexRow:
    """One registered version, as the index knows it."""

    name: str
    version: str
    kind: str
    summary: str
    tag: str
    commit: str
    created: str
    manifest: dict[str, Any]
    stages: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "kind": self.kind,
                "summary": self.summary, "tag": self.tag, "commit": self.commit,
                "created": self.created, "stages": list(self.stages)}


class Index:
    """SQL tables `versions`, `stages`, `meta`, refreshed from git on demand."""

    def __init__(self, repo: GitRepo, url: str, *, lock_path: Path) -> None:
        import sqlalchemy as sa

        self.repo = repo
        self.url = url
        self.lock_path = lock_path
        self.engine = sa.create_engine(url)
        if url.startswith("sqlite"):
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        meta = sa.MetaData()
        self.versions_t = sa.Table(
            "versions", meta,
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("version", sa.String(64), primary_key=True),
            sa.Column("kind", sa.String(16), nullable=False),
            sa.Column("summary", sa.Text, nullable=False),
            sa.Column("tag", sa.String(200), nullable=False),
            sa.Column("tag_sha", sa.String(64), nullable=False),
            sa.Column("commit", sa.String(64), nullable=False),
            sa.Column("created", sa.String(40), nullable=False),
            sa.Column("manifest", sa.Text, nullable=False),
        )
        self.stages_t = sa.Table(
            "stages", meta,
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("stage", sa.String(64), primary_key=True),
            sa.Column("version", sa.String(64), nullable=False),
            sa.Column("number", sa.Integer, nullable=False),
        )
        self.meta_t = sa.Table(
            "meta", meta,
            sa.Column("key", sa.String(64), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )
        self.metadata = meta

    @classmethod
    def for_repo(cls, repo: GitRepo) -> Index:
        cache = repo.root / ".registry"
        cache.mkdir(exist_ok=True)
        url = os.environ.get("REGISTRY_INDEX_URL") or f"sqlite:///{cache / 'index.sqlite'}"
        return cls(repo, url, lock_path=cache / "index.lock")

    def refresh(self, *, force: bool = False) -> bool:
        """Bring the cache up to date with git; returns True when anything was rebuilt."""
        from filelock import FileLock

        fingerprint = self.repo.fingerprint()
        if not force and self._stored_fingerprint() == f"{SCHEMA_VERSION}:{fingerprint}":
            return False
        with FileLock(str(self.lock_path), timeout=120):
            fingerprint = self.repo.fingerprint()
            if not force and self._stored_fingerprint() == f"{SCHEMA_VERSION}:{fingerprint}":
                return False
            self._rebuild(fingerprint, force=force)
        return True

    def _stored_fingerprint(self) -> str | None:
        import sqlalchemy as sa

        try:
            with self.engine.connect() as conn:
                return conn.execute(sa.select(self.meta_t.c.value)
                                    .where(self.meta_t.c.key == "fingerprint")).scalar()
        except sa.exc.OperationalError:
            return None
        except sa.exc.ProgrammingError:
            return None

    def _rebuild(self, fingerprint: str, *, force: bool) -> None:
        import sqlalchemy as sa

        from registry.spec import parse_manifest

        self.metadata.create_all(self.engine)
        tags = self.repo.tags()
        version_tags = self.repo.version_tags(tags)
        with self.engine.begin() as conn:
            if force:
                conn.execute(self.versions_t.delete())
            known = {(r.name, r.version): r.tag_sha for r in conn.execute(
                sa.select(self.versions_t.c.name, self.versions_t.c.version,
                          self.versions_t.c.tag_sha))}
            current = {(t.module, t.version): t for t in version_tags}
            gone = [key for key, sha in known.items()
                    if key not in current or current[key].tag.object_sha != sha]
            for name, version in gone:
                conn.execute(self.versions_t.delete().where(
                    (self.versions_t.c.name == name) & (self.versions_t.c.version == version)))
            fresh = [t for key, t in current.items() if key not in known or key in gone]
            blobs = self.repo.read_files(
                [f"{t.tag.commit}:modules/{t.module}/module.yaml" for t in fresh])
            rows = []
            for vtag, blob in zip(fresh, blobs, strict=True):
                if blob is None:
                    continue  # a tag whose commit lacks the manifest is not a version of ours
                try:
                    manifest = parse_manifest(blob.decode(), source=f"{vtag.tag.name}:module.yaml")
                except Exception:
                    continue
                rows.append({"name": vtag.module, "version": vtag.version, "kind": manifest.kind,
                             "summary": manifest.summary, "tag": vtag.tag.name,
                             "tag_sha": vtag.tag.object_sha, "commit": vtag.tag.commit,
                             "created": vtag.tag.created,
                             "manifest": json.dumps(manifest.to_dict())})
            if rows:
                conn.execute(self.versions_t.insert(), rows)
            conn.execute(self.stages_t.delete())
            stage_rows = _current_stages(self.repo.stage_tags(tags), version_tags)
            if stage_rows:
                conn.execute(self.stages_t.insert(), stage_rows)
            conn.execute(self.meta_t.delete().where(self.meta_t.c.key == "fingerprint"))
            conn.execute(self.meta_t.insert(), [{"key": "fingerprint",
                                                 "value": f"{SCHEMA_VERSION}:{fingerprint}"}])

    def versions(self, name: str | None = None, *, kind: str | None = None) -> list[IndexRow]:
        import sqlalchemy as sa

        self.refresh()
        query = sa.select(self.versions_t)
        if name is not None:
            query = query.where(self.versions_t.c.name == name)
        if kind is not None:
            query = query.where(self.versions_t.c.kind == kind)
        stages = self.stages()
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(self.versions_t.c.name)).mappings().all()
        return [_row(r, stages) for r in rows]

    def stages(self, name: str | None = None) -> dict[tuple[str, str], str]:
        """{(module, stage): version} for the stages currently assigned."""
        import sqlalchemy as sa

        query = sa.select(self.stages_t)
        if name is not None:
            query = query.where(self.stages_t.c.name == name)
        with self.engine.connect() as conn:
            return {(r.name, r.stage): r.version for r in conn.execute(query)}


def _row(r: Any, stages: dict[tuple[str, str], str]) -> IndexRow:
    held = tuple(sorted(s for (n, s), v in stages.items() if n == r.name and v == r.version))
    return IndexRow(r.name, r.version, r.kind, r.summary, r.tag, r.commit, r.created,
                    json.loads(r.manifest), held)


def _current_stages(stage_tags: Sequence[StageTag],
                    version_tags: Sequence[VersionTag]) -> list[dict[str, Any]]:
    """GTO's rule: the highest-numbered tag of a stage wins; `!` unassigns."""
    by_commit: dict[tuple[str, str], list[str]] = {}
    for vtag in version_tags:
        by_commit.setdefault((vtag.module, vtag.tag.commit), []).append(vtag.version)
    latest: dict[tuple[str, str], StageTag] = {}
    for stag in stage_tags:
        key = (stag.module, stag.stage)
        if key not in latest or stag.number > latest[key].number:
            latest[key] = stag
    rows = []
    for (module, stage), stag in latest.items():
        versions = by_commit.get((module, stag.tag.commit))
        if stag.unassign or not versions:
            continue
        rows.append({"name": module, "stage": stage, "number": stag.number,
                     "version": max(versions, key=Version.parse)})
    return rows


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
