"""How finely the teacher resolves its law: the tolerance the solver works to.

A network trained on noisy measurements has a test error near the noise σ (it is
measured against noisy targets), yet it is much closer than that to the law it
learned: fitting averages the noise out. Trusting candidates to σ lets an
approximant such as π·m/3 for m/√(1 − v²/c²) (5 % off, within σ = 10 %) stop the
search, and lets a constant snap to a value 20 % away. So the solver measures the
teacher's own floor before it starts: the held-out error of a dense polynomial in
the inputs (Chebyshev, total degree as high as the samples support). Whatever the
law is, a smooth teacher is that close to some smooth function; when the floor is
far below the stated tolerance, the solver works to `FLOOR_FACTOR` × the floor
instead (never below `MIN_SHARE` × the stated tolerance, and never above it).

A noise-free teacher's floor is about its own error, so the tolerance it was given
stands; an exact oracle's floor is the polynomial's approximation error, again
rarely below the tolerance.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping

import numpy as np

__all__ = ["FLOOR_FACTOR", "MIN_SHARE", "chebyshev_design", "polynomial_floor",
           "working_tolerance"]

FLOOR_FACTOR = 3.0  # a law may sit this far above the dense polynomial's error
MIN_SHARE = 0.01  # the working tolerance is at least this share of the stated one
MAX_DEGREE = 6
TERMS_PER_SAMPLE = 0.2  # at most one polynomial term per five fitting samples


def _degree(n_inputs: int, n_samples: int) -> int:
    """The highest total degree whose term count the samples support."""
    best = 1
    for degree in range(1, MAX_DEGREE + 1):
        if math.comb(n_inputs + degree, degree) <= TERMS_PER_SAMPLE * n_samples:
            best = degree
    return best


def chebyshev_design(x: Mapping[str, np.ndarray], ranges: Mapping[str, tuple[float, float]],
                     degree: int) -> np.ndarray:
    """Products of Chebyshev polynomials of the inputs (scaled to [−1, 1] over `ranges`)
    of total degree at most `degree`, one column each."""
    names = list(x)
    scaled = []
    for n in names:
        lo, hi = ranges[n]
        mid, half = (lo + hi) / 2, ((hi - lo) / 2) or 1.0
        scaled.append(np.polynomial.chebyshev.chebvander((x[n] - mid) / half, degree))
    columns = []
    for total in range(degree + 1):
        for chosen in itertools.combinations_with_replacement(range(len(names)), total):
            column = np.ones(len(scaled[0]))
            powers = [chosen.count(i) for i in range(len(names))]
            for i, k in enumerate(powers):
                if k:
                    column = column * scaled[i][:, k]
            columns.append(column)
    return np.stack(columns, axis=1)


def polynomial_floor(fit_x: Mapping[str, np.ndarray], fit_y: np.ndarray,
                     test_x: Mapping[str, np.ndarray], test_y: np.ndarray,
                     ranges: Mapping[str, tuple[float, float]]) -> float:
    """The held-out nRMSE of a dense polynomial least-squares fit (inf if it cannot be
    fitted: no inputs, too many of them for the samples, non-finite values)."""
    n = len(fit_x)
    if n == 0 or math.comb(n + 1, 1) > TERMS_PER_SAMPLE * len(fit_y):
        return math.inf
    degree = _degree(n, len(fit_y))
    with np.errstate(all="ignore"):
        design = chebyshev_design(fit_x, ranges, degree)
        if not np.all(np.isfinite(design)) or not np.all(np.isfinite(fit_y)):
            return math.inf
        coef, *_ = np.linalg.lstsq(design, fit_y, rcond=None)
        predicted = chebyshev_design(test_x, ranges, degree) @ coef
        spread = float(np.std(test_y)) or float(np.abs(test_y).mean()) or 1.0
        err = float(np.sqrt(np.mean((predicted - test_y) ** 2))) / spread
    return err if math.isfinite(err) else math.inf


def working_tolerance(tolerance: float, floor: float) -> float:
    """The stated tolerance, tightened to `FLOOR_FACTOR` × the teacher's floor when that is
    lower (but not below `MIN_SHARE` of the stated tolerance)."""
    if not math.isfinite(floor):
        return tolerance
    return min(tolerance, max(FLOOR_FACTOR * floor, MIN_SHARE * tolerance))
