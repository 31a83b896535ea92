"""Heavy jobs as tasks: one model for the gate, distillation and the benchmarks.

`run_tasks(fn, items, jobs=N, cluster=ADDRESS)` calls `fn(item)` for every item and
returns one `TaskResult` per item, in the items' order:

- serial in this process when `jobs <= 1` and no cluster is named;
- on a Dask `LocalCluster` of `jobs` worker *processes* (one thread each) otherwise;
- on a running Dask scheduler when `cluster` (or `REGISTRY_DASK_SCHEDULER`) names one
  (`tcp://HOST:8786`; start it with `dask scheduler` and `dask worker tcp://HOST:8786`).

A task that raises is a result with its error (the others go on). A worker that dies
(killed, out of memory) loses only its task: the scheduler runs it once more elsewhere
(`allowed-failures` = `WORKER_DEATH_RETRIES` on a local cluster; a running scheduler
applies its own `distributed.scheduler.allowed-failures`, 3 by default), then it is
reported as failed. `on_result`
sees each result as it arrives (progress). `fn` and the items must be picklable: a
module-level function and plain data; on a remote cluster the workers need the same
code and the same paths (a shared filesystem or the same checkout).

Example:
    >>> [r.value for r in run_tasks(abs, [-1, 2], jobs=1)]
    [1, 2]
"""

from __future__ import annotations

import os
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from registry.errors import RegistryError

__all__ = ["SCHEDULER_ENV", "TaskResult", "run_tasks", "scheduler_address", "start_local_workers"]

T = TypeVar("T")
R = TypeVar("R")

SCHEDULER_ENV = "REGISTRY_DASK_SCHEDULER"
WORKER_DEATH_RETRIES = 1  # a task whose worker died is run once more, then reported
CONNECT_TIMEOUT_S = 10


@dataclass
class TaskResult(Generic[R]):
    """One item's outcome: `value` when `ok`, else `error` (one line) and `detail`."""

    index: int
    ok: bool
    value: R | None = None
    error: str = ""
    detail: str = ""
    seconds: float = 0.0
    where: str = "local"  # "local", or the worker's address


def scheduler_address(cluster: str | None = None) -> str | None:
    """The scheduler to use: `cluster`, else `REGISTRY_DASK_SCHEDULER`, else None."""
    address = cluster or os.environ.get(SCHEDULER_ENV) or None
    if address is not None and "://" not in address:
        address = f"tcp://{address}"
    return address


def run_tasks(fn: Callable[[T], R], items: Sequence[T], *, jobs: int = 1,
              cluster: str | None = None,
              on_result: Callable[[TaskResult[R]], None] | None = None,
              preload: Sequence[str] = ()) -> list[TaskResult[R]]:
    """`fn(item)` for each item: serial, on a local cluster of `jobs` processes, or on the
    scheduler at `cluster` (see the module docstring). A local cluster's workers are
    forked from one process that imported `preload` (e.g. torch) once, not each its own."""
    if jobs < 1:
        raise RegistryError(f"--jobs {jobs}: give 1 or more worker processes")
    address = scheduler_address(cluster)
    if not items:
        return []  # no cluster started for nothing (e.g. every check answered by a cache)
    if address is None and jobs == 1:
        return _serial(fn, items, on_result)
    return _on_dask(fn, items, jobs=jobs, address=address, on_result=on_result,
                    preload=preload)


def _serial(fn: Callable[[T], R], items: Sequence[T],
            on_result: Callable[[TaskResult[R]], None] | None) -> list[TaskResult[R]]:
    results = []
    for index, item in enumerate(items):
        result = _timed(index, fn, item)
        if on_result is not None:
            on_result(result)
        results.append(result)
    return results


def _timed(index: int, fn: Callable[[T], R], item: T) -> TaskResult[R]:
    start = time.perf_counter()
    try:
        value = fn(item)
    except Exception as exc:  # a task's failure is its result; the others go on
        return TaskResult(index, False, error=f"{type(exc).__name__}: {exc}",
                          detail=traceback.format_exc(), seconds=time.perf_counter() - start)
    return TaskResult(index, True, value, seconds=time.perf_counter() - start)


def _run_one(payload: tuple[int, Callable[[Any], Any], Any]) -> TaskResult[Any]:
    """What a worker runs: the task with its failure caught, so that a raise comes back as
    that task's result (with its traceback) and is not retried like a lost worker."""
    index, fn, item = payload
    result = _timed(index, fn, item)
    try:
        from distributed import get_worker

        result.where = get_worker().address
    except (ImportError, ValueError):
        pass
    return result


