"""The entry point: distill a callable into one equation per output.

By default the teacher is asked over the box of the input ranges. With `points`
(the inputs a part of a network was recorded with) it is asked only on those
rows and close to them: see `domain.py` for what that changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from registry.distillation.domain import (
    Domain,
    box_domain,
    check_points,
    ranges_of,
    recorded_domain,
)
from registry.distillation.result import DistillResult, _choose, pareto_front
from registry.distillation.solver import solve_output
from registry.distillation.teacher import teacher_from_callable
from registry.errors import DistillationError

__all__ = ["distill"]


def distill(
    fn: Callable[..., Any],
    *,
    inputs: Mapping[str, tuple[str | None, tuple[float, float] | None]],
    outputs: Mapping[str, str | None],
    budget_s: float = 60.0,
    tolerance: float = 1e-5,
    seed: int = 0,
    double: bool = False,
    points: Mapping[str, np.ndarray] | None = None,
) -> DistillResult:
    """Find equations for `fn` (a `(batch, n_inputs)` tensor → `(batch, n_outputs)` callable).

    `inputs` maps names to (unit or None, (low, high)); `outputs` to units. Units
    enable dimensional analysis; without them the search is over raw inputs.
    `tolerance` is the relative error (nRMSE) the teacher is trusted to: use the
    network's own test error when distilling a network. The teacher is only called, with
    float32 inputs (as networks run) or float64 ones with `double`.

    `points` (one 1-D array per input, all one length, at least `MIN_RECORDED_POINTS`):
    the inputs the teacher was recorded with. Every point the teacher is then asked about
    is one of these rows (drawn with replacement by the seeded generator; candidates are
    rescored on rows held out of fitting) or a small step from one, never the box; an
    input's range may then be None (the recorded min and max are reported instead).
    """
    from registry.core.expr import format_expression
    from registry.cost.energy import track_energy

    names = list(inputs)
    domain = _domain(inputs, points, seed)
    ranges = domain.ranges
    units = {n: u for n, (u, _) in inputs.items()}
    has_units = all(u is not None for u in units.values())
    start = time.monotonic()
    chosen, pareto, equations, problems = {}, {}, {}, []
    structure: dict[str, dict[str, str]] = {}
    budget_use: dict[str, str] = {}
    with track_energy() as tracker:
        for index, (output, out_unit) in enumerate(outputs.items()):
            teacher = teacher_from_callable(fn, names, index, double=double)
            budget = budget_s / len(outputs)
            structure[output] = {}
            candidates, working = solve_output(
                teacher, ranges, units=units if has_units else None,  # type: ignore[arg-type]
                out_unit=out_unit if has_units else None, budget_s=budget, tolerance=tolerance,
                seed=seed, domain=domain, notes=structure[output])
            snapped = structure[output].pop("snapping", "")
            budget_use[output] = structure[output].pop("budget", "") + (
                f"; {snapped}" if snapped else "")
            pareto[output] = pareto_front(candidates)
            pick = _choose(candidates, working)
            if pick is None or pick.nrmse > 3 * tolerance:
                best = ", ".join(f"{format_expression(c.expr)} (nRMSE {c.nrmse:.3g})"
                                 for c in pareto[output][-3:]) or "none"
                problems.append(f"`{output}`: no equation found within {budget:.0f} s; best "
                                f"candidates: {best}")
                if pick is not None:
                    chosen[output] = pick
                continue
            chosen[output] = pick
            if not pick.units_ok:
                problems.append(f"`{output}`: {format_expression(pick.expr)} fits the teacher "
                                f"(nRMSE {pick.nrmse:.3g}) but contradicts the declared units; "
                                "check the units of the inputs and output")
                continue
            equations[output] = format_expression(pick.expr)
    found = not problems
    message = "; ".join(problems) if problems else "found: " + ", ".join(
        f"{k} = {v}" for k, v in equations.items())
    return DistillResult(equations, chosen, pareto, found, message,
                         {n: (units[n] or "1", ranges[n]) for n in names},
                         {k: v or "1" for k, v in outputs.items()}, time.monotonic() - start,
                         tracker.report, domain=domain.kind, n_points=domain.n_points,
                         held_out_points=domain.held_out_points, structure_tests=structure,
                         budget_use=budget_use)


def _domain(inputs: Mapping[str, tuple[str | None, tuple[float, float] | None]],
            points: Mapping[str, np.ndarray] | None, seed: int) -> Domain:
    """The box over the declared ranges, or the recorded `points` (checked), with ranges
    as declared or else the recorded min and max."""
    if points is None:
        missing = [n for n, (_, r) in inputs.items() if r is None]
        if missing:
            raise DistillationError(f"inputs {missing} have no range: give (low, high) for "
                                    "each, or recorded `points` to distil on")
        return box_domain({n: (float(r[0]), float(r[1]))  # type: ignore[index]
                           for n, (_, r) in inputs.items()})
    columns = check_points(points, list(inputs))
    recorded = ranges_of(columns)
    ranges = {n: (float(r[0]), float(r[1])) if r is not None else recorded[n]
              for n, (_, r) in inputs.items()}
    return recorded_domain(columns, ranges, seed=seed)
