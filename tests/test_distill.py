"""The distiller: each distiller step on small known cases, the black-box contract, bad input."""

from __future__ import annotations

import math
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import sympy
import torch

from registry.core.expr import parse_expression, symbol
from registry.distillation import distill, pareto_front
from registry.distillation.candidates import Candidate, evaluate
from registry.distillation.dimensions import alternative_reductions, reduce_dimensions
from registry.distillation.quick import library, power_law, power_law_scaled, rational
from registry.distillation.search import search, search_many, to_sympy
from registry.distillation.structure import irrelevant_inputs, separable, translation_pairs


def columns(fn):
    return lambda x: fn(*x.double().unbind(-1)).reshape(-1, 1)


def test_pendulum_pi_groups() -> None:
    reduction = reduce_dimensions({"L": "m", "g": "m/s^2", "m": "kg"}, "s")
    assert reduction is not None
    assert reduction.prefactor == {"L": Fraction(1, 2), "g": Fraction(-1, 2), "m": Fraction(0)}
    assert reduction.groups == []  # T = sqrt(L/g)·const: the mass cannot matter


def test_pi_groups_of_gravity() -> None:
    reduction = reduce_dimensions({"G": "m^3 kg^-1 s^-2", "m1": "kg", "m2": "kg", "r": "m"}, "N")
    assert reduction is not None
    assert reduction.groups == [{"m1": -1, "m2": 1}]  # F = G·m1²/r² · f(m2/m1)


def test_units_that_cannot_make_the_output_give_no_reduction() -> None:
    assert reduce_dimensions({"x": "m"}, "kg") is None


def test_alternative_reductions_offer_each_choice_of_repeating_variables() -> None:
    options = alternative_reductions({"m": "kg", "v": "m/s", "c": "m/s"}, "J")
    prefactors = [{n: p for n, p in r.prefactor.items() if p} for r in options]
    assert {"m": 1, "c": 2} in prefactors and {"m": 1, "v": 2} in prefactors
    by_c = options[prefactors.index({"m": 1, "c": 2})]
    assert by_c.groups == [{"v": 1, "c": -1}]  # E = m·c²·f(v/c)


RNG = np.random.default_rng(0)


def test_power_law_with_exact_rational_exponents() -> None:
    a, b = RNG.uniform(1, 3, 300), RNG.uniform(1, 3, 300)
    fit = power_law({"a": a, "b": b}, 3 * a**1.5 / b**2)
    assert fit is not None and fit.nrmse < 1e-12
    assert fit.expr.xreplace({f: sympy.Integer(round(float(f))) for f in fit.expr.atoms(
        sympy.Float)}) == 3 * symbol("a") ** sympy.Rational(3, 2) * symbol("b") ** -2


def test_rational_fit_finds_relativistic_velocity_addition_with_few_terms() -> None:
    rng = np.random.default_rng(7)
    u, v = rng.uniform(0.1, 0.9, 400), rng.uniform(0.1, 0.9, 400)
    fit = rational({"u": u, "v": v}, (u + v) / (1 + u * v), tolerance=1e-9)
    assert fit is not None and fit.nrmse < 1e-9
    snapped = fit.expr.xreplace({f: sympy.Integer(round(float(f)))
                                 for f in fit.expr.atoms(sympy.Float)})
    u_, v_ = symbol("u"), symbol("v")
    assert sympy.simplify(snapped - (u_ + v_) / (1 + u_ * v_)) == 0
    assert len(fit.expr.atoms(sympy.Float)) == 3  # u, v, u·v: everything else pruned


def test_rational_fit_declines_what_it_cannot_fit() -> None:
    x = RNG.uniform(0.1, 3, 400)
    assert rational({"x": x}, np.exp(x), tolerance=1e-9) is None
    # At a network's noise level a dense Padé approximant would fit a Gaussian: refused.
    theta = np.random.default_rng(3).uniform(1, 3, 400)
    gauss = np.exp(-theta**2 / 2) / np.sqrt(2 * np.pi)  # Feynman I.6.2a over its range
    assert rational({"theta": theta}, gauss, tolerance=3e-3, max_terms=9) is not None
    assert rational({"theta": theta}, gauss, tolerance=3e-3) is None


def test_scaled_power_law_survives_absolute_noise() -> None:
    v, c = RNG.uniform(1, 60, 2000), RNG.uniform(0.1, 1, 2000)
    prefactor = v**2
    y = 0.5 * c * prefactor + RNG.normal(0, 0.2, 2000)  # noise that y/prefactor would blow up
    fit = power_law_scaled(prefactor, {"c": c}, y)
    assert fit is not None
    (coefficient,) = fit.expr.atoms(sympy.Float)
    assert fit.expr.as_powers_dict()[symbol("c")] == 1
    assert float(coefficient) == pytest.approx(0.5, rel=1e-2)


