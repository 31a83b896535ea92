"""Transforms of the target fitted where the teacher resolves it, laws refitted everywhere.

log t, 1/t and log(1 + 1/t) make a Gaussian, a Planck or a Bose–Einstein law shallow
(a sum of a few terms, a power law), but only where t stands clear of the teacher's
error: in a Gaussian's tails or a Planck law's high-frequency end a network answers
values a few of its errors from 0, sometimes below it, and there the transformed
target is the error's, not the law's. So the transform is fitted on the trusted
points alone (|t| at least `TRUST_MARGIN` × the tolerance × t's spread from 0, on
t's side of 0); the law it gives is then refitted on every point against t itself
(`refine.refine_constants`) and judged there, like every other candidate. Where every
point is trusted this still differs from the plain transforms: a fit in log space
weighs a relative error alike everywhere, and its constants, refitted against t, can
come within the teacher's error where the fit's own did not.

    exp(−θ²/2σ²)/(√(2π)·σ): log t = −θ²/(2σ²) − log σ − ½·log 2π on the trusted points
    1/(e^{x/2π} − 1):       log(1 + 1/t) = x/(2π), a power law of x
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

import numpy as np
import sympy

from registry.distillation.candidates import _sparse, evaluate, nrmse
from registry.distillation.quick import library as fit_library
from registry.distillation.quick import polynomial as fit_polynomial
from registry.distillation.quick import power_law
from registry.distillation.refine import refine_constants
from registry.distillation.transforms import _back, _transforms

__all__ = ["TRUST_MARGIN", "trusted_points", "trusted_transforms"]

TRUST_MARGIN = 1.5  # × tolerance × spread: about 3 of a teacher's errors (tol = 2 × them)
MIN_TRUSTED = 0.5  # of the points, for a fit on them to say anything about the law
LOOSE = 0.05  # how far a transformed fit may miss on the trusted points (judged after)


def trusted_points(target: np.ndarray, tolerance: float) -> np.ndarray | None:
    """The points where the target stands clear of the teacher's error, on the side of 0
    most of it is on (every point, often); None when too few do."""
    positive = np.count_nonzero(target > 0) * 2 >= len(target)
    sign = 1.0 if positive else -1.0
    mask = sign * target > TRUST_MARGIN * tolerance * float(np.std(target))
    kept = int(np.count_nonzero(mask))
    if kept < MIN_TRUSTED * len(target):
        return None
    return np.asarray(mask)


def trusted_transforms(values: Mapping[str, np.ndarray], target: np.ndarray, tolerance: float,
                       record: Callable[[sympy.Expr, str], None], *, deadline: float,
                       scale: np.ndarray | None = None) -> int:
    """Fit power laws, quadratics and sparse sums of the target's transforms on its trusted
    points; record each law (refitted on all points, in y's space when `scale`, the
    prefactor's values, is given: target = y/scale) within `tolerance` of the target;
    returns how many were recorded."""
    mask = trusted_points(target, tolerance)
    if mask is None:
        return 0
    kept = {n: v[mask] for n, v in values.items()}
    sign = 1.0 if float(target[mask][0]) > 0 else -1.0  # (one-signed on the trusted points)
    found = 0
    for transform in _transforms(target[mask]):
        if time.monotonic() > deadline:
            break
        with np.errstate(all="ignore"):
            t = transform.forward(target[mask])
        if not np.all(np.isfinite(t)):
            continue
        fits = [(power_law(kept, t), "power law"),
                (fit_polynomial(kept, t, degree=2), "polynomial"),
                (fit_library(kept, t, tolerance=LOOSE), "library")]
        for fit, label in fits:
            if fit is None or fit.nrmse > LOOSE or not _sparse(fit.expr, 4):
                continue
            law = _back(transform, fit.expr, sign)
            if law is None:
                continue
            law = refine_constants(law, values, target if scale is None else scale * target,
                                   deadline=deadline, scale=scale)
            if nrmse(evaluate(law, values), target) < tolerance:
                record(law, f"{label} of the {transform.name}, on trusted points")
                found += 1
                break
    return found
