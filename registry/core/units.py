"""Units: parse unit strings with pint and check the dimension of equations.

Unit strings follow pint's grammar with spaces for products and ``^`` for
powers: ``"m^3 kg^-1 s^-2"``, ``"N"``, ``"kg/m^3"``; ``"1"`` (or ``""``) means
dimensionless. Exponents are numbers (or ``(1/2)``) within ±12, parentheses nest at most
4 deep, and a unit has at most 16 factors: checked before pint sees the text, which
would otherwise compute ``m^(9^9^9)`` as a Python integer.

An equation is evaluated on the plain numbers of its inputs in their declared
units, so besides the dimension the *scale* must match too: an expression in
newtons for an output declared in kilonewtons is refused.

Example:
    >>> check_equation_units(expr, inputs={"m1": "kg", ...}, output="F", output_unit="N")
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import sympy

from registry.errors import UnitError

if TYPE_CHECKING:
    import pint

__all__ = ["check_equation_units", "dimension_of", "parse_unit", "same_unit", "unit_of_expression",
           "unit_registry", "units_match"]

MAX_UNIT_LENGTH = 120
# Bounds checked on the text before pint sees it (pint evaluates `9^9^9` as a Python
# integer): an exponent is a number (or `(1/2)`) within ±MAX_UNIT_EXPONENT, and so is a
# factor's power multiplied out through parentheses; no `m^2^3`.
MAX_UNIT_EXPONENT = 12
MAX_UNIT_NESTING = 4  # parentheses
MAX_UNIT_FACTORS = 16  # names and numbers
MAX_UNIT_NUMBER = 15  # characters of one numeric literal (and its value below 10^15)
_UNIT_TEXT = re.compile(r"^[A-Za-z0-9_ .*/^()\-+µΩ°]*$")
_UNIT_TOKEN = re.compile(
    r"\s*(?:(?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_µΩ°][\wµΩ°]*)"
    r"|(?P<op>\*\*|[*/^()+\-.]))", re.ASCII)
_SCALE_TOLERANCE = 1e-9


@functools.cache
def unit_registry() -> pint.UnitRegistry:
    """The one pint registry (built once: it takes a few hundred milliseconds)."""
    import pint

    return pint.UnitRegistry(autoconvert_offset_to_baseunit=False)


@functools.lru_cache(maxsize=1024)
def parse_unit(text: str, *, where: str = "unit") -> pint.Unit:
    """Parse a unit string; ``"1"`` and ``""`` are dimensionless.

    Raises `UnitError` naming `where` when pint does not know the unit, or the text
    breaks a bound (`MAX_UNIT_EXPONENT`, `MAX_UNIT_NESTING`, `MAX_UNIT_FACTORS`,
    `MAX_UNIT_NUMBER`).
    """
    ureg = unit_registry()
    stripped = str(text).strip()
    if stripped in ("", "1", "dimensionless"):
        return ureg.dimensionless
    if len(stripped) > MAX_UNIT_LENGTH or not _UNIT_TEXT.match(stripped):
        raise UnitError(f"{where}: {stripped[:40]!r} is not a unit string; "
                        "write e.g. `m^3 kg^-1 s^-2`")
    _check_bounds(stripped, where)
    try:
        unit = ureg.parse_units(stripped)
    except Exception as exc:  # pint raises several unrelated classes for bad text
        raise UnitError(f"{where}: unknown unit {stripped!r} ({type(exc).__name__}: {exc}); "
                        "use a pint unit such as `m`, `kg/m^3` or `1`") from None
    if not ureg.Quantity(1, unit)._ok_for_muldiv():
        raise UnitError(f"{where}: offset unit {stripped!r} cannot be multiplied; use kelvin (`K`)")
    return unit


def _check_bounds(text: str, where: str) -> None:
    """Refuse unit text whose evaluation by pint is unbounded; `UnitError` names the problem.

    The tokens checked are those pint evaluates: after its own rewriting, which turns
    `square m` into `m**2` and `cubic m^4` into `m**3**4` (a chained exponent).
    """
    from pint.util import string_preprocessor

    _UnitBounds(text, string_preprocessor(text), where).check()


class _UnitBounds:
    """One pass over the tokens of a unit string, tracking parentheses with a stack.

    Each group records the largest power of a factor in it; a `^` after `)` multiplies
    the group's. Pint then parses text whose powers and numbers are all small.
    """

    def __init__(self, text: str, rewritten: str, where: str) -> None:
        self.text, self.rewritten, self.where = text, rewritten, where
        self.tokens = self._tokenize()
        self.at = 0

    def refuse(self, problem: str, fix: str) -> UnitError:
        return UnitError(f"{self.where}: {self.text!r}: {problem}; {fix}")

    def _tokenize(self) -> list[tuple[str, str]]:
        tokens: list[tuple[str, str]] = []
        at, text = 0, self.rewritten
        while at < len(text):
            match = _UNIT_TOKEN.match(text, at)
            if match is None:
                if text[at:].strip() == "":
                    break
                raise self.refuse(f"unexpected {text[at]!r}", "write e.g. `m^3 kg^-1 s^-2`")
            kind = str(match.lastgroup)
            tokens.append((kind, match[kind]))
            at = match.end()
        if sum(kind in ("number", "name") for kind, _ in tokens) > MAX_UNIT_FACTORS:
            raise self.refuse(f"more than {MAX_UNIT_FACTORS} factors",
                              "write the unit in fewer, e.g. `kg m^2 s^-2` or `J`")
        for kind, token in tokens:
            if kind == "number":
                self.number(token)
        return tokens

    def number(self, token: str) -> float:
        value = float(token)
        if len(token) > MAX_UNIT_NUMBER or not abs(value) < 10.0 ** MAX_UNIT_NUMBER:
            raise self.refuse(f"number {token[:20]!r} is too long or too large",
                              "units hold short numbers only, as in `1/s` or `m^(1/2)`")
        return value

    def peek(self) -> str:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else ""

    def take(self) -> str:
        token = self.peek()
        self.at += 1
        return token

    def check(self) -> None:
        groups = [0.0]  # per open parenthesis: the largest |power| of a factor inside
        while self.at < len(self.tokens):
            kind, token = self.tokens[self.at]
            self.at += 1
            if token == "(":
                if len(groups) > MAX_UNIT_NESTING:
                    raise self.refuse(f"parentheses nest more than {MAX_UNIT_NESTING} deep",
                                      "write the unit flat, e.g. `kg m^2 s^-2`")
                groups.append(0.0)
            elif token == ")":
                if len(groups) == 1:
                    raise self.refuse("unbalanced `)`", "remove it or open it with `(`")
                inner = groups.pop()
                self.factor(groups, inner * self.exponent())
            elif kind in ("number", "name"):
                self.factor(groups, self.exponent())
            elif token in ("^", "**"):
                raise self.refuse(f"`{token}` follows no unit", "write e.g. `m^2`")
        if len(groups) > 1:
            raise self.refuse("unclosed `(`", "close it with `)`")

    def factor(self, groups: list[float], power: float) -> None:
        if abs(power) > MAX_UNIT_EXPONENT:
            raise self.refuse(f"a power of {power:g} (multiplied out through parentheses) "
                              f"is beyond ±{MAX_UNIT_EXPONENT}",
                              "write each factor once, e.g. `m^3 kg^-1 s^-2`")
        groups[-1] = max(groups[-1], abs(power))

    def exponent(self) -> float:
        """The power after a factor: 1 without `^`; else a number or `(p/q)` within bounds."""
        if self.peek() not in ("^", "**"):
            return 1.0
        self.take()
        wrapped = self.peek() == "("
        if wrapped:
            self.take()
        value = self.signed()
        if wrapped and self.peek() == "/":
            self.take()
            denominator = self.signed()
            value = value / denominator if denominator else float("inf")
        if (wrapped and self.take() != ")") or abs(value) > MAX_UNIT_EXPONENT:
            raise self.refuse(f"exponents are numbers within ±{MAX_UNIT_EXPONENT} "
                              "(or a fraction such as `(1/2)`)", "write e.g. `m^3 kg^-1 s^-2`")
        if self.peek() in ("^", "**"):
            raise self.refuse("chained exponents such as `m^2^3`",
                              "write one exponent per factor, e.g. `m^6`")
        return value

    def signed(self) -> float:
        sign = -1.0 if self.peek() == "-" else 1.0
        if self.peek() in ("-", "+"):
            self.take()
        if self.at < len(self.tokens) and self.tokens[self.at][0] == "number":
            return sign * self.number(self.take())
        return float("inf")  # not a number: refused by the caller


_BASE_ORDER = ("[mass]", "[length]", "[time]", "[current]", "[temperature]", "[substance]",
               "[luminosity]")


def dimension_of(unit: pint.Unit) -> str:
    """Dimensionality in a fixed order, e.g. ``[mass] * [length] / [time] ** 2``.

    (pint's own string follows the order dimensions were first met, which varies.)
    """
    dims = {name: float(power_) for name, power_ in unit.dimensionality.items()}  # type: ignore[arg-type]
    if not dims:
        return "dimensionless"

    def rank(name: str) -> tuple[int, str]:
        return (_BASE_ORDER.index(name) if name in _BASE_ORDER else len(_BASE_ORDER), name)

    def power(name: str, exponent: float) -> str:
        return name if exponent == 1 else f"{name} ** {exponent:g}"

    ordered = sorted(dims, key=rank)
    above = [power(d, dims[d]) for d in ordered if dims[d] > 0]
    below = [power(d, -dims[d]) for d in ordered if dims[d] < 0]
    return " / ".join([" * ".join(above) or "1", *below])


def same_unit(a: str, b: str, *, where: str = "unit") -> bool:
    """True when two unit strings are the same dimension *and* scale (`N` and `kg m/s^2`)."""
    return units_match(parse_unit(a, where=where), parse_unit(b, where=where))


def units_match(actual: pint.Unit, expected: pint.Unit) -> bool:
    """Same dimension and scale (a value in `actual` can be used as `expected` unchanged)."""
    return actual.dimensionality == expected.dimensionality and abs(
        _scale(actual, expected) - 1.0) < _SCALE_TOLERANCE


def _scale(actual: pint.Unit, expected: pint.Unit) -> float:
    return float(unit_registry().Quantity(1.0, actual).to(expected).magnitude)


def unit_of_expression(expr: sympy.Expr, units: Mapping[str, pint.Unit], *,
                       where: str = "expression") -> pint.Unit:
    """The pint unit of `expr` given the units of its symbols; `UnitError` if inconsistent."""
    return _UnitWalker(units, where).unit_of(expr)


def check_equation_units(
    expr: sympy.Expr,
    *,
    symbols: Mapping[str, str],
    output: str,
    output_unit: str,
    where: str = "equation",
) -> None:
    """Check that `expr`, with `symbols` in the given units, has `output_unit`.

    Raises `UnitError` naming the expected and the actual dimension (or the
    scale factor when only the scale differs).
    """
    units = {name: parse_unit(u, where=f"{where}: unit of `{name}`") for name, u in symbols.items()}
    expected = parse_unit(output_unit, where=f"{where}: unit of output `{output}`")
    actual = _UnitWalker(units, where).unit_of(expr)
    if actual.dimensionality != expected.dimensionality:
        raise UnitError(
            f"{where}: `{output}` must have dimension {dimension_of(expected)} "
            f"(unit {output_unit}), but the expression has dimension {dimension_of(actual)}; "
            "fix the expression or the declared units"
        )
    factor = _scale(actual, expected)
    if abs(factor - 1.0) > _SCALE_TOLERANCE:
        raise UnitError(
            f"{where}: the expression is in {actual:~} = {factor:g} {output_unit}, "
            f"not {output_unit}; "
            f"multiply it by a constant of {factor:g} or declare the output in {actual:~}"
        )


class _UnitWalker:
    """Computes the pint unit of a sympy tree whose symbols have known units."""

    def __init__(self, units: Mapping[str, pint.Unit], where: str) -> None:
        self.units = units
        self.where = where
        self.one = unit_registry().dimensionless

    def unit_of(self, expr: Any) -> pint.Unit:
        if expr.is_Number or expr in (sympy.pi, sympy.E):
            return self.one
        if expr.is_Symbol:
            if expr.name not in self.units:
                raise UnitError(f"{self.where}: `{expr.name}` has no declared unit")
            return self.units[expr.name]
        if isinstance(expr, sympy.Add):
            return self.add(expr)
        if isinstance(expr, sympy.Mul):
            result = self.one
            for arg in expr.args:
                result = result * self.unit_of(arg)
            return result
        if isinstance(expr, sympy.Pow):
            return self.power(expr)
        if isinstance(expr, sympy.Abs):
            return self.unit_of(expr.args[0])
        if isinstance(expr, sympy.Function):
            for arg in expr.args:
                self.require_dimensionless(arg, f"the argument of `{expr.func.__name__}`")
            return self.one
        raise UnitError(f"{self.where}: cannot infer the unit of `{expr}`")

    def add(self, expr: sympy.Add) -> pint.Unit:
        terms = [(arg, self.unit_of(arg)) for arg in expr.args]
        first, first_unit = terms[0]
        for term, unit in terms[1:]:
            if unit.dimensionality != first_unit.dimensionality:
                raise UnitError(
                    f"{self.where}: cannot add `{first}` ({dimension_of(first_unit)}) and "
                    f"`{term}` ({dimension_of(unit)}); terms of a sum need the same dimension"
                )
            if abs(_scale(unit, first_unit) - 1.0) > _SCALE_TOLERANCE:
                raise UnitError(f"{self.where}: cannot add `{first}` in {first_unit:~} and "
                                f"`{term}` in {unit:~}; convert one of them")
        return first_unit

    def power(self, expr: sympy.Pow) -> pint.Unit:
        base, exponent = expr.args
        base_unit = self.unit_of(base)
        if exponent.is_Number:
            if base_unit.dimensionless:
                return self.one
            return base_unit ** float(exponent)  # type: ignore[return-value]
        self.require_dimensionless(exponent, "an exponent")
        self.require_dimensionless(base, "the base of a non-constant power")
        return self.one

    def require_dimensionless(self, expr: Any, what: str) -> None:
        unit = self.unit_of(expr)
        if not unit.dimensionless:
            raise UnitError(f"{self.where}: {what} must be dimensionless, but `{expr}` has "
                            f"dimension {dimension_of(unit)}")
