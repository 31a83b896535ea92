"""Quick solvers: power laws (log-linear fit, exponents snapped to small rationals) and
sparse polynomials (least squares over monomials).

Example:
    >>> power_law({"L": L, "g": g}, T).expr     # T = 2π·sqrt(L/g)
    6.28318530717959*L**(1/2)*g**(-1/2)
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import sympy

from registry.expr import symbol

__all__ = ["QuickFit", "polynomial", "power_law", "snap_fraction"]


@dataclass(frozen=True)
class QuickFit:
    expr: sympy.Expr
    nrmse: float
    complexity: int


def snap_fraction(value: float, *, max_denominator: int = 4,
                  tolerance: float = 0.02) -> Fraction | None:
    """`value` as a small rational when it is within `tolerance` of one."""
    fraction = Fraction(value).limit_denominator(max_denominator)
    return fraction if abs(float(fraction) - value) <= tolerance else None


def _nrmse(predicted: np.ndarray, y: np.ndarray) -> float:
    spread = float(np.std(y)) or float(np.abs(y).mean()) or 1.0
    return float(np.sqrt(np.mean((predicted - y) ** 2))) / spread


def power_law(variables: Mapping[str, np.ndarray], y: np.ndarray) -> QuickFit | None:
    """y = c·Π x_i^a_i with rational a_i, fitted in log space (needs positive x, one-signed y)."""
    names = list(variables)
    if not names or np.any(y == 0) or not (np.all(y > 0) or np.all(y < 0)):
        return None
    if any(np.any(variables[n] <= 0) for n in names):
        return None
    sign = 1.0 if y[0] > 0 else -1.0
    logs = np.stack([np.log(variables[n]) for n in names] + [np.ones_like(y)], axis=1)
    coef, *_ = np.linalg.lstsq(logs, np.log(sign * y), rcond=None)
    exponents = [snap_fraction(float(a)) for a in coef[:-1]]
    if any(e is None for e in exponents):
        return None
    monomial = np.ones_like(y)
    for n, e in zip(names, exponents, strict=True):
        monomial = monomial * np.power(variables[n], float(e))  # type: ignore[arg-type]
    c = float(np.sum(monomial * y) / np.sum(monomial * monomial))
    expr = sympy.Float(c) * sympy.Mul(*(symbol(n) ** sympy.Rational(e.numerator, e.denominator)
                                        for n, e in zip(names, exponents, strict=True)
                                        if e))
    complexity = 1 + sum(2 for e in exponents if e)
    return QuickFit(expr, _nrmse(c * monomial, y), complexity)


_EXPONENT_GRID = [Fraction(k, 2) for k in range(-6, 7)]


def power_law_scaled(prefactor: np.ndarray, variables: Mapping[str, np.ndarray], y: np.ndarray,
                     *, max_groups: int = 3) -> QuickFit | None:
    """y = P · c · Π x_i^a_i, scored in y's own space (robust to a teacher's absolute error,
    which dividing by a small P would blow up): exponents from a grid of halves."""
    names = list(variables)
    if not names or len(names) > max_groups or any(np.any(variables[n] <= 0) for n in names):
        return None
    logs = {n: np.log(variables[n]) for n in names}
    best: tuple[float, float, tuple[Fraction, ...]] | None = None
    for exponents in itertools.product(_EXPONENT_GRID, repeat=len(names)):
        with np.errstate(all="ignore"):
            feature = prefactor * np.exp(sum(float(e) * logs[n]
                                             for n, e in zip(names, exponents, strict=True)))
        denominator = float(feature @ feature)
        if not np.isfinite(denominator) or denominator == 0:
            continue
        c = float(feature @ y) / denominator
        err = _nrmse(c * feature, y)
        if best is None or err < best[0] - 1e-12:
            best = (err, c, exponents)
    if best is None:
        return None
    err, c, exponents = best
    expr = sympy.Float(c) * sympy.Mul(*(symbol(n) ** sympy.Rational(e.numerator, e.denominator)
                                        for n, e in zip(names, exponents, strict=True) if e))
    return QuickFit(expr, err, 1 + sum(2 for e in exponents if e))


def polynomial(variables: Mapping[str, np.ndarray], y: np.ndarray, *,
               degree: int = 2) -> QuickFit | None:
    """A sparse polynomial: least squares over monomials up to `degree`, small terms pruned."""
    names = list(variables)
    if not names or len(names) > 4:
        return None
    terms: list[tuple[str, ...]] = [()]
    for d in range(1, degree + 1):
        terms += list(itertools.combinations_with_replacement(names, d))
    columns = [np.prod([variables[n] for n in t], axis=0) if t else np.ones_like(y) for t in terms]
    design = np.stack(columns, axis=1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    scale = np.abs(design * coef).max(axis=0)
    keep = scale > 1e-9 * (np.abs(y).max() or 1.0)
    if not keep.any():
        return None
    coef_kept, *_ = np.linalg.lstsq(design[:, keep], y, rcond=None)
    kept = [t for t, k in zip(terms, keep, strict=True) if k]
    expr = sympy.Add(*(sympy.Float(c) * sympy.Mul(*(symbol(n) for n in t))
                       for c, t in zip(coef_kept, kept, strict=True)))
    return QuickFit(expr, _nrmse(design[:, keep] @ coef_kept, y),
                    sum(1 + 2 * len(t) for t in kept))
