"""Where the distiller asks the teacher: a box over the input ranges, or recorded points.

A network trained on data is only trusted where the data went. The default
domain is the box over the declared input ranges (each input drawn uniformly
and independently). A part of a network (the residual MLP inside an ODE
composite, an encoder block) saw inputs that are correlated and lie on the
manifold the data visited: a box over their ranges holds points it never saw,
where it extrapolates wildly. With recorded points (`distill(..., points=...)`)
every point the solver asks the teacher about is a recorded row, drawn with
replacement by the seeded generator: fitting from one share of the rows
(`sample`), rescoring and the solver's stop test from the rows held out
(`held_out`, when there are enough of them).

The structure tests on recorded points (see `structure.py`) stay where the part
was trained:

- irrelevant inputs: each input is moved by ±`NEARBY_STEP` of its recorded spread
  (max − min) around recorded points; an input counts as irrelevant only when the
  output's change, scaled up to a full-spread move (÷ `NEARBY_STEP`), is within the
  tolerance, and only when the teacher stays finite there;
- translation symmetry: the same, both inputs of a same-unit pair moved together;
- separability: skipped. Testing it mixes the coordinates of two distant points,
  and using a split means querying f(A, B₀) with B₀ held fixed while A ranges over
  its values: both leave the manifold, which no small perturbation avoids.

`DistillResult.domain`, `.n_points`, `.held_out_points` and `.structure_tests`
say which domain was used and what each structure test did.

Example:
    >>> columns = check_points({"vx": vx, "vy": vy}, ["vx", "vy"])   # 400 rows each
    >>> domain = recorded_domain(columns, ranges_of(columns), seed=0)
    >>> domain.kind, domain.n_points, domain.held_out_points, domain.sample(1000, rng)["vx"].shape
    ('recorded', 400, 100, (1000,))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from registry.errors import DistillationError

__all__ = ["HELD_OUT_FRACTION", "MIN_RECORDED_POINTS", "NEARBY_STEP", "Domain",
           "box_domain", "check_points", "ranges_of", "recorded_domain"]

MIN_RECORDED_POINTS = 50  # fewer recorded rows cannot tell a law from a fit of them
HELD_OUT_FRACTION = 0.25  # rows kept out of fitting, for rescoring candidates
MIN_HELD_OUT = 50  # below this many held-out rows, rescoring uses every row
NEARBY_STEP = 0.02  # structure tests on recorded points move inputs by 2 % of their spread


@dataclass(frozen=True)
class Domain:
    """Where to query the teacher. `fit` is None for the box over `ranges`."""

    ranges: dict[str, tuple[float, float]]
    fit: dict[str, np.ndarray] | None = None
    test: dict[str, np.ndarray] | None = None

    @property
    def kind(self) -> str:
        return "box" if self.fit is None else "recorded"

    @property
    def n_points(self) -> int | None:
        """Recorded rows (fitting and held out together); None for the box."""
        if self.fit is None:
            return None
        held = self.held_out_points or 0
        return _length(self.fit) + held

    @property
    def held_out_points(self) -> int | None:
        """Rows kept out of fitting (0: too few, rescoring uses every row); None for the box."""
        if self.fit is None:
            return None
        return 0 if self.test is None or self.test is self.fit else _length(self.test)

    @property
    def spread(self) -> dict[str, float]:
        """Each input's recorded spread (max − min), or its range's width for the box."""
        rows = self._all()
        if rows is None:
            return {n: hi - lo for n, (lo, hi) in self.ranges.items()}
        return {n: float(v.max() - v.min()) for n, v in rows.items()}

    def sample(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Points to fit on: uniform in the box, or recorded rows drawn with replacement."""
        if self.fit is None:
            return {name: rng.uniform(low, high, n) for name, (low, high) in self.ranges.items()}
        return _draw(self.fit, n, rng)

    def held_out(self, n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        """Points to score on: the box again, or the rows kept out of fitting."""
        if self.test is None:
            return self.sample(n, rng)
        return _draw(self.test, n, rng)

    def _all(self) -> dict[str, np.ndarray] | None:
        if self.fit is None:
            return None
        if self.test is None or self.test is self.fit:
            return self.fit
        return {n: np.concatenate([self.fit[n], self.test[n]]) for n in self.fit}


def box_domain(ranges: Mapping[str, tuple[float, float]]) -> Domain:
    return Domain(dict(ranges))


def _length(rows: Mapping[str, np.ndarray]) -> int:
    return len(next(iter(rows.values()))) if rows else 0


def _draw(rows: Mapping[str, np.ndarray], n: int,
          rng: np.random.Generator) -> dict[str, np.ndarray]:
    index = rng.integers(0, _length(rows), n)
    return {name: values[index] for name, values in rows.items()}


def check_points(points: Mapping[str, object], names: list[str]) -> dict[str, np.ndarray]:
    """The recorded points as float64 columns, or a DistillationError saying what to fix."""
    given = list(points)
    missing = [n for n in names if n not in points]
    unknown = [n for n in given if n not in names]
    if missing or unknown:
        parts = ([f"no array for inputs {missing}"] if missing else []) + (
            [f"arrays for names that are not inputs: {unknown}"] if unknown else [])
        raise DistillationError(f"points: {'; '.join(parts)}. Give one 1-D array per input "
                                f"named in `inputs` ({names}), under the same names")
    columns: dict[str, np.ndarray] = {}
    for name in names:
        try:
            column = np.asarray(points[name], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise DistillationError(f"points[{name!r}] is not an array of numbers ({exc}); "
                                    "give a 1-D float array") from exc
        if column.ndim != 1:
            raise DistillationError(f"points[{name!r}] has shape {column.shape}; give a 1-D "
                                    "array, one value per recorded row")
        columns[name] = column
    lengths = {n: len(c) for n, c in columns.items()}
    if len(set(lengths.values())) > 1:
        raise DistillationError(f"points: the arrays differ in length ({lengths}); give one "
                                "value per recorded row for every input")
    for name, column in columns.items():
        bad = int(np.count_nonzero(~np.isfinite(column)))
        if bad:
            raise DistillationError(f"points[{name!r}] has {bad} non-finite values (NaN or "
                                    f"inf) of {len(column)}; drop those rows before distilling")
    count = next(iter(lengths.values()), 0)
    if count < MIN_RECORDED_POINTS:
        raise DistillationError(f"points: {count} recorded rows, fewer than "
                                f"MIN_RECORDED_POINTS = {MIN_RECORDED_POINTS}; record the part "
                                "over more data")
    for name, column in columns.items():
        if column.max() == column.min():
            raise DistillationError(f"points[{name!r}] is constant ({column[0]:g}) over all "
                                    f"{count} rows: how the teacher depends on it cannot be "
                                    "told from these points; record data where it varies")
    return columns


def recorded_domain(columns: Mapping[str, np.ndarray],
                    ranges: Mapping[str, tuple[float, float]], *, seed: int) -> Domain:
    """The recorded rows (`check_points`' columns), split by a generator seeded from `seed`
    into fitting rows and `HELD_OUT_FRACTION` held out for rescoring; with too few held
    out, every row serves both."""
    count = _length(columns)
    order = np.random.default_rng((seed, 0x5EC0)).permutation(count)
    held = int(count * HELD_OUT_FRACTION)
    if held < MIN_HELD_OUT:
        every = dict(columns)
        return Domain(dict(ranges), every, every)
    fit = {n: c[order[held:]] for n, c in columns.items()}
    test = {n: c[order[:held]] for n, c in columns.items()}
    return Domain(dict(ranges), fit, test)


def ranges_of(points: Mapping[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """Each input's recorded (min, max): the ranges to report when none are given."""
    return {n: (float(np.min(v)), float(np.max(v))) for n, v in points.items()}
