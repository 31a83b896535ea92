"""The `registry` command line: parses arguments, calls `registry.api`, prints.

No logic lives here. Errors of the registry print one red line and exit 1
(`--traceback` shows the stack). Every reading command offers `--json`.
"""

from __future__ import annotations

import json
import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from registry.errors import RegistryError

app = typer.Typer(
    name="registry",
    help="A registry of reusable, distilled ML modules.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_state = {"traceback": bool(os.environ.get("REGISTRY_TRACEBACK"))}

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


@app.callback()
def _options(
    traceback: Annotated[bool, typer.Option("--traceback", help="Show the full stack on errors.")]
    = False,
) -> None:
    _state["traceback"] = _state["traceback"] or traceback


def _registry() -> Any:
    """The local repository (around $REGISTRY_ROOT, else the cwd)."""
    from registry import api

    return api.open(os.environ.get("REGISTRY_ROOT", "."))


RemoteOption = Annotated[str | None, typer.Option(
    "--remote", metavar="URL", help="Use the registry server at URL (`registry serve`); "
    "default: $REGISTRY_URL, else the local repository.")]


def _registry_or_remote(remote: str | None) -> Any:
    """The server at `remote` (or $REGISTRY_URL) when one is given, else the local registry."""
    from registry import api

    url = remote or os.environ.get("REGISTRY_URL")
    return api.open(url) if url else _registry()


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


@app.command("list")
def list_(
    kind: Annotated[str | None, typer.Option(help="Only modules of this kind.")] = None,
    all_versions: Annotated[bool, typer.Option("--all", help="Every version, not the latest.")]
    = False,
    as_json: JsonFlag = False,
    remote: RemoteOption = None,
) -> None:
    """List registered modules (the latest version of each)."""
    reg = _registry_or_remote(remote)
    rows = reg.list(kind=kind, all_versions=all_versions)
    pending = reg.unregistered() if kind is None else []
    if as_json:
        _print_json({"modules": [r.to_dict() for r in rows], "unregistered": pending})
        return
    _table([[r.name, r.version, r.kind, ",".join(r.stages), r.summary[:60]] for r in rows],
           ["NAME", "VERSION", "KIND", "STAGES", "SUMMARY"])
    if pending:
        typer.echo(f"\nnot registered yet: {', '.join(pending)} "
                   "(`registry register modules/NAME`)")


@app.command()
def show(ref: str, as_json: JsonFlag = False, remote: RemoteOption = None) -> None:
    """Show the manifest a reference resolves to (e.g. `gravity@^1`, `drag#prod`)."""
    from registry.core.manifest import dump_manifest

    reg = _registry_or_remote(remote)
    resolved = reg.resolve(ref)
    manifest = resolved.manifest
    if as_json:
        _print_json({"ref": manifest.ref, "tag": resolved.tag, "commit": resolved.commit,
                     "manifest": manifest.to_dict()})
        return
    typer.echo(f"# {manifest.ref}  ({resolved.label}"
               + (f" at {resolved.commit[:12]})" if resolved.commit else ")"))
    typer.echo(dump_manifest(manifest).rstrip())


@app.command()
def new(
    name: str,
    kind: Annotated[str, typer.Option(help="equation or network.")] = "equation",
) -> None:
    """Create `modules/NAME/` with a valid starting manifest."""
    folder = _registry().new(name, kind=kind)
    typer.echo(f"created {folder}; edit module.yaml, then `registry register {folder}`")


class BumpPart(StrEnum):
    patch = "patch"
    minor = "minor"
    major = "major"


@app.command()
def register(
    paths: Annotated[list[Path], typer.Argument(help="Module folders (or module.yaml files).")],
    bump: Annotated[BumpPart | None, typer.Option(
        help="If the version exists with other content, register as the next version.")] = None,
    as_json: JsonFlag = False,
    remote: RemoteOption = None,
) -> None:
    """Validate module folders, measure them, commit them and tag their versions (with
    --remote: upload them to the server, with the token in $REGISTRY_TOKEN)."""
    reg = _registry_or_remote(remote)
    results = [reg.register(path, bump=bump.value if bump else None) for path in paths]
    if as_json:
        _print_json([{"tag": r.tag, "commit": r.commit, "created": r.created,
                      "manifest": r.manifest.to_dict()} for r in results])
        return
    for result in results:
        verb = "registered" if result.created else "already registered (no change)"
        typer.echo(f"{verb}: {result.tag} at {result.commit[:12]}")


@app.command("restore-tags")
def restore_tags() -> None:
    """Recreate version tags a clone lacks, from the commits `register` made."""
    restored = _registry().restore_tags()
    typer.echo(f"restored {len(restored)} tags" + (f": {', '.join(restored)}" if restored else ""))


@app.command()
def promote(ref: str, stage: str) -> None:
    """Assign STAGE (e.g. prod) to the version REF resolves to (a GTO stage tag)."""
    typer.echo(f"tagged {_registry().promote(ref, stage)}")


@app.command()
def load(ref: str, as_json: JsonFlag = False, remote: RemoteOption = None) -> None:
    """Load a module into torch and print a summary (with --remote: files fetched from the
    server into the local cache, verified)."""
    reg = _registry_or_remote(remote)
    module = reg.load(ref)
    manifest = reg.get(ref)
    summary: dict[str, Any] = {
        "ref": manifest.ref, "class": type(module).__name__,
        "inputs": module.input_names, "outputs": module.output_names,
        "parameters": sum(p.numel() for p in module.parameters()),
        "trainable_parameters": sum(p.numel() for p in module.parameters() if p.requires_grad),
    }
    if hasattr(module, "sympy"):
        summary["equations"] = {k: str(v) for k, v in module.sympy().items()}
    if as_json:
        _print_json(summary)
        return
    for key, value in summary.items():
        typer.echo(f"{key}: {value}")


@app.command()
def cost(ref: str, as_json: JsonFlag = False) -> None:
    """Measure a module's cost afresh: FLOPs, parameters, latency, energy per sample."""
    measured = _registry().cost(ref)
    if measured.flops.uncounted_ops:
        typer.secho(f"warning: no FLOP formula for {', '.join(measured.flops.uncounted_ops)}; "
                    "the FLOP count leaves them out", fg=typer.colors.YELLOW, err=True)
    if as_json:
        _print_json(measured.to_dict())
        return
    latency = measured.latency
    typer.echo(f"flops/sample:          {measured.flops.forward} forward, "
               f"{measured.flops.forward_backward} forward+backward")
    typer.echo(f"params:                {measured.params}")
    typer.echo(f"latency/sample:        {latency.ns_per_sample:.4g} ns (batch {latency.batch}, "
               f"spread {latency.spread:.0%}, {latency.calls} calls)")
    typer.echo(f"energy/sample:         {measured.energy_j_per_sample:.4g} J "
               f"({measured.energy_method})")
    typer.echo(f"hardware:              {latency.hardware}")


@app.command()
def evaluate(ref: str, as_json: JsonFlag = False) -> None:
    """Recompute a module's accuracy from its `evaluation` section."""
    metrics = _registry().evaluate(ref)
    if as_json:
        _print_json(metrics)
        return
    for key, value in metrics.items():
        typer.echo(f"{key}: {value:.6g}")


@app.command()
def compose(
    spec: Path,
    summary: Annotated[bool, typer.Option("--summary", help="Nodes, parameters, FLOPs.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write the spec with pinned versions.")] = None,
    register_as: Annotated[str | None, typer.Option("--register", help="Register as NAME.")]
    = None,
    as_json: JsonFlag = False,
) -> None:
    """Compose modules into a network from a compose spec (YAML)."""
    import yaml

    reg = _registry()
    net = reg.compose(spec)
    report = net.summary()
    if out is not None:
        out.write_text(yaml.safe_dump(net.pinned_spec(), sort_keys=False))
    if register_as is not None:
        result = reg.register_composite(net, name=register_as)
        report["registered"] = {"tag": result.tag, "commit": result.commit,
                                "created": result.created}
    if as_json:
        _print_json(report)
        return
    if summary or register_as is None:
        _table([[str(r[k]) for k in ("node", "kind", "ref", "params", "trainable")]
                for r in report["nodes"]], ["NODE", "KIND", "MODULE", "PARAMS", "TRAINABLE"])
        typer.echo(f"\ninputs: {', '.join(report['inputs'])}   outputs: "
                   f"{', '.join(report['outputs'])}")
        typer.echo(f"parameters: {report['params']} ({report['trainable_params']} trainable)   "
                   f"FLOPs/sample: {report['flops_per_sample']}")
    if register_as is not None:
        typer.echo(f"registered: {report['registered']['tag']}")


class Target(StrEnum):
    outputs = "outputs"
    derivatives = "derivatives"


@app.command()
def train(
    spec: Path,
    data: Annotated[Path, typer.Option(help="An .npz with one array per input/output name.")],
    target: Annotated[Target, typer.Option(help="Fit the outputs, or the dynamics' rates.")]
    = Target.outputs,
    epochs: Annotated[int, typer.Option(help="Most epochs.")] = 100,
    batch: Annotated[int, typer.Option(help="Batch size.")] = 256,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-2,
    target_nrmse: Annotated[float | None, typer.Option(help="Stop at this val nRMSE.")] = None,
    register_as: Annotated[str | None, typer.Option("--register", help="Register as NAME.")]
    = None,
    as_json: JsonFlag = False,
) -> None:
    """Train a composite's trainable parts (MLflow run, energy tracked)."""
    import numpy as np

    reg = _registry()
    with np.load(data, allow_pickle=False) as arrays:
        loaded = {k: arrays[k] for k in arrays.files}
    trained = reg.train(spec, loaded, target=target.value, max_epochs=epochs, batch=batch, lr=lr,
                        target_nrmse=target_nrmse, progress=not as_json)
    result, energy = trained.result, trained.energy
    report: dict[str, Any] = {"epochs": result.epochs, "stopped_early": result.stopped_early,
                              "val_metrics": result.metrics, "train_flops": result.train_flops,
                              "energy_j": energy.energy_j, "energy_method": energy.method,
                              "cpu_s": energy.cpu_s, "mlflow_run_id": trained.run_id}
    if register_as is not None:
        registered = reg.register_composite(trained.net, name=register_as,
                                            training=trained.training_cost(),
                                            mlflow_run_id=trained.run_id)
        report["registered"] = registered.tag
    if as_json:
        _print_json(report)
        return
    for key, value in report.items():
        typer.echo(f"{key}: {value}")


@app.command()
def distill(
    ref: str,
    out: Annotated[Path | None, typer.Option(help="Write the module folder under this folder.")]
    = None,
    name: Annotated[str | None, typer.Option(help="Name of the equation module.")] = None,
    budget_s: Annotated[float, typer.Option("--budget-s", help="Search time budget (s).")] = 60.0,
    tolerance: Annotated[float | None, typer.Option(help="Trusted teacher nRMSE.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Distil a module (queried as a black box) into an equation module."""
    report = _registry().distill(ref, budget_s=budget_s, name=name, out=out, tolerance=tolerance)
    result = report.result
    data: dict[str, Any] = {"teacher": report.teacher, **result.to_dict()}
    if report.teacher_cost is not None and report.student_cost is not None:
        teacher, student = report.teacher_cost, report.student_cost
        data["flops_per_sample"] = {"teacher": teacher.flops.forward,
                                    "student": student.flops.forward,
                                    "ratio": teacher.flops.forward / max(student.flops.forward, 1)}
        data["latency_ns_per_sample"] = {"teacher": teacher.latency.ns_per_sample,
                                         "student": student.latency.ns_per_sample}
    if report.folder is not None:
        data["folder"] = str(report.folder)
        data["pareto_plot"] = str(report.folder / "pareto.png")
    if as_json:
        _print_json(data)
    else:
        typer.echo(result.message)
        for output, chosen in result.chosen.items():
            typer.echo(f"  {output}: nRMSE against the teacher {chosen.nrmse:.3g} "
                       f"({chosen.method})")
        if "flops_per_sample" in data:
            f = data["flops_per_sample"]
            typer.echo(f"FLOPs/sample: teacher {f['teacher']}, equation {f['student']} "
                       f"({f['ratio']:,.0f}× fewer)")
        if report.folder is not None:
            typer.echo(f"wrote {report.folder}/ (Pareto plot: {data['pareto_plot']}); "
                       f"register it with `registry register {report.folder}`")
    if not result.found:
        raise typer.Exit(1)


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
) -> None:
    """The gate: validate, reproduce accuracy, hold budgets, refuse regressions. Exit 1 on
    any failure; the Markdown report also goes to $GITHUB_STEP_SUMMARY when set."""
    from registry.gate import write_step_summary

    report = _registry().check(base=base, all_modules=all_modules, use_cache=not no_cache)
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

    from registry.server.app import settings_from_env

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
                workers=workers, log_level="info")


def main() -> None:
    try:
        app()
    except RegistryError as exc:
        if _state["traceback"]:
            raise
        message = str(exc).replace("\n", "\n  ")
        typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
