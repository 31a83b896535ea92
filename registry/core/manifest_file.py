"""The manifest file: strict YAML in, canonical YAML out, atomically written.

`load_yaml` is the project's one strict YAML reader (no duplicate keys, no aliases,
bounded nesting); `parse_manifest` reads with it, refuses oversized files and names
the file and field of every error (`format_validation_error`); `write_manifest` writes
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

from registry.core.faults import crash_point
from registry.errors import ManifestError

if TYPE_CHECKING:
    from registry.core.manifest import Manifest

# `write_manifest`'s temporary files: never part of a module (a commit excludes them).
TEMP_PREFIX = ".module."
TEMP_GLOB = f"{TEMP_PREFIX}*.yaml"

__all__ = ["MAX_YAML_DEPTH", "TEMP_GLOB", "dump_manifest", "load_manifest", "load_yaml",
           "parse_manifest", "write_manifest"]


MAX_YAML_DEPTH = 32  # nested mappings and sequences (libyaml alone stops only at 1,000)
_MAX_SEXAGESIMAL = 8  # `1:30:00` groups: PyYAML builds such an int in quadratic time
_MAX_PROBLEM = 200  # characters of a parser's message quoted in ours
_REWORD_CHARS = 64 << 10  # an invalid text up to this size is re-parsed for PyYAML's wording


class _Refused(Exception):
    """A document the strict reader will not construct; the message lacks only the source."""


def load_yaml(text: str, *, source: str) -> Any:
    """The project's one strict YAML reader: safe tags, no duplicate keys, no aliases, bounded
    depth.

    Every refusal is one `ManifestError` line naming `source`, the line and the fix,
    raised before any expansion or deep recursion. libyaml (`CSafeLoader`) parses when
    present; an invalid text (up to 64 KiB) is parsed again by PyYAML's Python parser,
    whose messages name the offending token.
    """
    try:
        return _load(_FAST, text)
    except _Refused as exc:
        raise ManifestError(f"{source}: {exc}") from None
    except yaml.YAMLError as exc:
        error = exc
    except (ArithmeticError, LookupError, TypeError, ValueError) as exc:  # from a constructor:
        detail = _one_line(exc) or type(exc).__name__  # an int over 4,300 digits, 2024-13-01
        raise ManifestError(f"{source}: invalid YAML value: {detail}; fix or quote "
                            "the value") from None
    mark = getattr(error, "problem_mark", None)
    if mark is not None and getattr(error, "problem", None) == "exceeded maximum nesting depth":
        raise ManifestError(f"{source}: {_too_deep(mark)}")  # libyaml's own limit, 1,000
    if (_FAST is not _PyStrictLoader and len(text) <= _REWORD_CHARS
            and not isinstance(error, yaml.constructor.ConstructorError)):
        error = _python_wording(text) or error
    mark = getattr(error, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
    problem = getattr(error, "problem", None) or error
    raise ManifestError(f"{source}: invalid YAML{where}: {_one_line(problem)}; fix the syntax")


def _python_wording(text: str) -> yaml.YAMLError | None:
    """The syntax error as PyYAML's Python parser words it (events only: no recursion)."""
    try:
        for _ in yaml.parse(text, Loader=yaml.SafeLoader):
            pass
    except yaml.YAMLError as exc:
        return exc
    return None


def _load(loader_class: Any, text: str) -> Any:
    loader = loader_class(text)
    try:
        node = super(_StrictChecks, loader).get_single_node()  # composed, not yet walked
        if node is None:
            return None
        try:
            return _construct(loader, node, set(), 1)
        except _Unusual:  # merge keys, sets, unhashable keys: PyYAML's own constructor
            _check_graph(node)
            return loader.construct_document(node)
        except Exception:
            # What the walk of the whole graph refuses (an alias, too deep) is said first,
            # wherever it is, as when the walk came before construction.
            _check_graph(node)
            raise
    finally:
        loader.dispose()


