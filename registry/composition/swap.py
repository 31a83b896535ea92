"""Swapping a node: replace a part of a composite by a module, checked end to end.

`replace_nodes(spec, {"residual": "baseball-lift@^1"})` turns the node into a
module node wired to the same ports, keeping the rest of the spec.
`check_swap` then runs both networks on the composite's evaluation data (and an
out-of-distribution set where one is given) and measures inference FLOPs and
latency before and after. A swap is accepted only within the composite's
budget: its declared accuracy budget (`min_r2`, `max_nrmse`, `max_rmse`) when
it has one, otherwise no regression against the network it replaces, with the
gate's tolerances (`registry.gate.checks`): nRMSE may grow by 0.1 % + 1e-6, r²
drop by 1e-6.

Example:
    >>> spec = replace_nodes(composite_spec, {"residual": "baseball-lift@^1"})
    >>> report = check_swap(before, after, manifest, x, y)
    >>> report.accepted, report.after["rmse"], report.flops_after
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from registry.composition.spec import ComposeSpec, Node
from registry.errors import CompositionError

if TYPE_CHECKING:
    import numpy as np
    import torch

    from registry.core.manifest import Manifest

__all__ = ["SwapReport", "check_swap", "register_swapped", "replace_nodes", "swap_registered"]


def replace_nodes(spec: ComposeSpec, replacements: Mapping[str, str]) -> ComposeSpec:
    """`spec` with each named node replaced by a module reference on the same ports."""
    nodes = dict(spec.nodes)
    for name, ref in replacements.items():
        node = nodes.get(name)
        if node is None:
            raise CompositionError(f"{spec.source}: --replace {name}={ref}: no node `{name}`; "
                                   f"the nodes are {sorted(nodes)}")
        # An mlp node's outputs map ports to units; a module node's map ports to names.
        outputs = {port: port for port in node.outputs} if node.mlp is not None \
            else dict(node.outputs)
        nodes[name] = Node(module=ref, inputs=dict(node.inputs), outputs=outputs)
    return spec.model_copy(update={"nodes": nodes})


@dataclass(frozen=True)
class SwapReport:
    """Accuracy and cost of a composite before and after a swap, and the verdict."""

    replaced: dict[str, str]  # node -> module reference
    before: dict[str, float]  # metrics on the evaluation data
    after: dict[str, float]
    flops_before: int
    flops_after: int
    latency_ns_before: float
    latency_ns_after: float
    accepted: bool
    reason: str
    ood_before: dict[str, float] | None = None
    ood_after: dict[str, float] | None = None
    registered: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"replaced": self.replaced, "before": self.before, "after": self.after,
                "ood_before": self.ood_before, "ood_after": self.ood_after,
                "flops_before": self.flops_before, "flops_after": self.flops_after,
                "flops_ratio": self.flops_before / max(self.flops_after, 1),
                "latency_ns_before": self.latency_ns_before,
                "latency_ns_after": self.latency_ns_after, "accepted": self.accepted,
                "reason": self.reason, "registered": self.registered, **self.extra}


def _metrics(net: torch.nn.Module, x: np.ndarray, y: np.ndarray) -> dict[str, float]:
    import torch

    from registry.evaluation import compute_metrics

    with torch.no_grad():
        predicted = net(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
    return compute_metrics(predicted.reshape(len(x), -1), y.reshape(len(x), -1))


def verdict(manifest: Manifest, before: Mapping[str, float],
            after: Mapping[str, float]) -> tuple[bool, str]:
    """Whether `after` is within the composite's accuracy budget (or does not regress)."""
    from registry.gate.checks import R2_TOLERANCE, RELATIVE_TOLERANCE

    budget = manifest.budget
    limits = [(key, metric, getattr(budget, key), lower)
              for key, metric, lower in (("min_r2", "r2", False), ("max_nrmse", "nrmse", True),
                                         ("max_rmse", "rmse", True))
              if getattr(budget, key) is not None]
    if limits:
        for key, metric, limit, lower in limits:
            ok = after[metric] <= limit if lower else after[metric] >= limit
            if not ok:
                return False, (f"{metric} after the swap {after[metric]:.6g} misses the "
                               f"budget {key}: {limit:.6g} (before: {before[metric]:.6g})")
        return True, "within the composite's budget"
    allowed = RELATIVE_TOLERANCE * before["nrmse"] + 1e-6
    if after["nrmse"] - before["nrmse"] > allowed:
        return False, (f"nRMSE after the swap {after['nrmse']:.6g} is worse than before "
                       f"{before['nrmse']:.6g} (rmse {after['rmse']:.6g} against "
                       f"{before['rmse']:.6g}); the composite declares no accuracy budget, so "
                       "a swap may not regress (set budget.max_nrmse to allow a trade-off)")
    if before["r2"] - after["r2"] > R2_TOLERANCE:
        return False, (f"r2 after the swap {after['r2']:.6g} is below {before['r2']:.6g}")
    return True, "no regression against the network it replaces"


