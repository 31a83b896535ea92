"""Distilling a registered module: the teacher's ranges, an MLflow run, costs side by side.

`Registry.distill(ref)` resolves and builds the teacher, then calls
`distill_registered`: the teacher is sampled over its declared input ranges
and queried as a black box; the run is logged to MLflow; the equation found
is measured beside the teacher and, with `out`, written as a module folder
(module.yaml, pareto.png, distill.json) for `registry register`.

Example:
    >>> report = distill_registered(resolved, teacher, root=root, commit=head, budget_s=60)
    >>> report.result.equations, report.student_cost.flops.forward
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.core.manifest import MANIFEST_FILE, MlflowRun, write_manifest
from registry.errors import ManifestError

if TYPE_CHECKING:
    from registry.cost.measure import ModuleCost
    from registry.distillation import DistillResult
    from registry.nn.ports import PortModule
    from registry.store.base import Resolved

__all__ = ["DistillReport", "distill_registered"]


@dataclass(frozen=True)
class DistillReport:
    """What a distillation found, and the cost of the student beside the teacher's."""

    result: DistillResult
    teacher: str
    folder: Path | None = None
    teacher_cost: ModuleCost | None = None
    student_cost: ModuleCost | None = None
    tolerance: float | None = None


def default_tolerance(resolved: Resolved) -> float:
    """Twice the teacher's recorded test nRMSE (a network is trusted only that far)."""
    teacher = resolved.manifest
    recorded = teacher.evaluation.metrics.get("nrmse") if teacher.evaluation else None
    return max(2 * recorded, 1e-5) if recorded else 1e-5


def distill_registered(resolved: Resolved, module: PortModule, *, root: Path,
                       commit: str | None, budget_s: float = 60.0, name: str | None = None,
                       out: Path | None = None, tolerance: float | None = None) -> DistillReport:
    """Distil the built teacher `module` of `resolved` into an equation module."""
    from registry.cost.measure import measure_cost
    from registry.distillation import distill
    from registry.mlflow.tracking import mlflow_run

    teacher = resolved.manifest
    missing = [n for n, p in teacher.inputs.items() if p.range is None]
    if missing:
        raise ManifestError(f"{resolved.where(MANIFEST_FILE)}: inputs {missing} have no "
                            "`range`; the distiller samples the teacher over the ranges")
    tolerance = default_tolerance(resolved) if tolerance is None else tolerance
    name = name or f"{teacher.name}-distilled"
    with mlflow_run("distill", root=root, run_name=f"distill-{teacher.name}",
                    params={"teacher": teacher.ref, "name": name, "budget_s": budget_s,
                            "tolerance": tolerance},
                    tags={"git_commit": commit}) as run:
        result = distill(module, inputs={n: (p.unit, p.range)  # type: ignore[misc]
                                         for n, p in teacher.inputs.items()},
                         outputs={n: p.unit for n, p in teacher.outputs.items()},
                         budget_s=budget_s, tolerance=tolerance)
        energy = result.energy
        run.set_tags({"found": str(result.found),
                      "energy_method": energy.method if energy else "none"})
        run.log_metrics({**({"distill_energy_j": energy.energy_j,
                             "distill_cpu_s": energy.cpu_s} if energy else {}),
                         **{f"nrmse_{o}": c.nrmse for o, c in result.chosen.items()},
                         **{f"complexity_{o}": c.complexity for o, c in result.chosen.items()}})
        if not result.found:
            return DistillReport(result, teacher.ref, tolerance=tolerance)
        manifest = result.manifest(name, distilled_from=teacher.ref,
                                   summary=f"Equation distilled from {teacher.ref}")
        manifest.provenance.mlflow = MlflowRun(run_id=run.run_id, experiment=run.experiment)
        from registry.core.semantics import validate_equations
        from registry.nn.equation import EquationModule

        student = EquationModule(validate_equations(manifest, source=f"{name} (distilled)"),
                                 inputs=list(manifest.inputs))
        student_cost = measure_cost(student, manifest)
        teacher_cost = measure_cost(module, teacher)
        run.log_metrics({"student_flops_per_sample": student_cost.flops.forward,
                         "teacher_flops_per_sample": teacher_cost.flops.forward})
    folder = None
    if out is not None:
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        write_manifest(manifest, folder / MANIFEST_FILE)
        result.plot(folder / "pareto.png")
        summary: dict[str, Any] = {**result.to_dict(), "teacher": teacher.ref,
                                   "tolerance": tolerance,
                                   "teacher_cost": teacher_cost.to_dict(),
                                   "student_cost": student_cost.to_dict()}
        (folder / "distill.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    return DistillReport(result, teacher.ref, folder, teacher_cost, student_cost, tolerance)
