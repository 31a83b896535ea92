"""Network distillation: record a part, distil it from what it saw, swap it in, trace it.

A toy composite stands in for the baseball: a body moving through air,
`dv/dt = a`, where the inline MLP node `residual` (ports v in m/s, k in 1/m,
output a in m/s²) stands for the drag no module knows (truth: a = -k·v², v > 0).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml

from registry.errors import BudgetExceeded, CompositionError, DistillationError

DT, STEPS = 0.0625, 8  # exact in binary: ceil(max_time / dt) is STEPS


def fall_spec() -> dict[str, Any]:
    return {
        "schema": 1, "name": "fall", "summary": "A body thrown up through air",
        "inputs": {"v0": {"unit": "m/s", "range": [2.0, 6.0]},
                   "k": {"unit": "1/m", "range": [0.05, 0.2]}},
        "nodes": {"residual": {"mlp": {"hidden": [16], "activation": "tanh"},
                               "inputs": {"v": "v", "k": "k"}, "outputs": {"a": "m/s^2"}}},
        "dynamics": {"state": {"y": {"unit": "m", "initial": "0"},
                               "v": {"unit": "m/s", "initial": "v0"}},
                     "derivatives": {"y": "v", "v": "a"},
                     "dt": DT, "max_time": DT * STEPS},
        "outputs": {"height": {"unit": "m", "value": "y"}},
    }


def truth(v0: np.ndarray, k: np.ndarray) -> np.ndarray:
    """The distance after STEPS steps of RK4 with a = -k v²."""
    y, v = np.zeros_like(v0), v0.copy()

    def rate(y: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return v, -k * v * v

    for _ in range(STEPS):
        k1 = rate(y, v)
        k2 = rate(y + DT / 2 * k1[0], v + DT / 2 * k1[1])
        k3 = rate(y + DT / 2 * k2[0], v + DT / 2 * k2[1])
        k4 = rate(y + DT * k3[0], v + DT * k3[1])
        y = y + DT / 6 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        v = v + DT / 6 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
    return y


def launches(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    v0, k = rng.uniform(2.0, 6.0, n), rng.uniform(0.05, 0.2, n)
    return {"v0": v0, "k": k, "height": truth(v0, k)}


def quad_drag(root: Path, *, sign: str = "-") -> None:
    folder = root / "modules" / "quad-drag"
    folder.mkdir(parents=True)
    (folder / "module.yaml").write_text(yaml.safe_dump({
        "schema": 1, "name": "quad-drag", "version": "1.0.0", "kind": "equation",
        "summary": "Quadratic drag per unit mass",
        "inputs": {"v": {"unit": "m/s", "range": [1.0, 6.0]},
                   "k": {"unit": "1/m", "range": [0.05, 0.2]}},
        "outputs": {"a": {"unit": "m/s^2"}},
        "equation": {"a": f"{sign}k*v**2"},
        "evaluation": {"reference": {"equation": {"a": f"{sign}k*v**2"}}},
    }, sort_keys=False))


@pytest.fixture
def fall(reg, repo: Path, tmp_path: Path) -> dict[str, Any]:
    """`fall` registered with a zero residual, its evaluation data from the true law."""
    from registry.composition import parse_spec

    data = launches(200, 0)
    np.savez(tmp_path / "evaluation.npz", **data)
    net = reg.compose(parse_spec(fall_spec(), source="fall"))
    result = reg.register_composite(net, name="fall", evaluation_data=tmp_path / "evaluation.npz")
    quad_drag(repo)
    reg.register(repo / "modules" / "quad-drag")
    return {"reg": reg, "repo": repo, "net": net, "tag": result.tag, "data": data}


def test_a_node_is_recorded_at_every_call_inside_the_ode(fall) -> None:
    from registry.distillation.recording import record_node

    net, x = fall["net"], torch.rand(30, 2) * torch.tensor([4.0, 0.15]) + torch.tensor([2.0, 0.05])
    rec = record_node(net, "residual", x)
    assert rec.calls == STEPS * 4  # RK4: four rate evaluations per step
    assert rec.x.shape == (STEPS * 4 * 30, 2) and rec.y.shape == (STEPS * 4 * 30, 1)
    assert rec.inputs == {"v": "m/s", "k": "1/m"} and rec.outputs == {"a": "m/s**2"}
    assert np.allclose(rec.x[:30, 0], x[:, 0].numpy(), atol=1e-6)  # the first stage: v = v0
    states = torch.rand(60, 4) + 1.0  # v0, k, then the state variables y, v
    at_states = record_node(net, "residual", states=states)
    assert at_states.calls == 1  # the rates, once, where a residual trained on rates learned
    assert np.allclose(at_states.x, states[:, [3, 1]].numpy(), atol=1e-6)
    assert len(rec.sha256) == 64 and rec.sha256 != at_states.sha256


def test_a_submodule_of_a_plain_sequential_is_recorded_by_dotted_path() -> None:
    from registry.distillation.recording import record_submodule

    model = torch.nn.Sequential(torch.nn.Linear(2, 3), torch.nn.Sequential(
        torch.nn.Tanh(), torch.nn.Linear(3, 1)))
    batches = [torch.randn(40, 2) for _ in range(3)]
    rec = record_submodule(model, "1.1", batches, inputs={"a": "m", "b": "m", "c": "m"},
                           outputs={"out": "s"})
    assert rec.calls == 3 and rec.x.shape == (120, 3) and rec.y.shape == (120, 1)
    with torch.no_grad():
        hidden = torch.tanh(model[0](batches[0]))
        assert np.allclose(rec.x[:40], hidden.numpy(), atol=1e-6)
        assert np.allclose(rec.y[:40], model(batches[0]).numpy(), atol=1e-6)


def test_recording_errors_name_the_part_and_the_fix(fall) -> None:
    from registry.distillation.recording import record_node, record_submodule

    net, x = fall["net"], torch.rand(30, 2) + 2.0
    with pytest.raises(CompositionError, match=r"no node `drag`; its nodes are \['residual'\]"):
        record_node(net, "drag", x)
    model = torch.nn.Sequential(torch.nn.Linear(2, 1))
    with pytest.raises(DistillationError, match=r"'7': no such submodule of Sequential"):
        record_submodule(model, "7", torch.randn(4, 2), inputs={"a": "m", "b": "m"},
                         outputs={"y": "m"})
    with pytest.raises(DistillationError, match=r"takes 2 input columns .* but 1 inputs"):
        record_submodule(model, "0", torch.randn(80, 2), inputs={"a": "m"}, outputs={"y": "m"})
    with pytest.raises(DistillationError, match=r"ports \['b'\] have no unit"):
        record_submodule(model, "0", torch.randn(80, 2), inputs={"a": "m", "b": ""},
                         outputs={"y": "m"})
    with pytest.raises(DistillationError, match=r"only 4 rows were recorded, fewer than the 50"):
        record_submodule(model, "0", torch.randn(4, 2), inputs={"a": "m", "b": "m"},
                         outputs={"y": "m"})


def test_a_node_that_is_an_equation_already_is_refused(fall) -> None:
    reg = fall["reg"]
    with pytest.raises(DistillationError, match=r"--node residual: quad-drag@1\.0\.0 is a "
                                                r"equation; nodes belong to composites"):
        reg.distill("quad-drag@1.0.0", node="residual")
    swapped = reg.compose(_spec_file(fall["repo"]), replace={"residual": "quad-drag@^1"})
    from registry.distillation.recording import record_node

    with pytest.raises(DistillationError, match=r"node `residual` is an equation already "
                                                r"\(quad-drag@1\.0\.0\)"):
        record_node(swapped, "residual", torch.rand(60, 2) + 2.0)


def _spec_file(repo: Path) -> Path:
    path = repo / "fall.compose.yaml"
    path.write_text(yaml.safe_dump(fall_spec(), sort_keys=False))
    return path


def test_a_swap_that_recovers_the_law_is_accepted_with_costs_before_and_after(fall) -> None:
    reg = fall["reg"]
    report = reg.swap(fall["tag"].replace("@v", "@"), {"residual": "quad-drag@^1"},
                      register="fall")
    assert report.accepted, report.reason
    assert report.before["rmse"] > 0.01  # the zero residual misses the drag
    assert report.after["rmse"] < 1e-5  # the law itself flies it (float32)
    assert report.flops_after * 3 < report.flops_before
    assert report.registered == "fall@v1.1.0"  # the composite's next minor version
    swapped = reg.get("fall@1.1.0")
    assert swapped.provenance.parents == ["quad-drag@1.0.0"]
    assert (swapped.evaluation is not None and swapped.evaluation.metrics["rmse"]
            == pytest.approx(report.after["rmse"], rel=1e-3, abs=1e-9))


def test_a_swap_that_loses_accuracy_is_refused_with_both_errors(fall, tmp_path: Path) -> None:
    reg, repo = fall["reg"], fall["repo"]
    accepted = reg.swap("fall@1.0.0", {"residual": "quad-drag@^1"}, register="fall")
    quad_drag_up = repo / "modules" / "quad-drag"
    (quad_drag_up / "module.yaml").unlink()
    quad_drag_up.rmdir()
    quad_drag(repo, sign="+")  # the wrong sign: drag that pushes
    text = (quad_drag_up / "module.yaml").read_text().replace("1.0.0", "2.0.0")
    (quad_drag_up / "module.yaml").write_text(text)
    reg.register(quad_drag_up)
    assert accepted.registered is not None
    with pytest.raises(BudgetExceeded, match=r"fall@1\.1\.0: the swap residual=quad-drag@2\.0\.0 "
                                             r"is refused: nRMSE after the swap [0-9.e-]+ is "
                                             r"worse than before [0-9.e-]+ \(rmse"):
        reg.swap(accepted.registered.replace("@v", "@"), {"residual": "quad-drag@2.0.0"})


def test_lineage_reaches_the_node_and_the_parents(fall, tmp_path: Path) -> None:
    from registry.core.manifest import Recorded, load_manifest, write_manifest
    from registry.lineage import render

    reg, repo = fall["reg"], fall["repo"]
    folder = repo / "modules" / "fall-drag"
    folder.mkdir()
    manifest = load_manifest(repo / "modules" / "quad-drag").model_copy(deep=True)
    manifest = manifest.model_copy(update={"name": "fall-drag", "version": "1.0.0"})
    manifest.provenance.source = "distilled"
    manifest.provenance.distilled_from = "fall@1.0.0#residual"
    manifest.provenance.recorded = Recorded(sha256="ab" * 32, rows=960, calls=48)
    write_manifest(manifest, folder / "module.yaml")
    reg.register(folder)
    swapped = reg.swap("fall@1.0.0", {"residual": "fall-drag@^1"}, register="fall")
    tree = reg.lineage(swapped.registered.replace("@v", "@"))
    assert tree.ref == "fall@1.1.0" and tree.kind == "composite"
    [parent] = tree.children
    assert (parent.relation, parent.ref) == ("parent", "fall-drag@1.0.0")
    [teacher] = parent.children
    assert (teacher.relation, teacher.ref, teacher.part) == ("distilled from", "fall@1.0.0",
                                                              "residual")
    assert "960 rows recorded in 48 calls" in teacher.detail
    text = render(tree)
    assert "└── distilled from node residual of fall@1.0.0" in text
    missing = reg.lineage("fall-drag@1.0.0")
    assert missing.children[0].missing is None
    data = tree.to_dict()
    assert data["children"][0]["children"][0]["part"] == "residual"


def test_registry_compose_replace_on_a_spec_file_builds_without_the_mlp(fall) -> None:
    net = fall["reg"].compose(_spec_file(fall["repo"]), replace={"residual": "quad-drag@^1"})
    assert sum(p.numel() for p in net.parameters()) == 0
    with pytest.raises(CompositionError, match=r"--replace drag=quad-drag@\^1: no node `drag`"):
        fall["reg"].compose(_spec_file(fall["repo"]), replace={"drag": "quad-drag@^1"})
