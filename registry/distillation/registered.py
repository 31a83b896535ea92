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
    from collections.abc import Callable

    from registry.cost.measure import ModuleCost
    from registry.distillation import DistillResult
    from registry.distillation.recording import Recording
    from registry.loading import Loader
    from registry.nn.ports import PortModule
    from registry.store.base import Resolved

__all__ = ["DistillReport", "distill_part", "distill_reference", "distill_registered"]


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
                       out: Path | None = None, tolerance: float | None = None,
                       jobs: int = 1, cluster: str | None = None,
                       load: Callable[[], Any] | None = None) -> DistillReport:
    """Distil the built teacher `module` of `resolved` into an equation module (`jobs`,
    `cluster`: its outputs side by side on Dask, the workers building it with `load`)."""
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
        result = distill(_shipped(module, load), inputs={n: (p.unit, p.range)
                                                         for n, p in teacher.inputs.items()},
                         outputs={n: p.unit for n, p in teacher.outputs.items()},
                         budget_s=budget_s, tolerance=tolerance, jobs=jobs, cluster=cluster)
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
        teacher_cost, student_cost = _costs(manifest, module, teacher, run)
    folder = None
    if out is not None:
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        _write_folder(folder, manifest, result, {"teacher": teacher.ref, "tolerance": tolerance},
                      teacher_cost, student_cost)
    return DistillReport(result, teacher.ref, folder, teacher_cost, student_cost, tolerance)


def _shipped(module: Any, load: Callable[[], Any] | None) -> Any:
    """The teacher as the distiller gets it: the built module, which travels to tasks in
    other processes by name (`LoadedTeacher`) when `load` is given."""
    from registry.distillation.teacher import LoadedTeacher

    return module if load is None else LoadedTeacher(load, module)


def _costs(manifest: Any, teacher: PortModule, teacher_manifest: Any,
           run: Any) -> tuple[ModuleCost, ModuleCost]:
    """The teacher's and the distilled equation's cost, measured side by side and logged."""
    from registry.core.semantics import validate_equations
    from registry.cost.measure import measure_cost
    from registry.nn.equation import EquationModule

    student = EquationModule(validate_equations(manifest, source=f"{manifest.name} (distilled)"),
                             inputs=list(manifest.inputs))
    student_cost = measure_cost(student, manifest)
    teacher_cost = measure_cost(teacher, teacher_manifest)
    run.log_metrics({"student_flops_per_sample": student_cost.flops.forward,
                     "teacher_flops_per_sample": teacher_cost.flops.forward})
    return teacher_cost, student_cost


def _write_folder(folder: Path, manifest: Any, result: Any, details: dict[str, Any],
                  teacher_cost: ModuleCost, student_cost: ModuleCost) -> None:
    """module.yaml, pareto.png and distill.json (the result, `details`, both costs)."""
    write_manifest(manifest, folder / MANIFEST_FILE)
    result.plot(folder / "pareto.png")
    summary = {**result.to_dict(), **details, "teacher_cost": teacher_cost.to_dict(),
               "student_cost": student_cost.to_dict()}
    (folder / "distill.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")


EVALUATION_ROWS = 4096  # recorded rows kept in the module folder as its evaluation data
RECORDED_FILE = "recorded.npz"


def distill_part(recording: Recording, part: PortModule, *, distilled_from: str, root: Path,
                 commit: str | None, out: Path, budget_s: float = 60.0, name: str,
                 tolerance: float = 1e-2, seed: int = 0, jobs: int = 1,
                 cluster: str | None = None, load: Callable[[], Any] | None = None
                 ) -> DistillReport:
    """Distil a recorded part (`part`, queried on the points it saw) into an equation module
    at `<out>/<name>/`: module.yaml (distilled_from the part, the recording's hash), a sample
    of the recording as its evaluation data, pareto.png and distill.json."""
    import numpy as np

    from registry.core.integrity import sha256_file
    from registry.core.manifest import Recorded
    from registry.distillation import distill
    from registry.mlflow.tracking import mlflow_run

    points = recording.points()
    inputs = {n: (u, (float(points[n].min()), float(points[n].max())))
              for n, u in recording.inputs.items()}
    with mlflow_run("distill", root=root, run_name=f"distill-{distilled_from}",
                    params={"teacher": distilled_from, "name": name, "budget_s": budget_s,
                            "tolerance": tolerance, "recorded_rows": len(recording.x),
                            "recorded_calls": recording.calls},
                    tags={"git_commit": commit, "recorded_sha256": recording.sha256}) as run:
        result = distill(_shipped(part, load), inputs=inputs, outputs=recording.outputs,
                         budget_s=budget_s, tolerance=tolerance, seed=seed, points=points,
                         jobs=jobs, cluster=cluster)
        run.set_tags({"found": str(result.found)})
        run.log_metrics({f"nrmse_{o}": c.nrmse for o, c in result.chosen.items()})
        if not result.found:
            return DistillReport(result, distilled_from, tolerance=tolerance)
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        rows = np.random.default_rng(seed).choice(
            len(recording.x), size=min(EVALUATION_ROWS, len(recording.x)), replace=False)
        sample = {**{n: recording.x[rows, i] for i, n in enumerate(recording.inputs)},
                  **{n: recording.y[rows, i] for i, n in enumerate(recording.outputs)}}
        np.savez(folder / RECORDED_FILE, **sample)
        manifest = result.manifest(name, distilled_from=None,
                                   summary=f"Equation distilled from {distilled_from}")
        manifest.provenance.distilled_from = distilled_from
        manifest.provenance.recorded = Recorded(sha256=recording.sha256, rows=len(recording.x),
                                                calls=recording.calls)
        manifest.provenance.mlflow = MlflowRun(run_id=run.run_id, experiment=run.experiment)
        manifest = manifest.model_copy(update={"evaluation": _recorded_evaluation(
            folder / RECORDED_FILE, sha256_file(folder / RECORDED_FILE))})
        part_cost, student_cost = _costs(manifest, part, manifest, run)
    _write_folder(folder, manifest, result,
                  {"teacher": distilled_from, "tolerance": tolerance,
                   "recorded_sha256": recording.sha256, "recorded_rows": len(recording.x),
                   "recorded_calls": recording.calls}, part_cost, student_cost)
    return DistillReport(result, distilled_from, folder, part_cost, student_cost, tolerance)