def test_separability_of_x_times_y_plus_z() -> None:
    def f(v):
        return v["x"] * v["y"] + v["z"]

    ranges = {"x": (1.0, 3.0), "y": (1.0, 3.0), "z": (1.0, 3.0)}
    names = list(ranges)
    assert separable(f, ranges, names, kind="add", tolerance=1e-9, rng=RNG) == (["z"], ["x", "y"])
    assert separable(f, ranges, names, kind="mul", tolerance=1e-9, rng=RNG) is None


def test_irrelevant_inputs_and_translation_symmetry() -> None:
    ranges = {"x1": (1.0, 5.0), "x2": (1.0, 5.0), "w": (1.0, 2.0)}

    def f(v):
        return (v["x2"] - v["x1"]) ** 2

    assert irrelevant_inputs(f, ranges, tolerance=1e-9, rng=RNG) == ["w"]
    units = {"x1": "m", "x2": "m", "w": "s"}
    assert translation_pairs(f, ranges, units, tolerance=1e-9, rng=RNG) == [("x1", "x2")]


def test_search_finds_the_gaussian() -> None:
    theta = RNG.uniform(1, 3, 200)
    y = np.exp(-theta**2 / 2) / math.sqrt(2 * math.pi)
    hits = search({"theta": theta}, y, deadline=time.monotonic() + 20)
    fresh = RNG.uniform(1, 3, 50)
    assert hits[-1].nrmse < 1e-9 and hits[-1].complexity <= 6
    np.testing.assert_allclose(evaluate(hits[-1].expr, {"theta": fresh}),
                               np.exp(-fresh**2 / 2) / math.sqrt(2 * math.pi), rtol=1e-9)


def test_search_keeps_shifted_building_blocks() -> None:
    """`x - 1` fits like `x`, but `1/(x - 1)` does not fit like `1/x`: shifts must be
    kept as building blocks even though they are not rescored."""
    x = np.linspace(1.5, 4.0, 200)
    hits = search({"x": x}, 3 / (x - 1), deadline=time.monotonic() + 10, tolerance=1e-12)
    assert hits[-1].nrmse < 1e-12
    assert to_sympy(hits[-1].tree) == 1 / (symbol("x") - 1)
    assert hits[-1].a == pytest.approx(3.0)


def test_search_keeps_scaled_and_negated_building_blocks() -> None:
    """`2π·g` fits like `g`, but `sin(2π·g)` does not fit like `sin(g)`: a scaled
    copy is a different building block (ħ = h/2π puts 2π inside many laws)."""
    g = RNG.uniform(0.5, 4.0, 200)
    hits = search({"g": g}, np.sin(2 * math.pi * g) ** 2, deadline=time.monotonic() + 10,
                  tolerance=1e-12)
    assert hits[-1].nrmse < 1e-12
    assert to_sympy(hits[-1].tree) == sympy.sin(2 * sympy.pi * symbol("g")) ** 2


def test_one_enumeration_scores_several_targets() -> None:
    """Bose–Einstein's 1/(eˣ − 1) is five nodes deep, its inverse two: `search_many`
    scores each expression against y and 1/y in one pass, and finds the law through 1/y
    at a depth where y alone has nothing."""
    x = RNG.uniform(0.5, 3.0, 200)
    y = 1 / (np.exp(x) - 1)
    plain, inverse = search_many({"x": x}, [(y, None), (1 / y, None)],
                                 deadline=time.monotonic() + 30, tolerance=1e-12,
                                 max_complexity=3)
    assert inverse[-1].nrmse < 1e-12 and plain[-1].nrmse > 1e-3
    assert to_sympy(inverse[-1].tree) == sympy.exp(symbol("x"))
    assert (inverse[-1].a, inverse[-1].b) == (pytest.approx(1.0), pytest.approx(-1.0))


