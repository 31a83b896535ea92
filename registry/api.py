"""The verbs of the registry, shared by the CLI, the server and Python users.

Example:
    >>> import registry
    >>> reg = registry.open()
    >>> reg.get("gravity@^1").version
    '1.0.0'
    >>> gravity = reg.load("gravity@1.0.0")     # a torch.nn.Module
"""

from __future__ import annotations

import builtins
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import ManifestError
from registry.reference import parse_reference
from registry.spec import MANIFEST_FILE, Manifest, MlflowRun, write_manifest
from registry.store.git import find_root
from registry.store.index import IndexRow
from registry.store.store import MODULES_DIR, Bump, RegisterResult, Resolved, Store

if TYPE_CHECKING:
    from collections.abc import Mapping

    from registry.compose.module import ComposedModule
    from registry.compose.spec import ComposeSpec
    from registry.compose.train import TrainResult
    from registry.cost.energy import EnergyReport
    from registry.cost.measure import ModuleCost
    from registry.distill import DistillResult
    from registry.nn.ports import PortModule
    from registry.spec import TrainingCost

__all__ = ["Registry", "open", "schema"]


class Registry:
    """A registry: the git repository holding `modules/`, and its index."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = Store(root)

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    def resolve(self, ref: str) -> Resolved:
        return self.store.resolve(ref)

    def get(self, ref: str) -> Manifest:
        """The manifest `ref` resolves to."""
        return self.store.resolve(ref).manifest

    def load(self, ref: str) -> PortModule:
        """The torch module `ref` resolves to, with verified weights."""
        return self._build(self.store.resolve(ref))

    def compose(self, spec: ComposeSpec | str | Path) -> ComposedModule:
        """Build the network a compose spec (a file, or a `ComposeSpec`) describes."""
        from registry.compose.spec import load_spec

        loaded = load_spec(Path(spec)) if isinstance(spec, str | Path) else spec
        return self._compose(loaded, source=loaded.source)

    def _compose(self, spec: ComposeSpec, *, source: str,
                 weights: tuple[bytes, str, str] | None = None) -> ComposedModule:
        from registry.compose.module import assemble

        def resolve(ref: str) -> tuple[Manifest, str, Resolved]:
            found = self.store.resolve(ref)
            name = found.manifest.name
            exact = found.manifest.ref if found.commit is not None else f"{name}@workspace"
            return found.manifest, exact, found

        return assemble(spec, source=source, resolve=resolve, build=self._build,
                        weights=weights)

    def train(self, spec: ComposeSpec | ComposedModule | str | Path, data: Mapping[str, Any], *,
              target: str = "outputs", run_name: str | None = None,
              **options: Any) -> tuple[ComposedModule, TrainResult, EnergyReport, str]:
        """Compose `spec` (or take a built network) and train its trainable parts on `data`.

        Logged to MLflow (parameters, per-epoch validation metrics, training FLOPs,
        energy, the git commit); returns the network, the result, the energy
        report and the MLflow run id.
        """
        from registry.compose.module import ComposedModule
        from registry.compose.train import train_composite
        from registry.cost.energy import track_energy
        from registry.tracking import mlflow_run

        net = spec if isinstance(spec, ComposedModule) else self.compose(spec)
        name = net.plan.spec.name
        params = {"spec": name, "target": target, **options,
                  "trainable_params": sum(p.numel() for p in net.parameters() if p.requires_grad)}
        with mlflow_run(f"train-{name}", root=self.root, run_name=run_name or f"train-{name}",
                        params=params, tags={"git_commit": self.store.repo.head()}) as run:
            with track_energy() as tracker:
                result = train_composite(net, data, target=target,  # type: ignore[arg-type]
                                         log=lambda m, step: run.log_metrics(m, step=step),
                                         **options)
            energy = tracker.report
            run.log_metrics({"train_flops": result.train_flops, "train_energy_j": energy.energy_j,
                             "train_cpu_s": energy.cpu_s, "train_co2_kg": energy.co2_kg,
                             "epochs": result.epochs})
            run.set_tags({"energy_method": energy.method})
        return net, result, energy, run.run_id

    def register_composite(
        self, net: ComposedModule, *, name: str, version: str = "1.0.0",
        training: TrainingCost | None = None, mlflow_run_id: str | None = None,
        evaluation_data: Path | None = None, summary: str | None = None,
    ) -> RegisterResult:
        """Write `modules/<name>/` (pinned spec, weights, manifest) and register it.

        The spec's module references are pinned to the exact versions used; a
        changed composite registers as the next patch version.
        """
        import shutil

        import yaml

        from registry.nn.weights import save_weights
        from registry.spec import sha256_file

        plan = net.plan
        workspace = sorted(node for node, ref in plan.pinned.items() if ref.endswith("@workspace"))
        if workspace:
            raise ManifestError(f"nodes {workspace} use unregistered (workspace) modules; register "
                                "them first, so the composite can pin their versions")
        folder = self.root / MODULES_DIR / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "compose.yaml").write_text(yaml.safe_dump(net.pinned_spec(name=name),
                                                            sort_keys=False))
        sha = save_weights(net, folder / "weights.safetensors")
        existing = folder / MANIFEST_FILE
        if existing.is_file():
            version = str(yaml.safe_load(existing.read_text()).get("version", version))
        data: dict[str, Any] = {
            "name": name, "version": version, "kind": "composite",
            "summary": summary or plan.spec.summary or f"composite of {', '.join(plan.pinned)}",
            "inputs": {n: p.model_dump(exclude_none=True) for n, p in plan.inputs.items()},
            "outputs": {n: {"unit": o.unit} for n, o in plan.spec.outputs.items()},
            "composition": {"spec": "compose.yaml",
                            "weights": {"path": "weights.safetensors", "sha256": sha}},
            "provenance": {"source": "composed", "parents": sorted(set(plan.pinned.values()))},
        }
        if training is not None:
            data["cost"] = {"training": training.model_dump(exclude_none=True)}
        if mlflow_run_id is not None:
            data["provenance"]["mlflow"] = {"run_id": mlflow_run_id,
                                            "experiment": f"train-{plan.spec.name}"}
        if evaluation_data is not None:
            shutil.copyfile(evaluation_data, folder / "evaluation.npz")
            data["evaluation"] = {"data": {"path": "evaluation.npz",
                                           "sha256": sha256_file(folder / "evaluation.npz")}}
        write_manifest(Manifest.model_validate(data), existing)
        return self.register(folder, bump="patch")

    def distill(self, ref: str, *, budget_s: float = 60.0, name: str | None = None,
                out: Path | None = None, tolerance: float | None = None) -> DistillReport:
        """Distil the module `ref` (queried as a black box) into an equation module.

        With `out`, writes `<out>/<name>/` (module.yaml, pareto.png, distill.json);
        `registry register` takes it from there. The tolerance defaults to twice the
        teacher's recorded test nRMSE (a network is trusted only that far).
        """
        import json

        from registry.cost.measure import measure_cost
        from registry.distill import distill as run_distill

        resolved = self.store.resolve(ref)
        teacher = resolved.manifest
        missing = [n for n, p in teacher.inputs.items() if p.range is None]
        if missing:
            raise ManifestError(f"{resolved.where(MANIFEST_FILE)}: inputs {missing} have no "
                                "`range`; the distiller samples the teacher over the ranges")
        if tolerance is None:
            recorded = teacher.evaluation.metrics.get("nrmse") if teacher.evaluation else None
            tolerance = max(2 * recorded, 1e-5) if recorded else 1e-5
        from registry.tracking import mlflow_run

        module = self._build(resolved)
        name = name or f"{teacher.name}-distilled"
        with mlflow_run("distill", root=self.root, run_name=f"distill-{teacher.name}",
                        params={"teacher": teacher.ref, "name": name, "budget_s": budget_s,
                                "tolerance": tolerance},
                        tags={"git_commit": self.store.repo.head()}) as run:
            result = run_distill(module, inputs={n: (p.unit, p.range)  # type: ignore[misc]
                                                 for n, p in teacher.inputs.items()},
                                 outputs={n: p.unit for n, p in teacher.outputs.items()},
                                 budget_s=budget_s, tolerance=tolerance)
            report = DistillReport(result, teacher.ref, None, None, None)
            energy = result.energy
            run.set_tags({"found": str(result.found),
                          "energy_method": energy.method if energy else "none"})
            run.log_metrics({**({"distill_energy_j": energy.energy_j,
                                 "distill_cpu_s": energy.cpu_s} if energy else {}),
                             **{f"nrmse_{o}": c.nrmse for o, c in result.chosen.items()},
                             **{f"complexity_{o}": c.complexity
                                for o, c in result.chosen.items()}})
            if not result.found:
                return report
            manifest = result.manifest(name, distilled_from=teacher.ref,
                                       summary=f"Equation distilled from {teacher.ref}")
            manifest.provenance.mlflow = MlflowRun(run_id=run.run_id, experiment=run.experiment)
            from registry.nn.equation import EquationModule
            from registry.validation import validate_equations

            student = EquationModule(validate_equations(manifest, source=f"{name} (distilled)"),
                                     inputs=list(manifest.inputs))
            report.student_cost = measure_cost(student, manifest)
            report.teacher_cost = measure_cost(module, teacher)
            run.log_metrics({"student_flops_per_sample": report.student_cost.flops.forward,
                             "teacher_flops_per_sample": report.teacher_cost.flops.forward})
        if out is not None:
            folder = out / name
            folder.mkdir(parents=True, exist_ok=True)
            write_manifest(manifest, folder / MANIFEST_FILE)
            result.plot(folder / "pareto.png")
            (folder / "distill.json").write_text(json.dumps(
                {**result.to_dict(), "teacher": teacher.ref, "tolerance": tolerance,
                 "teacher_cost": report.teacher_cost.to_dict(),
                 "student_cost": report.student_cost.to_dict()}, indent=2, default=str) + "\n")
            report.folder = folder
        return report

    def _build(self, resolved: Resolved) -> PortModule:
        """Build any kind of module; composites are rebuilt from their pinned spec."""
        from registry.nn.build import build_module

        manifest = resolved.manifest
        if manifest.kind != "composite":
            return build_module(resolved)
        from registry.compose.module import load_composite

        return load_composite(resolved, compose=self._compose)

    def list(
        self, *, kind: str | None = None, all_versions: bool = False
    ) -> builtins.list[IndexRow]:
        """Registered versions (the latest of each module unless `all_versions`)."""
        from registry.reference import Version

        rows = self.store.versions(kind=kind)
        if all_versions:
            return sorted(rows, key=lambda r: (r.name, Version.parse(r.version)))
        latest: dict[str, IndexRow] = {}
        for row in rows:
            best = latest.get(row.name)
            if best is None or _newer(row.version, best.version):
                latest[row.name] = row
        return [latest[name] for name in sorted(latest)]

    def versions(self, name: str) -> builtins.list[IndexRow]:
        from registry.reference import Version

        return sorted(self.store.versions(name), key=lambda r: Version.parse(r.version))

    def unregistered(self) -> builtins.list[str]:
        """Modules in the working tree with no registered version."""
        registered = {row.name for row in self.store.versions()}
        return [n for n in self.store.workspace_names() if n not in registered]

    def cost(self, ref: str) -> ModuleCost:
        """Measure the module's cost afresh: FLOPs, parameters, latency, energy per sample."""
        from registry.cost.measure import measure_cost

        resolved = self.store.resolve(ref)
        return measure_cost(self._build(resolved), resolved.manifest)

    def evaluate(self, ref: str) -> dict[str, float]:
        """Recompute accuracy metrics from the module's `evaluation` section."""
        from registry.evaluation import evaluate

        resolved = self.store.resolve(ref)
        return evaluate(resolved, module=self._build(resolved), load=self.load)

    def register(self, path: str | Path, *, bump: Bump | None = None) -> RegisterResult:
        """Validate, measure metrics, fill provenance, commit and tag the module at `path`.

        With `bump`, changed content is registered as the next version after the
        latest instead of raising `VersionConflict`.
        """
        return self.store.register(Path(path), prepare=self._prepare, bump=bump)

    def restore_tags(self) -> builtins.list[str]:
        """Recreate version tags missing from this clone from the registration commits."""
        return self.store.restore_tags()

    def promote(self, ref: str, stage: str) -> str:
        """Point `stage` at the version `ref` resolves to; returns the GTO stage tag."""
        return self.store.promote(ref, stage)

    def new(self, name: str, *, kind: str = "equation") -> Path:
        """Create `modules/<name>/` with a valid starting manifest of `kind`."""
        parse_reference(name)
        folder = self.root / MODULES_DIR / name
        if folder.exists():
            raise ManifestError(f"{folder}: already exists; pick another name or edit it")
        if kind not in ("equation", "network"):
            raise ManifestError(f"--kind: {kind!r} is not one of equation, network (composites "
                                "come from `registry compose --register`)")
        folder.mkdir(parents=True)
        try:
            write_manifest(_template(name, kind, folder), folder / MANIFEST_FILE)
        except BaseException:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)
            raise
        return folder

    def _prepare(self, workspace: Resolved) -> Manifest:
        """Before a registration: load the module (hashes verified), measure cost and metrics."""
        from registry.cost.measure import measure_cost
        from registry.evaluation import evaluate

        manifest = workspace.manifest
        module = self._build(workspace)
        update: dict[str, Any] = {"cost": measure_cost(module, manifest).to_cost(manifest.cost)}
        if manifest.evaluation is not None:
            metrics = evaluate(workspace, module=module, load=self.load)
            update["evaluation"] = manifest.evaluation.model_copy(update={"metrics": metrics})
        return manifest.model_copy(update=update)


