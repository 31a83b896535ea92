"""Constant snapping: fitted floats replaced by simple exact numbers (p/q, π, √2, …)
when that does not hurt the fit."""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from fractions import Fraction

import numpy as np
import sympy

from registry.distillation.bounded import bounded_simplify
from registry.distillation.candidates import complexity_of, evaluate, nrmse
from registry.distillation.quick import snap_fraction
from registry.distillation.refine import refine_constants

__all__ = ["bounded_simplify", "snap_constants"]

_ROOTS = [(sympy.pi, math.pi), (sympy.sqrt(sympy.pi), math.sqrt(math.pi)),
          (sympy.sqrt(2), math.sqrt(2)), (sympy.sqrt(2 * sympy.pi), math.sqrt(2 * math.pi)),
          (sympy.pi**2, math.pi**2), (sympy.pi**3, math.pi**3)]  # π³: Planck's law
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


def _simplest_within(value: float, window: float) -> list[tuple[float, sympy.Expr]]:
    """For 1 and each special number s, p/q·s within `window` of `value` with the smallest
    q ≤ 24 (32/5 for 6.4064, where the closest p/q is 141/22)."""
    found: list[tuple[float, sympy.Expr]] = []
    for special, number in [(sympy.Integer(1), 1.0), *_SPECIAL]:
        for q in range(1, 25):
            p = round(value / number * q)
            if p and abs(p / q * number - value) <= window:
                found.append((0, sympy.Rational(p, q) * special))
                break
    return found


def _perfect_square(ratio: Fraction) -> bool:
    return all(math.isqrt(n) ** 2 == n for n in (ratio.numerator, ratio.denominator))


def _bits(option: sympy.Expr) -> float:
    """A constant's description length: log₂ of its numerator and denominator, and 2 bits
    for π (or 1/π) beside them, 3 for another special number or a square root (with its
    radicand's own digits)."""
    coefficient, rest = option.as_coeff_Mul()
    if not isinstance(coefficient, sympy.Rational) or coefficient == 0:
        return 0.0

    def of(r: sympy.Rational) -> float:
        return math.log2(1 + abs(int(r.p))) + math.log2(int(r.q))

    bits = of(coefficient)
    for factor in sympy.Mul.make_args(rest):
        if factor == 1:
            continue
        base = factor.base if isinstance(factor, sympy.Pow) else factor
        # √(41) or √(8π/3): its radicand's own digits too
        radicand = [a for a in sympy.Mul.make_args(base) if isinstance(a, sympy.Rational)]
        bits += sum(of(a) for a in radicand) + (2 if factor in (sympy.pi, 1 / sympy.pi) else 3)
    return bits


def _best_option(expr: sympy.Expr, f: sympy.Float, options: list[tuple[float, sympy.Expr]],
                 x: Mapping[str, np.ndarray], y: np.ndarray, allowed: float,
                 alike: set[sympy.Expr] | None = None, rescaled: bool = False) -> sympy.Expr:
    """The simplest option among those that fit about as well as the fitted float does.

    Every option within `allowed` qualifies, but with a noisy teacher a cheaper
    wrong constant (2/(5π²) for 1/(8π), 1.8 % off) can stay within the noise: an
    option is kept only if its error is within 10 % of the float's own (or of the
    best option's, when that is worse), or within 50 % when it costs at most a quarter
    of the closest-fitting option. The same number in two spellings, 44/7 against 2π,
    fits alike, and the cheaper wins.

    `alike`: options that qualify whatever their error (within `allowed`); `rescaled`:
    each option judged with the expression's overall scale refitted (a closed form), as
    the refit after it will: a ratio of 1 in −6.45·(0.9975·a + b) fits worse than 9√π/16
    until the scale follows it."""

    def error_of(candidate: sympy.Expr) -> float:
        predicted = evaluate(candidate, x)
        if rescaled:
            with np.errstate(all="ignore"):
                scale = float(np.dot(predicted, y) / np.dot(predicted, predicted))
            predicted = predicted * scale if math.isfinite(scale) else predicted
        return nrmse(predicted, y)

    current = error_of(expr)
    scored = []
    for cost, option in options:
        error = error_of(expr.xreplace({f: option}))
        if error <= allowed:
            scored.append((cost, error, option))
    if not scored:
        return expr
    reference = max(current, min(error for _, error, _ in scored))
    closest_cost = min(scored, key=lambda t: (t[1], t[0]))[0]

    def near(cost: float) -> float:
        # Far fewer digits buy more room: 1 for 0.99918 (the teacher's bias) beats
        # 65·√2/92, 2π beats 44/7 for 6.2857; two numbers of about one size (2/(5π²),
        # 1/(8π)) are held to 10 %.
        share = CHEAP_SHARE if cost * CHEAP_RATIO <= closest_cost else NEAR_SHARE
        return reference * (1 + share) + 1e-15

    cost, _, option = min(((c, e, o) for c, e, o in scored
                           if e <= near(c) or (alike is not None and o in alike)),
                          key=lambda t: (t[0], t[1]))
    return expr.xreplace({f: option})


