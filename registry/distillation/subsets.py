"""Which terms of a fit to keep: the fewest that reach a tolerance (every small subset
where there are few candidate terms, a greedy build-up where there are many), or those
left when the least useful are dropped one at a time."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np

__all__ = ["backward_eliminate", "fewest_terms"]

EXHAUSTIVE_TERMS = 12  # up to this many candidate terms, every small subset is tried


def fewest_terms(fit: Callable[[list[int]], tuple[np.ndarray, float]], n_terms: int,
                 max_terms: int, tolerance: float) -> tuple[list[int], np.ndarray, float] | None:
    """The smallest set of terms (at most `max_terms`) whose fit is within `tolerance`, the
    best-fitting among sets of that size: every subset when there are few terms (one
    variable or two), else built up greedily, the term that helps most first."""
    if n_terms <= EXHAUSTIVE_TERMS:
        for size in range(1, min(max_terms, n_terms) + 1):
            fits = [(list(subset), *fit(list(subset)))
                    for subset in itertools.combinations(range(n_terms), size)]
            chosen, coef, err = min(fits, key=lambda t: t[2])
            if err <= tolerance:
                return chosen, coef, err
        return None
    active: list[int] = []
    coef, err = np.zeros(0), math.inf
    while len(active) < min(max_terms, n_terms) and not err <= tolerance:
        tried = [([*active, i], *fit([*active, i])) for i in range(n_terms) if i not in active]
        active, coef, err = min(tried, key=lambda t: t[2])
    return (active, coef, err) if err <= tolerance else None


def backward_eliminate(fit: Callable[[list[int]], tuple[np.ndarray, float]], size: int,
                       allowed: float) -> list[int]:
    """Of terms 0…size−1, drop one at a time the term whose loss hurts the fit least, while
    `fit(kept)`'s error stays within `allowed`; the indices kept."""
    kept = list(range(size))
    while len(kept) > 1:
        err, drop = min((fit([k for k in kept if k != drop])[1], drop) for drop in kept)
        if err > allowed:
            break
        kept.remove(drop)
    return kept
