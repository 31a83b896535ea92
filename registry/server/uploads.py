"""Uploaded module folders: strict checks, then a private staging folder, then a registration.

An upload is a tar archive (`.tar.gz` or `.tar`) of the module folder, or the
folder's files each named by its relative path. Every member is checked before
a byte is written: regular files and folders only (no links, devices, fifos or
sparse files), safe relative paths (`clean_relpath`), at most
`MAX_UPLOAD_MEMBERS` members and `limit` bytes unpacked. An archive's extended
headers (GNU long names and links, pax headers), which `tarfile` reads whole
into memory, are checked against `MAX_TAR_HEADER_BYTES` (each),
`MAX_TAR_HEADERS_BYTES` (all) and `MAX_TAR_HEADER_CHAIN` (before one member)
from their 512-byte header, before their data is read. The files land in a
staging folder under `.registry/uploads/` of the server's repository;
`module.yaml` may sit at the top or inside one folder named like the module.
Only once the manifest parses (its declared sizes within `registry.core.limits`,
so nothing is built for a network too large) and its name agrees does
`Registry.register_upload` swap the folder into `modules/<name>/` and register it.

Nothing here knows HTTP: a refused upload raises `UploadRefused`, which
carries the status and the stable `type` id the server answers with.

Example:
    >>> with open("drag.tar.gz", "rb") as archive:          # doctest: +SKIP
    ...     register_upload(reg, archives=[archive], files=[], limit=64 << 20).tag
    'drag@v1.0.0'
"""

from __future__ import annotations

import re
import shutil
import tarfile
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn

from registry.core.manifest import MANIFEST_FILE, load_manifest
from registry.errors import ManifestError, NotFound, RegistryError

if TYPE_CHECKING:
    from tarfile import TarFile, TarInfo

    from registry.api import Registry
    from registry.store.base import RegisterResult

__all__ = ["MAX_FILE_PATH", "MAX_PATH_DEPTH", "MAX_TAR_HEADERS_BYTES", "MAX_TAR_HEADER_BYTES",
           "MAX_TAR_HEADER_CHAIN", "MAX_UPLOAD_MEMBERS", "UploadRefused", "clean_relpath",
           "register_upload", "stage_upload"]

MAX_FILE_PATH = 200
MAX_PATH_DEPTH = 8
MAX_UPLOAD_MEMBERS = 256
MAX_TAR_HEADER_BYTES = 64 * 1024  # one long name/link or pax header (paths are 200 characters)
MAX_TAR_HEADERS_BYTES = 1 << 20  # all of an archive's extended headers together
MAX_TAR_HEADER_CHAIN = 8  # extended headers before one member (tar writes at most 3)
CHUNK = 64 * 1024
UPLOADS_DIR = ".registry/uploads"

_PART = re.compile(r"[A-Za-z0-9._-]+")

NamedFile = tuple[str, IO[bytes]]  # (relative path as sent, contents)


