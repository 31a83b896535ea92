"""Exact, machine-independent FLOP counts per sample.

Equations are counted from their lowered op tree (`registry.core.lowering`), networks
by running them under `torch.utils.flop_counter.FlopCounterMode`, extended with
the elementwise formulas below (it counts only matmuls and convolutions by
itself, so `G*m1*m2/r**2` would be 0). Both use one published weight table,
so an equation module measured in torch gives the same count as its equation.
Every op met without a formula is listed in `uncounted_ops`, never silently 0.

Weights (FLOPs per output element):

    add sub mul div neg abs reciprocal relu          1
    square (x*x) 1, cube (x*x*x) 2
    sqrt rsqrt                                       4
    exp log sin cos tan asin acos atan sinh cosh tanh  8
    pow (general: exp(y*log x))                      17
    sigmoid 10, silu 11, gelu 12, softplus 17
    comparisons, logical ops, where, sign, clamp     1
    backward: tanh_backward 3, sigmoid_backward 3, threshold_backward 1
    matmul (m×k)(k×n)                                2·m·k·n, + m·n for addmm's bias
    int8 linear (quantized.linear_dynamic)           the same as addmm: integer
        multiply-adds are counted as FLOPs (the operations executed, in another format)
    sum any all argmax amax amin                     one op per reduced element

Example:
    >>> count_equation_flops({"F": parse_expression("G*m1*m2/r**2", names=...)})
    4
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sympy

from registry.core.lowering import lower, walk_ops

if TYPE_CHECKING:
    import torch

__all__ = ["OP_WEIGHTS", "FlopCount", "count_equation_flops", "count_module_flops"]

OP_WEIGHTS: dict[str, int] = {
    "add": 1, "sub": 1, "mul": 1, "div": 1, "neg": 1, "abs": 1, "reciprocal": 1, "relu": 1,
    "square": 1, "cube": 2,
    "sqrt": 4, "rsqrt": 4,
    "exp": 8, "log": 8, "sin": 8, "cos": 8, "tan": 8, "asin": 8, "acos": 8, "atan": 8,
    "sinh": 8, "cosh": 8, "tanh": 8,
    "pow": 17,
    "sigmoid": 10, "silu": 11, "gelu": 12, "softplus": 17,
    # comparisons, selection and backward kernels (pow's backward branches on zeros)
    "eq": 1, "ne": 1, "ge": 1, "gt": 1, "le": 1, "lt": 1, "logical_and": 1, "logical_or": 1,
    "logical_not": 1, "bitwise_and": 1, "bitwise_or": 1, "where": 1, "sign": 1, "sgn": 1,
    "maximum": 1, "minimum": 1, "clamp": 1,
    "tanh_backward": 3, "sigmoid_backward": 3, "threshold_backward": 1,
}

# aten ops that move or create data without arithmetic.
ZERO_COST_OPS = frozenset([
    # bookkeeping and scatter
    "arange", "index", "index_put", "_local_scalar_dense",
    "select", "slice", "stack", "cat", "view", "_unsafe_view", "reshape", "_reshape_alias", "t",
    "transpose", "permute", "expand", "expand_copy", "view_copy", "clone", "copy_", "_to_copy",
    "detach", "alias", "lift_fresh", "as_strided", "unsqueeze", "squeeze", "unbind", "split",
    "split_with_sizes", "full", "full_like", "zeros", "zeros_like", "ones", "ones_like", "empty",
    "empty_like", "empty_strided", "new_ones", "new_zeros", "new_empty", "new_empty_strided",
    "new_full", "fill_", "zero_", "scalar_tensor", "select_backward", "slice_backward",
    "index_select", "gather",
])

# aten op name → the op of the weight table it performs.
_ATEN_TO_OP = {name: name for name in OP_WEIGHTS} | {"rsub": "sub"}


@dataclass(frozen=True)
class FlopCount:
    """FLOPs per sample, forward and forward+backward, with what could not be counted."""

    forward: int
    forward_backward: int | None = None
    by_op: Mapping[str, int] = field(default_factory=dict)
    uncounted_ops: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"forward": self.forward, "forward_backward": self.forward_backward,
                "by_op": dict(self.by_op), "uncounted_ops": list(self.uncounted_ops)}


def count_equation_flops(equations: Mapping[str, sympy.Expr]) -> int:
    """FLOPs per sample of evaluating every output's equation once."""
    return sum(OP_WEIGHTS[op.op] for expr in equations.values() for op in walk_ops(lower(expr)))


