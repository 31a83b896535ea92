"""Equation modules: sympy expressions compiled to torch through a dispatch table.

Each sympy node type maps to a torch function (`TORCH_OPS`, extensible with
`register_torch_op`). Constants become buffers, or `nn.Parameter`s when they
are trainable; `.sympy()` returns the current equations, so a module and its
equation convert both ways.

Example:
    >>> module = EquationModule({"F": G*m1*m2/r**2}, inputs=["m1", "m2", "r"],
    ...                         constants={"G": (6.6743e-11, False)})
    >>> module(torch.tensor([[1.0, 1.0, 1.0]]))
    tensor([[6.6743e-11]])
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping

import numpy
import sympy
import torch
from torch import nn
from torch.compiler import is_compiling as _is_compiling
from torch.nn.modules import module as _torch_module

from registry.core.lowering import Const, Node, Var, lower
from registry.errors import ExpressionError, ManifestError
from registry.nn.ports import PortModule
from registry.nn.scalar import FAST_PATH_MAX_BATCH, compile_scalar

__all__ = ["TORCH_OPS", "EquationModule", "as_tensor", "compile_expression", "register_torch_op"]

Value = torch.Tensor | float
_NUMPY_DTYPES = {torch.float32: numpy.float32, torch.float64: numpy.float64}
# One sample, one output: a copy of this 1×1 array, its cell set, is the cheapest new array
# (a third less than `numpy.array([[v]])`).
_ONE_BY_ONE = {t: numpy.zeros((1, 1), dtype=d) for t, d in _NUMPY_DTYPES.items()}
# torch's module-wide hook dicts (filled in place by `register_module_*_hook`, never
# rebound): named once here, so the call checks them without four attribute reads.
_G_FORWARD, _G_FORWARD_PRE = (_torch_module._global_forward_hooks,
                               _torch_module._global_forward_pre_hooks)
_G_BACKWARD, _G_BACKWARD_PRE = (_torch_module._global_backward_hooks,
                                _torch_module._global_backward_pre_hooks)
_F32_MAX = float(numpy.finfo(numpy.float32).max)
Compiled = Callable[[Mapping[str, torch.Tensor]], Value]

TORCH_OPS: dict[str, Callable[..., Value]] = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": operator.truediv,
    "neg": operator.neg,
    "reciprocal": torch.reciprocal,
    "square": lambda b: b * b,
    "cube": lambda b: b * b * b,
    "sqrt": torch.sqrt,
    "rsqrt": torch.rsqrt,
    "pow": torch.pow,
    "exp": torch.exp,
    "log": torch.log,
    "sin": torch.sin,
    "cos": torch.cos,
    "tan": torch.tan,
    "asin": torch.asin,
    "acos": torch.acos,
    "atan": torch.atan,
    "sinh": torch.sinh,
    "cosh": torch.cosh,
    "tanh": torch.tanh,
    "abs": torch.abs,
}


def register_torch_op(op: str, function: Callable[..., Value]) -> None:
    """Teach equation modules a new lowered op (pair it with `lowering.FUNCTION_OPS`)."""
    TORCH_OPS[op] = function


def compile_expression(expr: sympy.Expr) -> Compiled:
    """Evaluate `expr` on a mapping of named tensors (the same op tree the FLOP counter weighs)."""
    return _compile(lower(expr))


def _compile(node: Node) -> Compiled:
    """A closure tree that evaluates the lowered `node` on a mapping of named tensors."""
    if isinstance(node, Const):
        constant = node.value
        return lambda env: constant
    if isinstance(node, Var):
        name = node.name
        return lambda env: env[name]
    function = TORCH_OPS.get(node.op)
    if function is None:
        raise ExpressionError(f"no torch function for the op `{node.op}`; add one with "
                              "`registry.nn.register_torch_op`")
    args = [_compile(arg) for arg in node.args]
    if len(args) == 2:
        left, right = args
        if isinstance(node.args[0], Const) and isinstance(node.args[1], Const):
            raise ExpressionError(f"op `{node.op}` on two constants should have been folded")
        return lambda env: function(left(env), right(env))
    (only,) = args
    return lambda env: function(as_tensor(only(env), env))


def as_tensor(value: Value, env: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """`value` as a tensor shaped like the batch in `env` (constants are broadcast)."""
    if isinstance(value, torch.Tensor):
        return value
    like = next(iter(env.values()))
    return torch.full_like(like, value)


def _rows_tensor(rows: list[tuple[float, ...]], dtype: torch.dtype) -> torch.Tensor:
    """The float path's answer, a new tensor of these rows (not empty)."""
    first = rows[0]
    if len(rows) == 1 and len(first) == 1:
        value = first[0]
        if dtype is torch.float64 or (dtype is torch.float32 and -_F32_MAX <= value <= _F32_MAX):
            one = _ONE_BY_ONE[dtype].copy()
            one[0, 0] = value
            return torch.from_numpy(one)
    elif dtype is torch.float64 or (dtype is torch.float32 and all(
            -_F32_MAX <= v <= _F32_MAX for row in rows for v in row)):
        # a numpy array viewed as a tensor: the cheapest new tensor (NaN and values
        # float32 cannot hold go the other way: numpy would warn where torch does not)
        return torch.from_numpy(numpy.array(rows, dtype=_NUMPY_DTYPES[dtype]))
    return torch.tensor(rows, dtype=dtype)


