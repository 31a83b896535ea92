"""Writing the index: a rebuild from the tags, and the completion of deferred rows.

A rebuild that meets many new versions at once (a fresh clone, a deleted index: from
`LAZY_MIN` on, on a SQLite index) parses only what a listing shows: each module's latest
version. The other versions get rows from the tag listing alone (name, version, tag,
commit, date) marked `pending`; their manifests are parsed at the first read that asks
for them (`complete`: a module's versions, every version, a kind among all versions),
under the same lock as a rebuild. A listing of 1,000 modules × 10 versions then parses
1,000 manifests, not 10,000.

The latest flag stays exact: for each module the versions are tried from the highest
down (`latest_key`), parsing as it goes, until one is a valid manifest; a version whose
commit holds no valid manifest is not a version of ours, and is dropped whichever way it
is met (at the rebuild or when completed). A shared database (PostgreSQL, read by other
hosts from other clones) is always built whole.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.store.base import MODULES_DIR, latest_key
from registry.store.index_parse import Parsers, Row
from registry.store.index_reads import pending_sql
from registry.store.index_rows import current_stages, latest_of
from registry.store.index_schema import VERSIONS_TABLE

if TYPE_CHECKING:
    import sqlalchemy as sa

    from registry.store.git import GitRepo, Tag
    from registry.store.index import Index

__all__ = ["LAZY_MIN", "complete", "rebuild"]

LAZY_MIN = 1000  # new versions from which a SQLite rebuild parses only each module's latest

Key = tuple[str, str]  # (module, version)


def _parse(repo: GitRepo, items: list[tuple[Key, str, str]]) -> list[Row | None]:
    """Parse `(key, tag name, commit)` versions' manifests (workers for many)."""
    from registry.core.manifest import MANIFEST_FILE

    parsers = Parsers(len(items))
    try:
        return parsers.parse_blobs(repo, [
            (f"{tag}:module.yaml", f"{commit}:{MODULES_DIR}/{key[0]}/{MANIFEST_FILE}")
            for key, tag, commit in items])
    finally:
        parsers.close()  # (a failure above leaves no worker waiting)


def _columns(row: Row) -> dict[str, Any]:
    return {"kind": row[0], "summary": row[1], "manifest": row[2], "ports": row[3],
            "pending": 0}


def rebuild(ix: Index, conn: sa.Connection, fingerprint: str, tags: list[Tag], *,
            force: bool) -> None:
    """Bring this repository's rows to the tags (only new or moved tags are read)."""
    import sqlalchemy as sa

    v, s, m = ix.versions_t, ix.stages_t, ix.meta_t
    mine = ix.repo_id
    version_tags = ix.repo.version_tags(tags)
    if force:
        conn.execute(v.delete().where(v.c.repo == mine))
    known = {(r.name, r.version): (r.tag_sha, bool(r.pending)) for r in conn.execute(
        sa.select(v.c.name, v.c.version, v.c.tag_sha, v.c.pending).where(v.c.repo == mine))}
    current = {(t.module, t.version): t for t in version_tags}
    gone = [key for key, (sha, _) in known.items()
            if key not in current or current[key].tag.object_sha != sha]
    for name, version in gone:
        conn.execute(v.delete().where(
            (v.c.repo == mine) & (v.c.name == name) & (v.c.version == version)))
    dropped = set(gone)
    fresh = [t for key, t in current.items() if key not in known or key in dropped]
    pending = {key: p for key, (_, p) in known.items() if key not in dropped}
    touched = {n for n, _ in gone} | {t.module for t in fresh}
    lazy = ix._sqlite_path() is not None and len(fresh) >= LAZY_MIN
    parsed: dict[Key, Row | None] = {}

    def parse(keys: list[Key]) -> None:
        found = _parse(ix.repo, [(k, current[k].tag.name, current[k].tag.commit) for k in keys])
        parsed.update(zip(keys, found, strict=True))

    if not lazy:
        parse([(t.module, t.version) for t in fresh])
    # Each touched module's latest: the highest version that is a valid manifest, parsed
    # from the top down (one round unless a top version turns out not to be ours).
    candidates: dict[str, list[str]] = {}
    for name, version in [*pending, *((t.module, t.version) for t in fresh)]:
        if name in touched:
            candidates.setdefault(name, []).append(version)
    for versions in candidates.values():
        versions.sort(key=latest_key, reverse=True)
    while need := _unparsed_tops(candidates, parsed, pending):
        parse(need)
    invalid = {key for key, row in parsed.items() if row is None}
    rows: list[dict[str, Any]] = []
    for vtag in fresh:
        key = (vtag.module, vtag.version)
        if key in invalid:
            continue
        found = parsed.get(key)
        rows.append({"repo": mine, "name": vtag.module, "version": vtag.version,
                     "tag": vtag.tag.name, "tag_sha": vtag.tag.object_sha,
                     "commit": vtag.tag.commit, "created": vtag.tag.created,
                     **(_columns(found) if found is not None else
                        {"kind": None, "summary": None, "manifest": None, "ports": None,
                         "pending": 1})})
    completed = {key: row for key, row in parsed.items() if pending.get(key)}
    for sql, params in _completions(mine, completed):
        conn.execute(sa.text(sql), params)
    best = latest_of([k for k in pending if k[0] in touched and k not in invalid]
                     + [(r["name"], r["version"]) for r in rows])
    for row in rows:
        row["latest"] = int(best.get(row["name"]) == row["version"])
    if rows:
        conn.execute(v.insert(), rows)
    moved = [{"n": n, "best": best.get(n, "")} for n in sorted(touched & {n for n, _ in pending})]
    if moved:  # the flag moves among a module's older rows (one UPDATE a module)
        conn.execute(sa.text(f"UPDATE {VERSIONS_TABLE} SET latest = CASE WHEN version = "
                             ":best THEN 1 ELSE 0 END WHERE repo = :r AND name = :n"),
                     [{**x, "r": mine} for x in moved])
    conn.execute(s.delete().where(s.c.repo == mine))
    stage_rows = current_stages(ix.repo.stage_tags(tags), version_tags)
    if stage_rows:
        conn.execute(s.insert(), [{"repo": mine, **row} for row in stage_rows])
    conn.execute(m.delete().where((m.c.repo == mine) & m.c.key.in_(["fingerprint", "root"])))
    conn.execute(m.insert(), [{"repo": mine, "key": "fingerprint", "value": fingerprint},
                              {"repo": mine, "key": "root", "value": ix.key}])


