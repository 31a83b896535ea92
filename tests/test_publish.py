"""`registry publish --mlflow`: pyfunc models in the MLflow Model Registry, loadable anywhere."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml

from registry.errors import NotFound, RegistryError
from tests.conftest import make_repo

# Loads published models in a fresh process, from a directory with no git repository:
# only the installed `registry` package and the tracking database are at hand.
LOADER = r"""
import json, sys
import mlflow
import pandas as pd

request = json.loads(sys.stdin.read())
answer = {}
for uri, columns in request.items():
    model = mlflow.pyfunc.load_model(uri)
    signature = model.metadata.signature
    frame = pd.DataFrame(columns)
    out = model.predict(frame)
    answer[uri] = {"inputs": signature.inputs.input_names(),
                   "outputs": signature.outputs.input_names(),
                   "columns": list(out.columns), "dtypes": [str(t) for t in out.dtypes],
                   "values": out.to_numpy().tolist()}
print("ANSWER " + json.dumps(answer))
"""


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """gravity (in stage prod) and drag-net published to a fresh SQLite tracking store."""
    import registry


    tmp = tmp_path_factory.mktemp("publish")
    repo = make_repo(tmp / "repo", ["gravity", "drag", "drag-net"])
    reg = registry.open(repo)
    for name in ("gravity", "drag", "drag-net"):
        reg.register(repo / "modules" / name)
    reg.promote("gravity@1.0.0", "prod")
    reg.register_composite(falling(reg), name="falling")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    results = {ref: reg.publish(ref, tracking_uri=uri)
               for ref in ("gravity#prod", "drag-net@1.0.0", "falling@1.0.0")}
    return SimpleNamespace(repo=repo, reg=reg, uri=uri, tmp=tmp, results=results)


def falling(reg: Any) -> Any:
    """A composite of gravity and drag with a residual MLP whose (perturbed) weights matter."""
    import torch

    from registry.composition import Builder

    net = (Builder("falling", summary="Vertical acceleration of a falling body")
           .input("y", "m", range=(0.0, 100.0)).input("m", "kg", range=(0.1, 10.0))
           .constant("M_earth", 5.972e24, "kg").constant("R_earth", 6.371e6, "m")
           .module("gravity", "gravity@^1", inputs={"m1": "M_earth", "m2": "m",
                                                     "r": "R_earth + y"}, outputs={"F": "F_g"})
           .module("drag", "drag@^1", outputs={"F": "F_d"})
           .mlp("residual", inputs={"v": "v"}, outputs={"a_r": "m/s^2"}, hidden=(4,))
           .output("a", "(F_d - F_g)/m + a_r", unit="m/s^2").build(reg))
    with torch.no_grad():
        for parameter in net.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))  # as if trained
    return net


def sample(reg: Any, ref: str, n: int = 64) -> dict[str, list[float]]:
    rng = np.random.default_rng(1)
    return {name: rng.uniform(*(port.range or (0.5, 2.0)), size=n).tolist()
            for name, port in reg.get(ref).inputs.items()}


@pytest.fixture(scope="module")
def loaded(published: SimpleNamespace) -> dict[str, Any]:
    """What a fresh process (no repository, only MLFLOW_TRACKING_URI) gets from the models."""
    import os

    request = {"models:/gravity@prod": sample(published.reg, "gravity@1.0.0"),
               "models:/drag-net@v1_0_0": sample(published.reg, "drag-net@1.0.0"),
               "models:/falling@v1_0_0": sample(published.reg, "falling@1.0.0")}
    elsewhere = published.tmp / "elsewhere"
    elsewhere.mkdir()
    env = os.environ | {"MLFLOW_TRACKING_URI": published.uri, "MLFLOW_DISABLE_TELEMETRY": "true",
                        "GIT_CEILING_DIRECTORIES": str(published.tmp)}
    env.pop("REGISTRY_ROOT", None)
    proc = subprocess.run([sys.executable, "-c", LOADER], input=json.dumps(request), cwd=elsewhere,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    answer = next(line for line in proc.stdout.splitlines() if line.startswith("ANSWER "))
    return {"request": request, "answer": json.loads(answer.removeprefix("ANSWER "))}


MODELS = [("models:/gravity@prod", "gravity@1.0.0"),
          ("models:/drag-net@v1_0_0", "drag-net@1.0.0"),  # a network: weights travel
          ("models:/falling@v1_0_0", "falling@1.0.0")]  # a composite: its parents travel


@pytest.mark.parametrize(("uri", "ref"), MODELS)
def test_published_model_predicts_what_registry_load_computes(
    published: SimpleNamespace, loaded: dict[str, Any], uri: str, ref: str
) -> None:
    import torch

    module = published.reg.load(ref)
    columns = loaded["request"][uri]
    x = torch.tensor(np.stack([columns[n] for n in module.input_names], axis=1),
                     dtype=torch.float32)
    with torch.no_grad():
        expected = module(x).double().numpy()
    got = loaded["answer"][uri]
    assert got["columns"] == module.output_names
    assert got["dtypes"] == ["float64"] * len(module.output_names)
    np.testing.assert_allclose(np.array(got["values"]), expected, rtol=1e-6)


@pytest.mark.parametrize(("uri", "ref"), MODELS)
def test_signature_names_the_ports(published: SimpleNamespace, loaded: dict[str, Any], uri: str,
                                   ref: str) -> None:
    manifest = published.reg.get(ref)
    got = loaded["answer"][uri]
    assert got["inputs"] == list(manifest.inputs)
    assert got["outputs"] == list(manifest.outputs)


def test_result_and_version_tags(published: SimpleNamespace) -> None:
    from mlflow import MlflowClient

    result = published.results["gravity#prod"]
    assert (result.ref, result.name, result.mlflow_version) == ("gravity@1.0.0", "gravity", "1")
    assert result.aliases == ["v1_0_0", "prod"]
    assert result.model_uri == "models:/gravity/1" and result.run_id
    assert json.loads(json.dumps(result.to_dict()))["aliases"] == ["v1_0_0", "prod"]
    version = MlflowClient(tracking_uri=published.uri).get_model_version("gravity", "1")
    row = published.reg.versions("gravity")[0]
    assert version.tags["registry_ref"] == "gravity@1.0.0"
    assert version.tags["registry_version"] == "1.0.0"
    assert version.tags["registry_commit"] == row.commit
    assert version.description == published.reg.get("gravity@1.0.0").summary
    assert version.run_id == result.run_id


def test_publishing_again_reuses_the_version(published: SimpleNamespace) -> None:
    from mlflow import MlflowClient



    again = published.reg.publish("gravity@1.0.0", tracking_uri=published.uri)
    first = published.results["gravity#prod"]
    assert not again.created
    assert (again.mlflow_version, again.run_id) == (first.mlflow_version, first.run_id)
    client = MlflowClient(tracking_uri=published.uri)
    assert len(client.search_model_versions("name = 'gravity'")) == 1
    for alias in ("v1_0_0", "prod"):
        assert str(client.get_model_version_by_alias("gravity", alias).version) == "1"


def test_publish_leaves_the_process_tracking_uri_alone(published: SimpleNamespace,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import os



    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    published.reg.publish("drag-net@1.0.0", tracking_uri=published.uri)
    assert "MLFLOW_TRACKING_URI" not in os.environ


def test_stage_alias_follows_the_stage(published: SimpleNamespace) -> None:
    from mlflow import MlflowClient



    reg, repo, uri = published.reg, published.repo, published.uri
    reg.promote("drag@1.0.0", "prod")
    assert reg.publish("drag#prod", tracking_uri=uri).aliases == ["v1_0_0", "prod"]
    path = repo / "modules" / "drag" / "module.yaml"
    data = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**data, "version": "1.1.0"}, sort_keys=False))
    reg.register(repo / "modules" / "drag")
    reg.promote("drag@1.1.0", "prod")
    client = MlflowClient(tracking_uri=uri)
    stale = reg.publish("drag@1.0.0", tracking_uri=uri)  # prod moved away from it
    assert (stale.created, stale.aliases) == (False, ["v1_0_0"])
    assert "prod" not in client.get_registered_model("drag").aliases
    moved = reg.publish("drag#prod", tracking_uri=uri)
    assert (moved.ref, moved.mlflow_version, moved.aliases) == ("drag@1.1.0", "2",
                                                                 ["v1_1_0", "prod"])
    old = reg.publish("drag@1.0.0", tracking_uri=uri)
    assert (old.created, old.mlflow_version, old.aliases) == (False, "1", ["v1_0_0"])
    assert str(client.get_model_version_by_alias("drag", "prod").version) == "2"
    assert str(client.get_model_version_by_alias("drag", "v1_0_0").version) == "1"


def test_bad_refs_are_registry_errors(published: SimpleNamespace) -> None:


    with pytest.raises(NotFound, match=r"gravity@9\.9\.9") as missing:
        published.reg.publish("gravity@9.9.9", tracking_uri=published.uri)
    assert "\n" not in str(missing.value)
    with pytest.raises(NotFound, match="only registered versions can be published"):
        published.reg.publish("gravity@workspace", tracking_uri=published.uri)
    with pytest.raises(RegistryError, match="registry list"):
        published.reg.publish("no-such-module", tracking_uri=published.uri)


def test_unusable_tracking_uri_is_one_line(published: SimpleNamespace) -> None:
    from registry.errors import PublishError

    with pytest.raises(PublishError, match=r"gravity@1\.0\.0 to MLflow at nope://x") as failed:
        published.reg.publish("gravity@1.0.0", tracking_uri="nope://x")
    assert "\n" not in str(failed.value)


def test_cli_bad_ref_exits_1_with_one_line(published: SimpleNamespace,
                                           monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from typer.testing import CliRunner

    from registry import cli

    monkeypatch.chdir(published.repo)
    monkeypatch.delenv("REGISTRY_ROOT", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", published.uri)
    result = CliRunner().invoke(cli.app, ["publish", "gravity@9.9.9", "--mlflow"])
    assert result.exit_code == 1
    assert isinstance(result.exception, NotFound)
    assert str(result.exception) == ("no version of `gravity` matches `gravity@9.9.9` "
                                     "(registered: 1.0.0)")
    # What the `registry` script prints: one red line on stderr, no stack.
    monkeypatch.setattr(sys, "argv", ["registry", "publish", "gravity@9.9.9", "--mlflow"])
    monkeypatch.setitem(cli._state, "traceback", False)
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["error: no version of `gravity` matches `gravity@9.9.9` "
                                        "(registered: 1.0.0)"]


def test_cli_publishes_with_json(published: SimpleNamespace,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from registry import cli

    monkeypatch.chdir(published.repo)
    monkeypatch.delenv("REGISTRY_ROOT", raising=False)
    result = CliRunner().invoke(cli.app, ["publish", "gravity#prod", "--mlflow", "--tracking-uri",
                                          published.uri, "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout[result.stdout.index("{"):])
    assert (data["ref"], data["mlflow_version"], data["created"]) == ("gravity@1.0.0", "1", False)


def test_bundle_is_verified_and_self_contained(published: SimpleNamespace, tmp_path: Path) -> None:
    import torch

    from registry.errors import IntegrityError
    from registry.mlflow.publish import write_bundle
    from registry.mlflow.pyfunc import load_bundle

    reg = published.reg
    bundle = tmp_path / "bundle"
    write_bundle(reg.store, reg.loader, reg.resolve("drag-net@1.0.0"), bundle)
    module, ref = load_bundle(bundle)
    assert ref == "drag-net@1.0.0"
    x = torch.rand(8, 4)
    torch.testing.assert_close(module(x), reg.load("drag-net@1.0.0")(x))
    weights = bundle / "drag-net@1.0.0" / "modules" / "drag-net" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(IntegrityError, match="sha256"):
        load_bundle(bundle)


def test_composite_bundle_carries_its_parents(published: SimpleNamespace, tmp_path: Path) -> None:
    import torch

    from registry.mlflow.publish import write_bundle
    from registry.mlflow.pyfunc import load_bundle

    reg = published.reg
    index = write_bundle(reg.store, reg.loader, reg.resolve("falling@1.0.0"), tmp_path / "bundle")
    assert sorted(index["modules"]) == ["drag@1.0.0", "falling@1.0.0", "gravity@1.0.0"]
    assert sorted(index["modules"]["falling@1.0.0"]["files"]) == ["compose.yaml", "module.yaml",
                                                                 "weights.safetensors"]
    assert index["resolve"] == {"gravity@1.0.0": "gravity@1.0.0", "drag@1.0.0": "drag@1.0.0"}
    module, _ = load_bundle(tmp_path / "bundle")
    x = torch.rand(8, len(module.input_names)) + 0.5
    torch.testing.assert_close(module(x), reg.load("falling@1.0.0")(x))
