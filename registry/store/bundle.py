"""The bundle store: the copy of a version inside a published MLflow model (read-only).

`registry publish --mlflow` writes one artifact, `registry/`: a small,
self-contained copy of the module's version (and, for a composite, of every
module it wires in), laid out like a working tree:

    registry/
      bundle.json                              what is inside, with each file's sha256
      <exact ref>/modules/<name>/module.yaml   e.g. gravity@1.0.1/modules/gravity/module.yaml
      <exact ref>/modules/<name>/weights.safetensors ...

Opening it verifies every file against `bundle.json` (weights again against
the manifest's sha256 when they are read); it resolves the references it
holds, and only those. No git, no index, no writes.

Example:
    >>> store = BundleStore(Path("artifacts/registry"))
    >>> store.ref
    'gravity@1.0.1'
"""

from __future__ import annotations

import json
from pathlib import Path

from registry.core.integrity import sha256_bytes
from registry.core.manifest import MANIFEST_FILE, parse_manifest
from registry.core.reference import Reference
from registry.errors import IntegrityError, ManifestError, NotFound, RegistryError
from registry.store.base import (
    MODULES_DIR,
    Bump,
    Pending,
    RegisterResult,
    Resolved,
    VersionRow,
    newest,
)

__all__ = ["BUNDLE_FILE", "BUNDLE_FORMAT", "BundleStore", "is_bundle"]

BUNDLE_FILE = "bundle.json"
BUNDLE_FORMAT = 1
_REPUBLISH = "republish it with `registry publish REF --mlflow`"


def is_bundle(path: Path) -> bool:
    return (path / BUNDLE_FILE).is_file()


class BundleStore:
    """The versions a published model's bundle holds."""

    measures = False
    root = None

    def __init__(self, root: Path) -> None:
        self.root_dir = root
        self.location = str(root)
        index_path = root / BUNDLE_FILE
        if not index_path.is_file():
            raise NotFound(f"{index_path}: no such file; this is not a bundle written by "
                           "`registry publish --mlflow`")
        try:
            index = json.loads(index_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"{index_path}: not valid JSON ({exc}); republish the "
                                "module") from None
        found = index.get("format") if isinstance(index, dict) else None
        if found != BUNDLE_FORMAT:
            raise ManifestError(f"{index_path}: format {found!r} is not {BUNDLE_FORMAT}; load it "
                                "with the registry version that published it, or republish")
        self.ref: str = index["ref"]
        self._aliases: dict[str, str] = dict(index.get("resolve", {}))
        self._modules = {exact: self._open(exact, entry)
                         for exact, entry in index["modules"].items()}

    def __repr__(self) -> str:
        return f"BundleStore({self.location!r})"

    def _open(self, exact: str, entry: dict[str, object]) -> Resolved:
        name = str(entry["name"])
        folder = self.root_dir / exact / MODULES_DIR / name
        files = entry["files"]
        assert isinstance(files, dict)
        for relpath, sha in files.items():
            file = folder / relpath
            if not file.is_file():
                raise NotFound(f"{file}: missing from the published model's bundle; republish "
                               f"{exact} with `registry publish {exact} --mlflow`")
            if sha256_bytes(file.read_bytes()) != sha:
                raise IntegrityError(f"{file}: sha256 differs from the bundle's record {sha}; "
                                     f"the model's artifacts were changed: republish {exact}")
        manifest = parse_manifest((folder / MANIFEST_FILE).read_text(encoding="utf-8"),
                                  source=f"{exact}:{MODULES_DIR}/{name}/{MANIFEST_FILE}")
        if manifest.name != name:
            raise ManifestError(f"{folder / MANIFEST_FILE}: name `{manifest.name}` differs from "
                                f"the bundle's `{name}`; republish {exact}")

        def read(relpath: str) -> bytes:
            target = folder / relpath
            if not target.is_file():
                raise NotFound(f"{target}: missing from the published model's bundle; "
                               f"{_REPUBLISH}")
            return target.read_bytes()

        commit, tag = entry.get("commit"), entry.get("tag")
        return Resolved(manifest, str(commit) if commit else None, str(tag) if tag else None,
                        read)

    def resolve(self, ref: str | Reference) -> Resolved:
        text = str(ref)
        found = self._modules.get(self._aliases.get(text, text))
        if found is None:
            raise NotFound(f"`{text}` is not in the published model's bundle (it holds "
                           f"{', '.join(sorted(self._modules))}); {_REPUBLISH}")
        return found

    def versions(self, name: str | None = None, *, kind: str | None = None,
                 manifests: bool = True) -> list[VersionRow]:
        """Every bundled version (manifests always: they are in memory already)."""
        rows = []
        for _, resolved in sorted(self._modules.items()):
            manifest = resolved.manifest
            if (name is None or manifest.name == name) and (kind is None or
                                                             manifest.kind == kind):
                rows.append(VersionRow(manifest.name, manifest.version, manifest.kind,
                                       manifest.summary, resolved.tag or "",
                                       resolved.commit or "", "",
                                       manifest=manifest.to_dict()))
        return rows

    def latest(self, kind: str | None = None, *, manifests: bool = True) -> list[VersionRow]:
        return newest(self.versions(kind=kind))

    def stages(self, name: str | None = None) -> dict[tuple[str, str], str]:
        return {}

    def unregistered(self) -> list[str]:
        return []

    def stage(self, path: Path, *, bump: Bump | None = None) -> Pending:
        raise RegistryError(f"{self.location}: a published model's bundle is read-only; "
                            "register in the registry's repository")

    def commit(self, pending: Pending, manifest: object) -> RegisterResult:
        raise RegistryError(f"{self.location}: a published model's bundle is read-only")

    def promote(self, ref: str, stage: str) -> str:
        raise RegistryError(f"{self.location}: a published model's bundle is read-only; "
                            "promote in the registry's repository")
