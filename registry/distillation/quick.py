"""Quick solvers: power laws (log-linear fit, exponents snapped to small rationals),
sparse polynomials (least squares over monomials), rational functions (y·Q = P, pruned
to a few terms) and sparse library sums (products of two unary features, chosen by
orthogonal least squares with a beam).

Example:
    >>> power_law({"L": L, "g": g}, T).expr     # T = 2π·sqrt(L/g)
    6.28318530717959*L**(1/2)*g**(-1/2)
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import sympy

from registry.core.expr import symbol
from registry.distillation.subsets import backward_eliminate, fewest_terms

__all__ = ["QuickFit", "backward_eliminate", "laurent", "library", "offset_power_law",
           "polynomial", "power_law", "rational", "snap_fraction"]


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


def power_law(variables: Mapping[str, np.ndarray], y: np.ndarray,
              weights: np.ndarray | None = None) -> QuickFit | None:
    """y = c·Π x_i^a_i with rational a_i, fitted in log space (needs positive x, one-signed y);
    `weights`: how much each point counts (1/its error in log y), all alike by default."""
    names = list(variables)
    if not names or np.any(y == 0) or not (np.all(y > 0) or np.all(y < 0)):
        return None
    if any(np.any(variables[n] <= 0) for n in names):
        return None
    sign = 1.0 if y[0] > 0 else -1.0
    logs = np.stack([np.log(variables[n]) for n in names] + [np.ones_like(y)], axis=1)
    w = np.ones_like(y) if weights is None else weights
    coef, *_ = np.linalg.lstsq(logs * w[:, None], np.log(sign * y) * w, rcond=None)
    exponents = [snap_fraction(float(a)) for a in coef[:-1]]
    if any(e is None for e in exponents):
        return None
    monomial = np.ones_like(y)
    for n, e in zip(names, exponents, strict=True):
        monomial = monomial * np.power(variables[n], float(e))  # type: ignore[arg-type]
    c = float(np.sum(w * w * monomial * y) / np.sum(w * w * monomial * monomial))
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
        weight = np.ones_like(y)
        with np.errstate(all="ignore"):
            # y·Q = P weighs each point by Q: with a noisy y that biases the fit. One
            # Sanathanan–Koerner step refits with weights 1/Q, as if minimising P/Q − y.
            for _ in range(2):
                coef, *_ = np.linalg.lstsq(design * weight[:, None], y * weight, rcond=None)
                numerator = sum((c * column(terms[i][1])
                                 for c, i in zip(coef, active, strict=True)
                                 if not terms[i][0]), np.zeros_like(y))
                denominator = 1 + sum((c * column(terms[i][1])
                                       for c, i in zip(coef, active, strict=True)
                                       if terms[i][0]), np.zeros_like(y))
                if not np.all(np.isfinite(denominator)) or np.any(denominator == 0):
                    break
                weight = 1 / np.abs(denominator)
            predicted = numerator / denominator
        if not np.all(np.isfinite(predicted)) or np.any(np.abs(denominator) < 1e-9):
            return coef, float("inf")
        return coef, _nrmse(predicted, y)

    active = list(range(len(terms)))
    coef, err = fit(active)
    if not np.isfinite(err) or err > tolerance:
        active = []  # straight to the fewest terms
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
    if not active or len(active) > max_terms:
        # Every term at once can fit a noisy y worse than the law's few do (y·Q = P
        # weighs the noise by Q; cos Δ near 1 is almost a constant column), and pruning
        # from all of them can stall above the law's count: the fewest terms that fit.
        found = fewest_terms(lambda a: fit(a) if any(terms[i][0] for i in a)
                             else (np.zeros(0), math.inf), len(terms), max_terms, tolerance)
        if found is None:
            return None
        active, coef, err = found
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


BEAM = 12  # partial term sets kept, and terms tried on each, per step of the library fit


def _library_features(name: str, v: np.ndarray) -> list[tuple[sympy.Expr, np.ndarray]]:
    """Unary features of one variable for the sparse library fit."""
    x = symbol(name)
    out: list[tuple[sympy.Expr, np.ndarray]] = [(x, v), (x**2, v * v)]
    if np.all(v != 0):
        out += [(1 / x, 1 / v), (x**-2, 1 / (v * v))]
    if np.all(v > 0):
        out += [(sympy.sqrt(x), np.sqrt(v)), (sympy.log(x), np.log(v))]
    if np.abs(v).max() < 20:
        out += [(sympy.exp(x), np.exp(v)), (sympy.exp(-x), np.exp(-v))]
    out += [(sympy.sin(x), np.sin(v)), (sympy.cos(x), np.cos(v)),
            (sympy.sin(x) ** 2, np.sin(v) ** 2), (sympy.cos(x) ** 2, np.cos(v) ** 2)]
    return out


def library(variables: Mapping[str, np.ndarray], y: np.ndarray, *, tolerance: float,
            max_terms: int = 4) -> QuickFit | None:
    """A sparse sum of library terms (SINDy-style): y ≈ c0 + Σ c_i·φ_i, each φ a unary
    feature of one variable (x, x², 1/x, √x, log x, exp(±x), sin, cos, sin², cos²) or
    a product of two features of different variables.

    Terms are chosen by forward selection (the term that most lowers the residual after
    a refit), at most `max_terms`; a fit that misses `tolerance` with that many is
    declined: `1 + r + 2·√r·cos δ` has three terms, a noise fit has dozens.
    """
    names = list(variables)
    if not names or len(names) > 4:
        return None
    unary = {n: _library_features(n, variables[n]) for n in names}
    columns: list[tuple[sympy.Expr, np.ndarray]] = [f for n in names for f in unary[n]]
    for a, b in itertools.combinations(names, 2):
        columns += [(ea * eb, va * vb) for ea, va in unary[a] for eb, vb in unary[b]]
    exprs = [e for e, _ in columns]
    with np.errstate(all="ignore"):
        design = np.stack([v for _, v in columns], axis=1)
    ok = np.all(np.isfinite(design), axis=0) & (np.abs(design).max(axis=0) < 1e12)
    design, exprs = design[:, ok], [e for e, k in zip(exprs, ok, strict=True) if k]
    norms = np.linalg.norm(design - design.mean(axis=0), axis=0)
    usable = norms > 1e-12
    design, exprs = design[:, usable], [e for e, k in zip(exprs, usable, strict=True) if k]
    if design.shape[1] == 0:
        return None
    centred = (design - design.mean(axis=0)) / norms[usable]
    yc = y - y.mean()
    # Orthogonal least squares with a small beam: each step adds, to each kept set, the
    # term that most lowers its residual (exactly, after projecting out the set's terms).
    beam: list[list[int]] = [[]]
    best: tuple[float, np.ndarray, list[int]] | None = None
    for _ in range(max_terms):
        grown: dict[tuple[int, ...], float] = {}
        for chosen in beam:
            if chosen:
                q, _ = np.linalg.qr(centred[:, chosen])
                projected = centred - q @ (q.T @ centred)
                residual = yc - q @ (q.T @ yc)
            else:
                projected, residual = centred, yc
            power = np.einsum("ij,ij->j", projected, projected)
            with np.errstate(all="ignore"):
                gain = np.where(power > 1e-10, (projected.T @ residual) ** 2 / power, -1.0)
            gain[chosen] = -1.0
            rest = float(residual @ residual)
            for j in np.argsort(gain)[-BEAM:]:
                key = tuple(sorted([*chosen, int(j)]))
                grown[key] = min(grown.get(key, math.inf), rest - float(gain[j]))
        beam = [list(k) for k, _ in sorted(grown.items(), key=lambda kv: kv[1])[:BEAM]]
        for chosen in beam:
            design_active = np.column_stack([design[:, chosen], np.ones_like(y)])
            full, *_ = np.linalg.lstsq(design_active, y, rcond=None)
            err = _nrmse(design_active @ full, y)
            if best is None or err < best[0]:
                best = (err, full, chosen)
        if best is not None and best[0] <= tolerance:
            break
    if best is None or best[0] > tolerance:
        return None
    err, coef, chosen = best
    expr = sympy.Float(float(coef[-1])) + sympy.Add(
        *(sympy.Float(float(c)) * exprs[j] for c, j in zip(coef[:-1], chosen, strict=True)))
    return QuickFit(expr, err, 1 + sum(3 + 2 * len(exprs[j].args) for j in chosen))


def offset_power_law(variables: Mapping[str, np.ndarray], y: np.ndarray, *,
                     tolerance: float) -> QuickFit | None:
    """y = a + b·Π x_i^e_i with rational e_i: a power law above a floor (α² = 1 + 2·π/Z²,
    the eccentricity of an orbit). The floor `a` is chosen where log|y − a| is most nearly
    linear in the log x_i (a scan below min y and above max y, then a bounded refinement);
    the exponents are snapped, a and b refitted by least squares. Declined beyond
    `tolerance`."""
    from scipy.optimize import minimize_scalar

    names = list(variables)
    if not names or len(names) > 4 or any(np.any(variables[n] <= 0) for n in names):
        return None
    spread = float(np.ptp(y)) or 1.0
    logs = np.stack([np.log(variables[n]) for n in names] + [np.ones_like(y)], axis=1)

    def fitted(a: float) -> tuple[np.ndarray, float]:
        # Each point weighted by |y − a|: an error of y of one size moves log|y − a| by
        # that much less far from the floor (a teacher's error swamps the points near it).
        with np.errstate(all="ignore"):
            z, w = np.log(np.abs(y - a)), np.abs(y - a)
        if not np.all(np.isfinite(z)) or not np.any(w > 0):
            return np.zeros(logs.shape[1]), math.inf
        w = w / w.max()
        coef, *_ = np.linalg.lstsq(logs * w[:, None], z * w, rcond=None)
        mean = float(np.sum(w * w * z) / np.sum(w * w))
        # Relative to log|y − a|'s own spread: far from y every floor looks flat.
        spread_z = float(np.sqrt(np.sum((w * (z - mean)) ** 2))) or 1.0
        return coef, float(np.sqrt(np.sum((w * (logs @ coef - z)) ** 2))) / spread_z

    best: QuickFit | None = None
    for side in (-1.0, 1.0):
        edge = float(y.min()) if side < 0 else float(y.max())
        grid = np.logspace(-8, 2, 51)
        errors = [fitted(edge + side * s * spread)[1] for s in grid]
        k = int(np.argmin(errors))
        if not math.isfinite(errors[k]):
            continue
        lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
        found = minimize_scalar(lambda s, e=edge, d=side: fitted(e + d * s * spread)[1],
                                bounds=(float(lo), float(hi)), method="bounded",
                                options={"xatol": 1e-10 * float(hi)})
        coef, _ = fitted(edge + side * float(found.x) * spread)
        exponents = [snap_fraction(float(e), tolerance=0.06) for e in coef[:-1]]
        if any(e is None for e in exponents) or not any(exponents):
            continue
        monomial = np.prod([np.power(variables[n], float(e))  # type: ignore[arg-type]
                            for n, e in zip(names, exponents, strict=True)], axis=0)
        design = np.stack([np.ones_like(y), monomial], axis=1)
        (c0, c1), *_ = np.linalg.lstsq(design, y, rcond=None)
        err = _nrmse(design @ np.array([c0, c1]), y)
        if err > tolerance or (best is not None and err >= best.nrmse):
            continue
        expr = sympy.Float(float(c0)) + sympy.Float(float(c1)) * sympy.Mul(
            *(symbol(n) ** sympy.Rational(e.numerator, e.denominator)
              for n, e in zip(names, exponents, strict=True) if e))
        best = QuickFit(expr, err, 4 + sum(2 for e in exponents if e))
    return best


def laurent(variables: Mapping[str, np.ndarray], y: np.ndarray, *, tolerance: float,
            max_terms: int = 3, span: int = 3) -> QuickFit | None:
    """A sparse Laurent polynomial in one variable, Σ cₖ·xᵏ for k from −`span` to `span`:
    `(x² − 1)²/x = x³ − 2x + 1/x`. The terms are pruned (the one whose loss hurts least
    first) while the fit stays within `tolerance`; declined with more than `max_terms`."""
    if len(variables) != 1:
        return None
    (name, v), = variables.items()
    if np.any(v == 0):
        return None
    powers = list(range(-span, span + 1))
    with np.errstate(all="ignore"):
        design = np.stack([v ** float(k) for k in powers], axis=1)
    if not np.all(np.isfinite(design)):
        return None

    def fit(active: list[int]) -> tuple[np.ndarray, float]:
        coef, *_ = np.linalg.lstsq(design[:, active], y, rcond=None)
        return coef, _nrmse(design[:, active] @ coef, y)

    if fit(list(range(len(powers))))[1] > tolerance:
        return None
    active = backward_eliminate(fit, len(powers), tolerance)
    if len(active) > max_terms:
        return None
    coef, err = fit(active)
    x = symbol(name)
    expr = sympy.Add(*(sympy.Float(float(c)) * x ** powers[a]
                       for c, a in zip(coef, active, strict=True)))
    return QuickFit(expr, err, 3 * len(active))
