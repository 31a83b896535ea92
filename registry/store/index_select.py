"""The index row a reference names (`name@1.2.0`, `name@^1`, `name#production`, `name`).

The version is chosen from the module's version strings alone, then only its row is read
with its manifest: where the index deferred a module's older versions (a cold rebuild
at scale, `index_rebuild`), a first `show name@1.0.3` parses that one manifest, not the
module's nine others. Where the chosen row turns out not to be a version of ours (its
commit holds no valid manifest: the row is dropped when parsed), or nothing matches,
all the module's rows are read, and the choice or the error is made from them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from registry.errors import NotFound
from registry.store.base import MODULES_DIR, VersionRow

if TYPE_CHECKING:
    from registry.core.reference import Reference
    from registry.store.index import Index

__all__ = ["row_for"]


def row_for(index: Index, reference: Reference,
            workspace_names: Callable[[], list[str]]) -> VersionRow:
    """The registered row `reference` names, with its manifest; `NotFound` (saying what
    exists, or that the module is only in the working tree) where there is none. The
    answer is remembered while the refs are unchanged (a server resolves the same
    references again and again: one freshness check, no version parsing)."""
    key = ("row", reference.name, reference.spec, reference.stage)
    return index.remembered(key, lambda: _row_for(index, reference, workspace_names))


def _row_for(index: Index, reference: Reference,
             workspace_names: Callable[[], list[str]]) -> VersionRow:
    name = reference.name
    if reference.stage is not None:
        stages = index.stages(name)
        version = stages.get((name, reference.stage))
        if version is None:
            held = sorted(s for (_, s) in stages) or ["none"]
            raise NotFound(f"`{name}` has no version in stage `{reference.stage}` "
                           f"(stages: {', '.join(held)}); assign one with "
                           f"`registry promote {name}@VERSION {reference.stage}`")
        found = index.versions(name, manifests=True, version=version)
        if found:
            return found[0]
        raise NotFound(f"`{name}@{reference.stage}` names version {version}, whose commit "
                       "holds no valid manifest; `registry doctor` shows what is out of step")
    try:
        chosen: str | None = reference.select(index.version_names(name))
    except NotFound:
        chosen = None
    found = index.versions(name, manifests=True, version=chosen) if chosen else []
    if found:
        return found[0]
    rows = {row.version: row for row in index.versions(name, manifests=True)}
    if not rows and name in workspace_names():
        raise NotFound(f"`{name}` is in the working tree but not registered; use "
                       f"`{name}@workspace`, or `registry register {MODULES_DIR}/{name}`")
    if not rows:
        raise NotFound(f"no module `{name}`; `registry list` shows what exists")
    return rows[reference.select(rows)]
