"""What a module folder may hold, and when two versions' content is the same.

Example:
    >>> regular_files_only(Path("modules/gravity"))   # raises on a symlink
    >>> declared(registered) == declared(uploaded)     # same content, measured or not
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from registry.core.manifest import MANIFEST_FILE, Manifest
from registry.core.reference import Version
from registry.errors import ManifestError
from registry.store.base import Bump

__all__ = ["declared", "next_version", "pack_folder", "refuse_link", "regular_files_only",
           "workspace_names"]


def next_version(version: Version, bump: Bump) -> str:
    if bump == "major":
        return f"{version.major + 1}.0.0"
    if bump == "minor":
        return f"{version.major}.{version.minor + 1}.0"
    return f"{version.major}.{version.minor}.{version.patch + 1}"


def declared(manifest: Manifest) -> dict[str, object]:
    """The manifest without what registration measures or records."""
    data = manifest.to_dict()
    cost = data.pop("cost", None) or {}
    if cost.get("training") is not None:
        data["cost"] = {"training": cost["training"]}
    if isinstance(data.get("evaluation"), dict):
        data["evaluation"].pop("metrics", None)
    if isinstance(data.get("provenance"), dict):
        data["provenance"].pop("git", None)
        data["provenance"].pop("created", None)
    return data


def refuse_link(path: Path) -> None:
    if path.is_symlink():
        raise ManifestError(f"{path}: is a symbolic link; module folders hold regular files "
                            "only: replace the link by a copy of its target")


def regular_files_only(folder: Path) -> None:
    """Module folders hold regular files and folders: a link's target is not versioned."""
    for top, dirs, files in os.walk(folder):
        for entry in [*dirs, *files]:
            path = Path(top) / entry
            refuse_link(path)
            if entry in files and not path.is_file():
                raise ManifestError(f"{path}: is not a regular file; remove it from the "
                                    "module folder")


def pack_folder(folder: Path, out: Any) -> None:
    """A .tar.gz of the folder's regular files, paths relative to it (no links, no caches)."""
    import tarfile

    files = []
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part == "__pycache__" or part.startswith(".git") for part in rel.parts):
            continue
        if path.is_symlink():
            raise ManifestError(f"{path}: is a symbolic link; only regular files are uploaded, "
                                "replace the link by the file itself")
        if path.is_dir():
            continue
        if not path.is_file():
            raise ManifestError(f"{path}: is not a regular file; remove it from the module "
                                "folder")
        files.append((path, rel.as_posix()))
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for path, arcname in files:
            info = tarfile.TarInfo(arcname)
            stat = path.stat()
            info.size, info.mtime, info.mode = stat.st_size, int(stat.st_mtime), 0o644
            with path.open("rb") as handle:
                tar.addfile(info, handle)


def workspace_names(folder: Path) -> list[str]:
    """The folders of `folder` (the working tree's `modules/`) holding a manifest, sorted.

    One directory scan and a stat a folder (pathlib's glob costs ~30 µs a folder: 1,000
    modules made it a tenth of a warm `registry list`)."""
    try:
        with os.scandir(folder) as found:
            return sorted(e.name for e in found if os.path.isfile(f"{e.path}/{MANIFEST_FILE}"))
    except (FileNotFoundError, NotADirectoryError):
        return []
