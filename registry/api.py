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
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.errors import ManifestError
from registry.reference import parse_reference
from registry.spec import MANIFEST_FILE, Manifest, write_manifest
from registry.store.git import find_root
from registry.store.index import IndexRow
from registry.store.store import MODULES_DIR, Bump, RegisterResult, Resolved, Store

if TYPE_CHECKING:
    from registry.cost.measure import ModuleCost
    from registry.nn.ports import PortModule

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
        from registry.nn.build import build_module

        return build_module(self.store.resolve(ref))

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
        from registry.nn.build import build_module

        return measure_cost(build_module(resolved), resolved.manifest)

    def evaluate(self, ref: str) -> dict[str, float]:
        """Recompute accuracy metrics from the module's `evaluation` section."""
        from registry.evaluation import evaluate

        return evaluate(self.store.resolve(ref), load=self.load)

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
        from registry.nn.build import build_module

        manifest = workspace.manifest
        module = build_module(workspace)
        update: dict[str, Any] = {"cost": measure_cost(module, manifest).to_cost(manifest.cost)}
        if manifest.evaluation is not None:
            metrics = evaluate(workspace, load=self.load)
            update["evaluation"] = manifest.evaluation.model_copy(update={"metrics": metrics})
        return manifest.model_copy(update=update)


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
