"""Refitting a candidate's constants jointly against the target (Levenberg–Marquardt).

Parts solved one at a time (`group_separation.py`) carry each part's own error: the
exponent of 1/√(1 − π²) comes out as 0.500015, the two scales as 0.63 and 1.5875.
Refitted together against the target, they settle where the law has them (½, and a
product of 1), and snapping then finds the exact numbers."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np
import sympy

from registry.distillation.candidates import evaluate, nrmse

__all__ = ["refine_constants"]

MAX_EVALUATIONS = 60  # of the residual, Jacobian columns included
MAX_CONSTANTS = 8


def refine_constants(expr: sympy.Expr, x: Mapping[str, np.ndarray], y: np.ndarray, *,
                     deadline: float | None = None,
                     scale: np.ndarray | None = None) -> sympy.Expr:
    """`expr` with its floats refitted to `y` by least squares, when that fits better (else
    `expr` itself); stops at `deadline` (time.monotonic) with the best point so far.
    `scale`: `y` is `scale` × expr (a Π prefactor's values), fitted in y's own space,
    where a teacher's error is of one size (divided by a small prefactor, it is not)."""
    from scipy.optimize import least_squares

    floats = sorted(expr.atoms(sympy.Float), key=lambda f: sympy.default_sort_key(f))
    if not floats or len(floats) > MAX_CONSTANTS:
        return expr
    params = [sympy.Symbol(f"refined_constant_{i}") for i in range(len(floats))]
    template = expr.xreplace(dict(zip(floats, params, strict=True)))
    start = np.array([float(f) for f in floats])
    n = len(y)
    spread = float(np.std(y)) or 1.0
    factor = np.ones(n) if scale is None else scale

    class _Late(Exception):
        pass

    def residual(theta: np.ndarray) -> np.ndarray:
        if deadline is not None and time.monotonic() > deadline:
            raise _Late
        env = dict(x) | {p.name: np.full(n, v) for p, v in zip(params, theta, strict=True)}
        r = (factor * evaluate(template, env) - y) / spread
        return np.where(np.isfinite(r), r, 1e6)

    try:
        fit = least_squares(residual, start, method="lm", max_nfev=MAX_EVALUATIONS)
    except (_Late, ValueError, ArithmeticError):
        return expr
    if not np.all(np.isfinite(fit.x)):
        return expr
    refined = template.xreplace({p: sympy.Float(float(v)) for p, v in zip(params, fit.x,
                                                                         strict=True)})
    before = nrmse(factor * evaluate(expr, x), y)
    after = nrmse(factor * evaluate(refined, x), y)
    return refined if math.isfinite(after) and after < before else expr
