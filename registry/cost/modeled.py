"""Modeled energy: exact and machine independent, like the FLOP count.

    energy per sample = Σ ops (count × pJ per op for its dtype)
                      + Σ ops (bytes read and written × pJ per byte of the memory
                               level the op's working set fits in)

over every aten op a forward (or forward+backward) pass runs, at a fixed batch
(`MODELED_BATCH`, recorded): weights are read once per op call per batch and
activations per sample, so dividing the batch's totals by the batch size is
the honest per-sample figure. An op's working set is the bytes it reads and
writes in that call; the first memory level that holds it prices its bytes.

Arithmetic is split into additions and multiplications per output element
(`OP_SPLIT`), consistent with the FLOP weights of `registry.cost.flops`: a
matmul (m×k)(k×n) is m·k·n multiplies and m·k·n adds; `exp` (8 FLOPs) is 4
adds and 4 multiplies. Division is priced as a multiply (the table has no
divider; labelled). Views move nothing and cost nothing; copies move bytes.
An int8 linear layer (`quantized.linear_dynamic`) is priced as its kernel works
(`_int8_linear`). Ops or dtypes the table cannot price are listed in
`unpriced`, never 0 silently.

Tables (`TABLES`, selectable by name — `REGISTRY_ENERGY_TABLE`, `registry cost
--table` — and recorded as `modeled:<name>` with the table's version; more
from a YAML file named by `REGISTRY_ENERGY_TABLE_FILE`):

- `horowitz-45nm` — M. Horowitz, "Computing's energy problem (and what we can
  do about it)", ISSCC 2014, 45 nm, 0.9 V. Integer add 8-bit 0.03 pJ, 32-bit
  0.1 pJ; integer multiply 8-bit 0.2 pJ, 32-bit 3.1 pJ; float add 16-bit
  0.4 pJ, 32-bit 0.9 pJ; float multiply 16-bit 1.1 pJ, 32-bit 3.7 pJ; a 64-bit
  memory access 10 pJ (8 KB cache), 20 pJ (32 KB), 100 pJ (1 MB), 1.3–2.6 nJ
  (DRAM; the low end is used). float64 is not in the table: it is priced at
  2× (add) and 4× (multiply) float32, the width scaling of the table's own
  16→32-bit entries, and labelled so in `assumptions`.

Example:
    >>> model_energy(module, x).j_per_sample
    1.2e-10
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.cost.op_arithmetic import OP_SPLIT
from registry.cost.op_arithmetic import arithmetic as _arithmetic
from registry.cost.op_arithmetic import int8_linear as _int8_linear
from registry.cost.op_arithmetic import nbytes as _nbytes

if TYPE_CHECKING:
    import torch

__all__ = ["DEFAULT_TABLE", "MODELED_BATCH", "OP_SPLIT", "TABLES", "TABLE_ENV", "TABLE_FILE_ENV",
           "EnergyTable", "MemoryLevel", "ModeledEnergy", "available_tables", "energy_table",
           "model_energy", "model_traffic"]

MODELED_BATCH = 1024
DEFAULT_TABLE = "horowitz-45nm"

# ops that only reinterpret a tensor: no arithmetic, no bytes
_VIEWS = frozenset([
    "view", "_unsafe_view", "reshape", "_reshape_alias", "t", "transpose", "permute", "expand",
    "alias", "as_strided", "unsqueeze", "squeeze", "unbind", "split", "split_with_sizes",
    "select", "slice", "detach", "lift_fresh", "_local_scalar_dense", "view_copy",
])
# ops that create or move data without arithmetic: bytes only
_MOVES = frozenset([
    "arange", "index", "index_put", "stack", "cat", "expand_copy", "clone", "copy_", "_to_copy",
    "full", "full_like", "zeros", "zeros_like", "ones", "ones_like", "empty", "empty_like",
    "empty_strided", "new_ones", "new_zeros", "new_empty", "new_empty_strided", "new_full",
    "fill_", "zero_", "scalar_tensor", "select_backward", "slice_backward", "index_select",
    "gather",
])


@dataclass(frozen=True)
class MemoryLevel:
    name: str
    capacity_bytes: int | None  # None: the last level (DRAM), holds anything
    pj_per_byte: float


@dataclass(frozen=True)
class EnergyTable:
    name: str
    version: str
    source: str
    op_pj: Mapping[tuple[str, str], float]  # ("add" | "mul", dtype) -> pJ per op
    levels: tuple[MemoryLevel, ...]  # by capacity, smallest first
    assumptions: tuple[str, ...] = ()

    @property
    def method(self) -> str:
        return f"modeled:{self.name}"

    def level_for(self, working_set_bytes: int) -> MemoryLevel:
        for level in self.levels:
            if level.capacity_bytes is None or working_set_bytes <= level.capacity_bytes:
                return level
        return self.levels[-1]


_HOROWITZ_OPS = {
    ("add", "int8"): 0.03, ("add", "int32"): 0.1, ("mul", "int8"): 0.2, ("mul", "int32"): 3.1,
    ("add", "float16"): 0.4, ("add", "float32"): 0.9,
    ("mul", "float16"): 1.1, ("mul", "float32"): 3.7,
    # not in the table: float64 at the width scaling of its 16→32-bit float entries
    ("add", "float64"): 2 * 0.9, ("mul", "float64"): 4 * 3.7,
}

TABLES: dict[str, EnergyTable] = {
    "horowitz-45nm": EnergyTable(
        name="horowitz-45nm", version="1",
        source="M. Horowitz, \"Computing's energy problem (and what we can do about it)\", "
               "ISSCC 2014, 45 nm, 0.9 V",
        op_pj=_HOROWITZ_OPS,
        levels=(MemoryLevel("cache-8KB", 8 * 1024, 10 / 8),
                MemoryLevel("cache-32KB", 32 * 1024, 20 / 8),
                MemoryLevel("cache-1MB", 1024 * 1024, 100 / 8),
                MemoryLevel("dram", None, 1300 / 8)),
        assumptions=("division priced as a multiply", "float64 add 2x, multiply 4x float32",
                     "DRAM at the low end of 1.3-2.6 nJ per 64-bit access")),
}


TABLE_ENV = "REGISTRY_ENERGY_TABLE"  # the table registrations model with (default below)
TABLE_FILE_ENV = "REGISTRY_ENERGY_TABLE_FILE"  # a YAML file of more tables


def energy_table(name: str | None = None) -> EnergyTable:
    """The table `name` (default: $REGISTRY_ENERGY_TABLE, else `DEFAULT_TABLE`)."""
    from registry.errors import RegistryError

    name = name or os.environ.get(TABLE_ENV) or DEFAULT_TABLE
    tables = available_tables()
    if name not in tables:
        raise RegistryError(f"no energy table `{name}`; the tables are "
                            f"{', '.join(sorted(tables))} (more from a file named by "
                            f"{TABLE_FILE_ENV})")
    return tables[name]


def available_tables() -> dict[str, EnergyTable]:
    """The shipped tables and those of the file $REGISTRY_ENERGY_TABLE_FILE names."""
    path = os.environ.get(TABLE_FILE_ENV)
    return {**TABLES, **(_table_file(Path(path)) if path else {})}


def _table_file(path: Path) -> dict[str, EnergyTable]:
    """Tables from YAML: a list of {name, version, source, ops: {"add:float32": pJ, ...},
    levels: [{name, capacity_bytes (null for the last), pj_per_byte}], assumptions}."""
    from registry.core.manifest_file import load_yaml
    from registry.errors import RegistryError

    def bad(where: str, fix: str) -> RegistryError:
        return RegistryError(f"{path}: {where}: {fix}")

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise bad(TABLE_FILE_ENV, f"cannot be read ({exc.strerror}); fix the path") from None
    if len(text) > 1 << 20:
        raise bad("file", "over 1 MiB; an energy table is a few lines")
    found: dict[str, EnergyTable] = {}
    entries = load_yaml(text, source=str(path))
    if not isinstance(entries, list):
        raise bad("top level", "expected a list of tables")
    for i, entry in enumerate(entries):
        where = f"[{i}]"
        if not isinstance(entry, dict):
            raise bad(where, "expected a mapping with name, version, source, ops, levels")
        name = str(entry.get("name", ""))
        if not re.fullmatch(r"[a-z0-9][a-z0-9-]{0,40}", name, re.ASCII) or name in TABLES:
            raise bad(f"{where}.name", f"{name!r} must be new and match [a-z0-9-] (the shipped "
                      f"tables are {', '.join(TABLES)})")
        ops: dict[tuple[str, str], float] = {}
        for key, value in (entry.get("ops") or {}).items():
            kind, _, dtype = str(key).partition(":")
            if kind not in ("add", "mul") or not dtype:
                raise bad(f"{where}.ops.{key}", "keys are add:<dtype> or mul:<dtype>")
            ops[(kind, dtype)] = _positive(value, bad(f"{where}.ops.{key}", "a finite pJ > 0"))
        levels = []
        for j, level in enumerate(entry.get("levels") or []):
            here = f"{where}.levels[{j}]"
            if not isinstance(level, dict) or "name" not in level:
                raise bad(here, "expected {name, capacity_bytes, pj_per_byte}")
            capacity = level.get("capacity_bytes")
            if capacity is not None and (not isinstance(capacity, int) or capacity <= 0):
                raise bad(f"{here}.capacity_bytes", "a positive integer (null: the last level)")
            levels.append(MemoryLevel(str(level["name"]), capacity, _positive(
                level.get("pj_per_byte"), bad(f"{here}.pj_per_byte", "a finite pJ > 0"))))
        if not ops or not levels or levels[-1].capacity_bytes is not None:
            raise bad(where, "needs ops and levels, the last level with capacity_bytes: null")
        found[name] = EnergyTable(name, str(entry.get("version", "1")),
                                  str(entry.get("source", path)), ops, tuple(levels),
                                  tuple(map(str, entry.get("assumptions") or ())))
    return found


def _positive(value: Any, error: Exception) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
            math.isfinite(value) and value > 0):
        raise error
    return float(value)


@dataclass(frozen=True)
class Traffic:
    """What a pass does, per sample: arithmetic by (kind, dtype), bytes by memory level."""

    batch: int
    ops: Mapping[tuple[str, str], float]  # ("add" | "mul", dtype) -> count per sample
    bytes: Mapping[str, float]  # memory level -> bytes per sample
    unpriced: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModeledEnergy:
    j_per_sample: float
    ops_j: float
    bytes_j: float
    batch: int
    table: str
    table_version: str
    traffic: Traffic
    unpriced: tuple[str, ...] = ()

    @property
    def method(self) -> str:
        return f"modeled:{self.table}"

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.j_per_sample, "method": self.method,
                "table_version": self.table_version, "batch": self.batch,
                "ops_j": self.ops_j, "bytes_j": self.bytes_j,
                "ops": {f"{k}:{d}": v for (k, d), v in sorted(self.traffic.ops.items())},
                "bytes": dict(sorted(self.traffic.bytes.items())),
                "unpriced": list(self.unpriced)}


def model_energy(module: torch.nn.Module, example: torch.Tensor, *,
                 table: str | None = None, backward: bool = False) -> ModeledEnergy:
    """The modeled energy per sample of `module` on the batch `example`."""
    priced = energy_table(table)
    traffic = model_traffic(module, example, table=priced, backward=backward)
    return price(traffic, priced)


def price(traffic: Traffic, table: EnergyTable) -> ModeledEnergy:
    unpriced = set(traffic.unpriced)
    ops_pj = 0.0
    for (kind, dtype), count in traffic.ops.items():
        pj = table.op_pj.get((kind, dtype))
        if pj is None:
            unpriced.add(f"{kind}:{dtype}")
            continue
        ops_pj += count * pj
    levels = {level.name: level for level in table.levels}
    bytes_pj = sum(n * levels[name].pj_per_byte for name, n in traffic.bytes.items())
    ops_j, bytes_j = ops_pj * 1e-12, bytes_pj * 1e-12
    return ModeledEnergy(ops_j + bytes_j, ops_j, bytes_j, traffic.batch, table.name,
                         table.version, traffic, tuple(sorted(unpriced)))


def model_traffic(module: torch.nn.Module, example: torch.Tensor, *, table: EnergyTable,
                  backward: bool = False, extrapolate: bool = True) -> Traffic:
    """Count arithmetic and bytes of a forward (or forward+backward) pass on `example`
    (an ODE inside counted from its first two steps unless not `extrapolate`)."""
    import torch

    def forward() -> None:
        with torch.no_grad():
            module(example)

    def forward_backward() -> None:
        x = example.detach().clone().requires_grad_(True)
        out = module(x)
        out.backward(torch.ones_like(out))

    ops, moved, unpriced = _record(forward_backward if backward else forward, table,
                                   extrapolate=extrapolate)
    batch = int(example.shape[0])
    return Traffic(batch, {k: v / batch for k, v in sorted(ops.items())},
                   {k: v / batch for k, v in sorted(moved.items())}, tuple(sorted(unpriced)))


def _record(body: Callable[[], None], table: EnergyTable, *,
            extrapolate: bool = True) -> tuple[Counter[tuple[str, str]], Counter[str], set[str]]:
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    ops: Counter[tuple[str, str]] = Counter()
    moved: Counter[str] = Counter()
    unpriced: set[str] = set()

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                               kwargs: Any = None) -> Any:
            out = func(*args, **(kwargs or {}))
            name = func._overloadpacket.__name__
            if name in _VIEWS:
                return out
            inputs = [t for t in tree_flatten((args, kwargs or {}))[0]
                      if isinstance(t, torch.Tensor)]
            outputs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
            if name == "linear_dynamic":  # int8 weights packed for their kernel
                weights, int8_ops = _int8_linear(args[1], inputs[0], outputs[0])
                inputs.extend(weights)
                ops.update(int8_ops)
            working = sum(map(_nbytes, inputs)) + sum(map(_nbytes, outputs))
            if working:
                moved[table.level_for(working).name] += working
            if name in _MOVES or name == "linear_dynamic":
                return out
            dtype = str((inputs or outputs)[0].dtype).removeprefix("torch.") if (
                inputs or outputs) else "float32"
            counted = _arithmetic(name, inputs, outputs)
            if counted is None:
                unpriced.add(name)
                return out
            adds, muls = counted
            if adds:
                ops[("add", dtype)] += adds
            if muls:
                ops[("mul", dtype)] += muls
            return out

    from registry.nn.counting import ACTIVE, StepExtrapolation

    def snapshot() -> Counter[Any]:
        both: Counter[Any] = Counter({("ops", *k): v for k, v in ops.items()})
        both.update({("bytes", k): v for k, v in moved.items()})
        return both

    # An ODE inside is counted from its first steps, as the FLOP counter does.
    extrapolation = StepExtrapolation(snapshot) if extrapolate else None
    token = ACTIVE.set(extrapolation)
    try:
        with Recorder():
            body()
    finally:
        ACTIVE.reset(token)
    for key, value in (extrapolation.extra if extrapolation is not None else {}).items():
        if key[0] == "ops":
            ops[key[1:]] += value
        else:
            moved[key[1]] += value
    return ops, moved, unpriced
