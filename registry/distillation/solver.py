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
from registry.distillation.dimensions import alternative_reductions, reduce_dimensions
from registry.distillation.problem import _Problem
from registry.distillation.reduction_fits import _quick, _search_reduced
from registry.distillation.snapping import snap_constants
from registry.distillation.structure import (
    irrelevant_inputs,
    sample,
    separable,
    translation_pairs,
)
from registry.distillation.teacher import Teacher
from registry.errors import RegistryError

__all__ = ["solve_output"]

SAMPLES = 1000
MAX_REDUCTIONS = 4  # Π reductions tried with the quick solvers
SEARCHED_REDUCTIONS = 2  # of which the expression search gets the first few
SNAPPED = 40  # candidates whose constants are snapped, the simplest eligible first


def solve_output(teacher: Teacher, ranges: Mapping[str, tuple[float, float]], *,
                 units: Mapping[str, str] | None, out_unit: str | None, budget_s: float,
                 tolerance: float, seed: int = 0) -> list[Candidate]:
    """Candidates for one output, best first (not yet reduced to a Pareto front)."""
    problem = _Problem(teacher, dict(ranges), dict(units) if units else None, out_unit,
                       tolerance, time.monotonic() + budget_s, np.random.default_rng(seed))
    _solve(problem)
    test = sample(problem.ranges, SAMPLES, np.random.default_rng(seed + 1))
    truth = teacher(test)
    scored = [Candidate(c.expr, c.complexity, nrmse(evaluate(c.expr, test), truth), c.method,
                        _units_ok(c.expr, problem.units, out_unit)) for c in problem.found]
    # Snapping (and sympy's simplify) is the slow part: only for candidates that could
    # be chosen, the simplest first.
    best = min((c.nrmse for c in scored), default=math.inf)
    eligible = sorted((c for c in scored if c.nrmse <= max(3 * best, 3 * tolerance)),
                      key=lambda c: c.complexity)[:SNAPPED]
    rescored = list(scored)
    for cand in eligible:
        snapped = snap_constants(cand.expr, test, truth, tolerance=tolerance)
        if snapped != cand.expr:
            rescored.append(Candidate(snapped, complexity_of(snapped),
                                      nrmse(evaluate(snapped, test), truth), cand.method + "+snap",
                                      _units_ok(snapped, problem.units, out_unit)))
    return sorted(rescored, key=lambda c: (c.nrmse, c.complexity))


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
    x = sample(p.ranges, SAMPLES, p.rng)
    y = p.teacher(x)
    if not np.all(np.isfinite(y)):
        raise RegistryError("the teacher returned non-finite values on its declared input ranges")
    spread = float(np.std(y))
    if spread <= 1e-12 * (float(np.abs(y).mean()) or 1.0):
        p.found.append(Candidate(sympy.Float(float(y.mean())), 1, 0.0, "constant"))
        return
    unused = irrelevant_inputs(p.teacher, p.ranges, tolerance=p.tolerance, rng=p.rng)
    used = [n for n in p.ranges if n not in unused]
    variables: dict[str, sympy.Expr] = {n: symbol(n) for n in used}
    var_units = {n: p.units[n] for n in used} if p.units else None
    if var_units is not None:
        live = {n: p.ranges[n] for n in used}
        for a, b in translation_pairs(p.teacher, live, var_units, tolerance=p.tolerance,
                                      rng=p.rng):
            name = f"d_{a}_{b}"
            variables[name] = symbol(b) - symbol(a)
            var_units[name] = var_units[a]
            del variables[a], variables[b], var_units[a], var_units[b]
    values = {n: evaluate(e, x) for n, e in variables.items()}
    setups = _reductions(p, variables, var_units, x, y)
    # Quick solvers on every reduction first (cheap), then the search on the first few.
    for setup in setups:
        _quick(p, *setup, y)
        if p.found and _good_enough(p):
            return
    if setups[0][0] != 1:
        # Declared units can be wrong (a table's typo, a unit of convenience): the
        # reduction then hides the law. Try the plain variables with the quick solvers.
        _quick(p, sympy.Integer(1), variables, values, y, np.ones_like(y), y)
    if len(used) >= 3 and not _good_enough(p):
        # Separable laws first (x₁y₁ + x₂y₂ + x₃y₃): each part is a smaller problem, while
        # the search over all inputs at once would need depth it cannot reach.
        _separate(p, used, until=time.monotonic() + 0.4 * (p.deadline - time.monotonic()))
    searched = setups[:SEARCHED_REDUCTIONS]
    for i, setup in enumerate(searched):
        if p.found and _good_enough(p):
            return
        share = (p.deadline - time.monotonic()) * 0.6 / (len(searched) - i)
        _search_reduced(p, *setup, y, budget=share)
    if len(used) == 2 and not _good_enough(p):
        _separate(p, used, until=p.deadline)


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
    test = sample(p.ranges, 200, p.rng)
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
            test = sample(sub.ranges, 200, p.rng)
            truth = sub.teacher(test)
            scored = [(nrmse(evaluate(c.expr, test), truth), c) for c in sub.found]
            # As for the whole: the simplest part within reach of the best, not the one
            # that fits the teacher's noise best.
            floor = min(err for err, _ in scored)
            parts.append(min((c for err, c in scored if err <= max(1.5 * floor, p.tolerance)),
                             key=lambda c: c.complexity).expr)
        if len(parts) == 2:
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
