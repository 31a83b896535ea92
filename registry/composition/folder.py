"""A trained composite as a module folder: pinned spec, weights, manifest.

Example:
    >>> write_composite(net, Path("modules/baseball-flight"), training=cost)
    PosixPath('modules/baseball-flight')
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from registry.core.integrity import sha256_file
from registry.core.manifest import MANIFEST_FILE, Manifest, write_manifest
from registry.core.manifest_file import load_yaml
from registry.errors import ManifestError

if TYPE_CHECKING:
    from registry.composition.module import ComposedModule
    from registry.core.manifest import TrainingCost

__all__ = ["write_composite"]


def write_composite(net: ComposedModule, folder: Path, *, version: str = "1.0.0",
                    training: TrainingCost | None = None, mlflow_run_id: str | None = None,
                    evaluation_data: Path | None = None, summary: str | None = None) -> Path:
    """Write the composite's folder, its module references pinned to the exact versions
    used; an existing manifest's version is kept (the registration bumps it if changed)."""
    from registry.nn.weights import save_weights

    plan = net.plan
    name = folder.name
    workspace = sorted(node for node, ref in plan.pinned.items() if ref.endswith("@workspace"))
    if workspace:
        raise ManifestError(f"nodes {workspace} use unregistered (workspace) modules; register "
                            "them first, so the composite can pin their versions")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "compose.yaml").write_text(yaml.safe_dump(net.pinned_spec(name=name),
                                                        sort_keys=False))
    sha = save_weights(net, folder / "weights.safetensors")
    existing = folder / MANIFEST_FILE
    if existing.is_file():
        found = load_yaml(existing.read_text(encoding="utf-8"), source=str(existing))
        version = str(found.get("version", version)) if isinstance(found, dict) else version
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
    return folder
