"""Equation and network modules in torch."""

from __future__ import annotations

from pathlib import Path

import pytest
import sympy
import torch

import registry
from registry.core.expr import parse_expression, symbol
from registry.errors import ExpressionError, IntegrityError, ManifestError
from registry.nn.equation import EquationModule
from registry.nn.network import NetworkModule

G = 6.6743e-11


def test_gravity_equals_newton_to_float32_precision_and_gradients_flow(reg, repo: Path) -> None:
    reg.register(repo / "modules" / "gravity")
    gravity = registry.open(repo).load("gravity@^1")
    m1 = torch.tensor([1.0, 5.0, 10.0], requires_grad=True)
    m2 = torch.tensor([2.0, 0.1, 10.0])
    r = torch.tensor([0.5, 2.0, 5.0], requires_grad=True)
    force = gravity({"m1": m1, "m2": m2, "r": r})["F"]
    expected = G * m1.detach().double() * m2.double() / r.detach().double() ** 2
    torch.testing.assert_close(force.double(), expected, rtol=2e-7, atol=0.0)
    force.sum().backward()
    torch.testing.assert_close(m1.grad.double(), G * m2.double() / r.detach().double() ** 2,
                               rtol=2e-7, atol=0.0)
    torch.testing.assert_close(r.grad.double(), -2 * expected / r.detach().double(),
                               rtol=2e-7, atol=0.0)


def test_trainable_constants_are_parameters_and_sympy_reports_their_value() -> None:
    expr = parse_expression("k*x**2", names=["k", "x"])
    module = EquationModule({"y": expr}, inputs=["x"], constants={"k": (1.0, True)})
    optimiser = torch.optim.SGD(module.parameters(), lr=0.1)
    x = torch.linspace(0.0, 1.0, 32)[:, None]
    for _ in range(200):
        optimiser.zero_grad()
        torch.mean((module(x) - 3.0 * x**2) ** 2).backward()
        optimiser.step()
    (k,) = module.sympy(substitute_constants=True)["y"].atoms(sympy.Float)
    assert float(k) == pytest.approx(3.0, rel=1e-3)
    assert module.sympy()["y"] == symbol("k") * symbol("x") ** 2


@pytest.mark.parametrize(("text", "x", "expected"), [
    ("sqrt(x)", 4.0, 2.0), ("1/sqrt(x)", 4.0, 0.5), ("x**-1", 4.0, 0.25), ("x**3", 2.0, 8.0),
    ("exp(log(x))", 3.0, 3.0), ("abs(-x)", 2.0, 2.0), ("2**x", 3.0, 8.0), ("pi*x", 1.0, 3.14159265),
    ("atan(x) + asin(x/2) + acos(x/2)", 1.0, 0.78539816 + 3.14159265 / 2),
    ("sinh(x) - cosh(x) + tanh(x) + tan(x) + sin(x)**2 + cos(x)**2", 0.0, 0.0),
])
def test_every_grammar_function_evaluates(text: str, x: float, expected: float) -> None:
    module = EquationModule({"y": parse_expression(text, names=["x"])}, inputs=["x"],
                            dtype=torch.float64)
    value = module(torch.tensor([[x]], dtype=torch.float64)).item()
    assert value == pytest.approx(expected, abs=1e-7)


def test_constant_expression_broadcasts_to_the_batch() -> None:
    module = EquationModule({"y": sympy.Integer(3)}, inputs=["x"])
    assert module(torch.zeros(5, 1)).tolist() == [[3.0]] * 5


def test_unsupported_sympy_node_is_a_named_error() -> None:
    with pytest.raises(ExpressionError, match="no torch implementation for sympy `erf`"):
        EquationModule({"y": sympy.erf(symbol("x"))}, inputs=["x"])


def test_wrong_input_width_says_what_it_expects() -> None:
    module = EquationModule({"y": symbol("x")}, inputs=["x"])
    with pytest.raises(ValueError, match=r"expected a \(batch, 1\) tensor with columns \['x'\]"):
        module(torch.zeros(3, 2))


def test_mlp_architecture_and_unknown_config_is_a_manifest_error() -> None:
    net = NetworkModule("mlp", {"hidden": [8, 4]}, inputs=["a", "b", "c"], outputs=["y"])
    assert [p.shape for p in net.net.parameters()] == [(8, 3), (8,), (4, 8), (4,), (1, 4), (1,)]
    with pytest.raises(ManifestError, match=r"network\.config: .*keyword argument 'depth'"):
        NetworkModule("mlp", {"depth": 3}, inputs=["a"], outputs=["y"])
    with pytest.raises(ManifestError, match="unknown architecture 'transformer'"):
        NetworkModule("transformer", {}, inputs=["a"], outputs=["y"])


def test_tampered_weights_are_refused_on_load(reg, repo: Path) -> None:
    weights = repo / "modules" / "drag-net" / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match=r"weights\.safetensors: sha256 is [0-9a-f]{64}, but "
                       r"the manifest records"):
        reg.load("drag-net@workspace")


def test_tampered_weights_cannot_be_registered(reg, repo: Path) -> None:
    weights = repo / "modules" / "drag-net" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(IntegrityError):
        reg.register(weights.parent)


def test_registered_network_loads_from_git_even_if_the_working_copy_is_tampered(
        reg, repo: Path) -> None:
    reg.register(repo / "modules" / "drag-net")
    weights = repo / "modules" / "drag-net" / "weights.safetensors"
    weights.write_bytes(b"not weights")
    net = registry.open(repo).load("drag-net@1.0.0")
    assert isinstance(net, NetworkModule)
    with pytest.raises(IntegrityError):
        registry.open(repo).load("drag-net@workspace")