def _recorded_evaluation(path: Path, sha256: str) -> Any:
    from registry.core.manifest import Evaluation

    return Evaluation.model_validate({"data": {"path": path.name, "sha256": sha256}})


def record_registered_node(resolved: Resolved, net: Any, node: str,
                           data: list[Path] | None = None) -> Recording:
    """Record the node `node` of the registered composite `resolved` (built as `net`) over
    the `.npz` files in `data` (its training data, where the part learned), else over its
    evaluation data. Rows of the composite's inputs run through it (through the ODE too);
    files that also hold every state variable run through its rates, at the states a
    residual trained on rates saw. (Rows an ODE evaluates after a sample's stop event are
    recorded too: they are calls the part saw, but off the flight; training states avoid
    them.)"""
    import numpy as np
    import torch

    from registry.core.arrays import open_npz
    from registry.distillation.recording import record_node

    names = list(net.input_names)
    dynamics = net.plan.spec.dynamics
    states = [*names, *dynamics.state] if dynamics is not None else None
    arrays: list[tuple[str, dict[str, np.ndarray]]] = []
    evaluation = resolved.manifest.evaluation
    if not data and evaluation is not None and evaluation.data is not None:
        source = resolved.where(evaluation.data.path)
        with open_npz(resolved.read(evaluation.data.path), where=source) as loaded:
            arrays.append((source, {k: loaded[k] for k in loaded.files}))
    for path in data or []:
        with open_npz(path, where=str(path)) as loaded:
            arrays.append((str(path), {k: loaded[k] for k in loaded.files}))
    x_rows, state_rows = [], []
    for where, columns in arrays:
        if states is not None and all(n in columns for n in states):
            state_rows.append(np.stack([columns[n] for n in states], axis=1))
        elif all(n in columns for n in names):
            x_rows.append(np.stack([columns[n] for n in names], axis=1))
        else:
            missing = [n for n in names if n not in columns]
            raise ManifestError(f"{where}: arrays {missing} are missing; give one array per "
                                f"input of {resolved.exact} ({', '.join(names)})")

    def tensor(rows: list[np.ndarray]) -> torch.Tensor | None:
        return torch.as_tensor(np.concatenate(rows), dtype=torch.float32) if rows else None

    return record_node(net, node, tensor(x_rows), states=tensor(state_rows),
                       part=f"{resolved.exact}#{node}")


def distill_reference(loader: Loader, resolved: Resolved, *, root: Path, commit: str | None,
                      budget_s: float, name: str | None, out: Path | None,
                      tolerance: float | None, node: str | None,
                      data: list[Path] | None, jobs: int = 1, cluster: str | None = None,
                      load: Callable[[], Any] | None = None) -> DistillReport:
    """`Registry.distill`: the module `resolved`, or with `node` that node of a composite,
    recorded over `data` (else its evaluation data) into `<out or modules>/<name or
    composite-node>/` (tolerance default 1e-2)."""
    if node is None:
        return distill_registered(resolved, loader.build(resolved), root=root, commit=commit,
                                  budget_s=budget_s, name=name, out=out, tolerance=tolerance,
                                  jobs=jobs, cluster=cluster, load=load)
    if resolved.manifest.kind != "composite":
        from registry.errors import DistillationError

        raise DistillationError(f"--node {node}: {resolved.exact} is a "
                                f"{resolved.manifest.kind}; nodes belong to composites")
    from registry.store.base import MODULES_DIR

    net = loader.build(resolved)
    recording = record_registered_node(resolved, net, node, data)
    return distill_part(recording, net.get_submodule(f"nodes.{node}"),  # type: ignore[arg-type]
                        distilled_from=recording.part, root=root, commit=commit,
                        out=out or root / MODULES_DIR, budget_s=budget_s,
                        name=name or f"{resolved.manifest.name}-{node}",
                        tolerance=1e-2 if tolerance is None else tolerance, jobs=jobs,
                        cluster=cluster, load=load)
