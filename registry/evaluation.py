"""Accuracy of a module against its `evaluation` section, reproducibly.

The truth is either a data file (`.npz` with one array per port name, sha256
checked, never unpickled, its headers checked against `MAX_ARRAY_BYTES` before
an array is loaded: `registry.core.arrays`) or a reference: an equation
evaluated in float64, or another module, on `sample.n` points drawn uniformly
from the input ranges with `sample.seed` (bounded when the manifest is
validated: `MAX_EVALUATION_FLOATS`). Modules run on `EVALUATION_BATCH` rows at
a time, so their activations stay small however many points there are.

Metrics (the worst over outputs): `rmse`, `nrmse` (rmse / std of the truth),
`r2`, `max_rel_error` (max |error| / max |truth|). A module whose output is not
finite at any evaluation point is an error naming the output and the share of
points (a NaN is not an error of 0); `compute_metrics` gives NaN metrics, which
no budget passes, when any error is not finite.

Example:
    >>> evaluate(resolved, module=gravity, load=loader.load)
    {'rmse': 1.1e-17, 'nrmse': 3.2e-08, 'r2': 1.0, 'max_rel_error': 1.9e-07}
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from registry.core.arrays import open_npz
from registry.core.integrity import verify
from registry.core.manifest import Manifest, Sample
from registry.errors import ManifestError

if TYPE_CHECKING:
    import torch

    from registry.store.base import Resolved

__all__ = ["EVALUATION_BATCH", "compute_metrics", "evaluate", "read_evaluation_data",
           "sample_inputs"]

EVALUATION_BATCH = 8192  # rows per forward pass: 128 MiB of float32 at the widest layer


def sample_inputs(manifest: Manifest, sample: Sample, *, where: str) -> np.ndarray:
    """`(n, n_inputs)` float64 points, uniform over each input's declared range."""
    rng = np.random.default_rng(sample.seed)
    columns = []
    for name, port in manifest.inputs.items():
        if port.range is None:
            raise ManifestError(f"{where}: inputs.{name}.range: is needed to sample the input; "
                                "add `range: [low, high]`")
        columns.append(rng.uniform(port.range[0], port.range[1], size=sample.n))
    return np.stack(columns, axis=1)


def compute_metrics(predicted: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Accuracy metrics of `predicted` against `truth`, both `(n, n_outputs)`; worst output."""
    worst = {"rmse": 0.0, "nrmse": 0.0, "r2": 1.0, "max_rel_error": 0.0}
    for j in range(truth.shape[1]):
        y, p = truth[:, j].astype(np.float64), predicted[:, j].astype(np.float64)
        err = p - y
        if not np.isfinite(err).all():  # NaN is no error of 0: `max(0.0, nan)` is 0.0
            return {k: float("nan") for k in worst}
        rmse = float(np.sqrt(np.mean(err**2)))
        spread = float(np.std(y))
        total = float(np.sum((y - y.mean()) ** 2))
        r2 = 1.0 - float(np.sum(err**2)) / total if total > 0 else float(rmse == 0.0)
        worst["rmse"] = max(worst["rmse"], rmse)
        worst["nrmse"] = max(worst["nrmse"], rmse / spread if spread > 0 else 0.0)
        worst["r2"] = min(worst["r2"], r2)
        scale = float(np.max(np.abs(y))) or 1.0
        worst["max_rel_error"] = max(worst["max_rel_error"], float(np.max(np.abs(err))) / scale)
    return {k: float(f"{v:.6g}") for k, v in worst.items()}


def evaluate(resolved: Resolved, *, module: torch.nn.Module,
             load: Callable[[str], torch.nn.Module]) -> dict[str, float]:
    """Recompute the metrics of `module` (built from `resolved`) from its `evaluation` section."""
    import torch

    manifest = resolved.manifest
    evaluation = manifest.evaluation
    where = resolved.where("module.yaml")
    if evaluation is None:
        raise ManifestError(f"{where}: evaluation: is missing; add `data` or `reference` so "
                            "accuracy can be measured")
    outputs = list(manifest.outputs)
    if evaluation.data is not None:
        x, truth = read_evaluation_data(resolved, evaluation.data.path, evaluation.data.sha256)
    else:
        assert evaluation.reference is not None
        x = sample_inputs(manifest, evaluation.sample or Sample(), where=where)
        truth = _reference_truth(manifest, evaluation.reference, x, where=where, load=load)
    predicted = _run(module, x, torch.float32).reshape(len(x), len(outputs))
    for j, name in enumerate(outputs):
        bad = int((~np.isfinite(predicted[:, j])).sum())
        if bad:
            raise ManifestError(f"{where}: output `{name}` is not finite (NaN or inf) at "
                                f"{bad / len(x):.1%} of the {len(x)} evaluation points; fix the "
                                "equation, its constants or the declared input ranges")
    return compute_metrics(predicted, truth.reshape(len(x), len(outputs)))


def read_evaluation_data(resolved: Resolved, path: str,
                         sha256: str) -> tuple[np.ndarray, np.ndarray]:
    """The evaluation data's inputs and outputs `(x, y)` in port order (sha256 verified)."""
    manifest = resolved.manifest
    data = verify(resolved.read(path), sha256, where=resolved.where(path),
                  field="evaluation.data")
    with open_npz(data, where=resolved.where(path)) as arrays:
        missing = [n for n in [*manifest.inputs, *manifest.outputs] if n not in arrays]
        if missing:
            raise ManifestError(f"{resolved.where(path)}: arrays {missing} are missing; the file "
                                "needs one array per input and output port")
        x = np.stack([arrays[n] for n in manifest.inputs], axis=1).astype(np.float64)
        y = np.stack([arrays[n] for n in manifest.outputs], axis=1).astype(np.float64)
    return x, y


def _reference_truth(manifest: Manifest, reference: object, x: np.ndarray, *, where: str,
                     load: Callable[[str], torch.nn.Module]) -> np.ndarray:
    import torch

    from registry.core.expr import parse_expression
    from registry.nn.equation import EquationModule

    truth_module: torch.nn.Module
    equation = getattr(reference, "equation", None)
    if equation is not None:
        names = [*manifest.inputs, *manifest.constants]
        exprs = {out: parse_expression(equation[out], names=names,
                                       where=f"{where}: evaluation.reference.equation.{out}")
                 for out in manifest.outputs if out in equation}
        if set(exprs) != set(manifest.outputs):
            raise ManifestError(f"{where}: evaluation.reference.equation: give one expression per "
                                f"output {sorted(manifest.outputs)}")
        constants = {n: (c.value, False) for n, c in manifest.constants.items()}
        truth_module = EquationModule(exprs, inputs=list(manifest.inputs), constants=constants,
                                      dtype=torch.float64)
    else:
        truth_module = load(str(getattr(reference, "module", ""))).double()
    return _run(truth_module, x, torch.float64)


def _run(module: torch.nn.Module, x: np.ndarray, dtype: torch.dtype) -> np.ndarray:
    """`module` over the rows of `x`, `EVALUATION_BATCH` rows at a time, as float64."""
    import torch

    parts = []
    with torch.no_grad():
        for start in range(0, max(len(x), 1), EVALUATION_BATCH):
            rows = torch.as_tensor(x[start:start + EVALUATION_BATCH], dtype=dtype)
            parts.append(module(rows).double().numpy())
    return np.concatenate(parts)
