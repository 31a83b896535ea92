"""The git side of the store: tags in GTO's format, files at commits, commits.

Versions are annotated tags `<name>@v<semver>`; stage assignments are GTO's
`<name>#<stage>#<n>` tags on the version's commit, so `gto show` reads the
same registry. Bulk reads go through one `git cat-file --batch` process.

Example:
    >>> repo = GitRepo(Path("."))
    >>> [t.name for t in repo.tags()][:2]
    ['drag@v1.0.0', 'gravity@v1.0.0']
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from registry.errors import NotFound, RegistryError

__all__ = ["GitRepo", "StageTag", "Tag", "VersionTag", "find_root"]

VERSION_TAG = re.compile(
    r"^(?P<name>[a-z][a-z0-9-]{0,62})@v(?P<version>\d+\.\d+\.\d+[0-9A-Za-z.+-]*)$"
)
STAGE_TAG = re.compile(
    r"^(?P<name>[a-z][a-z0-9-]{0,62})#(?P<stage>[a-z][a-z0-9_-]{0,40})(?P<unassign>!?)#(?P<n>\d+)$"
)
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


def find_root(start: Path | None = None) -> Path:
    """The top of the git work tree around `start` (default: the cwd)."""
    start = (start or Path.cwd()).resolve()
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists():
            return candidate
    raise NotFound(f"{start} is not inside a git repository; run `git init` there, or cd into "
                   "your registry's repository")


class GitRepo:
    """Thin, fast access to the repository through the git CLI (GitPython for writes)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def run(self, *args: str, check: bool = True, stdin: bytes | None = None) -> str:
        env = os.environ | {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
        proc = subprocess.run(["git", "-C", str(self.root), *args], input=stdin,
                              capture_output=True, env=env, check=False)
        if check and proc.returncode != 0:
            raise RegistryError(f"git {' '.join(args[:3])} failed in {self.root}: "
                                f"{proc.stderr.decode(errors='replace').strip()}")
        return proc.stdout.decode(errors="replace")

    @property
    def gitdir(self) -> Path:
        return Path(self.run("rev-parse", "--absolute-git-dir").strip())

    def head(self) -> str | None:
        out = self.run("rev-parse", "--verify", "-q", "HEAD", check=False).strip()
        return out or None

    def tags(self) -> list[Tag]:
        fmt = "%(refname:strip=2)%00%(objectname)%00%(*objectname)%00%(creatordate:iso-strict)"
        out = self.run("for-each-ref", f"--format={fmt}", "refs/tags")
        tags = []
        for line in out.splitlines():
            name, obj, peeled, created = line.split("\0")
            tags.append(Tag(name, obj, peeled or obj, created))
        return tags

    def fingerprint(self) -> str:
        """Changes whenever a tag or HEAD changes (what the index cache depends on)."""
        import hashlib

        refs = self.run("for-each-ref", "--format=%(refname)%00%(objectname)", "refs/tags")
        return hashlib.sha256(f"{self.head()}\n{refs}".encode()).hexdigest()

    def version_tags(self, tags: Iterable[Tag] | None = None) -> list[VersionTag]:
        found = []
        for tag in self.tags() if tags is None else tags:
            match = VERSION_TAG.match(tag.name)
            if match:
                found.append(VersionTag(tag, match["name"], match["version"]))
        return found

    def stage_tags(self, tags: Iterable[Tag] | None = None) -> list[StageTag]:
        found = []
        for tag in self.tags() if tags is None else tags:
            match = STAGE_TAG.match(tag.name)
            if match:
                found.append(StageTag(tag, match["name"], match["stage"], int(match["n"]),
                                      bool(match["unassign"])))
        return found

    def read_file(self, commit: str, path: str) -> bytes:
        proc = subprocess.run(["git", "-C", str(self.root), "cat-file", "blob", f"{commit}:{path}"],
                              capture_output=True, check=False)
        if proc.returncode != 0:
            raise NotFound(f"{path} does not exist at commit {commit[:12]}")
        return proc.stdout

    def read_files(self, specs: list[str]) -> list[bytes | None]:
        """Read many `<commit>:<path>` blobs through one `git cat-file --batch`."""
        if not specs:
            return []
        proc = subprocess.run(["git", "-C", str(self.root), "cat-file", "--batch"],
                              input="\n".join(specs).encode() + b"\n", capture_output=True,
                              check=True)
        out, pos = proc.stdout, 0
        results: list[bytes | None] = []
        for _ in specs:
            end = out.index(b"\n", pos)
            header = out[pos:end].split()
            pos = end + 1
            if len(header) < 3 or header[1] == b"missing":
                results.append(None)
                continue
            size = int(header[2])
            results.append(out[pos:pos + size])
            pos += size + 1
        return results

    def folder_matches(self, commit: str, folder: str) -> bool:
        """True when `folder` in the working tree equals `folder` at `commit`."""
        diff = subprocess.run(["git", "-C", str(self.root), "diff", "--quiet", commit, "--",
                               folder], capture_output=True, check=False)
        untracked = self.run("ls-files", "--others", "--exclude-standard", "--", folder).strip()
        return diff.returncode == 0 and not untracked

    def ignored_files(self, folder: str) -> list[str]:
        out = self.run("ls-files", "--others", "--ignored", "--exclude-standard", "--", folder)
        return [line for line in out.splitlines() if line and "/__pycache__/" not in line]

    def dirty_outside(self, folder: str) -> bool:
        status = self.run("status", "--porcelain", "--untracked-files=no")
        return any(not line[3:].startswith(folder.rstrip("/") + "/")
                   for line in status.splitlines() if line.strip())

    def author(self) -> str:
        name = self.run("config", "user.name", check=False).strip()
        email = self.run("config", "user.email", check=False).strip()
        if name:
            return f"{name} <{email}>" if email else name
        return "registry <registry@localhost>"

    def _identity_env(self) -> dict[str, str]:
        has_identity = self.run("config", "user.name", check=False).strip()
        return {} if has_identity else _FALLBACK_IDENTITY

    def _write(self, *args: str) -> str:
        env = os.environ | self._identity_env() | {"LC_ALL": "C"}
        proc = subprocess.run(["git", "-C", str(self.root), *args], capture_output=True,
                              env=env, check=False)
        if proc.returncode != 0:
            detail = proc.stderr.decode(errors="replace").strip()
            raise RegistryError(f"git {args[0]} failed: {detail}")
        return proc.stdout.decode()

    def commit_folder(self, folder: str, message: str) -> str:
        """Stage and commit only `folder` (other staged work is left alone); returns HEAD."""
        self._write("add", "--all", "--", folder)
        staged = subprocess.run(["git", "-C", str(self.root), "diff", "--cached", "--quiet",
                                 "--", folder], check=False).returncode != 0
        if staged:
            self._write("commit", "--no-verify", "-q", "-m", message, "--", folder)
        head = self.head()
        if head is None:
            raise RegistryError(f"nothing to commit in {folder} and the repository has no commits")
        return head

    def create_tag(self, name: str, commit: str, message: str) -> None:
        self._write("tag", "-a", name, commit, "-m", message)

    def delete_tag(self, name: str) -> None:
        self._write("tag", "-d", name)
