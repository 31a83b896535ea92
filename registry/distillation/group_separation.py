"""Separability after the Π reduction: f(π₁, …, π_k) = g₁(π₁) ∘ … ∘ g_k(π_k), ∘ ∈ {·, +}.

The Lorentz transformation is (x − u·t)/√(1 − u²/c²): after dimensional analysis,
x · (1 − π₁)/√(1 − π₂²) with π₁ = u·t/x, π₂ = u/c. No Π group is an input, so the
input-level separability test (`structure.separable`) cannot see the split, and the
search over both groups needs a depth it rarely reaches. Here the split is found
from the samples alone, without asking the teacher anything: an additive model with
one Chebyshev series per group is fitted to log|f| (products) or f (sums). When it
fits within the tolerance, each group's component is a one-variable problem of its
own, solved by the quick solvers (and, where they fail, a short expression search);
the parts are multiplied (or added) back, their scale (offset) refitted, and the
result is a candidate like any other, scored and snapped against the teacher.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping

import numpy as np
import sympy

from registry.core.expr import symbol
from registry.distillation.candidates import Candidate, complexity_of, evaluate, nrmse
from registry.distillation.problem import _Problem
from registry.distillation.refine import refine_constants

__all__ = ["additive_components", "separate_groups", "split_one_off"]

DEGREE = 8  # Chebyshev degree of each group's component
MAX_GROUPS = 4
PARTS_KEPT = 5  # candidate expressions per component, the simplest within reach first
JOINT_DEGREE = 6  # of the series with cross terms the split is compared with
SPLIT_MARGIN = 1.5  # the split may fit this much worse than that series
PART_SEARCH_S = 1.5  # the expression search on each part, at most
REBASE_POWERS = (1, -1, 2, -2)  # π₁·π₂ᵏ tried as a new group with π₂
LOG_SPAN = 4.0  # a positive group spanning more than this factor is expanded in its log


def additive_components(values: Mapping[str, np.ndarray], z: np.ndarray, *,
                        degree: int = DEGREE) -> tuple[dict[str, np.ndarray], float, float]:
    """z ≈ c + Σᵢ hᵢ(vᵢ), each hᵢ a Chebyshev series over vᵢ's sampled span (no constant
    term): the sampled hᵢ, c, and the fit's nRMSE against z."""
    columns, owner = [np.ones_like(z)], [""]
    for name, v in _coordinates(values).items():
        lo, hi = float(v.min()), float(v.max())
        half = (hi - lo) / 2 or 1.0
        basis = np.polynomial.chebyshev.chebvander((v - (lo + hi) / 2) / half, degree)[:, 1:]
        columns += list(basis.T)
        owner += [name] * degree
    design = np.stack(columns, axis=1)
    coef, *_ = np.linalg.lstsq(design, z, rcond=None)
    parts = {name: sum((design[:, j] * coef[j] for j, o in enumerate(owner) if o == name),
                       np.zeros_like(z)) for name in values}
    return parts, float(coef[0]), nrmse(design @ coef, z)


