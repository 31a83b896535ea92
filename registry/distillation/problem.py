"""The state of one output's solve, shared by the solver's stages: the teacher, its
ranges, domain and units, the tolerance, the deadline, the candidates found so far,
notes on what the structure tests did, and the stage running now (so that a budget
that runs out can say where)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from registry.distillation.candidates import Candidate
from registry.distillation.domain import Domain, box_domain
from registry.distillation.teacher import Teacher


@dataclass
class _Problem:
    teacher: Teacher
    ranges: dict[str, tuple[float, float]]
    units: dict[str, str] | None
    out_unit: str | None
    tolerance: float
    deadline: float
    rng: np.random.Generator
    found: list[Candidate] = field(default_factory=list)
    domain: Domain | None = None  # where the teacher is asked; None: the box over `ranges`
    notes: dict[str, str] = field(default_factory=dict)  # structure test -> what it did
    stage: str = "sampling"
    ran_out_in: str | None = None  # the stage that was running when the deadline passed

    def enter(self, stage: str) -> bool:
        """Start `stage`; False (and the stage that overran noted) once past the deadline."""
        if self.expired():
            self.ran_out_in = self.ran_out_in or self.stage
            return False
        self.stage = stage
        return True

    def expired(self) -> bool:
        return time.monotonic() > self.deadline

    def __post_init__(self) -> None:
        if self.domain is None:
            self.domain = box_domain(self.ranges)

    @property
    def where(self) -> Domain:
        assert self.domain is not None
        return self.domain