def count_module_flops(module: torch.nn.Module, example: torch.Tensor, *,
                       backward: bool = True, extrapolate: bool = True) -> FlopCount:
    """Count FLOPs per sample of `module` on `example` (a batch), measured in torch.

    Forward is counted under `torch.no_grad`; forward+backward propagates a
    gradient of ones to every parameter and to the inputs. An ODE integration
    inside is counted from its first two steps (`extrapolate`; the same count as
    running every step under the counter, which `extrapolate=False` does).
    """
    batch = example.shape[0]
    forward, by_op, uncounted = _run_counted(lambda: _forward(module, example),
                                             extrapolate=extrapolate)
    total = None
    if backward:
        try:
            both, _, more = _run_counted(lambda: _forward_backward(module, example),
                                         extrapolate=extrapolate)
        except _NoGradient:
            pass
        else:
            uncounted |= more
            total = _per_sample(both, batch)
    return FlopCount(_per_sample(forward, batch),
                     total,
                     {k: _per_sample(v, batch) for k, v in sorted(by_op.items())},
                     tuple(sorted(uncounted)))


def _forward(module: torch.nn.Module, x: torch.Tensor) -> None:
    import torch

    with torch.no_grad():
        module(x)


def _forward_backward(module: torch.nn.Module, x: torch.Tensor) -> None:
    import torch

    x = x.detach().clone().requires_grad_(True)
    out = module(x)
    if not out.requires_grad:
        raise _NoGradient
    out.backward(torch.ones_like(out))
    if x.grad is None:  # e.g. int8 layers: torch has no gradient through them
        raise _NoGradient


class _NoGradient(Exception):
    """The module's output carries no gradient: no forward+backward count."""


def _per_sample(total: int, batch: int) -> int:
    return math.ceil(total / batch) if total % batch else total // batch


def _run_counted(body: Callable[[], None], *,
                 extrapolate: bool = True) -> tuple[int, Counter[str], set[str]]:
    """Run `body` under FlopCounterMode (extended) and a recorder of every executed op."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils.flop_counter import FlopCounterMode

    from registry.nn.counting import ACTIVE, StepExtrapolation

    counter = FlopCounterMode(display=False, custom_mapping=_elementwise_formulas())
    executed: set[str] = set()

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (),
                               kwargs: Any = None) -> Any:
            executed.add(func._overloadpacket.__name__)
            return func(*args, **(kwargs or {}))

    def snapshot() -> Counter[str]:
        by_op: Counter[str] = Counter()
        for op, count in counter.get_flop_counts().get("Global", {}).items():
            by_op[getattr(op, "__name__", str(op))] += int(count)
        return by_op

    # An ODE inside is counted from its first steps (`registry.nn.counting`).
    extrapolation = StepExtrapolation(snapshot) if extrapolate else None
    token = ACTIVE.set(extrapolation)
    try:
        with Recorder(), counter:
            body()
    finally:
        ACTIVE.reset(token)
    known = {getattr(k, "__name__", str(k)) for k in counter.flop_registry}
    uncounted = {op for op in executed if op not in known and op not in ZERO_COST_OPS}
    by_op = snapshot()
    extra = extrapolation.extra if extrapolation is not None else Counter()
    by_op.update(extra)
    return int(counter.get_total_flops()) + sum(extra.values()), +by_op, uncounted


def _elementwise_formulas() -> dict[Any, Callable[..., int]]:
    import torch

    aten = torch.ops.aten

    def elementwise(weight: int) -> Callable[..., int]:
        def formula(*args: Any, out_shape: Any = None, **kwargs: Any) -> int:
            return weight * _numel(out_shape)
        return formula

    def addmm(bias: Any, a: Any, b: Any, *args: Any, out_shape: Any = None, **kw: Any) -> int:
        m, k = a
        n = b[1]
        return 2 * m * k * n + m * n

    def reduction(x: Any, *args: Any, out_shape: Any = None, **kwargs: Any) -> int:
        return _numel(x) - _numel(out_shape)

    formulas: dict[Any, Callable[..., int]] = {
        getattr(aten, name): elementwise(OP_WEIGHTS[op]) for name, op in _ATEN_TO_OP.items()
        if hasattr(aten, name)
    }
    formulas[aten.addmm] = addmm

    def linear_dynamic(x: Any, packed: Any, *args: Any, out_shape: Any = None, **kw: Any) -> int:
        rows, k, n = math.prod(x[:-1]), x[-1], out_shape[-1]
        return 2 * rows * k * n + rows * n

    if hasattr(torch.ops, "quantized") and hasattr(torch.ops.quantized, "linear_dynamic"):
        formulas[torch.ops.quantized.linear_dynamic] = linear_dynamic
    for name in ("sum", "any", "all", "argmax", "amax", "amin"):
        formulas[getattr(aten, name)] = reduction
    return formulas


def _numel(shape: Any) -> int:
    if isinstance(shape, list | tuple) and shape and isinstance(shape[0], list | tuple):
        shape = shape[0]  # ops with several outputs: count the first
    return math.prod(shape) if shape else 1