class _Unusual(Exception):
    """A node `_construct` leaves to PyYAML's constructor."""


class _Shared(_Refused):
    """A node met twice or nested too deep: `_check_graph` words the refusal."""

    def __init__(self) -> None:
        super().__init__("YAML aliases are not allowed, nor nesting deeper than "
                         f"{MAX_YAML_DEPTH} levels; write the values out")


_TAG = "tag:yaml.org,2002:"
_MAP, _SEQ, _STR, _MERGE = _TAG + "map", _TAG + "seq", _TAG + "str", _TAG + "merge"
_SCALARS = {_TAG + t for t in ("null", "bool", "int", "float", "timestamp", "binary")}


def _construct(loader: Any, node: yaml.Node, seen: set[int], depth: int) -> Any:
    """The document's value, built straight from the composed nodes: what SafeConstructor
    builds for plain maps, lists and scalars, with each key checked once and without its
    generator machinery, the graph checked on the way (a node met twice is an alias,
    refused before it is built twice; nesting bounded by MAX_YAML_DEPTH): 3× faster on a
    manifest than PyYAML's constructor after a separate walk (an index rebuild reads
    thousands)."""
    if id(node) in seen:
        raise _Shared
    seen.add(id(node))
    tag = node.tag
    if isinstance(node, yaml.ScalarNode):
        if tag == _STR:
            return node.value
        if tag in _SCALARS:  # the loader's own (strict: bounded numbers) constructors
            return loader.yaml_constructors[tag](loader, node)
        raise _Unusual
    if depth > MAX_YAML_DEPTH:
        raise _Shared
    if isinstance(node, yaml.MappingNode) and tag == _MAP:
        keys: dict[Any, None] = {}  # every key checked before any value, as PyYAML's order
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                raise _Unusual
            key = _construct(loader, key_node, seen, depth + 1)
            try:
                duplicate = key in keys
            except TypeError:  # unhashable: SafeConstructor words the refusal
                raise _Unusual from None
            if duplicate:
                raise _duplicate(key, key_node)
            keys[key] = None
        return {key: _construct(loader, value_node, seen, depth + 1)
                for key, (_, value_node) in zip(keys, node.value, strict=True)}
    if isinstance(node, yaml.SequenceNode) and tag == _SEQ:
        return [_construct(loader, child, seen, depth + 1) for child in node.value]
    raise _Unusual


def _one_line(problem: object) -> str:
    text = " ".join(str(problem).split())
    return text if len(text) <= _MAX_PROBLEM else text[:_MAX_PROBLEM] + "..."


def _check_graph(root: yaml.Node | None) -> None:
    """Walk the composed nodes without recursion: a node met twice is an alias (the composer
    shares one node for every `*name`, so a billion laughs is refused before it expands)."""
    seen: set[int] = set()
    stack = [(root, 1)] if root is not None else []
    while stack:
        node, depth = stack.pop()
        if id(node) in seen:
            raise _Refused(f"YAML aliases are not allowed (a `*name` repeats the node at line "
                           f"{node.start_mark.line + 1}); write the value out")
        seen.add(id(node))
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        else:
            continue
        if depth > MAX_YAML_DEPTH:
            raise _too_deep(node.start_mark)
        stack.extend((child, depth + 1) for child in children)


def _too_deep(mark: Any) -> _Refused:
    return _Refused(f"YAML nests deeper than {MAX_YAML_DEPTH} levels (line {mark.line + 1}); "
                    "flatten the structure")


def _unique_keys(loader: yaml.constructor.SafeConstructor, node: yaml.MappingNode,
                 deep: bool) -> None:
    """A key given twice is an error instead of the last one silently winning."""
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
            seen.add(key)
        except TypeError:  # an unhashable key: SafeConstructor refuses it, with its own message
            continue
        if duplicate:
            raise _duplicate(key, key_node)


