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

import functools
import operator
from collections.abc import Callable, Mapping

import sympy
import torch
from torch import nn

from registry.errors import ExpressionError, ManifestError
from registry.nn.ports import PortModule

__all__ = ["TORCH_OPS", "EquationModule", "register_torch_op"]

Value = torch.Tensor | float
Compiled = Callable[[Mapping[str, torch.Tensor]], Value]

TORCH_OPS: dict[type, Callable[..., Value]] = {
    sympy.Add: lambda *args: functools.reduce(operator.add, args),
    sympy.Mul: lambda *args: functools.reduce(operator.mul, args),
    sympy.exp: torch.exp,
    sympy.log: torch.log,
    sympy.sin: torch.sin,
    sympy.cos: torch.cos,
    sympy.tan: torch.tan,
    sympy.asin: torch.asin,
    sympy.acos: torch.acos,
    sympy.atan: torch.atan,
    sympy.sinh: torch.sinh,
    sympy.cosh: torch.cosh,
    sympy.tanh: torch.tanh,
    sympy.Abs: torch.abs,
}


def register_torch_op(sympy_type: type, function: Callable[..., Value]) -> None:
    """Teach equation modules a new sympy node type (e.g. `sympy.erf` → `torch.erf`)."""
    TORCH_OPS[sympy_type] = function


def _power(exponent: sympy.Expr) -> Callable[[torch.Tensor], Value]:
    if exponent == 2:
        return lambda b: b * b
    if exponent == sympy.Rational(1, 2):
        return torch.sqrt
    if exponent == -1:
        return lambda b: 1.0 / b
    if exponent == sympy.Rational(-1, 2):
        return torch.rsqrt
    value = float(exponent)
    return lambda b: b**value


def _compile(expr: sympy.Expr) -> Compiled:
    """A closure tree that evaluates `expr` on a mapping of named tensors."""
    if expr.is_Number or expr.is_NumberSymbol:
        constant = float(expr)
        return lambda env: constant
    if expr.is_Symbol:
        name = expr.name
        return lambda env: env[name]
    if isinstance(expr, sympy.Pow) and expr.exp.is_Number:
        base = _compile(expr.base)
        apply = _power(expr.exp)
        return lambda env: apply(_as_tensor(base(env), env))
    if isinstance(expr, sympy.Pow):
        base, exponent = _compile(expr.base), _compile(expr.exp)
        return lambda env: torch.pow(_as_tensor(base(env), env), exponent(env))
    function = TORCH_OPS.get(type(expr))
    if function is None:
        raise ExpressionError(
            f"no torch implementation for sympy `{type(expr).__name__}` in `{expr}`; "
            "add one with `registry.nn.register_torch_op`"
        )
    args = [_compile(arg) for arg in expr.args]
    if isinstance(expr, sympy.Add | sympy.Mul):
        return lambda env: function(*(a(env) for a in args))
    (only,) = args
    return lambda env: function(_as_tensor(only(env), env))


def _as_tensor(value: Value, env: Mapping[str, torch.Tensor]) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    like = next(iter(env.values()))
    return torch.full_like(like, value)


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
        self._compiled = [_compile(expr) for expr in self.equations.values()]

    def forward_tensor(self, x: torch.Tensor) -> torch.Tensor:
        env = {name: x[..., i] for i, name in enumerate(self.input_names)}
        for name in self.constant_names:
            env[name] = getattr(self.constants, name).to(dtype=x.dtype)
        outputs = [_as_tensor(fn(env), {"x": x[..., 0]}) for fn in self._compiled]
        return torch.stack(outputs, dim=-1)

    def constant_values(self) -> dict[str, float]:
        return {name: float(getattr(self.constants, name).detach()) for name in self.constant_names}

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
