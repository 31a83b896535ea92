"""Solving for f in y = prefactor · f(Π groups) on one reduction: the quick solvers on
f and on its transforms, and the expression search; each law found is recorded, in the
inputs, on the problem."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import sympy

from registry.core.expr import symbol
from registry.distillation.angles import angle_groups, from_cosines, with_cosines
from registry.distillation.candidates import Candidate, _sparse, complexity_of, evaluate, nrmse
from registry.distillation.numerators import numerator_laws
from registry.distillation.occupation import occupation_laws
from registry.distillation.problem import _Problem
from registry.distillation.quick import (
    QuickFit,
    laurent,
    offset_power_law,
    power_law,
    power_law_scaled,
)
from registry.distillation.quick import library as fit_library
from registry.distillation.quick import polynomial as fit_polynomial
from registry.distillation.quick import rational as fit_rational
from registry.distillation.refine import refine_constants
from registry.distillation.search import search_many
from registry.distillation.transforms import _back, _stretch, _transforms
from registry.distillation.trusted import trusted_transforms

SEARCH_SAMPLES = 200
LATE_SLACK = 3.0  # a floor's power law fitted in a transform's space, refitted in y's
# … and kept for that refit up to this nRMSE there at least: the transform's restated
# tolerance is an estimate, and the better the teacher the tighter it is (test_6's
# α² = 1 + 2π/(Z₁Z₂)² fits a network of nRMSE 3·10⁻³ to 1.5·10⁻² in α²'s space, past 3×
# its restated 3·10⁻³). y's own space judges what is recorded.
LATE_FLOOR = 0.05


def _quick(p: _Problem, prefactor: sympy.Expr, groups: Mapping[str, sympy.Expr],
                 values: Mapping[str, np.ndarray], target: np.ndarray, pre: np.ndarray,
                 y: np.ndarray) -> None:
    """The quick solvers for target = f(groups); record prefactor · f (in the inputs)."""
    names = list(groups)

    def record(f_expr: sympy.Expr, method: str) -> None:
        full = prefactor * f_expr.xreplace({symbol(n): groups[n] for n in names})
        p.found.append(Candidate(full, complexity_of(full), 0.0, method))

    if not names:
        record(sympy.Float(float(np.median(target))), "dimensional analysis")
        return
    tol = target_tolerance(p.tolerance, y, pre, target)
    # Where the target comes within the teacher's error of 0 (a Gaussian's tails), its
    # transforms are fitted on the points clear of it first: a short approximant that
    # stops the solvers below must not hide the law from them (`trusted.py`).
    trusted_transforms(values, target, tol, record, deadline=p.deadline, scale=pre)
    occupation_laws(values, target, tol, record, deadline=p.deadline, scale=pre)
    fit = power_law(values, target)
    if fit is not None:
        record(fit.expr, "power law")
        if fit.nrmse < tol:
            return
    fit = power_law_scaled(pre, values, y)
    if fit is not None:
        record(fit.expr, "power law (scaled)")
        if fit.nrmse < p.tolerance:
            return
    fit = fit_polynomial(values, target, degree=3 if len(names) <= 2 else 2)
    if fit is not None:
        record(fit.expr, "polynomial")
        if fit.nrmse < tol and _sparse(fit.expr):
            return
    fit = fit_rational(values, target, degree=2, tolerance=tol)
    if fit is not None:
        record(fit.expr, "rational")
        if _sparse(fit.expr):
            return
    fit = fit_library(values, target, tolerance=tol)
    if fit is not None:
        record(fit.expr, "library")
        if _sparse(fit.expr):
            return
    # The same solvers on transforms of the target: f² may be a polynomial, 1/f a
    # rational function, log f a sparse sum (a Gaussian). A fit is judged after the
    # inverse transform, against the target itself.
    sign = 1.0 if np.all(target > 0) else -1.0
    for transform in _transforms(target):
        if time.monotonic() > p.deadline:
            return
        with np.errstate(all="ignore"):
            t = transform.forward(target)
        if not np.all(np.isfinite(t)):
            continue
        # A power law of T(t), weighted by how far the teacher's error moves log T at
        # each point (log(1 + 1/f) of a Planck law is exact where f is large and swamped
        # where it is small): judged as a law for t.
        fit = power_law(values, t, weights=_log_weights(transform, target))
        law = None if fit is None else _back(transform, fit.expr, sign)
        if law is not None and nrmse(evaluate(law, values), target) < tol:
            record(law, f"power law of the {transform.name}")
            continue
        # The teacher's error, carried through the transform: how loose to fit there.
        loose = tol * _stretch(transform, target)
        for solver, label in ((lambda v, u: fit_polynomial(v, u, degree=2), "polynomial"),
                              (lambda v, u, tol=loose: _rational_both_ways(v, u, tol),
                               "rational"),
                              (lambda v, u, tol=loose: fit_library(v, u, tolerance=tol),
                               "library")):
            fit = solver(values, t)
            if fit is None or fit.nrmse > loose or not _sparse(fit.expr, 4):
                continue
            law = _back(transform, fit.expr, sign)
            if law is not None and nrmse(evaluate(law, values), target) < tol:
                record(law, f"{label} of the {transform.name}")
                break
    if time.monotonic() < p.deadline:
        _quick_late(p, record, groups, values, target, tol)


def _quick_late(p: _Problem, record: Any, groups: Mapping[str, sympy.Expr],
                values: Mapping[str, np.ndarray], target: np.ndarray, tol: float) -> None:
    """The solvers tried after the others found nothing short: a power law above a floor
    (α = √(1 + 2·π/Z²)), rational laws in the cosines of angle groups (`angles.py`) and a
    sparse Laurent polynomial, each on the target and its transforms, judged against the
    target."""
    sign = 1.0 if np.all(target > 0) else -1.0
    angles = angle_groups(groups, values)
    # Which dimensionless group is an angle the values cannot say (α from 2 to 4 is not):
    # each one alone, then all together.
    subsets = [[a] for a in angles] + ([angles] if len(angles) > 1 else [])
    plain = [(None, target, tol)]
    with np.errstate(all="ignore"):
        changed = [(t, t.forward(target), tol * _stretch(t, target)) for t in _transforms(target)]
    for transform, t, loose in plain + changed:
        if time.monotonic() > p.deadline or not np.all(np.isfinite(t)):
            continue
        # The floor's fit is refitted in the target's own space below, where a noisy
        # teacher's α² = 1.009 + 1.97·π misses by 1.4·10⁻² and 1 + 2·π by the teacher's
        # own 10⁻²: the transform's space is a first cut only.
        floor_bound = max(LATE_SLACK * loose, LATE_FLOOR)
        fits: list[tuple[QuickFit | None, str, list[str]]] = [
            (offset_power_law(values, t, tolerance=floor_bound), "power law above a floor", [])]
        fits += [(fit_rational(with_cosines(values, used), t, degree=2, tolerance=loose),
                  "rational in cosines", used) for used in subsets]
        fits.append((laurent(values, t, tolerance=loose), "Laurent polynomial", []))
        for fit, label, used in fits:
            floor = label.startswith("power law above")
            if fit is None or fit.nrmse > (floor_bound if floor else loose) or not _sparse(
                    fit.expr, 4):
                continue
            expr = from_cosines(fit.expr, used) if used else fit.expr
            law = expr if transform is None else _back(transform, expr, sign)
            if law is not None and floor and nrmse(evaluate(law, values), target) >= tol:
                law = refine_constants(law, values, target, deadline=p.deadline)
            if law is not None and nrmse(evaluate(law, values), target) < tol:
                record(law, label if transform is None else f"{label} of the {transform.name}")
            if used and time.monotonic() < p.deadline:
                # Its numerator, a polynomial stand-in, solved on its own (`numerators.py`)
                for part in numerator_laws(expr, values, t, loose, deadline=p.deadline):
                    law = part if transform is None else _back(transform, part, sign)
                    if law is not None and nrmse(evaluate(law, values), target) < tol:
                        record(law, f"{label}, numerator solved"
                               + ("" if transform is None else f", of the {transform.name}"))


def _log_weights(transform: Any, t: np.ndarray) -> np.ndarray | None:
    """1/(the error of log T(t)) per point, for an error of t of one size everywhere; None
    where it has no finite value."""
    h = 1e-6
    with np.errstate(all="ignore"):
        forward = transform.forward(t)
        slope = (transform.forward(t * (1 + h)) - transform.forward(t * (1 - h))) / (2 * h * t)
        weights = np.abs(forward / slope)
    if not np.all(np.isfinite(weights)) or not np.any(weights > 0):
        return None
    return np.asarray(weights / weights.max())


def target_tolerance(tolerance: float, y: np.ndarray, pre: np.ndarray,
                     target: np.ndarray) -> float:
    """The tolerance (relative to y's spread) restated for target = y/prefactor: dividing
    by the prefactor changes both the teacher's error and the spread."""
    with np.errstate(all="ignore"):
        ratio = float(np.std(y) * np.sqrt(np.mean(1 / np.square(pre))) / np.std(target))
    return tolerance * ratio if np.isfinite(ratio) and ratio > 0 else tolerance


def _rational_both_ways(values: Mapping[str, np.ndarray], t: np.ndarray,
                        tolerance: float) -> QuickFit | None:
    """A rational fit over the groups and, for one or two groups, their inverses too:
    `(1 − a)²/(1 − b⁻²)` is short in b⁻¹, and a Π group's orientation is arbitrary."""
    if len(values) > 2 or any(np.any(v == 0) for v in values.values()):
        return fit_rational(values, t, degree=2, tolerance=tolerance)
    both = dict(values) | {f"inv_{n}": 1 / v for n, v in values.items()}
    fit = fit_rational(both, t, degree=2, tolerance=tolerance)
    if fit is None:
        return None
    expr = fit.expr.xreplace({symbol(f"inv_{n}"): 1 / symbol(n) for n in values})
    return QuickFit(expr, fit.nrmse, fit.complexity)


def _search_reduced(p: _Problem, prefactor: sympy.Expr, groups: Mapping[str, sympy.Expr],
                    values: Mapping[str, np.ndarray], target: np.ndarray, pre: np.ndarray,
                    y: np.ndarray, *, budget: float) -> None:
    """The expression search for f in y = prefactor · f(groups): y itself (scaled by the
    prefactor, robust to a teacher's absolute error) and transforms of y/prefactor."""
    names = list(groups)
    if not names:
        return
    subset = slice(0, SEARCH_SAMPLES)
    transforms = []
    targets: list[tuple[np.ndarray, np.ndarray | None]] = [(y[subset], pre[subset])]
    with np.errstate(all="ignore"):
        for transform in (t for t in _transforms(target) if t.searched):
            t = transform.forward(target[subset])
            if np.all(np.isfinite(t)):
                transforms.append(transform)
                targets.append((t, None))
    found = search_many({n: v[subset] for n, v in values.items()}, targets,
                        deadline=time.monotonic() + max(0.5, budget),
                        tolerance=p.tolerance * 0.1)
    sign = 1.0 if np.all(target > 0) else -1.0
    inputs = {symbol(n): groups[n] for n in names}
    for i, hits in enumerate(found):
        # All hits within reach of the best: with a noisy teacher, a later hit may only
        # fit the noise better than the law found before it.
        floor = min((h.nrmse for h in hits), default=math.inf)
        keep = [h for h in hits if h.nrmse <= max(10 * floor, p.tolerance)][-12:] or hits[-2:]
        for hit in keep:
            f = hit.expr if i == 0 else _back(transforms[i - 1], hit.expr, sign)
            if f is None:
                continue
            full = prefactor * f.xreplace(inputs)
            label = "search" if i == 0 else f"search on the {transforms[i - 1].name}"
            p.found.append(Candidate(full, complexity_of(full), 0.0, label))
