"""Issue 15's engine pieces of this round, each on a small known case: transforms fitted
on the points clear of the teacher's error (`trusted.py`), occupation laws of one group
(`occupation.py`), a refit in y's own space through a prefactor, and the chooser that
passes over a truncated series for the law a few nodes longer."""

from __future__ import annotations

import time

import numpy as np
import sympy

from registry.core.expr import symbol
from registry.distillation.candidates import Candidate, evaluate, nrmse
from registry.distillation.occupation import occupation_laws
from registry.distillation.refine import refine_constants
from registry.distillation.result import _choose
from registry.distillation.trusted import trusted_points, trusted_transforms


def _recorder() -> tuple[list[tuple[sympy.Expr, str]], object]:
    found: list[tuple[sympy.Expr, str]] = []
    return found, lambda expr, method: found.append((expr, method))


def _gaussian(n: int = 1000) -> tuple[dict[str, np.ndarray], np.ndarray]:
    rng = np.random.default_rng(0)
    v = {"theta": rng.uniform(0.5, 5, n), "sigma": rng.uniform(1, 3, n)}  # tails to 10⁻⁶
    y = np.exp(-(v["theta"] / v["sigma"]) ** 2 / 2) / (np.sqrt(2 * np.pi) * v["sigma"])
    return v, y


def test_trusted_points_leave_out_what_lies_within_the_teachers_error_of_zero() -> None:
    target = np.concatenate([np.linspace(1, 2, 80), [-0.001, 0.0005, 0.002] * 5, [0.4] * 5])
    mask = trusted_points(target, tolerance=0.01)
    assert mask is not None
    assert mask.sum() == 85 and not mask[80:95].any()  # the 15 near 0 (one below it)
    assert trusted_points(-target, tolerance=0.01).sum() == 85  # the other side of 0
    assert trusted_points(np.linspace(-1, 1, 100), tolerance=0.5) is None  # too few left


def test_a_gaussian_with_a_tail_below_zero_is_found_on_the_trusted_points() -> None:
    v, y = _gaussian()
    rng = np.random.default_rng(1)
    # A teacher's error: 5·10⁻⁴ of the spread everywhere, so the tail dips below 0.
    noisy = y + rng.normal(0, 5e-4 * np.std(y), len(y))
    assert np.any(noisy < 0)
    tolerance = 2e-3
    found, record = _recorder()
    count = trusted_transforms(v, noisy, tolerance, record, deadline=time.monotonic() + 30)
    assert count >= 1
    law, method = next((e, m) for e, m in found if m.startswith("library of the log"))
    assert method.endswith("on trusted points")
    fresh = _gaussian(400)
    assert nrmse(evaluate(law, fresh[0]), fresh[1]) < tolerance
    # Its structure: exp of a multiple of θ²/σ², over σ (the constants refitted).
    theta, sigma = symbol("theta"), symbol("sigma")
    (exponential,) = law.atoms(sympy.exp)
    coefficient, rest = exponential.args[0].as_coeff_Mul()
    assert rest == theta**2 / sigma**2 and abs(float(coefficient) + 0.5) < 1e-3


def test_occupation_laws_fit_planck_and_fermi_dirac_forms_of_one_group() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(0.05, 4.0, 1000)
    found, record = _recorder()
    planck = 2.5 * x / np.expm1(0.7 * x)
    assert occupation_laws({"x": x}, planck, 1e-3, record,
                           deadline=time.monotonic() + 30) == 1
    law, method = found[0]
    assert method == "Bose–Einstein law"
    constants = sorted(float(f) for f in law.atoms(sympy.Float))
    assert np.allclose(constants, [0.7, 2.5], rtol=1e-4)
    found.clear()
    fermi = 1 / (np.exp(1.3 / x) + 1)  # e = −1: the group the other way up
    assert occupation_laws({"x": x}, fermi, 1e-3, record, deadline=time.monotonic() + 30) == 1
    assert found[0][1] == "Fermi–Dirac law"
    assert nrmse(evaluate(found[0][0], {"x": x}), fermi) < 1e-6
    # Two groups, or a law of another family: nothing.
    assert occupation_laws({"x": x, "z": x}, planck, 1e-3, record,
                           deadline=time.monotonic() + 30) == 0
    assert occupation_laws({"x": x}, np.sin(x) + 2, 1e-3, record,
                           deadline=time.monotonic() + 30) == 0


def test_a_refit_through_a_prefactor_is_made_in_ys_own_space() -> None:
    rng = np.random.default_rng(0)
    x = rng.uniform(1, 2, 500)
    pre = rng.uniform(1e-3, 1.0, 500)  # a small prefactor blows an error of y up in y/pre
    y = pre * 3 * x + rng.normal(0, 1e-3, 500)
    start = sympy.Float(2.5) * symbol("x")
    in_y = refine_constants(start, {"x": x}, y, scale=pre)
    in_target = refine_constants(start, {"x": x}, y / pre)
    coefficient = float(next(iter(in_y.atoms(sympy.Float))))
    assert abs(coefficient - 3) < 2e-3
    assert abs(coefficient - 3) < abs(float(next(iter(in_target.atoms(sympy.Float)))) - 3)


def test_the_chooser_passes_over_a_truncated_series_for_a_law_that_fits_far_better() -> None:
    x = symbol("x")
    series = Candidate(1 / x - sympy.Rational(1, 2), 13, 3.35e-3, "library")
    law = Candidate(1 / (sympy.exp(x) - 1), 18, 1.68e-3, "Bose–Einstein law")
    overfit = Candidate(sympy.sin(x) / x + x**3, 33, 1.60e-3, "search")
    assert _choose([series, law, overfit], 4.08e-3) is law  # 2× better for 5 nodes
    # 1.18× better for 7 nodes is not enough (6 % a node): the shorter one stays.
    close = Candidate(1 / x, 25, 8.9e-4, "search")
    short = Candidate(x, 18, 1.05e-3, "search")
    assert _choose([short, close], 1.94e-3) is short
    # A candidate already far inside the tolerance is kept, whatever comes closer.
    exact = Candidate(x, 10, 1e-9, "power law")
    closer = Candidate(x + 0 * x**2, 12, 1e-12, "search")
    assert _choose([exact, closer], 1e-5) is exact
