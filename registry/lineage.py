"""Lineage: where a module came from, down to the node of a composite.

The tree follows the provenance every manifest records: `distilled_from` (a
module version, or a part of one: `baseball-flight@1.0.2#residual`),
`derived_from` (the teacher a shrunk variant was made from, with the method) and
`parents` (the exact versions a composite wires in), recursively. A distilled
part shows the node it was recorded from, then the composite that holds it,
then that composite's parents and their teachers.

Example:
    >>> print(render(lineage(store.resolve, "baseball-lift@1.0.0")))
    baseball-lift@1.0.0  equation, distilled
    └── distilled from node residual of baseball-flight@1.0.2 (4096 rows recorded)
        └── baseball-flight@1.0.2  composite, composed
            ├── parent drag@1.0.1  equation, hand-written
            └── parent gravity@1.0.1  equation, hand-written
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from registry.core.reference import split_part
from registry.errors import RegistryError

if TYPE_CHECKING:
    from registry.store.base import Resolved

__all__ = ["MAX_DEPTH", "LineageNode", "lineage", "render"]

MAX_DEPTH = 32


@dataclass
class LineageNode:
    ref: str
    relation: str = ""  # how its parent in the tree came from it: "distilled from", "parent"
    kind: str | None = None
    source: str | None = None  # provenance.source
    part: str | None = None  # a node of `ref` (the tree's parent was distilled from it)
    detail: str = ""
    missing: str | None = None  # why it could not be resolved
    children: list[LineageNode] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "relation": self.relation, "kind": self.kind,
                "source": self.source, "part": self.part, "detail": self.detail,
                "missing": self.missing, "children": [c.to_dict() for c in self.children]}

    def refs(self) -> list[str]:
        """Every reference in the tree, depth first."""
        return [self.ref, *(r for c in self.children for r in c.refs())]


def lineage(resolve: Callable[[str], Resolved], ref: str) -> LineageNode:
    """The provenance tree of `ref`, through `resolve` (any store's)."""
    return _node(resolve, ref, "", frozenset(), 0)


def _node(resolve: Callable[[str], Resolved], ref: str, relation: str, seen: frozenset[str],
          depth: int) -> LineageNode:
    try:
        resolved = resolve(ref)
    except RegistryError as exc:
        return LineageNode(ref, relation, missing=str(exc).splitlines()[0])
    manifest = resolved.manifest
    node = LineageNode(resolved.exact, relation, manifest.kind, manifest.provenance.source)
    if resolved.exact in seen or depth >= MAX_DEPTH:
        node.missing = "a cycle in the provenance" if resolved.exact in seen else "too deep"
        return node
    seen = seen | {resolved.exact}
    teacher = manifest.provenance.distilled_from
    if teacher:
        module_ref, part = split_part(teacher)
        child = _node(resolve, module_ref, "distilled from", seen, depth + 1)
        child.part = part
        recorded = manifest.provenance.recorded
        if part is not None and recorded is not None:
            child.detail = (f"{recorded.rows} rows recorded in {recorded.calls} calls, "
                            f"sha256 {recorded.sha256[:12]}…")
        node.children.append(child)
    derived = manifest.provenance.derived_from
    if derived:
        child = _node(resolve, derived, "derived from", seen, depth + 1)
        how = manifest.provenance.derivation
        if how is not None:
            settings = ", ".join(f"{k} {v}" for k, v in how.settings.items())
            child.detail = f"{how.method}: {settings}" + (f", {how.steps} steps"
                                                          if how.steps else "")
        node.children.append(child)
    for parent in manifest.provenance.parents:
        node.children.append(_node(resolve, parent, "parent", seen, depth + 1))
    return node


def render(tree: LineageNode) -> str:
    """The tree as indented text."""
    lines = [_label(tree)]

    def walk(node: LineageNode, prefix: str) -> None:
        for i, child in enumerate(node.children):
            last = i == len(node.children) - 1
            lines.append(f"{prefix}{'└── ' if last else '├── '}{_label(child)}")
            walk(child, prefix + ("    " if last else "│   "))

    walk(tree, "")
    return "\n".join(lines)


def _label(node: LineageNode) -> str:
    what = ", ".join(x for x in (node.kind, node.source) if x)
    head = f"{node.relation} " if node.relation else ""
    if node.part is not None:
        head += f"node {node.part} of "
    text = f"{head}{node.ref}" + (f"  {what}" if what else "")
    if node.detail:
        text += f" ({node.detail})"
    if node.missing:
        text += f"  [not resolvable: {node.missing}]"
    return text
