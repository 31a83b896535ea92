"""The gate: what CI runs on a change to `modules/`.

`run_gate(store, loader, base="origin/main")` (`Registry.check`) checks each
module that differs between `base` and the working tree (or every module with
`all_modules=True`): schema,
units, file hashes, parents, version bump, accuracy reproduced and within
budget, FLOPs and parameters within budget, no regression against the base
version. See `registry.gate.checks` for the tolerances.

Results are cached under `.registry/gate-cache/`, keyed by the content of the
module folder, its base manifest, its parents' tagged commits and the gate's
own version: a module nobody touched costs nothing the second time.

Example:
    >>> report = registry.open(".").check(base="origin/main")
    >>> report.passed, print(report.to_markdown())
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.core.reference import split_part
from registry.errors import NotFound, RegistryError
from registry.gate.checks import CheckResult, ModuleReport, check_module
from registry.store.base import MODULES_DIR
from registry.store.tags import tag_of_ref, version_tag

if TYPE_CHECKING:
    from registry.core.manifest import Manifest
    from registry.loading import Loader
    from registry.store.local import LocalStore

__all__ = ["GateReport", "run_gate", "write_step_summary"]

GATE_VERSION = "4"  # bump when checks change meaning: invalidates the cache
CACHE_DIR = ".registry/gate-cache"
_ICONS = {"pass": "✅ pass", "fail": "❌ fail", "info": "ℹ️ info", "skip": "– skip"}


@dataclass
class GateReport:
    base: str | None
    base_commit: str | None
    modules: list[ModuleReport] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(m.passed for m in self.modules)

    @property
    def failures(self) -> list[tuple[str, CheckResult]]:
        return [(m.name, r) for m in self.modules for r in m.results if r.verdict == "fail"]

    def to_dict(self) -> dict[str, Any]:
        return {"base": self.base, "base_commit": self.base_commit, "passed": self.passed,
                "modules": [m.to_dict() for m in self.modules], "removed": self.removed}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def to_markdown(self) -> str:
        verdict = "✅ passed" if self.passed else f"❌ failed ({len(self.failures)} checks)"
        against = f" against `{self.base}`" if self.base else ""
        lines = [f"## registry check{against}: {verdict}", ""]
        if not self.modules:
            lines.append("No module changed." if not self.removed else "")
        else:
            lines += ["| module | version | check | value | budget | verdict |",
                      "| --- | --- | --- | --- | --- | --- |"]
            for module in self.modules:
                for r in module.results:
                    if r.verdict == "skip" and module.passed:
                        continue  # keep a passing module's table short
                    lines.append(f"| {module.name} | {module.version} | {r.check} | "
                                 f"{_cell(r.value)} | {_cell(r.budget)} | {_ICONS[r.verdict]} |")
        if self.removed:
            lines += ["", "Removed: " + ", ".join(f"`{n}`" for n in self.removed)]
        details = [(n, r) for m in self.modules for r in m.results
                   if r.detail and r.verdict in ("fail", "info") for n in [m.name]]
        if details:
            lines += ["", "### Details", ""]
            lines += [f"- **{n}** `{r.check}` ({r.verdict}): {r.detail}" for n, r in details]
        cached = [m.name for m in self.modules if m.cached]
        if cached:
            lines += ["", f"Cached (unchanged since the last check): {', '.join(cached)}"]
        return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# What a check imports, imported once for all local workers (`run_tasks(preload=)`).
PRELOAD = ("registry.gate.warm", "registry.gate.checks", "registry.loading",
           "registry.composition.module", "registry.cost.measure", "registry.nn.equation")


def run_gate(store: LocalStore, loader: Loader, *, base: str | None = None,
             all_modules: bool = False, use_cache: bool = True, jobs: int = 1,
             cluster: str | None = None) -> GateReport:
    """Check the modules changed since `base` (default `HEAD`), or all of them; the
    modules not answered by the cache are checked as tasks (`registry.jobs`: serial, on
    `jobs` local worker processes, or on the Dask scheduler `cluster`)."""
    from registry.jobs import run_tasks, start_local_workers

    repo = store.repo
    base_commit = None
    base_rev = base or ("HEAD" if repo.head() is not None else None)
    if base_rev is not None:
        base_commit = repo.commit_of(base_rev)
        if base_commit is None:
            raise NotFound(f"--base {base_rev}: no such revision here; fetch it first "
                           f"(`git fetch origin`, with `fetch-depth: 0` in CI) or pass a commit")
    present = store.workspace_names()
    at_base = repo.names_at(base_commit, MODULES_DIR) if base_commit else []
    if all_modules or base_commit is None:
        names = present
    else:
        names = sorted(n for n in present
                       if not repo.folder_matches(base_commit, f"{MODULES_DIR}/{n}"))
    report = GateReport(base_rev, base_commit,
                        removed=sorted(set(at_base) - set(present)))
    found: dict[str, ModuleReport] = {}
    pending: list[tuple[str, str, str | None, bool, str]] = []
    heavy: set[str] = set()
    keys: dict[str, str | None] = {}
    for name in names:
        base_manifest = store.manifest_at(base_commit, name) if base_commit else None
        unchanged = base_commit is not None and repo.folder_matches(
            base_commit, f"{MODULES_DIR}/{name}")
        change = ("added" if base_manifest is None and name not in at_base
                  else "unchanged" if unchanged else "changed")
        keys[name] = key = _cache_key(store, name, base_manifest) if use_cache else None
        cached = _read_cache(store.root, key) if key else None
        if cached is not None:
            cached.change = change
            found[name] = cached
        elif jobs <= 1 and cluster is None:  # here, with this process's loader
            found[name] = check_module(store, loader, name, base=base_manifest,
                                       base_tree_matches=unchanged, change=change)
        else:
            if not pending:  # the first task: the workers' imports overlap the rest here
                start_local_workers(jobs, cluster, PRELOAD)
            pending.append((str(store.root), name, base_commit, unchanged, change))
            if base_manifest is not None and base_manifest.kind == "composite":
                heavy.add(name)  # runs its whole network (an ODE, often) several times
    # the longest first, so that no worker is left with one at the end (as known: the kind
    # at the base; a new module counts as light)
    pending.sort(key=lambda task: task[1] not in heavy)
    outcomes = run_tasks(check_task, pending, jobs=jobs, cluster=cluster, preload=PRELOAD)
    for task, result in zip(pending, outcomes, strict=True):
        name = task[1]
        found[name] = result.value if result.ok and result.value is not None else \
            ModuleReport(name, "?", task[4], [CheckResult(
                "task", "fail", detail=f"the check did not finish: {result.error}")])
    for name in names:
        module_report = found[name]
        key = keys[name]
        if key is not None and module_report.passed and not module_report.cached:
            _write_cache(store.root, key, module_report)  # failures are re-checked every time
        report.modules.append(module_report)
    return report


def check_task(task: tuple[str, str, str | None, bool, str]) -> ModuleReport:
    """One module's checks in a worker process: the repository at `root` opened there once
    for all the tasks the worker runs (its index stays fresh against the refs, as a server's
    does), not once a task."""
    root, name, base_commit, unchanged, change = task
    store, loader = _opened(root)
    base_manifest = store.manifest_at(base_commit, name) if base_commit else None
    return check_module(store, loader, name, base=base_manifest,
                        base_tree_matches=unchanged, change=change)


_OPENED: dict[str, tuple[LocalStore, Loader]] = {}


def _opened(root: str) -> tuple[LocalStore, Loader]:
    if root not in _OPENED:
        from registry.loading import Loader
        from registry.store.local import LocalStore

        store = LocalStore(Path(root))
        _OPENED[root] = (store, Loader(store.resolve))
    return _OPENED[root]


def write_step_summary(markdown: str) -> Path | None:
    """Append to `$GITHUB_STEP_SUMMARY` when GitHub Actions set it."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    with open(target, "a", encoding="utf-8") as handle:
        handle.write(markdown)
    return Path(target)


