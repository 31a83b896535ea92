"""Large files of a module through DVC: git keeps a small pointer, the bytes live in DVC's
cache and its remote (S3, or any storage DVC speaks).

A file a manifest hashes (weights, evaluation data) may be DVC-tracked: beside it a
`<file>.dvc` pointer (its md5 and size), the file itself git-ignored; the manifest still
records its sha256. Registering tracks every such file over `threshold()` bytes (5 MB,
`REGISTRY_DVC_THRESHOLD_BYTES`), and with it the module's other hashed files over
`COMPANION_BYTES` (16 KiB: the evaluation data of a 50 MB network goes with its
weights, so git grows by pointers only), and pushes the module's tracked files to the default DVC
remote; with none configured they stay in the local DVC cache and the message says so
(`dvc remote add -d NAME s3://BUCKET/PATH`, then `dvc push`).

Reading a registered version (`read_tracked`): a file git does not hold but a pointer
does is taken from the local DVC cache, else fetched from the remote at that commit
(`dvc fetch`), and checked against the pointer's md5 (the loader checks the manifest's
sha256 on top): a tampered object is refused, never loaded. The size in the pointer is
bounded before anything is fetched.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from registry.errors import IntegrityError, ManifestError, NotFound, RegistryError

__all__ = ["MAX_ARTIFACT_BYTES", "Pointer", "Tracking", "parse_pointer", "push",
           "read_committed", "read_tracked", "read_workspace", "threshold", "track_large",
           "untracked_ignored"]

log = logging.getLogger("registry.store")
DEFAULT_THRESHOLD_BYTES = 5 * 1024 * 1024
# a module with a file over the threshold sends its other hashed files over this size along
# (its evaluation data goes where its weights go: git keeps pointers only)
COMPANION_BYTES = 16 * 1024
THRESHOLD_ENV = "REGISTRY_DVC_THRESHOLD_BYTES"
MAX_ARTIFACT_BYTES = 4 * 1024 ** 3  # a pointer claiming more is refused before any fetch
MAX_POINTER_BYTES = 64 * 1024
_MD5 = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Pointer:
    """A `.dvc` file's single output."""

    md5: str
    size: int
    path: str


def threshold() -> int:
    text = os.environ.get(THRESHOLD_ENV)
    if not text:
        return DEFAULT_THRESHOLD_BYTES
    try:
        return int(text)
    except ValueError:
        raise RegistryError(f"{THRESHOLD_ENV}={text!r} is not a number of bytes") from None


