"""Issue 17: distillation on the task model — a module's outputs solved side by side on a
Dask LocalCluster of worker processes, each loading the teacher by its reference."""

from __future__ import annotations

import pickle
import re
import time
from pathlib import Path

import pytest
import torch

import registry
from registry.distillation.teacher import LoadedTeacher
from registry.errors import RegistryError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning",
                                        "ignore::ResourceWarning", "ignore::UserWarning")

KINETICS = """\
schema: 1
name: kinetics
version: 1.0.0
kind: equation
summary: Momentum and kinetic energy of a moving mass
inputs:
  m: {unit: kg, range: [0.5, 5.0]}
  v: {unit: m/s, range: [1.0, 10.0]}
outputs:
  p: {unit: kg m/s}
  E: {unit: J}
equation:
  p: m*v
  E: m*v**2/2
"""


@pytest.fixture
def kinetics(repo: Path) -> registry.Registry:
    (repo / "modules" / "kinetics").mkdir()
    (repo / "modules" / "kinetics" / "module.yaml").write_text(KINETICS)
    return registry.open(repo)


def test_outputs_distilled_side_by_side_equal_the_serial_run(kinetics: registry.Registry) -> None:
    serial = kinetics.distill("kinetics@workspace", budget_s=8)
    cpu = time.process_time()
    fanned = kinetics.distill("kinetics@workspace", budget_s=8, jobs=2)
    here = time.process_time() - cpu
    assert serial.result.found and fanned.result.found
    assert fanned.result.equations == serial.result.equations == {"p": "m*v", "E": "m*v**2/2"}
    # the searches ran in the workers: their CPU time is counted on top of this process's
    energy = fanned.result.energy
    assert energy is not None and energy.cpu_s > here
    assert energy.method.startswith("estimated")


def test_a_scheduler_that_is_down_is_named(kinetics: registry.Registry) -> None:
    with pytest.raises(RegistryError, match=re.escape("the Dask scheduler at tcp://127.0.0.1:9 "
                                                      "cannot be reached")):
        kinetics.distill("kinetics@workspace", budget_s=4, cluster="tcp://127.0.0.1:9")


def test_a_teacher_travels_by_name_never_with_its_weights(kinetics: registry.Registry) -> None:
    from functools import partial

    from registry.api import _load

    root = str(kinetics.root)
    built = kinetics.load("drag-net@workspace")
    teacher = LoadedTeacher(partial(_load, root, "drag-net@workspace", None), built)
    shipped = pickle.dumps(teacher)
    assert len(shipped) < 1000 and b"weight" not in shipped  # 19 KB of weights stay here
    arrived = pickle.loads(shipped)
    x = torch.tensor([[1.2, 0.47, 0.0042, 30.0]])
    assert arrived._module is None
    assert torch.equal(arrived(x), built(x))  # loaded afresh (hashes checked) on first call


def test_only_a_named_scheduler_fans_out_and_the_cli_reads_the_environment(
        kinetics: registry.Registry, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from registry.cli.main import app

    monkeypatch.setenv("REGISTRY_DASK_SCHEDULER", "tcp://127.0.0.1:9")
    # a distillation inside a worker (the benchmark's) must not send itself on again
    assert kinetics.distill("kinetics@workspace", budget_s=4).result.found
    monkeypatch.setenv("REGISTRY_ROOT", str(kinetics.root))
    monkeypatch.chdir(kinetics.root)
    result = CliRunner().invoke(app, ["distill", "kinetics@workspace", "--budget-s", "4"])
    assert isinstance(result.exception, RegistryError)  # (`main` prints it as one line)
    assert "the Dask scheduler at tcp://127.0.0.1:9 cannot be reached" in str(result.exception)


def test_the_outputs_go_to_a_running_scheduler(kinetics: registry.Registry) -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=40) as cluster:
        report = kinetics.distill("kinetics@workspace", budget_s=8,
                                  cluster=cluster.scheduler_address)
    assert report.result.equations == {"p": "m*v", "E": "m*v**2/2"}
