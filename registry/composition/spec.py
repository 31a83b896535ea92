"""The compose spec: how modules are wired into a new network (YAML, or `Builder`).

    schema: 1
    name: baseball
    inputs:                          # optional: units and ranges of the composite's inputs
      v0: {unit: m/s, range: [25, 45]}
    constants:
      M_earth: {value: 5.972e24, unit: kg}
    expressions:                     # derived names, safe-parser expressions
      speed: sqrt(vx**2 + vy**2)
    nodes:
      gravity:
        module: gravity@^1           # a registered module...
        inputs: {m1: M_earth, m2: m, r: R_earth + y}   # port: expression (renames, as Kedro)
        outputs: {F: F_g}            # port: new name
      residual:
        mlp: {hidden: [16], activation: tanh}          # ...or an inline trainable block
        inputs: {vx: vx, vy: vy}
        outputs: {a_x: m/s^2, a_y: m/s^2}              # name: unit
    dynamics:                        # optional: integrate an ODE (fixed-step RK4)
      state: {x: {unit: m, initial: '0'}, vx: {unit: m/s, initial: v0*cos(angle)}}
      derivatives: {x: vx, vx: -F_d*vx/(speed*m) + a_x}
      dt: 0.01
      max_time: 10
      stop_when: y                   # stop where this state falls through 0
    outputs:
      distance: {unit: m, value: x}

Module inputs left unwired are wired by name to a composite input, constant,
expression, state or node output of the same name, or else become composite
inputs themselves (with the module's unit and range).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from registry.core.manifest import (
    NAME_PATTERN,
    PORT_PATTERN,
    Constant,
    Port,
    format_validation_error,
)
from registry.core.manifest_file import load_yaml
from registry.errors import CompositionError, ManifestError

__all__ = ["ComposeSpec", "Dynamics", "Node", "OutputSpec", "StateVariable", "load_spec",
           "parse_spec", "read_spec"]

MAX_SPEC_BYTES = 1 << 20
Name = Annotated[str, Field(pattern=PORT_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class MlpBlock(_Strict):
    hidden: list[Annotated[int, Field(ge=1, le=4096)]] = Field(default_factory=lambda: [16])
    activation: str = "tanh"
    zero_init: bool = True  # a residual starts at 0: the physics alone, then learns


class Node(_Strict):
    """One node: a module reference or an inline trainable MLP."""

    module: str | None = None
    mlp: MlpBlock | None = None
    inputs: dict[Name, str] = Field(default_factory=dict)
    outputs: dict[Name, str] = Field(default_factory=dict)
    train: bool | Literal["constants"] | None = None  # default: networks yes, equations no

    @model_validator(mode="after")
    def _one_kind(self) -> Node:
        if (self.module is None) == (self.mlp is None):
            raise ValueError("give exactly one of `module` (a reference) or `mlp` (a block)")
        if self.mlp is not None and not self.outputs:
            raise ValueError("an `mlp` node needs `outputs` ({name: unit})")
        if self.mlp is not None and not self.inputs:
            raise ValueError("an `mlp` node needs `inputs` ({name: expression})")
        return self


class StateVariable(_Strict):
    unit: str = "1"
    initial: str


class Dynamics(_Strict):
    state: dict[Name, StateVariable] = Field(min_length=1)
    derivatives: dict[Name, str]
    dt: Annotated[float, Field(gt=0)]
    max_time: Annotated[float, Field(gt=0)]
    stop_when: Name | None = None

    @model_validator(mode="after")
    def _complete(self) -> Dynamics:
        if set(self.derivatives) != set(self.state):
            raise ValueError(f"`derivatives` must give one expression per state variable "
                             f"{sorted(self.state)}, got {sorted(self.derivatives)}")
        if self.stop_when is not None and self.stop_when not in self.state:
            raise ValueError(f"`stop_when` must name a state variable {sorted(self.state)}")
        if self.max_time / self.dt > 100_000:
            raise ValueError("max_time / dt is over 100000 steps; use a larger dt")
        return self


class OutputSpec(_Strict):
    unit: str = "1"
    value: str


class ComposeSpec(_Strict):
    schema_: Literal[1] = Field(default=1, alias="schema")
    name: Annotated[str, Field(pattern=NAME_PATTERN)] = "composite"
    summary: str = ""
    inputs: dict[Name, Port] = Field(default_factory=dict)
    constants: dict[Name, Constant] = Field(default_factory=dict)
    expressions: dict[Name, str] = Field(default_factory=dict)
    nodes: dict[Annotated[str, Field(pattern=PORT_PATTERN)], Node] = Field(min_length=1)
    dynamics: Dynamics | None = None
    outputs: dict[Name, OutputSpec] = Field(min_length=1)
    _source: str = PrivateAttr(default="compose spec")  # where errors point: the file

    @property
    def source(self) -> str:
        return self._source

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


def parse_spec(data: Any, *, source: str = "compose spec") -> ComposeSpec:
    """Validate spec data (a mapping); `CompositionError` names the source and the field."""
    if not isinstance(data, dict):
        raise CompositionError(f"{source}: expected a mapping with `nodes` and `outputs`, got "
                               f"{type(data).__name__}")
    try:
        spec = ComposeSpec.model_validate(data)
    except ValidationError as exc:
        raise CompositionError(format_validation_error(exc, source, model=ComposeSpec)) from None
    spec._source = source
    return spec


def read_spec(text: str | bytes, *, source: str = "compose spec") -> ComposeSpec:
    """Parse compose-spec YAML (a file's text, or bytes read from a store) with the
    project's strict reader (`load_yaml`: no aliases, no duplicate keys, bounded nesting);
    every refusal is one `CompositionError` line naming `source`."""
    if len(text) > MAX_SPEC_BYTES:
        raise CompositionError(f"{source}: over {MAX_SPEC_BYTES} bytes; a compose spec is small")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise CompositionError(f"{source}: not UTF-8 text; save the spec as UTF-8") from None
    try:
        data = load_yaml(text, source=source)
    except ManifestError as exc:
        raise CompositionError(str(exc)) from None
    return parse_spec(data, source=source)


def load_spec(path: Path) -> ComposeSpec:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise CompositionError(f"{path}: no such compose spec") from None
    return read_spec(data, source=str(path))
