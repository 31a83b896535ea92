"""The manifest: `modules/<name>/module.yaml`, schema 1, as a strict pydantic model.

Unknown keys are errors; every error names the file, the field and the fix. Declared
sizes (parameters, ports, evaluation points) are counted here, before anything is built
or sampled, and refused over the limits of `registry.core.limits`.
`Manifest.json_schema()` exports the schema (`registry schema`).

Example:
    >>> manifest = load_manifest(Path("modules/gravity/module.yaml"))
    >>> manifest.name, manifest.version, list(manifest.inputs)
    ('gravity', '1.0.0', ['m1', 'm2', 'r'])
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from registry.core.integrity import sha256_bytes, sha256_file
from registry.core.limits import check_evaluation_points, check_network, check_ports
from registry.core.manifest_cost import (
    Calibration,
    Cost,
    Measured,
    Modeled,
    TrainingCost,
)
from registry.core.manifest_cost import (
    Strict as _Strict,
)

__all__ = [
    "MANIFEST_FILE",
    "Budget",
    "Calibration",
    "Constant",
    "Cost",
    "Evaluation",
    "Manifest",
    "Measured",
    "Modeled",
    "Network",
    "Port",
    "Provenance",
    "TrainingCost",
    "dump_manifest",
    "format_validation_error",
    "load_manifest",
    "parse_manifest",
    "sha256_bytes",
    "sha256_file",
    "write_manifest",
]

MANIFEST_FILE = "module.yaml"
MAX_MANIFEST_BYTES = 1 << 20
NAME_PATTERN = r"^[a-z][a-z0-9-]{0,62}$"
SEMVER_PATTERN = (
    r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)"
    r"(?:-((?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9][0-9]*|[0-9]*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
PORT_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"
RELATIVE_PATH_PATTERN = r"^[A-Za-z0-9_.\-/]{1,200}$"

PortName = Annotated[str, Field(pattern=PORT_PATTERN)]


def _inside_folder(path: str) -> str:
    if path.startswith("/") or ".." in path.split("/"):
        raise ValueError(f"path {path!r} must stay inside the module folder (relative, no `..`)")
    return path


RelativePath = Annotated[str, Field(pattern=RELATIVE_PATH_PATTERN), AfterValidator(_inside_folder)]
Sha256 = Annotated[str, Field(pattern=SHA256_PATTERN)]

PATTERN_HINTS = {  # what to suggest when a pattern does not match
    NAME_PATTERN: "names are lower-case letters, digits and '-', starting with a letter",
    SEMVER_PATTERN: "versions are semantic versions such as 1.0.0",
    PORT_PATTERN: "port and constant names are identifiers such as `m1` or `C_d`",
    SHA256_PATTERN: "write the file's sha256 as 64 lower-case hex digits",
    RELATIVE_PATH_PATTERN: "paths use letters, digits, `_`, `-`, `.` and `/`",
}


class Port(_Strict):
    """A named input or output: its unit and, for inputs, the range it is valid on."""

    unit: str = "1"
    range: tuple[float, float] | None = None
    description: str | None = None

    @field_validator("range")
    @classmethod
    def _ordered(cls, value: tuple[float, float] | None) -> tuple[float, float] | None:
        if value is not None and not value[0] < value[1]:
            raise ValueError(f"range must be [low, high] with low < high, got {list(value)}")
        return value


class Constant(_Strict):
    value: float
    unit: str = "1"
    trainable: bool = False


class FileRef(_Strict):
    """A file of the module folder and the sha256 it must have."""

    path: RelativePath
    sha256: Sha256


class Network(_Strict):
    arch: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,40}$")]
    config: dict[str, Any] = Field(default_factory=dict)
    weights: FileRef
    # the number format the weights are stored and run in (`registry shrink` writes the others);
    # int8: linear layers dynamically quantized, as torch.ao.quantization does
    precision: Literal["float32", "float16", "bfloat16", "int8"] = "float32"


class Composition(_Strict):
    spec: RelativePath
    weights: FileRef | None = None


class ReferenceTruth(_Strict):
    """What accuracy is measured against when there is no data file."""

    equation: dict[PortName, str] | None = None
    module: str | None = None

    @model_validator(mode="after")
    def _one(self) -> ReferenceTruth:
        if (self.equation is None) == (self.module is None):
            raise ValueError("give exactly one of `equation` or `module`")
        return self


class Sample(_Strict):
    n: Annotated[int, Field(ge=16, le=10_000_000)] = 4096
    seed: int = 0


class Evaluation(_Strict):
    data: FileRef | None = None
    reference: ReferenceTruth | None = None
    sample: Sample | None = None
    metrics: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _source(self) -> Evaluation:
        if (self.data is None) == (self.reference is None):
            raise ValueError("give exactly one of `data` (a file with its sha256) or `reference`")
        return self


class TradeOff(_Strict):
    """An accepted regression against the base version, with its reason."""

    check: str
    reason: Annotated[str, Field(min_length=10)]


class Budget(_Strict):
    max_flops_per_sample: int | None = None
    max_params: int | None = None
    max_energy_j_per_sample: float | None = None
    max_training_energy_j: float | None = None
    # which figure the energy budgets bind (unset: modeled, exact and gated on every
    # machine); measured: gated where a counter measured it, within MEASURED_TOLERANCE
    energy_figure: Literal["modeled", "measured"] | None = None
    training_energy_figure: Literal["modeled", "measured"] | None = None
    min_r2: float | None = None
    max_rmse: float | None = None
    max_nrmse: float | None = None
    max_rel_error: float | None = None
    accepted: list[TradeOff] = Field(default_factory=list)


class GitInfo(_Strict):
    commit: str | None = None
    author: str | None = None
    dirty: bool = False


class MlflowRun(_Strict):
    run_id: str
    experiment: str | None = None
    tracking_uri: str | None = None


class DataHash(_Strict):
    path: str
    md5: Annotated[str, Field(pattern=r"^[0-9a-f]{32}$")]


class Recorded(_Strict):
    """The values a distilled part saw: their hash, and how many rows and calls."""

    sha256: Sha256
    rows: Annotated[int, Field(ge=1)]
    calls: Annotated[int, Field(ge=1)]


class Derivation(_Strict):
    """How a variant was made from its teacher (`registry shrink`)."""

    method: Literal["prune", "quantize", "dtype", "student"]
    settings: dict[str, Any] = Field(default_factory=dict)
    steps: int | None = None  # optimiser steps of fine-tuning or student training
    vs_teacher: dict[str, float] = Field(default_factory=dict)  # metrics against the teacher


class Provenance(_Strict):
    source: Literal["hand-written", "trained", "distilled", "composed",
                    "derived"] = "hand-written"
    git: GitInfo | None = None
    distilled_from: str | None = None  # a module version, or a part of one (`name@1.0.2#node`)
    derived_from: str | None = None  # a variant: the exact teacher version it was shrunk from
    derivation: Derivation | None = None
    recorded: Recorded | None = None  # a part: what was recorded to distil it
    parents: list[str] = Field(default_factory=list)
    mlflow: MlflowRun | None = None
    data: DataHash | None = None
    created: dt.datetime | None = None


class Manifest(_Strict):
    """One version of one module: everything known about it."""

    schema_: Literal[1] = Field(default=1, alias="schema")
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    version: Annotated[str, Field(pattern=SEMVER_PATTERN)]
    kind: Literal["equation", "network", "composite"]
    summary: str = ""
    inputs: dict[PortName, Port] = Field(min_length=1)
    outputs: dict[PortName, Port] = Field(min_length=1)
    equation: dict[PortName, str] | None = None
    constants: dict[PortName, Constant] = Field(default_factory=dict)
    network: Network | None = None
    composition: Composition | None = None
    evaluation: Evaluation | None = None
    cost: Cost = Field(default_factory=Cost)
    budget: Budget = Field(default_factory=Budget)
    provenance: Provenance = Field(default_factory=Provenance)

    @field_validator("inputs", "outputs")
    @classmethod
    def _few_ports(cls, ports: dict[str, Port], info: ValidationInfo) -> dict[str, Port]:
        check_ports(len(ports), str(info.field_name))
        return ports

    @model_validator(mode="after")
    def _kind_fields(self) -> Manifest:
        wanted = {"equation": "equation", "network": "network", "composite": "composition"}
        for kind, field in wanted.items():
            present = getattr(self, field) is not None
            if kind == self.kind and not present:
                raise ValueError(f"a module of kind `{kind}` needs an `{field}` section")
            if kind != self.kind and present:
                raise ValueError(f"`{field}` belongs to kind `{kind}`, not `{self.kind}`; "
                                 "remove it")
        if self.equation is not None and set(self.equation) != set(self.outputs):
            raise ValueError(
                f"`equation` must give one expression per output: outputs are "
                f"{sorted(self.outputs)}, equations are {sorted(self.equation)}"
            )
        shared = sorted(set(self.inputs) & (set(self.constants) | set(self.outputs)))
        if shared:
            raise ValueError(f"names {shared} are used twice (inputs, outputs and constants "
                             "must have distinct names)")
        return self

    @model_validator(mode="after")
    def _within_limits(self) -> Manifest:
        """Sizes counted from the declaration, before anything is built or sampled."""
        if self.network is not None:
            check_network(self.network.arch, self.network.config, len(self.inputs),
                          len(self.outputs))
        if self.evaluation is not None:
            check_evaluation_points((self.evaluation.sample or Sample()).n,
                                    len(self.inputs) + len(self.outputs))
        return self

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @classmethod
    def json_schema(cls) -> dict[str, Any]:
        schema = cls.model_json_schema(by_alias=True)
        schema["$id"] = "https://registry.invalid/schema/manifest-1.json"
        schema["title"] = "Module manifest (schema 1)"
        return schema

    def to_dict(self) -> dict[str, Any]:
        """Plain data in the file's key order, without empty or unset fields."""
        return _prune(self.model_dump(mode="json", by_alias=True, exclude_none=True))

    def content_hash(self) -> str:
        return sha256_bytes(dump_manifest(self).encode())

    def files(self) -> list[tuple[str, FileRef]]:
        """The files this manifest hashes, as `(field, FileRef)`: what integrity covers."""
        found: list[tuple[str, FileRef]] = []
        if self.network is not None:
            found.append(("network.weights", self.network.weights))
        if self.composition is not None and self.composition.weights is not None:
            found.append(("composition.weights", self.composition.weights))
        if self.evaluation is not None and self.evaluation.data is not None:
            found.append(("evaluation.data", self.evaluation.data))
        return found

    def port_units(self, section: str) -> dict[str, str]:
        """`{port: unit}` of `inputs` or `outputs`."""
        ports = self.inputs if section == "inputs" else self.outputs
        return {name: port.unit for name, port in ports.items()}

    def recorded_sha256(self, relpath: str) -> str | None:
        """The sha256 recorded for the file `relpath` (None: not a hashed file)."""
        return next((ref.sha256 for _, ref in self.files() if ref.path == relpath), None)


def _prune(value: Any) -> Any:
    if isinstance(value, dict):
        pruned = {k: _prune(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v not in ({}, [], None)}
    if isinstance(value, list):
        return [_prune(v) for v in value]
    return value


# The file side (parse, load, dump, write) lives in `manifest_file`; re-exported here so
# that `from registry.core.manifest import load_manifest` keeps one import for both.
from registry.core.manifest_errors import format_validation_error  # noqa: E402
from registry.core.manifest_file import (  # noqa: E402
    dump_manifest,
    load_manifest,
    parse_manifest,
    write_manifest,
)
