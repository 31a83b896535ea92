"""What every store offers: the `Store` protocol, and the values it hands out.

A store knows where versions live and nothing about torch: it resolves a
reference to a `Resolved` (a manifest and a way to read its folder's files),
lists `VersionRow`s, and commits a finished module folder. Three stores
implement it: `LocalStore` (a git repository), `HttpStore` (a registry
server) and `BundleStore` (the copy inside a published MLflow model).

    Registry (api)  ──  Store
                         ├── LocalStore   git tags + SQL index      registry.store.local
                         ├── HttpStore    a server's JSON API       registry.store.http
                         └── BundleStore  a published model's copy  registry.store.bundle
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from registry.core.integrity import verify
from registry.core.manifest import MANIFEST_FILE, Manifest
from registry.core.reference import Reference

__all__ = ["MODULES_DIR", "Bump", "Pending", "RegisterResult", "Resolved", "Store",
           "VersionRow", "newest"]

MODULES_DIR = "modules"
Bump = Literal["patch", "minor", "major"]


@dataclass(frozen=True)
class VersionRow:
    """One registered version, as a listing shows it (index row, server entry: the same)."""

    name: str
    version: str
    kind: str
    summary: str
    tag: str
    commit: str
    created: str
    stages: tuple[str, ...] = ()
    inputs: dict[str, str] = field(default_factory=dict)  # port -> unit
    outputs: dict[str, str] = field(default_factory=dict)
    manifest: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "kind": self.kind,
                "summary": self.summary, "tag": self.tag, "commit": self.commit,
                "created": self.created, "stages": list(self.stages)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VersionRow:
        return cls(name=data["name"], version=data["version"], kind=data["kind"],
                   summary=data.get("summary") or "", tag=data.get("tag") or "",
                   commit=data.get("commit") or "", created=data.get("created") or "",
                   stages=tuple(data.get("stages") or ()), inputs=dict(data.get("inputs") or {}),
                   outputs=dict(data.get("outputs") or {}))


@dataclass(frozen=True)
class Resolved:
    """A reference resolved to one manifest, and a reader of its folder's files.

    `read` verifies every file the manifest hashes (`Manifest.files()`), so no
    caller reads weights or data unchecked.
    """

    manifest: Manifest
    commit: str | None  # None: the working tree
    tag: str | None
    reader: Callable[[str], bytes] = field(repr=False, compare=False)
    origin: str = ""  # prefixed to `where()`: a server URL, a bundle path; "" for a local repo
    stages: tuple[str, ...] = ()
    root: Path | None = field(default=None, compare=False)  # the work tree, for a local store

    @property
    def folder(self) -> str:
        return f"{MODULES_DIR}/{self.manifest.name}"

    @property
    def exact(self) -> str:
        """`name@version`, or `name@workspace` for the working tree."""
        return self.manifest.ref if self.commit is not None else f"{self.manifest.name}@workspace"

    @property
    def label(self) -> str:
        return self.tag or f"{self.manifest.name}@workspace"

    def where(self, relpath: str = MANIFEST_FILE) -> str:
        prefix = f"{self.tag}:" if self.tag else ""
        where = f"{prefix}{self.folder}/{relpath}"
        return f"{self.origin} {self.exact}:{self.folder}/{relpath}" if self.origin else where

    def read(self, relpath: str) -> bytes:
        """A file of the module folder at the version; hashed files are verified."""
        data = self.reader(relpath)
        for field_name, ref in self.manifest.files():
            if ref.path == relpath:
                verify(data, ref.sha256, where=self.where(relpath), field=field_name)
        return data


@dataclass(frozen=True)
class RegisterResult:
    manifest: Manifest
    tag: str
    commit: str
    created: bool  # False: the same content was registered already (a no-op)


@dataclass(frozen=True)
class Pending:
    """A module folder checked for registration, before it is measured and committed.

    `done` is set when the same content is registered already (nothing to do);
    `manifest` carries the version it will be registered as (after a bump), and
    `workspace` reads the folder to measure it; both are None for a store that
    measures itself (`Store.measures`: a server checks the upload).
    """

    folder: Path
    manifest: Manifest | None
    workspace: Resolved | None
    done: RegisterResult | None = None


@runtime_checkable
class Store(Protocol):
    """Where versions live. `api.Registry` holds one; nothing here calls back up."""

    location: str
    #: True when `commit` measures the module itself (a server): the api then
    #: hands it the folder unmeasured.
    measures: bool

    def resolve(self, ref: str | Reference) -> Resolved: ...

    def versions(self, name: str | None = None, *, kind: str | None = None,
                 manifests: bool = False) -> list[VersionRow]:
        """Registered versions; each row's `manifest` filled only with `manifests`."""
        ...

    def stages(self, name: str | None = None) -> dict[tuple[str, str], str]:
        """`(name, stage) -> version` of the current stage assignments."""
        ...

    def latest(self, kind: str | None = None, *, manifests: bool = False) -> list[VersionRow]:
        """The latest version of each module, by name (manifests as for `versions`)."""
        ...

    def unregistered(self) -> list[str]:
        """Modules in the working tree with no registered version."""
        ...

    def stage(self, path: Path, *, bump: Bump | None = None) -> Pending:
        """Check a module folder for registration (no writes)."""
        ...

    def commit(self, pending: Pending, manifest: Manifest | None) -> RegisterResult:
        """Write `manifest` into the folder, commit and tag it, in one locked transaction
        (`manifest` is None when the store measures itself)."""
        ...

    def promote(self, ref: str, stage: str) -> str: ...


def newest(rows: list[VersionRow]) -> list[VersionRow]:
    """The latest version of each module in `rows` (a release beats any pre-release)."""
    latest: dict[str, VersionRow] = {}
    for row in rows:
        best = latest.get(row.name)
        if best is None or newer(row.version, best.version):
            latest[row.name] = row
    return [latest[name] for name in sorted(latest)]


def newer(a: str, b: str) -> bool:
    """Whether version `a` is a later "latest" than `b` (a release beats any pre-release)."""
    return latest_key(a) > latest_key(b)


@functools.lru_cache(maxsize=65536)
def latest_key(text: str) -> tuple[Any, ...]:
    """The sort key of "latest": releases above pre-releases, then semver precedence."""
    version = _parsed(text)
    return (not version.pre, version._key())  # a release beats any pre-release


@functools.lru_cache(maxsize=4096)
def _parsed(text: str) -> Any:
    from registry.core.reference import Version

    return Version.parse(text)
