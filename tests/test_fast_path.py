"""The float fast path of equation modules (issue 16): a few rows outside autograd are
computed on Python floats, with the tensor path's results; everything else keeps the
tensor path."""

from __future__ import annotations

import math

import pytest
import sympy
import torch

from registry.core.expr import parse_expression
from registry.core.lowering import lower
from registry.nn.equation import EquationModule, register_torch_op
from registry.nn.scalar import FAST_PATH_MAX_BATCH, compile_scalar

NAMES = ["a", "b", "c"]
LAWS = [
    "0.5*a*b*c**2", "a/(b + c) - 3", "sqrt(a)*exp(-b/c)", "log(a)*sin(b) + cos(c)",
    "tan(b/4) + asin(a/3) + acos(b/3) + atan(c)", "sinh(a/2)*cosh(b/3)/tanh(c)",
    "abs(a - b)**1.5 + a**-0.5 + 1/c**3", "(a*b)**(1/3) - c**(-2)",
]


def _module(text: str, dtype: torch.dtype = torch.float32, **kw: object) -> EquationModule:
    return EquationModule({"y": parse_expression(text, names=NAMES)}, inputs=NAMES,
                          dtype=dtype, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("text", LAWS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_the_fast_path_matches_the_tensor_path(text: str, dtype: torch.dtype) -> None:
    module = _module(text, dtype)
    assert module._scalar is not None
    generator = torch.Generator().manual_seed(0)
    for batch in range(1, FAST_PATH_MAX_BATCH + 1):
        x = (torch.rand(batch, 3, generator=generator, dtype=dtype) * 2 + 0.5)
        with torch.no_grad():
            fast = module(x)
            slow = module._forward_ops(x)
        assert fast.shape == slow.shape == (batch, 1) and fast.dtype == dtype
        # float64 inside, rounded once: within the tensor path's own rounding.
        rtol = 1e-5 if dtype == torch.float32 else 1e-12
        torch.testing.assert_close(fast, slow, rtol=rtol, atol=0.0)


def test_values_math_refuses_fall_back_to_torchs_nan_and_inf() -> None:
    module = _module("sqrt(a - b) + log(c)")
    x = torch.tensor([[1.0, 2.0, 1.0], [2.0, 1.0, 0.0]])
    with torch.no_grad():
        out = module(x)
    assert math.isnan(out[0, 0]) and out[1, 0] == -math.inf
    assert _module("a/b")(torch.tensor([[1.0, 0.0, 1.0]]))[0, 0] == math.inf


def test_autograd_and_large_batches_keep_the_tensor_path() -> None:
    module = _module("a*b + c")
    x = torch.rand(2, 3, requires_grad=True)
    out = module(x)
    assert out.grad_fn is not None
    out.sum().backward()
    assert x.grad is not None
    trainable = EquationModule({"y": parse_expression("k*a", names=["k", "a"])}, inputs=["a"],
                               constants={"k": (2.0, True)})
    assert trainable(torch.ones(1, 1)).grad_fn is not None  # k is learnt: keep autograd
    with torch.no_grad():
        assert trainable(torch.ones(1, 1)).item() == 2.0  # …unless autograd is off
    big = torch.rand(FAST_PATH_MAX_BATCH + 1, 3)
    with torch.no_grad():
        torch.testing.assert_close(module(big), module._forward_ops(big))


def test_named_constants_are_read_at_each_call() -> None:
    module = EquationModule({"y": parse_expression("G*a", names=["G", "a"])}, inputs=["a"],
                            constants={"G": (3.0, False)})
    with torch.no_grad():
        assert module(torch.tensor([[2.0]])).item() == 6.0
        module.constants.G.fill_(5.0)
        assert module(torch.tensor([[2.0]])).item() == 10.0


def test_an_op_without_a_float_template_has_no_fast_path() -> None:
    from registry.core import lowering

    class Erf(sympy.Function):
        pass

    lowering.FUNCTION_OPS[Erf] = "erf_test_only"
    register_torch_op("erf_test_only", torch.erf)
    try:
        expr = Erf(sympy.Symbol("a", real=True))
        assert compile_scalar([lower(expr)], inputs=["a"]) is None
        module = EquationModule({"y": expr}, inputs=["a"])
        assert module._scalar is None
        assert module(torch.tensor([[0.5]])).item() == pytest.approx(math.erf(0.5), rel=1e-6)
    finally:
        del lowering.FUNCTION_OPS[Erf]


def test_no_name_from_the_equation_enters_the_compiled_source() -> None:
    expr = parse_expression("rho*C_d*v**2", names=["rho", "C_d", "v"])
    function = compile_scalar([lower(expr)], inputs=["rho", "C_d", "v"])
    assert function is not None
    code = function.__code__
    assert code.co_varnames[:3] == ("a0", "a1", "a2")
    assert not {"rho", "C_d", "v"} & set(code.co_names + code.co_varnames)
    assert function(1.0, 2.0, 3.0) == (18.0,)


def test_a_transform_over_the_module_keeps_the_tensor_path() -> None:
    module = _module("a*b + c")
    x = torch.rand(3, 3, dtype=torch.float64)
    with torch.no_grad():
        batched = torch.func.vmap(lambda row: module(row.unsqueeze(0))[0])(x)
    torch.testing.assert_close(batched, module._forward_ops(x))


def test_hooks_tracing_and_empty_batches_keep_torchs_call() -> None:
    """`EquationModule.__call__` skips `nn.Module.__call__` only when it has nothing to do."""
    from torch.nn.modules.module import register_module_forward_hook

    module = _module("a*b + c")
    x = torch.tensor([[1.0, 2.0, 3.0]])
    with torch.no_grad():
        assert module(x).item() == 5.0
        hook = module.register_forward_hook(lambda m, args, out: out * 10)
        assert module(x).item() == 50.0
        hook.remove()
        seen: list[str] = []
        hook = module.register_forward_pre_hook(lambda m, args: seen.append("pre"))
        assert module(x).item() == 5.0 and seen == ["pre"]
        hook.remove()
        everywhere = register_module_forward_hook(lambda m, args, out: out + 1)
        try:
            assert module(x).item() == 6.0
        finally:
            everywhere.remove()
        assert module(x).item() == 5.0
        assert module(torch.empty(0, 3)).shape == (0, 1)
        traced = torch.jit.trace(module, x)  # ops recorded, not this sample's floats
        assert traced(torch.tensor([[2.0, 3.0, 1.0]])).item() == 7.0


def test_values_float32_cannot_hold_become_inf_without_a_warning() -> None:
    import warnings

    module = _module("a*b*c")
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("error")
        out = module(torch.tensor([[1e30, 1e30, 1.0]]))
    assert out.dtype == torch.float32 and out.item() == math.inf


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_each_one_sample_answer_is_a_new_tensor(dtype: torch.dtype) -> None:
    module = _module("a*b + c", dtype)
    first = module(torch.tensor([[2.0, 3.0, 0.0]], dtype=dtype))
    second = module(torch.tensor([[4.0, 5.0, 0.0]], dtype=dtype))
    first.add_(1.0)  # a caller writing into one answer changes no other
    third = module(torch.tensor([[2.0, 3.0, 0.0]], dtype=dtype))
    assert (first.item(), second.item(), third.item()) == (7.0, 20.0, 6.0)
    assert (third.shape, third.dtype) == (torch.Size([1, 1]), dtype)
