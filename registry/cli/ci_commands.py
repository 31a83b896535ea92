"""CI and service commands: check, diff, publish, schema, serve."""


import json
import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from registry.cli.main import (
    JsonFlag,
    _print_json,
    _registry,
    app,
)
from registry.errors import RegistryError


class ReportFormat(StrEnum):
    md = "md"
    json = "json"


@app.command()
def check(
    base: Annotated[str | None, typer.Option(help="Compare with this revision (default: "
                                             "HEAD); in CI: origin/<base branch>.")] = None,
    all_modules: Annotated[bool, typer.Option("--all", help="Check every module, changed "
                                              "or not.")] = False,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="Report format.")]
    = ReportFormat.md,
    output: Annotated[Path | None, typer.Option(help="Also write the report to this file.")]
    = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Re-run checks whose inputs "
                                           "have not changed.")] = False,
    jobs: Annotated[int, typer.Option(min=1, help="Check modules on this many local worker "
                                      "processes (a Dask LocalCluster).")] = 1,
    cluster: Annotated[str | None, typer.Option(help="Send the checks to this Dask "
                                                "scheduler (tcp://HOST:8786; default: "
                                                "$REGISTRY_DASK_SCHEDULER).")] = None,
) -> None:
    """The gate: validate, reproduce accuracy, hold budgets, refuse regressions. Exit 1 on
    any failure; the Markdown report also goes to $GITHUB_STEP_SUMMARY when set."""
    from registry.gate import write_step_summary

    if no_cache:  # every module is a task: the workers' imports start now, beside the scan
        from registry.gate.runner import PRELOAD
        from registry.jobs import start_local_workers

        start_local_workers(jobs, cluster, PRELOAD)
    report = _registry().check(base=base, all_modules=all_modules, use_cache=not no_cache,
                               jobs=jobs, cluster=cluster)
    markdown = report.to_markdown()
    text = report.to_json() + "\n" if fmt is ReportFormat.json else markdown
    typer.echo(text, nl=False)
    if output is not None:
        output.write_text(text, encoding="utf-8")
    write_step_summary(markdown)
    if not report.passed:
        failures = report.failures
        typer.secho(f"registry check failed: {len(failures)} check(s) in "
                    f"{len({n for n, _ in failures})} module(s): "
                    + "; ".join(f"{n} {r.check}" for n, r in failures[:5]),
                    fg=typer.colors.RED, err=True)
        raise typer.Exit(1)


@app.command()
def diff(
    base: str,
    head: Annotated[str | None, typer.Argument(help="Default: the working tree.")] = None,
    fmt: Annotated[ReportFormat, typer.Option("--format", help="Report format.")]
    = ReportFormat.md,
) -> None:
    """What changed in modules/ between two revisions: added, removed, bumped; accuracy and
    cost deltas."""
    from registry.gate.diff import to_markdown

    changes = _registry().diff(base, head)
    if fmt is ReportFormat.json:
        _print_json([c.to_dict() for c in changes])
    else:
        typer.echo(to_markdown(changes, base, head), nl=False)


@app.command()
def publish(
    ref: str,
    mlflow: Annotated[bool, typer.Option("--mlflow", help="Publish to the MLflow Model "
                                         "Registry (the only target so far).")] = False,
    tracking_uri: Annotated[str | None, typer.Option(help="MLflow tracking URI (default: "
                                                     "MLFLOW_TRACKING_URI, else the "
                                                     "project's sqlite:///mlruns.db).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Publish a module as an MLflow pyfunc model, registered under its own name."""
    if not mlflow:
        raise RegistryError("say where to publish: `--mlflow` (the MLflow Model Registry)")
    result = _registry().publish(ref, tracking_uri=tracking_uri)
    if as_json:
        _print_json(result.to_dict())
        return
    typer.echo(f"published {result.ref} as MLflow model `{result.name}` version "
               f"{result.mlflow_version} (run {result.run_id})")
    for alias in result.aliases:
        typer.echo(f"  models:/{result.name}@{alias}")


@app.command()
def schema(out: Annotated[Path | None, typer.Option(help="Write to this file.")] = None) -> None:
    """Print the manifest's JSON Schema."""
    from registry.api import schema as manifest_schema

    text = json.dumps(manifest_schema(), indent=2)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text + "\n")
        typer.echo(f"wrote {out}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes.")] = 1,
    token_file: Annotated[Path | None, typer.Option(
        help="File of bearer tokens (one per line) allowed to write; also REGISTRY_TOKENS "
             "(comma-separated).")] = None,
) -> None:
    """Serve the REST API (/api/v1) and the web pages with uvicorn."""
    import uvicorn

    from registry.server.app import GRACE_S, settings_from_env

    root = _registry().root
    os.environ["REGISTRY_ROOT"] = str(root)
    if token_file is not None:
        os.environ["REGISTRY_TOKEN_FILE"] = str(token_file.resolve())
    settings = settings_from_env()  # fail here, not in each worker, on a bad token file
    if not settings.tokens:
        typer.secho("note: no tokens configured (REGISTRY_TOKENS or --token-file), so writes "
                    "are refused", err=True)
    typer.echo(f"serving {root} on http://{host}:{port} with {workers} worker(s)", err=True)
    uvicorn.run("registry.server.app:app_from_env", factory=True, host=host, port=port,
                workers=workers, log_level="info", timeout_graceful_shutdown=GRACE_S,
                http="registry.server.nodelay:NoDelayHTTPProtocol")
