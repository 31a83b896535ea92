"""Issue 17: heavy jobs as tasks on Dask distributed (real worker processes, no mocks)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from registry import jobs
from registry.errors import RegistryError
from registry.jobs import run_tasks

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning",
                                        "ignore::ResourceWarning", "ignore::UserWarning")


def cube(x: int) -> int:
    if x == 3:
        raise ValueError("three is refused")
    return x ** 3


def pid_of(_: int) -> int:
    import time

    time.sleep(0.2)  # long enough for both workers to take tasks
    return os.getpid()


def die_once(marker: str) -> str:
    """Kills its worker process the first time it runs, answers the second time."""
    path = Path(marker)
    if not path.exists():
        path.write_text("died once")
        os._exit(1)
    return "second run"


def always_die(_: str) -> str:
    os._exit(1)


def test_fan_out_equals_serial_and_a_failure_is_a_result() -> None:
    items = list(range(6))
    serial = run_tasks(cube, items, jobs=1)
    fanned = run_tasks(cube, items, jobs=2)
    assert [r.value for r in fanned] == [r.value for r in serial] == [0, 1, 8, None, 64, 125]
    assert [r.ok for r in fanned] == [True, True, True, False, True, True]
    assert fanned[3].error == serial[3].error == "ValueError: three is refused"
    assert all(r.where.startswith("tcp://") for r in fanned)
    assert {r.where for r in serial} == {"local"}


def test_local_cluster_runs_worker_processes() -> None:
    pids = {r.value for r in run_tasks(pid_of, list(range(8)), jobs=2)}
    assert os.getpid() not in pids and len(pids) == 2


def test_a_killed_workers_task_is_retried_once_then_reported(tmp_path: Path) -> None:
    results = run_tasks(die_once, [str(tmp_path / "marker")], jobs=2)
    assert results[0].ok and results[0].value == "second run"
    lost = run_tasks(always_die, ["x"], jobs=2)
    assert not lost[0].ok and lost[0].error.startswith("KilledWorker: the worker running this "
                                                       "task died 2 times")


def test_the_same_tasks_go_to_a_running_scheduler(monkeypatch: pytest.MonkeyPatch) -> None:
    from distributed import LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True,
                      dashboard_address=None, silence_logs=40) as cluster:
        assert [r.value for r in run_tasks(cube, [2, 4], cluster=cluster.scheduler_address)] \
            == [8, 64]
        monkeypatch.setenv(jobs.SCHEDULER_ENV, cluster.scheduler_address)
        assert [r.value for r in run_tasks(cube, [5, 1])] == [125, 1]


def test_a_scheduler_that_is_down_is_one_line_naming_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jobs, "CONNECT_TIMEOUT_S", 2)
    with pytest.raises(RegistryError) as caught:
        run_tasks(cube, [1, 2], cluster="127.0.0.1:9")
    message = str(caught.value)
    assert message.startswith("the Dask scheduler at tcp://127.0.0.1:9 cannot be reached (")
    assert "\n" not in message and "`dask scheduler`" in message
    with pytest.raises(RegistryError, match="--jobs 0: give 1 or more"):
        run_tasks(cube, [1], jobs=0)


def test_the_early_server_gets_the_nannys_environment_and_ends_with_the_cluster() -> None:
    from multiprocessing import forkserver

    import dask
    import distributed  # noqa: F401  (its config defaults)

    environ = dask.config.get("distributed.nanny.pre-spawn-environ")
    assert {k: str(v) for k, v in environ.items()} == jobs.WORKER_ENVIRON
    before = dict(os.environ)
    jobs.start_local_workers(2, None, preload=())
    assert dict(os.environ) == before  # set for the server only
    pid = forkserver._forkserver._forkserver_pid
    assert pid is not None
    assert [r.value for r in run_tasks(cube, [2, 4], jobs=2)] == [8, 64]
    # ended with the cluster, not when this process exits (a captured stdout waited)
    assert forkserver._forkserver._forkserver_pid is None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # gone, and reaped
    assert [r.value for r in run_tasks(cube, [1], jobs=2)] == [1]  # a new one starts
