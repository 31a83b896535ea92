"""The JSON bodies of the API under /api/v1 (pydantic models; OpenAPI is built from them).

Errors have their own body, `registry.server.handlers.ErrorBody`.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

__all__ = ["STAGE_PATTERN", "CostOut", "Health", "ModuleDetail", "ModuleEntry", "ModuleList",
           "Registered", "StageAssigned", "StageRequest", "VersionList", "WorkspaceEntry"]

STAGE_PATTERN = r"^[a-z][a-z0-9_-]{0,40}$"


class ModuleEntry(BaseModel):
    """One registered version, as listed."""

    name: str
    version: str
    kind: str
    summary: str
    tag: str
    commit: str
    created: str
    stages: list[str] = Field(description="stages that point at this version")
    inputs: dict[str, str] = Field(description="input port -> unit")
    outputs: dict[str, str] = Field(description="output port -> unit")


class WorkspaceEntry(BaseModel):
    """A module in the server's working tree with no registered version."""

    name: str
    version: str | None = None
    kind: str | None = None
    summary: str | None = None
    inputs: dict[str, str] = Field(default_factory=dict)
    outputs: dict[str, str] = Field(default_factory=dict)
    error: str | None = Field(default=None, description="why its manifest does not load")


class ModuleList(BaseModel):
    modules: list[ModuleEntry]
    unregistered: list[WorkspaceEntry]
    next_cursor: str | None = Field(default=None, description="pass as `cursor` for the "
                                    "next page; null on the last")


class ModuleDetail(BaseModel):
    """One resolved version, with what the module has besides it."""

    ref: str = Field(description="the exact version (`name@1.0.1`) or `name@workspace`")
    name: str
    version: str
    kind: str
    summary: str
    tag: str | None
    commit: str | None
    stages: list[str]
    inputs: dict[str, str]
    outputs: dict[str, str]
    versions: list[str] = Field(description="every registered version, oldest first")
    stage_map: dict[str, str] = Field(description="stage -> version, for the whole module")
    manifest: dict[str, Any]


class VersionList(BaseModel):
    name: str
    versions: list[ModuleEntry]
    stages: dict[str, str]
    in_workspace: bool


class CostOut(BaseModel):
    ref: str
    recorded: dict[str, Any] = Field(description="the manifest's `cost` section")
    measured: dict[str, Any] | None = Field(
        default=None, description="a fresh measurement (only with `measure=true`)")
    measured_cached: bool | None = None


class Health(BaseModel):
    status: str
    version: str
    modules: int
    unregistered: int
    index_backend: str
    pid: int


class Registered(BaseModel):
    name: str
    version: str
    ref: str
    tag: str
    commit: str
    created: bool = Field(description="false: the same content was registered already")


class StageRequest(BaseModel):
    version: Annotated[str, Field(max_length=100, examples=["1.0.1"])]
    stage: Annotated[str, Field(pattern=STAGE_PATTERN, examples=["prod"])]


class StageAssigned(BaseModel):
    name: str
    version: str
    stage: str
    tag: str


class AlternativeOut(BaseModel):
    """One module implementing the interface, with the figures it is compared by."""

    ref: str
    kind: str
    source: str
    nrmse: float | None = Field(description="on `accuracy_on`'s evaluation")
    flops: int | None = Field(description="FLOPs per sample")
    energy_j: float | None = Field(description="modeled energy per sample (exact)")
    latency_ns: float | None = Field(description="measured at registration, batch 4096")
    weight_bytes: int | None
    derived_from: str | None
    accuracy_on: str
    pareto: bool = Field(description="on the Pareto front of nRMSE against FLOPs")


class AlternativesOut(BaseModel):
    ref: str
    alternatives: list[AlternativeOut]
    selected: AlternativeOut | None = Field(
        default=None, description="with `max_nrmse`: the cheapest within it, by `by`")
