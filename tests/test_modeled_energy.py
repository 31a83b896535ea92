"""Modeled energy (issue 14): hand-counted operations and bytes, and a gate that fails on it.

The figures below are counted by hand from the aten ops each module runs
(listed in the comments), priced with Horowitz's 45 nm table: float32 add
0.9 pJ, multiply 3.7 pJ; 8 KB cache 10 pJ / 64 bit (1.25 pJ/B), 32 KB 20 pJ
(2.5 pJ/B), 1 MB 100 pJ (12.5 pJ/B), DRAM 1.3 nJ (162.5 pJ/B).
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

import registry
from registry.cli.main import app
from registry.cost.flops import OP_WEIGHTS, count_module_flops
from registry.cost.modeled import OP_SPLIT, TABLES, energy_table, model_energy
from registry.errors import RegistryError
from tests.conftest import make_repo

PJ = 1e-12


def test_the_table_is_horowitz_isscc_2014() -> None:
    table = energy_table("horowitz-45nm")
    assert "Horowitz" in table.source and "ISSCC 2014" in table.source and "45 nm" in table.source
    assert table.op_pj[("add", "float32")] == 0.9 and table.op_pj[("mul", "float32")] == 3.7
    assert table.op_pj[("add", "int32")] == 0.1 and table.op_pj[("mul", "int32")] == 3.1
    assert [lv.pj_per_byte * 8 for lv in table.levels] == [10, 20, 100, 1300]
    assert table.method == "modeled:horowitz-45nm" and table.version == "1"
    with pytest.raises(RegistryError, match="no energy table `nope`; the tables are horowitz"):
        energy_table("nope")


def test_the_split_agrees_with_the_flop_weights() -> None:
    """Every op the FLOP table weighs is split into adds and multiplies summing to its weight."""
    for op, weight in OP_WEIGHTS.items():
        assert op in OP_SPLIT, op
        assert sum(OP_SPLIT[op]) == weight, op


def test_gravity_hand_counted(tmp_path: Path) -> None:
    """G*m1*m2/r**2 at batch B: mul(G, m1), mul(·, m2), mul(r, r), div, then stack.

    Arithmetic: 4 multiplies per sample (div priced as a multiply).
    Bytes per call: mul(G, m1) reads 4 (scalar) + 4B, writes 4B; the next three
    read 8B and write 4B; stack reads 4B and writes 4B: 52B + 4 in all.
    At B = 1024 the working sets are 8,196, 12,288 ×3 (32 KB level) and 8,192
    (8 KB level).
    """
    root = make_repo(tmp_path / "repo", ["gravity"])
    reg = registry.open(root)
    module = reg.load("gravity@workspace")
    x = torch.rand(1024, 3) + 0.5
    energy = model_energy(module, x)
    assert dict(energy.traffic.ops) == {("mul", "float32"): 4.0}
    assert energy.traffic.bytes["cache-8KB"] == 8.0
    assert energy.traffic.bytes["cache-32KB"] == pytest.approx(44 + 4 / 1024, rel=1e-12)
    expected = 4 * 3.7 + 8 * 1.25 + (44 + 4 / 1024) * 2.5
    assert energy.j_per_sample == pytest.approx(expected * PJ, rel=1e-12)
    assert energy.ops_j == pytest.approx(4 * 3.7 * PJ, rel=1e-12)
    assert energy.method == "modeled:horowitz-45nm" and energy.batch == 1024
    assert energy.unpriced == ()


def _mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 1))


def test_small_mlp_hand_counted() -> None:
    """3→4 (tanh)→1 at batch B: addmm, tanh, addmm (the transposes are views).

    Multiplies: 3·4 + 4·4 (tanh: 4 per element) + 4·1 = 32 per sample; adds:
    3·4 + 4 (bias) + 4·4 + 4·1 + 1 = 37. Their sum is the FLOP count, 69.
    Bytes: addmm reads the bias (16), x (12B) and W (48), writes 16B; tanh reads
    and writes 16B each; addmm reads 4 + 16B + 16, writes 4B: 80B + 84.
    Weights are read once per batch, so per sample 80 + 84/B: batch 8 gives
    90.5 B, all in the 8 KB level; batch 1024 gives 80.08 B in the 32 KB level.
    """
    net = _mlp()
    small = model_energy(net, torch.rand(8, 3))
    assert dict(small.traffic.ops) == {("add", "float32"): 37.0, ("mul", "float32"): 32.0}
    assert count_module_flops(net, torch.rand(8, 3), backward=False).forward == 69
    assert dict(small.traffic.bytes) == {"cache-8KB": 80 + 84 / 8}
    assert small.j_per_sample == pytest.approx((32 * 3.7 + 37 * 0.9 + 90.5 * 1.25) * PJ,
                                               rel=1e-12)
    large = model_energy(net, torch.rand(1024, 3))
    assert dict(large.traffic.bytes) == {"cache-32KB": pytest.approx(80 + 84 / 1024)}
    assert large.j_per_sample == pytest.approx(
        (32 * 3.7 + 37 * 0.9 + (80 + 84 / 1024) * 2.5) * PJ, rel=1e-12)


def test_backward_is_counted_for_training() -> None:
    net = _mlp()
    forward = model_energy(net, torch.rand(64, 3))
    both = model_energy(net, torch.rand(64, 3), backward=True)
    assert both.j_per_sample > 2 * forward.j_per_sample
    assert both.unpriced == (), both.unpriced


def test_unknown_ops_are_listed_not_zero() -> None:
    class Erf(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.erf(x)

    assert "erf" in model_energy(Erf(), torch.rand(16, 2)).unpriced


def test_modeled_energy_is_the_same_on_every_run() -> None:
    net = _mlp()
    x = torch.rand(256, 3)
    first, second = model_energy(net, x), model_energy(net, x)
    assert first.j_per_sample == second.j_per_sample  # exact, no tolerance
    assert sorted(TABLES) == ["horowitz-45nm"]


# the gate ---------------------------------------------------------------------------


def _set_budget(folder: Path, **budget: float) -> None:
    path = folder / "module.yaml"
    data = yaml.safe_load(path.read_text())
    data["version"] = "1.0.1"
    data.setdefault("budget", {}).update(budget)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_the_gate_fails_on_modeled_energy_without_a_counter(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", ["drag-net"])
    reg = registry.open(root)
    registered = reg.register(root / "modules" / "drag-net").manifest
    modeled = registered.cost.energy_modeled_j_per_sample
    assert modeled is not None and modeled.method == "modeled:horowitz-45nm"
    assert modeled.batch == 1024 and modeled.table_version == "1"
    assert registered.cost.energy_j_per_sample.method.startswith(("estimated:", "measured:"))
    limit = modeled.value * 0.9  # the pull request's module costs more than its budget
    _set_budget(root / "modules" / "drag-net", max_energy_j_per_sample=limit)
    runner = CliRunner()
    env = {"REGISTRY_ROOT": str(root)}
    first = runner.invoke(app, ["check", "--no-cache", "--format", "md"], env=env)
    second = runner.invoke(app, ["check", "--no-cache", "--format", "md"], env=env)
    assert first.exit_code == 1, first.output
    assert first.stdout == second.stdout  # byte-identical: the same verdict on every run
    line = next(row for row in first.stdout.splitlines() if "max_energy_j_per_sample" in row
                and "❌" in row)
    assert "modeled:horowitz-45nm" in line
    assert (f"drag-net: energy per sample {modeled.value:.6g} J (modeled:horowitz-45nm) "
            f"exceeds the budget max_energy_j_per_sample: {limit:.6g} J") in first.stdout
    _set_budget(root / "modules" / "drag-net", max_energy_j_per_sample=modeled.value * 1.1)
    assert runner.invoke(app, ["check", "--no-cache"], env=env).exit_code == 0


def test_a_measured_budget_with_only_an_estimate_is_info(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", ["drag"])
    reg = registry.open(root)
    reg.register(root / "modules" / "drag")
    path = root / "modules" / "drag" / "module.yaml"
    _set_budget(root / "modules" / "drag", max_energy_j_per_sample=1e-30)
    data = yaml.safe_load(path.read_text())
    data["budget"]["energy_figure"] = "measured"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    report = reg.check(use_cache=False)
    rows = [r for m in report.modules for r in m.results
            if r.check == "budget:max_energy_j_per_sample"]
    assert [r.verdict for r in rows] == ["info"], rows
    assert report.passed


def test_modeled_figures_of_the_seed_modules_are_ordered_like_their_flops(
        tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", ["drag", "drag-net"])
    reg = registry.open(root)
    drag = reg.register(root / "modules" / "drag").manifest.cost
    net = reg.register(root / "modules" / "drag-net").manifest.cost
    assert drag.energy_modeled_j_per_sample and net.energy_modeled_j_per_sample
    ratio = net.energy_modeled_j_per_sample.value / drag.energy_modeled_j_per_sample.value
    ops_ratio = (net.energy_modeled_j_per_sample.ops_j or 0) / (
        drag.energy_modeled_j_per_sample.ops_j or 1)
    flops_ratio = (net.flops_per_sample or 0) / (drag.flops_per_sample or 1)
    assert ratio > 100 and math.isfinite(ratio)
    assert ops_ratio > ratio  # bytes narrow the gap: the equation moves bytes per op
    assert flops_ratio > 1000


# tables by name -----------------------------------------------------------------------

TABLE_FILE = """
- name: doubled
  version: "2"
  source: a test table, twice Horowitz for float32
  ops: {"add:float32": 1.8, "mul:float32": 7.4}
  levels:
    - {name: sram, capacity_bytes: 1048576, pj_per_byte: 2.5}
    - {name: dram, capacity_bytes: null, pj_per_byte: 325}
