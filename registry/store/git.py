"""The one git adapter: every git call of the registry goes through `GitRepo` (GitPython).

Versions are annotated tags `<name>@v<semver>`; stage assignments are GTO's `<name>#<stage>#<n>`
tags on the version's commit (`registry.store.tags` formats and parses both), so `gto show`
reads the same registry. Blobs are read through GitPython's `git cat-file --batch`.

Example:
    >>> repo = GitRepo(Path("."))
    >>> [t.name for t in repo.tags()][:2]
    ['drag@v1.0.0', 'gravity@v1.0.0']
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from registry.core.faults import crash_point
from registry.core.manifest_file import TEMP_GLOB
from registry.errors import NotFound, RegistryError
from registry.store.tags import parse_stage_tag, parse_version_tag

if TYPE_CHECKING:
    import git

__all__ = ["GitRepo", "StageTag", "Tag", "VersionTag", "find_root"]

BULK_READ = 64  # from this many blobs on, `read_files` streams them through a new process

_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
_FALLBACK_IDENTITY = {"GIT_AUTHOR_NAME": "registry", "GIT_AUTHOR_EMAIL": "registry@localhost",
                      "GIT_COMMITTER_NAME": "registry", "GIT_COMMITTER_EMAIL": "registry@localhost"}


@dataclass(frozen=True)
class Tag:
    name: str
    object_sha: str  # the tag object (annotated) or the commit (lightweight)
    commit: str
    created: str  # ISO date of the tag (or commit)


@dataclass(frozen=True)
class VersionTag:
    tag: Tag
    module: str
    version: str


@dataclass(frozen=True)
class StageTag:
    tag: Tag
    module: str
    stage: str
    number: int
    unassign: bool


class GitRepo:
    """The repository at `root`, through GitPython's command wrapper and object reader."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._repo: git.Repo | None = None
        self._cat_lock = threading.Lock()  # the cat-file process serves one read at a time
        self._git_dirs: tuple[Path, Path] | None = None
        # folder -> (its stat, its subfolders): unchanged stat, unchanged children
        self._tag_folders: dict[str, tuple[str, list[str]]] = {}

    @property
    def _git(self) -> git.Git:
        if self._repo is None:
            import git

            self._repo = git.Repo(self.root)
        return self._repo.git

    def run(self, *args: str, check: bool = True, stdin: bytes | None = None,
            env: dict[str, str] | None = None) -> str:
        """`git <args>` in the repository; its stdout (a failure raises unless `check=False`)."""
        import tempfile

        import git

        with tempfile.TemporaryFile() as istream:
            if stdin is not None:
                istream.write(stdin)
                istream.seek(0)
            try:
                status, out, err = self._git.execute(
                    ["git", *args], istream=istream if stdin is not None else None,
                    with_extended_output=True, with_exceptions=False, env=_ENV | (env or {}),
                    strip_newline_in_stdout=False)
            except git.GitCommandNotFound as exc:  # pragma: no cover - git is a dependency
                raise RegistryError(f"git is not installed ({exc}); install git") from None
        if check and status != 0:
            raise RegistryError(f"git {' '.join(args[:3])} failed in {self.root}: "
                                f"{str(err).strip()}")
        return str(out)

    def succeeds(self, *args: str) -> bool:
        """Whether `git <args>` exits 0 (for `--quiet` questions)."""
        status, _, _ = self._git.execute(["git", *args], with_extended_output=True,
                                         with_exceptions=False, env=_ENV)
        return status == 0

    @property
    def gitdir(self) -> Path:
        return Path(self.run("rev-parse", "--absolute-git-dir").strip())

    def head(self) -> str | None:
        return self.commit_of("HEAD")

    def commit_of(self, rev: str) -> str | None:
        """The commit `rev` names, or None when there is none."""
        out = self.run("rev-parse", "--verify", "-q", f"{rev}^{{commit}}", check=False).strip()
        return out or None

    def tags(self) -> list[Tag]:
        fmt = "%(refname:strip=2)%00%(objectname)%00%(*objectname)%00%(creatordate:iso-strict)"
        out = self.run("for-each-ref", f"--format={fmt}", "refs/tags")
        tags = []
        for line in out.splitlines():
            name, obj, peeled, created = line.split("\0")
            tags.append(Tag(name, obj, peeled or obj, created))
        return tags

    def ref_state(self) -> str | None:
        """A summary of what the refs are stored in, read without a git process: the file
        stats (inode, size, mtime) of HEAD, the branch it names, packed-refs and every
        folder under refs/tags. Git writes a ref by renaming a lock file over it, which
        changes the ref's inode and its folder's mtime, so a commit, a tag, a `git fetch`
        or a `pack-refs` changes the summary. None where the files cannot be read, or
        where one changed within `RACY_NS` (file times are coarse: a second change in
        the same tick would not show; git's "racy" rule)."""
        import hashlib
        import os

        try:
            gitdir, common = (str(d) for d in self._dirs())  # strings: this runs per read
            head = os.path.join(gitdir, "HEAD")
            stats = [_stat(head), _stat(os.path.join(common, "packed-refs"))]
            with open(head, encoding="utf-8", errors="replace") as file:
                text = file.read()
            if text.startswith("ref: "):
                stats.append(_stat(os.path.join(common, text[5:].strip())))
            stats.extend(self._tag_folder_stats(os.path.join(common, "refs", "tags")))
        except (OSError, RegistryError):
            return None
        if any(_racy(stat) for stat in stats):
            return None
        return hashlib.sha256("\n".join(stats).encode()).hexdigest()

    def _tag_folder_stats(self, top: str) -> list[str]:
        """The stats of `top` and every folder below it; a folder whose stat is as last
        time has the same entries, so its subfolders are not listed again (10k loose tags:
        a listing is 9 ms, a stat 2 µs)."""
        import os

        out: list[str] = []
        pending = [top]
        while pending:
            folder = pending.pop()
            stat = _stat(folder)
            out.append(stat)
            known = self._tag_folders.get(folder)
            if known is not None and known[0] == stat:
                subfolders = known[1]
            else:
                try:
                    with os.scandir(folder) as entries:
                        subfolders = sorted(e.path for e in entries
                                            if e.is_dir(follow_symlinks=False))
                except FileNotFoundError:
                    subfolders = []
                if not stat.endswith(":-") and not _racy(stat):
                    self._tag_folders[folder] = (stat, subfolders)  # settled: kept
            pending.extend(reversed(subfolders))
        return out

    def _dirs(self) -> tuple[Path, Path]:
        """The git folder and the common one (they differ in a worktree), asked once."""
        dotgit = self.root / ".git"
        if self._git_dirs is None and dotgit.is_dir() and (dotgit / "HEAD").is_file():
            self._git_dirs = (dotgit.resolve(), dotgit.resolve())  # a plain clone: no git call
        if self._git_dirs is None:
            out = self.run("rev-parse", "--absolute-git-dir", "--git-common-dir").split("\n")
            gitdir = Path(out[0].strip())
            common = Path(out[1].strip())
            self._git_dirs = (gitdir, common if common.is_absolute() else
                              (self.root / common).resolve())
        return self._git_dirs

    def fingerprint(self, tags: Sequence[Tag] | None = None) -> str:
        """Changes whenever a tag or HEAD changes (what the index cache depends on); from
        `tags` (as `tags()` read them) the same digest without a second listing."""
        import hashlib

        refs = ("".join(f"refs/tags/{t.name}\0{t.object_sha}\n" for t in tags) if tags is not None
                else self.run("for-each-ref", "--format=%(refname)%00%(objectname)", "refs/tags"))
        return hashlib.sha256(f"{self.head()}\n{refs}".encode()).hexdigest()

    def version_tags(self, tags: Iterable[Tag] | None = None) -> list[VersionTag]:
        found = []
        for tag in self.tags() if tags is None else tags:
            parsed = parse_version_tag(tag.name)
            if parsed:
                found.append(VersionTag(tag, *parsed))
        return found

    def stage_tags(self, tags: Iterable[Tag] | None = None) -> list[StageTag]:
        found = []
        for tag in self.tags() if tags is None else tags:
            parsed = parse_stage_tag(tag.name)
            if parsed:
                found.append(StageTag(tag, *parsed))
        return found

    def read_file(self, commit: str, path: str) -> bytes:
        found = self.read_files([f"{commit}:{path}"])[0]
        if found is None:
            raise NotFound(f"{path} does not exist at commit {commit[:12]}")
        return found

    def read_files(self, specs: list[str], *, batch: bool = False) -> list[bytes | None]:
        """Blobs `<commit>:<path>` (None where missing) through one `cat-file --batch`: the
        persistent one for a few; for many or a one-off `batch`, a fresh one fed by a thread
        (10,000 one at a time: 0.85 s, streamed a fifth; cheaper than loading GitPython)."""
        if batch or len(specs) >= BULK_READ:
            return self._read_streamed(specs)
        results: list[bytes | None] = []
        with self._cat_lock:
            for spec in specs:
                if "\n" in spec:
                    results.append(None)
                    continue
                try:
                    _, kind, _, data = self._git.get_object_data(spec)
                except ValueError:  # "missing" or an ambiguous name
                    results.append(None)
                    continue
                results.append(data if kind == b"blob" or kind == "blob" else None)
        return results

    def _read_streamed(self, specs: list[str]) -> list[bytes | None]:
        import os
        import re
        import subprocess

        asked = [spec for spec in specs if "\n" not in spec]
        proc = subprocess.Popen(["git", "cat-file", "--batch"], cwd=self.root,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env={**os.environ, **_ENV})
        assert proc.stdin is not None and proc.stdout is not None
        stdin, out = proc.stdin, proc.stdout

        def feed() -> None:  # a thread: the pipes hold 64 KB each, the answers megabytes
            try:
                stdin.write("".join(f"{spec}\n" for spec in asked).encode())
                stdin.close()
            except OSError:
                pass

        feeder = threading.Thread(target=feed, daemon=True)
        feeder.start()
        found: dict[str, bytes | None] = {}
        header = re.compile(rb"^[0-9a-f]{40,64} (\w+) (\d+)\n$")
        try:
            for spec in asked:
                line = out.readline()
                match = header.match(line)
                if match is None:  # "<spec> missing" / "ambiguous"
                    if not line.endswith((b" missing\n", b" ambiguous\n")):
                        raise RegistryError(f"git cat-file --batch in {self.root} answered "
                                            f"{line[:80]!r} for {spec!r}; check the repository "
                                            "(`git fsck`)")
                    found[spec] = None
                    continue
                data = out.read(int(match[2]))
                out.read(1)  # the newline after the contents
                found[spec] = data if match[1] == b"blob" else None
        finally:
            out.close()
            proc.wait()
            feeder.join()
        return [found.get(spec) for spec in specs]

    def tree(self, commit: str, folder: str) -> list[tuple[str, str]]:
        """`(path, blob id)` of every file under `folder` at `commit` (recursively)."""
        listing = self.run("ls-tree", "-r", commit, "--", folder.rstrip("/") + "/", check=False)
        files = []
        for line in listing.splitlines():
            meta, relpath = line.split("\t", 1)
            files.append((relpath, meta.split()[2]))
        return files

    def names_at(self, commit: str, folder: str) -> list[str]:
        """The entries directly under `folder` at `commit`."""
        out = self.run("ls-tree", "--name-only", f"{commit}:{folder}", check=False)
        return sorted(n for n in out.split() if n)

    def folder_matches(self, commit: str, folder: str, *, except_file: str | None = None) -> bool:
        """True when `folder` in the working tree (tracked and untracked) equals `commit`'s
        (apart from the file `except_file`, when given)."""
        spec = [folder, *([f":(exclude){except_file}"] if except_file else [])]
        same = self.succeeds("diff", "--quiet", commit, "--", *spec)
        untracked = self.run("ls-files", "--others", "--exclude-standard", "--", *spec).strip()
        return same and not untracked

    def folder_status(self, folder: str) -> str:
        """`git status --porcelain` of `folder` (untracked files too); empty when clean."""
        return self.run("status", "--porcelain", "--untracked-files=all", "--", folder).strip()

    def ignored_files(self, folder: str) -> list[str]:
        out = self.run("ls-files", "--others", "--ignored", "--exclude-standard", "--", folder)
        return [line for line in out.splitlines() if line and "/__pycache__/" not in line]

    def dirty_outside(self, folder: str) -> bool:
        status = self.run("status", "--porcelain", "--untracked-files=no")
        return any(not line[3:].startswith(folder.rstrip("/") + "/")
                   for line in status.splitlines() if line.strip())

    def subjects(self, grep: str) -> list[tuple[str, str]]:
        """`(commit, subject)` of the commits whose message matches `grep`, oldest first."""
        log = self.run("log", "--reverse", "--format=%H%x00%s", f"--grep={grep}", check=False)
        return [(c, s) for c, _, s in (line.partition("\0") for line in log.splitlines())]

    def author(self) -> str:
        name = self.run("config", "user.name", check=False).strip()
        email = self.run("config", "user.email", check=False).strip()
        if name:
            return f"{name} <{email}>" if email else name
        return "registry <registry@localhost>"

    def _write(self, *args: str) -> str:
        has_identity = self.run("config", "user.name", check=False).strip()
        env = {} if has_identity else _FALLBACK_IDENTITY
        status, out, err = self._git.execute(["git", *args], with_extended_output=True,
                                             with_exceptions=False, env=_ENV | env)
        if status != 0:
            raise RegistryError(f"git {args[0]} failed: {str(err).strip()}")
        return str(out)

    def commit_folder(self, folder: str, message: str) -> str:
        """Stage and commit only `folder` (other staged work is left alone; temporary
        manifest files never enter); returns HEAD."""
        self._write("add", "--all", "--", folder, f":(exclude,glob){folder}/**/{TEMP_GLOB}")
        crash_point("git-add", holding=self.gitdir / "index.lock")
        if not self.succeeds("diff", "--cached", "--quiet", "--", folder):
            inside = folder.rstrip("/") + "/"
            elsewhere = [p for p in self.run("diff", "--cached", "--name-only").splitlines()
                         if p and not p.startswith(inside)]
            # `commit -- folder` takes the folder's files from the work tree, so a file
            # moved out of git (to DVC) would come back in; with nothing staged elsewhere
            # the index itself is committed.
            only = ["--", folder] if elsewhere else []
            self._write("commit", "--no-verify", "-q", "-m", message, *only)
        head = self.head()
        if head is None:
            raise RegistryError(f"nothing to commit in {folder} and the repository has no commits")
        return head

    def create_tag(self, name: str, commit: str, message: str) -> None:
        self._write("tag", "-a", name, commit, "-m", message)

    def delete_tag(self, name: str) -> None:
        self._write("tag", "-d", name)


def find_root(start: Path | None = None) -> Path:
    """The top of the git work tree around `start` (default: the cwd)."""
    start = (start or Path.cwd()).resolve()
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists():
            return candidate
    raise NotFound(f"{start} is not inside a git repository; run `git init` there, or cd into "
                   "your registry's repository")


RACY_NS = 20_000_000  # 20 ms: above a kernel tick (4 ms at HZ=250, 10 ms at HZ=100)


def _racy(stat: str) -> bool:
    """Whether a `_stat` summary's file changed within `RACY_NS` of now."""
    import time

    return not stat.endswith(":-") and time.time_ns() - int(stat.rsplit(":", 1)[1]) < RACY_NS


def _stat(path: str) -> str:
    import os

    try:
        st = os.stat(path)
    except FileNotFoundError:
        return f"{path}:-"
    return f"{path}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
