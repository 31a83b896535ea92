"""Expression search: bottom-up enumeration with observational equivalence.

Expressions are built by complexity (leaves 1; each op adds 1) from the
variables, the constants 1, 2, π and 2π, the safe grammar's operators and a few
functions. Two expressions with the same values on the sample points are the
same for the search, so only the first (simplest) is kept; this keeps levels
small enough to go deep. Each new expression `e` is scored by the best linear
fit `y ≈ a·e + b` (closed form), so outer constants cost nothing.

Several targets can be scored in one enumeration (`targets`): the distiller
passes transforms of its target (y², 1/y, √y, log y, 1/y²), so `√(1 + r² − 2r·cos θ)`
is found as the shallow `r·(r − 2·cos θ)` fitting y².

Example:
    >>> hits = search({"x": x}, y, deadline=time.monotonic() + 5)
    >>> hits[0].expr
    0.5*x**2 + 1.0
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import sympy

from registry.core.expr import symbol

__all__ = ["Hit", "linear_fit", "search", "search_many"]

Tree = tuple  # ("var", name) | ("const", value) | (op, child) | (op, left, right)

_UNARY = {
    "neg": np.negative, "sqrt": np.sqrt, "exp": np.exp, "log": np.log, "sin": np.sin,
    "cos": np.cos, "inv": np.reciprocal, "square": np.square, "tanh": np.tanh,
    "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan,
}
_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}
_COMMUTATIVE = {"add", "mul"}
_CONSTANTS = (1.0, 2.0, math.pi, 2 * math.pi)  # 2π: ħ = h/(2π) is everywhere in physics


@dataclass(frozen=True)
class Hit:
    tree: Tree
    complexity: int
    a: float
    b: float
    nrmse: float

    @property
    def expr(self) -> sympy.Expr:
        inner = to_sympy(self.tree)
        return sympy.Float(self.a) * inner + sympy.Float(self.b)


def to_sympy(tree: Tree) -> sympy.Expr:
    kind = tree[0]
    if kind == "var":
        return symbol(tree[1])
    if kind == "const":
        value = tree[1]
        return (sympy.pi if value == math.pi else 2 * sympy.pi if value == 2 * math.pi
                else sympy.Integer(int(value)))
    args = [to_sympy(t) for t in tree[1:]]
    unary = {"neg": lambda a: -a, "sqrt": sympy.sqrt, "exp": sympy.exp, "log": sympy.log,
             "sin": sympy.sin, "cos": sympy.cos, "inv": lambda a: 1 / a,
             "square": lambda a: a**2, "tanh": sympy.tanh, "asin": sympy.asin,
             "acos": sympy.acos, "atan": sympy.atan}
    binary = {"add": lambda a, b: a + b, "sub": lambda a, b: a - b,
              "mul": lambda a, b: a * b, "div": lambda a, b: a / b}
    return unary[kind](*args) if kind in unary else binary[kind](*args)


def linear_fit(e: np.ndarray, y: np.ndarray,
               scale: np.ndarray | None = None) -> tuple[float, float, float]:
    """(a, b, nrmse) of the least-squares fit y ≈ a·e + b, or y ≈ scale·(a·e + b)."""
    if scale is not None:
        design = np.stack([scale * e, scale], axis=1)
        coef, *_ = np.linalg.lstsq(design, y, rcond=None)
        residual = y - design @ coef
        spread = float(np.std(y)) or 1.0
        return float(coef[0]), float(coef[1]), float(np.sqrt(np.mean(residual**2))) / spread
    e_mean, y_mean = e.mean(), y.mean()
    de = e - e_mean
    var = float(de @ de)
    if var <= 1e-300 * len(e):
        a, b = 0.0, float(y_mean)
    else:
        a = float(de @ (y - y_mean)) / var
        b = float(y_mean - a * e_mean)
    residual = y - (a * e + b)
    spread = float(np.std(y)) or 1.0
    return a, b, float(np.sqrt(np.mean(residual**2))) / spread


def _signature(values: np.ndarray) -> bytes:
    """Key for scoring: affine-equivalent expressions fit y ≈ a·e + b equally well,
    so scale and shift are normalised away."""
    centred = values - values.mean()
    norm = np.abs(centred).max()
    if norm == 0 or not np.isfinite(norm):
        return b"const"
    return _key(centred / norm)


def _shape(values: np.ndarray) -> bytes:
    """Key for building: the values themselves (to 9 significant digits). `x − 1`, `2·x`
    and `−x` fit y alike linearly, but not inside `1/(x − 1)`, `sin(2·x)` or `exp(−x)`,
    so each is kept as a building block."""
    norm = np.abs(values).max()
    if norm == 0 or not np.isfinite(norm):
        return b"zero"
    return _key(values / norm, flip=False) + np.float64(float(f"{norm:.9g}")).tobytes()


def _key(normalised: np.ndarray, *, flip: bool = True) -> bytes:
    key = np.round(normalised, 9)
    key[key == 0] = 0.0  # -0.0 and 0.0 alike
    if flip and key[np.argmax(np.abs(key))] < 0:
        key = -key
    return key.tobytes()


class _Scorer:
    """Least-squares fits `T ≈ a·e + b` (or `T ≈ s·(a·e + b)` for a scaled target) of one
    candidate `e` against all targets at once."""

    def __init__(self, targets: list[tuple[np.ndarray, np.ndarray | None]]) -> None:
        self.targets = targets
        self.plain = [i for i, (_, s) in enumerate(targets) if s is None]
        if self.plain:
            ys = np.stack([targets[i][0] for i in self.plain])
            self.centred = ys - ys.mean(axis=1, keepdims=True)
            self.energy = np.einsum("ij,ij->i", self.centred, self.centred)
            self.spread = np.array([float(np.std(targets[i][0])) or 1.0 for i in self.plain])

    def __call__(self, e: np.ndarray) -> list[tuple[float, float, float]]:
        out: list[tuple[float, float, float]] = [(0.0, 0.0, math.inf)] * len(self.targets)
        if self.plain:
            de = e - e.mean()
            var = float(de @ de)
            if var > 1e-300 * len(e):
                a = self.centred @ de / var
                residual = np.maximum(self.energy - a * a * var, 0.0)
                errs = np.sqrt(residual / len(e)) / self.spread
            else:
                a = np.zeros(len(self.plain))
                errs = np.sqrt(self.energy / len(e)) / self.spread
            for j, i in enumerate(self.plain):
                if errs[j] < 1e-3:  # the shortcut loses digits near a perfect fit: redo
                    out[i] = linear_fit(e, self.targets[i][0])
                else:
                    y = self.targets[i][0]
                    out[i] = (float(a[j]), float(y.mean() - a[j] * e.mean()), float(errs[j]))
        for i, (y, scale) in enumerate(self.targets):
            if scale is not None:
                out[i] = linear_fit(e, y, scale)
        return out


def search(variables: Mapping[str, np.ndarray], y: np.ndarray, *, deadline: float,
           scale: np.ndarray | None = None,
           max_complexity: int = 11, tolerance: float = 1e-9, level_cap: int = 40_000,
           functions: tuple[str, ...] = tuple(_UNARY)) -> list[Hit]:
    """Hits (the best fit at each complexity, improving), simplest first.

    Stops at the deadline, at `max_complexity`, or once a hit's nRMSE is below
    `tolerance` (it is then last in the list). For several targets at once, see
    `search_many`.
    """
    return search_many(variables, [(y, scale)], deadline=deadline,
                       max_complexity=max_complexity, tolerance=tolerance,
                       level_cap=level_cap, functions=functions)[0]


def search_many(variables: Mapping[str, np.ndarray],
                targets: list[tuple[np.ndarray, np.ndarray | None]], *, deadline: float,
                max_complexity: int = 11, tolerance: float = 1e-9, level_cap: int = 40_000,
                functions: tuple[str, ...] = tuple(_UNARY)) -> list[list[Hit]]:
    """One enumeration scored against every target: the hits of each, simplest first.
    Stops once any target is fitted within `tolerance`."""
    seen: set[bytes] = set()
    built: set[bytes] = set()
    levels: dict[int, list[tuple[Tree, np.ndarray]]] = {}
    hits: list[list[Hit]] = [[] for _ in targets]
    best = [math.inf] * len(targets)
    score = _Scorer(targets)
    y = targets[0][0]

    counter = 0

    def out_of_time() -> bool:
        return time.monotonic() > deadline

    def consider(tree: Tree, values: np.ndarray, complexity: int, bucket: list) -> bool:
        nonlocal counter
        counter += 1
        if counter % 512 == 0 and out_of_time():
            raise _OutOfTime
        if not np.all(np.isfinite(values)) or np.abs(values).max() > 1e150:
            return False
        shape = _shape(values)
        if shape in built:
            return False
        built.add(shape)
        bucket.append((tree, values))
        key = _signature(values)
        if key in seen:  # a shift or scaling of an expression already scored: fits no better
            return False
        seen.add(key)
        done = False
        for i, (a, b, err) in enumerate(score(values)):
            if err < best[i] * 0.999:
                best[i] = err
                hits[i].append(Hit(tree, complexity, a, b, err))
                done = done or err < tolerance
        return done

    with contextlib.suppress(_Found, _OutOfTime):
        _enumerate(variables, y, consider, levels, max_complexity, level_cap, functions,
                   out_of_time)
    return hits


class _Found(Exception):
    pass


class _OutOfTime(Exception):
    pass


def _enumerate(variables: Mapping[str, np.ndarray], y: np.ndarray, consider: object,
               levels: dict[int, list[tuple[Tree, np.ndarray]]], max_complexity: int,
               level_cap: int, functions: tuple[str, ...], out_of_time: object) -> None:
    def take(tree: Tree, values: np.ndarray, complexity: int, bucket: list) -> None:
        if consider(tree, values, complexity, bucket):  # type: ignore[operator]
            raise _Found

    with np.errstate(all="ignore"):
        first: list[tuple[Tree, np.ndarray]] = []
        for name, values in variables.items():
            take(("var", name), np.asarray(values, dtype=np.float64), 1, first)
        ones = np.ones_like(y)
        for value in _CONSTANTS:  # never scored alone, used inside trees
            first.append((("const", value), ones * value))
        levels[1] = first
        for complexity in range(2, max_complexity + 1):
            bucket: list[tuple[Tree, np.ndarray]] = []
            # Each source (the functions of the level below; each split of the binary
            # operators, leaf-sized operands first) gets an equal share of a capped
            # level, then what the exhausted ones left: no source starves the others.
            splits = sorted(((c, complexity - 1 - c) for c in range(1, complexity - 1)),
                            key=lambda s: (min(s), -s[0]))
            sources: list[Iterator[tuple[Tree, np.ndarray]] | None] = [
                _unary(levels[complexity - 1], functions),
                *(_binary(levels.get(lc, []), levels.get(rc, []), lc < rc) for lc, rc in splits)]
            share = level_cap // len(sources)
            for round_cap in (share, level_cap):
                for index, source in enumerate(sources):
                    if source is None:
                        continue
                    limit = len(bucket) + round_cap if round_cap == share else level_cap
                    for tree, values in source:
                        take(tree, values, complexity, bucket)
                        if len(bucket) >= limit:
                            break
                    else:
                        sources[index] = None
            levels[complexity] = bucket
            if out_of_time():  # type: ignore[operator]
                return


def _unary(level: list[tuple[Tree, np.ndarray]],
           functions: tuple[str, ...]) -> Iterator[tuple[Tree, np.ndarray]]:
    for tree, values in level:
        if tree[0] == "const":
            continue
        for op in functions:
            if op == "neg" and tree[0] == "neg":
                continue
            yield (op, tree), _UNARY[op](values)


def _binary(left: list[tuple[Tree, np.ndarray]], right: list[tuple[Tree, np.ndarray]],
            skip_commutative: bool) -> Iterator[tuple[Tree, np.ndarray]]:
    """`left ∘ right`; commutative operators only once per pair of sizes."""
    ops = [(op, fn) for op, fn in _BINARY.items()
           if not (skip_commutative and op in _COMMUTATIVE)]
    for lt, lv in left:
        for rt, rv in right:
            if lt[0] == "const" and rt[0] == "const":
                continue
            for op, fn in ops:
                yield (op, lt, rt), fn(lv, rv)
