"""Budget verdicts: the one rule, used by the gate and by the web pages.

A budget line compares one figure with its limit: `pass` or `fail`; `none`
when there is no figure; `info` for an energy figure that was estimated, not
measured (reported, never gated: a CPU-seconds × watts estimate is noisy).
Accuracy, FLOPs and parameters are exact and always gated.

Example:
    >>> [v.verdict for v in verdicts(manifest, recorded_figures(manifest))]
    ['pass', 'pass']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from registry.core.manifest import Manifest

__all__ = ["BUDGETS", "Budget", "BudgetVerdict", "recorded_figures", "verdicts"]

Figures = dict[str, tuple[float | None, str | None]]  # figure -> (value, method)


@dataclass(frozen=True)
class Budget:
    key: str  # the manifest's `budget.<key>`
    figure: str  # what it bounds
    bound: str  # "max" | "min"
    unit: str = ""

    @property
    def energy(self) -> bool:
        return self.figure in ("energy", "training_energy")


BUDGETS = (
    Budget("min_r2", "r2", "min"),
    Budget("max_nrmse", "nrmse", "max"),
    Budget("max_rmse", "rmse", "max"),
    Budget("max_rel_error", "max_rel_error", "max"),
    Budget("max_flops_per_sample", "flops", "max"),
    Budget("max_params", "params", "max"),
    Budget("max_energy_j_per_sample", "energy", "max", " J"),
    Budget("max_training_energy_j", "training_energy", "max", " J"),
)


@dataclass(frozen=True)
class BudgetVerdict:
    budget: Budget
    limit: float
    value: float | None
    method: str | None
    verdict: str  # pass | fail | info | none
    within: bool | None  # the figure is within the limit (None: no figure)

    @property
    def estimated(self) -> bool:
        return is_estimate(self.method)

    @property
    def symbol(self) -> str:
        return "≤" if self.budget.bound == "max" else "≥"


def is_estimate(method: str | None) -> bool:
    return bool(method) and str(method).startswith("estimated")


def recorded_figures(manifest: Manifest) -> Figures:
    """The figures a manifest records, with how each was obtained."""
    cost, metrics = manifest.cost, (manifest.evaluation.metrics if manifest.evaluation else {})
    energy, training = cost.energy_j_per_sample, cost.training
    figures: Figures = {
        "flops": (cost.flops_per_sample, "exact"),
        "params": (cost.params, "exact"),
        "energy": (energy.value if energy else None, energy.method if energy else None),
        "training_energy": (training.energy_j if training else None,
                            training.method if training else None),
    }
    for metric in ("r2", "rmse", "nrmse", "max_rel_error"):
        figures[metric] = (metrics.get(metric), "evaluation")
    return figures


def verdicts(manifest: Manifest, figures: Figures) -> list[BudgetVerdict]:
    """A verdict for each budget the manifest declares, in `BUDGETS` order."""
    found = []
    for budget in BUDGETS:
        limit = getattr(manifest.budget, budget.key)
        if limit is None:
            continue
        value, method = figures.get(budget.figure, (None, None))
        if value is None:
            found.append(BudgetVerdict(budget, limit, None, method, "none", None))
            continue
        within = value <= limit if budget.bound == "max" else value >= limit
        gated = not budget.energy or (method or "").startswith("measured:")
        verdict = ("pass" if within else "fail") if gated else "info"
        found.append(BudgetVerdict(budget, limit, value, method, verdict, within))
    return found