def test_library_fit_finds_a_sparse_sum_of_products() -> None:
    """Interference, I₁ + I₂ + 2√(I₁I₂)·cos δ over I₁: three library terms."""
    r, d = RNG.uniform(0.2, 3.0, 1000), RNG.uniform(0.0, 5.0, 1000)
    fit = library({"r": r, "d": d}, 1 + r + 2 * np.sqrt(r) * np.cos(d), tolerance=1e-9)
    assert fit is not None and fit.nrmse < 1e-12
    rr, dd = symbol("r"), symbol("d")
    assert sympy.nsimplify(fit.expr, tolerance=1e-9, rational=True) == \
        1 + rr + 2 * sympy.sqrt(rr) * sympy.cos(dd)
    noise = np.random.default_rng(1).normal(size=1000)
    assert library({"r": r, "d": d}, noise, tolerance=1e-3) is None


def test_a_square_root_law_is_found_through_its_square() -> None:
    """III.10.19, E = μ·√(Bx² + By² + Bz²): after Π reduction a polynomial, once squared."""
    result = distill(columns(lambda mom, bx, by, bz: mom * torch.sqrt(bx**2 + by**2 + bz**2)),
                     inputs={"mom": ("A m^2", (1.0, 5.0)), "Bx": ("T", (1.0, 5.0)),
                             "By": ("T", (1.0, 5.0)), "Bz": ("T", (1.0, 5.0))},
                     outputs={"E": "J"}, budget_s=20, double=True)
    assert result.found, result.message
    mom, bx, by, bz = (symbol(n) for n in ("mom", "Bx", "By", "Bz"))
    found = result.chosen["E"].expr
    assert sympy.simplify(found**2 - mom**2 * (bx**2 + by**2 + bz**2)) == 0


def test_a_dense_fit_within_a_noisy_teachers_error_does_not_stop_the_search() -> None:
    """A network's error lets a four-term rational function fit `m₀/√(1 − v²/c²)` within
    the tolerance; the search must still run and the law, simpler, be chosen."""
    def noisy(x: torch.Tensor) -> torch.Tensor:
        m0, v, c = x.double().unbind(-1)
        exact = m0 / torch.sqrt(1 - v**2 / c**2)
        return (exact * (1 + 2e-3 * torch.sin(37 * v + 11 * c + 5 * m0))).reshape(-1, 1)

    result = distill(noisy, inputs={"m_0": ("kg", (1.0, 5.0)), "v": ("m/s", (1.0, 2.0)),
                                    "c": ("m/s", (3.0, 10.0))},
                     outputs={"m": "kg"}, budget_s=20, tolerance=5e-3)
    assert result.found, result.message
    m0, v, c = (symbol(n) for n in ("m_0", "v", "c"))
    assert sympy.simplify(result.chosen["m"].expr - m0 / sympy.sqrt(1 - v**2 / c**2)) == 0


def test_a_distance_is_found_through_its_absolute_prefactor() -> None:
    def fn(x: torch.Tensor) -> torch.Tensor:
        x1, x2, y1, y2 = x.double().unbind(-1)
        return torch.sqrt((x2 - x1) ** 2 + (y2 - y1) ** 2).reshape(-1, 1)

    result = distill(fn, inputs={n: ("m", (1.0, 5.0)) for n in ("x1", "x2", "y1", "y2")},
                     outputs={"d": "m"}, budget_s=20, tolerance=1e-6, double=True)
    assert result.found, result.message
    x1, x2, y1, y2 = (symbol(n) for n in ("x1", "x2", "y1", "y2"))
    found = result.chosen["d"].expr
    assert sympy.simplify(found**2 - ((x2 - x1) ** 2 + (y2 - y1) ** 2)) == 0


def test_wrong_declared_units_are_reported_not_hidden() -> None:
    """The law fits only against the declared units: say so, and still show it."""
    result = distill(columns(lambda a, b: a * b), inputs={"a": ("s", (1.0, 3.0)),
                                                       "b": ("kg", (1.0, 3.0))},
                     outputs={"y": "kg/s"}, budget_s=5, tolerance=1e-6, double=True)
    assert not result.found
    assert "contradicts the declared units" in result.message
    assert sympy.simplify(result.chosen["y"].expr - symbol("a") * symbol("b")) == 0


def test_pareto_front_keeps_only_undominated() -> None:
    x = sympy.Integer(1)
    cands = [Candidate(x, 3, 0.1, "a"), Candidate(x, 5, 0.2, "b"), Candidate(x, 7, 0.01, "c")]
    assert [c.method for c in pareto_front(cands)] == ["a", "c"]


def equivalent(a: sympy.Expr, b: sympy.Expr) -> bool:
    """Equal as functions of positive inputs (sqrt(L/g) = sqrt(L)/sqrt(g) needs L, g > 0)."""
    positive = {s: sympy.Symbol(s.name, positive=True) for s in a.free_symbols | b.free_symbols}
    return sympy.simplify(a.xreplace(positive) - b.xreplace(positive)) == 0


