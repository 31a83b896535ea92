"""The store: modules in `modules/<name>/`, versions as git tags, an index beside.

`register` is the one write: validate, fill provenance, commit the module
folder, tag `<name>@v<version>`. It holds a lock in the git directory, so
concurrent registrations queue instead of colliding, and it restores the
manifest if anything fails before the commit (no half-written manifest, no
dangling tag: the tag is the last step).

Example:
    >>> store = Store(find_root())
    >>> store.resolve("gravity@^1").manifest.version
    '1.1.0'
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from registry.errors import ManifestError, NotFound, VersionConflict
from registry.reference import Reference, Version, parse_reference
from registry.spec import MANIFEST_FILE, GitInfo, Manifest, load_manifest, parse_manifest
from registry.store.git import GitRepo
from registry.store.index import Index, IndexRow

__all__ = ["RegisterResult", "Resolved", "Store"]

MODULES_DIR = "modules"
_REGISTER_SUBJECT = re.compile(
    r"^Register (?P<name>[a-z][a-z0-9-]{0,62})@(?P<version>\d+\.\d+\.\d+\S*)$"
)
Bump = Literal["patch", "minor", "major"]


@dataclass(frozen=True)
class Resolved:
    """A reference resolved to one manifest, and where its files are."""

    manifest: Manifest
    repo: GitRepo
    commit: str | None  # None: the working tree
    tag: str | None = None

    @property
    def folder(self) -> str:
        return f"{MODULES_DIR}/{self.manifest.name}"

    @property
    def label(self) -> str:
        return self.tag or f"{self.manifest.name}@workspace"

    def where(self, relpath: str) -> str:
        prefix = f"{self.tag}:" if self.tag else ""
        return f"{prefix}{self.folder}/{relpath}"

    def read(self, relpath: str) -> bytes:
        """A file of the module folder, at the version's commit (or in the working tree)."""
        if self.commit is None:
            path = self.repo.root / self.folder / relpath
            if not path.is_file():
                raise NotFound(f"{self.where(relpath)}: no such file")
            return path.read_bytes()
        return self.repo.read_file(self.commit, f"{self.folder}/{relpath}")


@dataclass(frozen=True)
class RegisterResult:
    manifest: Manifest
    tag: str
    commit: str
    created: bool  # False: the same content was registered already (a no-op)


