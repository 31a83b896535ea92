"""Occupation laws of one group: f = A·xᵏ/(exp(c·xᵉ) ∓ 1) (Bose–Einstein, Planck, Fermi–Dirac).

Planck's law over a reduction with the prefactor kT·ω²/c² is x/(eˣ − 1) up to a constant;
over ħω³/c² it is 1/(eˣ − 1) up to another. No transform of the target makes either a
power law once a constant multiplies it, and the expression search builds eˣ − 1 but
rarely the ratio. So the family is fitted directly, in the target's own space (a
teacher's error near 0 is harmless there): for each k in −1…3, e = ±1 and sign, the
scale c over a grid, A by linear least squares, then A and c refitted together
(`refine.refine_constants`). A fit within the tolerance is recorded; snapping makes the
constants exact (c = 1/2π).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import numpy as np
import sympy

from registry.core.expr import symbol
from registry.distillation.candidates import evaluate, nrmse
from registry.distillation.refine import refine_constants

__all__ = ["occupation_laws"]

POWERS = (-1, 0, 1, 2, 3)  # k: the power of x beside the occupation factor
SCALES = np.geomspace(1e-3, 1e3, 121)  # c: tried before refitting (5.9 % apart)
GRID_MISS = 0.1  # the best grid point's nRMSE from which the refit is not tried


def occupation_laws(values: Mapping[str, np.ndarray], target: np.ndarray, tolerance: float,
                    record: Callable[[sympy.Expr, str], None], *, deadline: float,
                    scale: np.ndarray | None = None) -> int:
    """Record each law of the family within `tolerance` of the target (one group: none
    otherwise); returns how many were recorded (at most one a sign of ∓). `scale`: the
    prefactor's values (target = y/scale): fitted in y's space, where the teacher's
    error is of one size."""
    if len(values) != 1:
        return 0
    (name, x), = values.items()
    if np.any(x <= 0) or not np.all(np.isfinite(target)):
        return 0
    found = 0
    w = np.ones_like(target) if scale is None else np.abs(scale) / float(np.abs(scale).max())
    spread = float(np.std(w * target)) or 1.0
    for plus in (False, True):
        best: tuple[float, int, int, float, float] | None = None
        for k in POWERS:
            for e in (1, -1):
                with np.errstate(all="ignore"):
                    u = np.power(x, e)
                    for c in SCALES:
                        if time.monotonic() > deadline:
                            return found
                        basis = w * np.power(x, k) / (np.expm1(c * u) + (2.0 if plus else 0.0))
                        if not np.all(np.isfinite(basis)):
                            continue
                        norm = float(basis @ basis)
                        if norm <= 0:
                            continue
                        a = float(basis @ (w * target)) / norm
                        err = float(np.sqrt(np.mean((a * basis - w * target) ** 2))) / spread
                        if best is None or err < best[0]:
                            best = (err, k, e, float(c), a)
        if best is None or best[0] > max(10 * tolerance, GRID_MISS):
            continue
        _, k, e, c, a = best
        v = symbol(name)
        law = (sympy.Float(a) * v ** k
               / (sympy.exp(sympy.Float(c) * v ** e) + (1 if plus else -1)))
        law = refine_constants(law, values, target if scale is None else scale * target,
                               deadline=deadline, scale=scale)
        if nrmse(evaluate(law, values), target) < tolerance:
            record(law, "Fermi–Dirac law" if plus else "Bose–Einstein law")
            found += 1
    return found
