"""Training a composed network: a plain loop, early stopping, MLflow, energy.

Two targets:
- `outputs`: match the composite's outputs (end to end, through the ODE if any);
- `derivatives`: match the right-hand side of its dynamics on observed states
  (data holds the state variables and `d_<state>` rates), so only the unknown
  part is fitted, without integrating: the cheap way to learn a residual.

Example:
    >>> result = train_composite(net, data, target="derivatives", max_epochs=200,
    ...                          target_nrmse=0.01)
    >>> result.epochs, result.metrics["nrmse"]
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from registry.composition.module import ComposedModule
from registry.errors import CompositionError

__all__ = ["TrainReport", "TrainResult", "rate_inputs", "train_composite", "train_tracked"]

Target = Literal["outputs", "derivatives"]


@dataclass
class TrainResult:
    epochs: int
    steps: int
    samples_seen: int
    train_flops: float  # forward+backward FLOPs per sample × samples seen (optimiser excluded)
    metrics: dict[str, float]  # on the validation split
    history: list[float] = field(default_factory=list)
    stopped_early: bool = False
    # modeled energy of forward+backward per sample (optimiser excluded); × samples_seen
    modeled_per_sample: Any = None  # registry.cost.modeled.ModeledEnergy

    @property
    def modeled_energy_j(self) -> float | None:
        """Modeled training energy: forward+backward per sample × samples seen."""
        if self.modeled_per_sample is None:
            return None
        return float(self.modeled_per_sample.j_per_sample * self.samples_seen)


def rate_inputs(net: ComposedModule, data: Mapping[str, np.ndarray]) -> list[str]:
    """The arrays a `derivatives` target needs: composite inputs, then state variables."""
    dynamics = net.plan.spec.dynamics
    if dynamics is None:
        raise CompositionError("target `derivatives` needs a spec with `dynamics`")
    return [*net.input_names, *dynamics.state]


def _arrays(net: ComposedModule, data: Mapping[str, np.ndarray],
            target: Target) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    if target == "outputs":
        xs, ys = net.input_names, net.output_names
    else:
        xs = rate_inputs(net, data)
        ys = [f"d_{n}" for n in net.plan.spec.dynamics.state]  # type: ignore[union-attr]
    missing = [n for n in [*xs, *ys] if n not in data]
    if missing:
        raise CompositionError(f"training data lacks arrays {missing}; target `{target}` needs "
                               f"{[*xs, *ys]}")
    x = torch.as_tensor(np.stack([data[n] for n in xs], axis=1), dtype=torch.float32)
    y = torch.as_tensor(np.stack([data[n] for n in ys], axis=1), dtype=torch.float32)
    return x, y, ys


def _predict(net: ComposedModule, x: torch.Tensor, target: Target) -> torch.Tensor:
    return net(x) if target == "outputs" else net.rates(x)


def train_composite(
    net: ComposedModule,
    data: Mapping[str, np.ndarray],
    *,
    target: Target = "outputs",
    max_epochs: int = 100,
    batch: int = 256,
    lr: float = 1e-2,
    target_nrmse: float | None = None,
    validation: float = 0.2,
    seed: int = 0,
    progress: bool = True,
    log: Any = None,
) -> TrainResult:
    """Adam (cosine-annealed over `max_epochs`) on the standardised MSE of the trainable
    parameters; stops early once the validation nRMSE reaches `target_nrmse`.

    `log(metrics, step)` receives per-epoch metrics (e.g. an MLflow run's `log_metrics`).
    """
    from registry.cost.flops import count_module_flops
    from registry.cost.modeled import model_energy
    from registry.evaluation import compute_metrics

    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        raise CompositionError("nothing to train: every node is frozen (set `train: true` or "
                               "`train: constants` on a node, or add an `mlp` node)")
    x, y, _ = _arrays(net, data, target)
    if target == "derivatives":
        net.standardise_mlp_inputs(x)
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=generator)
    n_val = max(1, int(len(x) * validation))
    val, fit = order[:n_val], order[n_val:]
    scale = y[fit].std(0).clamp_min(1e-12)
    trained = _trained_function(net, target)
    per_sample = int(count_module_flops(trained, x[:16]).forward_backward or 0)
    optimiser = torch.optim.Adam(params, lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max_epochs)
    history: list[float] = []
    steps = seen = 0
    metrics: dict[str, float] = {}
    bar = _progress(max_epochs, progress)
    stopped = False
    epoch = 0
    for epoch in range(1, max_epochs + 1):
        net.train()
        shuffled = fit[torch.randperm(len(fit), generator=generator)]
        for start in range(0, len(shuffled), batch):
            idx = shuffled[start:start + batch]
            loss = torch.mean(((_predict(net, x[idx], target) - y[idx]) / scale) ** 2)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            steps += 1
            seen += len(idx)
        schedule.step()
        net.eval()  # safe: nn.Module.eval switches off training mode; nothing is evaluated
        with torch.no_grad():
            predicted = _predict(net, x[val], target).double().numpy()
        metrics = compute_metrics(predicted, y[val].double().numpy())
        history.append(metrics["nrmse"])
        if log is not None:
            log({f"val_{k}": v for k, v in metrics.items()}, epoch)
        bar(epoch, metrics["nrmse"])
        if target_nrmse is not None and metrics["nrmse"] <= target_nrmse:
            stopped = True
            break
    bar(None, None)
    # Modeled after training, so that counting cannot touch it (one optimiser batch).
    modeled = model_energy(trained, x[:batch], backward=True)
    optimiser.zero_grad()
    return TrainResult(epoch, steps, seen, float(per_sample * seen), metrics, history, stopped,
                       modeled)


def _trained_function(net: ComposedModule, target: Target) -> torch.nn.Module:
    """The function training differentiates: the composite, or its rates."""
    if target == "outputs":
        return net

    class _Rates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return net.rates(z)

    return _Rates()


def _progress(total: int, enabled: bool) -> Any:
    """A one-line progress display on stderr (no extra dependency)."""
    import sys

    start = time.perf_counter()

    def show(epoch: int | None, nrmse: float | None) -> None:
        if not enabled:
            return
        if epoch is None:
            sys.stderr.write("\n")
            return
        width = 30
        done = math.floor(width * epoch / total)
        sys.stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] epoch {epoch}/{total} "
                         f"val nRMSE {nrmse:.3g} ({time.perf_counter() - start:.0f} s)")
        sys.stderr.flush()

    return show


@dataclass(frozen=True)
class TrainReport:
    """What `Registry.train` produced: the trained network, its result, energy and MLflow run."""

    net: ComposedModule
    result: TrainResult
    energy: Any  # registry.cost.energy.EnergyReport
    run_id: str

    def training_cost(self) -> Any:
        """The manifest's `cost.training` for this run (energy, CO2, FLOPs)."""
        from registry.cost.measure import to_modeled

        modeled = self.result.modeled_per_sample
        return self.energy.to_training_cost().model_copy(update={
            "flops": self.result.train_flops,
            "energy_modeled": (to_modeled(modeled, samples=self.result.samples_seen)
                               if modeled is not None else None)})


def train_tracked(net: ComposedModule, data: Mapping[str, Any], *, root: Any,
                  commit: str | None, target: str = "outputs", run_name: str | None = None,
                  **options: Any) -> TrainReport:
    """`train_composite` inside an MLflow run, with energy tracked: parameters, per-epoch
    validation metrics, training FLOPs, energy and the git `commit` are logged."""
    from registry.cost.energy import track_energy
    from registry.mlflow.tracking import mlflow_run

    name = net.plan.spec.name
    params = {"spec": name, "target": target, **options,
              "trainable_params": sum(p.numel() for p in net.parameters() if p.requires_grad)}
    with mlflow_run(f"train-{name}", root=root, run_name=run_name or f"train-{name}",
                    params=params, tags={"git_commit": commit}) as run:
        with track_energy() as tracker:
            result = train_composite(net, data, target=target,  # type: ignore[arg-type]
                                     log=lambda m, step: run.log_metrics(m, step=step),
                                     **options)
        energy = tracker.report
        run.log_metrics({"train_flops": result.train_flops, "train_energy_j": energy.energy_j,
                         "train_energy_modeled_j": result.modeled_energy_j or 0.0,
                         "train_cpu_s": energy.cpu_s, "train_co2_kg": energy.co2_kg,
                         "epochs": result.epochs})
        run.set_tags({"energy_method": energy.method})
    return TrainReport(net, result, energy, run.run_id)
