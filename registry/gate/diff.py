"""`registry diff BASE [HEAD]`: what changed in `modules/` between two revisions.

Reads the manifests at each revision straight from git (HEAD omitted: the
working tree), so nothing is built or measured: modules added, removed,
bumped (version changed) or changed in place, with their recorded accuracy
and cost side by side.

Example:
    >>> changes = registry.open(".").diff("origin/main")
    >>> [(c.name, c.change) for c in changes]
    [('drag-eq', 'added'), ('gravity', 'bumped')]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from registry.errors import NotFound, RegistryError

if TYPE_CHECKING:
    from registry.core.manifest import Manifest
    from registry.store.local import LocalStore

__all__ = ["ModuleChange", "diff_revisions", "to_markdown"]

FIGURES = ("r2", "nrmse", "flops_per_sample", "params", "energy_j_per_sample")


@dataclass(frozen=True)
class ModuleChange:
    name: str
    change: str  # added | removed | bumped | changed | unchanged
    old_version: str | None
    new_version: str | None
    old: dict[str, float | None] = field(default_factory=dict)
    new: dict[str, float | None] = field(default_factory=dict)

    def delta(self, key: str) -> float | None:
        a, b = self.old.get(key), self.new.get(key)
        return None if a is None or b is None else b - a

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "change": self.change, "old_version": self.old_version,
                "new_version": self.new_version, "old": self.old, "new": self.new,
                "delta": {k: self.delta(k) for k in FIGURES}}


def figures(manifest: Manifest) -> dict[str, float | None]:
    metrics = manifest.evaluation.metrics if manifest.evaluation else {}
    energy = manifest.cost.energy_j_per_sample
    return {"r2": metrics.get("r2"), "nrmse": metrics.get("nrmse"),
            "flops_per_sample": manifest.cost.flops_per_sample, "params": manifest.cost.params,
            "energy_j_per_sample": energy.value if energy else None}


def diff_revisions(store: LocalStore, base: str, head: str | None = None, *,
                   include_unchanged: bool = False) -> list[ModuleChange]:
    """Module changes from `base` to `head` (a revision, or None for the working tree)."""
    old = _manifests(store, _commit(store, base))
    new = _manifests(store, _commit(store, head) if head else None)
    changes = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name), new.get(name)
        if a is None and b is not None:
            changes.append(ModuleChange(name, "added", None, b[0].version, {}, figures(b[0])))
        elif b is None and a is not None:
            changes.append(ModuleChange(name, "removed", a[0].version, None, figures(a[0]), {}))
        elif a is not None and b is not None:
            if a[1] == b[1]:
                if not include_unchanged:
                    continue
                kind = "unchanged"
            else:
                kind = "bumped" if a[0].version != b[0].version else "changed"
            changes.append(ModuleChange(name, kind, a[0].version, b[0].version,
                                        figures(a[0]), figures(b[0])))
    return changes


def _commit(store: LocalStore, rev: str) -> str:
    out = store.repo.commit_of(rev)
    if not out:
        raise NotFound(f"{rev}: no such revision here; fetch it first (`git fetch origin`) or "
                       "pass a commit")
    return out


def _manifests(store: LocalStore, commit: str | None) -> dict[str, tuple[Manifest, str]]:
    """name → (manifest, fingerprint of the module folder) at `commit` or in the worktree."""
    import hashlib

    from registry.core.manifest import load_manifest

    repo = store.repo
    out: dict[str, tuple[Manifest, str]] = {}
    if commit is None:
        for name in store.workspace_names():
            folder = store.root / "modules" / name
            digest = hashlib.sha256()
            for path in sorted(p for p in folder.rglob("*") if p.is_file()):
                digest.update(f"{path.relative_to(folder)}\n".encode())
                digest.update(_blob_id(path.read_bytes()).encode())
            try:
                out[name] = (load_manifest(folder), digest.hexdigest())
            except RegistryError:
                continue
        return out
    folders: dict[str, list[tuple[str, str]]] = {}
    for relpath, blob in repo.tree(commit, "modules"):
        parts = relpath.split("/")
        if len(parts) >= 3:
            folders.setdefault(parts[1], []).append(("/".join(parts[2:]), blob))
    for name, files in folders.items():
        digest = hashlib.sha256()
        for rel, blob in sorted(files):
            digest.update(f"{rel}\n".encode())
            digest.update(blob.encode())
        manifest = store.manifest_at(commit, name)
        if manifest is not None:
            out[name] = (manifest, digest.hexdigest())
    return out


def _blob_id(data: bytes) -> str:
    """Git's blob id of `data`, so working-tree files compare with committed ones."""
    import hashlib

    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


def _fmt(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def _fmt_delta(change: ModuleChange, key: str) -> str:
    d = change.delta(key)
    if d is None or d == 0:
        return "" if d is None else "±0"
    old = change.old.get(key)
    rel = f", {d / old:+.1%}" if old else ""
    return f"{d:+.4g}{rel}"


def to_markdown(changes: list[ModuleChange], base: str, head: str | None) -> str:
    title = f"## registry diff {base}..{head or 'working tree'}"
    if not changes:
        return f"{title}\n\nNo module changed.\n"
    lines = [title, "", "| module | change | version | r2 | nrmse | FLOPs/sample | params | "
             "energy J/sample |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for c in changes:
        version = (f"{c.old_version} → {c.new_version}" if c.change in ("bumped", "changed")
                   else c.new_version or c.old_version or "")
        cells = []
        for key in FIGURES:
            now = c.new.get(key) if c.change != "removed" else c.old.get(key)
            delta = _fmt_delta(c, key)
            cells.append(_fmt(now) + (f" ({delta})" if delta else ""))
        lines.append(f"| {c.name} | {c.change} | {version} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