def _coordinates(values: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each group as the series see it: its logarithm when it is positive and spans more
    than a factor of `LOG_SPAN` (c/u from 1.5 to 20: 1/√(1 − u²/c²) changes fast near the
    low end), else itself."""
    out = {}
    for name, v in values.items():
        positive = bool(np.all(v > 0))
        out[name] = np.log(v) if positive and float(v.max() / v.min()) > LOG_SPAN else v
    return out


def _joint_fit(values: Mapping[str, np.ndarray], z: np.ndarray) -> np.ndarray:
    """A Chebyshev series in all groups together (total degree `JOINT_DEGREE`, cross terms
    included), evaluated on the samples."""
    from registry.distillation.resolution import chebyshev_design

    coordinates = _coordinates(values)
    spans = {n: (float(v.min()), float(v.max())) for n, v in coordinates.items()}
    design = chebyshev_design(coordinates, spans, JOINT_DEGREE)
    coef, *_ = np.linalg.lstsq(design, z, rcond=None)
    return np.asarray(design @ coef)


def separate_groups(p: _Problem, prefactor: sympy.Expr, groups: Mapping[str, sympy.Expr],
                    values: Mapping[str, np.ndarray], target: np.ndarray,
                    tol: float, *, until: float) -> str | None:
    """Record prefactor · (g₁ ∘ … ∘ g_k) on `p` when target = f(groups) splits by group,
    or, for two groups that do not, by a product or ratio of them and one of them; the
    kind of split found ("·" or "+"), or None.

    Which groups the reduction returns is a choice: (t − u·x/c²)/√(1 − u²/c²) is
    t·(1 − π₂²/π₁)·g(π₂) in π₁ = u·t/x, π₂ = u/c, which splits in π₂²/π₁ and π₂."""
    kind = _split(p, prefactor, groups, values, target, tol, until=until)
    if kind is None and len(groups) >= 3:
        kind = split_one_off(p, prefactor, groups, values, target, tol, until=until)
    if kind is not None or len(groups) != 2:
        return kind
    for first, second in (list(groups), list(groups)[::-1]):
        for k in REBASE_POWERS:
            if time.monotonic() > until:
                return None
            name = f"{first}_{second}_{'m' if k < 0 else 'p'}{abs(k)}"
            with np.errstate(all="ignore"):
                combined = values[first] * values[second] ** k
            if not np.all(np.isfinite(combined)):
                continue
            kind = _split(p, prefactor, {name: groups[first] * groups[second] ** k,
                                         second: groups[second]},
                          {name: combined, second: values[second]}, target, tol, until=until)
            if kind is not None:
                return kind
    return None


def _split(p: _Problem, prefactor: sympy.Expr, groups: Mapping[str, sympy.Expr],
           values: Mapping[str, np.ndarray], target: np.ndarray,
           tol: float, *, until: float) -> str | None:
    """`separate_groups` on the groups as given."""
    names = list(groups)
    if not 2 <= len(names) <= MAX_GROUPS or len(target) < 20 * DEGREE * len(names):
        return None
    one_signed = bool(np.all(target > 0) or np.all(target < 0))
    for kind in ("·", "+"):
        if time.monotonic() > until:
            return None
        if kind == "·" and not one_signed:
            continue
        sign = 1.0 if target[0] > 0 else -1.0
        with np.errstate(all="ignore"):
            z = np.log(sign * target) if kind == "·" else target
        if not np.all(np.isfinite(z)):
            continue
        parts, constant, _ = additive_components(values, z)
        summed = constant + np.sum(list(parts.values()), axis=0)
        with np.errstate(all="ignore"):
            rebuilt = sign * np.exp(summed) if kind == "·" else summed
        # Split when the parts alone fit as well as a series with every cross term does
        # (that one fits the teacher's error too), or within the tolerance.
        full = _joint_fit(values, z)
        with np.errstate(all="ignore"):
            joint = sign * np.exp(full) if kind == "·" else full
        if not nrmse(rebuilt, target) <= max(tol, SPLIT_MARGIN * nrmse(joint, target)):
            continue
        components: dict[tuple[str, ...], np.ndarray] = {}
        for name in names:
            with np.errstate(all="ignore"):
                components[(name,)] = np.exp(parts[name]) if kind == "·" else parts[name]
        if _record_parts(p, prefactor, groups, values, target, components, kind,
                         f"separable Π groups ({kind})", until=until):
            return kind
    return None


def _solve_part(p: _Problem, part: tuple[str, ...], values: Mapping[str, np.ndarray],
                component: np.ndarray, kind: str, *, until: float) -> list[sympy.Expr]:
    """Candidate laws for one part of a split (a group, or the groups left beside one),
    ranked (`_ranked`)."""
    from registry.distillation.reduction_fits import _quick, _search_reduced

    sub = _Problem(p.teacher, {n: (float(values[n].min()), float(values[n].max()))
                               for n in part}, None, None, p.tolerance, until, p.rng)
    own = {n: values[n] for n in part}
    identity = {n: symbol(n) for n in part}
    ones = np.ones_like(component)
    _quick(sub, sympy.Integer(1), identity, own, component, ones, component)
    # The quick solvers stop at the first sparse fit (a rational approximant of
    # 1/√(1 − π⁻²) fits too): a short search is cheap and finds the law.
    _search_reduced(sub, sympy.Integer(1), identity, own, component, ones, component,
                    budget=min(PART_SEARCH_S, (until - time.monotonic()) / 2))
    return _ranked(sub.found, own, component, kind)


def _record_parts(p: _Problem, prefactor: sympy.Expr, groups: Mapping[str, sympy.Expr],
                  values: Mapping[str, np.ndarray], target: np.ndarray,
                  components: Mapping[tuple[str, ...], np.ndarray], kind: str, label: str,
                  *, until: float) -> bool:
    """Solve each part, combine them (constants refitted jointly) and record the laws on
    `p`; False when a part has no candidate."""
    options: list[list[sympy.Expr]] = []
    for part, component in components.items():
        found = _solve_part(p, part, values, component, kind, until=until)
        if not found:
            return False
        options.append(found)
    names = list(groups)
    for choice in _combinations(options):
        law = _combine(choice, kind, values, target)
        if law is not None:
            # Each part carries its own error: refit all constants together.
            law = refine_constants(law, values, target, deadline=until)
            full = prefactor * law.xreplace({symbol(n): groups[n] for n in names})
            p.found.append(Candidate(full, complexity_of(full), 0.0, label))
    return True


def split_one_off(p: _Problem, prefactor: sympy.Expr, groups: Mapping[str, sympy.Expr],
                  values: Mapping[str, np.ndarray], target: np.ndarray,
                  tol: float, *, until: float) -> str | None:
    """f(π₁, …, π_k) = g(π_i) ∘ h(the others), ∘ ∈ {·, +}, for three or more groups that
    do not split one by one: the canonical momentum's energy √((P − Q)² + 1) + W splits
    off W, and what is left is a law in two groups (a polynomial once squared). The
    split is tested as in `_split`, with h a series in its groups' cross terms; each
    side is then solved on its own and the two combined. Returns the kind found."""
    from registry.distillation.resolution import chebyshev_design

    names = list(groups)
    if not 3 <= len(names) <= MAX_GROUPS or len(target) < 20 * DEGREE * len(names):
        return None
    one_signed = bool(np.all(target > 0) or np.all(target < 0))
    coordinates = _coordinates(values)
    spans = {n: (float(v.min()), float(v.max())) for n, v in coordinates.items()}
    for kind in ("·", "+"):
        if kind == "·" and not one_signed:
            continue
        sign = 1.0 if target[0] > 0 else -1.0
        with np.errstate(all="ignore"):
            z = np.log(sign * target) if kind == "·" else target
        if not np.all(np.isfinite(z)):
            continue
        with np.errstate(all="ignore"):
            full = _joint_fit(values, z)
            joint = sign * np.exp(full) if kind == "·" else full
        bound = max(tol, SPLIT_MARGIN * nrmse(joint, target))
        for name in names:
            if time.monotonic() > until:
                return None
            rest = tuple(n for n in names if n != name)
            lo, hi = spans[name]
            half = (hi - lo) / 2 or 1.0
            alone = np.polynomial.chebyshev.chebvander(
                (coordinates[name] - (lo + hi) / 2) / half, DEGREE)[:, 1:]
            others = chebyshev_design({n: coordinates[n] for n in rest},
                                      {n: spans[n] for n in rest}, JOINT_DEGREE)
            design = np.concatenate([alone, others], axis=1)
            coef, *_ = np.linalg.lstsq(design, z, rcond=None)
            single = alone @ coef[:DEGREE]
            with np.errstate(all="ignore"):
                rebuilt = sign * np.exp(design @ coef) if kind == "·" else design @ coef
            if not nrmse(rebuilt, target) <= bound or float(np.std(single)) == 0:
                continue
            remainder = others @ coef[DEGREE:]
            with np.errstate(all="ignore"):
                components = ({(name,): np.exp(single), rest: np.exp(remainder)}
                              if kind == "·" else {(name,): single, rest: remainder})
            if _record_parts(p, prefactor, groups, values, target, components, kind,
                             f"separable Π groups ({kind}, {groups[name]} apart)", until=until):
                return kind
    return None


def _ranked(found: list[Candidate], values: Mapping[str, np.ndarray], component: np.ndarray,
            kind: str) -> list[sympy.Expr]:
    """The part's candidates up to the freedom the split leaves (a scale for a product, an
    offset for a sum), simplest within reach of the best first."""
    scored = []
    for cand in found:
        v = evaluate(cand.expr, values)
        if not np.all(np.isfinite(v)):
            continue
        if kind == "·":
            with np.errstate(over="ignore", invalid="ignore"):  # values near float's limit
                denom, cross = float(np.dot(v, v)), float(np.dot(v, component))
            if not (math.isfinite(denom) and math.isfinite(cross)):
                continue  # no scale of it is a number: not a part
            fitted = v * (cross / denom) if denom > 0 else v
        else:
            fitted = v + float(np.mean(component - v))
        scored.append((nrmse(fitted, component), cand.expr))
    if not scored:
        return []
    floor = min(err for err, _ in scored)
    near = sorted((e for e in scored if e[0] <= max(3 * floor, 1e-9)),
                  key=lambda e: complexity_of(e[1]))
    return [expr for _, expr in near[:PARTS_KEPT]]


def _combinations(options: list[list[sympy.Expr]]) -> list[list[sympy.Expr]]:
    """Each part's best option with the others', then each part's runner-up in turn."""
    first = [o[0] for o in options]
    out = [first]
    for i, opts in enumerate(options):
        out += [[*first[:i], alt, *first[i + 1:]] for alt in opts[1:]]
    return out


def _combine(parts: list[sympy.Expr], kind: str, values: Mapping[str, np.ndarray],
             target: np.ndarray) -> sympy.Expr | None:
    """The parts multiplied (with a fitted scale) or added (each with a fitted weight, and
    an offset)."""
    evaluated = [evaluate(e, values) for e in parts]
    if not all(np.all(np.isfinite(v)) for v in evaluated):
        return None
    if kind == "·":
        product = np.prod(evaluated, axis=0)
        denom = float(np.dot(product, product))
        if denom == 0:
            return None
        scale = float(np.dot(product, target)) / denom
        return sympy.Float(scale) * sympy.Mul(*parts) if math.isfinite(scale) else None
    design = np.stack([*evaluated, np.ones_like(target)], axis=1)
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    if not np.all(np.isfinite(coef)):
        return None
    return sympy.Add(*(sympy.Float(float(c)) * e for c, e in zip(coef, parts, strict=False)),
                     sympy.Float(float(coef[-1])))
