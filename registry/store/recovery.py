"""Recovering what an interrupted registration left, and finding what older ones left.

A registration writes a journal (`.git/registry-journal.json`) under the
registry lock before it touches anything, and deletes it after the tag. A
journal found by the next holder of the lock therefore belongs to a dead
registration (the lock dies with its process), and `recover` settles it:

- a git lock (`.git/index.lock`) that the dead registration's git left is
  removed once it is older than `LIVE_GIT_LOCK_S` (a live git holds it for
  milliseconds);
- temporary manifest files (`.module.*.yaml`) in its folder are deleted;
- if the `Register <name>@<version>` commit was made, it is finished: tagged,
  so the retry finds the version and does not measure or commit again;
- otherwise it is rolled back: the index is unstaged and the manifest the dead
  process wrote is replaced by the one it found.

`inspect` (behind `registry doctor`) looks for the same debris across the whole
repository: untagged `Register` commits, a journal, stale locks, temporary
files and interrupted uploads. `repair` fixes what `inspect` found.

Example:
    >>> [f.what for f in inspect(store)]
    ['untagged-register-commit']
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from registry.core.integrity import sha256_bytes
from registry.core.manifest import MANIFEST_FILE
from registry.core.manifest_file import TEMP_GLOB
from registry.store.base import MODULES_DIR
from registry.store.tags import parse_register_subject, register_subject, version_tag

if TYPE_CHECKING:
    from registry.store.local import LocalStore

__all__ = ["JOURNAL_FILE", "Finding", "Journal", "inspect", "recover", "repair"]

JOURNAL_FILE = "registry-journal.json"
LIVE_GIT_LOCK_S = 2.0  # a git lock younger than this may belong to a running git
STALE_GIT_LOCK_S = 600.0  # without a journal, `doctor` calls a lock this old stale
STALE_TEMP_S = 60.0  # a temporary file this old belongs to no running write


@dataclass(frozen=True)
class Journal:
    """What a registration in progress is doing (so that its successor can settle it)."""

    ref: str
    folder: str  # `modules/<name>` relative to the repository root
    head_before: str | None
    original_sha256: str  # the manifest the registration found
    original: str
    written_sha256: str  # the manifest it is about to write
    started: float
    pid: int

    @staticmethod
    def path(gitdir: Path) -> Path:
        return gitdir / JOURNAL_FILE

    def write(self, gitdir: Path) -> None:
        tmp = gitdir / f".{JOURNAL_FILE}.{os.getpid()}"
        tmp.write_text(json.dumps(self.__dict__), encoding="utf-8")
        os.replace(tmp, self.path(gitdir))

    @classmethod
    def read(cls, gitdir: Path) -> Journal | None:
        try:
            data = json.loads(cls.path(gitdir).read_text(encoding="utf-8"))
            return cls(**data)
        except FileNotFoundError:
            return None
        except (ValueError, TypeError):  # cut short by a crash while writing: unusable
            return None

    @classmethod
    def clear(cls, gitdir: Path) -> None:
        cls.path(gitdir).unlink(missing_ok=True)


@dataclass(frozen=True)
class Finding:
    """One thing an interrupted registration left, and what `repair` does about it."""

    what: str  # a stable kind: untagged-register-commit, journal, git-lock, temp-file, upload
    detail: str
    repair: str

    def to_dict(self) -> dict[str, str]:
        return {"what": self.what, "detail": self.detail, "repair": self.repair}


def recover(store: LocalStore) -> list[str]:
    """Settle the registration a dead process left (call under the registry lock).

    Returns one line per action taken; empty when there was no journal.
    """
    gitdir = store.repo.gitdir
    journal_path = Journal.path(gitdir)
    if not journal_path.exists():
        return []
    journal = Journal.read(gitdir)
    actions = _clear_git_lock(gitdir, since=journal.started if journal else 0.0)
    if journal is None:
        Journal.clear(gitdir)
        return [*actions, "removed an unreadable registration journal"]
    actions += _remove_temp_files(store.root / journal.folder, min_age_s=0.0)
    name, _, version = journal.ref.partition("@")
    tag = version_tag(name, version)
    commit = _register_commit(store, journal)
    if commit is not None:
        if not store.repo.commit_of(f"refs/tags/{tag}"):
            store.repo.create_tag(tag, commit, f"Registering artifact {name} version "
                                  f"v{version} (finished after an interruption)")
            actions.append(f"finished the interrupted registration of {journal.ref}: tagged "
                           f"{tag} at {commit[:12]}")
    else:
        if not store.repo.succeeds("diff", "--cached", "--quiet", "--", journal.folder):
            store.repo.run("reset", "-q", "--", journal.folder)
        manifest = store.root / journal.folder / MANIFEST_FILE
        if manifest.is_file() and sha256_bytes(manifest.read_bytes()) == journal.written_sha256:
            manifest.write_text(journal.original, encoding="utf-8")
        actions.append(f"rolled back the interrupted registration of {journal.ref} (nothing "
                       "was committed)")
    Journal.clear(gitdir)
    return actions


def _register_commit(store: LocalStore, journal: Journal) -> str | None:
    """The `Register` commit the journal's registration made, if it got that far."""
    span = f"{journal.head_before}..HEAD" if journal.head_before else "HEAD"
    subject = register_subject(journal.ref)
    log = store.repo.run("log", "--format=%H%x00%s", span, "--", journal.folder, check=False)
    for line in log.splitlines():
        commit, _, title = line.partition("\0")
        if title == subject:
            return commit
    return None


