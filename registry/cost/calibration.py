"""Calibration: measured ÷ modeled energy of a few reference kernels on this machine.

The modeled energy (`registry.cost.modeled`) is exact and machine independent,
but it prices a 45 nm chip's arithmetic and memory, not this one's (nor its
idle power, which a package counter includes). `calibrate` runs reference
kernels — elementwise add and multiply of two large float32 vectors, a float32
matmul 256×256 @ 256×256, an MLP-like addmm + tanh — each `repeats` times
inside `track_energy()`, and divides the measured joules by the modeled joules
of the same calls:

    ratio(kernel) = measured J / (modeled J per sample × batch × repeats)
    ratio         = geometric mean of the kernels' ratios

It needs a hardware counter (`measured:rapl`, `measured:nvml`); where the
energy would only be estimated (`estimated:power_model`) it refuses, since a
ratio against an estimate would calibrate nothing. A module's calibrated
estimate is its modeled energy × `ratio` (`registry cost REF --calibrate`).
`registry cost --calibrate` keeps the result in `.registry/calibration.json`;
registrations on the same hardware then record it in `cost.calibration`.

Example:
    >>> calibrate().kernels
    {'add': 41.2, 'mul': 39.8, 'matmul': 12.5, 'mlp': 14.1}
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from registry.cost.modeled import DEFAULT_TABLE, model_energy
from registry.errors import RegistryError

if TYPE_CHECKING:
    import torch

    from registry.core.manifest import Calibration
    from registry.cost.energy import Meter

__all__ = ["CALIBRATION_FILE", "DEFAULT_REPEATS", "KERNELS", "NO_COUNTER", "Kernel", "calibrate",
           "kernel_ratios", "save_calibration", "saved_calibration"]

DEFAULT_REPEATS = 1000  # 0.1-0.3 s a kernel on one CPU core: many RAPL updates
VECTOR = 1 << 20  # elements of each elementwise operand (4 MiB in float32)
SIDE = 256  # matmul operands are SIDE × SIDE
NO_COUNTER = ("no energy counter here (RAPL or NVML); calibration needs one: energy stays "
              "modeled and estimated")


@dataclass(frozen=True)
class Kernel:
    name: str
    build: Callable[[], tuple[torch.nn.Module, torch.Tensor]]  # (module, its input batch)


def _elementwise(op: str) -> tuple[torch.nn.Module, torch.Tensor]:
    import torch

    class Elementwise(torch.nn.Module):
        other: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("other", torch.rand(VECTOR, generator=_gen(1)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.other if op == "add" else x * self.other

    return Elementwise(), torch.rand(VECTOR, generator=_gen(0))


def _matmul(mlp: bool) -> tuple[torch.nn.Module, torch.Tensor]:
    import torch

    class Matmul(torch.nn.Module):
        weight: torch.Tensor
        bias: torch.Tensor

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("weight", torch.rand(SIDE, SIDE, generator=_gen(1)))
            self.register_buffer("bias", torch.rand(SIDE, generator=_gen(2)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if mlp:
                return torch.tanh(torch.addmm(self.bias, x, self.weight))
            return torch.mm(x, self.weight)

    return Matmul(), torch.rand(SIDE, SIDE, generator=_gen(0))


def _gen(seed: int) -> torch.Generator:
    import torch

    return torch.Generator().manual_seed(seed)


KERNELS: tuple[Kernel, ...] = (
    Kernel("add", lambda: _elementwise("add")),
    Kernel("mul", lambda: _elementwise("mul")),
    Kernel("matmul", lambda: _matmul(mlp=False)),
    Kernel("mlp", lambda: _matmul(mlp=True)),
)


def modeled_call_j(module: torch.nn.Module, x: torch.Tensor, table: str = DEFAULT_TABLE) -> float:
    """The modeled joules of one call `module(x)`: per sample × the batch."""
    modeled = model_energy(module, x, table=table)
    return modeled.j_per_sample * modeled.batch


def kernel_ratios(table: str = DEFAULT_TABLE, *, repeats: int = DEFAULT_REPEATS,
                  meter: Meter) -> dict[str, float]:
    """Measured ÷ modeled joules of each kernel, run `repeats` times under `meter`."""
    import torch

    from registry.cost.energy import track_energy

    ratios: dict[str, float] = {}
    for kernel in KERNELS:
        module, x = kernel.build()
        modeled = modeled_call_j(module, x, table)
        with torch.no_grad():
            module(x)  # warm up outside the measurement
            with track_energy(meter=meter) as tracker:
                for _ in range(repeats):
                    module(x)
        measured = tracker.report.energy_j
        if not (measured > 0 and modeled > 0):
            raise RegistryError(f"calibration kernel `{kernel.name}` measured {measured:.4g} J "
                                f"over {repeats} calls ({meter.method}); the counter did not "
                                "advance: raise `repeats`")
        ratios[kernel.name] = measured / (modeled * repeats)
    return ratios


def calibrate(table: str = DEFAULT_TABLE, *, repeats: int = DEFAULT_REPEATS,
              meter: Meter | None = None) -> Calibration:
    """Measured ÷ modeled energy of the reference kernels with this machine's counter."""
    from registry.core.manifest import Calibration
    from registry.cost.energy import select_meter
    from registry.cost.modeled import energy_table

    energy_table(table)  # an unknown table fails before anything runs
    if repeats < 1:
        raise RegistryError(f"calibration repeats must be at least 1, not {repeats}")
    meter = meter if meter is not None else select_meter()
    if meter.method.startswith("estimated") or not meter.available():
        raise RegistryError(NO_COUNTER)
    ratios = kernel_ratios(table, repeats=repeats, meter=meter)
    overall = math.exp(sum(math.log(r) for r in ratios.values()) / len(ratios))
    return Calibration(ratio=overall, method=meter.method, hardware=meter.hardware or None,
                       table=table, kernels=ratios)


CALIBRATION_FILE = "calibration.json"  # in the repository's `.registry/` cache


def save_calibration(root: Path, calibration: Calibration) -> Path:
    """Keep `calibration` for this machine: registrations here record it in `cost`."""
    import os

    folder = root / ".registry"
    folder.mkdir(exist_ok=True)
    path = folder / CALIBRATION_FILE
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(calibration.model_dump_json(indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def saved_calibration(root: Path | None, hardware: str) -> Calibration | None:
    """The calibration saved in `root` when it was made on `hardware`; else None (another
    machine's ratio says nothing about this one; an unreadable file is ignored)."""
    from pydantic import ValidationError

    from registry.core.manifest import Calibration

    path = root / ".registry" / CALIBRATION_FILE if root is not None else None
    if path is None or not path.is_file() or path.stat().st_size > 1 << 16:
        return None
    try:
        found = Calibration.model_validate_json(path.read_text(encoding="utf-8"))
    except (ValidationError, UnicodeDecodeError):
        return None
    return found if found.hardware == hardware else None
