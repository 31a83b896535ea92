"""Distilling on recorded points: a part of a network is asked only where it was trained.

The teachers here follow a law only on a band around their recorded points and return
garbage (+1e6 or NaN) off it, as a network part extrapolates off the manifold its
data visited. On the recorded points the law is recovered exactly (compared with
sympy); a box over the same ranges is not.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy
import torch

from registry.core.expr import parse_expression
from registry.distillation import distill
from registry.distillation.candidates import evaluate, nrmse
from registry.distillation.domain import MIN_RECORDED_POINTS, NEARBY_STEP
from registry.errors import DistillationError

# Baseball-like trajectories: vy falls linearly with vx (through zero), within ±HALF.
SLOPE, OFFSET, HALF = -0.8, 28.0, 3.0
GARBAGE = 1e6
LIFT = {"vx": ("m/s", None), "vy": ("m/s", None), "k": ("1/m", None)}


def trajectories(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    vx = rng.uniform(25.0, 45.0, n)
    return {"vx": vx, "vy": SLOPE * vx + OFFSET + rng.uniform(-HALF, HALF, n),
            "k": rng.uniform(0.003, 0.006, n)}


class BandTeacher:
    """The Magnus-lift law a = −k·vy·|v|/4 on a band 1.5× as wide as the recorded one
    (a network is smooth a little past its data), GARBAGE elsewhere; keeps every point
    it was asked about."""

    def __init__(self) -> None:
        self.asked: list[np.ndarray] = []

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.double()
        self.asked.append(x.numpy().copy())
        vx, vy, k = x.unbind(-1)
        inside = (((vy - (SLOPE * vx + OFFSET)).abs() <= 1.5 * HALF) & (vx > 24) & (vx < 46)
                  & (k > 0.0028) & (k < 0.0064))
        law = -0.25 * k * vy * torch.sqrt(vx**2 + vy**2)
        return torch.where(inside, law, torch.full_like(law, GARBAGE)).reshape(-1, 1)


def equivalent(found: str, expected: str, names: list[str]) -> bool:
    a = parse_expression(found, names=names)
    b = parse_expression(expected, names=names)
    return sympy.simplify(a - b) == 0


def test_the_lift_law_is_recovered_on_recorded_points_but_not_on_their_box() -> None:
    points = trajectories(400, seed=1)
    teacher = BandTeacher()
    result = distill(teacher, inputs=LIFT, outputs={"a": "m/s^2"}, budget_s=10, points=points)
    assert result.found, result.message
    # Exact recovery, not only a fit: the sign of vy is the law's (vy crosses zero).
    assert equivalent(result.equations["a"], "-k*vy*sqrt(vx**2 + vy**2)/4", list(LIFT))
    fresh = trajectories(500, seed=2)  # recorded points the distiller never saw
    truth = -0.25 * fresh["k"] * fresh["vy"] * np.hypot(fresh["vx"], fresh["vy"])
    assert nrmse(evaluate(result.chosen["a"].expr, fresh), truth) < 1e-6
    # The teacher was only asked on recorded rows or within a small step of one.
    asked = np.concatenate(teacher.asked)
    rows = np.stack([points[n] for n in LIFT], axis=1)
    # (a step of NEARBY_STEP × the spread, and float32 rounding: the teacher runs in float32)
    reach = NEARBY_STEP * (rows.max(axis=0) - rows.min(axis=0)) + 1e-6 * np.abs(rows).max(axis=0)
    near = np.all(np.abs(asked[:, None, :] - rows[None, :, :]) <= reach, axis=2).any(axis=1)
    assert near.all(), f"{(~near).sum()} of {len(asked)} points asked off the recorded rows"

    # The box over the same ranges is mostly off the band: no law there.
    box = {n: (u, (float(points[n].min()), float(points[n].max()))) for n, (u, _) in LIFT.items()}
    boxed = distill(BandTeacher(), inputs=box, outputs={"a": "m/s^2"}, budget_s=3)
    assert boxed.domain == "box" and boxed.n_points is None
    assert not boxed.found
    if "a" in boxed.chosen:
        assert nrmse(evaluate(boxed.chosen["a"].expr, fresh), truth) > 1e-2


def test_a_two_input_law_without_units_is_recovered_on_its_band() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(0.5, 2.0, 300)
    y = 2 * x + rng.uniform(-0.4, 0.4, 300)

    def teacher(v: torch.Tensor) -> torch.Tensor:
        a, b = v.double().unbind(-1)
        law = a * torch.exp(-b)
        return torch.where((b - 2 * a).abs() < 0.6, law, torch.full_like(law, GARBAGE))[:, None]

    result = distill(teacher, inputs={"x": (None, None), "y": (None, None)},
                     outputs={"f": None}, budget_s=5, points={"x": x, "y": y})
    assert result.found, result.message
    assert equivalent(result.equations["f"], "x*exp(-y)", ["x", "y"])
    assert result.inputs["x"] == ("1", (float(x.min()), float(x.max())))  # from the points


def test_structure_tests_on_recorded_points_move_inputs_only_a_small_step() -> None:
    """Irrelevant inputs and translation symmetry are tested near the recorded points
    (the teacher is NaN off its band); separability is skipped, and the result says so."""
    rng = np.random.default_rng(4)
    x1 = rng.uniform(1.0, 5.0, 300)
    points = {"x1": x1, "x2": x1 + rng.uniform(1.0, 3.0, 300), "w": rng.uniform(1.0, 2.0, 300)}

    def teacher(v: torch.Tensor) -> torch.Tensor:
        a, b, _ = v.double().unbind(-1)
        gap = b - a
        return torch.where((gap > 0.8) & (gap < 3.2), gap**2,
                           torch.full_like(gap, float("nan")))[:, None]

    result = distill(teacher, inputs={"x1": ("m", (0.0, 10.0)), "x2": ("m", None),
                                      "w": ("s", None)},
                     outputs={"d2": "m^2"}, budget_s=5, double=True, points=points)
    assert result.found, result.message
    assert equivalent(result.equations["d2"], "(x2 - x1)**2", ["x1", "x2", "w"])
    tests = result.structure_tests["d2"]
    assert tests["irrelevant_inputs"].endswith("dropped ['w']")
    assert f"±{NEARBY_STEP:.0%}" in tests["irrelevant_inputs"]
    assert tests["translation_symmetry"].endswith("replaced [('x1', 'x2')]")
    assert tests["separability"].startswith("skipped on recorded points")
    assert result.inputs["x1"] == ("m", (0.0, 10.0))  # a declared range is reported as given


def test_the_result_records_the_domain_and_the_number_of_points() -> None:
    points = trajectories(400, seed=1)
    result = distill(BandTeacher(), inputs=LIFT, outputs={"a": "m/s^2"}, budget_s=5,
                     points=points)
    assert (result.domain, result.n_points, result.held_out_points) == ("recorded", 400, 100)
    data = json.loads(json.dumps(result.to_dict()))
    assert (data["domain"], data["n_points"], data["held_out_points"]) == ("recorded", 400, 100)
    assert set(data["structure_tests"]["a"]) - {"separable_groups"} == {
        "tolerance", "irrelevant_inputs", "translation_symmetry", "separability"}
    # Too few rows to hold a quarter out: every row serves fitting and rescoring alike.
    few = distill(BandTeacher(), inputs=LIFT, outputs={"a": "m/s^2"}, budget_s=5,
                  points=trajectories(MIN_RECORDED_POINTS + 10, seed=5))
    assert (few.domain, few.n_points, few.held_out_points) == ("recorded", 60, 0)


def _never_called(x: torch.Tensor) -> torch.Tensor:
    raise AssertionError("the teacher must not be asked when the points are refused")


GOOD = trajectories(100, seed=6)


@pytest.mark.parametrize(("points", "message"), [
    ({"vx": GOOD["vx"], "vy": GOOD["vy"]}, r"points: no array for inputs \['k'\]"),
    ({**GOOD, "spin": GOOD["k"]},
     r"arrays for names that are not inputs: \['spin'\].*one 1-D array per input"),
    ({**GOOD, "k": GOOD["k"][:99]},
     r"differ in length \(\{'vx': 100, 'vy': 100, 'k': 99\}\); give one value per"),
    ({**GOOD, "vy": np.where(np.arange(100) < 3, np.nan, GOOD["vy"])},
     r"points\['vy'\] has 3 non-finite values \(NaN or inf\) of 100; drop those rows"),
    ({n: v[:20] for n, v in GOOD.items()},
     rf"points: 20 recorded rows, fewer than MIN_RECORDED_POINTS = {MIN_RECORDED_POINTS}"),
    ({**GOOD, "k": GOOD["k"].reshape(50, 2)}, r"points\['k'\] has shape \(50, 2\); give a 1-D"),
    ({**GOOD, "k": np.full(100, 0.004)}, r"points\['k'\] is constant \(0.004\) over all 100"),
])
def test_bad_points_are_refused_saying_what_to_fix(points: dict, message: str) -> None:
    with pytest.raises(DistillationError, match=message):
        distill(_never_called, inputs=LIFT, outputs={"a": "m/s^2"}, budget_s=1, points=points)


def test_an_input_without_a_range_needs_recorded_points() -> None:
    with pytest.raises(DistillationError, match=r"inputs \['vx', 'vy', 'k'\] have no range"):
        distill(_never_called, inputs=LIFT, outputs={"a": "m/s^2"}, budget_s=1)


def test_a_teacher_not_finite_on_its_recorded_points_is_refused() -> None:
    def teacher(x: torch.Tensor) -> torch.Tensor:
        return torch.where(x[:, :1] > 40, torch.nan, x[:, :1])

    with pytest.raises(DistillationError, match=r"non-finite values on 1000 recorded points"):
        distill(teacher, inputs=LIFT, outputs={"a": "m/s^2"}, budget_s=1, points=GOOD)
