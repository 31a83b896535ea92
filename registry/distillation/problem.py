"""The state of one output's solve, shared by the solver's stages: the teacher, its
ranges and units, the tolerance, the deadline, and the candidates found so far."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from registry.distillation.candidates import Candidate
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
