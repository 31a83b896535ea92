"""The local store: modules in `modules/<name>/` of a git repository, versions as tags.

Registration is two steps, and the store calls nothing above it: `stage` checks a folder
(name, version, regular files only; large files to DVC, `artifacts`) and says whether the
same content is registered already; the api then measures the module and hands `commit`
the finished manifest. `commit` runs one transaction under a lock in the git directory:
journal, write the manifest, commit the folder, tag `<name>@v<version>`. A failure before
the commit restores the manifest; a crash is settled by the next registration (`recovery`).

Example:
    >>> store = LocalStore(find_root())
    >>> store.resolve("gravity@^1").manifest.version
    '1.1.0'
"""

from __future__ import annotations

import datetime as dt
import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from registry.core.faults import crash_point
from registry.core.manifest import (
    MANIFEST_FILE,
    GitInfo,
    Manifest,
    dump_manifest,
    load_manifest,
    parse_manifest,
    write_manifest,
)
from registry.core.reference import Reference, Version, parse_reference
from registry.errors import (
    ManifestError,
    NotFound,
    RegistryError,
    VersionConflict,
    WorkingTreeDirty,
)
from registry.store import artifacts
from registry.store.base import (
    MODULES_DIR,
    Bump,
    Pending,
    RegisterResult,
    Resolved,
    VersionRow,
)
from registry.store.content import declared, next_version, refuse_link, regular_files_only
from registry.store.content import workspace_names as _workspace_names
from registry.store.git import GitRepo
from registry.store.index import Index
from registry.store.index_select import row_for
from registry.store.recovery import (
    Finding,
    Journal,
    inspect,
    journal_for,
    recover,
    untagged_register_commits,
)
from registry.store.recovery import repair as repair_findings
from registry.store.tags import register_subject, stage_tag, tag_of_ref, version_tag

if TYPE_CHECKING:
    from filelock import FileLock

__all__ = ["LocalStore"]

LOCK_TIMEOUT_S = 600
log = logging.getLogger("registry.store")


