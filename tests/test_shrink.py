"""Shrinking networks (prune, int8, lower precision, a student) and choosing among
alternatives by accuracy and cost."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn
from typer.testing import CliRunner

import registry
from registry.cli import app
from registry.errors import BudgetExceeded, CompositionError, ManifestError, ShrinkError
from registry.nn.network import NetworkModule
from registry.nn.weights import load_weights, save_weights, weight_stats
from registry.shrink import methods
from registry.shrink.methods import CHECK_EVERY, TeacherData

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def teacher_and_data(tmp_path_factory: pytest.TempPathFactory):
    from tests.conftest import make_repo

    repo = make_repo(tmp_path_factory.mktemp("shrink") / "repo", ["drag-net"])
    reg = registry.open(repo)
    teacher = reg.load("drag-net@workspace")
    return teacher, TeacherData.draw(teacher, reg.get("drag-net@workspace"))


def _linears(net: NetworkModule) -> list[nn.Linear]:
    return [m for m in net.net.children() if isinstance(m, nn.Linear)]


def test_unstructured_pruning_keeps_shapes_and_counts_the_zeros(teacher_and_data) -> None:
    teacher, data = teacher_and_data
    pruned = methods.prune(teacher, 0.5, structured=False)
    steps = methods.fine_tune(pruned, data, steps=40)
    methods.finish_pruning(pruned)
    assert steps == 40
    assert [tuple(m.weight.shape) for m in _linears(pruned)] == \
        [tuple(m.weight.shape) for m in _linears(teacher)]
    zeros = sum(int((m.weight == 0).sum()) for m in _linears(pruned))
    matrix_entries = sum(m.weight.numel() for m in _linears(teacher))
    assert zeros == pytest.approx(matrix_entries / 2, abs=1)  # global L1: half of all weights
    stats, before = weight_stats(pruned), weight_stats(teacher)
    assert stats.params == before.params and stats.bytes == before.bytes  # dense: same storage
    assert stats.zero_macs == zeros and stats.nonzero == before.params - zeros
    from registry.cost.measure import count_flops

    manifest = _manifest(teacher_and_data)
    assert count_flops(pruned, manifest).forward == count_flops(teacher, manifest).forward
    assert data.nrmse(pruned) < 0.05  # fine-tuned on the teacher's outputs
    assert not any(hasattr(m, "weight_orig") for m in _linears(pruned))  # the mask is gone


def _manifest(teacher_and_data):
    from registry.core.manifest import load_manifest
    from tests.conftest import MODULES

    return load_manifest(MODULES / "drag-net" / "module.yaml")


def test_structured_pruning_removes_neurons_and_keeps_what_they_computed(
        teacher_and_data) -> None:
    teacher, data = teacher_and_data
    smaller = methods.prune(teacher, 0.5, structured=True)
    assert smaller.config["hidden"] == [32, 32]
    # the teacher with the removed neurons silenced computes exactly what the smaller net does
    silenced = copy.deepcopy(teacher)
    layers = _linears(silenced)
    with torch.no_grad():
        for layer in layers[:-1]:
            norms = layer.weight.norm(dim=1)
            dropped = norms.argsort()[: layer.out_features // 2]
            layer.weight[dropped] = 0
            layer.bias[dropped] = 0
    x = data.x_val[:256]
    with torch.no_grad():
        assert torch.allclose(silenced(x), smaller(x), rtol=1e-5, atol=1e-5)
    assert weight_stats(smaller).params == 4 * 32 + 32 + 32 * 32 + 32 + 32 + 1
    with pytest.raises(ShrinkError, match="between 0 and 1"):
        methods.prune(teacher, 1.5, structured=True)


def test_int8_weights_round_trip_through_safetensors_and_count_their_flops(
        teacher_and_data, tmp_path: Path) -> None:
    teacher, data = teacher_and_data
    quantized = methods.quantize_int8(teacher)
    assert data.nrmse(quantized) < 0.015  # within tolerance of the float network
    assert data.nrmse(quantized) > 0  # it is really quantized
    path = tmp_path / "w.safetensors"
    sha = save_weights(quantized, path)
    loaded = NetworkModule("mlp", teacher.config, inputs=teacher.input_names,
                           outputs=teacher.output_names, precision="int8")
    load_weights(loaded, path.read_bytes(), sha256=sha, where=str(path))
    x = data.x_val[:512]
    with torch.no_grad():
        assert torch.equal(loaded(x), quantized(x))
    stats, dense = weight_stats(loaded), weight_stats(teacher)
    assert stats.params == dense.params
    assert stats.bytes < dense.bytes * 0.4  # the 64x64 layer in int8, the ends in float32
    assert isinstance(loaded.net[0], nn.Linear) and isinstance(loaded.net[4], nn.Linear)
    assert not isinstance(loaded.net[2], nn.Linear)  # the hidden-to-hidden layer is int8
    from registry.cost.flops import count_module_flops

    flops = count_module_flops(loaded, x[:16])
    assert flops.forward == count_module_flops(teacher, x[:16]).forward
    assert "linear_dynamic" in flops.by_op and flops.uncounted_ops == ()
    assert flops.forward_backward is None  # no gradient through int8 layers
    # a float network refuses int8 weights, naming the field to fix
    with pytest.raises(ManifestError, match=r"network\.config|network\.precision"):
        load_weights(teacher.__class__("mlp", teacher.config, inputs=teacher.input_names,
                                       outputs=teacher.output_names),
                     path.read_bytes(), sha256=sha, where=str(path))


def test_lower_precision_weights_are_stored_as_such(teacher_and_data, tmp_path: Path) -> None:
    teacher, data = teacher_and_data
    half = methods.to_precision(teacher, "bfloat16")
    assert all(m.weight.dtype is torch.bfloat16 for m in _linears(half))
    assert 0 < data.nrmse(half) < 0.02
    path = tmp_path / "w.safetensors"
    sha = save_weights(half, path)
    assert weight_stats(half).bytes == weight_stats(teacher).bytes // 2
    plain = NetworkModule("mlp", teacher.config, inputs=teacher.input_names,
                          outputs=teacher.output_names)
    with pytest.raises(ManifestError, match=r"stored as torch.bfloat16.*network.precision"):
        load_weights(plain, path.read_bytes(), sha256=sha, where=str(path))
    with pytest.raises(ShrinkError, match="bfloat16"):
        methods.to_precision(teacher, "float8")


def test_the_student_stops_at_its_target_not_at_convergence(teacher_and_data) -> None:
    teacher, data = teacher_and_data
    loose, loose_steps = methods.train_student(teacher, data, hidden=[16], target_nrmse=0.05,
                                               max_steps=3000)
    tight, tight_steps = methods.train_student(teacher, data, hidden=[16], target_nrmse=0.015,
                                               max_steps=3000)
    assert data.nrmse(loose) <= 0.05 and data.nrmse(tight) <= 0.015
    assert loose_steps < tight_steps < 3000
    assert loose_steps % CHECK_EVERY == 0
    assert data.nrmse(loose) > 0.015  # it stopped once the loose target was met
    with pytest.raises(ShrinkError, match=r"short of the target 1e-06.*--steps"):
        methods.train_student(teacher, data, hidden=[2], target_nrmse=1e-6, max_steps=20)


def test_shrink_request_names_one_method() -> None:
    from registry.shrink import ShrinkRequest

    with pytest.raises(ShrinkError, match="exactly one of"):
        ShrinkRequest.parse()
    with pytest.raises(ShrinkError, match="exactly one of"):
        ShrinkRequest.parse(prune=0.5, quantize="int8")
    with pytest.raises(ShrinkError, match="--target-nrmse"):
        ShrinkRequest.parse(student=[8])
    with pytest.raises(ShrinkError, match="only int8"):
        ShrinkRequest.parse(quantize="int4")
    with pytest.raises(ShrinkError, match="they train nothing"):
        ShrinkRequest.parse(quantize="int8", steps=10)
    assert ShrinkRequest.parse(prune=0.5, structured=True).default_name("drag-net") == \
        "drag-net-pruned50s"


# registered variants, alternatives, select ----------------------------------------------


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory):
    """drag, drag-net, an int8 and a student variant of drag-net, registered."""
    from tests.conftest import make_repo

    repo = make_repo(tmp_path_factory.mktemp("variants") / "repo", ["drag", "drag-net"])
    reg = registry.open(repo)
    reg.register(repo / "modules" / "drag")
    reg.register(repo / "modules" / "drag-net")
    int8 = reg.shrink("drag-net@1.0.0", quantize="int8", register=True)
    student = reg.shrink("drag-net@1.0.0", student=[8], target_nrmse=0.03, register=True)
    return repo, reg, int8, student


def test_a_variant_is_a_module_derived_from_its_teacher(variants) -> None:
    _, reg, int8, _ = variants
    assert int8.registered == "drag-net-int8@v1.0.0"
    card = reg.get("drag-net-student-8@1.0.0")
    assert card.provenance.source == "derived"
    assert card.provenance.derived_from == "drag-net@1.0.0"
    assert card.provenance.derivation.method == "student"
    assert card.provenance.derivation.settings == {"hidden": [8], "target_nrmse": 0.03}
    assert card.provenance.derivation.vs_teacher["nrmse"] <= 0.03
    assert card.cost.training.energy_j > 0 and card.cost.training.method.startswith(
        ("estimated:", "measured:"))
    teacher = reg.get("drag-net@1.0.0")
    assert card.cost.flops_per_sample < teacher.cost.flops_per_sample
    assert card.budget.max_flops_per_sample == teacher.cost.flops_per_sample
    assert card.evaluation.data.sha256 == teacher.evaluation.data.sha256  # the same truth
    quantized = reg.get("drag-net-int8@1.0.0")
    assert quantized.network.precision == "int8"
    assert quantized.cost.weight_bytes < teacher.cost.weight_bytes * 0.4
    assert quantized.cost.flops_per_sample == teacher.cost.flops_per_sample
    assert reg.load("drag-net-int8@1.0.0").precision == "int8"
    side = int8.variant
    assert side["weight_bytes"] == quantized.cost.weight_bytes
    assert side["latency_batch"] == 4096 and side["latency_ns_per_sample"] > 0
    from registry.lineage import render

    assert "derived from drag-net@1.0.0" in render(reg.lineage("drag-net-int8@1.0.0"))


def test_the_gate_checks_a_variant_against_its_own_budget(variants) -> None:
    _, reg, *_ = variants
    report = reg.check(all_modules=True, use_cache=False)
    rows = {(m.name, r.check): r for m in report.modules for r in m.results}
    assert rows[("drag-net-student-8", "budget:max_flops_per_sample")].verdict == "pass"
    assert rows[("drag-net-int8", "budget:max_flops_per_sample")].verdict == "pass"
    assert rows[("drag-net-int8", "accuracy:nrmse")].verdict == "pass"  # reproduced in int8
    assert report.passed, report.failures


def test_alternatives_share_ports_order_and_units(variants, tmp_path: Path) -> None:
    repo, reg, *_ = variants
    drag = yaml.safe_load((repo / "modules" / "drag" / "module.yaml").read_text())

    def register(name: str, edit) -> None:
        data = copy.deepcopy(drag)
        data["name"] = name
        data["version"] = "1.0.0"
        data["provenance"] = {"source": "hand-written"}
        edit(data)
        folder = repo / "modules" / name
        folder.mkdir()
        (folder / "module.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        reg.register(folder)

    def kilonewtons(data) -> None:
        data["outputs"]["F"]["unit"] = "kN"
        data["constants"] = {"per_kN": {"value": 0.001, "unit": "kN/N"}}
        data["equation"]["F"] = "per_kN*rho*C_d*A*v**2/2"
        data["evaluation"]["reference"]["equation"]["F"] = "rho*C_d*A*v**2/2000"

    def si_base(data) -> None:
        data["outputs"]["F"]["unit"] = "kg*m/s^2"

    def reordered(data) -> None:
        data["inputs"] = dict(reversed(list(data["inputs"].items())))

    register("drag-kn", kilonewtons)
    register("drag-si", si_base)
    register("drag-reordered", reordered)
    found = [a.ref for a in reg.alternatives("drag")]
    assert "drag-si@1.0.0" in found  # N and kg*m/s^2: same dimension and scale
    assert "drag-kn@1.0.0" not in found  # kN: another scale
    assert "drag-reordered@1.0.0" not in found  # the columns would be misread
    assert {"drag@1.0.0", "drag-net@1.0.0", "drag-net-int8@1.0.0",
            "drag-net-student-8@1.0.0"} <= set(found)
    measured = {a.ref: a for a in reg.alternatives("drag", measure=True)}
    assert measured["drag-net-int8@1.0.0"].accuracy_on == "drag@1.0.0"
    assert measured["drag@1.0.0"].nrmse < 1e-6


def test_select_returns_the_cheapest_within_the_budget(variants) -> None:
    repo, reg, *_ = variants
    chosen = reg.select("drag", max_nrmse=0.01, by="flops")
    assert chosen.name in {"drag", "drag-si"} and chosen.flops == 5 and chosen.kind == "equation"
    assert reg.select("drag-net", max_nrmse=0.05, by="latency").kind == "equation"
    with pytest.raises(BudgetExceeded, match=r"no alternative of drag meets max_nrmse 1e-12: "
                                             r"the most accurate of the \d+ is drag"):
        reg.select("drag", max_nrmse=1e-12)
    with pytest.raises(registry.RegistryError, match="flops, energy, latency"):
        reg.select("drag", max_nrmse=0.01, by="speed")
    result = CliRunner().invoke(app, ["select", "drag", "--max-nrmse", "0.01", "--by", "flops",
                                      "--json"], env={"REGISTRY_ROOT": str(repo)})
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["flops"] == 5
    listed = CliRunner().invoke(app, ["alternatives", "drag-net", "--json"],
                                env={"REGISTRY_ROOT": str(repo)})
    assert "drag-net-int8@1.0.0" in {a["ref"] for a in json.loads(listed.output)}


def test_a_compose_spec_may_ask_for_the_best_alternative(variants, tmp_path: Path) -> None:
    _, reg, *_ = variants
    spec = {"schema": 1, "name": "force", "inputs": {
        "rho": {"unit": "kg/m^3", "range": [0.5, 1.5]}, "C_d": {"unit": "1", "range": [0.1, 1]},
        "A": {"unit": "m^2", "range": [0.001, 0.1]}, "v": {"unit": "m/s", "range": [1, 60]}},
        "nodes": {"drag": {"module": "best(drag-net, max_nrmse=0.05, by=flops)"}},
        "outputs": {"F": {"unit": "N", "value": "F"}}}
    path = tmp_path / "force.compose.yaml"
    path.write_text(yaml.safe_dump(spec))
    net = reg.compose(path)
    assert net.pinned_spec()["nodes"]["drag"]["module"] == reg.select(
        "drag-net", max_nrmse=0.05).ref
    for bad, message in (("best(drag-net, max_nrmse=__import__('os'))", "write `best\\(NAME"),
                         ("best(drag-net, max_nrmse=os)", "must be a number"),
                         ("best(drag-net)", "max_nrmse= \\(required\\)"),
                         ("best(drag-net, max_nrmse=1e-12)", "no alternative of drag-net meets")):
        spec["nodes"]["drag"]["module"] = bad
        path.write_text(yaml.safe_dump(spec))
        with pytest.raises(CompositionError, match=f"nodes.drag.module.*{message}"):
            reg.compose(path)


def test_a_composite_pinning_a_variant_is_costed_with_the_variants_figures(variants,
                                                                           tmp_path: Path) -> None:
    _, reg, *_ = variants
    from registry.cost.flops import count_module_flops

    counts = {}
    for ref in ("drag-net@1.0.0", "drag-net-student-8@1.0.0"):
        spec = {"schema": 1, "name": "force", "inputs": {
            "rho": {"unit": "kg/m^3", "range": [0.5, 1.5]},
            "C_d": {"unit": "1", "range": [0.1, 1]}, "A": {"unit": "m^2", "range": [0.001, 0.1]},
            "v": {"unit": "m/s", "range": [1, 60]}},
            "nodes": {"drag": {"module": ref}}, "outputs": {"F": {"unit": "N", "value": "F"}}}
        path = tmp_path / "force.compose.yaml"
        path.write_text(yaml.safe_dump(spec))
        counts[ref] = count_module_flops(reg.compose(path), torch.rand(16, 4)).forward
    saving = (reg.get("drag-net@1.0.0").cost.flops_per_sample
              - reg.get("drag-net-student-8@1.0.0").cost.flops_per_sample)
    assert counts["drag-net@1.0.0"] - counts["drag-net-student-8@1.0.0"] == saving


def test_the_module_page_shows_alternatives_and_their_pareto_plots(variants) -> None:
    from fastapi.testclient import TestClient

    from registry.server import create_app

    repo, *_ = variants
    page = TestClient(create_app(repo)).get("/modules/drag-net-int8").text
    assert 'id="alternatives"' in page
    assert page.count('<svg xmlns="http://www.w3.org/2000/svg" class="pareto"') == 2
    assert re.search(r'href="/modules/drag\?version=1.0.0">drag@1.0.0</a>', page)
    assert "Derived from (teacher)" in page and "quantize" in page
    assert "int8" in page and "Weight bytes read per call" in page


def test_shrink_refuses_what_is_not_a_network(variants) -> None:
    repo, reg, *_ = variants
    with pytest.raises(ShrinkError, match=r"equation module; shrink takes a network"):
        reg.shrink("drag@1.0.0", quantize="int8")
    before = (repo / "modules" / "drag" / "module.yaml").read_bytes()
    with pytest.raises(ShrinkError, match=r"modules/drag exists and is not a variant of "
                                          r"drag-net.*nothing was written"):
        reg.shrink("drag-net@1.0.0", quantize="int8", name="drag")
    assert (repo / "modules" / "drag" / "module.yaml").read_bytes() == before
    assert not (repo / "modules" / "drag" / "weights.safetensors").exists()


def test_a_teacher_answering_nan_is_refused(teacher_and_data) -> None:
    teacher, _ = teacher_and_data
    broken = copy.deepcopy(teacher)
    with torch.no_grad():
        broken.out_scale.fill_(float("nan"))
    with pytest.raises(ShrinkError, match="NaN or inf at 12288 of the 12288 inputs"):
        TeacherData.draw(broken, _manifest(teacher_and_data))


def test_registry_shrink_on_the_command_line_writes_a_variant_folder(variants) -> None:
    repo, *_ = variants
    result = CliRunner().invoke(app, ["shrink", "drag-net@1.0.0", "--dtype", "bfloat16",
                                      "--name", "drag-net-half"],
                                env={"REGISTRY_ROOT": str(repo)})
    assert result.exit_code == 0, result.output
    assert re.search(r"teacher drag-net@1\.0\.0\s+9995\s+9995\s+18180", result.output)
    assert re.search(r"variant drag-net-half\s+9995\s+9995\s+9090", result.output)
    written = yaml.safe_load((repo / "modules" / "drag-net-half" / "module.yaml").read_text())
    assert written["network"]["precision"] == "bfloat16"
    assert written["provenance"]["derivation"]["method"] == "dtype"
    assert (repo / "modules" / "drag-net-half" / "test.npz").is_file()
    refused = CliRunner().invoke(app, ["shrink", "drag-net@1.0.0", "--student", "8"],
                                 env={"REGISTRY_ROOT": str(repo)})
    assert isinstance(refused.exception, ShrinkError)
    assert "--target-nrmse" in str(refused.exception)


def test_the_api_lists_alternatives_and_selects(variants) -> None:
    from fastapi.testclient import TestClient

    from registry.server import create_app

    repo, *_ = variants
    client = TestClient(create_app(repo))
    listed = client.get("/api/v1/modules/drag-net%40%5E1/alternatives")
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert body["ref"] == "drag-net@1.0.0" and body["selected"] is None
    assert {"drag@1.0.0", "drag-net-int8@1.0.0"} <= {a["ref"] for a in body["alternatives"]}
    chosen = client.get("/api/v1/modules/drag/alternatives",
                        params={"max_nrmse": 0.01, "by": "flops"}).json()["selected"]
    assert chosen["flops"] == 5 and chosen["kind"] == "equation"
    refused = client.get("/api/v1/modules/drag/alternatives", params={"max_nrmse": 1e-12})
    assert refused.status_code == 422
    assert refused.json()["type"] == "budget_exceeded"
    assert "the most accurate" in refused.json()["message"]
    assert client.get("/api/v1/modules/drag/alternatives",
                      params={"by": "speed"}).status_code == 422


def test_the_pareto_front_keeps_what_nothing_beats_on_both_axes() -> None:
    from registry.alternatives import Alternative, pareto_front

    def alt(ref: str, nrmse: float | None, flops: int | None) -> Alternative:
        return Alternative(ref=ref, kind="network", source="trained", nrmse=nrmse, flops=flops,
                           energy_j=None, latency_ns=None, weight_bytes=None, derived_from=None,
                           accuracy_on=ref)

    found = [alt("big@1", 0.001, 10_000), alt("small@1", 0.01, 400),
             alt("worse@1", 0.02, 500), alt("tie@1", 0.01, 400), alt("eq@1", 1e-7, 5),
             alt("unmeasured@1", None, 3)]
    assert pareto_front(found) == ["eq@1"]
    assert pareto_front(found[:4]) == ["small@1", "tie@1", "big@1"]  # ties kept, cheapest first
