"""`registry new`: a module folder with a valid starting manifest of its kind.

Example:
    >>> write_template(Path("modules/pendulum"), "pendulum", "equation")
    PosixPath('modules/pendulum')
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from registry.core.manifest import MANIFEST_FILE, Manifest, write_manifest
from registry.errors import ManifestError

__all__ = ["write_template"]


def write_template(folder: Path, name: str, kind: str) -> Path:
    """Create `folder` with a starting manifest (and, for a network, initial weights)."""
    if folder.exists():
        raise ManifestError(f"{folder}: already exists; pick another name or edit it")
    if kind not in ("equation", "network"):
        raise ManifestError(f"--kind: {kind!r} is not one of equation, network (composites "
                            "come from `registry compose --register`)")
    folder.mkdir(parents=True)
    try:
        write_manifest(_template(name, kind, folder), folder / MANIFEST_FILE)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


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
