"""Dimensional analysis: Buckingham Π from the inputs' and output's units.

The output is written as a monomial with the output's units times a function
of dimensionless groups: `y = x1^p1 · … · xn^pn · f(Π1, …, Πk)`, where `p`
solves `D p = d_y` (D: the inputs' unit-exponent matrix) and each Π is an
integer vector of D's null space. The search then looks for `f` over k < n
variables.

Example:
    >>> reduce_dimensions({"L": "m", "g": "m/s^2"}, "s")
    DimensionalReduction(prefactor={'L': 1/2, 'g': -1/2}, groups=[])   # T = sqrt(L/g) · f()
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction
from functools import reduce
from itertools import combinations
from math import lcm

import numpy as np
import sympy

from registry.core.expr import symbol
from registry.core.units import parse_unit

__all__ = ["DimensionalReduction", "alternative_reductions", "reduce_dimensions"]


@dataclass(frozen=True)
class DimensionalReduction:
    """`y = Π_i x_i^prefactor[i] · f(groups)`, each group a product of integer powers."""

    prefactor: dict[str, Fraction]
    groups: list[dict[str, int]]

    def prefactor_values(self, x: Mapping[str, np.ndarray]) -> np.ndarray:
        out = np.ones_like(next(iter(x.values())), dtype=np.float64)
        for name, power in self.prefactor.items():
            if power:
                out = out * np.power(x[name], float(power))
        return out

    def group_values(self, x: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        values = []
        for group in self.groups:
            out = np.ones_like(next(iter(x.values())), dtype=np.float64)
            for name, power in group.items():
                out = out * np.power(x[name], float(power))
            values.append(out)
        return values

    def prefactor_expr(self) -> sympy.Expr:
        return sympy.Mul(*(symbol(n) ** sympy.Rational(p.numerator, p.denominator)
                           for n, p in self.prefactor.items() if p))

    def group_exprs(self) -> list[sympy.Expr]:
        return [sympy.Mul(*(symbol(n) ** p for n, p in g.items() if p)) for g in self.groups]


def _exponents(unit_text: str) -> dict[str, Fraction]:
    unit = parse_unit(unit_text)
    return {dim: Fraction(float(power)).limit_denominator(12)  # type: ignore[arg-type]
            for dim, power in unit.dimensionality.items()}


def reduce_dimensions(inputs: Mapping[str, str], output: str) -> DimensionalReduction | None:
    """The Π reduction, or None when the output's units cannot be built from the inputs'."""
    names = list(inputs)
    vectors = {n: _exponents(u) for n, u in inputs.items()}
    target = _exponents(output)
    dims = sorted({d for v in vectors.values() for d in v} | set(target))
    if not dims:  # everything dimensionless
        return DimensionalReduction({n: Fraction(0) for n in names}, [{n: 1} for n in names])
    matrix = sympy.Matrix([[sympy.Rational(vectors[n].get(d, 0)) for n in names] for d in dims])
    rhs = sympy.Matrix([sympy.Rational(target.get(d, 0)) for d in dims])
    try:
        solution, free = matrix.gauss_jordan_solve(rhs)
    except ValueError:
        return None
    particular = solution.subs({f: 0 for f in free})
    prefactor = {n: Fraction(int(sympy.fraction(v)[0]), int(sympy.fraction(v)[1]))
                 for n, v in zip(names, particular, strict=True)}
    groups = []
    for vector in matrix.nullspace():
        scale = reduce(lcm, (int(sympy.fraction(v)[1]) for v in vector), 1)
        ints = [int(v * scale) for v in vector]
        common = reduce(np.gcd, [abs(i) for i in ints if i]) or 1
        groups.append({n: i // int(common) for n, i in zip(names, ints, strict=True) if i})
    return DimensionalReduction(prefactor, groups)



def alternative_reductions(inputs: Mapping[str, str], output: str,
                           limit: int = 6) -> list[DimensionalReduction]:
    """Other Π reductions of the same problem, one per choice of repeating variables.

    The law is the same whichever inputs carry the output's units, but not equally
    simple: `m·c²/√(1 − v²/c²)` is `m·c²·f(v/c)` with a short f, and `m·v²·g(c/v)`
    with a long one. Each set of inputs whose units are independent and can build
    the output's gives `y = monomial(set) · f(Π_j)`, one Π per other input: that
    input divided by the monomial of the set with its units. Returned in input
    order of the sets, at most `limit`, the default reduction's first.
    """
    names = list(inputs)
    vectors = {n: _exponents(u) for n, u in inputs.items()}
    target = _exponents(output)
    dims = sorted({d for v in vectors.values() for d in v} | set(target))
    if not dims:
        return []

    def column(n: str) -> sympy.Matrix:
        return sympy.Matrix([sympy.Rational(vectors[n].get(d, 0)) for d in dims])

    full = sympy.Matrix.hstack(*(column(n) for n in names))
    rank = full.rank()
    rhs = sympy.Matrix([sympy.Rational(target.get(d, 0)) for d in dims])
    out: list[DimensionalReduction] = []
    for basis in combinations(names, rank):
        block = sympy.Matrix.hstack(*(column(n) for n in basis))
        if block.rank() < rank:
            continue
        try:
            solution, free = block.gauss_jordan_solve(rhs)
        except ValueError:
            continue
        if free.shape[0]:
            continue
        prefactor = {n: Fraction(0) for n in names}
        for n, v in zip(basis, solution, strict=True):
            prefactor[n] = _fraction(v)
        groups = []
        for other in (n for n in names if n not in basis):
            powers, _ = block.gauss_jordan_solve(column(other))
            group = {other: Fraction(1)}
            group.update({n: -_fraction(v) for n, v in zip(basis, powers, strict=True) if v})
            scale = reduce(lcm, (f.denominator for f in group.values()), 1)
            groups.append({n: int(f * scale) for n, f in group.items() if f})
        out.append(DimensionalReduction(prefactor, groups))
        if len(out) >= limit:
            break
    return out


def _fraction(value: sympy.Expr) -> Fraction:
    numerator, denominator = sympy.fraction(sympy.nsimplify(value))
    return Fraction(int(numerator), int(denominator))
