"""A rational fit's numerator solved on its own (`numerators.py`, issue 15): the relativistic
Doppler factor √(1 − β²)/(1 + β·cos θ), which the rational solver writes with a polynomial
numerator (1.0007 − 0.53·β²)."""

from __future__ import annotations

import time

import numpy as np
import sympy

from registry.core.expr import symbol
from registry.distillation.candidates import evaluate, nrmse
from registry.distillation.numerators import numerator_laws
from registry.distillation.snapping import snap_constants

BETA, THETA = symbol("b"), symbol("th")


def _doppler(noise: float) -> tuple[dict[str, np.ndarray], np.ndarray, float]:
    rng = np.random.default_rng(0)
    b, th = rng.uniform(0.05, 0.6, 2000), rng.uniform(0, 6, 2000)
    exact = np.sqrt(1 - b**2) / (1 + b * np.cos(th))
    t = exact * (1 + noise * rng.standard_normal(b.shape))
    return {"b": b, "th": th}, t, float(np.sqrt(np.mean((t - exact) ** 2)) / np.std(t))


def _stand_in() -> sympy.Expr:
    return ((sympy.Float(1.00066) - sympy.Float(0.5305) * BETA**2)
            / (1 + sympy.Float(1.0005) * BETA * sympy.cos(THETA)))


def test_the_numerator_of_a_rational_fit_is_found_as_a_root() -> None:
    values, t, error = _doppler(1e-3)
    laws = numerator_laws(_stand_in(), values, t, 2 * error,
                          deadline=time.monotonic() + 30)
    assert laws, "no law found for the numerator"
    truth = sympy.sqrt(1 - BETA**2) / (1 + BETA * sympy.cos(THETA))
    best = min(laws, key=lambda law: nrmse(evaluate(law, values), t))
    assert nrmse(evaluate(best, values), t) < 2 * error
    snapped = snap_constants(best, values, t, tolerance=2 * error)
    assert sympy.simplify(snapped - truth) == 0, snapped


def test_a_numerator_using_every_variable_or_one_term_is_left_alone() -> None:
    values, t, _ = _doppler(0.0)
    whole = (BETA + sympy.Float(0.3) * sympy.cos(THETA)) / (1 + BETA * sympy.cos(THETA))
    single = sympy.Float(0.9) * BETA**2 / (1 + BETA * sympy.cos(THETA))
    deadline = time.monotonic() + 30
    assert numerator_laws(whole, values, t, 1e-3, deadline=deadline) == []
    assert numerator_laws(single, values, t, 1e-3, deadline=deadline) == []
    assert numerator_laws(sympy.Float(2.0) * BETA, values, t, 1e-3, deadline=deadline) == []


def test_no_law_is_returned_past_the_deadline() -> None:
    values, t, error = _doppler(1e-3)
    assert numerator_laws(_stand_in(), values, t, 2 * error,
                          deadline=time.monotonic() - 1) == []