class UploadRefused(Exception):
    """An upload (or a path) the server refuses: an HTTP status, a stable `type`, a message."""

    def __init__(self, status: int, type_: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message


def _invalid(message: str) -> UploadRefused:
    return UploadRefused(422, "invalid_upload", message)


def _too_large(limit: int) -> UploadRefused:
    return UploadRefused(413, "upload_too_large", f"the module unpacks to more than {limit} "
                         "bytes (the server's max_upload_bytes)")


_EXTENDED = {tarfile.GNUTYPE_LONGNAME: "GNU long-name", tarfile.GNUTYPE_LONGLINK: "GNU long-link",
             tarfile.XHDTYPE: "pax", tarfile.XGLTYPE: "pax global",
             tarfile.SOLARIS_XHDTYPE: "Solaris extended"}
_HERE = "registry/server/uploads.py"


class _BoundedInfo(tarfile.TarInfo):
    """A member read by `tarfile`, its extended headers checked before their data is read.

    `tarfile` reads a long-name or pax header's whole declared size into memory
    (and follows a chain of them by recursion), so the size its 512-byte header
    declares is checked first; GNU sparse members, whose maps `tarfile` reads
    block after block, are refused outright.
    """

    def _proc_member(self, tar: TarFile) -> TarInfo:
        if self.type == tarfile.GNUTYPE_SPARSE:
            _refuse_sparse(self.name)
        kind = _EXTENDED.get(self.type)
        if kind is None:
            return super()._proc_member(tar)  # type: ignore[misc]
        state: list[int] = vars(tar).setdefault("_registry_extended", [0, 0])  # chain, bytes
        state[0] += 1
        state[1] += tarfile.BLOCKSIZE + max(self.size, 0)
        where = f"archive: the {kind} header at byte {self.offset}"
        if not 0 <= self.size <= MAX_TAR_HEADER_BYTES:
            _refuse_header(f"{where} declares {self.size:,} bytes, over the limit of "
                           f"{MAX_TAR_HEADER_BYTES:,} (MAX_TAR_HEADER_BYTES")
        if state[0] > MAX_TAR_HEADER_CHAIN:
            _refuse_header(f"{where} is the {state[0]}th extended header before one member, "
                           f"over the limit of {MAX_TAR_HEADER_CHAIN} (MAX_TAR_HEADER_CHAIN")
        if state[1] > MAX_TAR_HEADERS_BYTES:
            _refuse_header(f"{where} brings the archive's extended headers to {state[1]:,} "
                           f"bytes, over the limit of {MAX_TAR_HEADERS_BYTES:,} "
                           "(MAX_TAR_HEADERS_BYTES")
        try:
            return super()._proc_member(tar)  # type: ignore[misc]
        finally:
            state[0] -= 1

    def _proc_gnusparse_00(self, member: TarInfo, *_: Any) -> NoReturn:
        _refuse_sparse(member.name)

    _proc_gnusparse_01 = _proc_gnusparse_10 = _proc_gnusparse_00


def _refuse_header(problem: str) -> NoReturn:
    raise _invalid(f"{problem} in {_HERE}); archive the module folder with `tar czf` (paths "
                   f"of at most {MAX_FILE_PATH} characters)")


def _refuse_sparse(name: str) -> NoReturn:
    raise _invalid(f"archive member {name[:80]!r}: only regular files and folders are allowed "
                   "(no links, devices, fifos or sparse files)")


def clean_relpath(text: str, *, what: str = "file") -> str:
    """A relative path inside a module folder, or `UploadRefused` 422 saying what is wrong.

    Only ``[A-Za-z0-9._-]`` in `/`-separated parts; no absolute paths, no
    backslashes, no empty, `.` or `..` parts, nothing under `.git*`, at most
    `MAX_FILE_PATH` characters and `MAX_PATH_DEPTH` levels.
    """
    def refuse(why: str) -> UploadRefused:
        return UploadRefused(422, "invalid_path", f"{what} {text[:80]!r}: {why}; paths are "
                             "relative to the module folder, with letters, digits, `.`, `_`, "
                             "`-` and `/`")

    if not text:
        raise refuse("is empty")
    if len(text) > MAX_FILE_PATH:
        raise refuse(f"is longer than {MAX_FILE_PATH} characters")
    if "\\" in text:
        raise refuse("contains a backslash")
    if text.startswith("/"):
        raise refuse("is absolute")
    parts = text.split("/")
    if len(parts) > MAX_PATH_DEPTH:
        raise refuse(f"is deeper than {MAX_PATH_DEPTH} levels")
    for part in parts:
        if part in ("", ".", ".."):
            raise refuse("has an empty, `.` or `..` part")
        if not _PART.fullmatch(part):
            raise refuse("has characters outside [A-Za-z0-9._-/]")
        if part.lower().startswith(".git"):
            raise refuse("names a git file")
    return text


def register_upload(reg: Registry, *, archives: Sequence[IO[bytes]], files: Sequence[NamedFile],
                    wanted: str | None = None, limit: int) -> RegisterResult:
    """Check, stage and register an upload: exactly one archive, or the folder's files.

    `wanted`, when given, must equal the manifest's name. The staging folder is
    removed whatever happens; on a failed registration `Registry.register_upload`
    has put the previous folder back and made no tag.
    """
    if len(archives) + (1 if files else 0) != 1 or len(archives) > 1:
        raise _invalid("send exactly one of: one `archive` file (.tar.gz of the module "
                       "folder), or `files` (the folder's files)")
    if reg.root is None:
        raise RegistryError("uploads need the server's own repository, not a remote store")
    uploads = reg.root / UPLOADS_DIR
    uploads.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="upload-", dir=uploads))
    try:
        staging, name = stage_upload(work, archive=archives[0] if archives else None,
                                     files=files, wanted=wanted, limit=limit)
        return reg.register_upload(staging, name)
    except NotFound as exc:  # a file the manifest names is missing from the upload
        raise UploadRefused(422, "missing_file", str(exc)) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)


