"""The builder: wiring checks with exact messages, composed values, ODE, training, registration."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

import registry
from registry.composition import Builder, parse_spec
from registry.errors import CompositionError

G, M_EARTH, R_EARTH = 6.6743e-11, 5.972e24, 6.371e6


@pytest.fixture
def seeded(reg, repo: Path):
    """A registry with gravity and drag registered."""
    reg.register(repo / "modules" / "gravity")
    reg.register(repo / "modules" / "drag")
    return reg


def falling(**changes: Any) -> dict[str, Any]:
    """Vertical acceleration of a falling body: a = (F_d - F_g)/m (static, no ODE)."""
    spec: dict[str, Any] = {
        "schema": 1, "name": "falling",
        "constants": {"M_earth": {"value": M_EARTH, "unit": "kg"},
                      "R_earth": {"value": R_EARTH, "unit": "m"}},
        "nodes": {
            "gravity": {"module": "gravity@^1",
                        "inputs": {"m1": "M_earth", "m2": "m", "r": "R_earth + y"},
                        "outputs": {"F": "F_g"}},
            "drag": {"module": "drag@^1", "outputs": {"F": "F_d"}},
        },
        "inputs": {"y": {"unit": "m", "range": [0.0, 100.0]},
                   "m": {"unit": "kg", "range": [0.1, 10.0]}},
        "outputs": {"a": {"unit": "m/s^2", "value": "(F_d - F_g)/m"}},
    }
    for path, value in changes.items():
        target = spec
        *parents, last = path.split(".")
        for key in parents:
            target = target[key]
        if value is None:
            target.pop(last)
        else:
            target[last] = value
    return spec


def test_unwired_module_inputs_become_composite_inputs(seeded) -> None:
    net = seeded.compose(parse_spec(falling()))
    assert net.input_names == ["y", "m", "rho", "C_d", "A", "v"]
    assert net.plan.inputs["rho"].unit == "kg/m^3"  # taken from the drag module's port


def test_composed_value_equals_the_physics(seeded) -> None:
    net = seeded.compose(parse_spec(falling())).double()
    y, m, rho, c_d, area, v = 10.0, 2.0, 1.2, 0.5, 0.01, 30.0
    expected = (0.5 * rho * c_d * area * v**2 - G * M_EARTH * m / (R_EARTH + y) ** 2) / m
    out = net(torch.tensor([[y, m, rho, c_d, area, v]], dtype=torch.float64))
    assert out.item() == pytest.approx(expected, rel=1e-12)


def test_equation_nodes_are_frozen_unless_asked(seeded) -> None:
    frozen = seeded.compose(parse_spec(falling()))
    assert sum(p.numel() for p in frozen.parameters() if p.requires_grad) == 0
    fitted = seeded.compose(parse_spec(falling(**{"nodes.gravity.train": "constants"})))
    trainable = {n for n, p in fitted.named_parameters() if p.requires_grad}
    assert trainable == {"nodes.gravity.constants.G"}


@pytest.mark.parametrize(("changes", "message"), [
    ({"nodes.gravity.inputs.mass": "m"},
     "nodes.gravity.inputs.mass: `gravity@^1` has no input port `mass` (ports: m1, m2, r)"),
    ({"nodes.gravity.outputs": {"G": "F_g"}},
     "nodes.gravity.outputs.G: `gravity@1.0.0` has no output port `G` (ports: F)"),
    ({"nodes.gravity.outputs": {}, "nodes.drag.outputs": {}},
     "nodes.drag: `F` is already defined by nodes.gravity; rename one"),
    ({"nodes.gravity.inputs.r": "R_earth + z"},
     "nodes.gravity.inputs.r: unknown name `z`"),
    ({"nodes.gravity.inputs.r": "R_earth + m"},
     "cannot add `R_earth` ([length]) and `m` ([mass])"),
    ({"nodes.gravity.inputs.m2": "y"},
     "nodes.gravity.inputs.m2: `gravity@^1` expects kg ([mass]) but `y` is in m ([length]); "
     "wire a value in kg"),
    ({"nodes.gravity.module": "nothing@^1"},
     "nodes.gravity.module: no module `nothing`"),
    ({"outputs": {"a": {"unit": "m/s^2", "value": "F_d - F_g"}}},
     "outputs.a: must be in m / s ** 2 ([length] / [time] ** 2) but `F_d - F_g` is in"),
    ({"expressions": {"m": "2*y"}},
     "expressions.m: `m` is already defined by inputs.m; rename one"),
])
def test_wiring_errors_name_the_node_and_port(seeded, changes: dict[str, Any],
                                              message: str) -> None:
    with pytest.raises(CompositionError) as caught:
        seeded.compose(parse_spec(falling(**changes), source="spec.yaml"))
    assert message in str(caught.value)
    assert str(caught.value).startswith("spec.yaml: ")


def test_a_cycle_is_reported_with_its_path(seeded) -> None:
    spec = falling(**{"expressions": {"y2": "R_earth + F_g"}, "nodes.gravity.inputs.r": "y2"})
    with pytest.raises(CompositionError, match=r"the wiring has a cycle: (gravity -> y2 -> "
                       r"gravity|y2 -> gravity -> y2)"):
        seeded.compose(parse_spec(spec))


def test_spec_schema_errors_name_the_field() -> None:
    with pytest.raises(CompositionError, match=r"^compose spec: nodes\.drag: give exactly one of "
                       r"`module` \(a reference\) or `mlp`"):
        parse_spec(falling(**{"nodes.drag.module": None}))
    with pytest.raises(CompositionError, match=r"nodez: Extra inputs are not permitted; remove it "
                       r"or fix its spelling \(allowed keys: constants, dynamics, expressions"):
        parse_spec({**falling(), "nodez": {}})


def vacuum_projectile(dt: float = 0.001) -> dict[str, Any]:
    return {
        "schema": 1, "name": "projectile",
        "inputs": {"v0": {"unit": "m/s", "range": [10.0, 30.0]},
                   "angle": {"unit": "1", "range": [0.3, 1.2]}},
        "constants": {"g": {"value": 9.81, "unit": "m/s^2"}},
        "nodes": {"lift": {"mlp": {"hidden": [4]}, "inputs": {"vy": "vy"},
                           "outputs": {"a_y": "m/s^2"}}},
        "dynamics": {
            "state": {"x": {"unit": "m", "initial": "0"}, "y": {"unit": "m", "initial": "0"},
                      "vx": {"unit": "m/s", "initial": "v0*cos(angle)"},
                      "vy": {"unit": "m/s", "initial": "v0*sin(angle)"}},
            "derivatives": {"x": "vx", "y": "vy", "vx": "0", "vy": "-g + a_y"},
            "dt": dt, "max_time": 10.0, "stop_when": "y"},
        "outputs": {"range": {"unit": "m", "value": "x"}},
    }


def test_ode_lands_where_the_vacuum_formula_says_and_is_differentiable(seeded) -> None:
    net = seeded.compose(parse_spec(vacuum_projectile())).double()  # residual starts at zero
    v0, angle = torch.tensor([20.0, 25.0], dtype=torch.float64, requires_grad=True), \
        torch.tensor([0.5, 0.9], dtype=torch.float64)
    distance = net(torch.stack([v0, angle], dim=1))[:, 0]
    expected = v0.detach() ** 2 * torch.sin(2 * angle) / 9.81
    torch.testing.assert_close(distance.detach(), expected, rtol=1e-6, atol=1e-6)
    distance.sum().backward()
    # The landing point is interpolated between RK4 steps: its gradient is good to ~dt.
    torch.testing.assert_close(v0.grad, 2 * v0.detach() * torch.sin(2 * angle) / 9.81,
                               rtol=1e-3, atol=1e-3)


def test_derivative_training_learns_the_missing_term(seeded) -> None:
    # The MLP's initial weights come from torch's global generator, whose state depended on
    # the tests before this one: one CI run's init did not reach the target in 60 epochs.
    torch.manual_seed(0)
    net = seeded.compose(parse_spec(vacuum_projectile(dt=0.01)))
    rng = np.random.default_rng(0)
    n = 2000
    data = {"v0": rng.uniform(10, 30, n), "angle": rng.uniform(0.3, 1.2, n),
            "x": rng.uniform(0, 50, n), "y": rng.uniform(0, 20, n),
            "vx": rng.uniform(5, 25, n), "vy": rng.uniform(-20, 20, n)}
    data |= {"d_x": data["vx"], "d_y": data["vy"], "d_vx": np.zeros(n),
             "d_vy": -9.81 + 0.05 * data["vy"]}  # a small, unknown lift the MLP must learn
    from registry.composition.train import train_composite

    result = train_composite(net, data, target="derivatives", max_epochs=60, lr=0.02, batch=64,
                             target_nrmse=0.01, progress=False)
    assert result.stopped_early and result.metrics["nrmse"] <= 0.01
    assert result.train_flops > 0


def test_builder_gives_the_same_spec_as_yaml(seeded) -> None:
    built = (Builder("falling")
             .input("y", "m", range=(0.0, 100.0)).input("m", "kg", range=(0.1, 10.0))
             .constant("M_earth", M_EARTH, "kg").constant("R_earth", R_EARTH, "m")
             .module("gravity", "gravity@^1", inputs={"m1": "M_earth", "m2": "m",
                                                       "r": "R_earth + y"}, outputs={"F": "F_g"})
             .module("drag", "drag@^1", outputs={"F": "F_d"})
             .output("a", "(F_d - F_g)/m", unit="m/s^2").spec())
    assert built.model_dump() == parse_spec(falling()).model_dump()


def test_registered_composite_reloads_identically_in_a_fresh_process(seeded, repo: Path) -> None:
    net = seeded.compose(parse_spec(vacuum_projectile(dt=0.01)))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.01 * torch.randn_like(p))  # as if trained: the weights must travel
    result = seeded.register_composite(net, name="projectile")
    assert result.tag == "projectile@v1.0.0"
    manifest = seeded.get("projectile@1.0.0")
    assert (manifest.kind, manifest.provenance.source, manifest.provenance.parents) == (
        "composite", "composed", [])  # an inline MLP only: no registered parents
    assert manifest.composition is not None and manifest.composition.weights is not None
    x = net.sample_inputs(8, seed=3)
    expected = net(x).detach().numpy().tolist()
    probe = ("import json, sys, torch, registry\n"
             "net = registry.open().load('projectile@1.0.0')\n"
             f"x = torch.tensor({x.tolist()!r})\n"
             "print(json.dumps(net(x).detach().numpy().tolist()))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=repo, capture_output=True, text=True,
                         check=True).stdout
    assert json.loads(out) == expected


def test_compose_cli_summary(seeded, repo: Path) -> None:
    spec = repo / "falling.yaml"
    spec.write_text(yaml.safe_dump(falling(), sort_keys=False))
    result = subprocess.run([sys.executable, "-m", "registry.cli", "compose", str(spec),
                             "--json"], cwd=repo, capture_output=True, text=True, check=True)
    report = json.loads(result.stdout)
    assert [(n["node"], n["ref"]) for n in report["nodes"]] == [("gravity", "gravity@1.0.0"),
                                                                ("drag", "drag@1.0.0")]
    # F_g: c*m (1), R+y (1), square (1), div (1); F_d: 0.5*A*C_d*rho*v*v (5); (F_d-F_g)/m (2)
    assert (report["params"], report["flops_per_sample"]) == (0, 11)




def test_composite_pins_its_parents(seeded, repo: Path) -> None:
    net = seeded.compose(parse_spec(falling()))
    manifest = seeded.register_composite(net, name="falling").manifest
    assert manifest.provenance.parents == ["drag@1.0.0", "gravity@1.0.0"]
    pinned = yaml.safe_load((repo / "modules" / "falling" / "compose.yaml").read_text())
    assert pinned["nodes"]["gravity"]["module"] == "gravity@1.0.0"
    assert manifest.cost.flops_per_sample == 11  # counted from the whole composite


def test_composite_of_unregistered_modules_is_refused(reg, repo: Path) -> None:
    spec = falling(**{"nodes.gravity.module": "gravity@workspace",
                      "nodes.drag.module": "drag@workspace"})
    net = reg.compose(parse_spec(spec))
    with pytest.raises(registry.ManifestError, match=r"nodes \['drag', 'gravity'\] use "
                       "unregistered .workspace. modules; register them first"):
        reg.register_composite(net, name="falling")
