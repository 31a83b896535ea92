"""Candidate laws and how they are scored: a candidate's complexity (tree nodes) and its
error (nRMSE) against the teacher, evaluated with the ops equation modules use."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import sympy

from registry.errors import RegistryError

__all__ = ["Candidate", "complexity_of", "evaluate", "nrmse"]


@dataclass(frozen=True)
class Candidate:
    expr: sympy.Expr
    complexity: int
    nrmse: float  # against the teacher, on fresh points
    method: str
    units_ok: bool = True

    def to_dict(self) -> dict[str, object]:
        from registry.core.expr import format_expression

        return {"equation": format_expression(self.expr), "complexity": self.complexity,
                "nrmse": self.nrmse, "method": self.method, "units_ok": self.units_ok}


def complexity_of(expr: sympy.Expr) -> int:
    """Tree nodes, a fitted float counting 8 (it takes many bits to state), so exact
    constants such as 2·π win over their float approximations."""
    return sum(8 if isinstance(node, sympy.Float) else 1
               for node in sympy.preorder_traversal(expr))


def evaluate(expr: sympy.Expr, x: Mapping[str, np.ndarray]) -> np.ndarray:
    """Evaluate our own (trusted) sympy tree with the torch ops equation modules use."""
    import torch

    from registry.nn.equation import as_tensor, compile_expression

    env = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in x.items()}
    with torch.no_grad(), np.errstate(all="ignore"):
        try:
            value = compile_expression(expr)(env)
        except (ArithmeticError, TypeError, ValueError, RegistryError):
            # Not a real function (√ of a negative constant after snapping, a constant
            # beyond floating point): unusable.
            return np.full(len(next(iter(x.values()))), np.nan)
        return as_tensor(value, env).numpy().astype(np.float64)


def nrmse(predicted: np.ndarray, y: np.ndarray) -> float:
    with np.errstate(all="ignore"):
        if not np.all(np.isfinite(predicted)):
            return math.inf
        spread = float(np.std(y)) or float(np.abs(y).mean()) or 1.0
        return float(np.sqrt(np.mean((predicted - y) ** 2))) / spread


def _sparse(expr: sympy.Expr, floats: int = 2) -> bool:
    """Few fitted constants: a law, not an approximation (a dense polynomial or Padé fit
    reaches a network's noise level whatever the law is)."""
    return len(expr.atoms(sympy.Float)) <= floats
