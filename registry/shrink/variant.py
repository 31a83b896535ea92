"""`registry shrink`: a network's variant written as a normal module folder.

The variant keeps the teacher's ports, units, ranges and evaluation data (so its
accuracy is measured on the same ground truth), and records where it came from:
`provenance.derived_from` (the exact teacher version) and `provenance.derivation`
(the method, its settings, the optimiser steps, its metrics against the teacher).
Its budget is the teacher's accuracy budget, plus the teacher's FLOPs as a ceiling:
a variant that is not cheaper has no reason to exist. Training (fine-tuning, a
student) is tracked for energy and recorded in `cost.training`; the run is logged
to MLflow. The report measures teacher and variant side by side in one run.

Example:
    >>> request = ShrinkRequest.parse(student=[16, 16], target_nrmse=0.005)
    >>> report = shrink_registered(loader, store.resolve("drag-net@1.0.2"), request, ...)
    >>> report.folder, report.variant["latency_ns_per_sample"]
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.core.manifest import (
    MANIFEST_FILE,
    Manifest,
    MlflowRun,
    load_manifest,
    write_manifest,
)
from registry.errors import RegistryError, ShrinkError

if TYPE_CHECKING:
    from torch import nn

    from registry.loading import Loader
    from registry.nn.network import NetworkModule
    from registry.shrink.methods import TeacherData
    from registry.store.base import Resolved

__all__ = ["ShrinkReport", "ShrinkRequest", "shrink_registered"]

WEIGHTS_FILE = "weights.safetensors"
DEFAULT_STEPS = 400  # fine-tuning after pruning (L-BFGS iterations)
DEFAULT_STUDENT_STEPS = 4000
_ACCURACY_BUDGETS = ("min_r2", "max_rmse", "max_nrmse", "max_rel_error")


@dataclass(frozen=True)
class ShrinkRequest:
    """One shrink method and its settings (exactly one of prune, quantize, dtype, student)."""

    method: str
    settings: dict[str, Any]
    steps: int | None = None
    target_nrmse: float | None = None

    @classmethod
    def parse(cls, *, prune: float | None = None, structured: bool = False,
              quantize: str | None = None, dtype: str | None = None,
              student: Sequence[int] | None = None, target_nrmse: float | None = None,
              steps: int | None = None) -> ShrinkRequest:
        chosen = [flag for flag, value in (("--prune", prune), ("--quantize", quantize),
                                           ("--dtype", dtype), ("--student", student))
                  if value is not None]
        if len(chosen) != 1:
            raise ShrinkError(f"give exactly one of --prune, --quantize, --dtype, --student "
                              f"(got {', '.join(chosen) or 'none'})")
        if structured and prune is None:
            raise ShrinkError("--structured goes with --prune AMOUNT")
        if steps is not None and not 0 < steps <= 100_000:
            raise ShrinkError(f"--steps {steps}: between 1 and 100000")
        if (quantize is not None or dtype is not None) and (steps or target_nrmse):
            raise ShrinkError("--steps and --target-nrmse go with --prune or --student: "
                              "--quantize and --dtype convert the weights, they train nothing")
        if prune is not None:
            return cls("prune", {"amount": prune, "structured": structured},
                       steps if steps is not None else DEFAULT_STEPS, target_nrmse)
        if quantize is not None:
            if quantize != "int8":
                raise ShrinkError(f"--quantize {quantize}: only int8 (dynamic quantization of "
                                  "the linear layers)")
            return cls("quantize", {"precision": "int8", "scheme": "dynamic, per channel",
                                    "layers": "hidden to hidden (first and last float32)"})
        if dtype is not None:
            return cls("dtype", {"precision": dtype})
        assert student is not None
        if target_nrmse is None:
            raise ShrinkError("--student needs --target-nrmse X: the student trains to that "
                              "error against the teacher and stops there")
        widths = list(student)
        return cls("student", {"hidden": widths}, steps if steps is not None
                   else DEFAULT_STUDENT_STEPS, target_nrmse)

    def default_name(self, teacher: str) -> str:
        if self.method == "prune":
            kind = "s" if self.settings["structured"] else ""
            return f"{teacher}-pruned{round(self.settings['amount'] * 100)}{kind}"
        if self.method == "student":
            return f"{teacher}-student-{'x'.join(map(str, self.settings['hidden']))}"
        short = {"int8": "int8", "float16": "fp16", "bfloat16": "bf16"}
        return f"{teacher}-{short.get(self.settings['precision'], self.settings['precision'])}"


@dataclass
class ShrinkReport:
    """The variant written, and teacher and variant measured side by side in one run."""

    teacher: str
    name: str
    method: str
    folder: Path
    steps: int | None
    teacher_figures: dict[str, Any] = field(default_factory=dict)
    variant: dict[str, Any] = field(default_factory=dict)
    registered: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"teacher": self.teacher, "name": self.name, "method": self.method,
                "folder": str(self.folder), "steps": self.steps,
                "teacher_figures": self.teacher_figures, "variant": self.variant,
                "registered": self.registered}


def shrink_registered(loader: Loader, resolved: Resolved, request: ShrinkRequest, *,
                      root: Path, commit: str | None, out: Path,
                      name: str | None = None) -> ShrinkReport:
    """Shrink the registered network `resolved` as `request` says into `<out>/<name>/`."""
    from registry.cost.energy import track_energy
    from registry.mlflow.tracking import mlflow_run
    from registry.shrink.methods import TeacherData

    teacher_manifest = resolved.manifest
    if teacher_manifest.kind != "network" or teacher_manifest.network is None:
        raise ShrinkError(f"{resolved.exact} is a {teacher_manifest.kind} module; shrink takes a "
                          "network (an equation is already its own cheapest form)")
    missing = [n for n, p in teacher_manifest.inputs.items() if p.range is None]
    if missing:
        raise ShrinkError(f"{resolved.where(MANIFEST_FILE)}: inputs {missing} have no `range`; "
                          "shrinking learns from the teacher over its declared ranges")
    teacher: NetworkModule = loader.build(resolved)  # type: ignore[assignment]
    name = name or request.default_name(teacher_manifest.name)
    _refuse_foreign_folder(out / name, teacher_manifest.name)
    data = TeacherData.draw(teacher, teacher_manifest)
    with mlflow_run("shrink", root=root, run_name=f"shrink-{name}",
                    params={"teacher": resolved.exact, "method": request.method,
                            **request.settings, "steps": request.steps,
                            "target_nrmse": request.target_nrmse},
                    tags={"git_commit": commit}) as run:
        with track_energy() as tracker:
            variant, steps = _apply(teacher, data, request)
        energy = tracker.report
        vs_teacher = _versus_teacher(resolved, teacher, variant, data)
        run.log_metrics({**{f"vs_teacher_{k}": v for k, v in vs_teacher.items()},
                         "shrink_energy_j": energy.energy_j, "shrink_cpu_s": energy.cpu_s,
                         **({"steps": steps} if steps is not None else {})})
        folder = out / name
        sha = _write_files(folder, resolved, variant)
        manifest = _variant_manifest(resolved, teacher_manifest, variant, request, name=name,
                                     steps=steps, vs_teacher=vs_teacher, folder=folder,
                                     weights_sha=sha, trained=energy if steps else None,
                                     mlflow=MlflowRun(run_id=run.run_id,
                                                      experiment=run.experiment))
        write_manifest(manifest, folder / MANIFEST_FILE)  # last: its files are all there
        teacher_figures, variant_figures = _side_by_side(teacher, variant, teacher_manifest)
        variant_figures.update({"vs_teacher": vs_teacher,
                                "training_energy_j": energy.energy_j if steps else None,
                                "energy_method": energy.method})
        teacher_training = (teacher_manifest.cost.training.energy_j
                            if teacher_manifest.cost.training else None)
        teacher_figures["training_energy_j"] = teacher_training
        run.log_metrics({"latency_ratio": teacher_figures["latency_ns_per_sample"]
                         / variant_figures["latency_ns_per_sample"]})
    report = ShrinkReport(resolved.exact, name, request.method, folder, steps, teacher_figures,
                          variant_figures)
    (folder / "shrink.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def _refuse_foreign_folder(folder: Path, teacher: str) -> None:
    """A folder that holds something other than a variant of `teacher` is never overwritten."""
    if not folder.exists():
        return
    manifest = folder / MANIFEST_FILE
    derived = None
    if manifest.is_file():
        try:
            derived = load_manifest(manifest).provenance.derived_from
        except RegistryError:
            derived = None
    if derived is None or derived.partition("@")[0] != teacher:
        raise ShrinkError(f"{folder} exists and is not a variant of {teacher} (its "
                          f"{MANIFEST_FILE} records no `provenance.derived_from: {teacher}@…`); "
                          "nothing was written: choose another --name or --out")


def _apply(teacher: NetworkModule, data: TeacherData,
           request: ShrinkRequest) -> tuple[NetworkModule, int | None]:
    from registry.shrink import methods

    if request.method == "prune":
        pruned = methods.prune(teacher, request.settings["amount"],
                               structured=request.settings["structured"])
        assert request.steps is not None
        steps = methods.fine_tune(pruned, data, steps=request.steps,
                                  target_nrmse=request.target_nrmse)
        methods.finish_pruning(pruned)
        return pruned, steps
    if request.method == "quantize":
        return methods.quantize_int8(teacher), None
    if request.method == "dtype":
        return methods.to_precision(teacher, request.settings["precision"]), None
    assert request.steps is not None and request.target_nrmse is not None
    return methods.train_student(teacher, data, hidden=request.settings["hidden"],
                                 target_nrmse=request.target_nrmse, max_steps=request.steps)


def _versus_teacher(resolved: Resolved, teacher: nn.Module, variant: nn.Module,
                    data: TeacherData) -> dict[str, float]:
    """The variant's metrics against the teacher's outputs: on the teacher's evaluation
    inputs when it has evaluation data, else on the validation draw."""
    import torch

    from registry.evaluation import compute_metrics, read_evaluation_data

    manifest = resolved.manifest
    x = data.x_val
    if manifest.evaluation is not None and manifest.evaluation.data is not None:
        rows, _ = read_evaluation_data(resolved, manifest.evaluation.data.path,
                                       manifest.evaluation.data.sha256)
        x = torch.as_tensor(rows, dtype=torch.float32)
    with torch.no_grad():
        return compute_metrics(variant(x).double().numpy(), teacher(x).double().numpy())


def _variant_manifest(resolved: Resolved, teacher: Manifest, variant: NetworkModule,
                      request: ShrinkRequest, *, name: str, steps: int | None,
                      vs_teacher: dict[str, float], folder: Path, weights_sha: str,
                      trained: Any, mlflow: MlflowRun) -> Manifest:
    from registry.core.manifest import Budget, Cost, Derivation, Provenance

    version = "1.0.0"
    if (folder / MANIFEST_FILE).is_file():  # written before: keep its version (register bumps)
        version = load_manifest(folder / MANIFEST_FILE).version
    budget = Budget(**{k: getattr(teacher.budget, k) for k in _ACCURACY_BUDGETS},
                    max_flops_per_sample=teacher.cost.flops_per_sample)
    described = {"prune": "pruned", "quantize": "quantized", "dtype": "converted",
                 "student": "student"}[request.method]
    settings = ", ".join(f"{k} {v}" for k, v in request.settings.items())
    return Manifest.model_validate({
        "name": name, "version": version, "kind": "network",
        "summary": f"{teacher.name} {described} ({settings})"
                   + (f", trained {steps} steps on the teacher's outputs" if steps else ""),
        "inputs": {n: p.model_dump(exclude_none=True) for n, p in teacher.inputs.items()},
        "outputs": {n: p.model_dump(exclude_none=True) for n, p in teacher.outputs.items()},
        "network": {"arch": variant.arch, "config": variant.config, "precision": variant.precision,
                    "weights": {"path": WEIGHTS_FILE, "sha256": weights_sha}},
        "evaluation": (teacher.evaluation.model_copy(update={"metrics": {}})
                       if teacher.evaluation else None),
        "cost": Cost(training=trained.to_training_cost() if trained is not None else None),
        "budget": budget,
        "provenance": Provenance(
            source="derived", derived_from=resolved.exact, mlflow=mlflow,
            derivation=Derivation(method=request.method,  # type: ignore[arg-type]
                                  settings={**request.settings,
                                            **({"target_nrmse": request.target_nrmse}
                                               if request.target_nrmse is not None else {})},
                                  steps=steps, vs_teacher=vs_teacher),
            created=dt.datetime.now(dt.UTC).replace(microsecond=0)),
    })


def _write_files(folder: Path, resolved: Resolved, variant: NetworkModule) -> str:
    """The variant's weights and the teacher's evaluation data into `folder`; the weights'
    sha256."""
    from registry.nn.weights import save_weights

    folder.mkdir(parents=True, exist_ok=True)
    data = resolved.manifest.evaluation.data if resolved.manifest.evaluation else None
    if data is not None:
        target = folder / data.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(resolved.read(data.path))
    return save_weights(variant, folder / WEIGHTS_FILE)


def _side_by_side(teacher: nn.Module, variant: nn.Module,
                  manifest: Manifest) -> tuple[dict[str, Any], dict[str, Any]]:
    """FLOPs (as executed, and without multiplications by zero), weights and their bytes,
    latency at batch 4096 measured in interleaved turns, modeled energy."""
    import torch

    from registry.core.manifest import Sample
    from registry.cost.latency import side_by_side
    from registry.cost.measure import LATENCY_BATCH, count_flops, model_module_energy
    from registry.evaluation import sample_inputs
    from registry.nn.weights import weight_stats

    x = torch.as_tensor(sample_inputs(manifest, Sample(n=LATENCY_BATCH, seed=0),
                                      where=manifest.ref), dtype=torch.float32)
    latency = side_by_side({"teacher": teacher, "variant": variant}, x)
    figures = []
    for key, module in (("teacher", teacher), ("variant", variant)):
        flops = count_flops(module, manifest, backward=False).forward
        stats = weight_stats(module)
        modeled = model_module_energy(module, manifest)
        figures.append({"flops_per_sample": flops,
                        "nonzero_flops_per_sample": flops - 2 * stats.zero_macs,
                        "params": stats.params, "nonzero_params": stats.nonzero,
                        "weight_bytes": stats.bytes,
                        "latency_ns_per_sample": round(latency[key].ns_per_sample, 2),
                        "latency_batch": latency[key].batch,
                        "energy_modeled_j_per_sample": modeled.j_per_sample,
                        "energy_modeled_unpriced": list(modeled.unpriced)})
    return figures[0], figures[1]
