"""The `cost` section of a manifest: counted, measured, modeled and training figures.

Split from `registry.core.manifest` (which re-exports every class here), so one file
holds what a module costs and how each figure was obtained.

Example:
    >>> Cost(flops_per_sample=5, params=0).flops_per_sample
    5
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Calibration", "Cost", "Measured", "Modeled", "Strict", "TrainingCost"]


class Strict(BaseModel):
    """Every manifest model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=False, populate_by_name=True,
                              defer_build=True)  # schemas built at first use, not import


class Measured(Strict):
    """A measured (or estimated) figure with how and where it was obtained."""

    value: float
    batch: int | None = None
    spread: float | None = None
    method: str | None = None
    hardware: str | None = None


class Modeled(Strict):
    """Modeled energy (`registry.cost.modeled`): exact and machine independent."""

    value: float  # joules per sample (inference) or in all (training)
    method: Annotated[str, Field(pattern=r"^modeled:[a-z0-9-]+$")]
    table_version: str
    batch: int
    ops_j: float | None = None
    bytes_j: float | None = None
    samples: int | None = None  # training: samples seen
    unpriced: list[str] = Field(default_factory=list)


class Calibration(Strict):
    """Measured ÷ modeled energy of reference kernels on one machine (`cost --calibrate`)."""

    ratio: float
    method: str  # how the measured side was measured (measured:rapl, measured:nvml)
    hardware: str | None = None
    table: str
    kernels: dict[str, float] = Field(default_factory=dict)  # kernel -> its own ratio


class TrainingCost(Strict):
    energy_j: float | None = None
    energy_modeled: Modeled | None = None
    co2_kg: float | None = None
    duration_s: float | None = None
    cpu_s: float | None = None
    flops: float | None = None
    method: str | None = None
    region: str | None = None
    intensity_g_per_kwh: float | None = None
    pue: float | None = None


class Cost(Strict):
    flops_per_sample: int | None = None
    flops_per_sample_backward: int | None = None
    params: int | None = None
    # a pruned dense layer still multiplies by its zeros: flops_per_sample counts what runs,
    # these count the nonzero weights and the FLOPs of their multiply-adds and the rest
    nonzero_params: int | None = None
    nonzero_flops_per_sample: int | None = None
    weight_bytes: int | None = None  # bytes of weights and biases read by one forward call
    uncounted_ops: list[str] = Field(default_factory=list)
    latency_ns_per_sample: Measured | None = None
    energy_j_per_sample: Measured | None = None
    energy_modeled_j_per_sample: Modeled | None = None
    calibration: Calibration | None = None
    training: TrainingCost | None = None