def check_swap(before: torch.nn.Module, after: torch.nn.Module, manifest: Manifest,
               x: np.ndarray, y: np.ndarray, *, replaced: Mapping[str, str],
               ood: tuple[np.ndarray, np.ndarray] | None = None) -> SwapReport:
    """Evaluate both networks end to end; the report says whether the swap is accepted."""
    import torch

    from registry.cost.flops import count_module_flops
    from registry.cost.latency import measure_latency

    sample = torch.as_tensor(x[:16], dtype=torch.float32)
    flops_before = count_module_flops(before, sample, backward=False).forward
    flops_after = count_module_flops(after, sample, backward=False).forward
    batch = torch.as_tensor(x[:256], dtype=torch.float32)
    latency_before = measure_latency(before, batch).ns_per_sample
    latency_after = measure_latency(after, batch).ns_per_sample
    m_before, m_after = _metrics(before, x, y), _metrics(after, x, y)
    ok, reason = verdict(manifest, m_before, m_after)
    ood_before = ood_after = None
    if ood is not None:
        ood_before, ood_after = _metrics(before, *ood), _metrics(after, *ood)
    return SwapReport(dict(replaced), m_before, m_after, int(flops_before), int(flops_after),
                      latency_before, latency_after, ok, reason, ood_before, ood_after)


def swap_registered(loader: Any, resolved: Any, replacements: Mapping[str, str], *,
                    ood: Any = None) -> tuple[torch.nn.Module, SwapReport]:
    """Swap nodes of the registered composite `resolved` and check it on its evaluation data
    (and `ood`, an `.npz` path); returns the swapped network (the other nodes' trained
    weights kept) and the report, or raises `BudgetExceeded` (with both errors) when the swap
    loses more accuracy than the composite's budget allows."""
    import numpy as np

    from registry.composition.spec import read_spec
    from registry.core.arrays import open_npz

    manifest = resolved.manifest
    if manifest.kind != "composite" or manifest.composition is None:
        raise CompositionError(f"{resolved.exact} is a {manifest.kind}; only a composite's "
                               "nodes can be replaced")
    evaluation = manifest.evaluation
    if evaluation is None or evaluation.data is None:
        raise CompositionError(f"{resolved.where()}: evaluation.data: a swap is checked on the "
                               "composite's evaluation data, and it has none")
    where = resolved.where(manifest.composition.spec)
    spec = read_spec(resolved.read(manifest.composition.spec), source=where)
    before = loader.build(resolved)
    after = loader.compose(replace_nodes(spec, replacements), source=where)
    kept = {k: v for k, v in before.state_dict().items()
            if not any(k.startswith(f"nodes.{n}.") for n in replacements)}
    after.load_state_dict(kept, strict=False)
    after.eval()  # safe: nn.Module.eval switches off training mode

    def arrays(data: bytes, source: str) -> tuple[np.ndarray, np.ndarray]:
        with open_npz(data, where=source) as loaded:
            missing = [n for n in [*before.input_names, *before.output_names]
                       if n not in loaded.files]
            if missing:
                raise CompositionError(f"{source}: arrays {missing} are missing")
            return (np.stack([loaded[n] for n in before.input_names], axis=1),
                    np.stack([loaded[n] for n in before.output_names], axis=1))

    x, y = arrays(resolved.read(evaluation.data.path), resolved.where(evaluation.data.path))
    out_of = arrays(ood.read_bytes(), str(ood)) if ood is not None else None
    report = check_swap(before, after, manifest, x, y, replaced=replacements, ood=out_of)
    if not report.accepted:
        from registry.errors import BudgetExceeded

        swapped = ", ".join(f"{n}={r}" for n, r in replacements.items())
        raise BudgetExceeded(f"{resolved.exact}: the swap {swapped} is refused: {report.reason}")
    return after, report


def register_swapped(resolved: Any, net: Any, replacements: Mapping[str, str], *, name: str,
                     register_composite: Any) -> str:
    """Register the swapped network as `name`'s next minor version (its evaluation data kept
    from the composite it was swapped in); returns the tag."""
    import tempfile
    from pathlib import Path

    manifest = resolved.manifest
    assert manifest.evaluation is not None and manifest.evaluation.data is not None
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "evaluation.npz"
        data.write_bytes(resolved.read(manifest.evaluation.data.path))
        result = register_composite(
            net, name=name, evaluation_data=data, bump="minor",
            summary=f"{manifest.summary} (nodes {', '.join(replacements)} swapped for "
                    f"{', '.join(replacements.values())})")
    return str(result.tag)
