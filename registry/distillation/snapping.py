"""Constant snapping: fitted floats replaced by simple exact numbers (p/q, π, √2, …)
when that does not hurt the fit."""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

import numpy as np
import sympy

from registry.distillation.candidates import complexity_of, evaluate, nrmse
from registry.distillation.quick import snap_fraction

__all__ = ["snap_constants"]

_ROOTS = [(sympy.pi, math.pi), (sympy.sqrt(sympy.pi), math.sqrt(math.pi)),
          (sympy.sqrt(2), math.sqrt(2)), (sympy.sqrt(2 * sympy.pi), math.sqrt(2 * math.pi)),
          (sympy.pi**2, math.pi**2)]
# Each special number and its reciprocal: 1/(4π) is (1/4)·π⁻¹.
_SPECIAL = [*_ROOTS, *((1 / s, 1 / v) for s, v in _ROOTS)]


def _square_roots(value: float, tolerance: float) -> list[tuple[int, sympy.Expr]]:
    """±√(p/q) and ±√(p/q·π): √(8π/3) is a law's constant that no p/q·√2 or √π reaches."""
    found: list[tuple[int, sympy.Expr]] = []
    sign = -1 if value < 0 else 1
    for special, number in ((sympy.Integer(1), 1.0), (sympy.pi, math.pi)):
        square = value * value / number
        closeness = 2 * max(1e-6, tolerance) * square + 1e-12
        ratio = snap_fraction(square, max_denominator=12, tolerance=closeness)
        if ratio is None or ratio <= 0 or _perfect_square(ratio):
            continue  # √ of a perfect square is a plain p/q (or p/q·√π), offered already
        cost = abs(ratio.numerator) + ratio.denominator + (3 if number == 1.0 else 5)
        found.append((cost, sign * sympy.sqrt(sympy.Rational(ratio.numerator,
                                                             ratio.denominator) * special)))
    return found


def _perfect_square(ratio: Fraction) -> bool:
    return all(math.isqrt(n) ** 2 == n for n in (ratio.numerator, ratio.denominator))


def _best_option(expr: sympy.Expr, f: sympy.Float, options: list[tuple[int, sympy.Expr]],
                 x: Mapping[str, np.ndarray], y: np.ndarray, allowed: float) -> sympy.Expr:
    """The simplest option among those that fit about as well as the fitted float does.

    Every option within `allowed` qualifies, but with a noisy teacher a cheaper
    wrong constant (2/(5π²) for 1/(8π), 1.8 % off) can stay within the noise: an
    option is kept only if its error is within 10 % of the float's own (or of the
    best option's, when that is worse), or within 50 % when it costs at most a quarter
    of the closest-fitting option. The same number in two spellings, 44/7 against 2π,
    fits alike, and the cheaper wins."""
    current = nrmse(evaluate(expr, x), y)
    scored = []
    for cost, option in options:
        error = nrmse(evaluate(expr.xreplace({f: option}), x), y)
        if error <= allowed:
            scored.append((cost, error, option))
    if not scored:
        return expr
    reference = max(current, min(error for _, error, _ in scored))
    closest_cost = min(scored, key=lambda t: (t[1], t[0]))[0]

    def near(cost: int) -> float:
        # Far fewer digits buy more room: 1 for 0.99918 (the teacher's bias) beats
        # 65·√2/92, 2π beats 44/7 for 6.2857; two numbers of about one size (2/(5π²),
        # 1/(8π)) are held to 10 %.
        share = CHEAP_SHARE if cost * CHEAP_RATIO <= closest_cost else NEAR_SHARE
        return reference * (1 + share) + 1e-15

    cost, _, option = min(((c, e, o) for c, e, o in scored if e <= near(c)),
                          key=lambda t: (t[0], t[1]))
    return expr.xreplace({f: option})


NEAR_SHARE = 0.1  # an option may fit this much worse than the float and still be chosen
CHEAP_SHARE = 0.5  # … or this much, when it costs at most 1/CHEAP_RATIO of the closest one
CHEAP_RATIO = 4


SIMPLIFY_MAX_S = 30.0  # without a deadline; one simplify took 60 s on a Lorentz candidate


class _SimplifyTimeout(Exception):
    pass


