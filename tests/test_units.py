"""Units: pint unit strings, and the dimension and scale of equations."""

from __future__ import annotations

import pytest

from registry.core.expr import parse_expression
from registry.core.units import check_equation_units, dimension_of, parse_unit, same_unit
from registry.errors import UnitError

GRAVITY_UNITS = {"G": "m^3 kg^-1 s^-2", "m1": "kg", "m2": "kg", "r": "m"}
WHERE = "modules/gravity/module.yaml: equation.F"


# --------------------------------------------------------------------------- parse_unit


@pytest.mark.parametrize(
    ("text", "dimension"),
    [
        ("m^3 kg^-1 s^-2", "[length] ** 3 / [mass] / [time] ** 2"),
        ("N", "[mass] * [length] / [time] ** 2"),
        ("  N  ", "[mass] * [length] / [time] ** 2"),
        ("kN", "[mass] * [length] / [time] ** 2"),
        ("kg m/s^2", "[mass] * [length] / [time] ** 2"),
        ("kg/m^3", "[mass] / [length] ** 3"),
        ("m/s/s", "[length] / [time] ** 2"),
        ("1/s", "1 / [time]"),
        ("m^0.5", "[length] ** 0.5"),
        ("m^(1/2)", "[length] ** 0.5"),
        ("µm", "[length]"),
        ("K", "[temperature]"),
        ("1", "dimensionless"),
        ("", "dimensionless"),
        ("dimensionless", "dimensionless"),
        ("percent", "dimensionless"),
    ],
)
def test_parse_unit_gives_the_dimension(text: str, dimension: str) -> None:
    unit = parse_unit(text)

    assert dimension_of(unit) == dimension


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("furlongs_per_blorp",
         "inputs.m1.unit: unknown unit 'furlongs_per_blorp' (UndefinedUnitError: "
         "'furlongs_per_blorp' is not defined in the unit registry); use a pint unit such as "
         "`m`, `kg/m^3` or `1`"),
        ("2 m", "inputs.m1.unit: unknown unit '2 m' (ValueError: Unit expression cannot have a "
                "scaling factor.)"),
        ("m;rm", "inputs.m1.unit: 'm;rm' is not a unit string; write e.g. `m^3 kg^-1 s^-2`"),
        ("__import__('os')", "inputs.m1.unit: \"__import__('os')\" is not a unit string"),
        ("m" * 121, f"inputs.m1.unit: {'m' * 40!r} is not a unit string"),
        ("degC", "inputs.m1.unit: offset unit 'degC' cannot be multiplied; use kelvin (`K`)"),
        ("degF", "inputs.m1.unit: offset unit 'degF' cannot be multiplied; use kelvin (`K`)"),
    ],
)
def test_parse_unit_refuses_naming_where(text: str, message: str) -> None:
    with pytest.raises(UnitError) as caught:
        parse_unit(text, where="inputs.m1.unit")

    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        ("N", "kg m/s^2", True),
        ("J", "N m", True),
        ("Hz", "1/s", True),
        ("1", "", True),
        ("N", "kN", False),
        ("N", "m", False),
        ("percent", "1", False),
    ],
)
def test_same_unit_needs_dimension_and_scale(a: str, b: str, same: bool) -> None:
    assert same_unit(a, b) is same


# --------------------------------------------------------------------------- equations


def _check(text: str, output_unit: str, symbols: dict[str, str] | None = None) -> None:
    """`check_equation_units` on `text`: returns None, or raises `UnitError`."""
    symbols = GRAVITY_UNITS if symbols is None else symbols
    expr = parse_expression(text, names=list(symbols))
    return check_equation_units(
        expr, symbols=symbols, output="F", output_unit=output_unit, where=WHERE
    )