def parse_pointer(text: str, *, source: str) -> Pointer:
    """The output of a `.dvc` pointer (strict YAML: no aliases, no code, bounded)."""
    from registry.core.manifest_file import load_yaml

    if len(text) > MAX_POINTER_BYTES:
        raise ManifestError(f"{source}: over {MAX_POINTER_BYTES} bytes; a DVC pointer is small")
    data = load_yaml(text, source=source)
    outs = data.get("outs") if isinstance(data, dict) else None
    if not isinstance(outs, list) or len(outs) != 1 or not isinstance(outs[0], dict):
        raise ManifestError(f"{source}: outs: expected one output (as `dvc add` writes it); "
                            "re-create it with `dvc add`")
    out = outs[0]
    md5, size, path = out.get("md5"), out.get("size"), out.get("path")
    if not isinstance(md5, str) or not _MD5.match(md5):
        raise ManifestError(f"{source}: outs[0].md5: expected 32 hex digits, got {md5!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ManifestError(f"{source}: outs[0].size: expected a byte count, got {size!r}")
    if size > MAX_ARTIFACT_BYTES:
        raise ManifestError(f"{source}: outs[0].size: {size} bytes is over the "
                            f"{MAX_ARTIFACT_BYTES}-byte limit on a module's file")
    if not isinstance(path, str) or "/" in path or path in ("", ".", ".."):
        raise ManifestError(f"{source}: outs[0].path: expected the file's name beside the "
                            f"pointer, got {path!r}")
    return Pointer(md5, size, path)


def _dvc_repo(root: Path) -> Any:
    if not (root / ".dvc").is_dir():
        raise RegistryError(f"{root}: not a DVC repository; run `dvc init` there (and `dvc "
                            "remote add -d NAME s3://BUCKET/PATH` for a shared store)")
    from dvc.repo import Repo

    return Repo(str(root))


def _chosen(folder: Path, relpaths: list[str]) -> dict[Path, str]:
    """The module's files DVC keeps, each with why: over the threshold, tracked before, or
    over `COMPANION_BYTES` beside a file over the threshold."""
    limit = threshold()
    files = [folder / relpath for relpath in relpaths if (folder / relpath).is_file()]
    large = any(path.stat().st_size > limit for path in files)
    why: dict[Path, str] = {}
    for path in files:
        size = path.stat().st_size
        if path.with_name(path.name + ".dvc").is_file() or size > limit:
            why[path] = f"over {limit / 1e6:g} MB" if size > limit else "tracked before"
        elif large and size > COMPANION_BYTES:
            why[path] = f"beside a file over {limit / 1e6:g} MB"
    return why


@dataclass
class Tracking:
    """What `track_large` changed, so that a registration failing before its commit can put
    the checkout back as it was (pointers, the folder's `.gitignore`, git's index)."""

    repo: Any
    root: Path
    paths: list[Path]
    before: dict[Path, bytes | None]  # the pointer and `.gitignore` files' previous content
    index: str  # `git ls-files --stage` of the tracked files before

    def undo(self) -> None:
        for path, data in self.before.items():
            if data is None:
                path.unlink(missing_ok=True)
            else:
                path.write_bytes(data)
        for path in self.paths:  # a cache link (DVC's `cache.type`) back to a plain file
            if path.is_symlink() or (path.is_file() and path.stat().st_nlink > 1):
                data = path.read_bytes()
                path.unlink()
                path.write_bytes(data)
        if self.index:
            self.repo.run("update-index", "--index-info", stdin=self.index.encode())


def track_large(repo: Any, root: Path, folder: Path, relpaths: list[str]) -> Tracking | None:
    """`dvc add` each file of the module DVC keeps (`_chosen`; a pointer there before is
    refreshed), first leaving git's index if git held it (`repo`, a GitRepo: the
    registration's commit then records the pointer in its place); one line logged per
    tracked file for the user. None when no file goes to DVC; else what `undo` reverts."""
    why = _chosen(folder, relpaths)
    if not why:
        return None
    chosen = list(why)
    rel = [str(p.relative_to(root)) for p in chosen]
    kept = [*(p.with_name(p.name + ".dvc") for p in chosen),
            *{p.parent / ".gitignore" for p in chosen}]  # DVC ignores each file beside it
    tracking = Tracking(repo, root, chosen,
                        {p: p.read_bytes() if p.is_file() else None for p in kept},
                        repo.run("ls-files", "--stage", "--", *rel))
    try:
        with _dvc_repo(root) as dvc:
            repo.run("rm", "-q", "--cached", "--ignore-unmatch", "--", *rel)
            dvc.add([str(p) for p in chosen])
    except BaseException:
        tracking.undo()
        raise
    for p in chosen:
        log.warning("registry: %s (%.1f MB, %s) is tracked with DVC: git keeps %s.dvc, the "
                    "bytes go to the DVC cache and remote", p.relative_to(root),
                    p.stat().st_size / 1e6, why[p], p.name)
    return tracking


def untracked_ignored(repo: Any, root: Path, folder: Path, relfolder: str,
                      relpaths: list[str]) -> list[str]:
    """The module's files git ignores that DVC will not keep (a registration would lose
    them): checked before anything is measured or tracked."""
    kept = {str(p.relative_to(root)) for p in _chosen(folder, relpaths)}
    return [f for f in repo.ignored_files(relfolder)
            if f not in kept and not (root / f"{f}.dvc").is_file()]


def push(root: Path, folder: Path) -> str | None:
    """Push the module's DVC-tracked files to the default remote; the line shown (logged)."""
    note = _push(root, folder)
    if note:
        log.warning("registry: %s", note)
    return note


def _push(root: Path, folder: Path) -> str | None:
    pointers = sorted(folder.glob("*.dvc"))
    if not pointers:
        return None
    with _dvc_repo(root) as repo:
        remote = repo.config.get("core", {}).get("remote")
        if not remote:
            return (f"{folder.relative_to(root)}: no default DVC remote, so its tracked files "
                    "stay in this checkout's DVC cache; other clones cannot load them until "
                    "you `dvc remote add -d NAME s3://BUCKET/PATH` and `dvc push`")
        try:
            repo.push(targets=[str(p) for p in pointers])
        except Exception as exc:
            raise RegistryError(f"{folder.relative_to(root)}: pushing its DVC-tracked files to "
                                f"remote `{remote}` failed ({_one_line(exc)}); check the "
                                "remote's address and credentials (`dvc remote list`)") from None
    return f"{folder.relative_to(root)}: DVC-tracked files pushed to remote `{remote}`"


def read_tracked(root: Path, commit: str, relpath: str, pointer_text: str) -> bytes:
    """The bytes of `relpath` as the pointer committed at `commit` names them: from the
    local DVC cache, else fetched from the remote; md5-checked."""
    pointer = parse_pointer(pointer_text, source=f"{commit[:12]}:{relpath}.dvc")
    cached = _cache_file(root, pointer.md5)
    if not cached.is_file():
        with _dvc_repo(root) as repo:
            cached = Path(repo.cache.local.oid_to_path(pointer.md5))  # `dvc cache dir` too
        if cached.is_file():
            return _checked(cached, pointer, relpath)
        with _dvc_repo(root) as repo:
            remote = repo.config.get("core", {}).get("remote")
            where = f"remote `{remote}`" if remote else "remote (none is configured)"
            try:
                repo.fetch(targets=[f"{relpath}.dvc"], revs=[commit], workspace=False)
            except Exception as exc:
                raise NotFound(f"{relpath}: DVC-tracked, not in this checkout's DVC cache, "
                               f"and the DVC {where} could not be read ({_one_line(exc)}); "
                               "check its address and credentials (`dvc remote list`)") from None
        if not cached.is_file():
            raise NotFound(f"{relpath}: DVC-tracked (md5 {pointer.md5}), not in this "
                           f"checkout's DVC cache, and the DVC {where} does not hold it; "
                           "`dvc push` it from a checkout that has it")
    return _checked(cached, pointer, relpath)


def read_workspace(root: Path, path: Path) -> bytes:
    """A working-tree file that only its pointer holds: `dvc pull` of that file first."""
    relpath = str(path.relative_to(root))
    pointer_file = path.with_name(f"{path.name}.dvc")
    pointer = parse_pointer(pointer_file.read_text(encoding="utf-8"), source=f"{relpath}.dvc")
    if not path.is_file():
        with _dvc_repo(root) as repo:
            try:
                repo.pull(targets=[str(pointer_file)])
            except Exception as exc:
                raise NotFound(f"{relpath}: DVC-tracked and not pulled ({_one_line(exc)}); "
                               "run `dvc pull` with the remote reachable") from None
    return _checked(path, pointer, relpath)


def _cache_file(root: Path, md5: str) -> Path:
    """Where DVC's default cache keeps an object (read without opening DVC; a cache moved
    with `dvc cache dir` is asked of DVC)."""
    return root / ".dvc" / "cache" / "files" / "md5" / md5[:2] / md5[2:]


def _checked(path: Path, pointer: Pointer, relpath: str) -> bytes:
    if not path.is_file():
        raise NotFound(f"{relpath}: DVC-tracked (md5 {pointer.md5}) and not pulled; `dvc "
                       "pull` it, or `dvc push` it from a checkout that has it")
    size = path.stat().st_size
    if size != pointer.size:
        raise IntegrityError(f"{relpath}: {size} bytes where its DVC pointer records "
                             f"{pointer.size}: the stored object was altered; refused")
    data = path.read_bytes()
    if hashlib.md5(data, usedforsecurity=False).hexdigest() != pointer.md5:
        raise IntegrityError(f"{relpath}: content does not match the md5 of its DVC pointer "
                             f"({pointer.md5}): the stored object was altered; refused")
    return data


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return (text[:300] + "...") if len(text) > 300 else (text or type(exc).__name__)


def read_committed(repo: Any, root: Path, commit: str, relpath: str) -> bytes:
    """A file of a commit: git's blob, or the DVC-tracked file its committed pointer names."""
    try:
        data: bytes = repo.read_file(commit, relpath)
        return data
    except NotFound as missing:
        try:
            pointer = repo.read_file(commit, f"{relpath}.dvc")
        except NotFound:
            raise missing from None
    return read_tracked(root, commit, relpath, pointer.decode("utf-8", errors="replace"))