class LocalStore:
    """Git repository + index: resolves references and registers versions."""

    measures = False

    def __init__(self, root: Path) -> None:
        self.root = root
        self.location = str(root)
        self.repo = GitRepo(root)
        self._index: Index | None = None

    def __repr__(self) -> str:
        return f"LocalStore({self.location!r})"

    @property
    def index(self) -> Index:
        if self._index is None:
            self._index = Index.for_repo(self.repo)
        return self._index

    def _lock(self, name: str = "registry.lock") -> FileLock:
        from filelock import FileLock

        return FileLock(str(self.repo.gitdir / name), timeout=LOCK_TIMEOUT_S)

    # reading -----------------------------------------------------------------

    def versions(self, name: str | None = None, *, kind: str | None = None,
                 manifests: bool = False) -> list[VersionRow]:
        return self.index.versions(name, kind=kind, manifests=manifests)

    def stages(self, name: str | None = None) -> dict[tuple[str, str], str]:
        return self.index.stages(name)

    def latest(self, kind: str | None = None, *, manifests: bool = False) -> list[VersionRow]:
        return self.index.versions(kind=kind, manifests=manifests, latest=True)

    def unregistered(self) -> list[str]:
        registered = self.index.names()
        return [n for n in self.workspace_names() if n not in registered]

    def workspace_names(self) -> list[str]:
        """Modules in the working tree (registered or not)."""
        return _workspace_names(self.root / MODULES_DIR)

    def resolve(self, ref: str | Reference) -> Resolved:
        reference = parse_reference(ref) if isinstance(ref, str) else ref
        if reference.is_workspace:
            path = self.root / MODULES_DIR / reference.name / MANIFEST_FILE
            if not path.is_file():
                raise NotFound(f"{path.relative_to(self.root)}: no such module in the working "
                               f"tree; create it with `registry new {reference.name}`")
            regular_files_only(path.parent)
            return self._workspace(load_manifest(path))
        row = row_for(self.index, reference, self.workspace_names)
        manifest = Manifest.model_validate(row.manifest)
        folder = f"{MODULES_DIR}/{manifest.name}"
        commit = row.commit

        def read(relpath: str) -> bytes:  # a DVC-tracked file through its pointer
            return artifacts.read_committed(self.repo, self.root, commit, f"{folder}/{relpath}")

        return Resolved(manifest, commit, row.tag, read, stages=row.stages, root=self.root)

    def _workspace(self, manifest: Manifest) -> Resolved:
        folder = self.root / MODULES_DIR / manifest.name

        def read(relpath: str) -> bytes:
            path = folder / relpath
            refuse_link(path)
            if not path.is_file() and path.with_name(f"{path.name}.dvc").is_file():
                return artifacts.read_workspace(self.root, path)
            if not path.is_file():
                raise NotFound(f"{MODULES_DIR}/{manifest.name}/{relpath}: no such file")
            return path.read_bytes()

        return Resolved(manifest, None, None, read, root=self.root)

    def manifest_at(self, commit: str, name: str) -> Manifest | None:
        """The manifest of `name` at `commit`; None when it is missing or broken there."""
        path = f"{MODULES_DIR}/{name}/{MANIFEST_FILE}"
        try:
            return parse_manifest(self.repo.read_file(commit, path).decode(),
                                  source=f"{commit[:12]}:{path}")
        except RegistryError:
            return None

    # writing -----------------------------------------------------------------

    def stage(self, path: Path, *, bump: Bump | None = None) -> Pending:
        """Check the module folder at `path`; with `bump`, changed content of a registered
        version becomes the next patch/minor/major version instead of a `VersionConflict`."""
        folder, manifest_path = self._module_folder(path)
        self.settle()
        regular_files_only(folder)
        manifest = load_manifest(manifest_path)
        if manifest.name != folder.name:
            raise ManifestError(f"{manifest_path}: name: `{manifest.name}` differs from its "
                                f"folder `{folder.name}`; rename one so they agree")
        manifest, done = self._version_for(manifest, manifest_path, bump)
        relfolder = f"{MODULES_DIR}/{manifest.name}"
        if done is None:  # (DVC tracks the large files at the commit, undone if it fails)
            ignored = artifacts.untracked_ignored(self.repo, self.root, folder, relfolder,
                                                  [ref.path for _, ref in manifest.files()])
            if ignored:
                raise ManifestError(f"{folder}: {', '.join(ignored)} are ignored by git, so the "
                                    "version would lack them; remove them from .gitignore, or "
                                    "delete them if they are not part of the module")
        return Pending(folder, manifest, self._workspace(manifest), done)

    def settle(self) -> None:
        """Finish or roll back a registration a dead process left (one stat if none)."""
        if Journal.path(self.repo.gitdir).exists():
            with self._lock():
                for action in recover(self):
                    log.warning("registry: %s", action)

    def commit(self, pending: Pending, manifest: Manifest | None) -> RegisterResult:
        """Commit the measured `manifest` (None: the folder's as staged) and its folder, and
        tag the version, under the lock. A journal in the git directory lets the next
        registration finish or roll back this one if the process dies half way."""
        assert pending.manifest is not None, "a local registration is staged by this store"
        manifest = manifest if manifest is not None else pending.manifest
        manifest_path = pending.folder / MANIFEST_FILE
        relfolder = f"{MODULES_DIR}/{manifest.name}"
        with self._lock():
            for action in recover(self):
                log.warning("registry: %s", action)
            # Another registration may have landed while this one was measured.
            _, done = self._version_for(pending.manifest, manifest_path, None)
            if done is not None:
                return done
            head_before, journal = self.repo.head(), None
            tracking = artifacts.track_large(self.repo, self.root, pending.folder,
                                             [ref.path for _, ref in manifest.files()])
            try:
                artifacts.push(self.root, pending.folder)  # before a tag names them
                original, gitdir = manifest_path.read_bytes(), self.repo.gitdir
                filled = self._fill_provenance(manifest, relfolder)
                parse_manifest(text := dump_manifest(filled), source=str(manifest_path))
                journal = journal_for(self, filled.ref, relfolder, original, text)
                journal.write(gitdir)
                crash_point("journal")
                write_manifest(filled, manifest_path)
                crash_point("manifest")
                commit = self.repo.commit_folder(relfolder, register_subject(filled.ref))
                crash_point("commit")
            except BaseException:
                if self.repo.head() == head_before:  # nothing committed: undo
                    if journal is not None:
                        self.repo.run("reset", "-q", "--", relfolder, check=False)
                        manifest_path.write_bytes(original)
                        Journal.clear(gitdir)
                    if tracking is not None:  # the files DVC took are git's again
                        tracking.undo()
                raise  # (a commit made stays journaled: the next registration tags it)
            tag = version_tag(filled.name, filled.version)
            self.repo.create_tag(tag, commit, f"Registering artifact {filled.name} version "
                                 f"v{filled.version}")
            crash_point("tag")
            Journal.clear(gitdir)
        self.index.refresh()
        return RegisterResult(filled, tag, commit, created=True)

    def _version_for(self, manifest: Manifest, where: Path,
                     bump: Bump | None) -> tuple[Manifest, RegisterResult | None]:
        """The manifest with the version it registers as, or the existing result if same."""
        existing = {t.module + "@" + t.version: t for t in self.repo.version_tags()}
        relfolder = f"{MODULES_DIR}/{manifest.name}"
        if manifest.ref not in existing:
            return manifest, None
        commit = existing[manifest.ref].tag.commit
        if self.repo.folder_matches(commit, relfolder):
            return manifest, RegisterResult(manifest, tag_of_ref(manifest.ref), commit,
                                            created=False)
        registered = self._same_declared(commit, relfolder, manifest)
        if registered is not None:  # e.g. an upload again: it lacks the measured figures
            return registered, RegisterResult(registered, tag_of_ref(manifest.ref), commit,
                                              created=False)
        latest = max(Version.parse(t.version) for t in existing.values()
                     if t.module == manifest.name)
        if bump is not None:
            bumped = manifest.model_copy(update={"version": next_version(latest, bump)})
            if bumped.ref not in existing:
                return bumped, None
        raise VersionConflict(
            f"{where}: version: {manifest.ref} is already registered (tag "
            f"{tag_of_ref(manifest.ref)} at {commit[:12]}) with different content; bump "
            f"`version` (latest is {latest}) to register the change")

    def _same_declared(self, commit: str, relfolder: str,
                       manifest: Manifest) -> Manifest | None:
        """The registered manifest at `commit` when the folder differs from it only in what
        registration measures and records (cost, metrics, git, created); else None."""
        manifest_rel = f"{relfolder}/{MANIFEST_FILE}"
        if not self.repo.folder_matches(commit, relfolder, except_file=manifest_rel):
            return None
        registered = self.manifest_at(commit, manifest.name)
        if registered is None or declared(registered) != declared(manifest):
            return None
        return registered

    @contextmanager
    def swapped_in(self, staging: Path, name: str) -> Iterator[Path]:
        """Put the folder `staging` at `modules/<name>/` for a registration (an upload).

        The folder it replaces must be clean in git; when the registration fails
        before committing, the previous folder is put back.
        """
        relfolder = f"{MODULES_DIR}/{name}"
        target = self.root / relfolder
        backup = staging.parent / f".previous-{name}"
        with self._lock("registry-upload.lock"):
            if target.exists() or target.is_symlink():
                if not target.is_dir() or target.is_symlink():
                    raise VersionConflict(f"{relfolder} exists and is not a folder")
                if self.repo.folder_status(relfolder):
                    raise WorkingTreeDirty(f"{relfolder} has uncommitted changes in the server's "
                                          "repository; commit or discard them there before "
                                          "uploading")
                target.rename(backup)
            head = self.repo.head()
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                staging.rename(target)
                yield target
            finally:
                if self.repo.head() == head:  # nothing committed: put the old folder back
                    shutil.rmtree(target, ignore_errors=True)
                    if backup.exists():
                        backup.rename(target)
                shutil.rmtree(backup, ignore_errors=True)

    def promote(self, ref: str, stage: str) -> str:
        """Assign `stage` to the version `ref` resolves to (a GTO stage tag); returns the tag."""
        resolved = self.resolve(ref)
        if resolved.commit is None:
            raise NotFound("only registered versions can be promoted; register it first")
        name = resolved.manifest.name
        with self._lock():
            numbers = [s.number for s in self.repo.stage_tags() if s.module == name]
            tag = stage_tag(name, stage, max(numbers, default=0) + 1)
            self.repo.create_tag(tag, resolved.commit, f"Assigning stage {stage} to artifact "
                                 f"{name} version v{resolved.manifest.version}")
        self.index.refresh()
        return tag

    def restore_tags(self) -> list[str]:
        """Recreate version tags missing from a clone, from the commits `register` made.

        Tags are pointers; the history is the record. A clone without tags (a
        CI checkout, a push that left them behind) gets them back: each commit
        titled `Register <name>@<version>` whose manifest has that name and
        version is tagged `<name>@v<version>`, unless that tag exists. Where a
        version has several such commits the newest is tagged, so every clone
        picks the same one.
        """
        with self._lock():
            return self.tag_register_commits()

    def tag_register_commits(self) -> list[str]:
        """`restore_tags` for a caller that holds the registry lock."""
        restored = []
        for commit, name, version in untagged_register_commits(self):
            tag = version_tag(name, version)
            self.repo.create_tag(tag, commit, f"Registering artifact {name} version "
                                 f"v{version} (restored from history)")
            restored.append(tag)
        if restored:
            self.index.refresh()
        return restored

    def doctor(self, *, repair: bool = False) -> tuple[list[Finding], list[str]]:
        """What interrupted registrations left (`recovery.inspect`), and with `repair` the
        actions taken to fix it (under the registration and upload locks)."""
        findings = inspect(self)
        if not repair or not findings:
            return findings, []
        with self._lock("registry-upload.lock"), self._lock():
            return findings, repair_findings(self, findings)

    def _module_folder(self, path: Path) -> tuple[Path, Path]:
        path = path.resolve()
        manifest_path = path / MANIFEST_FILE if path.is_dir() else path
        folder = manifest_path.parent
        if folder.parent != (self.root / MODULES_DIR).resolve():
            raise ManifestError(f"{path}: modules live in {self.root / MODULES_DIR}/<name>/; "
                                "move the folder there, then register it")
        return folder, manifest_path

    def git_info(self, relfolder: str) -> GitInfo:
        """What a module produced now from this checkout records: HEAD, author, and whether
        files outside its folder have uncommitted changes."""
        return GitInfo(commit=self.repo.head(), author=self.repo.author(),
                       dirty=self.repo.dirty_outside(relfolder))

    def _fill_provenance(self, manifest: Manifest, relfolder: str) -> Manifest:
        """Record the commit the module was produced from, unless a producer already did."""
        provenance = manifest.provenance.model_copy()
        if provenance.git is None:
            provenance.git = self.git_info(relfolder)
        if provenance.created is None:
            provenance.created = dt.datetime.now(dt.UTC).replace(microsecond=0)
        return manifest.model_copy(update={"provenance": provenance})