class Opaque:
    """A teacher that can only be called: any other look raises."""

    def __init__(self, fn) -> None:
        object.__setattr__(self, "_fn", fn)
        object.__setattr__(self, "calls", 0)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        object.__setattr__(self, "calls", self.calls + 1)
        return self._fn(x)

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the distiller inspected the teacher's `{name}`")


def test_the_teacher_is_a_black_box_even_when_it_is_an_equation_module() -> None:
    from registry.nn.equation import EquationModule

    expr = parse_expression("2*pi*sqrt(L/g)", names=["L", "g"])
    module = EquationModule({"T": expr}, inputs=["L", "g"], dtype=torch.float64)
    teacher = Opaque(module)
    result = distill(teacher, inputs={"L": ("m", (0.1, 2.0)), "g": ("m/s^2", (1.0, 20.0))},
                     outputs={"T": "s"}, budget_s=20, double=True)
    assert result.found, result.message
    assert equivalent(parse_expression(result.equations["T"], names=["L", "g"]), expr)
    assert teacher.calls > 0


def test_multiplicative_structure_without_units() -> None:
    result = distill(columns(lambda x, y, z: x * y + z),
                     inputs={"x": (None, (1.0, 3.0)), "y": (None, (1.0, 3.0)),
                             "z": (None, (1.0, 3.0))}, outputs={"w": None}, budget_s=20,
                     double=True)
    assert result.equations == {"w": "x*y + z"}


def test_a_noise_teacher_gives_no_equation_and_says_so() -> None:
    generator = torch.Generator().manual_seed(0)
    result = distill(lambda x: torch.randn(x.shape[0], 1, generator=generator),
                     inputs={"x": ("m", (1.0, 2.0)), "y": ("s", (1.0, 2.0))},
                     outputs={"z": "m"}, budget_s=3)
    assert not result.found
    assert result.message.startswith("`z`: no equation found within 3 s; best candidates: ")
    from registry.errors import DistillationError

    with pytest.raises(DistillationError, match="no equation found"):
        result.manifest("noise")


def test_drag_net_distils_to_the_exact_quadratic_law(reg, repo: Path, tmp_path: Path) -> None:
    reg.register(repo / "modules" / "drag-net")
    report = reg.distill("drag-net@1.0.0", budget_s=30, name="drag-eq", out=tmp_path)
    assert report.result.equations == {"F": "A*C_d*rho*v**2/2"}
    assert report.teacher_cost.flops.forward / report.student_cost.flops.forward > 1000
    manifest_text = (tmp_path / "drag-eq" / "module.yaml").read_text()
    assert "distilled_from: drag-net@1.0.0" in manifest_text
    assert (tmp_path / "drag-eq" / "pareto.png").stat().st_size > 1000


def test_a_log_fit_with_a_huge_constant_does_not_crash_the_back_transform() -> None:
    """A fit of log f with constant 800 has e^800 outside floating point: the candidate
    is kept in sympy's own numbers (and then fails on evaluation), not a crash."""
    from registry.distillation.transforms import _back, _transforms

    log = next(t for t in _transforms(np.array([1.0, 2.0])) if t.name == "log")
    law = _back(log, sympy.Float(800.0) + symbol("x"), 1.0)
    assert law is not None and law.has(sympy.exp(symbol("x")))
    assert not np.isfinite(evaluate(law, {"x": np.array([1.0])})).all()


def test_snapping_prefers_the_simplest_number_the_teacher_allows() -> None:
    """With a network's 0.1 % error both 44/7 and 2π fit 6.2857 (II.34.29b, g·μ·B·J/ħ):
    the simpler, 2π, is the law; 3/(20π) needs a denominator of 20."""
    from registry.distillation.snapping import snap_constants

    b, h = RNG.uniform(1, 5, 500), RNG.uniform(1, 5, 500)
    noise = 1 + 1e-3 * np.random.default_rng(3).normal(size=500)
    bb, hh = symbol("B"), symbol("h")
    assert snap_constants(sympy.Float(6.2857) * bb / hh, {"B": b, "h": h},
                          2 * np.pi * b / h * noise, tolerance=5.7e-3) == 2 * sympy.pi * bb / hh
    assert snap_constants(sympy.Float(0.0477462) * bb / hh, {"B": b, "h": h},
                          3 / (20 * np.pi) * b / h * noise, tolerance=2.2e-3) == \
        3 * bb / (20 * sympy.pi * hh)
