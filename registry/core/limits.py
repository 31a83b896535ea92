"""Size limits checked before anything is allocated: one place to find (and raise) them.

A manifest is small text, but what it declares is not: `hidden: [65536, 65536]`
is four billion parameters, and `sample.n: 10000000` over two thousand ports is
160 GB of float64. So the declared sizes are counted arithmetically when the
manifest is validated, and refused over these limits, before a byte is
allocated; data files (`registry.core.arrays`) are checked from their headers.

    MAX_PARAMETERS         parameters of one network (an `mlp`: all weights and biases)
    MAX_HIDDEN_WIDTH       units of one hidden layer
    MAX_HIDDEN_LAYERS      hidden layers of one network
    MAX_PORTS              inputs (and, separately, outputs) of one module
    MAX_EVALUATION_FLOATS  evaluation points × (inputs + outputs), as float64 values
    MAX_ARRAY_BYTES        declared bytes of all arrays of one `.npz` data file

Weights over a few MB go to DVC (`registry.store.artifacts`), so `MAX_PARAMETERS` allows
200 MB of float32 (a 50 MB network is the object-storage benchmark).

Example:
    >>> mlp_parameters(4, 1, [64, 64])
    4545
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise
from typing import Any

__all__ = [
    "DEFAULT_HIDDEN",
    "MAX_ARRAY_BYTES",
    "MAX_EVALUATION_FLOATS",
    "MAX_HIDDEN_LAYERS",
    "MAX_HIDDEN_WIDTH",
    "MAX_PARAMETERS",
    "MAX_PORTS",
    "OverLimit",
    "check_evaluation_points",
    "check_network",
    "check_ports",
    "mlp_parameters",
]

MAX_PARAMETERS = 50_000_000  # 200 MB of float32 (kept in DVC: artifacts); the seeds have ≤ 4,545
MAX_HIDDEN_WIDTH = 4096  # as the compose spec's inline `mlp` blocks
MAX_HIDDEN_LAYERS = 32
MAX_PORTS = 1024
MAX_EVALUATION_FLOATS = 1 << 25  # 256 MiB of float64
MAX_ARRAY_BYTES = 256 << 20  # the same 256 MiB, for a data file's arrays

DEFAULT_HIDDEN = (64, 64)  # the `mlp` builder's default widths
_WHERE = "registry/core/limits.py"


class OverLimit(ValueError):
    """A declared size over a limit; `field`: its path below the raising validator's field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def mlp_parameters(n_inputs: int, n_outputs: int, hidden: list[int] | tuple[int, ...]) -> int:
    """Weights and biases of `n_inputs → hidden[0] → … → n_outputs`, counted, not built."""
    widths = [n_inputs, *hidden, n_outputs]
    return sum((a + 1) * b for a, b in pairwise(widths))


def check_ports(count: int, section: str) -> None:
    """`ValueError` when a module declares more than `MAX_PORTS` inputs (or outputs)."""
    if count > MAX_PORTS:
        raise ValueError(f"declares {count} {section}, over the limit of {MAX_PORTS} (MAX_PORTS "
                         f"in {_WHERE}); split the module into smaller ones")


def check_network(arch: str, config: Mapping[str, Any], n_inputs: int, n_outputs: int) -> None:
    """`OverLimit` at `network.config.hidden` when an `mlp` is too deep, too large or too wide.

    Only what can be counted is checked: a `hidden` that is not a list of
    integers is left to the builder, which names what is wrong with it.
    """
    if arch != "mlp":
        return
    hidden = config.get("hidden", DEFAULT_HIDDEN)
    if not isinstance(hidden, list | tuple) or not all(
            isinstance(h, int) and not isinstance(h, bool) for h in hidden):
        return
    field, shown = "network.config.hidden", _short(list(hidden))
    if len(hidden) > MAX_HIDDEN_LAYERS:
        raise OverLimit(field, f"{shown} has {len(hidden)} hidden layers, over the limit of "
                        f"{MAX_HIDDEN_LAYERS} (MAX_HIDDEN_LAYERS in {_WHERE}); use fewer layers")
    params = mlp_parameters(n_inputs, n_outputs, tuple(hidden))
    if params > MAX_PARAMETERS:
        raise OverLimit(field, f"{shown} declares {params:,} parameters ({n_inputs} inputs, "
                        f"{n_outputs} outputs), over the limit of {MAX_PARAMETERS:,} "
                        f"(MAX_PARAMETERS in {_WHERE}); use fewer or narrower layers")
    wide = [h for h in hidden if h > MAX_HIDDEN_WIDTH]
    if wide:
        raise OverLimit(field, f"{shown}: width {wide[0]} is over the limit of "
                        f"{MAX_HIDDEN_WIDTH} (MAX_HIDDEN_WIDTH in {_WHERE}); use narrower layers")


def check_evaluation_points(n: int, ports: int) -> None:
    """`OverLimit` at `evaluation.sample.n` when `n` points × `ports` are too many floats."""
    floats = n * ports
    if floats > MAX_EVALUATION_FLOATS:
        most = MAX_EVALUATION_FLOATS // max(ports, 1)
        raise OverLimit("evaluation.sample.n", f"{n:,} points × {ports} ports (inputs and "
                        f"outputs) is {floats:,} float64 values ({floats * 8 / 2**30:.1f} GiB), "
                        f"over the limit of {MAX_EVALUATION_FLOATS:,} (MAX_EVALUATION_FLOATS in "
                        f"{_WHERE}); lower `n` to at most {most:,}")


def _short(hidden: list[int]) -> str:
    return str(hidden) if len(hidden) <= 8 else f"[{', '.join(map(str, hidden[:8]))}, …]"
