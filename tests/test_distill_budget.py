"""Distillation budgets (issue 15): a budget is kept, and says where it went; the benchmark's
bonus table, noisy teachers and crash-free rows."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
import sympy
import torch

from registry.distillation import distill
from registry.distillation.problem import _Problem
from registry.distillation.snapping import snap_constants

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _unfindable(x: torch.Tensor) -> torch.Tensor:
    a, b, c = x[:, 0], x[:, 1], x[:, 2]
    return (torch.sin(a * b**2) * torch.exp(torch.cos(3 * a + b))
            + torch.atan(c**3 / (1 + a))).reshape(-1, 1)


def test_a_two_second_budget_ends_by_four_seconds_on_a_law_it_cannot_find() -> None:
    started = time.monotonic()
    result = distill(_unfindable, inputs={n: ("m", (1.0, 3.0)) for n in "abc"},
                     outputs={"y": "1"}, budget_s=2.0)
    elapsed = time.monotonic() - started
    assert elapsed < 4.0, elapsed
    assert not result.found and "no equation found within 2 s" in result.message
    note = result.budget_use["y"]
    assert note.startswith(("finished in", "ran out during")) and "of 2 s" in note


def test_snapping_past_its_deadline_stops_at_once() -> None:
    x = {"a": np.linspace(1, 2, 50)}
    expr = sympy.Float(3.14159265) * sympy.Symbol("a") + sympy.Float(0.5000001)
    y = np.pi * x["a"] + 0.5
    assert snap_constants(expr, x, y, tolerance=1e-6) == sympy.pi * sympy.Symbol("a") + \
        sympy.Rational(1, 2)
    started = time.monotonic()
    assert snap_constants(expr, x, y, tolerance=1e-6, deadline=time.monotonic() - 1) == expr
    assert time.monotonic() - started < 0.05


def test_a_stage_entered_past_the_deadline_names_the_one_that_overran() -> None:
    problem = _Problem(lambda v: np.zeros(1), {"a": (0.0, 1.0)}, None, None, 1e-5,
                       time.monotonic() + 60, np.random.default_rng(0))
    assert problem.enter("search") and problem.stage == "search"
    problem.deadline = time.monotonic() - 1
    assert not problem.enter("snapping")
    assert problem.ran_out_in == "search" and problem.stage == "search"


# the benchmark ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def feynman_script():  # the benchmark script, as a module (its data not needed)
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import feynman as module
    finally:
        sys.path.remove(str(BENCHMARKS))
    return module


@pytest.fixture(scope="module")
def feynman(feynman_script):  # … with the Feynman tables beside the checkout
    module = feynman_script
    if not (module.DATA / "BonusEquations.csv").is_file():
        pytest.skip(f"the Feynman tables are not here ({module.DATA}): the benchmark's data "
                    "lives in the workspace's shared/ folder beside the checkout")
    return module


def test_the_bonus_table_loads_with_units_for_every_variable(feynman) -> None:
    bonus = feynman.load_table("bonus")
    units = feynman.load_units(feynman.DATA / "units.csv")
    assert len(bonus) == 20 and {eq["table"] for eq in bonus} == {"bonus"}
    assert bonus[0]["id"] == "test_1" and bonus[19]["id"] == "test_20"
    missing = {n for eq in bonus for n in [*eq["names"], eq["output"]] if n not in units}
    assert missing == set()
    assert len(feynman.load_table("both")) == 120


def test_noise_is_sigma_times_the_targets_standard_deviation() -> None:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import feynman
    finally:
        sys.path.remove(str(BENCHMARKS))
    y = torch.linspace(0, 10, 100_000, dtype=torch.float64)
    noisy = feynman.noisy(y, 0.1)
    assert float((noisy - y).std()) == pytest.approx(0.1 * float(y.std()), rel=0.02)
    assert torch.equal(feynman.noisy(y, 0.0), y)


def test_a_method_that_crashes_is_a_row_with_its_reason(feynman,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(*args: object, **kwargs: object) -> None:
        raise KeyError("epsilon")

    monkeypatch.setattr(feynman, "run_ours", crash)
    row = feynman.run_equation(("test_12", "bonus", ["teacher"], 1.0, 0.0, False, "plain"))
    assert row["teacher_recovered"] is False and row["teacher_equation"] == ""
    assert row["teacher_error"].startswith("KeyError: 'epsilon' (test_distill_budget.py:")
    assert row["table"] == "bonus" and row["id"] == "test_12"


def test_a_careful_teacher_learns_log_y_where_the_target_spans_decades_of_one_sign(
        feynman_script, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--teacher-fit careful`: a one-signed target spanning more than LOG_SPAN is learnt
    as log|y| and answered as sign × exp; one crossing zero, or spanning less, as y."""
    monkeypatch.setattr(feynman_script, "TEACHER_FITS", {"plain": (200, 20, False),
                                                  "careful": (200, 20, True)})
    eq = {"names": ["x", "z"], "ranges": {"x": (1.0, 10.0), "z": (1.0, 2.0)}}

    def steep(x: torch.Tensor) -> torch.Tensor:  # -x⁻³·z: negative, spans 1,000 × 2
        return -(x[:, 0:1] ** -3) * x[:, 1:2]

    def crossing(x: torch.Tensor) -> torch.Tensor:
        return x[:, 0:1] - 5.0

    careful, _ = feynman_script.train_teacher(steep, eq, fit="careful")
    assert isinstance(careful, feynman_script.LogTeacher) and careful.sign == -1.0
    probe = torch.tensor([[2.0, 1.5]])
    with torch.no_grad():
        assert torch.equal(careful(probe), -torch.exp(careful.net(probe)))
        assert float(careful(probe)) < 0
    plain, _ = feynman_script.train_teacher(steep, eq, fit="plain")
    assert not isinstance(plain, feynman_script.LogTeacher)
    small = torch.stack([torch.linspace(5.0, 10.0, 200), torch.full((200,), 1.5)], dim=1)
    with torch.no_grad():  # where |y| is small, the log fit's relative error is far lower
        rel = [float(((t(small) - steep(small)) / steep(small)).abs().median())
               for t in (careful, plain)]
    assert rel[0] * 3 < rel[1], rel
    assert not isinstance(feynman_script.train_teacher(crossing, eq, fit="careful")[0],
                          feynman_script.LogTeacher)