"""


def test_a_table_from_a_file_is_selectable_by_name(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "tables.yaml"
    path.write_text(TABLE_FILE)
    monkeypatch.setenv("REGISTRY_ENERGY_TABLE_FILE", str(path))
    net = _mlp()
    x = torch.rand(8, 3)
    doubled = model_energy(net, x, table="doubled")
    assert doubled.method == "modeled:doubled" and doubled.table_version == "2"
    assert doubled.j_per_sample == pytest.approx(
        (32 * 7.4 + 37 * 1.8 + (80 + 84 / 8) * 2.5) * PJ, rel=1e-12)
    monkeypatch.setenv("REGISTRY_ENERGY_TABLE", "doubled")
    assert model_energy(net, x).method == "modeled:doubled"  # the default follows the env


@pytest.mark.parametrize(("text", "message"), [
    ("{}", "top level: expected a list of tables"),
    ("- name: horowitz-45nm\n  ops: {add:float32: 1}\n", "must be new"),
    ("- name: t\n  ops: {\"div:float32\": 1}\n", "keys are add:<dtype> or mul:<dtype>"),
    ("- name: t\n  ops: {\"add:float32\": .nan}\n", "a finite pJ > 0"),
    ("- name: t\n  ops: {\"add:float32\": 1}\n  levels: [{name: l, capacity_bytes: 8, "
     "pj_per_byte: 1}]\n", "the last level with capacity_bytes: null"),
    ("- &a {name: t}\n- *a\n", "aliases are not allowed"),
])
def test_a_bad_table_file_names_the_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          text: str, message: str) -> None:
    path = tmp_path / "tables.yaml"
    path.write_text(text)
    monkeypatch.setenv("REGISTRY_ENERGY_TABLE_FILE", str(path))
    with pytest.raises(RegistryError, match=message) as caught:
        energy_table("t")
    assert str(path) in str(caught.value) and "\n" not in str(caught.value)


def test_training_budgets_bind_the_modeled_training_energy() -> None:
    from registry.core.manifest import parse_manifest
    from registry.gate.budgets import recorded_figures, verdicts

    base = (Path(__file__).parents[1] / "modules" / "drag-net" / "module.yaml").read_text()
    data = yaml.safe_load(base)
    data["cost"]["training"] = {
        "energy_j": 0.5, "method": "estimated:power_model",
        "energy_modeled": {"value": 3.0, "method": "modeled:horowitz-45nm",
                           "table_version": "1", "batch": 256, "samples": 10_000}}
    data["budget"] = {"max_training_energy_j": 2.0}
    manifest = parse_manifest(yaml.safe_dump(data))
    [line] = verdicts(manifest, recorded_figures(manifest))
    assert (line.verdict, line.value, line.method) == ("fail", 3.0, "modeled:horowitz-45nm")
    data["budget"]["training_energy_figure"] = "measured"
    manifest = parse_manifest(yaml.safe_dump(data))
    [line] = verdicts(manifest, recorded_figures(manifest))
    assert (line.verdict, line.value) == ("info", 0.5)  # an estimate: reported, not gated
    data["cost"]["training"]["method"] = "measured:rapl"
    data["cost"]["training"]["energy_j"] = 2.1  # within the 10 % a counter is allowed
    manifest = parse_manifest(yaml.safe_dump(data))
    assert verdicts(manifest, recorded_figures(manifest))[0].verdict == "pass"
    data["cost"]["training"]["energy_j"] = 2.3
    manifest = parse_manifest(yaml.safe_dump(data))
    assert verdicts(manifest, recorded_figures(manifest))[0].verdict == "fail"
