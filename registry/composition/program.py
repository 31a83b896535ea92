"""Compiling a composite's steps to a `torch.fx` graph: straight-line torch code.

Evaluating expression trees through nested closures costs a Python call per
op; a composite would pay that on every call. Instead each evaluation (outputs,
initial state, ODE rates) is emitted once as an fx graph — the same primitive
ops (`registry.core.lowering`), inline MLPs as module calls — and fx generates the
Python for it, so a composed network runs like a hand-written function.

Example:
    >>> program = build_program(root, inputs=["y", "v"], steps=steps, results={"a": expr})
    >>> program(y, v)   # (a,)
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any

import sympy
import torch
from torch import fx, nn

from registry.core.lowering import Const, Node, Op, Var, lower
from registry.errors import ExpressionError
from registry.nn.equation import TORCH_OPS

__all__ = ["ProgramStep", "build_program"]

# name -> expression (expression steps, inlined equations), or a module call.
ProgramStep = tuple[str, Mapping[str, sympy.Expr], str | None, Sequence[str]]
#               (kind, {name: expr} or {port: expr}, module path or None, provided names)

_BINARY = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv}


def build_program(root: nn.Module, *, inputs: Sequence[str], steps: Sequence[ProgramStep],
                  results: Mapping[str, sympy.Expr]) -> fx.GraphModule:
    """An fx module taking one tensor per input name and returning a tuple of results."""
    graph = fx.Graph()
    scope: dict[str, Any] = {name: graph.placeholder(name) for name in inputs}
    like = scope[inputs[0]] if inputs else None
    for kind, exprs, module_path, provides in steps:
        if kind == "expression":
            for name, expr in exprs.items():
                scope[name] = _column(graph, _emit(graph, lower(expr), scope), like)
            continue
        ports = [_column(graph, _emit(graph, lower(e), scope), like) for e in exprs.values()]
        stacked = graph.call_function(torch.stack, (ports, -1))
        out = graph.call_module(str(module_path), (stacked,))
        for i, name in enumerate(provides):
            scope[name] = graph.call_function(operator.getitem, (out, (Ellipsis, i)))  # type: ignore[arg-type]
    values = [_column(graph, _emit(graph, lower(e), scope), like) for e in results.values()]
    graph.output(tuple(values))
    program = fx.GraphModule(root, graph)
    program.graph.eliminate_dead_code()  # e.g. the outputs of an ODE need none of its rates
    program.recompile()
    return program


def _column(graph: fx.Graph, value: Any, like: Any) -> Any:
    """A constant becomes a full batch column (outputs and module ports need one)."""
    if isinstance(value, fx.Node):
        return value
    if like is None:
        raise ExpressionError("a constant result needs at least one input to take its shape")
    return graph.call_function(torch.full_like, (like, float(value)))


def _emit(graph: fx.Graph, node: Node, scope: Mapping[str, Any]) -> Any:
    if isinstance(node, Const):
        return node.value
    if isinstance(node, Var):
        return scope[node.name]
    assert isinstance(node, Op)
    args = [_emit(graph, arg, scope) for arg in node.args]
    if node.op in _BINARY:
        return graph.call_function(_BINARY[node.op], tuple(args))
    (base,) = args if len(args) == 1 else (None,)
    if node.op == "neg":
        return graph.call_function(operator.neg, (base,))
    if node.op == "square":
        return graph.call_function(operator.mul, (base, base))
    if node.op == "cube":
        squared = graph.call_function(operator.mul, (base, base))
        return graph.call_function(operator.mul, (squared, base))
    if node.op == "pow":
        return graph.call_function(torch.pow, tuple(args))
    function = TORCH_OPS.get(node.op)
    if function is None:
        raise ExpressionError(f"no torch function for the op `{node.op}`; add one with "
                              "`registry.nn.register_torch_op`")
    return graph.call_function(function, (base,))
