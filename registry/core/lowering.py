"""Lowering: a sympy expression as the tree of primitive ops that torch will run.

Each op evaluates its arguments once (`square` is `b*b` with `b` computed once).

Equation modules execute this tree, and the FLOP counter weighs it, so the
count from the equation and the count measured in torch agree by construction.
Lowering picks cheap forms: `x**2` → `x*x`, `a*b/(c*d)` → one division,
`x**-0.5` → `rsqrt`, `a - b` → one subtraction (not `a + (-1)*b`).

Example:
    >>> lower(parse_expression("G*m1*m2/r**2", names=["G", "m1", "m2", "r"]))
    Op('div', (Op('mul', (Op('mul', (Var('G'), Var('m1'))), Var('m2'))), Op('square', (Var('r'),))))
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy

from registry.errors import ExpressionError

__all__ = ["FUNCTION_OPS", "Const", "Node", "Op", "Var", "lower", "walk_ops"]


@dataclass(frozen=True)
class Const:
    value: float


@dataclass(frozen=True)
class Var:
    name: str


@dataclass(frozen=True)
class Op:
    """A primitive elementwise op (add sub mul div neg reciprocal square cube sqrt rsqrt pow)
    or a function (exp log sin ... abs)."""

    op: str
    args: tuple[Node, ...]


Node = Const | Var | Op

FUNCTION_OPS: dict[type, str] = {
    sympy.exp: "exp", sympy.log: "log", sympy.sin: "sin", sympy.cos: "cos", sympy.tan: "tan",
    sympy.asin: "asin", sympy.acos: "acos", sympy.atan: "atan", sympy.sinh: "sinh",
    sympy.cosh: "cosh", sympy.tanh: "tanh", sympy.Abs: "abs",
}


def lower(expr: sympy.Expr) -> Node:
    """The op tree for `expr`; raises `ExpressionError` for a node type it cannot lower."""
    if expr.is_number:  # any constant-valued tree, e.g. 2*pi or exp(2)
        return Const(float(expr))
    if expr.is_Symbol:
        return Var(expr.name)
    if isinstance(expr, sympy.Add):
        return _lower_add(expr)
    if isinstance(expr, sympy.Mul):
        return _lower_mul(expr)
    if isinstance(expr, sympy.Pow):
        return _lower_pow(expr.base, expr.exp)
    op = FUNCTION_OPS.get(type(expr))
    if op is not None:
        return Op(op, (lower(expr.args[0]),))
    raise ExpressionError(f"no torch implementation for sympy `{type(expr).__name__}` in `{expr}`; "
                          "add one to `registry.core.lowering.FUNCTION_OPS` and the torch op table")


def _lower_add(expr: sympy.Add) -> Node:
    # Constant terms (1 + pi) fold into one number: no op is spent on them.
    constant = sum(float(t) for t in expr.args if t.is_number)
    terms = [t for t in expr.args if not t.is_number]
    if constant:
        terms.append(sympy.Float(constant))
    positive = [t for t in terms if not t.could_extract_minus_sign()]
    negative = [-t for t in terms if t.could_extract_minus_sign()]
    result = lower(positive[0]) if positive else Op("neg", (lower(negative.pop(0)),))
    for term in positive[1:]:
        result = Op("add", (result, lower(term)))
    for term in negative:
        result = Op("sub", (result, lower(term)))
    return result


def _lower_mul(expr: sympy.Mul) -> Node:
    coeff, factors = expr.as_coeff_mul()
    # Constant factors (2*pi) fold into the coefficient: no op is spent on them.
    number = float(coeff) * float(sympy.Mul(*(f for f in factors if f.is_number)))
    coeff = sympy.Float(number) if number != int(number) else sympy.Integer(int(number))
    factors = tuple(f for f in factors if not f.is_number)
    numerator, denominator = [], []
    for factor in factors:
        if isinstance(factor, sympy.Pow) and factor.exp.is_Number and factor.exp.is_negative:
            denominator.append(_lower_pow(factor.base, -factor.exp))
        else:
            numerator.append(lower(factor))
    sign = -1.0 if coeff.is_negative else 1.0
    magnitude = float(abs(coeff))
    if magnitude != 1.0:
        numerator.insert(0, Const(magnitude))
    result = _product(numerator) if numerator else None
    if denominator:
        below = Op("reciprocal", (_product(denominator),))
        if result is None:
            result = below
        elif isinstance(result, Const):  # `c / x` runs as reciprocal then multiply in torch
            result = Op("mul", (below, result))
        else:
            result = Op("div", (result, below.args[0]))
    assert result is not None  # a Mul has at least one non-coefficient factor
    return Op("neg", (result,)) if sign < 0 else result


def _product(nodes: list[Node]) -> Node:
    result = nodes[0]
    for node in nodes[1:]:
        result = Op("mul", (result, node))
    return result


def _lower_pow(base: sympy.Expr, exponent: sympy.Expr) -> Node:
    b = lower(base)
    if not exponent.is_Number:
        return Op("pow", (b, lower(exponent)))
    if exponent == 1:
        return b
    if exponent == 2:
        return Op("square", (b,))
    if exponent == 3:
        return Op("cube", (b,))
    if exponent == sympy.Rational(1, 2):
        return Op("sqrt", (b,))
    if exponent == sympy.Rational(-1, 2):
        return Op("rsqrt", (b,))
    if exponent.is_negative:
        return Op("reciprocal", (_lower_pow(base, -exponent),))
    return Op("pow", (b, Const(float(exponent))))


def walk_ops(node: Node) -> list[Op]:
    """Every op of the tree (shared subtrees counted each time they are used)."""
    if not isinstance(node, Op):
        return []
    found = [node]
    for arg in node.args:
        found.extend(walk_ops(arg))
    return found
