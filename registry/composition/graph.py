"""Wiring a compose spec into an evaluation plan, checked before any torch work.

Every name (composite input, constant, state variable, expression, node
output) is defined once; every module port is wired to an expression of the
right unit; the steps are ordered so each reads only what is computed before
it. Problems are `CompositionError`s that name the node and the port.

Example:
    >>> plan = build_plan(spec, resolve=lambda ref: (manifest, exact_ref))
    >>> [step.name for step in plan.steps]
    ['speed', 'gravity', 'drag', 'residual']
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sympy

from registry.composition.spec import ComposeSpec
from registry.core.expr import parse_expression
from registry.core.manifest import Manifest, Port
from registry.core.units import dimension_of, parse_unit, unit_of_expression, units_match
from registry.errors import CompositionError, ExpressionError, UnitError

if TYPE_CHECKING:
    import pint

__all__ = ["Plan", "Step", "build_plan"]

Resolver = Callable[[str], tuple[Manifest, str]]  # ref -> (manifest, exact ref)


@dataclass
class Step:
    """An expression (`kind="expression"`) or a node evaluated once per namespace pass."""

    kind: str
    name: str
    wiring: dict[str, sympy.Expr]  # expression: {name: expr}; node: {port: expr}
    provides: dict[str, str]  # node: {port: name}; expression: {name: name}
    needs: set[str] = field(default_factory=set)


@dataclass
class Plan:
    spec: ComposeSpec
    inputs: dict[str, Port]
    units: dict[str, pint.Unit]
    steps: list[Step]
    manifests: dict[str, Manifest]  # module nodes
    pinned: dict[str, str]  # module node -> exact ref
    initial: dict[str, sympy.Expr]
    derivatives: dict[str, sympy.Expr]
    outputs: dict[str, sympy.Expr]

    @property
    def input_names(self) -> list[str]:
        return list(self.inputs)


def build_plan(spec: ComposeSpec, *, resolve: Resolver, source: str = "compose spec") -> Plan:
    """Check and order `spec`; `resolve` gives each module reference's manifest."""
    return _Planner(spec, resolve, source).plan()


