"""Cost accounting: exact FLOPs, latency, energy (measured or estimated) and carbon."""

from registry.cost.carbon import co2_kg, grid_intensity
from registry.cost.energy import (
    EnergyReport,
    FakeMeter,
    NvmlMeter,
    PowerModelMeter,
    RaplMeter,
    select_meter,
    track_energy,
)
from registry.cost.flops import OP_WEIGHTS, FlopCount, count_equation_flops, count_module_flops

__all__ = [
    "OP_WEIGHTS",
    "EnergyReport",
    "FakeMeter",
    "FlopCount",
    "NvmlMeter",
    "PowerModelMeter",
    "RaplMeter",
    "co2_kg",
    "count_equation_flops",
    "count_module_flops",
    "grid_intensity",
    "select_meter",
    "track_energy",
]
