"""Budget verdicts: the one rule, used by the gate and by the web pages.

A budget line compares one figure with its limit: `pass` or `fail`; `none`
when there is no figure. Accuracy, FLOPs and parameters are exact and always
gated. An energy budget binds the figure `budget.energy_figure` (and
`training_energy_figure`) names:

- `modeled` (the default): exact and machine independent (`modeled:<table>`),
  gated with no tolerance, the same verdict on every machine;
- `measured`: gated where a hardware counter measured it (`measured:rapl`,
  `measured:nvml`), failing only beyond `MEASURED_TOLERANCE` over the limit
  (counters are noisy); an estimate (`estimated:*`, CPU-seconds × watts) is
  `info`: reported, never gated.

Example:
    >>> [v.verdict for v in verdicts(manifest, recorded_figures(manifest))]
    ['pass', 'pass']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from registry.core.manifest import Manifest

__all__ = ["BUDGETS", "MEASURED_TOLERANCE", "Budget", "BudgetVerdict", "energy_figures",
           "recorded_figures", "verdicts"]

MEASURED_TOLERANCE = 0.10  # a measured energy fails only 10 % over its limit

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
    figures: Figures = {
        "flops": (cost.flops_per_sample, "exact"),
        "params": (cost.params, "exact"),
        **energy_figures(manifest),
    }
    for metric in ("r2", "rmse", "nrmse", "max_rel_error"):
        figures[metric] = (metrics.get(metric), "evaluation")
    return figures


def energy_figures(manifest: Manifest) -> Figures:
    """Every recorded energy figure (`energy:modeled`, `energy:measured`, and the same for
    `training_energy`), and under `energy` / `training_energy` the one the budget binds."""
    cost, budget = manifest.cost, manifest.budget
    measured, modeled, training = (cost.energy_j_per_sample, cost.energy_modeled_j_per_sample,
                                   cost.training)
    trained = training.energy_modeled if training else None
    figures: Figures = {
        "energy:modeled": (modeled.value, modeled.method) if modeled else (None, None),
        "energy:measured": (measured.value, measured.method) if measured else (None, None),
        "training_energy:modeled": (trained.value, trained.method) if trained else (None, None),
        "training_energy:measured": ((training.energy_j, training.method) if training
                                     else (None, None)),
    }
    figures["energy"] = figures[f"energy:{budget.energy_figure or 'modeled'}"]
    figures["training_energy"] = figures[
        f"training_energy:{budget.training_energy_figure or 'modeled'}"]
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
        how = method or ""
        if not budget.energy or how.startswith("modeled:"):
            verdict = "pass" if within else "fail"  # exact: no tolerance
        elif how.startswith("measured:"):
            verdict = "pass" if value <= limit * (1 + MEASURED_TOLERANCE) else "fail"
        else:
            verdict = "info"  # an estimate: reported, never gated
        found.append(BudgetVerdict(budget, limit, value, method, verdict, within))
    return found