@dataclass
class DistillReport:
    """What `Registry.distill` found, and the cost of the student beside the teacher's."""

    result: DistillResult
    teacher: str
    folder: Path | None
    teacher_cost: ModuleCost | None
    student_cost: ModuleCost | None


def _newer(a: str, b: str) -> bool:
    from registry.reference import Version

    va, vb = Version.parse(a), Version.parse(b)
    if bool(va.pre) != bool(vb.pre):
        return not va.pre  # a release beats any pre-release for "latest"
    return va > vb


def _template(name: str, kind: str, folder: Path) -> Manifest:
    base: dict[str, Any] = {
        "name": name, "version": "0.1.0", "kind": kind,
        "summary": "Describe what this module computes",
        "inputs": {"x": {"unit": "m", "range": [0.0, 1.0]}},
        "outputs": {"y": {"unit": "m"}},
    }
    if kind == "equation":
        base["equation"] = {"y": "a*x"}
        base["constants"] = {"a": {"value": 1.0, "unit": "1", "trainable": True}}
        base["evaluation"] = {"reference": {"equation": {"y": "a*x"}}, "sample": {"n": 1024}}
    else:
        from registry.nn.network import NetworkModule
        from registry.nn.weights import save_weights

        config = {"hidden": [32, 32], "activation": "tanh"}
        sha = save_weights(NetworkModule("mlp", config, inputs=["x"], outputs=["y"]),
                           folder / "weights.safetensors")
        base["network"] = {"arch": "mlp", "config": config,
                           "weights": {"path": "weights.safetensors", "sha256": sha}}
        base["provenance"] = {"source": "trained"}
    return Manifest.model_validate(base)


def open(path: str | Path | None = None) -> Registry:
    """The registry around `path` (default: `REGISTRY_ROOT`, else the cwd)."""
    start = Path(path) if path is not None else Path(os.environ.get("REGISTRY_ROOT", "."))
    return Registry(find_root(start))


def schema() -> dict[str, Any]:
    """The manifest's JSON Schema."""
    return Manifest.json_schema()