NEAR_ONE = 0.05  # a float this close to ±1 (relative) may be a sum's ratio of 1
ALIKE = 0.5  # a refitted constant's options this close (× tolerance, relative) are one
NEAR_SHARE = 0.1  # an option may fit this much worse than the float and still be chosen
CHEAP_SHARE = 0.5  # … or this much, when it costs at most 1/CHEAP_RATIO of the closest one
CHEAP_RATIO = 4
NEARBY = 0.1  # small rationals this close (relative) are always offered


def snap_constants(expr: sympy.Expr, x: Mapping[str, np.ndarray], y: np.ndarray, *,
                   tolerance: float = 0.0, deadline: float | None = None) -> sympy.Expr:
    """Replace fitted floats by simple exact numbers when that does not hurt the fit:
    tiny ones by 0, others by p/q or p/q times π, √π, √2, √(2π), π² or their reciprocals.
    Past `deadline` (time.monotonic), no further constant is tried and sympy's simplify
    (the slow part) is skipped."""
    base = nrmse(evaluate(expr, x), y)
    allowed = max(base * 1.5, tolerance * 0.5, 1e-12)
    nested = _nested_floats(expr)
    normalised = _normalise_sums(expr)
    if normalised != expr and nrmse(evaluate(normalised, x), y) <= allowed:
        expr = normalised
    fitted = expr
    expr = _snap_floats(fitted, x, y, tolerance, allowed, deadline)
    floats = fitted.atoms(sympy.Float)
    if len(floats) >= 2 and any(0 < abs(abs(float(v)) - 1) < NEAR_ONE for v in floats):
        # Snapped one at a time, each constant keeps the error the others' fitted values
        # left it (−6.37·(a + 1.013·b): 1.013 is 1, and the scale, refitted with it, 6.4).
        # Only where a ratio is near 1 (the pass is slower, refitting after each snap).
        refitted = _snap_floats(fitted, x, y, tolerance, allowed, deadline, refit=True)
        if (complexity_of(refitted) < complexity_of(expr)
                and nrmse(evaluate(refitted, x), y) <= allowed):
            expr = refitted
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
    # shortest form that still fits. simplify only on short candidates and in time; the
    # cheap forms always.
    simplified = None if late or complexity_of(expr) >= 60 else bounded_simplify(expr, deadline)
    forms = [expr, sympy.powdenest(expr, force=True), _split_roots(expr)]
    if simplified is not None:
        forms += [simplified, sympy.powdenest(simplified, force=True), _split_roots(simplified)]
    for form in sorted(forms, key=complexity_of):
        if form == expr:
            return form
        if any(r.q > 1000 or abs(r.p) > 100_000 for r in form.atoms(sympy.Rational)):
            continue  # simplify turned a float into a rational (28472/4531): not a name
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
        root = _positive_root(num) / _positive_root(den)
        return root if node.exp > 0 else 1 / root

    try:
        return expr.replace(lambda n: isinstance(n, sympy.Pow), split)
    except (TypeError, ValueError, ArithmeticError):
        return expr


def _positive_root(e: sympy.Expr) -> sympy.Expr:
    """√e with its symbols taken as positive (√(4x²) = 2x), in the original symbols."""
    positive = {s: sympy.Dummy(s.name, positive=True) for s in e.free_symbols}
    back = {d: s for s, d in positive.items()}
    return sympy.powdenest(sympy.sqrt(e.xreplace(positive)), force=True).xreplace(back)


def _normalise_sums(expr: sympy.Expr) -> sympy.Expr:
    """Each fitted sum under a root, in a denominator or beside a fitted factor scaled by
    one of its fitted coefficients, the scale moved outside: √(33.8·a² − 67.5·a·b +
    33.9·b²) becomes 5.81·√(a² − 2.0·a·b + 1.005·b²), 0.574·x·(1.589 − 1.589·π₁) becomes
    0.912·x·(1 − 1.0·π₁): their inner constants are ratios a teacher's noise leaves near
    simple numbers (a joint refit spreads the scale over all of them, and each part
    snapped alone gives 29/(8π)·77/(9π²) for 1)."""
    def scale(node: sympy.Expr) -> sympy.Expr:
        if not (isinstance(node, sympy.Pow) and isinstance(node.base, sympy.Add)
                and not (node.exp.is_Integer and node.exp > 0)):
            return node
        c = _sum_scale(node.base)
        c = abs(c) if c is not None and not node.exp.is_Integer else c
        if c is None or c == 1:
            return node
        outside = c ** float(node.exp)
        if not math.isfinite(outside):
            return node
        # Term by term, not expanded: (y₂ − y₁)² stays a square.
        inside = sympy.Add(*(t / c for t in sympy.Add.make_args(node.base)))
        return sympy.Float(outside) * inside ** node.exp

    def scale_product(node: sympy.Expr) -> sympy.Expr:
        coefficient, rest = node.as_coeff_Mul() if isinstance(node, sympy.Mul) else (1, node)
        if not isinstance(coefficient, sympy.Float):
            return node
        outside, factors = float(coefficient), []
        for factor in sympy.Mul.make_args(rest):
            c = _sum_scale(factor) if isinstance(factor, sympy.Add) else None
            if c is not None and c != 1:
                factor = sympy.Add(*(t / c for t in sympy.Add.make_args(factor)))
                outside *= c
            factors.append(factor)
        return sympy.Float(outside) * sympy.Mul(*factors) if math.isfinite(outside) else node

    try:
        expr = expr.replace(lambda n: isinstance(n, sympy.Pow), scale)
        return expr.replace(lambda n: isinstance(n, sympy.Mul), scale_product)
    except (TypeError, ValueError, ArithmeticError):
        return expr


