"""Reading commands: list, show, load, cost, evaluate."""


from typing import Annotated, Any

import typer

from registry.cli.main import (
    JsonFlag,
    RemoteOption,
    _print_fields,
    _print_json,
    _registry,
    _registry_or_remote,
    _table,
    app,
)


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
def load(ref: str, as_json: JsonFlag = False, remote: RemoteOption = None) -> None:
    """Load a module into torch and print a summary (with --remote: files fetched from the
    server into the local cache, verified)."""
    from registry.nn.weights import weight_stats

    reg = _registry_or_remote(remote)
    module = reg.load(ref)
    manifest = reg.get(ref)
    summary: dict[str, Any] = {
        "ref": manifest.ref, "class": type(module).__name__,
        "inputs": module.input_names, "outputs": module.output_names,
        "parameters": weight_stats(module).params,  # int8 layers' packed weights included
        "trainable_parameters": sum(p.numel() for p in module.parameters() if p.requires_grad),
    }
    if hasattr(module, "sympy"):
        summary["equations"] = {k: str(v) for k, v in module.sympy().items()}
    _print_fields(summary, as_json)


@app.command()
def cost(
    ref: Annotated[str | None, typer.Argument(help="The module (optional with --calibrate).")]
    = None,
    calibrate: Annotated[bool, typer.Option(
        "--calibrate", help="Measure ÷ model reference kernels with this machine's energy "
        "counter (RAPL or NVML); with REF, print its calibrated estimate too.")] = False,
    table: Annotated[str | None, typer.Option(
        help="The energy table to model with (default $REGISTRY_ENERGY_TABLE, else "
        "horowitz-45nm).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Measure a module's cost afresh: FLOPs, parameters, latency, energy per sample."""
    if ref is None and not calibrate:
        raise typer.BadParameter("give a module REF (or --calibrate)", param_hint="REF")
    calibration = None
    if calibrate:
        from registry.cost.calibration import calibrate as run_calibration
        from registry.cost.calibration import save_calibration

        calibration = run_calibration(table) if table else run_calibration()
        saved = save_calibration(_registry().root, calibration)
        typer.echo(f"saved to {saved}: registrations on this machine record it in "
                   "cost.calibration", err=True)
    measured = _registry().cost(ref, table=table) if ref is not None else None
    if measured is not None and measured.flops.uncounted_ops:
        typer.secho(f"warning: no FLOP formula for {', '.join(measured.flops.uncounted_ops)}; "
                    "the FLOP count leaves them out", fg=typer.colors.YELLOW, err=True)
    modeled = measured.modeled if measured is not None else None
    calibrated = (modeled.j_per_sample * calibration.ratio
                  if modeled is not None and calibration is not None else None)
    if as_json:
        data = measured.to_dict() if measured is not None else {}
        if calibration is not None:
            data["calibration"] = calibration.model_dump()
            data["energy_calibrated_j_per_sample"] = calibrated
        _print_json(data)
        return
    if measured is not None:
        _print_cost(measured)
    if calibration is not None:
        typer.echo(f"calibration:           ratio {calibration.ratio:.4g} measured/modeled "
                   f"({calibration.method} ÷ modeled:{calibration.table}, geometric mean)")
        for name, ratio in calibration.kernels.items():
            typer.echo(f"  kernel {name + ':':<14} {ratio:.4g}")
        typer.echo(f"calibrated on:         {calibration.hardware or 'hardware not named'}")
    if calibrated is not None:
        typer.echo(f"calibrated estimate:   {calibrated:.4g} J/sample (modeled × ratio)")


def _print_cost(measured: Any) -> None:
    latency, modeled = measured.latency, measured.modeled
    typer.echo(f"flops/sample:          {measured.flops.forward} forward, "
               f"{measured.flops.forward_backward} forward+backward")
    typer.echo(f"params:                {measured.params}")
    typer.echo(f"latency/sample:        {latency.ns_per_sample:.4g} ns (batch {latency.batch}, "
               f"spread {latency.spread:.0%}, {latency.calls} calls)")
    if modeled is not None:
        typer.echo(f"energy/sample:         {modeled.j_per_sample:.4g} J ({modeled.method} "
                   f"v{modeled.table_version}, batch {modeled.batch})")
    typer.echo(f"energy/sample:         {measured.energy_j_per_sample:.4g} J "
               f"({measured.energy_method})")
    typer.echo(f"hardware:              {latency.hardware}")


@app.command()
def evaluate(ref: str, as_json: JsonFlag = False) -> None:
    """Recompute a module's accuracy from its `evaluation` section."""
    metrics = _registry().evaluate(ref)
    _print_fields(metrics, as_json, fmt=".6g")


@app.command()
def lineage(ref: str, as_json: JsonFlag = False, remote: RemoteOption = None) -> None:
    """Where a module came from: its teachers (down to a composite's node) and parents."""
    from registry.lineage import render

    tree = _registry_or_remote(remote).lineage(ref)
    if as_json:
        _print_json(tree.to_dict())
        return
    typer.echo(render(tree))