def bounded_simplify(expr: sympy.Expr, deadline: float | None = None, *,
                     limit_s: float = SIMPLIFY_MAX_S) -> sympy.Expr | None:
    """`sympy.simplify(expr)`, or None when it takes longer than is left before `deadline`
    (without one, than `limit_s`): a simplify that needs 3 s of a budget's last 10 gets
    them, one that would take a minute past it is cut off. The bound is a SIGALRM timer,
    so it holds in the main thread (the CLI, the benchmark's workers); in other threads
    simplify runs unbounded, only skipped once the deadline has passed."""
    limit = limit_s if deadline is None else deadline - time.monotonic()
    if limit <= 0:
        return None
    if threading.current_thread() is not threading.main_thread() or not hasattr(
            signal, "setitimer"):
        return sympy.simplify(expr)

    def alarm(signum: int, frame: Any) -> None:
        raise _SimplifyTimeout

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        return sympy.simplify(expr)
    except _SimplifyTimeout:
        return None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def snap_constants(expr: sympy.Expr, x: Mapping[str, np.ndarray], y: np.ndarray, *,
                   tolerance: float = 0.0, deadline: float | None = None) -> sympy.Expr:
    """Replace fitted floats by simple exact numbers when that does not hurt the fit:
    tiny ones by 0, others by p/q or p/q times π, √π, √2, √(2π), π² or their reciprocals.
    Past `deadline` (time.monotonic), no further constant is tried and sympy's simplify
    (the slow part) is skipped."""
    base = nrmse(evaluate(expr, x), y)
    allowed = max(base * 1.5, tolerance * 0.5, 1e-12)
    nested = _nested_floats(expr)
    expr = _snap_floats(expr, x, y, tolerance, allowed, deadline)
    if nested and expr.atoms(sympy.Float):
        # A fitted scale times a sum of fitted terms (0.0727·(1.0949·a − 1.0949·b)): no
        # factor is simple, their products are (1/(4π)). Expanded, each term is one
        # constant; taken when it snaps to fewer floats.
        expanded = _snap_floats(sympy.expand(expr), x, y, tolerance, allowed, deadline)
        if (len(expanded.atoms(sympy.Float)) < len(expr.atoms(sympy.Float))
                and nrmse(evaluate(expanded, x), y) <= allowed):
            expr = expanded
    late = deadline is not None and time.monotonic() > deadline
    # sympy's idea of simpler is not ours (it turns m/√(1 − v²/c²) into
    # m·|c|·√(1/(c² − v²))), and denesting √(1/x) into x^(-1/2) assumes signs: take the
    # shortest form that still fits.
    # sympy's simplify only on short candidates and in time; the cheap forms always.
    simplified = None if late or complexity_of(expr) >= 60 else bounded_simplify(expr, deadline)
    forms = [expr, sympy.powdenest(expr, force=True), _split_roots(expr)]
    if simplified is not None:
        forms += [simplified, sympy.powdenest(simplified, force=True), _split_roots(simplified)]
    for form in sorted(forms, key=complexity_of):
        if form == expr:
            return form
        if nrmse(evaluate(form, x), y) <= allowed:
            # Simplifying can gather constants the pass above could not name apart:
            # −13.83·(0.4627·a + 0.4627·b) becomes −6.4·a − 6.4·b, which is −32/5.
            return _snap_floats(form, x, y, tolerance, allowed, deadline)
    return expr


def _split_roots(expr: sympy.Expr) -> sympy.Expr:
    """Square roots of a ratio taken apart: √(−2c²m²/(−X)) → c·m·√2/√X (the signs of a
    monomial over a sum made positive first). Valid where both parts are positive, which
    the caller checks on the samples; a back-transform leaves 1/√(1/X) behind otherwise."""
    def split(node: sympy.Expr) -> sympy.Expr:
        if not (isinstance(node, sympy.Pow) and node.exp in (sympy.S.Half, -sympy.S.Half)):
            return node
        num, den = sympy.fraction(sympy.together(node.base))
        if den == 1 or isinstance(num, sympy.Add) == isinstance(den, sympy.Add):
            return node
        monomial = den if isinstance(num, sympy.Add) else num
        if monomial.as_coeff_Mul()[0] < 0:
            num, den = sympy.expand(-num), sympy.expand(-den)
        root = sympy.powdenest(sympy.sqrt(num), force=True) / sympy.powdenest(
            sympy.sqrt(den), force=True)
        return root if node.exp > 0 else 1 / root

    try:
        return expr.replace(lambda n: isinstance(n, sympy.Pow), split)
    except (TypeError, ValueError, ArithmeticError):
        return expr


def _nested_floats(expr: sympy.Expr) -> bool:
    """A float multiplies a sum that has floats of its own."""
    return any(isinstance(node, sympy.Mul) and node.atoms(sympy.Float)
               and any(isinstance(arg, sympy.Float) for arg in node.args)
               and any(isinstance(arg, sympy.Add) and arg.atoms(sympy.Float)
                       for arg in node.args)
               for node in sympy.preorder_traversal(expr))


def _snap_floats(expr: sympy.Expr, x: Mapping[str, np.ndarray], y: np.ndarray,
                 tolerance: float, allowed: float, deadline: float | None) -> sympy.Expr:
    """Each float of `expr`, the largest first, replaced by the simplest option that fits
    within `allowed` (kept when none does)."""
    tried: set[float] = set()
    for _ in range(2 * len(expr.atoms(sympy.Float))):
        if deadline is not None and time.monotonic() > deadline:
            return expr
        # Read the floats afresh each time: replacing one can fold others into new ones
        # (1.0·(−6.4·m₁ − 6.4·m₂) distributes, and the old −6.4 atoms are gone).
        left = sorted((f for f in expr.atoms(sympy.Float) if float(f) not in tried),
                      key=lambda f: -abs(float(f)))
        if not left:
            break
        f = left[0]
        tried.add(float(f))
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
        options += _square_roots(value, tolerance)
        expr = _best_option(expr, f, options, x, y, allowed)
    return expr
