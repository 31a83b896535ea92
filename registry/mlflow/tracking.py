"""Experiment tracking with MLflow (imported lazily: it is heavy).

Runs go to `MLFLOW_TRACKING_URI` when set, else to a SQLite store in the
repository (`sqlite:///<root>/mlruns.db`, artifacts in `<root>/mlartifacts`).
Telemetry is off unless the user turned it on.

Example:
    >>> with mlflow_run("drag-net", root=root, params={"lr": 3e-3}) as run:
    ...     run.log_metric("loss", 0.1, step=1)
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

__all__ = ["MlflowRunHandle", "mlflow_run", "tracking_uri"]


def tracking_uri(root: Path) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / 'mlruns.db'}"


class MlflowRunHandle:
    """What a training loop needs from a run: metrics, params, tags, artifacts."""

    def __init__(self, mlflow: Any, run: Any, experiment: str, uri: str) -> None:
        self._mlflow = mlflow
        self.run_id: str = run.info.run_id
        self.experiment = experiment
        self.tracking_uri = uri

    def log_metric(self, key: str, value: float, *, step: int | None = None) -> None:
        self._mlflow.log_metric(key, float(value), step=step)

    def log_metrics(self, metrics: Mapping[str, float], *, step: int | None = None) -> None:
        self._mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        self._mlflow.log_params(dict(params))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self._mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_artifact(self, path: Path) -> None:
        self._mlflow.log_artifact(str(path))


@contextmanager
def mlflow_run(
    experiment: str,
    *,
    root: Path,
    run_name: str | None = None,
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, Any] | None = None,
) -> Iterator[MlflowRunHandle]:
    """Start an MLflow run in `experiment`, creating the experiment on first use."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    import mlflow

    uri = tracking_uri(root)
    # mlflow.set_tracking_uri also exports MLFLOW_TRACKING_URI: undo that afterwards, or a
    # later run for another registry in the same process would land in this one's store.
    saved = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment) is None:
        artifacts = (root / "mlartifacts").resolve()
        artifacts.mkdir(exist_ok=True)
        mlflow.create_experiment(experiment, artifact_location=artifacts.as_uri())
    mlflow.set_experiment(experiment)
    try:
        with mlflow.start_run(run_name=run_name) as run:
            handle = MlflowRunHandle(mlflow, run, experiment, uri)
            if params:
                handle.log_params(params)
            if tags:
                handle.set_tags(tags)
            yield handle
    finally:
        if saved is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved
