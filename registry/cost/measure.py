"""The cost of one module, measured: FLOPs, parameters, latency, energy per sample.

`measure_cost` is what `registry register` records in `cost` and what
`registry cost REF` prints afresh. FLOPs are exact (equations from their op
tree, cross-checked in torch; networks in torch); latency and energy are
measured on this machine, and energy says how (`measured:rapl`, or
`estimated:power_model` where no counter exists). Beside it, the modeled
energy (`registry.cost.modeled`): exact and the same on every machine, from
the counted operations and bytes at `MODELED_BATCH`.

Example:
    >>> measure_cost(module, manifest).flops.forward
    4
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.cost.flops import FlopCount, count_equation_flops, count_module_flops
from registry.cost.latency import Latency, measure_latency, time_calls
from registry.cost.modeled import MODELED_BATCH, ModeledEnergy, model_energy

if TYPE_CHECKING:
    import torch

    from registry.core.manifest import Cost, Manifest
    from registry.nn.weights import WeightStats

__all__ = ["ModuleCost", "alternative_figures", "count_flops", "measure_cost",
           "model_module_energy", "to_modeled"]

LATENCY_BATCH = 4096
FLOP_BATCH = 16


@dataclass(frozen=True)
class ModuleCost:
    flops: FlopCount
    params: int
    latency: Latency
    energy_j_per_sample: float
    energy_method: str
    energy_hardware: str
    modeled: ModeledEnergy | None = None
    calibration: Any = None  # this machine's saved `Calibration`, if one was made here
    weights: WeightStats | None = None

    @property
    def nonzero_flops(self) -> int:
        """FLOPs per sample without the multiply-adds by zero weights a dense kernel runs."""
        zero = self.weights.zero_macs if self.weights else 0
        return self.flops.forward - 2 * zero

    def to_cost(self, previous: Cost | None = None) -> Cost:
        """The manifest's `cost` section (keeping a recorded `training` cost)."""
        from registry.core.manifest import Cost, Measured

        stats = self.weights
        pruned = stats is not None and stats.zero_macs > 0  # zeros a dense kernel multiplies by
        return Cost(
            flops_per_sample=self.flops.forward,
            flops_per_sample_backward=self.flops.forward_backward,
            params=self.params,
            nonzero_params=stats.nonzero if stats is not None and pruned else None,
            nonzero_flops_per_sample=self.nonzero_flops if pruned else None,
            weight_bytes=stats.bytes if stats is not None and stats.params else None,
            uncounted_ops=list(self.flops.uncounted_ops),
            latency_ns_per_sample=Measured(**_rounded(self.latency.to_dict())),
            energy_j_per_sample=Measured(value=float(f"{self.energy_j_per_sample:.4g}"),
                                         batch=self.latency.batch, method=self.energy_method,
                                         hardware=self.energy_hardware),
            energy_modeled_j_per_sample=to_modeled(self.modeled) if self.modeled else None,
            calibration=self.calibration,
            training=previous.training if previous else None,
        )

    def to_dict(self) -> dict[str, Any]:
        stats = self.weights
        return {"flops": self.flops.to_dict(), "params": self.params,
                "nonzero_params": stats.nonzero if stats else None,
                "nonzero_flops_per_sample": self.nonzero_flops,
                "weight_bytes": stats.bytes if stats else None,
                "latency_ns_per_sample": _rounded(self.latency.to_dict()),
                "energy_j_per_sample": {"value": self.energy_j_per_sample,
                                        "method": self.energy_method,
                                        "hardware": self.energy_hardware},
                "energy_modeled_j_per_sample": self.modeled.to_dict() if self.modeled else None}


def measure_cost(module: torch.nn.Module, manifest: Manifest, *, batch: int = LATENCY_BATCH,
                 table: str | None = None, root: Path | None = None) -> ModuleCost:
    """Measure `module` (built from `manifest`) on inputs sampled from its declared ranges;
    with the repository `root`, a calibration saved there for this hardware comes along."""
    import torch

    from registry.core.manifest import Sample
    from registry.cost.calibration import saved_calibration
    from registry.cost.energy import track_energy
    from registry.evaluation import sample_inputs
    from registry.nn.weights import weight_stats

    x = torch.as_tensor(sample_inputs(manifest, Sample(n=max(batch, FLOP_BATCH), seed=0),
                                      where=manifest.ref), dtype=torch.float32)
    flops = count_flops(module, manifest, x[:FLOP_BATCH])
    stats = weight_stats(module)
    latency = measure_latency(module, x[:batch])
    with torch.no_grad(), track_energy() as tracker:
        calls = len(time_calls(lambda: module(x[:batch]), warmup=0))
    report = tracker.report
    assert report is not None
    return ModuleCost(flops, stats.params, latency, report.energy_j / (calls * batch),
                      report.method, report.hardware,
                      model_module_energy(module, manifest, table=table),
                      saved_calibration(root, report.hardware), stats)


def alternative_figures(module: torch.nn.Module, manifest: Manifest,
                        nrmse: float) -> dict[str, Any]:
    """What `registry alternatives --measure` compares, counted afresh (exact figures only:
    FLOPs, modeled energy, weight bytes) beside `nrmse` measured by the caller."""
    from registry.nn.weights import weight_stats

    stats = weight_stats(module)
    return {"nrmse": nrmse, "flops": count_flops(module, manifest, backward=False).forward,
            "energy_j": model_module_energy(module, manifest).j_per_sample,
            "weight_bytes": stats.bytes if stats.params else None}


def model_module_energy(module: torch.nn.Module, manifest: Manifest, *,
                        table: str | None = None, backward: bool = False) -> ModeledEnergy:
    """The modeled energy per sample on fixed inputs: the first MODELED_BATCH of the seed-0
    draw from the declared ranges (the gate recomputes it on the same ones)."""
    import torch

    from registry.core.manifest import Sample
    from registry.evaluation import sample_inputs

    drawn = sample_inputs(manifest, Sample(n=max(LATENCY_BATCH, MODELED_BATCH), seed=0),
                          where=manifest.ref)
    x = torch.as_tensor(drawn[:MODELED_BATCH], dtype=torch.float32)
    return model_energy(module, x, table=table, backward=backward)


def to_modeled(energy: ModeledEnergy, *, samples: int | None = None) -> Any:
    """The manifest's `Modeled` record (per sample; with `samples`, the total over them)."""
    from registry.core.manifest import Modeled

    scale = samples if samples is not None else 1
    return Modeled(value=energy.j_per_sample * scale, method=energy.method,
                   table_version=energy.table_version, batch=energy.batch,
                   ops_j=energy.ops_j * scale, bytes_j=energy.bytes_j * scale,
                   samples=samples, unpriced=list(energy.unpriced))


def count_flops(module: torch.nn.Module, manifest: Manifest,
                example: torch.Tensor | None = None, *, backward: bool = True) -> FlopCount:
    """FLOPs per sample on the same inputs `registry register` counts them on.

    Composites that integrate until an event take a data-dependent number of
    steps, so the inputs are fixed: the first FLOP_BATCH of the seed-0 draw of
    LATENCY_BATCH samples from the declared ranges.
    """
    if example is None:
        import torch

        from registry.core.manifest import Sample
        from registry.evaluation import sample_inputs

        drawn = sample_inputs(manifest, Sample(n=max(LATENCY_BATCH, FLOP_BATCH), seed=0),
                              where=manifest.ref)
        example = torch.as_tensor(drawn[:FLOP_BATCH], dtype=torch.float32)
    flops = count_module_flops(module, example, backward=backward)
    if manifest.kind == "equation":
        equations = getattr(module, "equations", None)
        if equations is not None:
            flops = _agreeing(flops, count_equation_flops(equations))
    return flops


def _agreeing(measured: FlopCount, from_equation: int) -> FlopCount:
    if measured.forward != from_equation and not measured.uncounted_ops:
        from registry.errors import RegistryError

        raise RegistryError(f"FLOP count mismatch: the equation counts {from_equation}, torch "
                            f"measured {measured.forward}; report this as a bug")
    return measured


def _rounded(data: dict[str, Any]) -> dict[str, Any]:
    return {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in data.items()}
