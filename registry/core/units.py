"""Units: parse unit strings with pint and check the dimension of equations.

Unit strings follow pint's grammar with spaces for products and ``^`` for
powers: ``"m^3 kg^-1 s^-2"``, ``"N"``, ``"kg/m^3"``; ``"1"`` (or ``""``) means
dimensionless. An equation is evaluated on the plain numbers of its inputs in
their declared units, so besides the dimension the *scale* must match too: an
expression in newtons for an output declared in kilonewtons is refused.

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
_UNIT_TEXT = re.compile(r"^[A-Za-z0-9_ .*/^()\-+µΩ°]*$")
_SCALE_TOLERANCE = 1e-9


@functools.cache
def unit_registry() -> pint.UnitRegistry:
    """The one pint registry (built once: it takes a few hundred milliseconds)."""
    import pint

    return pint.UnitRegistry(autoconvert_offset_to_baseunit=False)


@functools.lru_cache(maxsize=1024)
def parse_unit(text: str, *, where: str = "unit") -> pint.Unit:
    """Parse a unit string; ``"1"`` and ``""`` are dimensionless.

    Raises `UnitError` naming `where` when pint does not know the unit.
    """
    ureg = unit_registry()
    stripped = str(text).strip()
    if stripped in ("", "1", "dimensionless"):
        return ureg.dimensionless
    if len(stripped) > MAX_UNIT_LENGTH or not _UNIT_TEXT.match(stripped):
        raise UnitError(f"{where}: {stripped[:40]!r} is not a unit string; "
                        "write e.g. `m^3 kg^-1 s^-2`")
    try:
        unit = ureg.parse_units(stripped)
    except Exception as exc:  # pint raises several unrelated classes for bad text
        raise UnitError(f"{where}: unknown unit {stripped!r} ({type(exc).__name__}: {exc}); "
                        "use a pint unit such as `m`, `kg/m^3` or `1`") from None
    if not ureg.Quantity(1, unit)._ok_for_muldiv():
        raise UnitError(f"{where}: offset unit {stripped!r} cannot be multiplied; use kelvin (`K`)")
    return unit


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