def _unparsed_tops(candidates: dict[str, list[str]], parsed: dict[Key, Row | None],
                   pending: dict[Key, bool]) -> list[Key]:
    """The versions to parse next: for each module, its highest version not known to be
    invalid, where that one is not parsed yet."""
    need = []
    for name, versions in candidates.items():
        for version in versions:
            key = (name, version)
            if key in parsed:
                if parsed[key] is None:
                    continue  # not ours: the next one down
                break
            if key in pending and not pending[key]:
                break  # parsed at an earlier rebuild
            need.append(key)
            break
    return need


_UPDATE = (f"UPDATE {VERSIONS_TABLE} SET kind = :kind, summary = :summary, manifest = "
           ":manifest, ports = :ports, pending = 0 WHERE repo = :repo AND name = :name AND "
           "version = :version AND pending = 1")
_DELETE = f"DELETE FROM {VERSIONS_TABLE} WHERE repo = :repo AND name = :name AND version = :version"


def _completions(repo_id: str,
                 done: dict[Key, Row | None]) -> list[tuple[str, list[dict[str, Any]]]]:
    """The statements that write parsed manifests into their pending rows, with their
    parameters; a row whose commit holds no valid manifest is deleted (it never held the
    latest flag: only parsed rows are flagged)."""
    updates, deletes = [], []
    for (name, version), row in done.items():
        key = {"repo": repo_id, "name": name, "version": version}
        if row is None:
            deletes.append(key)
        else:
            updates.append({**key, **_columns(row)})
    return [(sql, params) for sql, params in ((_UPDATE, updates), (_DELETE, deletes)) if params]


def complete(ix: Index, name: str | None, version: str | None = None) -> None:
    """Parse the pending rows of `name` (every module's with None; only its `version`
    with a version) and store them, under the index's lock (another process may have
    done it meanwhile: only what is still pending is read). SQLite only (a shared
    database is built whole), through the standard library: a first `show` after a cold
    listing loads no SQLAlchemy."""
    import sqlite3

    from filelock import FileLock

    from registry.store.index_reads import BUSY_TIMEOUT_MS

    path = ix._sqlite_path()
    if path is None:
        return
    with FileLock(str(ix.lock_path), timeout=120):
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute("BEGIN IMMEDIATE")
            rows = conn.execute(pending_sql(VERSIONS_TABLE, name=name, version=version),
                                {"repo": ix.repo_id, "name": name, "version": version}
                                ).fetchall()
            found = _parse(ix.repo, [((r["name"], r["version"]), r["tag"], r["commit"])
                                     for r in rows]) if rows else []
            done = {(r["name"], r["version"]): row for r, row in zip(rows, found, strict=True)}
            for sql, params in _completions(ix.repo_id, done):
                conn.executemany(sql, params)
            conn.execute("COMMIT")
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()