class _Planner:
    def __init__(self, spec: ComposeSpec, resolve: Resolver, source: str) -> None:
        self.spec = spec
        self.resolve = resolve
        self.source = source
        self.owner: dict[str, str] = {}  # name -> what defines it
        self.units: dict[str, pint.Unit] = {}
        self.inputs: dict[str, Port] = dict(spec.inputs)

    def fail(self, where: str, message: str) -> CompositionError:
        return CompositionError(f"{self.source}: {where}: {message}")

    def define(self, name: str, owner: str) -> None:
        if name in self.owner:
            raise self.fail(owner, f"`{name}` is already defined by {self.owner[name]}; rename one "
                            "(node outputs are renamed with `outputs: {port: new_name}`)")
        self.owner[name] = owner

    def plan(self) -> Plan:
        spec = self.spec
        for name, declared in spec.inputs.items():
            self.define(name, f"inputs.{name}")
            self.units[name] = parse_unit(declared.unit, where=f"{self.source}: inputs.{name}.unit")
        for name, constant in spec.constants.items():
            self.define(name, f"constants.{name}")
            self.units[name] = parse_unit(constant.unit, where=f"{self.source}: constants.{name}")
        if spec.dynamics is not None:
            for name, var in spec.dynamics.state.items():
                self.define(name, f"dynamics.state.{name}")
                where = f"{self.source}: dynamics.state.{name}"
                self.units[name] = parse_unit(var.unit, where=where)
        for name in spec.expressions:
            self.define(name, f"expressions.{name}")
        manifests, pinned, steps = {}, {}, []
        for node_name, node in spec.nodes.items():
            if node.module is not None:
                manifest, exact = self._resolve(node_name, node.module)
                manifests[node_name], pinned[node_name] = manifest, exact
                outputs = self._module_outputs(node_name, manifest, node.outputs)
            else:
                outputs = {name: name for name in node.outputs}
            for name in outputs.values():
                self.define(name, f"nodes.{node_name}")
            steps.append(Step("node", node_name, {}, outputs))
        for node_name, node in spec.nodes.items():  # wire after every name is known
            step = next(s for s in steps if s.name == node_name)
            ports = list(manifests[node_name].inputs if node.module is not None else node.inputs)
            for wired in node.inputs:
                if wired not in ports:
                    raise self.fail(f"nodes.{node_name}.inputs.{wired}",
                                    f"`{node.module}` has no input port `{wired}` (ports: "
                                    f"{', '.join(ports)})")
            for wired in ports:
                if wired in node.inputs:
                    text = node.inputs[wired]
                else:  # unwired: by name, or a new composite input
                    text = wired
                    if wired not in self.owner:
                        self._auto_input(wired, manifests[node_name].inputs[wired])
                step.wiring[wired] = self._parse(text, f"nodes.{node_name}.inputs.{wired}")
        for name, text in spec.expressions.items():
            steps.append(Step("expression", name, {name: self._parse(text, f"expressions.{name}")},
                              {name: name}))
        for step in steps:
            step.needs = {s.name for e in step.wiring.values() for s in e.free_symbols}
        ordered = self._order(steps)
        self._check_units(ordered, manifests)
        initial, derivatives = self._dynamics()
        outputs = {}
        for name, out in spec.outputs.items():
            where = f"outputs.{name}"
            outputs[name] = self._parse(out.value, where)
            self._expect(outputs[name], parse_unit(out.unit, where=f"{self.source}: {where}.unit"),
                         where)
        return Plan(spec, self.inputs, self.units, ordered, manifests, pinned, initial,
                    derivatives, outputs)

    def _resolve(self, node: str, ref: str) -> tuple[Manifest, str]:
        try:
            return self.resolve(ref)
        except CompositionError:
            raise
        except Exception as exc:  # NotFound, ManifestError...: say which node asked
            raise self.fail(f"nodes.{node}.module", str(exc)) from None

    def _module_outputs(self, node: str, manifest: Manifest,
                        renames: Mapping[str, str]) -> dict[str, str]:
        for port in renames:
            if port not in manifest.outputs:
                raise self.fail(f"nodes.{node}.outputs.{port}",
                                f"`{manifest.ref}` has no output port `{port}` (ports: "
                                f"{', '.join(manifest.outputs)})")
        return {port: renames.get(port, port) for port in manifest.outputs}

    def _auto_input(self, name: str, port: Port) -> None:
        self.inputs[name] = port
        self.define(name, f"inputs.{name} (an unwired module input)")
        self.units[name] = parse_unit(port.unit, where=f"{self.source}: inputs.{name}")

    def _parse(self, text: str, where: str) -> sympy.Expr:
        try:
            return parse_expression(text, names=list(self.owner), where=f"{self.source}: {where}")
        except ExpressionError as exc:
            if "unknown name" in str(exc):
                raise CompositionError(f"{exc}; or declare it under `inputs`") from None
            raise CompositionError(str(exc)) from None

    def _order(self, steps: list[Step]) -> list[Step]:
        """Topological order; a cycle is reported with the steps on it."""
        provider = {name: step for step in steps for name in step.provides.values()}
        ordered: list[Step] = []
        state: dict[str, int] = {}  # 1: visiting, 2: done

        def visit(step: Step, path: list[str]) -> None:
            if state.get(step.name) == 2:
                return
            if state.get(step.name) == 1:
                cycle = " -> ".join([*path[path.index(step.name):], step.name])
                raise CompositionError(f"{self.source}: the wiring has a cycle: {cycle}; break it "
                                       "(a value cannot depend on itself within one evaluation)")
            state[step.name] = 1
            for need in sorted(step.needs):
                if need in provider:
                    visit(provider[need], [*path, step.name])
            state[step.name] = 2
            ordered.append(step)

        for step in steps:
            visit(step, [])
        return ordered

    def _check_units(self, steps: list[Step], manifests: Mapping[str, Manifest]) -> None:
        for step in steps:
            if step.kind == "expression":
                (expr,) = step.wiring.values()
                self.units[step.name] = self._unit(expr, f"expressions.{step.name}")
                continue
            node = self.spec.nodes[step.name]
            for port, expr in step.wiring.items():
                actual = self._unit(expr, f"nodes.{step.name}.inputs.{port}")
                if node.module is not None and expr.free_symbols:
                    expected = parse_unit(manifests[step.name].inputs[port].unit)
                    if not units_match(actual, expected):
                        raise self.fail(
                            f"nodes.{step.name}.inputs.{port}",
                            f"`{node.module}` expects {expected:~} ({dimension_of(expected)}) but "
                            f"`{expr}` is in {actual:~} ({dimension_of(actual)}); wire a value "
                            f"in {expected:~}")
            for port, name in step.provides.items():
                unit = (manifests[step.name].outputs[port].unit if node.module is not None
                        else node.outputs[port])
                self.units[name] = parse_unit(unit, where=f"{self.source}: nodes.{step.name}")

    def _unit(self, expr: sympy.Expr, where: str) -> pint.Unit:
        try:
            return unit_of_expression(expr, self.units, where=f"{self.source}: {where}")
        except UnitError as exc:
            raise CompositionError(str(exc)) from None

    def _expect(self, expr: sympy.Expr, expected: pint.Unit, where: str) -> None:
        if not expr.free_symbols:
            return  # a bare number is written in the unit it is used in
        actual = self._unit(expr, where)
        if not units_match(actual, expected):
            raise self.fail(where, f"must be in {expected:~} ({dimension_of(expected)}) but "
                            f"`{expr}` is in {actual:~} ({dimension_of(actual)})")

    def _dynamics(self) -> tuple[dict[str, sympy.Expr], dict[str, sympy.Expr]]:
        dynamics = self.spec.dynamics
        if dynamics is None:
            return {}, {}
        per_second = parse_unit("1/s")
        initial, derivatives = {}, {}
        for name, var in dynamics.state.items():
            where = f"dynamics.state.{name}.initial"
            initial[name] = self._parse(var.initial, where)
            early = set(self.inputs) | set(self.spec.constants)
            late = sorted(s.name for s in initial[name].free_symbols if s.name not in early)
            if late:
                raise self.fail(where, f"can use only inputs and constants, not {late}")
            self._expect(initial[name], self.units[name], where)
            where = f"dynamics.derivatives.{name}"
            derivatives[name] = self._parse(dynamics.derivatives[name], where)
            self._expect(derivatives[name], self.units[name] * per_second, where)
        return initial, derivatives