class EquationModule(PortModule):
    """A torch module evaluating one sympy expression per output."""

    def __init__(
        self,
        equations: Mapping[str, sympy.Expr],
        *,
        inputs: list[str],
        constants: Mapping[str, tuple[float, bool]] | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__(inputs, list(equations))
        self.equations = dict(equations)
        self.constants = nn.Module()
        for name, (value, trainable) in (constants or {}).items():
            tensor = torch.tensor(value, dtype=dtype)
            try:
                if trainable:
                    self.constants.register_parameter(name, nn.Parameter(tensor))
                else:
                    self.constants.register_buffer(name, tensor)
            except KeyError as exc:
                raise ManifestError(f"constant name `{name}` is reserved by torch ({exc}); "
                                    "rename the constant") from None
        self.constant_names = list(constants or {})
        self._given = {name: float(value) for name, (value, _) in (constants or {}).items()}
        trees = [lower(expr) for expr in self.equations.values()]
        self._compiled = [_compile(tree) for tree in trees]
        self._scalar = compile_scalar(trees, inputs=self.input_names,
                                      constants=self.constant_names)
        self._trainables = [p for p in self.parameters()]
        self._n_inputs = len(self.input_names)
        self._fast_numel = FAST_PATH_MAX_BATCH * self._n_inputs
        # the dicts themselves (`.to()`, `load_state_dict` replace or write their entries)
        self._constant_buffers = self.constants._buffers
        self._constant_parameters = self.constants._parameters

    def __call__(self, *args: object, **kwargs: object) -> object:
        # `nn.Module.__call__` without its per-call bookkeeping when it has none to do (no
        # hook anywhere, no JIT tracing, no in-place `compile()`): a third of a one-sample
        # call. Anything else takes torch's own path, unchanged.
        if (len(args) == 1 and not kwargs and self._compiled_call_impl is None
                and not (self._forward_hooks or self._forward_pre_hooks or self._backward_hooks
                         or self._backward_pre_hooks or _G_FORWARD or _G_FORWARD_PRE
                         or _G_BACKWARD or _G_BACKWARD_PRE)
                and not torch._C._get_tracing_state()):
            return self._answer(args[0])  # type: ignore[arg-type]
        return super().__call__(*args, **kwargs)

    def forward(self, x: torch.Tensor | Mapping[str, torch.Tensor]
                ) -> torch.Tensor | dict[str, torch.Tensor]:
        if torch._C._get_tracing_state():  # torch.jit.trace records ops, never floats
            return super().forward(x)
        return self._answer(x)

    def _answer(self, x: torch.Tensor | Mapping[str, torch.Tensor]
                ) -> torch.Tensor | dict[str, torch.Tensor]:
        # One sample (or a few) as a plain tensor: the float path with nothing in between
        # (each check costs tens of nanoseconds; a whole call 4.7 µs before this). The
        # checks are `_floats_apply`'s, inline and cheapest first: the grad mode is asked
        # only where something could record (an input or a constant needing grad).
        scalar = self._scalar
        if (type(x) is torch.Tensor and scalar is not None and x.ndim == 2 and x.is_cpu
                and x.numel() <= self._fast_numel
                and not ((x.requires_grad or (bool(self._trainables) and any(
                    p.requires_grad for p in self._trainables))) and torch.is_grad_enabled())
                and not _is_compiling()):
            # `_forward_floats`, inline: calling it measured 0.1 µs more a call (of 2.9)
            constants = self._constant_floats() if self.constant_names else ()
            try:
                values = x.tolist()
                rows = ([scalar(*values[0], *constants)]
                        if len(values) == 1 and len(values[0]) == self._n_inputs
                        else [scalar(*row, *constants) for row in values]
                        if values and len(values[0]) == self._n_inputs else None)
            except (ArithmeticError, ValueError, RuntimeError):
                rows = None  # (as `_forward_floats`)
            if rows:
                return _rows_tensor(rows, x.dtype)
        return PortModule.forward(self, x)

    def forward_tensor(self, x: torch.Tensor) -> torch.Tensor:
        if self._scalar is not None and x.ndim == 2 and self._floats_apply(x):
            fast = self._forward_floats(x)
            if fast is not None:
                return fast
        return self._forward_ops(x)

    def _floats_apply(self, x: torch.Tensor) -> bool:
        """Whether the float path may answer `x`: a few rows on the CPU, nothing for autograd
        to record, not inside torch.compile."""
        return (not torch._C._get_tracing_state() and x.shape[0] <= FAST_PATH_MAX_BATCH
                and x.is_cpu
                and not (torch.is_grad_enabled() and (x.requires_grad or (
                    bool(self._trainables) and any(p.requires_grad for p in self._trainables))))
                and not torch.compiler.is_compiling())

    def _constant_floats(self) -> list[float]:
        """The named constants' current values (`self.constants` is a submodule: reached
        through `nn.Module.__getattr__` it cost more than the whole float function)."""
        buffers, parameters = self._constant_buffers, self._constant_parameters
        return [float(buffers[n]) if n in buffers else float(parameters[n])  # type: ignore[arg-type]
                for n in self.constant_names]

    def _forward_floats(self, x: torch.Tensor) -> torch.Tensor | None:
        """The float fast path (`scalar.py`) for a few rows outside autograd; None where
        `math` refuses a value (the tensor path then answers NaN or ±inf, as torch does)."""
        scalar = self._scalar
        assert scalar is not None
        constants = self._constant_floats() if self.constant_names else ()
        try:
            values = x.tolist()
            rows = [scalar(*row, *constants) for row in values]
        except (ArithmeticError, ValueError, RuntimeError):
            return None  # RuntimeError: a tensor under a transform (vmap) has no floats
        # (no rows: the tensor path's empty result keeps its shape)
        return _rows_tensor(rows, x.dtype) if rows else None

    def _forward_ops(self, x: torch.Tensor) -> torch.Tensor:
        env = {name: x[..., i] for i, name in enumerate(self.input_names)}
        for name in self.constant_names:
            env[name] = getattr(self.constants, name).to(dtype=x.dtype)
        outputs = [as_tensor(fn(env), {"x": x[..., 0]}) for fn in self._compiled]
        return torch.stack(outputs, dim=-1)

    def constant_values(self) -> dict[str, float]:
        """Current constant values; a frozen constant keeps the exact float it was given
        (its buffer holds it in the module's dtype, which may have rounded it)."""
        values = {}
        for name in self.constant_names:
            tensor = getattr(self.constants, name).detach()
            exact = self._given[name]
            unchanged = not tensor.requires_grad and float(tensor) == float(
                torch.tensor(exact, dtype=tensor.dtype))
            values[name] = exact if unchanged else float(tensor)
        return values

    def sympy(self, *, substitute_constants: bool = False) -> dict[str, sympy.Expr]:
        """The current equations; with `substitute_constants`, constants by their values."""
        if not substitute_constants:
            return dict(self.equations)
        values = {sympy.Symbol(n, real=True): sympy.Float(v)
                  for n, v in self.constant_values().items()}
        return {out: expr.xreplace(values) for out, expr in self.equations.items()}

    def extra_repr(self) -> str:
        shown = ", ".join(f"{k} = {v}" for k, v in self.equations.items())
        return f"{super().extra_repr()}, equations: {shown}"
