"""One group split off from the rest (`group_separation.split_one_off`, issue 15): bonus
test_16, the energy √((p − qA)²c² + m²c⁴) + qV, is √((P − Q)² + 1) + W in the Π groups
P = p/(mc), Q = qA/(mc), W = qV/(mc²): W splits off, P and Q do not split."""

from __future__ import annotations

import time

import numpy as np
import sympy

from registry.core.expr import symbol
from registry.distillation.candidates import evaluate, nrmse
from registry.distillation.group_separation import separate_groups, split_one_off
from registry.distillation.problem import _Problem
from registry.distillation.snapping import snap_constants

P, Q, W = (symbol(n) for n in "PQW")


def _values(n: int = 2000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"P": rng.uniform(0.05, 5, n), "Q": rng.uniform(0.05, 25, n),
            "W": rng.uniform(0.04, 25, n)}


def _problem(tolerance: float) -> _Problem:
    return _Problem(lambda x: np.zeros(1), {n: (0.0, 1.0) for n in "PQW"}, None, None,
                    tolerance, time.monotonic() + 60, np.random.default_rng(0))


def test_one_group_is_split_off_and_the_rest_solved_as_one_part() -> None:
    v = _values()
    exact = np.sqrt((v["P"] - v["Q"]) ** 2 + 1) + v["W"]
    rng = np.random.default_rng(1)
    target = exact + 1e-3 * np.std(exact) * rng.standard_normal(exact.shape)
    tolerance = 2 * nrmse(exact, target)
    p = _problem(tolerance)
    # Named as the solver names them; the label says which group, not which name.
    groups = {f"pi{i}": symbol(n) for i, n in enumerate("PQW")}
    by_name = {f"pi{i}": v[n] for i, n in enumerate("PQW")}
    kind = separate_groups(p, sympy.Integer(1), groups, by_name, target, tolerance,
                           until=time.monotonic() + 60)
    assert kind == "+"
    assert p.found and all(c.method == "separable Π groups (+, W apart)" for c in p.found)
    best = min(p.found, key=lambda c: nrmse(evaluate(c.expr, v), target))
    assert nrmse(evaluate(best.expr, v), target) < tolerance
    snapped = snap_constants(best.expr, v, target, tolerance=tolerance)
    truth = sympy.sqrt((P - Q) ** 2 + 1) + W
    assert sympy.simplify(snapped - truth) == 0, snapped


def test_a_law_where_every_group_meets_every_other_is_not_split() -> None:
    v = _values()
    target = v["P"] * v["Q"] + v["Q"] * v["W"] + v["W"] * v["P"]
    p = _problem(1e-4)
    assert split_one_off(p, sympy.Integer(1), {n: symbol(n) for n in "PQW"}, v, target, 1e-4,
                         until=time.monotonic() + 10) is None
    assert p.found == []


def test_two_groups_are_left_to_the_split_by_group() -> None:
    v = {n: a for n, a in _values().items() if n != "W"}
    target = np.sqrt((v["P"] - v["Q"]) ** 2 + 1)
    p = _problem(1e-4)
    assert split_one_off(p, sympy.Integer(1), {"P": P, "Q": Q}, v, target, 1e-4,
                         until=time.monotonic() + 10) is None