def _on_dask(fn: Callable[[T], R], items: Sequence[T], *, jobs: int, address: str | None,
             on_result: Callable[[TaskResult[R]], None] | None,
             preload: Sequence[str]) -> list[TaskResult[R]]:
    import dask
    from distributed import Client, LocalCluster, as_completed

    settings: dict[str, Any] = {"distributed.scheduler.allowed-failures": WORKER_DEATH_RETRIES,
                                "distributed.worker.daemon": False}
    if address is None:
        settings["distributed.worker.multiprocessing-method"] = "forkserver"
        _forkserver_preload(preload)
    with dask.config.set(settings):
        cluster = None
        try:
            if address is None:
                cluster = LocalCluster(n_workers=jobs, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
                client = Client(cluster)
            else:
                client = _connect(address)
            with client:
                run = uuid.uuid4().hex[:12]  # keys unique on a scheduler shared by many
                futures = {client.submit(_run_one, (i, fn, item), pure=False,
                                         key=f"registry-{run}-{i}"): i
                           for i, item in enumerate(items)}
                results: dict[int, TaskResult[R]] = {}
                for future in as_completed(futures):
                    index = futures[future]
                    try:
                        result = future.result()
                    except Exception as exc:  # the worker died twice (KilledWorker), or similar
                        result = TaskResult(index, False, error=_lost(exc))
                    results[index] = result
                    if on_result is not None:
                        on_result(result)
                return [results[i] for i in range(len(items))]
        finally:
            if cluster is not None:
                cluster.close()
                _stop_forkserver()


def start_local_workers(jobs: int, cluster: str | None, preload: Sequence[str]) -> None:
    """Start now the server a local cluster's workers fork from, so that its imports (torch
    and `preload`: seconds) run while the caller still prepares its tasks; nothing for
    one job or a running scheduler. `run_tasks` then finds it running."""
    if jobs > 1 and scheduler_address(cluster) is None:
        _forkserver_preload(preload, start=True)


# What distributed's nanny puts in a worker's environment before starting it
# (`distributed.nanny.pre-spawn-environ`; tests/test_jobs.py holds the two equal).
WORKER_ENVIRON = {"MALLOC_TRIM_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1",
                  "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}


def _forkserver_preload(modules: Sequence[str], *, start: bool = False) -> None:
    """Workers forked from a server process that imported `modules` once: spawned ones
    import torch each (2-3 s on 2 busy cores) and take a second to exit. (distributed
    would set its own list, its optional packages, on first use: it is told it has.)
    With `start`, the server is started here, before distributed is imported."""
    import multiprocessing

    multiprocessing.get_context("forkserver").set_forkserver_preload(
        ["distributed", *modules])
    if start:
        # The server's environment is what its workers get: the nanny's (one thread for
        # OpenMP and the BLASes), or each worker's torch ran two threads on two cores
        # and the checks took twice as long. Started by the first worker, it inherits it.
        import multiprocessing.forkserver

        saved = {k: os.environ.get(k) for k in WORKER_ENVIRON}
        os.environ.update(WORKER_ENVIRON)
        try:
            multiprocessing.forkserver.ensure_running()
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
    import distributed.utils

    if hasattr(distributed.utils, "_forkserver_preload_set"):
        distributed.utils._forkserver_preload_set = True


def _stop_forkserver() -> None:
    """End the server the local workers forked from, now that they are gone: left to notice
    this process's exit, it tore down torch and the rest for a second more, holding the
    caller's stdout open all the while (a CI step that captures it waited). The next local
    cluster starts a new one."""
    import contextlib
    import signal
    from multiprocessing import forkserver

    server: Any = forkserver._forkserver  # (its private state, as in Python 3.11–3.13)
    pid = getattr(server, "_forkserver_pid", None)
    if pid is None:
        return
    with server._lock:  # as `ensure_running` forgets a server it finds dead
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
            os.waitpid(pid, 0)
        with contextlib.suppress(OSError):
            os.close(server._forkserver_alive_fd)
        server._forkserver_pid = server._forkserver_alive_fd = None
        server._forkserver_address = None


def _connect(address: str) -> Any:
    from distributed import Client

    try:
        return Client(address, timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise RegistryError(
            f"the Dask scheduler at {address} cannot be reached ({reason}); start one with "
            f"`dask scheduler` (and `dask worker {address}`), or unset {SCHEDULER_ENV} and "
            "drop --cluster to run here") from None


def _lost(exc: BaseException) -> str:
    name = type(exc).__name__
    if name == "KilledWorker":
        return (f"KilledWorker: the worker running this task died {WORKER_DEATH_RETRIES + 1} "
                "times (killed, or out of memory); the task was not retried further")
    return f"{name}: {exc}"
