"""The float fast path: an equation module's lowered op tree as one plain Python function.

A service that calls `drag` once per request pays torch's per-op dispatch (about 2 µs an
op) for five multiplications that cost 0.13 µs on Python floats. `compile_scalar` turns
the same lowered tree the tensor path runs (`core.lowering`) into a function of floats,
`f(a0, a1, …) -> (out0, …)`, and `EquationModule` uses it for small batches outside
autograd (`FAST_PATH_MAX_BATCH`).

The function is built by writing Python source and compiling it once. No text from a
manifest or a user ever enters that source: it is assembled only from the fixed
templates in `_TEMPLATES` (one per op; an op without one gets no fast path) and
identifiers this module generates (`a0` for the first input, `k0` for the first
literal, `c0` for the first named constant). Values are bound in the function's
namespace, never written into the source, and the namespace holds only `math`
functions. So the compiled text is a fixed function of the op tree's shape.

Python floats are float64: the fast path rounds once, at the end, to the input's dtype;
it matches the tensor path to that dtype's rounding (tested). Where `math` raises (√ of
a negative number, log 0, an overflow, division by zero) the call falls back to the
tensor path, which answers NaN or ±inf as torch does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from registry.core.lowering import Const, Node, Op, Var

__all__ = ["FAST_PATH_MAX_BATCH", "ScalarFunction", "compile_scalar"]

FAST_PATH_MAX_BATCH = 4  # rows up to which a call takes the float path

ScalarFunction = Callable[..., tuple[float, ...]]

_TEMPLATES: dict[str, str] = {
    "add": "({0} + {1})", "sub": "({0} - {1})", "mul": "({0} * {1})", "div": "({0} / {1})",
    "neg": "(-{0})", "reciprocal": "(1.0 / {0})", "square": "({0} ** 2)",
    "cube": "({0} ** 3)", "sqrt": "_sqrt({0})", "rsqrt": "(1.0 / _sqrt({0}))",
    "pow": "_pow({0}, {1})", "exp": "_exp({0})", "log": "_log({0})", "sin": "_sin({0})",
    "cos": "_cos({0})", "tan": "_tan({0})", "asin": "_asin({0})", "acos": "_acos({0})",
    "atan": "_atan({0})", "sinh": "_sinh({0})", "cosh": "_cosh({0})", "tanh": "_tanh({0})",
    "abs": "_abs({0})",
}
_NAMESPACE: dict[str, object] = {
    "_sqrt": math.sqrt, "_pow": math.pow, "_exp": math.exp, "_log": math.log,
    "_sin": math.sin, "_cos": math.cos, "_tan": math.tan, "_asin": math.asin,
    "_acos": math.acos, "_atan": math.atan, "_sinh": math.sinh, "_cosh": math.cosh,
    "_tanh": math.tanh, "_abs": abs,
}


class _Writer:
    def __init__(self, inputs: Sequence[str], constants: Sequence[str]) -> None:
        self.slots = {name: f"a{i}" for i, name in enumerate(inputs)}
        self.slots |= {name: f"c{i}" for i, name in enumerate(constants)}
        self.literals: dict[str, float] = {}

    def write(self, node: Node) -> str | None:
        if isinstance(node, Const):
            name = f"k{len(self.literals)}"
            self.literals[name] = float(node.value)
            return name
        if isinstance(node, Var):
            return self.slots.get(node.name)
        assert isinstance(node, Op)
        template = _TEMPLATES.get(node.op)
        if template is None:
            return None
        args = [self.write(arg) for arg in node.args]
        placeholders = sum(f"{{{i}}}" in template for i in range(2))
        if any(a is None for a in args) or placeholders != len(args):
            return None
        return template.format(*args)


def compile_scalar(trees: Sequence[Node], *, inputs: Sequence[str],
                   constants: Sequence[str] = ()) -> ScalarFunction | None:
    """`f(*inputs, *constants) -> outputs` over floats for the lowered `trees`, or None when
    some op has no float template (an op registered only for torch)."""
    writer = _Writer(inputs, constants)
    bodies = [writer.write(tree) for tree in trees]
    if any(body is None for body in bodies):
        return None
    params = ", ".join([*(f"a{i}" for i in range(len(inputs))),
                        *(f"c{i}" for i in range(len(constants)))])
    source = f"def _scalar({params}):\n    return ({', '.join(bodies)},)\n"  # type: ignore[arg-type]
    namespace: dict[str, object] = dict(_NAMESPACE) | writer.literals
    # The source holds only our templates and generated identifiers (module docstring).
    # safe: the source holds only our fixed op templates and generated a0/k0/c0 names
    exec(compile(source, "<equation fast path>", "exec"), namespace)  # safe: see above
    function = namespace["_scalar"]
    assert callable(function)
    return function
