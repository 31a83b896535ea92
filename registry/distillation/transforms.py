"""Transforms of the target (t → t², 1/t, √t, log t, 1/t²) that can make f shallow, and
the back-transforms that turn a fit of T(t) into a law for t."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import sympy


@dataclass(frozen=True)
class _Transform:
    """A change of target, t → T(t), that can make f shallow (`√(1 + a² + b²)` is a
    polynomial once squared, `1/(eˣ − 1)` a shifted exponential once inverted)."""

    name: str
    forward: Callable[[np.ndarray], np.ndarray]
    back: Callable[[sympy.Expr, float], sympy.Expr]  # (fit of T(t), sign of t) → t
    searched: bool = True  # also a target of the expression search (else quick solvers only)


def _transforms(t: np.ndarray) -> list[_Transform]:
    """The transforms that apply to target values `t` (one-signed ones only)."""
    if not (np.all(t > 0) or np.all(t < 0)):
        return []
    # An angle (0 < θ ≤ π) may be the arccosine of a rational law: aberration's
    # cos θ₁ = (cos θ₂ − β)/(1 − β·cos θ₂). For the quick solvers only.
    angle = ([_Transform("cosine", np.cos, lambda e, s: sympy.acos(e), searched=False)]
             if np.all(t > 0) and float(t.max()) <= math.pi else [])
    return [
        _Transform("square", np.square, lambda e, s: s * _root(e)),
        _Transform("inverse", np.reciprocal, lambda e, s: _inverse(e)),
        _Transform("sqrt", lambda v: np.sqrt(np.abs(v)), lambda e, s: s * _scaled(e, 2)),
        _Transform("log", lambda v: np.log(np.abs(v)), lambda e, s: s * _exp(e)),
        _Transform("inverse square", lambda v: 1 / np.square(v),
                   lambda e, s: s * _inverse(_root(e))),
        # Occupation numbers: 1/(eˣ − 1) (Bose–Einstein, Planck) is x itself here, a power
        # law; the search does not need it (it reaches eˣ − 1 on the inverse).
        _Transform("log of 1 + the inverse", lambda v: np.log1p(1 / np.abs(v)),
                   lambda e, s: s / (sympy.exp(e) - 1), searched=False),
        *angle,
    ]


def _scale_of(e: sympy.Expr) -> sympy.Expr:
    """The largest fitted coefficient of a sum (1 if none): pulled out of a root, an
    inverse or a power, the constants left inside are ratios (1, −2) and the one outside
    is simple again (√(9/16π²) = 3/4π), so snapping finds both."""
    terms = sympy.Add.make_args(sympy.expand(e))
    coefficients = [t.as_coeff_Mul()[0] for t in terms]
    floats = [c for c in coefficients if isinstance(c, sympy.Float) and c != 0]
    return max(floats, key=lambda c: abs(float(c))) if floats else sympy.Integer(1)


def _root(e: sympy.Expr) -> sympy.Expr:
    c = _scale_of(e)
    c = c if float(c) > 0 else -c
    return sympy.Float(math.sqrt(float(c))) * sympy.sqrt(sympy.expand(e / c))


def _inverse(e: sympy.Expr) -> sympy.Expr:
    c = _scale_of(e)
    return sympy.Float(1 / float(c)) / sympy.expand(e / c)


def _scaled(e: sympy.Expr, power: int) -> sympy.Expr:
    c = _scale_of(e)
    return sympy.Float(float(c) ** power) * sympy.expand(e / c) ** power


def _exp(e: sympy.Expr) -> sympy.Expr:
    """exp(b + g) as e^b · exp(g): e^b is the constant to snap (1/√(2π) for a Gaussian)."""
    constant, rest = sympy.expand(e).as_coeff_Add()
    if not isinstance(constant, sympy.Float) or abs(float(constant)) > 700:
        return sympy.exp(e)  # nothing to split off, or e^b beyond floating point
    return sympy.Float(math.exp(float(constant))) * sympy.exp(rest)


def _back(transform: _Transform, fit: sympy.Expr, sign: float) -> sympy.Expr | None:
    """The fit of T(t) as a law for t, or None when it has no finite form."""
    try:
        return transform.back(fit, sign)
    except (ArithmeticError, ValueError, TypeError):
        return None


def _stretch(transform: _Transform, t: np.ndarray) -> float:
    """How much the transform stretches a relative error of t: RMS of T'(t)·std(t) over
    std(T(t)), T' by central differences."""
    h = 1e-6
    with np.errstate(all="ignore"):
        derivative = (transform.forward(t * (1 + h)) - transform.forward(t * (1 - h))) / (2 * h * t)
        spread = float(np.std(transform.forward(t)))
        value = float(np.sqrt(np.mean(np.square(derivative)))) * float(np.std(t)) / spread
    return value if np.isfinite(value) and value > 0 else 1.0
