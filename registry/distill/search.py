"""Expression search: bottom-up enumeration with observational equivalence.

Expressions are built by complexity (leaves 1; each op adds 1) from the
variables, the constants 1, 2 and π, the safe grammar's operators and a few
functions. Two expressions with the same values on the sample points are the
same for the search, so only the first (simplest) is kept; this keeps levels
small enough to go deep. Each new expression `e` is scored by the best linear
fit `y ≈ a·e + b` (closed form), so outer constants cost nothing.

Example:
    >>> hits = search({"x": x}, y, deadline=time.monotonic() + 5)
    >>> hits[0].expr
    0.5*x**2 + 1.0
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import sympy

from registry.expr import symbol

__all__ = ["Hit", "linear_fit", "search"]

Tree = tuple  # ("var", name) | ("const", value) | (op, child) | (op, left, right)

_UNARY = {
    "neg": np.negative, "sqrt": np.sqrt, "exp": np.exp, "log": np.log, "sin": np.sin,
    "cos": np.cos, "inv": np.reciprocal, "square": np.square, "tanh": np.tanh,
    "asin": np.arcsin, "acos": np.arccos, "atan": np.arctan,
}
_BINARY = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}
_COMMUTATIVE = {"add", "mul"}


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
        return sympy.pi if tree[1] == math.pi else sympy.Integer(int(tree[1]))
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
    """Key for building: only the scale is normalised away. `x - 1` is the same as `x`
    for a linear fit but not inside `1/(x - 1)` or `sqrt(x**2 + 1)`, so it is kept as a
    building block (2·x is not: any function of it is reached by refitting a)."""
    norm = np.abs(values).max()
    if norm == 0 or not np.isfinite(norm):
        return b"zero"
    return _key(values / norm)


def _key(normalised: np.ndarray) -> bytes:
    key = np.round(normalised, 9)
    key[key == 0] = 0.0  # -0.0 and 0.0 alike
    if key[np.argmax(np.abs(key))] < 0:
        key = -key
    return key.tobytes()


def search(variables: Mapping[str, np.ndarray], y: np.ndarray, *, deadline: float,
           scale: np.ndarray | None = None,
           max_complexity: int = 11, tolerance: float = 1e-9, level_cap: int = 40_000,
           functions: tuple[str, ...] = tuple(_UNARY)) -> list[Hit]:
    """Hits (the best fit at each complexity, improving), simplest first.

    Stops at the deadline, at `max_complexity`, or once a hit's nRMSE is below
    `tolerance` (it is then last in the list).
    """
    seen: set[bytes] = set()
    built: set[bytes] = set()
    levels: dict[int, list[tuple[Tree, np.ndarray]]] = {}
    hits: list[Hit] = []
    best = math.inf

    counter = 0

    def out_of_time() -> bool:
        return time.monotonic() > deadline

    def consider(tree: Tree, values: np.ndarray, complexity: int, bucket: list) -> bool:
        nonlocal best, counter
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
        if key in seen:  # a shift of an expression already scored: fits y no better
            return False
        seen.add(key)
        a, b, err = linear_fit(values, y, scale)
        if err < best * 0.999:
            best = err
            hits.append(Hit(tree, complexity, a, b, err))
        return err < tolerance

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
        for value in (1.0, 2.0, math.pi):  # constants: never scored alone, used inside trees
            first.append((("const", value), ones * value))
        levels[1] = first
        for complexity in range(2, max_complexity + 1):
            bucket: list[tuple[Tree, np.ndarray]] = []
            for tree, values in levels[complexity - 1]:
                if tree[0] == "const":
                    continue
                for op in functions:
                    if op in ("neg",) and tree[0] == "neg":
                        continue
                    take((op, tree), _UNARY[op](values), complexity, bucket)
                if len(bucket) > level_cap:
                    break
            for left_c in range(1, complexity - 1):
                right_c = complexity - 1 - left_c
                for lt, lv in levels.get(left_c, []):
                    for rt, rv in levels.get(right_c, []):
                        if lt[0] == "const" and rt[0] == "const":
                            continue
                        for op, fn in _BINARY.items():
                            if op in _COMMUTATIVE and left_c > right_c:
                                continue
                            take((op, lt, rt), fn(lv, rv), complexity, bucket)
                    if len(bucket) > level_cap:
                        break
                if len(bucket) > level_cap:
                    break
            levels[complexity] = bucket
            if out_of_time():  # type: ignore[operator]
                return
