"""Angles inside rational laws: `d·(1 − α²)/(1 + α·cos Δθ)` (an orbit), the Compton and
Doppler shifts, relativistic aberration `cos θ₁ = (cos θ₂ − β)/(1 − β·cos θ₂)`. These are
rational functions of cos θ, not of θ: the rational solver sees them once each angle
group is replaced by its cosine as a new variable, and an angle-valued target by its
cosine (`cosine` in `transforms.py`).

An angle group is a Π group that is one input or the difference of two (a translation
pair), sampled within one turn either side of zero."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import sympy

from registry.core.expr import symbol

__all__ = ["angle_groups", "from_cosines", "with_cosines"]

TURN = 2 * math.pi + 0.5  # |θ| beyond this is not an angle a law takes the cosine of
PREFIX = "cos_"


def angle_groups(groups: Mapping[str, sympy.Expr], values: Mapping[str, np.ndarray]) -> list[str]:
    """The groups that may be angles: one input, or a difference of two, within a turn."""
    out = []
    for name, expr in groups.items():
        atoms = expr.free_symbols
        simple = isinstance(expr, sympy.Symbol) or (
            isinstance(expr, sympy.Add) and len(expr.args) == 2 and len(atoms) == 2
            and all(arg.is_Symbol or (-arg).is_Symbol for arg in expr.args))
        v = values[name]
        if simple and float(np.abs(v).max()) <= TURN and float(np.ptp(v)) > 0:
            out.append(name)
    return out


def with_cosines(values: Mapping[str, np.ndarray], angles: list[str]) -> dict[str, np.ndarray]:
    """`values` with each angle group replaced by its cosine (named `cos_<group>`)."""
    return {(PREFIX + n if n in angles else n): (np.cos(v) if n in angles else v)
            for n, v in values.items()}


def from_cosines(expr: sympy.Expr, angles: list[str]) -> sympy.Expr:
    """A law over `with_cosines` variables, in the groups again."""
    return expr.xreplace({symbol(PREFIX + n): sympy.cos(symbol(n)) for n in angles})
