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

__all__ = ["QuickFit", "polynomial", "power_law", "rational", "snap_fraction"]


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


def rational(variables: Mapping[str, np.ndarray], y: np.ndarray, *, degree: int = 2,
             tolerance: float = 1e-6, max_terms: int = 4) -> QuickFit | None:
    """y = P(x)/Q(x), P and Q polynomials up to `degree`, Q's constant term 1.

    Linear in the coefficients once multiplied out: y·Q(x) = P(x), so
    y = P(x) − y·(Q(x) − 1) is solved by least squares. Terms are then pruned
    greedily (the smallest contribution first) while the fit stays within
    `tolerance`, so `(u + v)/(1 + u·v)` comes out with three terms, not twenty; a fit
    that still needs more than `max_terms` is declined.
    """
    names = list(variables)
    if not names or len(names) > 4:
        return None
    monomials: list[tuple[str, ...]] = [()]
    for d in range(1, degree + 1):
        monomials += list(itertools.combinations_with_replacement(names, d))

    def column(t: tuple[str, ...]) -> np.ndarray:
        return np.prod([variables[n] for n in t], axis=0) if t else np.ones_like(y)

    # (is_denominator, monomial): numerator terms, then denominator terms without 1
    terms = [(False, t) for t in monomials] + [(True, t) for t in monomials[1:]]
    if len(terms) >= len(y) // 4:
        return None
    full = np.stack([-y * column(t) if den else column(t) for den, t in terms], axis=1)

    def fit(active: list[int]) -> tuple[np.ndarray, float]:
        design = full[:, active]
        with np.errstate(all="ignore"):
            coef, *_ = np.linalg.lstsq(design, y, rcond=None)
            numerator = sum((c * column(terms[i][1]) for c, i in zip(coef, active, strict=True)
                             if not terms[i][0]), np.zeros_like(y))
            denominator = 1 + sum((c * column(terms[i][1])
                                   for c, i in zip(coef, active, strict=True) if terms[i][0]),
                                  np.zeros_like(y))
            predicted = numerator / denominator
        if not np.all(np.isfinite(predicted)) or np.any(np.abs(denominator) < 1e-9):
            return coef, float("inf")
        return coef, _nrmse(predicted, y)

    active = list(range(len(terms)))
    coef, err = fit(active)
    if not np.isfinite(err) or err > tolerance:
        return None
    while len(active) > 1:
        contributions = np.abs(full[:, active] * coef).max(axis=0)
        for position in np.argsort(contributions):
            trial = active[:position] + active[position + 1:]
            trial_coef, trial_err = fit(trial)
            if trial_err <= tolerance:
                active, coef, err = trial, trial_coef, trial_err
                break
        else:
            break
    if not any(terms[i][0] for i in active):
        return None  # a plain polynomial: `polynomial` states it more simply
    if len(active) > max_terms:
        # A dense ratio of polynomials approximates any smooth curve to a network's
        # noise level (a Padé approximant of a Gaussian): that is not a law, and
        # accepting it would stop the search that finds the real one.
        return None

    def build(denominator: bool) -> sympy.Expr:
        return sympy.Add(*(sympy.Float(c) * sympy.Mul(*(symbol(n) for n in terms[i][1]))
                           for c, i in zip(coef, active, strict=True)
                           if terms[i][0] == denominator))

    expr = build(False) / (1 + build(True))
    return QuickFit(expr, err, sum(1 + 2 * len(terms[i][1]) for i in active) + 2)