@pytest.mark.parametrize(
    ("text", "output_unit", "symbols"),
    [
        ("G*m1*m2/r**2", "N", None),
        ("G*m1*m2/r**2", "kg m/s^2", None),
        ("0.5*rho*C_d*A*v**2", "N", {"rho": "kg/m^3", "C_d": "1", "A": "m^2", "v": "m/s"}),
        ("sqrt(a**2)", "m", {"a": "m"}),
        ("sqrt(a)", "m^0.5", {"a": "m"}),
        ("a**(1/3)", "m", {"a": "m^3"}),
        ("a/a", "1", {"a": "m"}),
        ("abs(a)", "m", {"a": "m"}),
        ("pi*a", "m", {"a": "m"}),
        ("2*a + a", "m", {"a": "m"}),
        ("a + 1", "1", {"a": "1"}),
        ("exp(a) + sin(a/b)", "1", {"a": "1", "b": "1"}),
        ("sin(a/b)", "1", {"a": "m", "b": "km"}),  # a ratio of lengths is dimensionless
        ("a**b", "1", {"a": "1", "b": "1"}),
        ("E**a", "1", {"a": "1"}),
        ("a*b", "J", {"a": "N", "b": "m"}),
        ("a", "1/s", {"a": "Hz"}),
    ],
)
def test_check_equation_units_accepts(
    text: str, output_unit: str, symbols: dict[str, str] | None
) -> None:
    assert _check(text, output_unit, symbols) is None


@pytest.mark.parametrize(
    ("text", "output_unit", "symbols", "message"),
    [
        ("m1*r", "N", None,
         f"{WHERE}: `F` must have dimension [mass] * [length] / [time] ** 2 (unit N), but the "
         "expression has dimension [mass] * [length]; fix the expression or the declared units"),
        ("sqrt(a**2)", "s", {"a": "m"},
         f"{WHERE}: `F` must have dimension [time] (unit s), but the expression has dimension "
         "[length]"),
        ("G*m1*m2/r**2", "kN", None,
         f"{WHERE}: the expression is in kg * m / s ** 2 = 0.001 kN, not kN; multiply it by a "
         "constant of 0.001 or declare the output in kg * m / s ** 2"),
        ("G*m1*m2/r**2", "mN", None,
         f"{WHERE}: the expression is in kg * m / s ** 2 = 1000 mN, not mN; multiply it by a "
         "constant of 1000 or declare the output in kg * m / s ** 2"),
        ("a", "km", {"a": "m"},
         f"{WHERE}: the expression is in m = 0.001 km, not km; multiply it by a constant of 0.001"),
        ("a + b", "m", {"a": "m", "b": "s"},
         f"{WHERE}: cannot add `a` ([length]) and `b` ([time]); terms of a sum need the same "
         "dimension"),
        ("a + 1", "m", {"a": "m"},
         f"{WHERE}: cannot add `1` (dimensionless) and `a` ([length]); terms of a sum need the "
         "same dimension"),
        ("a + b", "m", {"a": "m", "b": "km"},
         f"{WHERE}: cannot add `a` in m and `b` in km; convert one of them"),
        ("exp(a)", "1", {"a": "m"},
         f"{WHERE}: the argument of `exp` must be dimensionless, but `a` has dimension [length]"),
        ("E**a", "1", {"a": "m"},
         f"{WHERE}: the argument of `exp` must be dimensionless, but `a` has dimension [length]"),
        ("sin(a)", "1", {"a": "m"},
         f"{WHERE}: the argument of `sin` must be dimensionless, but `a` has dimension [length]"),
        ("2**a", "1", {"a": "s"},
         f"{WHERE}: an exponent must be dimensionless, but `a` has dimension [time]"),
        ("a**b", "m", {"a": "m", "b": "1"},
         f"{WHERE}: the base of a non-constant power must be dimensionless, but `a` has dimension "
         "[length]"),
        ("a", "blorp", {"a": "m"},
         f"{WHERE}: unit of output `F`: unknown unit 'blorp'"),
        ("a", "m", {"a": "blorp"},
         f"{WHERE}: unit of `a`: unknown unit 'blorp'"),
    ],
)
def test_check_equation_units_refuses(
    text: str, output_unit: str, symbols: dict[str, str] | None, message: str
) -> None:
    with pytest.raises(UnitError) as caught:
        _check(text, output_unit, symbols)

    assert message in str(caught.value)


def test_a_symbol_without_a_unit_is_refused() -> None:
    expr = parse_expression("q*2", names=["q"])

    with pytest.raises(UnitError, match=r"^W: `q` has no declared unit$"):
        check_equation_units(expr, symbols={}, output="F", output_unit="m", where="W")


def test_a_float_exponent_is_a_constant_power() -> None:
    assert _check("a**0.5", "m^0.5", {"a": "m"}) is None