# cache ---------------------------------------------------------------------------


def _cache_key(store: LocalStore, name: str, base: Manifest | None) -> str | None:
    folder = store.root / MODULES_DIR / name
    digest = hashlib.sha256(f"gate {GATE_VERSION}\n".encode())
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    for path in files:
        digest.update(f"{path.relative_to(folder)}\n".encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    digest.update(b"base\n" + (base.model_dump_json().encode() if base else b"none"))
    # Parents and tags can move under an unchanged folder: key on what they point to.
    tags = {t.name: t.commit for t in store.repo.tags()}
    try:
        from registry.core.manifest import load_manifest

        manifest = load_manifest(folder)
    except RegistryError:
        return None
    pinned = [*manifest.provenance.parents,
              *([manifest.provenance.distilled_from] if manifest.provenance.distilled_from
                else [])]
    for ref in sorted(pinned):
        digest.update(f"{ref}={tags.get(tag_of_ref(split_part(ref)[0]))}\n".encode())
    own = version_tag(manifest.name, manifest.version)
    digest.update(f"own={tags.get(own)}\n".encode())
    return digest.hexdigest()


def _read_cache(root: Path, key: str) -> ModuleReport | None:
    path = root / CACHE_DIR / f"{key}.json"
    if not path.is_file():
        return None
    try:
        return ModuleReport.from_dict(json.loads(path.read_text()))
    except (ValueError, KeyError, TypeError):
        return None  # a damaged entry is a miss, not an error


def _write_cache(root: Path, key: str, report: ModuleReport) -> None:
    folder = root / CACHE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{key}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(report.to_dict()))
    tmp.replace(folder / f"{key}.json")
