"""Alternatives: modules that implement the same interface, compared by accuracy and cost.

Two modules are alternatives when their input ports and their output ports have the
same names in the same order (a module is called with a tensor whose columns are its
inputs) and each port's unit has the same dimension and scale (`N` and `kg*m/s^2`
match, `kN` does not). `drag`, `drag-eq`, `drag-net` and its shrunk variants all
compute `F` in N from `rho, C_d, A, v`.

Each alternative is shown with its recorded figures: nRMSE on its own evaluation,
FLOPs per sample, modeled energy per sample (exact, machine independent) and
latency at batch 4096 (measured when registered). With `measure`, every one is
re-evaluated on the asked module's evaluation (all judged on the same ground
truth) and its FLOPs, modeled energy and weight bytes are counted afresh (a
module registered before the registry recorded a figure gets it too).
`select` returns the cheapest by one figure among those within an error budget;
a compose spec asks for the same with `module: best(drag, max_nrmse=0.01)` (or
`best(drag, max_nrmse=0.01, by=energy)`), pinned to the exact version at compose time.

Example:
    >>> [a.ref for a in find_alternatives(store, "drag")]
    ['drag@1.0.1', 'drag-eq@1.0.1', 'drag-net@1.0.2', 'drag-net-int8@1.0.0']
    >>> select(find_alternatives(store, "drag"), max_nrmse=0.01, by="flops", asked="drag").ref
    'drag@1.0.1'
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from registry.errors import BudgetExceeded, ManifestError, RegistryError

if TYPE_CHECKING:
    from registry.core.manifest import Manifest
    from registry.store.base import Resolved

__all__ = ["BY", "Alternative", "choose_best", "find_alternatives", "is_best", "pareto_front",
           "parse_best", "same_interface", "select"]

BY = ("flops", "energy", "latency")
_BEST = re.compile(r"^best\(\s*([a-z][a-z0-9-]{0,62})\s*((?:,\s*[a-z_]+\s*=\s*[^,()\s]+\s*)*)\)$")


@dataclass(frozen=True)
class Alternative:
    """One module implementing the interface, with the figures it is compared by."""

    ref: str
    kind: str
    source: str
    nrmse: float | None
    flops: int | None
    energy_j: float | None  # modeled, per sample
    latency_ns: float | None  # measured at registration, per sample at batch 4096
    weight_bytes: int | None
    derived_from: str | None
    accuracy_on: str  # whose evaluation the nRMSE is measured on
    pareto: bool = False  # on the front of nRMSE against FLOPs

    @property
    def name(self) -> str:
        return self.ref.partition("@")[0]

    def figure(self, by: str) -> float | None:
        return {"flops": self.flops, "energy": self.energy_j, "latency": self.latency_ns}[by]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def same_interface(a: Manifest, b: Manifest) -> bool:
    """The same input and output port names, in order, with units of equal dimension and
    scale."""
    from registry.core.units import same_unit

    for mine, theirs in ((a.inputs, b.inputs), (a.outputs, b.outputs)):
        if list(mine) != list(theirs):
            return False
        try:
            if not all(same_unit(mine[n].unit, theirs[n].unit) for n in mine):
                return False
        except RegistryError:  # a unit that does not parse implements nothing
            return False
    return True


def _describe(manifest: Manifest, *, accuracy_on: str,
              measured: dict[str, Any] | None = None) -> Alternative:
    cost = manifest.cost
    modeled = cost.energy_modeled_j_per_sample
    latency = cost.latency_ns_per_sample
    metrics = manifest.evaluation.metrics if manifest.evaluation else {}
    figures = {"nrmse": metrics.get("nrmse"), "flops": cost.flops_per_sample,
               "energy_j": modeled.value if modeled else None,
               "weight_bytes": cost.weight_bytes, **(measured or {})}
    return Alternative(ref=manifest.ref, kind=manifest.kind, source=manifest.provenance.source,
                       nrmse=figures["nrmse"], flops=figures["flops"],
                       energy_j=figures["energy_j"],
                       latency_ns=latency.value if latency else None,
                       weight_bytes=figures["weight_bytes"],
                       derived_from=manifest.provenance.derived_from, accuracy_on=accuracy_on)


def find_alternatives(store: Any, ref: str, *,
                      measure: Callable[[Resolved, Resolved], dict[str, Any]] | None = None
                      ) -> list[Alternative]:
    """`ref` and the latest version of every registered module with its interface, most
    accurate first. With `measure(asked, candidate)`, each one's figures come from it (its
    nRMSE on the asked module's evaluation, its FLOPs, modeled energy and weight bytes
    counted afresh) instead of its recorded ones."""
    from registry.core.manifest import Manifest

    asked = store.resolve(ref)
    found: dict[str, Any] = {asked.manifest.name: asked.manifest}
    wanted_inputs = asked.manifest.port_units("inputs")
    wanted_outputs = asked.manifest.port_units("outputs")
    for row in store.latest(None, manifests=True):
        if row.name in found or list(row.inputs) != list(wanted_inputs) or \
                list(row.outputs) != list(wanted_outputs):
            continue  # names first: most modules are ruled out without parsing a manifest
        manifest = (Manifest.model_validate(row.manifest) if row.manifest is not None
                    else store.resolve(row.ref).manifest)  # a server lists rows only
        if same_interface(asked.manifest, manifest):
            found[row.name] = manifest
    described = []
    for manifest in found.values():
        if measure is None:
            described.append(_describe(manifest, accuracy_on=manifest.ref))
            continue
        candidate = asked if manifest.ref == asked.manifest.ref else store.resolve(manifest.ref)
        described.append(_describe(manifest, accuracy_on=asked.manifest.ref,
                                   measured=measure(asked, candidate)))
    front = set(pareto_front(described, by="flops"))
    ranked = [replace(a, pareto=a.ref in front) for a in described]
    return sorted(ranked, key=lambda a: (math.inf if a.nrmse is None else a.nrmse, a.ref))


def pareto_front(alternatives: Sequence[Alternative], *, by: str = "flops") -> list[str]:
    """The refs no other alternative beats on both nRMSE and `by` (ties kept), cheapest
    first."""
    points = [(a, float(cost), a.nrmse) for a in alternatives
              if a.nrmse is not None and (cost := a.figure(by)) is not None]
    front = [(a, cost, error) for a, cost, error in points
             if not any(c <= cost and e <= error and (c < cost or e < error)
                        for _, c, e in points)]
    return [a.ref for a, _, _ in sorted(front, key=lambda p: (p[1], p[2]))]


def select(alternatives: Sequence[Alternative], *, max_nrmse: float, by: str = "flops",
           asked: str) -> Alternative:
    """The cheapest alternative by `by` whose nRMSE is at most `max_nrmse` (ties: the more
    accurate); `BudgetExceeded` naming the most accurate one when none is."""
    if by not in BY:
        raise RegistryError(f"--by {by}: choose one of {', '.join(BY)}")
    if not max_nrmse > 0 or not math.isfinite(max_nrmse):
        raise RegistryError(f"--max-nrmse {max_nrmse}: give a positive, finite error budget")
    meeting = [a for a in alternatives if a.nrmse is not None and a.nrmse <= max_nrmse
               and a.figure(by) is not None]
    if meeting:
        return min(meeting, key=lambda a: (a.figure(by), a.nrmse, a.ref))
    scored = [a for a in alternatives if a.nrmse is not None]
    if not scored:
        raise BudgetExceeded(f"no alternative of {asked} records an nRMSE to compare; register "
                             "them with evaluation data")
    best = min(scored, key=lambda a: (a.nrmse, a.ref))
    unpriced = "" if best.figure(by) is not None else f" (and it records no {by} figure)"
    raise BudgetExceeded(f"no alternative of {asked} meets max_nrmse {max_nrmse:g}: the most "
                         f"accurate of the {len(alternatives)} is {best.ref} at nRMSE "
                         f"{best.nrmse:.3g}{unpriced}; loosen the budget or register a more "
                         "accurate module")


def is_best(ref: str) -> bool:
    return ref.lstrip().startswith("best(")


def parse_best(text: str) -> tuple[str, float, str]:
    """`best(NAME, max_nrmse=X[, by=flops|energy|latency])` -> (name, max_nrmse, by): parsed
    with a pattern, never evaluated. The composer names the spec's field when this refuses."""
    match = _BEST.match(text.strip())
    if match is None:
        raise ManifestError(f"{text!r}: write `best(NAME, max_nrmse=X)` or `best(NAME, "
                               "max_nrmse=X, by=flops|energy|latency)`")
    options = dict(part.split("=", 1) for part in re.split(r"\s*,\s*", match[2].strip(" ,"))
                   if part)
    options = {k.strip(): v.strip() for k, v in options.items()}
    unknown = sorted(set(options) - {"max_nrmse", "by"})
    if unknown or "max_nrmse" not in options:
        raise ManifestError(f"{text!r}: `best` takes max_nrmse= (required) and by= "
                               f"(got {', '.join(options) or 'nothing'})")
    try:
        budget = float(options["max_nrmse"])
    except ValueError:
        raise ManifestError(f"{text!r}: max_nrmse must be a number, got "
                               f"{options['max_nrmse']!r}") from None
    by = options.get("by", "flops")
    if by not in BY:
        raise ManifestError(f"{text!r}: by must be one of {', '.join(BY)}, got {by!r}")
    return match[1], budget, by


def choose_best(store: Any, text: str) -> str:
    """The exact reference `best(...)` stands for now (pinned by the composer)."""
    name, budget, by = parse_best(text)
    return select(find_alternatives(store, name), max_nrmse=budget, by=by, asked=name).ref