def _sum_scale(total: sympy.Expr) -> float | None:
    """The fitted coefficient of `total` that leaves its coefficients' ratios nearest small
    whole numbers ([1, −2, 1.005] rather than [0.5, −1, 0.5025]; a large ratio counts as
    far from any); None when it has no fitted coefficient."""
    coefficients = [t.as_coeff_Mul()[0] for t in sympy.Add.make_args(total)]
    floats = [c for c in coefficients if isinstance(c, sympy.Float) and c != 0]
    if not floats:
        return None
    values = [float(f) for f in coefficients if f != 0]

    def distance(scale: float) -> float:
        return sum(min(abs(v / scale - round(v / scale)), 0.5) if abs(v / scale) <= 12.5
                   else 0.5 for v in values)

    return min((float(f) for f in floats), key=lambda f: (distance(f), -abs(f)))


def _nested_floats(expr: sympy.Expr) -> bool:
    """A float multiplies a sum that has floats of its own."""
    return any(isinstance(node, sympy.Mul) and node.atoms(sympy.Float)
               and any(isinstance(arg, sympy.Float) for arg in node.args)
               and any(isinstance(arg, sympy.Add) and arg.atoms(sympy.Float)
                       for arg in node.args)
               for node in sympy.preorder_traversal(expr))


def _snap_floats(expr: sympy.Expr, x: Mapping[str, np.ndarray], y: np.ndarray,
                 tolerance: float, allowed: float, deadline: float | None, *,
                 refit: bool = False) -> sympy.Expr:
    """Each float of `expr`, the largest first, replaced by the simplest option that fits
    within `allowed` (kept when none does); with `refit`, the floats left are refitted
    after each replacement (`refine_constants`)."""
    tried: set[float] = set()
    for _ in range(2 * len(expr.atoms(sympy.Float))):
        if deadline is not None and time.monotonic() > deadline:
            return expr
        # Read the floats afresh each time: replacing one can fold others into new ones
        # (1.0·(−6.4·m₁ − 6.4·m₂) distributes, and the old −6.4 atoms are gone).
        # (Refitting: those nearest ±1 first, a sum's ratios before the scale that the
        # refit then settles.)
        left = sorted((f for f in expr.atoms(sympy.Float) if float(f) not in tried),
                      key=(lambda f: abs(math.log(abs(float(f)) or 1e-300))) if refit
                      else (lambda f: -abs(float(f))))
        if not left:
            break
        f = left[0]
        tried.add(float(f))
        value = float(f)
        options: list[tuple[float, sympy.Expr]] = [(0, sympy.Integer(0))]
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
        # A constant the teacher barely determines (a small term's weight, 3 % off): the
        # nearest halves, thirds and quarters too, judged by the fit like the others.
        for denominator in (1, 2, 3, 4):
            near = round(value * denominator)
            if near and abs(near / denominator - value) <= NEARBY * abs(value):
                options.append((abs(near) + denominator,
                                sympy.Rational(near, denominator)))
        if refit:  # description length: 32/5 (7.4 bits) is simpler than 23·√(2π)/9 (10.8)
            # Numbers closer to the refitted value than the teacher can tell apart (32/5
            # and √41 = 6.4031 for 6.4064): the fit's preference between them is the
            # teacher's bias, and the shortest one is taken. The closest p/q (141/22) is
            # offered above; the one with the smallest q in reach is offered here.
            window = ALIKE * max(1e-6, tolerance) * abs(value)
            options += _simplest_within(value, window)
            options = [(_bits(option), option) for _, option in options]
            alike: set[sympy.Expr] | None = {o for _, o in options
                                             if o != 0 and abs(float(o) - value) <= window}
        else:
            alike = None
        # The overall scale, a float other than this one, is refitted after each snap.
        scale = expr.as_coeff_Mul()[0]
        snapped = _best_option(expr, f, options, x, y, allowed, alike=alike,
                               rescaled=refit and isinstance(scale, sympy.Float) and scale != f)
        if refit and snapped != expr and snapped.atoms(sympy.Float):
            snapped = refine_constants(snapped, x, y, deadline=deadline)
        expr = snapped
    return expr
