"""FLOPs (exact, equal to hand counts), latency, and the cost recorded at registration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn
from typer.testing import CliRunner

from registry.core.expr import parse_expression
from registry.cost.flops import count_equation_flops, count_module_flops
from registry.cost.latency import measure_latency, time_calls
from registry.nn.equation import EquationModule
from registry.nn.network import ARCHITECTURES, NetworkModule, register_architecture
from registry.nn.weights import save_weights


def equation(text: str, names: list[str]) -> dict[str, object]:
    return {"y": parse_expression(text, names=names)}


def test_gravity_flops_equal_the_hand_count() -> None:
    # G*m1 (1), *m2 (1), r*r (1), one division (1): 4 FLOPs per sample.
    exprs = {"F": parse_expression("G*m1*m2/r**2", names=["G", "m1", "m2", "r"])}
    module = EquationModule(exprs, inputs=["m1", "m2", "r"], constants={"G": (6.6743e-11, False)})
    assert count_equation_flops(exprs) == 4
    assert count_module_flops(module, torch.rand(16, 3) + 0.5).forward == 4


def test_mlp_3_64_64_1_flops_equal_the_hand_count() -> None:
    # Standardise inputs: 3 sub + 3 div = 6.
    # Layer 1: 2*3*64 + 64 bias = 448; layer 2: 2*64*64 + 64 = 8256; layer 3: 2*64*1 + 1 = 129.
    # tanh on 64 + 64 units at 8 FLOPs each = 1024. De-standardise the output: 1 mul + 1 add = 2.
    # Total: 6 + 448 + 8256 + 129 + 1024 + 2 = 9865.
    net = NetworkModule("mlp", {"hidden": [64, 64], "activation": "tanh"}, inputs=["a", "b", "c"],
                        outputs=["y"])
    count = count_module_flops(net, torch.rand(16, 3))
    assert count.forward == 9865
    assert dict(count.by_op) == {"add": 1, "addmm": 8833, "div": 3, "mul": 1, "sub": 3,
                                 "tanh": 1024}
    assert count.uncounted_ops == ()


@pytest.mark.parametrize(("text", "expected"), [
    ("x + y", 1), ("x - y", 1), ("-x", 1), ("x*y", 1), ("x/y", 1), ("2*x", 1), ("2/x", 2),
    ("1/x", 1), ("x**2", 1), ("x**3", 2), ("x**4", 17), ("sqrt(x)", 4), ("1/sqrt(x)", 4),
    ("x**y", 17), ("2**x", 17), ("exp(x)", 8), ("abs(x)", 1), ("-x*y/(x + y)**2", 5),
    ("exp(-x/y) + sqrt(x) - 3/x + x**3 - abs(x)*sin(y)**2", 33),
    ("atan(x)/(x*y) + log(x) - tanh(y)", 28),
])
def test_equation_count_agrees_with_torch(text: str, expected: int) -> None:
    exprs = equation(text, ["x", "y"])
    module = EquationModule(exprs, inputs=["x", "y"])  # type: ignore[arg-type]
    measured = count_module_flops(module, torch.rand(16, 2) + 0.5)
    counted = count_equation_flops(exprs)  # type: ignore[arg-type]
    assert (counted, measured.forward) == (expected, expected)
    assert measured.uncounted_ops == ()


class _ErfNet(nn.Module):
    def __init__(self, n_inputs: int, n_outputs: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_inputs, n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.special.erf(self.linear(x))


@pytest.fixture
def erf_architecture():
    register_architecture("erfnet")(_ErfNet)
    yield "erfnet"
    ARCHITECTURES.pop("erfnet")


def test_ops_without_a_formula_are_listed_not_zero(erf_architecture: str) -> None:
    net = NetworkModule(erf_architecture, {}, inputs=["a"], outputs=["y"])
    count = count_module_flops(net, torch.rand(16, 1))
    assert "erf" in count.uncounted_ops
    # standardise in (2) + addmm 2*1*1 + bias (3) + de-standardise out (2); erf not counted
    assert count.forward == 2 + 3 + 2


def test_cli_warns_about_uncounted_ops(erf_architecture: str, reg, repo: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from registry.cli import app

    folder = repo / "modules" / "erf-net"
    folder.mkdir()
    net = NetworkModule(erf_architecture, {}, inputs=["a"], outputs=["y"])
    sha = save_weights(net, folder / "w.safetensors")
    manifest = {"schema": 1, "name": "erf-net", "version": "0.1.0", "kind": "network",
                "inputs": {"a": {"unit": "1", "range": [0.0, 1.0]}}, "outputs": {"y": {}},
                "network": {"arch": "erfnet",
                            "weights": {"path": "w.safetensors", "sha256": sha}}}
    (folder / "module.yaml").write_text(yaml.safe_dump(manifest))
    monkeypatch.chdir(repo)
    result = CliRunner().invoke(app, ["cost", "erf-net@workspace", "--json"])
    assert result.exit_code == 0, result.output
    assert "warning: no FLOP formula for erf; the FLOP count leaves them out" in result.output


def test_latency_times_a_window_of_at_least_0_2_s() -> None:
    times = time_calls(lambda: sum(range(100)))
    assert len(times) >= 5 and sum(times) >= 0.2


def test_latency_reports_per_sample_median_and_hardware() -> None:
    module = EquationModule(equation("x*y", ["x", "y"]), inputs=["x", "y"])  # type: ignore[arg-type]
    latency = measure_latency(module, torch.rand(256, 2), min_window_s=0.01)
    assert latency.batch == 256 and latency.calls >= 5 and latency.ns_per_sample > 0
    assert "torch 2.13.0" in latency.hardware


def test_register_records_cost(reg, repo: Path) -> None:
    manifest = reg.register(repo / "modules" / "gravity").manifest
    cost = manifest.cost
    assert (cost.flops_per_sample, cost.params, cost.uncounted_ops) == (4, 0, [])
    assert cost.latency_ns_per_sample is not None and cost.latency_ns_per_sample.batch == 4096
    assert cost.energy_j_per_sample is not None and cost.energy_j_per_sample.value > 0
    if not Path("/sys/class/powercap/intel-rapl:0").exists():
        assert cost.energy_j_per_sample.method == "estimated:power_model"


def test_network_cost_counts_its_parameters(reg) -> None:
    measured = reg.cost("drag-net@workspace")
    assert measured.params == 4 * 64 + 64 + 64 * 64 + 64 + 64 + 1
    assert measured.flops.forward == 8 + (2 * 4 * 64 + 64) + (2 * 64 * 64 + 64) + 129 + 1024 + 2


def test_cost_cli_json(reg, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from registry.cli import app

    monkeypatch.chdir(repo)
    result = CliRunner().invoke(app, ["cost", "drag@workspace", "--json"])
    data = json.loads(result.output)
    assert data["flops"]["forward"] == 5 and data["params"] == 0
    assert data["energy_j_per_sample"]["method"].startswith(("estimated:", "measured:"))
