"""`Builder`: the compose spec in Python, for training code.

Example:
    >>> net = (Builder("falling")
    ...        .module("gravity", "gravity@^1", inputs={"m1": "M", "m2": "m", "r": "R + y"},
    ...                outputs={"F": "F_g"})
    ...        .output("a", "-F_g/m", unit="m/s^2")
    ...        .build(registry.open()))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from registry.composition.spec import ComposeSpec, parse_spec

if TYPE_CHECKING:
    from registry.composition.module import ComposedModule

__all__ = ["Builder", "Composer"]


class Composer(Protocol):
    """What builds a spec: a `registry.api.Registry`, or a `registry.loading.Loader`."""

    def compose(self, spec: ComposeSpec) -> ComposedModule: ...


class Builder:
    """Accumulates a compose spec; `spec()` validates it, `build()` returns the network."""

    def __init__(self, name: str = "composite", *, summary: str = "") -> None:
        self._data: dict[str, Any] = {"schema": 1, "name": name, "summary": summary, "inputs": {},
                                      "constants": {}, "expressions": {}, "nodes": {},
                                      "outputs": {}}

    def input(self, name: str, unit: str = "1", *,
              range: tuple[float, float] | None = None) -> Builder:
        self._data["inputs"][name] = {"unit": unit, **({"range": list(range)} if range else {})}
        return self

    def constant(self, name: str, value: float, unit: str = "1") -> Builder:
        self._data["constants"][name] = {"value": value, "unit": unit}
        return self

    def expression(self, name: str, text: str) -> Builder:
        self._data["expressions"][name] = text
        return self

    def module(self, node: str, ref: str, *, inputs: Mapping[str, str] | None = None,
               outputs: Mapping[str, str] | None = None,
               train: bool | str | None = None) -> Builder:
        entry: dict[str, Any] = {"module": ref, "inputs": dict(inputs or {}),
                                 "outputs": dict(outputs or {})}
        if train is not None:
            entry["train"] = train
        self._data["nodes"][node] = entry
        return self

    def mlp(self, node: str, *, inputs: Mapping[str, str], outputs: Mapping[str, str],
            hidden: Sequence[int] = (16,), activation: str = "tanh") -> Builder:
        self._data["nodes"][node] = {"mlp": {"hidden": list(hidden), "activation": activation},
                                     "inputs": dict(inputs), "outputs": dict(outputs)}
        return self

    def dynamics(self, *, state: Mapping[str, tuple[str, str]], derivatives: Mapping[str, str],
                 dt: float, max_time: float, stop_when: str | None = None) -> Builder:
        """`state` maps each variable to (unit, initial expression)."""
        self._data["dynamics"] = {
            "state": {n: {"unit": u, "initial": init} for n, (u, init) in state.items()},
            "derivatives": dict(derivatives), "dt": dt, "max_time": max_time,
            **({"stop_when": stop_when} if stop_when else {})}
        return self

    def output(self, name: str, value: str, *, unit: str = "1") -> Builder:
        self._data["outputs"][name] = {"unit": unit, "value": value}
        return self

    def spec(self) -> ComposeSpec:
        return parse_spec(self._data, source=f"Builder({self._data['name']!r})")

    def build(self, registry: Composer) -> ComposedModule:
        return registry.compose(self.spec())
