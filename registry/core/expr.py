"""Safe expressions: a whitelist parser from text to a sympy tree.

Equations arrive in manifests and compose specs, from pull requests and over
HTTP, so they are data, never code. `sympify`/`parse_expr` evaluate their input
and are never called here. Instead, Python's `ast` parses the text (parsing runs
nothing), and the sympy tree is built node by node from a fixed grammar:

    numbers, declared names, + - * / **, unary minus/plus,
    calls to: sqrt exp log sin cos tan asin acos atan sinh cosh tanh abs,
    the constants pi and E.

Sizes are bounded (text length, node count, depth, integer exponents and the
magnitude of numeric powers) so hostile input is refused at once, not computed.

Example:
    >>> parse_expression("G*m1*m2/r**2", names=["G", "m1", "m2", "r"])
    G*m1*m2/r**2
"""

from __future__ import annotations

import ast
import math
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import sympy
from sympy.printing.str import StrPrinter

from registry.errors import ExpressionError

__all__ = [
    "CONSTANTS",
    "FUNCTIONS",
    "MAX_DEPTH",
    "MAX_INT_EXPONENT",
    "MAX_LENGTH",
    "MAX_NODES",
    "format_expression",
    "parse_expression",
    "symbol",
]

MAX_LENGTH = 2_000
MAX_NODES = 400
# Depth of the syntax tree; a flat sum of n terms is n deep in Python's grammar.
MAX_DEPTH = 150
MAX_INT_EXPONENT = 64
MAX_INT_LITERAL = 10**300
# A numeric power may not reach float64's limit: 2**1024 and beyond is refused.
MAX_POWER_BITS = 1_024
# Functions of constants are evaluated exactly by sympy; beyond this size that is
# slow (sin of a huge float reduces its argument at enormous precision) or overflows.
MAX_FUNCTION_ARGUMENT = 1e6
_FLOAT_MAX = 1.7976931348623157e308

FUNCTIONS: dict[str, Callable[[sympy.Expr], sympy.Expr]] = {
    "sqrt": sympy.sqrt,
    "exp": sympy.exp,
    "log": sympy.log,
    "sin": sympy.sin,
    "cos": sympy.cos,
    "tan": sympy.tan,
    "asin": sympy.asin,
    "acos": sympy.acos,
    "atan": sympy.atan,
    "sinh": sympy.sinh,
    "cosh": sympy.cosh,
    "tanh": sympy.tanh,
    "abs": sympy.Abs,
}
CONSTANTS: dict[str, sympy.Expr] = {"pi": sympy.pi, "E": sympy.E}
RESERVED = frozenset(FUNCTIONS) | frozenset(CONSTANTS)

_BINARY = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/", ast.Pow: "**"}
_HINTS = {
    ast.BitXor: "use ** for powers, not ^",
    ast.FloorDiv: "use / for division",
    ast.Mod: "the modulo operator is not supported",
}


def symbol(name: str) -> sympy.Symbol:
    """The sympy symbol for a port or constant name (real-valued, one per name)."""
    return sympy.Symbol(name, real=True)