def _clear_git_lock(gitdir: Path, *, since: float) -> list[str]:
    """Remove `index.lock` when a dead registration's git left it."""
    lock = gitdir / "index.lock"
    try:
        mtime = lock.stat().st_mtime
    except FileNotFoundError:
        return []
    if mtime < since - 1.0:
        return []  # older than the dead registration: not its lock
    wait = LIVE_GIT_LOCK_S - (time.time() - mtime)
    if wait > 0:
        time.sleep(wait)  # a live git would be done by then
        if not lock.exists():
            return []
    lock.unlink(missing_ok=True)
    return [f"removed {lock}, left by the git of an interrupted registration"]


def _remove_temp_files(folder: Path, *, min_age_s: float) -> list[str]:
    removed = []
    now = time.time()
    for path in sorted(folder.glob(TEMP_GLOB)) if folder.is_dir() else []:
        try:
            if now - path.lstat().st_mtime >= min_age_s:
                path.unlink()
                removed.append(f"removed the temporary file {path}")
        except FileNotFoundError:
            continue
    return removed


# ---- doctor ------------------------------------------------------------------


def inspect(store: LocalStore) -> list[Finding]:
    """Everything interrupted registrations left in the repository (reads only)."""
    gitdir = store.repo.gitdir
    found: list[Finding] = []
    if Journal.path(gitdir).exists():
        journal = Journal.read(gitdir)
        detail = (f"a registration of {journal.ref} (pid {journal.pid}) did not finish"
                  if journal else "an unreadable registration journal")
        found.append(Finding("journal", detail, "finish it if it committed, else roll it back"))
    lock = gitdir / "index.lock"
    if lock.exists():
        age = time.time() - lock.stat().st_mtime
        stale = age >= STALE_GIT_LOCK_S or Journal.path(gitdir).exists()
        found.append(Finding("git-lock", f"{lock} exists ({age:.0f} s old)",
                             "remove it" if stale else "none: a git may be running; remove it "
                             "by hand if no git runs"))
    modules = store.root / MODULES_DIR
    for path in sorted(modules.glob(f"*/{TEMP_GLOB}")) if modules.is_dir() else []:
        found.append(Finding("temp-file", str(path.relative_to(store.root)), "delete it"))
    uploads = store.root / ".registry" / "uploads"
    for path in sorted(uploads.iterdir()) if uploads.is_dir() else []:
        found.append(Finding("upload", f"{path.relative_to(store.root)}: an upload's staging "
                             "folder", "delete it"))
    for commit, name, version in untagged_register_commits(store):
        found.append(Finding("untagged-register-commit",
                             f"{commit[:12]} `Register {name}@{version}` has no tag",
                             f"tag it {version_tag(name, version)}"))
    return found


def untagged_register_commits(store: LocalStore) -> list[tuple[str, str, str]]:
    """`(commit, name, version)` of Register commits whose version has no tag: for each
    version the newest such commit (the one `restore_tags` picks in every clone)."""
    existing = {t.name for t in store.repo.tags()}
    newest: dict[tuple[str, str], str] = {}
    for commit, subject in store.repo.subjects("^Register "):  # oldest first
        parsed = parse_register_subject(subject)
        if parsed is not None and version_tag(*parsed) not in existing:
            newest[parsed] = commit
    result = []
    for (name, version), commit in newest.items():
        manifest = store.manifest_at(commit, name)
        if manifest is not None and manifest.ref == f"{name}@{version}":
            result.append((commit, name, version))
    return result


def repair(store: LocalStore, findings: list[Finding]) -> list[str]:
    """Fix what `inspect` found (under the registry lock); one line per action."""
    actions: list[str] = []
    gitdir = store.repo.gitdir
    kinds = {f.what for f in findings}
    if "journal" in kinds:
        actions += recover(store)
    lock = gitdir / "index.lock"
    if ("git-lock" in kinds and lock.exists()
            and time.time() - lock.stat().st_mtime >= STALE_GIT_LOCK_S):
        lock.unlink(missing_ok=True)
        actions.append(f"removed the stale {lock}")
    modules = store.root / MODULES_DIR
    for folder in sorted(modules.iterdir()) if modules.is_dir() else []:
        actions += _remove_temp_files(folder, min_age_s=STALE_TEMP_S)
    uploads = store.root / ".registry" / "uploads"
    for path in sorted(uploads.iterdir()) if uploads.is_dir() else []:
        if time.time() - path.lstat().st_mtime >= STALE_TEMP_S:
            _remove(path)
            actions.append(f"removed the upload staging folder {path}")
    if "untagged-register-commit" in kinds:
        actions += [f"tagged {tag}" for tag in store.tag_register_commits()]
    return actions


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def journal_for(store: LocalStore, ref: str, folder: str, original: bytes,
                written: str) -> Journal:
    return Journal(ref=ref, folder=folder, head_before=store.repo.head(),
                   original_sha256=sha256_bytes(original),
                   original=original.decode("utf-8", errors="replace"),
                   written_sha256=sha256_bytes(written.encode()), started=time.time(),
                   pid=os.getpid())