def _duplicate(key: Any, key_node: yaml.Node) -> yaml.constructor.ConstructorError:
    return yaml.constructor.ConstructorError(
        None, None, f"duplicate key {_one_line(repr(key))[:60]}: give it once",
        key_node.start_mark)


def _bounded_number(node: yaml.ScalarNode) -> None:
    if not str(node.value).strip():
        raise _Refused(f"the number at line {node.start_mark.line + 1} is empty (`!!int`, "
                       "`!!float`); write a number or drop the tag")
    if str(node.value).count(":") > _MAX_SEXAGESIMAL:
        raise _Refused(f"the number at line {node.start_mark.line + 1} has more than "
                       f"{_MAX_SEXAGESIMAL} `:` groups; quote it if it is text")


_Base: Any = yaml.constructor.SafeConstructor if TYPE_CHECKING else object


_RESOLVED: dict[tuple[str, Any], str] = {}  # (plain text, implicit) -> tag
_RESOLVED_CHARS, _RESOLVED_MAX = 64, 8192


class _StrictChecks(_Base):
    """What both strict readers add to their loader: the graph check (aliases, depth)
    before construction, unique keys, bounded numbers."""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        _check_graph(node)
        return node

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        # A plain scalar's tag depends on its text alone (SafeLoader has no path
        # resolvers): remembered for short texts, since manifests repeat theirs (`unit`,
        # `range`, `kg`...). The composer asks for every node, 130 a manifest.
        if kind is not yaml.ScalarNode or len(value) > _RESOLVED_CHARS:
            return super().resolve(kind, value, implicit)
        key = (value, implicit)
        tag = _RESOLVED.get(key)
        if tag is None:
            if len(_RESOLVED) >= _RESOLVED_MAX:
                _RESOLVED.clear()
            tag = _RESOLVED[key] = super().resolve(kind, value, implicit)
        return tag

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        _unique_keys(self, node, deep)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        _bounded_number(node)
        return super().construct_yaml_int(node)

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        _bounded_number(node)
        return super().construct_yaml_float(node)


class _PyStrictLoader(_StrictChecks, yaml.SafeLoader):
    """The strict reader on PyYAML's Python parser; its composer recurses, so depth is
    checked on the way down."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_YAML_DEPTH and self.check_event(yaml.SequenceStartEvent,
                                                                 yaml.MappingStartEvent):
                raise _too_deep(self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


_PyStrictLoader.add_constructor("tag:yaml.org,2002:int", _PyStrictLoader.construct_yaml_int)
_PyStrictLoader.add_constructor("tag:yaml.org,2002:float", _PyStrictLoader.construct_yaml_float)
_FAST: Any = _PyStrictLoader

if yaml.__with_libyaml__:
    class _CStrictLoader(_StrictChecks, yaml.CSafeLoader):
        """The strict reader on libyaml: composed in C (nesting capped there at 1,000),
        then checked by `_check_graph` before anything is constructed."""

    _CStrictLoader.add_constructor("tag:yaml.org,2002:int", _CStrictLoader.construct_yaml_int)
    _CStrictLoader.add_constructor("tag:yaml.org,2002:float",
                                   _CStrictLoader.construct_yaml_float)
    _FAST = _CStrictLoader


def parse_manifest(text: str, *, source: str = "module.yaml") -> Manifest:
    """Validate manifest text; raises `ManifestError` naming `source` and the field."""
    from registry.core.manifest import MAX_MANIFEST_BYTES, Manifest, format_validation_error

    if len(text.encode()) > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{source}: file is over {MAX_MANIFEST_BYTES} bytes; manifests are "
                            "small, keep data and weights in separate files")
    data = load_yaml(text, source=source)
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
    fd, tmp = tempfile.mkstemp(prefix=TEMP_PREFIX, suffix=".yaml", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        crash_point("manifest-temp")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; a manifest is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise



