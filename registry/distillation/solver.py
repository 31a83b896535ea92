"""The distiller: from a black-box teacher to an equation, AI-Feynman style.

For each output: sample the teacher over the input ranges; drop irrelevant
inputs; replace translation-symmetric pairs by their difference; reduce by
dimensional analysis (y = monomial · f(Π)); then find f with quick solvers
(power law, sparse polynomial, rational function, sparse library sum; each on f
and on f², 1/f, √f, log f, 1/f²), separability (f = g·h or g + h, each part
solved on its own), and an expression search scored against f and the same
transforms, within the time budget.
Candidates are rescored on fresh points, constants snapped to simple values
(p/q, π, √2, …), and kept on a Pareto front of complexity against error.

With a recorded domain (`domain.py`) every point comes from the recorded rows
(rescoring from the rows held out of fitting), the irrelevant-input and
translation tests move inputs only a small step around recorded points, and
separability is skipped: it would query the teacher off the recorded manifold.

The teacher is only ever called, never inspected.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np
import sympy

from registry.core.expr import symbol
from registry.distillation.candidates import Candidate, _sparse, complexity_of, evaluate, nrmse
from registry.distillation.coefficients import decompose
from registry.distillation.dimensions import alternative_reductions, reduce_dimensions
from registry.distillation.domain import NEARBY_STEP, Domain
from registry.distillation.group_separation import separate_groups
from registry.distillation.problem import _Problem
from registry.distillation.reduction_fits import _quick, _search_reduced, target_tolerance
from registry.distillation.resolution import polynomial_floor, working_tolerance
from registry.distillation.snapping import snap_constants
from registry.distillation.structure import (
    irrelevant_inputs,
    irrelevant_nearby,
    separable,
    translation_pairs,
    translation_pairs_nearby,
)
from registry.distillation.teacher import Teacher
from registry.errors import DistillationError, RegistryError

__all__ = ["solve_output"]

SAMPLES = 1000
MAX_REDUCTIONS = 4  # Π reductions tried with the quick solvers
SEARCHED_REDUCTIONS = 2  # of which the expression search gets the first few
SNAPPED = 40  # candidates whose constants are snapped, the simplest eligible first
SNAP_SHARE = 0.15  # of the budget kept for scoring and snapping after the search


def solve_output(teacher: Teacher, ranges: Mapping[str, tuple[float, float]], *,
                 units: Mapping[str, str] | None, out_unit: str | None, budget_s: float,
                 tolerance: float, seed: int = 0, domain: Domain | None = None,
                 notes: dict[str, str] | None = None) -> tuple[list[Candidate], float]:
    """Candidates for one output, best first (not yet reduced to a Pareto front), and the
    tolerance worked to (the given one, tightened to the teacher's resolution).

    `domain`: where to ask the teacher (default: the box over `ranges`); `notes`, when
    given, receives what each structure test did (test name -> a sentence)."""
    start = time.monotonic()
    hard = start + budget_s  # the promise: candidates are scored and snapped by then
    problem = _Problem(teacher, dict(ranges), dict(units) if units else None, out_unit,
                       tolerance, start + budget_s * (1 - SNAP_SHARE),
                       np.random.default_rng(seed), domain=domain)
    try:
        _solve(problem)
    finally:
        if notes is not None:
            notes.update(problem.notes)
    problem.enter("scoring")
    tolerance = problem.tolerance  # as tightened to the teacher's resolution
    test = problem.where.held_out(SAMPLES, np.random.default_rng(seed + 1))
    truth = teacher(test)
    scored = [Candidate(c.expr, c.complexity, nrmse(evaluate(c.expr, test), truth), c.method,
                        _units_ok(c.expr, problem.units, out_unit)) for c in problem.found]
    # Snapping (and sympy's simplify) is the slow part: only for candidates that could
    # be chosen, the simplest first.
    best = min((c.nrmse for c in scored), default=math.inf)
    # One of each expression: the same fit reached through two transforms or reductions
    # would take a second place from a law a little longer.
    unique = {str(c.expr): c for c in scored if c.nrmse <= max(3 * best, 3 * tolerance)}
    eligible = sorted(unique.values(), key=lambda c: c.complexity)[:SNAPPED]
    rescored = list(scored)
    problem.deadline = hard
    for i, cand in enumerate(eligible):
        if not problem.enter("snapping"):
            problem.notes["snapping"] = f"snapped {i} of {len(eligible)} candidates in budget"
            break
        snapped = snap_constants(cand.expr, test, truth, tolerance=tolerance, deadline=hard)
        if snapped != cand.expr:
            rescored.append(Candidate(snapped, complexity_of(snapped),
                                      nrmse(evaluate(snapped, test), truth), cand.method + "+snap",
                                      _units_ok(snapped, problem.units, out_unit)))
    problem.enter("done")
    if notes is not None:
        notes.update(problem.notes)
        notes["budget"] = (f"ran out during {problem.ran_out_in} after "
                           f"{time.monotonic() - start:.1f} s of {budget_s:g} s"
                           if problem.ran_out_in else
                           f"finished in {time.monotonic() - start:.1f} s of {budget_s:g} s")
    return sorted(rescored, key=lambda c: (c.nrmse, c.complexity)), tolerance


def _units_ok(expr: sympy.Expr, units: Mapping[str, str] | None, out_unit: str | None) -> bool:
    if units is None or out_unit is None:
        return True
    from registry.core.units import check_equation_units

    try:
        check_equation_units(expr, symbols=units, output="y", output_unit=out_unit)
    except RegistryError:
        return False
    return True


def _solve(p: _Problem) -> None:
    recorded = p.where.kind == "recorded"
    x = p.where.sample(SAMPLES, p.rng)
    y = p.teacher(x)
    if recorded and not np.all(np.isfinite(y)):
        raise DistillationError(f"the teacher returned {np.count_nonzero(~np.isfinite(y))} "
                                f"non-finite values on {len(y)} recorded points: the part is "
                                "not finite where it was recorded; check the recording")
    if not np.all(np.isfinite(y)):
        raise RegistryError("the teacher returned non-finite values on its declared input ranges")
    spread = float(np.std(y))
    if spread <= 1e-12 * (float(np.abs(y).mean()) or 1.0):
        p.found.append(Candidate(sympy.Float(float(y.mean())), 1, 0.0, "constant"))
        return
    _resolve(p, x, y)
    p.enter("irrelevant inputs")
    unused = _irrelevant(p)
    used = [n for n in p.ranges if n not in unused]
    variables: dict[str, sympy.Expr] = {n: symbol(n) for n in used}
    var_units = {n: p.units[n] for n in used} if p.units else None
    if recorded:
        p.notes["separability"] = (
            "skipped on recorded points: testing it mixes the coordinates of distant points, "
            "and using a split holds some inputs fixed while others vary, both off the "
            "recorded manifold")
    else:
        p.notes["separability"] = ("not tested: a law was found first" if len(used) >= 2
                                   else "not tested: fewer than two inputs")
    p.notes["translation_symmetry"] = "not tested: the inputs have no units"
    if var_units is not None and p.enter("translation symmetry"):
        for a, b in _translations(p, used, var_units):
            name = f"d_{a}_{b}"
            variables[name] = symbol(b) - symbol(a)
            var_units[name] = var_units[a]
            del variables[a], variables[b], var_units[a], var_units[b]
    values = {n: evaluate(e, x) for n, e in variables.items()}
    p.enter("dimensional analysis")
    setups = _reductions(p, variables, var_units, x, y)
    # Quick solvers on every reduction first (cheap), then the search on the first few.
    for setup in setups:
        if not p.enter("quick solvers"):
            return
        _quick(p, *setup, y)
        if p.found and _good_enough(p):
            return
    if len(used) >= 2 and p.enter("separable groups"):
        # The Π groups may split where the inputs do not: x·(1 − π₁)/√(1 − π₂²).
        until = time.monotonic() + 0.2 * (p.deadline - time.monotonic())
        for prefactor, groups, group_values, target, pre in setups:
            tol = target_tolerance(p.tolerance, y, pre, target)
            if separate_groups(p, prefactor, groups, group_values, target, tol, until=until):
                p.notes["separable_groups"] = f"f(Π) split by group on {sorted(groups)}"
                if _good_enough(p):
                    return
    if len(used) >= 2 and p.enter("terms in one group"):
        # Sums whose terms have different prefactors: linear in a few functions of one
        # group, each coefficient a smaller problem (`coefficients.py`).
        until = time.monotonic() + 0.25 * (p.deadline - time.monotonic())
        for prefactor, groups, group_values, target, pre in setups[:SEARCHED_REDUCTIONS]:
            tol = target_tolerance(p.tolerance, y, pre, target)
            if decompose(p, prefactor, groups, group_values, target, tol, until=until):
                p.notes["terms_in_one_group"] = (f"f(Π) linear in functions of one of "
                                                 f"{sorted(groups)}")
                if _good_enough(p):
                    return
    if setups[0][0] != 1 and p.enter("quick solvers"):
        # Declared units can be wrong (a table's typo, a unit of convenience): the
        # reduction then hides the law. Try the plain variables with the quick solvers.
        _quick(p, sympy.Integer(1), variables, values, y, np.ones_like(y), y)
    if len(used) >= 3 and not recorded and not _good_enough(p) and p.enter("separability"):
        # Separable laws first (x₁y₁ + x₂y₂ + x₃y₃): each part is a smaller problem, while
        # the search over all inputs at once would need depth it cannot reach.
        _separate(p, used, until=time.monotonic() + 0.4 * (p.deadline - time.monotonic()))
    searched = setups[:SEARCHED_REDUCTIONS]
    for i, setup in enumerate(searched):
        if (p.found and _good_enough(p)) or not p.enter("search"):
            return
        share = (p.deadline - time.monotonic()) * 0.6 / (len(searched) - i)
        _search_reduced(p, *setup, y, budget=share)
    if len(used) == 2 and not recorded and not _good_enough(p) and p.enter("separability"):
        _separate(p, used, until=p.deadline)
    p.enter("scoring")


def _resolve(p: _Problem, x: Mapping[str, np.ndarray], y: np.ndarray) -> None:
    """Tighten the tolerance to how finely the teacher resolves its law (`resolution.py`)."""
    test = p.where.held_out(SAMPLES, p.rng)
    floor = polynomial_floor(x, y, test, p.teacher(test), p.where.ranges)
    working = working_tolerance(p.tolerance, floor)
    p.notes["tolerance"] = (
        f"{p.tolerance:.3g} given; a dense polynomial fits the teacher to {floor:.3g}, "
        + (f"so the solver worked to {working:.3g}" if working < p.tolerance
           else "so the given tolerance stands"))
    p.tolerance = working


def _irrelevant(p: _Problem) -> list[str]:
    """Inputs the output does not depend on: resampled over the box, or moved a small step
    around recorded points."""
    if p.where.kind == "box":
        unused = irrelevant_inputs(p.teacher, p.ranges, tolerance=p.tolerance, rng=p.rng)
        p.notes["irrelevant_inputs"] = (f"each input resampled over its range: dropped "
                                        f"{unused or 'none'}")
        return unused
    base = p.where.sample(256, p.rng)
    unused = irrelevant_nearby(p.teacher, base, p.where.spread, tolerance=p.tolerance,
                               step=NEARBY_STEP, rng=p.rng)
    p.notes["irrelevant_inputs"] = (
        f"each input moved by ±{NEARBY_STEP:.0%} of its recorded spread around 256 recorded "
        f"points (kept where the teacher is not finite there): dropped {unused or 'none'}")
    return unused


def _translations(p: _Problem, used: list[str],
                  var_units: Mapping[str, str]) -> list[tuple[str, str]]:
    """Same-unit pairs the output depends on only through their difference."""
    if p.where.kind == "box":
        # Every input, not only the used ones: the teacher takes them all (`var_units`
        # names the ones to pair).
        pairs = translation_pairs(p.teacher, p.ranges, var_units, tolerance=p.tolerance,
                                  rng=p.rng)
        p.notes["translation_symmetry"] = (f"same-unit pairs shifted by a quarter of their "
                                           f"range: replaced {pairs or 'none'}")
        return pairs
    base = p.where.sample(256, p.rng)
    pairs = translation_pairs_nearby(p.teacher, base, p.where.spread, var_units,
                                     tolerance=p.tolerance, step=NEARBY_STEP, rng=p.rng)
    p.notes["translation_symmetry"] = (
        f"same-unit pairs shifted together by ±{NEARBY_STEP:.0%} of the smaller recorded "
        f"spread around 256 recorded points: replaced {pairs or 'none'}")
    return pairs


def _reductions(p: _Problem, variables: Mapping[str, sympy.Expr],
                var_units: Mapping[str, str] | None, x: Mapping[str, np.ndarray],
                y: np.ndarray) -> list[tuple[sympy.Expr, dict[str, sympy.Expr],
                                             dict[str, np.ndarray], np.ndarray, np.ndarray]]:
    """(prefactor, groups, group values, y/prefactor, prefactor values) per Π reduction,
    the default first; the plain variables when the units give none."""
    plain = {n: evaluate(e, x) for n, e in variables.items()}
    setups = []
    if var_units is not None and p.out_unit is not None:
        first = reduce_dimensions(var_units, p.out_unit)
        reductions = [] if first is None else [first]
        if first is not None:
            reductions += [r for r in alternative_reductions(var_units, p.out_unit)
                           if (r.prefactor_expr(), r.group_exprs())
                           != (first.prefactor_expr(), first.group_exprs())]
        in_inputs = {symbol(n): e for n, e in variables.items()}
        for reduction in reductions[:MAX_REDUCTIONS]:
            prefactor = reduction.prefactor_expr().xreplace(in_inputs)
            groups = {f"pi{i}": g.xreplace(in_inputs)
                      for i, g in enumerate(reduction.group_exprs())}
            with np.errstate(all="ignore"):
                pre = evaluate(prefactor, x) if prefactor != 1 else np.ones_like(y)
                if (np.all(y > 0) or np.all(y < 0)) and np.any(pre < 0) and np.any(pre > 0):
                    # A distance is |Δx|·f(Δy/Δx): the sign belongs to the prefactor.
                    prefactor, pre = sympy.Abs(prefactor), np.abs(pre)
                target = y / pre
                group_values = {n: evaluate(g, x) for n, g in groups.items()}
            if np.all(np.isfinite(target)) and all(np.all(np.isfinite(v))
                                                   for v in group_values.values()):
                setups.append((prefactor, groups, group_values, target, pre))
    if not setups:
        setups.append((sympy.Integer(1), dict(variables), plain, y, np.ones_like(y)))
    return setups


def _good_enough(p: _Problem) -> bool:
    """A law with few fitted constants fits within the tolerance: the search can stop."""
    test = p.where.held_out(200, p.rng)
    truth = p.teacher(test)
    for c in p.found:
        err = nrmse(evaluate(c.expr, test), truth)
        # Clearly below the teacher's own error, not merely within it: a noisy teacher
        # (tolerance = twice its error) lets simple approximants such as m·v·exp(0.58·v²/c²)
        # for m·v/√(1 − v²/c²) within the tolerance, and stopping there would hide the law.
        # Four constants are a law only when they fit far below any noise (exactly).
        if (_sparse(c.expr) and err < p.tolerance * 0.3) or (_sparse(c.expr, 4)
                                                             and err < p.tolerance * 0.01):
            return True
    return False


def _separate(p: _Problem, names: list[str], *, until: float) -> None:
    """f = g(A) ∘ h(B) with ∘ in {+, ·}: solve each part as its own problem (by `until`),
    then combine."""
    live = {n: p.ranges[n] for n in names}
    p.notes["separability"] = "tested on pairs of points from the box: no split used"
    for kind in ("mul", "add"):
        if time.monotonic() > until:
            return
        split = separable(p.teacher, p.ranges, names, kind=kind, tolerance=p.tolerance,
                          rng=p.rng)
        if split is None:
            continue
        a, b = split
        # Inside the ranges, not at their midpoints: two inputs with the same range would
        # be equal there, and ω = ω₀ is where sin²(x)/x² is 0/0.
        anchor = {n: np.full(1, lo + (hi - lo) * p.rng.uniform(0.3, 0.7))
                  for n, (lo, hi) in p.ranges.items()}
        f0 = float(p.teacher(anchor)[0])
        if kind == "mul" and f0 == 0:
            continue

        def part(keep: list[str], fixed: Mapping[str, np.ndarray] = anchor) -> Teacher:
            def query(values: Mapping[str, np.ndarray]) -> np.ndarray:
                n = len(next(iter(values.values())))
                full = {k: (values[k] if k in keep else np.full(n, fixed[k][0]))
                        for k in p.ranges}
                return p.teacher(full)
            return query

        parts = []
        for group in (a, b):
            other = b if group is a else a
            # Fixing the other part's inputs keeps the units of this part's law only when
            # those inputs are dimensionless (n = n₀·h(p·E/kT, θ)); otherwise no units.
            keep_units = p.units is not None and all(_dimensionless(p.units[n]) for n in other)
            remaining = until - time.monotonic()
            sub = _Problem(part(group), {n: live[n] for n in group},
                           {n: p.units[n] for n in group} if keep_units and p.units else None,
                           p.out_unit if keep_units else None, p.tolerance,
                           time.monotonic() + remaining / (2 if group is a else 1), p.rng)
            try:
                _solve(sub)
            except RegistryError:  # the part is not finite everywhere: not this split
                break
            if not sub.found:
                break
            test = sub.where.sample(200, p.rng)
            truth = sub.teacher(test)
            scored = [(nrmse(evaluate(c.expr, test), truth), c) for c in sub.found]
            # As for the whole: the simplest part within reach of the best, not the one
            # that fits the teacher's noise best.
            floor = min(err for err, _ in scored)
            parts.append(min((c for err, c in scored if err <= max(1.5 * floor, p.tolerance)),
                             key=lambda c: c.complexity).expr)
        if len(parts) == 2:
            p.notes["separability"] = (f"tested on pairs of points from the box: "
                                       f"f = g({a}) {'·' if kind == 'mul' else '+'} h({b})")
            combined = parts[0] * parts[1] / f0 if kind == "mul" else parts[0] + parts[1] - f0
            p.found.append(Candidate(combined, complexity_of(combined), 0.0,
                                     f"{'multiplicative' if kind == 'mul' else 'additive'} "
                                     "separability"))
            return


def _dimensionless(unit: str) -> bool:
    from registry.core.units import parse_unit

    try:
        return bool(parse_unit(unit).dimensionless)
    except RegistryError:
        return False