def stage_upload(work: Path, *, archive: IO[bytes] | None, files: Sequence[NamedFile],
                 wanted: str | None, limit: int) -> tuple[Path, str]:
    """Unpack the upload into `work/module/`; returns that folder and the module's name."""
    staging = work / "module"
    staging.mkdir()
    budget = [0]
    if archive is not None:
        tar, members = _read_archive(archive, limit)
        with tar:
            top, renamed = _strip_top([p for p, _ in members])
            for path, member in members:
                target = staging / renamed[path]
                target.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is None:  # pragma: no cover - regular files always have data
                    raise _invalid(f"archive member {path!r} has no data")
                with source:
                    _copy_limited(source, target, budget, limit)
    else:
        paths = [clean_relpath(filename, what="file name") for filename, _ in files]
        top, renamed = _strip_top(paths)
        for path, (_, fileobj) in zip(paths, files, strict=True):
            target = staging / renamed[path]
            target.parent.mkdir(parents=True, exist_ok=True)
            fileobj.seek(0)
            _copy_limited(fileobj, target, budget, limit)
    try:
        manifest = load_manifest(staging / MANIFEST_FILE)
    except ManifestError as exc:  # name the uploaded file, not the staging folder
        raise ManifestError(str(exc).replace(f"{staging}/", "upload:")) from None
    name = manifest.name
    if top is not None and top != name:
        raise _invalid(f"upload: the folder is named `{top}` but module.yaml says name: "
                       f"`{name}`; rename one so they agree")
    if wanted is not None and wanted != name:
        raise _invalid(f"upload: the form's name `{wanted[:64]}` differs from module.yaml's "
                       f"name `{name}`")
    return staging, name


def _read_archive(fileobj: IO[bytes], limit: int) -> tuple[TarFile, list[tuple[str, TarInfo]]]:
    """Open a tar archive and check every member; returns it and (path, member) of its files."""
    import lzma
    import zlib

    damaged = (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError, ValueError)
    try:
        tar = tarfile.open(fileobj=fileobj, mode="r:*",  # noqa: SIM115 - the caller closes it
                           tarinfo=_BoundedInfo)
    except damaged as exc:
        raise _invalid(f"archive: not a readable tar archive ({type(exc).__name__}); upload "
                       "a .tar.gz of the module folder") from None
    found: list[tuple[str, TarInfo]] = []
    total = count = 0
    try:
        while True:
            try:
                member = tar.next()
            except damaged as exc:
                raise _invalid(f"archive: damaged after {count} members "
                               f"({type(exc).__name__})") from None
            if member is None:
                break
            count += 1
            if count > MAX_UPLOAD_MEMBERS:
                raise UploadRefused(413, "upload_too_large", f"archive: more than "
                                    f"{MAX_UPLOAD_MEMBERS} members")
            raw = member.name
            stripped = raw
            while stripped.startswith("./"):
                stripped = stripped[2:]
            if member.isdir():
                stripped = stripped.rstrip("/")
                if stripped not in ("", "."):
                    clean_relpath(stripped, what="archive member")
                continue
            if not member.isreg() or member.issparse():
                raise _invalid(f"archive member {raw[:80]!r}: only regular files and folders "
                               "are allowed (no links, devices, fifos or sparse files)")
            path = clean_relpath(stripped, what="archive member")
            total += member.size
            if member.size < 0 or total > limit:
                raise _too_large(limit)
            found.append((path, member))
    except BaseException:
        tar.close()
        raise
    return tar, found


def _copy_limited(source: IO[bytes], target: Path, budget: list[int], limit: int) -> None:
    with target.open("xb") as out:
        while True:
            chunk = source.read(CHUNK)
            if not chunk:
                break
            budget[0] += len(chunk)
            if budget[0] > limit:
                raise _too_large(limit)
            out.write(chunk)


def _strip_top(paths: list[str]) -> tuple[str | None, dict[str, str]]:
    """Where module.yaml is: at the top, or inside one top folder (returned, then stripped)."""
    if len(set(paths)) != len(paths):
        dupes = sorted({p for p in paths if paths.count(p) > 1})
        raise _invalid(f"upload: {', '.join(dupes[:5])} given more than once")
    if MANIFEST_FILE in paths:
        return None, {p: p for p in paths}
    tops = {p.split("/", 1)[0] for p in paths}
    if len(tops) == 1:
        top = tops.pop()
        if f"{top}/{MANIFEST_FILE}" in paths:
            return top, {p: p.split("/", 1)[1] for p in paths}
    raise _invalid(f"upload: no {MANIFEST_FILE} at the top of the upload (or inside one folder "
                   "named like the module)")
