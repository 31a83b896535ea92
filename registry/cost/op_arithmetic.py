"""The arithmetic and bytes of one aten op call, as the modeled energy prices them.

Split from `registry.cost.modeled` (which re-exports `OP_SPLIT`): per output element,
an op's additions and multiplications (their sum is its FLOP weight in
`registry.cost.flops`); a matmul's products; a reduction's additions; and an int8
linear layer priced as its kernel works.

Example:
    >>> arithmetic("tanh", [x], [y])      # y with 1024 elements
    (4096, 4096)
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

__all__ = ["OP_SPLIT", "arithmetic", "int8_linear", "nbytes"]

# per output element: (additions, multiplications); the sum is the op's FLOP weight
OP_SPLIT: dict[str, tuple[int, int]] = {
    "add": (1, 0), "sub": (1, 0), "rsub": (1, 0), "neg": (1, 0), "abs": (1, 0), "relu": (1, 0),
    "mul": (0, 1), "div": (0, 1), "reciprocal": (0, 1), "square": (0, 1), "cube": (0, 2),
    "sqrt": (2, 2), "rsqrt": (2, 2),
    **{f: (4, 4) for f in ("exp", "log", "sin", "cos", "tan", "asin", "acos", "atan", "sinh",
                           "cosh", "tanh")},
    "pow": (8, 9), "sigmoid": (5, 5), "silu": (5, 6), "gelu": (6, 6), "softplus": (8, 9),
    **{f: (1, 0) for f in ("eq", "ne", "ge", "gt", "le", "lt", "logical_and", "logical_or",
                           "logical_not", "bitwise_and", "bitwise_or", "where", "sign", "sgn",
                           "maximum", "minimum", "clamp", "threshold_backward")},
    "tanh_backward": (1, 2), "sigmoid_backward": (1, 2),
}
_MATMUL = frozenset(["mm", "addmm", "bmm"])
_REDUCTIONS = frozenset(["sum", "any", "all", "argmax", "amax", "amin"])


def int8_linear(packed: Any, x: Any, out: Any) -> tuple[list[Any], Counter[tuple[str, str]]]:
    """A dynamically quantized linear layer, (m×k) by int8 (k×n): the inputs quantized (a
    float32 multiply each), m·k·n int8 multiplies summed in int32, each output rescaled and
    biased in float32. Returns the weight tensors read and those operations."""
    weight, bias = packed.unpack()
    m, k, n = x.numel() // x.shape[-1], x.shape[-1], out.shape[-1]
    return [weight.int_repr(), *([bias] if bias is not None else [])], Counter({
        ("mul", "int8"): m * k * n, ("add", "int32"): m * k * n,
        ("mul", "float32"): m * k + m * n, ("add", "float32"): m * n if bias is not None else 0})


def arithmetic(name: str, inputs: list[Any], outputs: list[Any]) -> tuple[int, int] | None:
    """(additions, multiplications) of one op call; None when there is no formula."""
    if name in _MATMUL:
        a, b = (inputs[1], inputs[2]) if name == "addmm" else (inputs[0], inputs[1])
        *lead, m, k = a.shape
        n = b.shape[-1]
        products = math.prod(lead) * m * k * n
        return products + (m * n if name == "addmm" else 0), products
    if name in _REDUCTIONS:
        total = inputs[0].numel() - (outputs[0].numel() if outputs else 1)
        return max(total, 0), 0
    split = OP_SPLIT.get(name.removesuffix("_"))
    if split is None:
        return None
    elements = outputs[0].numel() if outputs else 0
    return split[0] * elements, split[1] * elements


def nbytes(tensor: Any) -> int:
    """Bytes a tensor occupies: its elements, or less when it is a broadcast view."""
    size = tensor.numel() * tensor.element_size()
    try:
        return min(size, tensor.untyped_storage().nbytes())
    except (RuntimeError, NotImplementedError):  # tensors without storage
        return size
