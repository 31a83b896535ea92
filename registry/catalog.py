"""Search: which modules match a text, a kind and the units of their ports.

One matcher for every face: `registry list`, `GET /api/v1/modules` and the
web pages. A unit matches a port when it has the same dimension and scale
(`km` finds `1000*m`, not `m`).

Example:
    >>> query = SearchQuery.parse(text="drag", output_unit="N")
    >>> [row.name for row in store.latest() if query.matches_row(row)]
    ['drag', 'drag-net']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.errors import RegistryError

__all__ = ["SearchQuery", "WorkspaceModule", "search_store"]


@dataclass(frozen=True)
class WorkspaceModule:
    """A module of the working tree with no registered version (its manifest may be broken)."""

    name: str
    version: str | None = None
    kind: str | None = None
    summary: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def read(cls, root: Path | None, name: str) -> WorkspaceModule:
        """`modules/<name>/` of the working tree at `root` (None: a store without one)."""
        from registry.core.manifest import MANIFEST_FILE, load_manifest
        from registry.store.base import MODULES_DIR

        if root is None:
            return cls(name=name)
        try:
            manifest = load_manifest(root / MODULES_DIR / name / MANIFEST_FILE)
        except RegistryError as exc:
            return cls(name=name, error=str(exc))
        return cls(name=name, version=manifest.version, kind=manifest.kind,
                   summary=manifest.summary, inputs=manifest.port_units("inputs"),
                   outputs=manifest.port_units("outputs"))

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "kind": self.kind,
                "summary": self.summary, "inputs": self.inputs, "outputs": self.outputs,
                "error": self.error}


@dataclass(frozen=True)
class SearchQuery:
    text: str = ""
    kind: str | None = None
    input_unit: Any = None  # a parsed pint unit
    output_unit: Any = None

    @classmethod
    def parse(cls, *, text: str | None = None, kind: str | None = None,
              input_unit: str | None = None, output_unit: str | None = None) -> SearchQuery:
        """Units are parsed here, so a bad one is an error naming the field."""
        from registry.core.units import parse_unit

        return cls(text=(text or "").strip().casefold(), kind=kind or None,
                   input_unit=parse_unit(input_unit, where="input_unit")
                   if input_unit is not None else None,
                   output_unit=parse_unit(output_unit, where="output_unit")
                   if output_unit is not None else None)

    @property
    def by_content(self) -> bool:
        """True when the query needs a module's manifest (kind or units), not just its name."""
        return self.kind is not None or self.input_unit is not None or \
            self.output_unit is not None

    def matches_text(self, name: str, summary: str | None) -> bool:
        return not self.text or self.text in name.casefold() or \
            self.text in (summary or "").casefold()

    def matches(self, name: str, summary: str | None, kind: str | None,
                inputs: dict[str, str], outputs: dict[str, str]) -> bool:
        if self.kind is not None and kind != self.kind:
            return False
        if not self.matches_text(name, summary):
            return False
        if self.input_unit is not None and not _has_unit(inputs, self.input_unit):
            return False
        return self.output_unit is None or _has_unit(outputs, self.output_unit)

    def matches_row(self, row: Any) -> bool:
        return self.matches(row.name, row.summary, row.kind, row.inputs, row.outputs)


def _has_unit(ports: dict[str, str], wanted: Any) -> bool:
    from registry.core.units import parse_unit, units_match

    for unit in ports.values():
        try:
            if units_match(parse_unit(unit), wanted):
                return True
        except RegistryError:
            continue
    return False


def search_store(store: Any, root: Path | None,
                 query: SearchQuery) -> tuple[list[Any], list[WorkspaceModule]]:
    """(the latest registered version of each module `query` matches, the matching modules of
    the working tree with no registered version; broken ones match by name only)."""
    modules = [row for row in store.latest(query.kind) if query.matches_row(row)]
    pending = []
    for name in store.unregistered():
        entry = WorkspaceModule.read(root, name)
        if entry.error is not None:
            if not query.by_content and query.matches_text(name, None):
                pending.append(entry)
        elif query.matches(name, entry.summary, entry.kind, entry.inputs, entry.outputs):
            pending.append(entry)
    return modules, pending
