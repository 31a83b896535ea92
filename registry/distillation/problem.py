"""The state of one output's solve, shared by the solver's stages: the teacher, its
ranges, domain and units, the tolerance, the deadline, the candidates found so far, and
notes on what the structure tests did."""

from __future__ import annotations

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

    def __post_init__(self) -> None:
        if self.domain is None:
            self.domain = box_domain(self.ranges)

    @property
    def where(self) -> Domain:
        assert self.domain is not None
        return self.domain
