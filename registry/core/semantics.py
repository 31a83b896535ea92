"""Checks a manifest's meaning beyond its schema: equations parse, units agree.

The schema (`registry.core.manifest`) checks shapes; this module checks that every
equation is in the safe grammar, uses only declared names, and has the
dimension and scale of its output.

Example:
    >>> equations = validate_equations(manifest, source="modules/gravity/module.yaml")
    >>> equations["F"]
    G*m1*m2/r**2
"""

from __future__ import annotations

import sympy

from registry.core.expr import parse_expression
from registry.core.manifest import Manifest
from registry.core.units import check_equation_units, parse_unit

__all__ = ["validate_equations", "validate_units"]


def validate_equations(manifest: Manifest, *, source: str) -> dict[str, sympy.Expr]:
    """Parse each `equation` entry; raises `ExpressionError` or `UnitError`."""
    validate_units(manifest, source=source)
    if manifest.equation is None:
        return {}
    names = [*manifest.inputs, *manifest.constants]
    symbols = {n: p.unit for n, p in manifest.inputs.items()}
    symbols.update({n: c.unit for n, c in manifest.constants.items()})
    parsed = {}
    for output, text in manifest.equation.items():
        where = f"{source}: equation.{output}"
        expr = parse_expression(text, names=names, where=where)
        check_equation_units(expr, symbols=symbols, output=output,
                             output_unit=manifest.outputs[output].unit, where=where)
        parsed[output] = expr
    return parsed


def validate_units(manifest: Manifest, *, source: str) -> None:
    """Every declared unit string is one pint knows."""
    for section, ports in (("inputs", manifest.inputs), ("outputs", manifest.outputs)):
        for name, port in ports.items():
            parse_unit(port.unit, where=f"{source}: {section}.{name}.unit")
    for name, constant in manifest.constants.items():
        parse_unit(constant.unit, where=f"{source}: constants.{name}.unit")
