"""Symbolic distillation: turn a trained network (any callable) into its equation.

Example:
    >>> result = registry.distill(fn, inputs={"L": ("m", (0.1, 2.0)), "g": ("m/s^2", (1, 20))},
    ...                           outputs={"T": "s"}, budget_s=60)
    >>> result.equations
    {'T': '2*pi*sqrt(L/g)'}
"""

from __future__ import annotations

from registry.distillation.candidates import Candidate
from registry.distillation.result import DistillResult, pareto_front
from registry.distillation.run import distill

__all__ = ["Candidate", "DistillResult", "distill", "pareto_front"]
