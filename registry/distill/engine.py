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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import sympy

from registry.distill.dimensions import alternative_reductions, reduce_dimensions
from registry.distill.quick import QuickFit, power_law, power_law_scaled, snap_fraction
from registry.distill.quick import library as fit_library
from registry.distill.quick import polynomial as fit_polynomial
from registry.distill.quick import rational as fit_rational
from registry.distill.search import search_many
from registry.distill.structure import (
    Teacher,
    irrelevant_inputs,
    sample,
    separable,
    translation_pairs,
)
from registry.errors import RegistryError
from registry.expr import symbol

__all__ = ["Candidate", "solve_output"]

SAMPLES = 1000
SEARCH_SAMPLES = 200
MAX_REDUCTIONS = 4  # Π reductions tried with the quick solvers
SEARCHED_REDUCTIONS = 2  # of which the expression search gets the first few
SNAPPED = 40  # candidates whose constants are snapped, the simplest eligible first


@dataclass(frozen=True)
class Candidate:
    expr: sympy.Expr
    complexity: int
    nrmse: float  # against the teacher, on fresh points
    method: str
    units_ok: bool = True

    def to_dict(self) -> dict[str, object]:
        from registry.expr import format_expression

        return {"equation": format_expression(self.expr), "complexity": self.complexity,
                "nrmse": self.nrmse, "method": self.method, "units_ok": self.units_ok}


@dataclass
class _Problem:
    teacher: Teacher
    ranges: dict[str, tuple[float, float]]
    units: dict[str, str] | None
    out_unit: str | None
    tolerance: float
    deadline: float
    rng: np.random.Generator
    found: list[Candidate] = field(default_factory=list)


def complexity_of(expr: sympy.Expr) -> int:
    """Tree nodes, a fitted float counting 8 (it takes many bits to state), so exact
    constants such as 2·π win over their float approximations."""
    return sum(8 if isinstance(node, sympy.Float) else 1
               for node in sympy.preorder_traversal(expr))


def evaluate(expr: sympy.Expr, x: Mapping[str, np.ndarray]) -> np.ndarray:
    """Evaluate our own (trusted) sympy tree with the torch ops equation modules use."""
    import torch

    from registry.nn.equation import as_tensor, compile_expression

    env = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in x.items()}
    with torch.no_grad(), np.errstate(all="ignore"):
        try:
            value = compile_expression(expr)(env)
        except (ArithmeticError, TypeError, ValueError, RegistryError):
            # Not a real function (√ of a negative constant after snapping, a constant
            # beyond floating point): unusable.
            return np.full(len(next(iter(x.values()))), np.nan)
        return as_tensor(value, env).numpy().astype(np.float64)


def nrmse(predicted: np.ndarray, y: np.ndarray) -> float:
    with np.errstate(all="ignore"):
        if not np.all(np.isfinite(predicted)):
            return math.inf
        spread = float(np.std(y)) or float(np.abs(y).mean()) or 1.0
        return float(np.sqrt(np.mean((predicted - y) ** 2))) / spread


@dataclass(frozen=True)
class _Transform:
    """A change of target, t → T(t), that can make f shallow (`√(1 + a² + b²)` is a
    polynomial once squared, `1/(eˣ − 1)` a shifted exponential once inverted)."""

    name: str
    forward: Callable[[np.ndarray], np.ndarray]
    back: Callable[[sympy.Expr, float], sympy.Expr]  # (fit of T(t), sign of t) → t


def _transforms(t: np.ndarray) -> list[_Transform]:
    """The transforms that apply to target values `t` (one-signed ones only)."""
    if not (np.all(t > 0) or np.all(t < 0)):
        return []
    return [
        _Transform("square", np.square, lambda e, s: s * _root(e)),
        _Transform("inverse", np.reciprocal, lambda e, s: _inverse(e)),
        _Transform("sqrt", lambda v: np.sqrt(np.abs(v)), lambda e, s: s * _scaled(e, 2)),
        _Transform("log", lambda v: np.log(np.abs(v)), lambda e, s: s * _exp(e)),
        _Transform("inverse square", lambda v: 1 / np.square(v),
                   lambda e, s: s * _inverse(_root(e))),
    ]


def _scale_of(e: sympy.Expr) -> sympy.Expr:
    """The largest fitted coefficient of a sum (1 if none): pulled out of a root, an
    inverse or a power, the constants left inside are ratios (1, −2) and the one outside
    is simple again (√(9/16π²) = 3/4π), so snapping finds both."""
    terms = sympy.Add.make_args(sympy.expand(e))
    coefficients = [t.as_coeff_Mul()[0] for t in terms]
    floats = [c for c in coefficients if isinstance(c, sympy.Float) and c != 0]
    return max(floats, key=lambda c: abs(float(c))) if floats else sympy.Integer(1)


def _root(e: sympy.Expr) -> sympy.Expr:
    c = _scale_of(e)
    c = c if float(c) > 0 else -c
    return sympy.Float(math.sqrt(float(c))) * sympy.sqrt(sympy.expand(e / c))


def _inverse(e: sympy.Expr) -> sympy.Expr:
    c = _scale_of(e)
    return sympy.Float(1 / float(c)) / sympy.expand(e / c)


def _scaled(e: sympy.Expr, power: int) -> sympy.Expr:
    c = _scale_of(e)
    return sympy.Float(float(c) ** power) * sympy.expand(e / c) ** power