def parse_expression(text: str, *, names: Iterable[str], where: str = "expression") -> sympy.Expr:
    """Parse `text` into a sympy expression over the declared `names`.

    Arguments:
        text: the expression, e.g. ``"0.5*rho*C_d*A*v**2"``.
        names: the names it may use (inputs, constants, node outputs).
        where: how errors point at the text, e.g. ``"modules/drag/module.yaml: equation.F"``.

    Returns:
        The sympy expression. Raises `ExpressionError` for anything outside the
        grammar; nothing in `text` is ever executed.
    """
    if not isinstance(text, str):
        raise ExpressionError(f"{where}: expected an expression string, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(
            f"{where}: expression is {len(text)} characters, over the limit of {MAX_LENGTH}; "
            "split it into named parts"
        )
    if not text.strip():
        raise ExpressionError(f"{where}: expression is empty; write e.g. `G*m1*m2/r**2`")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. SyntaxWarning for `1x`: it is refused below
            tree = ast.parse(text.strip(), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        detail = getattr(exc, "msg", None) or type(exc).__name__
        raise ExpressionError(f"{where}: cannot parse {_clip(text)!r}: {detail}") from None
    _check_shape(tree, where)
    declared = frozenset(names)
    clashes = sorted(declared & RESERVED)
    if clashes:
        raise ExpressionError(
            f"{where}: the names {clashes} are reserved for functions or constants; rename them"
        )
    return _Builder(declared, where, text).build(tree.body)


def _check_shape(tree: ast.AST, where: str) -> None:
    """Bound node count and depth before any sympy work (iteratively: no recursion)."""
    count = 0
    stack: list[tuple[ast.AST, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ExpressionError(f"{where}: expression has over {MAX_NODES} nodes; simplify it")
        if depth > MAX_DEPTH:
            raise ExpressionError(f"{where}: expression nests deeper than {MAX_DEPTH}; simplify it")
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))


class _Builder:
    """Turns an already bounded `ast` tree into sympy, refusing anything unlisted."""

    def __init__(self, names: frozenset[str], where: str, text: str) -> None:
        self.names = names
        self.where = where
        self.text = text

    def fail(self, message: str) -> ExpressionError:
        return ExpressionError(f"{self.where}: {message} in {_clip(self.text)!r}")

    def build(self, node: ast.AST) -> Any:
        result = self._build(node)
        if result.is_number:
            self.check_constant(result)
        return result

    def check_constant(self, value: sympy.Expr) -> None:
        """A constant subtree must be a finite real float64 number (and not underflow to 0)."""
        if value.has(sympy.I, sympy.zoo, sympy.nan, sympy.oo, -sympy.oo):
            raise self.fail(f"the constant `{_clip(str(value), 40)}` is not a finite real number")
        try:
            number = float(value)
        except (OverflowError, TypeError, ValueError, RecursionError):
            raise self.fail(f"the constant `{_clip(str(value), 40)}` cannot be evaluated as a "
                            "float64 number") from None
        if not math.isfinite(number) or abs(number) > _FLOAT_MAX:
            raise self.fail(f"the constant `{_clip(str(value), 40)}` overflows float64")
        if number == 0.0 and not value.is_zero:
            raise self.fail(f"the constant `{_clip(str(value), 40)}` underflows float64 to 0")

    def _build(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return self.number(node.value)
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            operand = self.build(node.operand)
            return -operand if isinstance(node.op, ast.USub) else operand
        if isinstance(node, ast.BinOp):
            return self.binary(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        raise self.fail(f"`{type(node).__name__}` is not allowed (only numbers, names, "
                        "+ - * / **, and calls to " + ", ".join(sorted(FUNCTIONS)) + ")")

    def number(self, value: object) -> sympy.Expr:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"the literal {value!r} is not a number")
        if isinstance(value, int):
            if abs(value) > MAX_INT_LITERAL:
                raise self.fail(f"integer literal over {MAX_INT_LITERAL:.0e}; write it as a float")
            return sympy.Integer(value)
        if not math.isfinite(value):
            raise self.fail(f"the number {value!r} is not finite")
        return sympy.Float(value)

    def name(self, name: str) -> sympy.Expr:
        if name in CONSTANTS:
            return CONSTANTS[name]
        if name in FUNCTIONS:
            raise self.fail(f"`{name}` is a function; call it as `{name}(x)`")
        if name not in self.names:
            known = ", ".join(sorted(self.names)) or "none"
            raise self.fail(f"unknown name `{name}` (declared: {known}); declare it as an "
                            "input or a constant")
        return symbol(name)

    def binary(self, node: ast.BinOp) -> sympy.Expr:
        op = type(node.op)
        if op not in _BINARY:
            hint = _HINTS.get(op, "only + - * / ** are allowed")
            raise self.fail(f"operator `{type(node.op).__name__}` is not allowed: {hint}")
        left, right = self.build(node.left), self.build(node.right)
        if op is ast.Add:
            return left + right
        if op is ast.Sub:
            return left - right
        if op is ast.Mult:
            return left * right
        if op is ast.Div:
            if right.is_zero:
                raise self.fail("division by zero")
            return left / right
        return self.power(left, right)

    def power(self, base: sympy.Expr, exponent: sympy.Expr) -> sympy.Expr:
        if exponent.is_Integer and abs(int(exponent)) > MAX_INT_EXPONENT:
            raise self.fail(f"integer exponent {_clip(str(exponent), 24)} is over the limit of "
                            f"{MAX_INT_EXPONENT}")
        if base.is_number and exponent.is_number:
            if base.is_zero and exponent.is_negative:
                raise self.fail("zero raised to a negative power")
            magnitude = abs(float(exponent)) * math.log2(max(abs(float(base)), 2.0))
            if magnitude >= MAX_POWER_BITS:
                raise self.fail("numeric power too large to compute")
            if base.is_negative and not exponent.is_Integer:
                raise self.fail("a negative number raised to a fractional power is complex")
        result = sympy.Pow(base, exponent)
        # sympy merges (x**8)**8 into x**64: the merged exponent is bounded too.
        if isinstance(result, sympy.Pow) and result.exp.is_Integer \
                and abs(int(result.exp)) > MAX_INT_EXPONENT:
            raise self.fail(f"integer exponent {result.exp} is over the limit of "
                            f"{MAX_INT_EXPONENT}")
        return result

    def call(self, node: ast.Call) -> sympy.Expr:
        if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
            shown = ast.unparse(node.func)[:40]
            raise self.fail(f"call to `{shown}` is not allowed (functions: "
                            + ", ".join(sorted(FUNCTIONS)) + ")")
        if node.keywords or len(node.args) != 1 or isinstance(node.args[0], ast.Starred):
            raise self.fail(f"`{node.func.id}` takes exactly one positional argument")
        argument = self.build(node.args[0])
        if argument.is_number and abs(float(argument)) > MAX_FUNCTION_ARGUMENT:
            raise self.fail(f"the argument of `{node.func.id}` is too large to evaluate "
                            f"(over {MAX_FUNCTION_ARGUMENT:g})")
        return FUNCTIONS[node.func.id](argument)


class _SafePrinter(StrPrinter):
    """Prints sympy back into the parser's grammar (`Abs` → `abs`, no `I`/`oo`)."""

    def _print_Abs(self, expr: sympy.Abs) -> str:
        return f"abs({self._print(expr.args[0])})"

    def _print_Float(self, expr: sympy.Float) -> str:
        return repr(float(expr))

    def emptyPrinter(self, expr: object) -> str:
        raise ExpressionError(f"cannot write {expr!r} in the expression grammar")


_UNPRINTABLE = (sympy.I, sympy.oo, -sympy.oo, sympy.zoo, sympy.nan)


def format_expression(expr: sympy.Expr) -> str:
    """Write `expr` as text that `parse_expression` reads back to the same tree."""
    if any(expr.has(atom) for atom in _UNPRINTABLE):
        raise ExpressionError(f"cannot write {expr} in the expression grammar (not real-valued)")
    allowed = tuple(type(f(sympy.Symbol("x"))) for f in FUNCTIONS.values())
    for sub in sympy.preorder_traversal(expr):
        if isinstance(sub, sympy.Function) and not isinstance(sub, allowed):
            raise ExpressionError(f"cannot write function `{sub.func}` in the expression grammar")
    return str(_SafePrinter().doprint(expr))


def _clip(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
