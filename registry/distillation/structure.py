"""Structure tests that query the teacher: irrelevant inputs, translational symmetry
(f depends on x_j − x_i only), and additive or multiplicative separability.

Each test draws fresh points from the input ranges, asks the teacher, and
compares with a tolerance relative to the output's spread (set from the
teacher's own noise when distilling a network).

On recorded points (a part of a network, trusted only where its data went) the
`*_nearby` variants move inputs by a small step (a fraction of each input's
recorded spread) around recorded base points, never to the far side of the box,
and scale the change up to a full-spread move before comparing: a finite
difference, conservative for a noisy teacher (noise does not shrink with the
step, so it reads as dependence). A teacher that is not finite there fails the
test (the input is kept, the pair not replaced). Separability has no nearby
variant: see `domain.py`.

Example:
    >>> separable(f, ranges, ["x", "y", "z"], kind="mul")
    (['x', 'y'], ['z'])          # f = g(x, y) · h(z)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence

import numpy as np

from registry.distillation.teacher import Teacher

__all__ = ["Teacher", "irrelevant_inputs", "irrelevant_nearby", "sample", "separable",
           "translation_pairs", "translation_pairs_nearby"]


def sample(ranges: Mapping[str, tuple[float, float]], n: int,
           rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {name: rng.uniform(low, high, n) for name, (low, high) in ranges.items()}


def _relative_change(a: np.ndarray, b: np.ndarray, scale: float) -> float:
    """The root-mean-square change relative to `scale`. Not the maximum: a network's
    error has tails, and one point at three times its RMS error must not break a
    symmetry the network otherwise shows."""
    with np.errstate(all="ignore"):
        change = float(np.sqrt(np.mean(np.square(a - b)))) / scale
    return change if np.isfinite(change) else math.inf


def irrelevant_inputs(f: Teacher, ranges: Mapping[str, tuple[float, float]], *,
                      tolerance: float, rng: np.random.Generator, n: int = 256) -> list[str]:
    """Inputs whose resampling never changes the output (beyond `tolerance` × spread)."""
    base = sample(ranges, n, rng)
    y = f(base)
    scale = float(np.std(y)) or float(np.abs(y).mean()) or 1.0
    unused = []
    for name, (low, high) in ranges.items():
        moved = dict(base) | {name: rng.uniform(low, high, n)}
        if _relative_change(f(moved), y, scale) <= tolerance:
            unused.append(name)
    return unused


def _steps(base: Mapping[str, np.ndarray], name: str, size: float,
           rng: np.random.Generator) -> np.ndarray:
    """`base[name]` moved by ±`size`, the sign drawn per point."""
    return base[name] + size * rng.choice((-1.0, 1.0), len(base[name]))


def irrelevant_nearby(f: Teacher, base: Mapping[str, np.ndarray], spread: Mapping[str, float],
                      *, tolerance: float, step: float,
                      rng: np.random.Generator) -> list[str]:
    """Inputs whose move by ±`step` × spread around the recorded `base` points never changes
    the output (the change ÷ `step` within `tolerance` × the output's spread)."""
    y = f(base)
    scale = float(np.std(y)) or float(np.abs(y).mean()) or 1.0
    unused = []
    for name in base:
        moved = dict(base) | {name: _steps(base, name, step * spread[name], rng)}
        if _relative_change(f(moved), y, scale) / step <= tolerance:
            unused.append(name)
    return unused


def translation_pairs_nearby(f: Teacher, base: Mapping[str, np.ndarray],
                             spread: Mapping[str, float], units: Mapping[str, str], *,
                             tolerance: float, step: float,
                             rng: np.random.Generator) -> list[tuple[str, str]]:
    """`translation_pairs` around the recorded `base` points: both inputs shifted together
    by ±`step` × the smaller spread, the change ÷ `step` within `tolerance`. Only the
    inputs in `units` are paired (`base` holds every input the teacher takes)."""
    y = f(base)
    scale = float(np.std(y)) or 1.0
    pairs, used = [], set()
    for a, b in itertools.combinations(units, 2):
        if a in used or b in used or units[a] != units[b]:
            continue
        shift = step * min(spread[a], spread[b]) * rng.choice((-1.0, 1.0), len(base[a]))
        moved = dict(base) | {a: base[a] + shift, b: base[b] + shift}
        if _relative_change(f(moved), y, scale) / step <= tolerance:
            pairs.append((a, b))
            used |= {a, b}
    return pairs


def translation_pairs(f: Teacher, ranges: Mapping[str, tuple[float, float]],
                      units: Mapping[str, str], *, tolerance: float,
                      rng: np.random.Generator, n: int = 256) -> list[tuple[str, str]]:
    """Pairs (a, b) of same-unit inputs with f unchanged when both shift together. Only
    the inputs in `units` are paired (`ranges` holds every input the teacher takes).

    Both the points and the shifted points lie inside the ranges: a network asked past
    the edge of its training data answers with an error of its own, which hid
    θ₁ − θ₂ over [4, 5]² (a shift of a quarter of the range) from the test."""
    base = sample(ranges, n, rng)
    scale = float(np.std(f(base))) or 1.0
    pairs, used = [], set()
    for a, b in itertools.combinations([name for name in ranges if name in units], 2):
        if a in used or b in used or units[a] != units[b]:
            continue
        width = min(ranges[a][1] - ranges[a][0], ranges[b][1] - ranges[b][0])
        shift = 0.25 * width
        start = dict(base) | {v: rng.uniform(ranges[v][0], ranges[v][1] - shift, n)
                              for v in (a, b)}
        moved = dict(start) | {a: start[a] + shift, b: start[b] + shift}
        if _relative_change(f(moved), f(start), scale) <= tolerance:
            pairs.append((a, b))
            used |= {a, b}
    return pairs


def separable(f: Teacher, ranges: Mapping[str, tuple[float, float]], names: Sequence[str], *,
              kind: str, tolerance: float, rng: np.random.Generator,
              n: int = 256) -> tuple[list[str], list[str]] | None:
    """A split (A, B) with f = g(A) + h(B) (`kind="add"`) or g(A)·h(B) (`"mul"`), smallest A."""
    if len(names) < 2:
        return None
    p, q = sample(ranges, n, rng), sample(ranges, n, rng)
    for size in range(1, len(names) // 2 + 1):
        for group in itertools.combinations(names, size):
            a = list(group)
            mixed1 = {k: (p[k] if k in a else q[k]) for k in ranges}
            mixed2 = {k: (q[k] if k in a else p[k]) for k in ranges}
            fp, fq, f1, f2 = f(p), f(q), f(mixed1), f(mixed2)
            if kind == "add":
                lhs, rhs = fp + fq, f1 + f2
            else:
                lhs, rhs = fp * fq, f1 * f2
            scale = float(np.std(lhs)) or float(np.abs(lhs).mean()) or 1.0
            if _relative_change(lhs, rhs, scale) <= tolerance:
                return a, [k for k in names if k not in a]
    return None
