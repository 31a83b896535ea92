"""The teacher's resolution (issue 15): a tolerance stated near a network's noise is tightened
to how finely the network resolves its law, so approximants within the noise do not stop
the search, snap constants, or win the choice."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sympy
import torch

from registry.distillation import distill
from registry.distillation.candidates import Candidate
from registry.distillation.resolution import (
    FLOOR_FACTOR,
    MIN_SHARE,
    polynomial_floor,
    working_tolerance,
)
from registry.distillation.result import _choose


def _box(rng: np.random.Generator, n: int, ranges: dict[str, tuple[float, float]]
         ) -> dict[str, np.ndarray]:
    return {k: rng.uniform(lo, hi, n) for k, (lo, hi) in ranges.items()}


def test_the_floor_of_a_smooth_function_is_tiny_and_of_a_rough_one_its_roughness() -> None:
    rng = np.random.default_rng(0)
    ranges = {"a": (1.0, 2.0), "b": (0.5, 1.5)}
    fit, test = _box(rng, 2000, ranges), _box(rng, 1000, ranges)

    def smooth(x: dict[str, np.ndarray]) -> np.ndarray:
        return np.exp(-x["a"] * x["b"])

    assert polynomial_floor(fit, smooth(fit), test, smooth(test), ranges) < 1e-4

    def rough(x: dict[str, np.ndarray]) -> np.ndarray:  # a wiggle no polynomial follows
        return smooth(x) * (1 + 0.02 * np.sin(300 * x["a"]))

    floor = polynomial_floor(fit, rough(fit), test, rough(test), ranges)
    spread = float(np.std(smooth(test)))
    expected = 0.02 / math.sqrt(2) * float(np.sqrt(np.mean(smooth(test) ** 2))) / spread
    assert expected * 0.7 < floor < expected * 1.3, (floor, expected)


def test_the_floor_is_infinite_without_inputs_or_finite_values() -> None:
    rng = np.random.default_rng(0)
    ranges = {"a": (1.0, 2.0)}
    fit, test = _box(rng, 200, ranges), _box(rng, 100, ranges)
    bad = fit["a"].copy()
    bad[3] = np.nan
    assert polynomial_floor(fit, bad, test, test["a"], ranges) == math.inf
    assert polynomial_floor({}, fit["a"], {}, test["a"], {}) == math.inf


def test_the_working_tolerance_is_tightened_within_its_bounds() -> None:
    assert working_tolerance(0.2, math.inf) == 0.2
    assert working_tolerance(0.2, 0.1) == 0.2  # a floor near the tolerance: it stands
    assert working_tolerance(0.2, 0.01) == pytest.approx(FLOOR_FACTOR * 0.01)
    assert working_tolerance(0.2, 1e-9) == pytest.approx(MIN_SHARE * 0.2)


def test_an_approximant_within_a_loose_tolerance_loses_to_a_law_far_better() -> None:
    v, c, m = sympy.symbols("v c m")
    approximant = Candidate(sympy.pi * m / 3, 5, 0.05, "power law")
    law = Candidate(m / sympy.sqrt(1 - v**2 / c**2), 12, 0.004, "search")
    overfit = Candidate(law.expr + sympy.Float(1e-3) * v, 20, 0.0038, "search")
    assert _choose([approximant, law, overfit], 0.2) is law
    # Both within 1.5× of each other: the simpler one, as before.
    assert _choose([Candidate(m, 3, 0.0055, "x"), law], 0.2).expr == m


def _lorentz_teacher(x: torch.Tensor) -> torch.Tensor:
    """m/√(1 − v²/c²) off by a wiggle of 2·10⁻⁴ (a trained network's own error)."""
    m, v, c = x[:, 0], x[:, 1], x[:, 2]
    law = m / torch.sqrt(1 - v**2 / c**2)
    return (law * (1 + 2e-4 * torch.sin(40 * m + 30 * v))).reshape(-1, 1)


def test_a_tolerance_at_a_noise_level_does_not_stop_at_an_approximant() -> None:
    # Stated as a user would from a network trained on 10 %-noisy targets: 0.2.
    result = distill(_lorentz_teacher,
                     inputs={"m": ("kg", (1.0, 5.0)), "v": ("m/s", (1.0, 2.0)),
                             "c": ("m/s", (3.0, 10.0))},
                     outputs={"E": "kg"}, budget_s=20, tolerance=0.2)
    chosen = result.chosen["E"]
    m, v, c = sympy.symbols("m v c", positive=True)
    found = chosen.expr.xreplace({s: sympy.Symbol(s.name, positive=True)
                                  for s in chosen.expr.free_symbols})
    assert sympy.simplify(found**2 - m**2 / (1 - v**2 / c**2)) == 0, found
    note = result.structure_tests["E"]["tolerance"]
    assert note.startswith("0.2 given") and "so the solver worked to" in note
