"""The entry point: distill a callable into one equation per output.

By default the teacher is asked over the box of the input ranges. With `points`
(the inputs a part of a network was recorded with) it is asked only on those
rows and close to them: see `domain.py` for what that changes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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
from registry.jobs import run_tasks, scheduler_address

__all__ = ["distill", "solve_task"]


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
    jobs: int = 1,
    cluster: str | None = None,
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

    `jobs` > 1 (a Dask LocalCluster of worker processes) or `cluster` (a scheduler's
    address; only when given: a distillation already running in a worker never fans out
    again because of the environment) solves the outputs side by side, one task each
    (`registry.jobs`); `min(jobs, outputs)` of them share the wall-clock budget, so each
    gets more time than one output after another would. `fn` then travels to the
    workers: give a picklable callable (`teacher.LoadedTeacher` ships a registered module
    by its reference, and each worker loads it, hashes checked). Energy is summed over
    the workers' tasks and this process.
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
    address = scheduler_address(cluster) if cluster else None
    fanned = address is not None or (jobs > 1 and len(outputs) > 1)
    # outputs side by side share the wall-clock budget as one output at a time would
    budget = budget_s * (min(jobs, len(outputs)) if fanned else 1) / len(outputs)
    tasks = [_OutputTask(fn, names, index, dict(ranges), units if has_units else None,
                         out_unit if has_units else None, budget, tolerance, seed, domain,
                         double, track=fanned)
             for index, out_unit in enumerate(outputs.values())]
    with track_energy() as tracker:
        if fanned:
            solved = _fanned(tasks, list(outputs), jobs=jobs, cluster=address)
        else:
            solved = [solve_task(task) for task in tasks]
    energy = tracker.report
    for output, (candidates, working, notes, spent) in zip(outputs, solved, strict=True):
        structure[output] = notes
        energy = energy.plus(spent) if spent is not None else energy
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
                         energy, domain=domain.kind, n_points=domain.n_points,
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


@dataclass(frozen=True)
class _OutputTask:
    """One output's search: everything a worker needs (picklable when `fn` is)."""

    fn: Callable[..., Any]
    names: list[str]
    index: int
    ranges: dict[str, tuple[float, float]]
    units: dict[str, str | None] | None
    out_unit: str | None
    budget_s: float
    tolerance: float
    seed: int
    domain: Domain
    double: bool
    track: bool  # measure this task's energy (it runs in a worker, outside this process)


def solve_task(task: _OutputTask) -> tuple[list[Any], float, dict[str, str], Any]:
    """One output solved: (candidates, the tolerance worked to, the structure notes, the
    task's energy report when `task.track`, else None)."""
    from contextlib import nullcontext

    from registry.cost.energy import track_energy

    notes: dict[str, str] = {}
    with track_energy() if task.track else nullcontext() as tracker:
        teacher = teacher_from_callable(task.fn, task.names, task.index, double=task.double)
        candidates, working = solve_output(
            teacher, task.ranges, units=task.units,  # type: ignore[arg-type]
            out_unit=task.out_unit, budget_s=task.budget_s, tolerance=task.tolerance,
            seed=task.seed, domain=task.domain, notes=notes)
    return candidates, working, notes, tracker.report if tracker is not None else None


def _fanned(tasks: list[_OutputTask], outputs: list[str], *, jobs: int,
            cluster: str | None) -> list[tuple[list[Any], float, dict[str, str], Any]]:
    """The outputs' tasks on Dask; a task that failed names its output and why."""
    results = run_tasks(solve_task, tasks, jobs=max(1, min(jobs, len(tasks))), cluster=cluster,
                        preload=("torch", "sympy", "scipy", "registry.distillation"))
    failed = [f"`{outputs[r.index]}`: {r.error}" for r in results if not r.ok]
    if failed:
        raise DistillationError("distilling on Dask failed: " + "; ".join(failed))
    return [r.value for r in results]  # type: ignore[misc]
