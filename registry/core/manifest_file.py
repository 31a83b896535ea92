"""The manifest file: strict YAML in, canonical YAML out, atomically written.

`parse_manifest` refuses duplicate keys and oversized files and names the file
and field of every error (`format_validation_error`); `write_manifest` writes
through a temporary file, so a crash leaves the old manifest or the new one.

Example:
    >>> manifest = parse_manifest(Path("modules/gravity/module.yaml").read_text())
    >>> write_manifest(manifest, Path("modules/gravity/module.yaml"))
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from pydantic import ValidationError

from registry.errors import ManifestError

if TYPE_CHECKING:
    from registry.core.manifest import Manifest

__all__ = ["dump_manifest", "load_manifest", "parse_manifest", "write_manifest"]


class _UniqueKeyLoader(yaml.SafeLoader):
    """Safe YAML, but a key given twice is an error instead of the last one silently winning."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}: give it once", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_manifest(text: str, *, source: str = "module.yaml") -> Manifest:
    """Validate manifest text; raises `ManifestError` naming `source` and the field."""
    from registry.core.manifest import MAX_MANIFEST_BYTES, Manifest, format_validation_error

    if len(text.encode()) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{source}: file is over {MAX_MANIFEST_BYTES} bytes; manifests are "
                            "small, keep data and weights in separate files")
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ManifestError(f"{source}: invalid YAML{where}: {problem}; fix the syntax") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{source}: expected a mapping of manifest fields at the top level, "
                            f"got {type(data).__name__}; see `registry schema`")
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        raise ManifestError(format_validation_error(exc, source)) from None


def load_manifest(path: Path) -> Manifest:
    """Read `path` (a module.yaml, or a module folder) and validate it."""
    from registry.core.manifest import MANIFEST_FILE

    if path.is_dir():
        path = path / MANIFEST_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"{path}: no such file; create it with `registry new`") from None
    except UnicodeDecodeError:
        raise ManifestError(f"{path}: not UTF-8 text; save the manifest as UTF-8") from None
    return parse_manifest(text, source=str(path))


class _Dumper(yaml.SafeDumper):
    pass


def _flow_short_lists(dumper: yaml.SafeDumper, data: list[Any]) -> yaml.Node:
    flow = len(data) <= 8 and all(not isinstance(v, dict | list) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _flow_short_lists)


def dump_manifest(manifest: Manifest) -> str:
    return yaml.dump(manifest.to_dict(), Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     width=100)


def write_manifest(manifest: Manifest, path: Path) -> None:
    """Write atomically: a crash leaves the old file or the new one, never half of one."""
    from registry.core.manifest import MANIFEST_FILE

    if path.is_dir():
        path = path / MANIFEST_FILE
    text = dump_manifest(manifest)
    fd, tmp = tempfile.mkstemp(prefix=".module.", suffix=".yaml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a manifest is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise



