"""The gate's budget check: one line per declared budget, through `gate.budgets`' rule.

Example:
    >>> [r.verdict for r in budget_results(manifest, measured)]
    ['pass', 'fail']
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from registry.gate.checks import CheckResult, _g

if TYPE_CHECKING:
    from registry.core.manifest import Manifest
    from registry.gate.budgets import BudgetVerdict

__all__ = ["budget_results"]


def budget_results(manifest: Manifest, measured: dict[str, Any]) -> Iterator[CheckResult]:
    """The gate's budget lines: energies as `budget.energy_figure` says (modeled: afresh,
    exact), accuracy and cost measured afresh."""
    from registry.gate.budgets import recorded_figures, verdicts

    metrics = measured.get("metrics", {})
    figures = recorded_figures(manifest)  # energies as recorded; the rest measured afresh
    figures.update({m: (metrics.get(m), "evaluation") for m in ("r2", "nrmse", "rmse",
                                                               "max_rel_error")})
    figures["flops"] = (measured["flops"], "exact")
    figures["params"] = (measured["params"], "exact")
    if (manifest.budget.energy_figure or "modeled") == "modeled":  # exact: modeled afresh
        figures["energy"] = measured["energy:modeled"]
    found = verdicts(manifest, figures)
    for v in found:
        key, check = v.budget.key, f"budget:{v.budget.key}"
        if v.budget.energy:
            limit = f"≤ {_g(v.limit)} J"
            if v.value is None:
                yield CheckResult(check, "fail", budget=limit,
                                  detail="no recorded figure; register (or train) the module to "
                                         "measure it")
                continue
            yield CheckResult(check, v.verdict, value=f"{_g(v.value)} J ({v.method})",
                              budget=limit, detail=_energy_detail(manifest, v))
        elif v.budget.figure in ("flops", "params"):
            assert v.value is not None
            value = int(v.value)
            what = "FLOPs per sample" if v.budget.figure == "flops" else "parameters"
            yield CheckResult(check, v.verdict, value=str(value), budget=f"≤ {int(v.limit)}",
                              detail="" if v.within else f"{manifest.name}: {value} {what} "
                              f"exceed the budget {key}: {int(v.limit)}")
        elif v.value is None:
            yield CheckResult(check, "fail", budget=_g(v.limit),
                              detail=f"{v.budget.figure} could not be measured")
        else:
            yield CheckResult(check, v.verdict, value=_g(v.value),
                              budget=f"{v.symbol} {_g(v.limit)}",
                              detail="" if v.within else f"{manifest.name}: {v.budget.figure} "
                              f"{_g(v.value)} misses the budget {key}: {_g(v.limit)}")
    if not found:
        yield CheckResult("budget", "skip", detail="no budget declared")


def _energy_detail(manifest: Manifest, v: BudgetVerdict) -> str:
    """Why an energy line reads as it does; a failure names the module, figure and method."""
    if v.verdict == "info":
        return "estimated, not measured: reported, not gated" + (
            "" if v.within else " (over budget)")
    if v.verdict == "fail":
        what = "training energy" if v.budget.figure == "training_energy" else \
            "energy per sample"
        return (f"{manifest.name}: {what} {_g(v.value or 0)} J ({v.method}) exceeds the budget "
                f"{v.budget.key}: {_g(v.limit)} J")
    return ""
