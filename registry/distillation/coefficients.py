"""Laws linear in a few functions of one group: f(π) = Σₖ cₖ(π_rest)·φₖ(π_j).

Many laws are sums whose terms have different prefactors, which the search finds only
the leading term of: an orbit `1 + √(1 + 2π)·cos Δθ`, Jackson's image charge
`ρ − ρ/(4π·u·(1 − ρ²)²)`, Klein–Nishina `r³ + r − r²·sin²β`, a dipole in a field
`cos θ·(ρ³·(α − 1)/(α + 2) − 1)`. Each is, in one group π_j, a combination of a few
basis functions φₖ (powers of π_j, or for an angle its cosine, sine and their
products) whose coefficients are functions of the other groups only.

Where an input appears in π_j and in no other group, the teacher is asked along it: at
each of a few hundred points the coefficients are a least-squares fit over values of
that input (`queried_terms`, exact up to the teacher's error). Otherwise (and one level
down) the samples are used: each coefficient a Chebyshev series over the other groups,
all fitted together (`linear_terms`). Basis functions are dropped while the fit holds,
and the split is used when at most `MAX_TERMS` remain. Each remaining coefficient is
then a problem with one group fewer: a constant, or a law found by the quick solvers,
a split by group (`group_separation.py`), this decomposition again (one level deeper),
or a short search. The terms are summed, every constant refitted against the target
(`refine.py`), and the law is a candidate like any other, scored and snapped against
the teacher. It is tried on the target and on its inverse (`(1 + β·cos θ)/√(1 − β²)`
is linear in cos θ where the Doppler shift itself is not).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import sympy

from registry.core.expr import symbol
from registry.distillation.angles import angle_groups
from registry.distillation.candidates import Candidate, _sparse, complexity_of, evaluate, nrmse
from registry.distillation.problem import _Problem
from registry.distillation.refine import refine_constants
from registry.distillation.subsets import backward_eliminate

__all__ = ["decompose", "linear_terms", "queried_terms"]

MAX_TERMS = 3  # basis functions kept: more is an expansion, not a law
MAX_DEPTH = 1  # a coefficient may be decomposed again, this many levels down
REST_DEGREE = {1: 10, 2: 6, 3: 4}  # Chebyshev degree of each coefficient, by groups left
HOLD = 1.5  # a basis function is dropped while the fit stays within this of the full one
PART_SEARCH_S = 1.5
BASE_POINTS = 300  # where the teacher is asked for the coefficients …
STEPS = 12  # … at this many values of the free input each

Basis = list[tuple[str, Callable[[sympy.Expr], sympy.Expr], Callable[[np.ndarray], np.ndarray]]]


def _powers(v: np.ndarray) -> Basis:
    basis: Basis = [("1", lambda x: sympy.Integer(1), np.ones_like),
                    ("x", lambda x: x, lambda v: v), ("x²", lambda x: x**2, np.square),
                    ("x³", lambda x: x**3, lambda v: v**3)]
    if np.all(v != 0):
        basis += [("1/x", lambda x: 1 / x, np.reciprocal), ("1/x²", lambda x: x**-2,
                                                             lambda v: 1 / np.square(v))]
    return basis


ANGLE: Basis = [("1", lambda x: sympy.Integer(1), np.ones_like),
                ("cos", sympy.cos, np.cos), ("sin", sympy.sin, np.sin),
                ("cos²", lambda x: sympy.cos(x) ** 2, lambda v: np.cos(v) ** 2),
                ("sin·cos", lambda x: sympy.sin(x) * sympy.cos(x),
                 lambda v: np.sin(v) * np.cos(v))]


@dataclass(frozen=True)
class _Split:
    kept: list[int]  # indices into the basis
    rest: dict[str, np.ndarray]  # the other groups, where the coefficients are sampled
    coefficients: dict[int, np.ndarray]  # each kept φₖ's coefficient there
    error: float  # the split's nRMSE against the target it was fitted to


def _prune(fit: Callable[[list[int]], tuple[np.ndarray, float]],
           size: int) -> tuple[list[int], float] | None:
    """Drop basis functions while the fit stays within `HOLD` of the full one: the kept
    indices and the fit's error, or None when more than `MAX_TERMS` (or only the
    constant) remain."""
    _, full = fit(list(range(size)))
    kept = backward_eliminate(fit, size, max(HOLD * full, 1e-13))
    if len(kept) > MAX_TERMS or kept == [0]:
        return None
    return kept, fit(kept)[1]


def linear_terms(values: Mapping[str, np.ndarray], target: np.ndarray, group: str,
                 basis: Basis) -> _Split | None:
    """target ≈ Σₖ cₖ(other groups)·φₖ(group), from the samples alone: each cₖ a Chebyshev
    series over the other groups, all fitted together; as few φₖ of `basis` as keep the
    fit. None when more than `MAX_TERMS` are needed or the target does not depend on
    `group` that way."""
    from registry.distillation.group_separation import _coordinates
    from registry.distillation.resolution import chebyshev_design

    rest = {n: v for n, v in values.items() if n != group}
    degree = REST_DEGREE.get(len(rest))
    if degree is None:
        return None
    coordinates = _coordinates(rest)
    spans = {n: (float(v.min()), float(v.max())) for n, v in coordinates.items()}
    series = chebyshev_design(coordinates, spans, degree)
    features = [phi(values[group]) for _, _, phi in basis]
    if len(target) < 3 * series.shape[1] * len(basis):
        return None

    def fit(kept: list[int]) -> tuple[np.ndarray, float]:
        design = np.concatenate([series * features[k][:, None] for k in kept], axis=1)
        coef, *_ = np.linalg.lstsq(design, target, rcond=None)
        return coef, nrmse(design @ coef, target)

    pruned = _prune(fit, len(basis))
    if pruned is None:
        return None
    kept, err = pruned
    coef, _ = fit(kept)
    width = series.shape[1]
    return _Split(kept, dict(rest), {k: series @ coef[i * width:(i + 1) * width]
                                     for i, k in enumerate(kept)}, err)


def queried_terms(p: _Problem, prefactor: sympy.Expr, groups: Mapping[str, sympy.Expr],
                  group: str, basis: Basis, inverse: bool) -> _Split | None:
    """The same split from the teacher, exactly: an input that appears in `group` and in
    no other group moves that group alone (the prefactor is divided out), so at each of
    `BASE_POINTS` points the coefficients are a least-squares fit over `STEPS` values of
    it. None when no input is free that way (or the basis does not fit)."""
    others = set().union(*(e.free_symbols for n, e in groups.items() if n != group))
    free = sorted((s.name for s in groups[group].free_symbols
                   if s not in others and s.name in p.ranges), key=str)
    if not free or p.where.kind != "box":
        return None
    name = free[0]
    base = p.where.sample(BASE_POINTS, p.rng)
    lo, hi = p.ranges[name]
    steps = np.linspace(lo, hi, STEPS)
    batch = {n: np.repeat(v, STEPS) for n, v in base.items()}
    batch[name] = np.tile(steps, BASE_POINTS)
    with np.errstate(all="ignore"):
        y = p.teacher(batch)
        pre = evaluate(prefactor, batch) if prefactor != 1 else np.ones_like(y)
        t = y / pre
        t = 1 / t if inverse else t
        g = evaluate(groups[group], batch)
        features = np.stack([phi(g) for _, _, phi in basis], axis=1)
    if t.shape != (BASE_POINTS * STEPS,) or not (np.all(np.isfinite(t))
                                                 and np.all(np.isfinite(features))):
        return None
    t_points = t.reshape(BASE_POINTS, STEPS)
    f_points = features.reshape(BASE_POINTS, STEPS, len(basis))

    def fit(kept: list[int]) -> tuple[np.ndarray, float]:
        a = f_points[:, :, kept]
        coef = np.einsum("mks,ms->mk", np.linalg.pinv(a), t_points)
        return coef, nrmse(np.einsum("msk,mk->ms", a, coef).ravel(), t)

    pruned = _prune(fit, len(basis))
    if pruned is None:
        return None
    kept, err = pruned
    coef, _ = fit(kept)
    with np.errstate(all="ignore"):
        rest = {n: evaluate(e, base) for n, e in groups.items() if n != group}
    if not all(np.all(np.isfinite(v)) for v in rest.values()):
        return None
    return _Split(kept, rest, {k: coef[:, i] for i, k in enumerate(kept)}, err)


def decompose(p: _Problem, prefactor: sympy.Expr, groups: Mapping[str, sympy.Expr],
              values: Mapping[str, np.ndarray], target: np.ndarray, tol: float, *,
              until: float, depth: int = 0) -> int:
    """Record prefactor · Σₖ cₖ·φₖ on `p` for each group (and basis) the target (or its
    inverse) is linear in; the number of laws recorded. At the top level the
    coefficients come from the teacher where an input moves the group alone
    (`queried_terms`), else (and one level down) from the samples (`linear_terms`)."""
    names = list(groups)
    if len(names) < 2:
        return 0
    angles = angle_groups(groups, values)
    targets: list[tuple[str, np.ndarray]] = [("", target)]
    if np.all(target != 0):
        targets.append(("inverse", 1 / target))
    recorded = 0
    for kind, t in targets:
        for group in names:
            for basis in ([ANGLE] if group in angles else []) + [_powers(values[group])]:
                if time.monotonic() > until:
                    return recorded
                split = (queried_terms(p, prefactor, groups, group, basis, bool(kind))
                         if depth == 0 else None) or linear_terms(values, t, group, basis)
                if split is None:
                    continue
                law = _solve_terms(p, values, t, group, basis, split, tol, until, depth)
                if law is None:
                    continue
                if kind == "inverse":
                    law = 1 / law
                law = refine_constants(law, values, target, deadline=until)
                full = prefactor * law.xreplace({symbol(n): groups[n] for n in names})
                p.found.append(Candidate(full, complexity_of(full), 0.0,
                                         "terms in one group" + (" of the inverse" if kind
                                                                 else "")))
                recorded += 1
    return recorded


def _solve_terms(p: _Problem, values: Mapping[str, np.ndarray], target: np.ndarray,
                 group: str, basis: Basis, split: _Split, tol: float,
                 until: float, depth: int) -> sympy.Expr | None:
    """Σₖ wₖ·(the law found for cₖ)·φₖ(group), the weights fitted to the target."""
    rest = {n: v for n, v in values.items() if n != group}
    x = symbol(group)
    terms, columns = [], []
    for k in split.kept:
        c = split.coefficients[k]
        phi = basis[k][2](values[group])
        # How loosely to solve cₖ: as tightly as the teacher's tolerance, or as the noise
        # the split left in cₖ (its residual over the target, δ·|φₖ|, restated for cₖ).
        spread = float(np.sqrt(np.mean(phi * phi))) * float(np.std(c))
        noise = 2 * split.error * float(np.std(target))
        if spread <= max(tol * float(np.std(target)), noise):
            law: sympy.Expr | None = sympy.Integer(1)  # a constant: the weight is all of it
        else:
            law = _coefficient_law(p, split.rest, c, min(max(tol, noise / spread), 0.1),
                                   until, depth)
        if law is None:
            return None
        terms.append(law * basis[k][1](x))
        columns.append(evaluate(law, rest) * phi)
    design = np.stack(columns, axis=1)
    if not np.all(np.isfinite(design)):
        return None
    weights, *_ = np.linalg.lstsq(design, target, rcond=None)
    if not np.all(np.isfinite(weights)):
        return None
    return sympy.Add(*(sympy.Float(float(w)) * term for w, term in zip(weights, terms,
                                                                        strict=True)))


def _coefficient_law(p: _Problem, rest: Mapping[str, np.ndarray], c: np.ndarray,
                     loose: float, until: float, depth: int) -> sympy.Expr | None:
    """The simplest law for one coefficient over the other groups (up to a scale)."""
    from registry.distillation.group_separation import _ranked, separate_groups
    from registry.distillation.reduction_fits import _quick, _quick_late, _search_reduced

    sub = _Problem(p.teacher, {n: (float(v.min()), float(v.max())) for n, v in rest.items()},
                   None, None, loose, until, p.rng)
    identity = {n: symbol(n) for n in rest}
    ones = np.ones_like(c)
    _quick(sub, sympy.Integer(1), identity, rest, c, ones, c)
    # The quick solvers stop at the first short fit; the late ones (a Laurent polynomial
    # of 1/c: (ρ² − 1)²/ρ) may still find the law itself.
    _quick_late(sub, lambda e, m: sub.found.append(Candidate(e, complexity_of(e), 0.0, m)),
                identity, rest, c, loose)
    if not _found_within(sub, rest, c, loose):
        if len(rest) >= 2:
            separate_groups(sub, sympy.Integer(1), identity, rest, c, loose, until=until)
        if depth < MAX_DEPTH and not _found_within(sub, rest, c, loose):
            decompose(sub, sympy.Integer(1), identity, rest, c, loose, until=until,
                      depth=depth + 1)
        if not _found_within(sub, rest, c, loose):
            _search_reduced(sub, sympy.Integer(1), identity, rest, c, ones, c,
                            budget=min(PART_SEARCH_S, (until - time.monotonic()) / 2))
    ranked = _ranked(sub.found, rest, c, "·")
    return ranked[0] if ranked else None


def _found_within(sub: _Problem, rest: Mapping[str, np.ndarray], c: np.ndarray,
                  loose: float) -> bool:
    """A candidate with few constants already fits the coefficient within `loose`."""
    return any(_sparse(cand.expr, 4) and nrmse(evaluate(cand.expr, rest), c) <= loose
               for cand in sub.found)