class Store:
    """Git repository + index: resolves references and registers versions."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.repo = GitRepo(root)
        self._index: Index | None = None

    @property
    def index(self) -> Index:
        if self._index is None:
            self._index = Index.for_repo(self.repo)
        return self._index

    # reading -----------------------------------------------------------------

    def versions(self, name: str | None = None, *, kind: str | None = None) -> list[IndexRow]:
        return self.index.versions(name, kind=kind)

    def workspace_names(self) -> list[str]:
        folder = self.root / MODULES_DIR
        if not folder.is_dir():
            return []
        return sorted(p.parent.name for p in folder.glob(f"*/{MANIFEST_FILE}"))

    def resolve(self, ref: str | Reference) -> Resolved:
        reference = parse_reference(ref) if isinstance(ref, str) else ref
        if reference.is_workspace:
            path = self.root / MODULES_DIR / reference.name / MANIFEST_FILE
            if not path.is_file():
                raise NotFound(f"{path.relative_to(self.root)}: no such module in the working "
                               f"tree; create it with `registry new {reference.name}`")
            return Resolved(load_manifest(path), self.repo, None)
        rows = {row.version: row for row in self.versions(reference.name)}
        if reference.stage is not None:
            stages = self.index.stages(reference.name)
            version = stages.get((reference.name, reference.stage))
            if version is None:
                held = sorted(s for (_, s) in stages) or ["none"]
                raise NotFound(f"`{reference.name}` has no version in stage `{reference.stage}` "
                               f"(stages: {', '.join(held)}); assign one with "
                               f"`registry promote {reference.name}@VERSION {reference.stage}`")
        else:
            if not rows and reference.name in self.workspace_names():
                raise NotFound(f"`{reference.name}` is in the working tree but not registered; "
                               f"use `{reference.name}@workspace`, or `registry register "
                               f"{MODULES_DIR}/{reference.name}`")
            if not rows:
                raise NotFound(f"no module `{reference.name}`; `registry list` shows what exists")
            version = reference.select(rows)
        row = rows[version]
        manifest = Manifest.model_validate(row.manifest)
        return Resolved(manifest, self.repo, row.commit, row.tag)

    # writing -----------------------------------------------------------------

    def register(
        self,
        path: Path,
        *,
        prepare: Callable[[Resolved], Manifest] | None = None,
        bump: Bump | None = None,
    ) -> RegisterResult:
        """Validate the module at `path`, fill provenance, commit it and tag its version.

        `prepare` receives the workspace module and returns the manifest to
        write (the API passes a function that measures metrics and cost).
        With `bump`, content that differs from an existing version is registered
        as the next patch/minor/major version after the latest, instead of
        raising `VersionConflict` (what a retraining pipeline wants).
        """
        from filelock import FileLock

        folder, manifest_path = self._module_folder(path)
        with FileLock(str(self.repo.gitdir / "registry.lock"), timeout=600):
            manifest = load_manifest(manifest_path)
            if manifest.name != folder.name:
                raise ManifestError(f"{manifest_path}: name: `{manifest.name}` differs from its "
                                    f"folder `{folder.name}`; rename one so they agree")
            relfolder = f"{MODULES_DIR}/{manifest.name}"
            tag_name = f"{manifest.name}@v{manifest.version}"
            existing = {t.module + "@" + t.version: t for t in self.repo.version_tags()}
            if manifest.ref in existing:
                commit = existing[manifest.ref].tag.commit
                if self.repo.folder_matches(commit, relfolder):
                    return RegisterResult(manifest, tag_name, commit, created=False)
                latest = max(Version.parse(t.version) for t in existing.values()
                              if t.module == manifest.name)
                if bump is not None:
                    manifest = manifest.model_copy(update={"version": _next(latest, bump)})
                    tag_name = f"{manifest.name}@v{manifest.version}"
            if manifest.ref in existing:
                raise VersionConflict(
                    f"{manifest_path}: version: {manifest.ref} is already registered (tag "
                    f"{tag_name} at {commit[:12]}) with different content; bump `version` "
                    f"(latest is {latest}) to register the change"
                )
            ignored = self.repo.ignored_files(relfolder)
            if ignored:
                raise ManifestError(f"{folder}: {', '.join(ignored)} are ignored by git, so the "
                                    "version would lack them; remove them from .gitignore, or "
                                    "delete them if they are not part of the module")
            original = manifest_path.read_bytes()
            try:
                workspace = Resolved(manifest, self.repo, None)
                filled = prepare(workspace) if prepare else manifest
                filled = self._fill_provenance(filled, relfolder)
                _write_checked(filled, manifest_path)
                commit = self.repo.commit_folder(relfolder, f"Register {manifest.ref}")
            except BaseException:
                manifest_path.write_bytes(original)
                raise
            message = f"Registering artifact {manifest.name} version v{manifest.version}"
            self.repo.create_tag(tag_name, commit, message)
        self.index.refresh()
        return RegisterResult(filled, tag_name, commit, created=True)

    def promote(self, ref: str, stage: str) -> str:
        """Assign `stage` to the version `ref` resolves to (a GTO stage tag); returns the tag."""
        from filelock import FileLock

        resolved = self.resolve(ref)
        if resolved.commit is None:
            raise NotFound("only registered versions can be promoted; register it first")
        name = resolved.manifest.name
        with FileLock(str(self.repo.gitdir / "registry.lock"), timeout=600):
            numbers = [s.number for s in self.repo.stage_tags() if s.module == name]
            tag = f"{name}#{stage}#{max(numbers, default=0) + 1}"
            self.repo.create_tag(tag, resolved.commit, f"Assigning stage {stage} to artifact "
                                 f"{name} version v{resolved.manifest.version}")
        self.index.refresh()
        return tag

    def restore_tags(self) -> list[str]:
        """Recreate version tags missing from a clone, from the commits `register` made.

        Tags are pointers; the history is the record. A clone without tags (a
        CI checkout, a push that left them behind) gets them back: each commit
        titled `Register <name>@<version>` whose manifest has that name and
        version is tagged `<name>@v<version>`, unless that tag exists.
        """
        from filelock import FileLock

        restored = []
        with FileLock(str(self.repo.gitdir / "registry.lock"), timeout=600):
            existing = {tag.name for tag in self.repo.tags()}
            log = self.repo.run("log", "--reverse", "--format=%H%x00%s", "--grep=^Register ")
            for line in log.splitlines():
                commit, subject = line.split("\0", 1)
                match = _REGISTER_SUBJECT.match(subject)
                if match is None or f"{match['name']}@v{match['version']}" in existing:
                    continue
                tag = f"{match['name']}@v{match['version']}"
                path = f"{MODULES_DIR}/{match['name']}/{MANIFEST_FILE}"
                try:
                    blob = self.repo.read_file(commit, path)
                    manifest = parse_manifest(blob.decode(), source=f"{commit[:12]}:{path}")
                except (NotFound, ManifestError):
                    continue
                if manifest.ref != f"{match['name']}@{match['version']}":
                    continue
                self.repo.create_tag(tag, commit, f"Registering artifact {manifest.name} version "
                                     f"v{manifest.version} (restored from history)")
                existing.add(tag)
                restored.append(tag)
        if restored:
            self.index.refresh()
        return restored

    def _module_folder(self, path: Path) -> tuple[Path, Path]:
        path = path.resolve()
        manifest_path = path / MANIFEST_FILE if path.is_dir() else path
        folder = manifest_path.parent
        if folder.parent != (self.root / MODULES_DIR).resolve():
            raise ManifestError(f"{path}: modules live in {self.root / MODULES_DIR}/<name>/; "
                                "move the folder there, then register it")
        return folder, manifest_path

    def _fill_provenance(self, manifest: Manifest, relfolder: str) -> Manifest:
        """Record the commit the module was produced from, unless a producer already did."""
        provenance = manifest.provenance.model_copy()
        if provenance.git is None:
            import git

            repo = git.Repo(self.root)
            head = None if not repo.head.is_valid() else repo.head.commit.hexsha
            provenance.git = GitInfo(commit=head, author=self.repo.author(),
                                     dirty=self.repo.dirty_outside(relfolder))
        if provenance.created is None:
            provenance.created = dt.datetime.now(dt.UTC).replace(microsecond=0)
        return manifest.model_copy(update={"provenance": provenance})


def _next(version: Version, bump: Bump) -> str:
    if bump == "major":
        return f"{version.major + 1}.0.0"
    if bump == "minor":
        return f"{version.major}.{version.minor + 1}.0"
    return f"{version.major}.{version.minor}.{version.patch + 1}"


def _write_checked(manifest: Manifest, path: Path) -> None:
    """Write, then read back through the parser: what lands on disk must validate."""
    from registry.spec import dump_manifest, write_manifest

    parse_manifest(dump_manifest(manifest), source=str(path))
    write_manifest(manifest, path)