def _exp(e: sympy.Expr) -> sympy.Expr:
    """exp(b + g) as e^b · exp(g): e^b is the constant to snap (1/√(2π) for a Gaussian)."""
    constant, rest = sympy.expand(e).as_coeff_Add()
    if not isinstance(constant, sympy.Float) or abs(float(constant)) > 700:
        return sympy.exp(e)  # nothing to split off, or e^b beyond floating point
    return sympy.Float(math.exp(float(constant))) * sympy.exp(rest)


def _back(transform: _Transform, fit: sympy.Expr, sign: float) -> sympy.Expr | None:
    """The fit of T(t) as a law for t, or None when it has no finite form."""
    try:
        return transform.back(fit, sign)
    except (ArithmeticError, ValueError, TypeError):
        return None


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
    from registry.units import check_equation_units

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
    # The tolerance is relative to y's spread; dividing by the prefactor changes both the
    # teacher's error and the spread, so restate it for the target.
    with np.errstate(all="ignore"):
        ratio = float(np.std(y) * np.sqrt(np.mean(1 / np.square(pre))) / np.std(target))
    tol = p.tolerance * ratio if np.isfinite(ratio) and ratio > 0 else p.tolerance
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


def _stretch(transform: _Transform, t: np.ndarray) -> float:
    """How much the transform stretches a relative error of t: RMS of T'(t)·std(t) over
    std(T(t)), T' by central differences."""
    h = 1e-6
    with np.errstate(all="ignore"):
        derivative = (transform.forward(t * (1 + h)) - transform.forward(t * (1 - h))) / (2 * h * t)
        spread = float(np.std(transform.forward(t)))
        value = float(np.sqrt(np.mean(np.square(derivative)))) * float(np.std(t)) / spread
    return value if np.isfinite(value) and value > 0 else 1.0


def _sparse(expr: sympy.Expr, floats: int = 2) -> bool:
    """Few fitted constants: a law, not an approximation (a dense polynomial or Padé fit
    reaches a network's noise level whatever the law is)."""
    return len(expr.atoms(sympy.Float)) <= floats


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
        for transform in _transforms(target):
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
    from registry.units import parse_unit

    try:
        return bool(parse_unit(unit).dimensionless)
    except RegistryError:
        return False


_ROOTS = [(sympy.pi, math.pi), (sympy.sqrt(sympy.pi), math.sqrt(math.pi)),
          (sympy.sqrt(2), math.sqrt(2)), (sympy.sqrt(2 * sympy.pi), math.sqrt(2 * math.pi)),
          (sympy.pi**2, math.pi**2)]
# Each special number and its reciprocal: 1/(4π) is (1/4)·π⁻¹.
_SPECIAL = [*_ROOTS, *((1 / s, 1 / v) for s, v in _ROOTS)]


def snap_constants(expr: sympy.Expr, x: Mapping[str, np.ndarray], y: np.ndarray, *,
                   tolerance: float = 0.0) -> sympy.Expr:
    """Replace fitted floats by simple exact numbers when that does not hurt the fit:
    tiny ones by 0, others by p/q or p/q times π, √π, √2, √(2π), π² or their reciprocals."""
    base = nrmse(evaluate(expr, x), y)
    allowed = max(base * 1.5, tolerance * 0.5, 1e-12)
    floats = sorted(expr.atoms(sympy.Float), key=lambda f: -abs(float(f)))
    for f in floats:
        value = float(f)
        options: list[tuple[int, sympy.Expr]] = [(0, sympy.Integer(0))]
        for rank, (special, number) in enumerate([(sympy.Integer(1), 1.0), *_SPECIAL]):
            # How close counts as "the same number" follows the teacher's own precision.
            closeness = max(1e-6, tolerance) * abs(value / number) + 1e-12
            ratio = snap_fraction(value / number, max_denominator=24, tolerance=closeness)
            if ratio is not None and ratio != 0:
                # The simplest number first: with a network's precision both 44/7 and 2π
                # fit 6.2835, and 2π is the law.
                cost = abs(ratio.numerator) + ratio.denominator + (0 if rank == 0 else 2)
                options.append((cost, sympy.Rational(ratio.numerator, ratio.denominator)
                                * special))
        for _, option in sorted(options, key=lambda o: o[0]):
            trial = expr.xreplace({f: option})
            if nrmse(evaluate(trial, x), y) <= allowed:
                expr = trial
                break
    if complexity_of(expr) >= 60:
        return expr
    # sympy's idea of simpler is not ours (it turns m/√(1 − v²/c²) into
    # m·|c|·√(1/(c² − v²))), and denesting √(1/x) into x^(-1/2) assumes signs: take the
    # shortest form that still fits.
    simplified = sympy.simplify(expr)
    forms = [expr, simplified, sympy.powdenest(expr, force=True),
             sympy.powdenest(simplified, force=True)]
    for form in sorted(forms, key=complexity_of):
        if form == expr or nrmse(evaluate(form, x), y) <= allowed:
            return form
    return expr


def teacher_from_callable(fn: Callable[..., object], inputs: list[str], output: int, *,
                          double: bool = False) -> Teacher:
    """Wrap `fn((batch, n_inputs) tensor) -> (batch, n_outputs)` as a numpy teacher
    (float32 inputs, as networks run, unless `double`)."""
    import torch

    dtype = torch.float64 if double else torch.float32

    def query(values: Mapping[str, np.ndarray]) -> np.ndarray:
        x = np.stack([np.asarray(values[n], dtype=np.float64) for n in inputs], axis=1)
        with torch.no_grad():
            out = fn(torch.as_tensor(x, dtype=dtype))
        return np.asarray(out, dtype=np.float64).reshape(len(x), -1)[:, output]

    return query


