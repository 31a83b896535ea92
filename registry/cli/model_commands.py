"""Building commands: compose, train, distill."""


import os
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from registry.cli.main import (
    JsonFlag,
    _print_fields,
    _print_json,
    _registry,
    _table,
    app,
)
from registry.errors import RegistryError
from registry.jobs import SCHEDULER_ENV


def _replacements(items: list[str]) -> dict[str, str]:
    pairs = {}
    for item in items:
        node, sep, ref = item.partition("=")
        if not sep or not node or not ref:
            raise RegistryError(f"--replace {item!r}: write NODE=MODULE@VERSION, e.g. "
                                "residual=baseball-lift@^1")
        pairs[node.strip()] = ref.strip()
    return pairs


@app.command()
def compose(
    spec: Annotated[str, typer.Argument(help="A compose spec (YAML), or a registered "
                                        "composite to swap nodes of (with --replace).")],
    summary: Annotated[bool, typer.Option("--summary", help="Nodes, parameters, FLOPs.")] = False,
    out: Annotated[Path | None, typer.Option(help="Write the spec with pinned versions.")] = None,
    register_as: Annotated[str | None, typer.Option("--register", help="Register as NAME.")]
    = None,
    replace: Annotated[list[str] | None, typer.Option(
        "--replace", metavar="NODE=REF", help="Replace a node by a module; on a registered "
        "composite the swap is checked end to end and refused past its budget.")] = None,
    ood: Annotated[Path | None, typer.Option(help="Out-of-distribution data (.npz) the swap "
                                             "check also reports.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Compose modules into a network from a compose spec (YAML), or swap nodes of a
    registered composite (`registry compose baseball-flight@^1 --replace residual=lift@^1`)."""
    import yaml

    reg = _registry()
    replacements = _replacements(replace or [])
    if replacements and not Path(spec).is_file():
        _swap(reg, spec, replacements, ood=ood, register_as=register_as, as_json=as_json)
        return
    net = reg.compose(spec, replace=replacements)
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


def _swap(reg: Any, ref: str, replacements: dict[str, str], *, ood: Path | None,
          register_as: str | None, as_json: bool) -> None:
    report = reg.swap(ref, replacements, ood=ood, register=register_as)
    if as_json:
        _print_json(report.to_dict())
        return
    rows = [["rmse", f"{report.before['rmse']:.6g}", f"{report.after['rmse']:.6g}"],
            ["nrmse", f"{report.before['nrmse']:.6g}", f"{report.after['nrmse']:.6g}"],
            ["FLOPs/sample", str(report.flops_before), str(report.flops_after)],
            ["latency ns/sample", f"{report.latency_ns_before:.4g}",
             f"{report.latency_ns_after:.4g}"]]
    if report.ood_before is not None and report.ood_after is not None:
        rows.insert(2, ["ood rmse", f"{report.ood_before['rmse']:.6g}",
                        f"{report.ood_after['rmse']:.6g}"])
    _table(rows, ["", "BEFORE", "AFTER"])
    typer.echo(f"accepted: {report.reason}"
               + (f"; registered {report.registered}" if report.registered else ""))


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
    from registry.core.arrays import open_npz

    reg = _registry()
    with open_npz(data, where=str(data)) as arrays:
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
    _print_fields(report, as_json)


@app.command()
def distill(
    ref: str,
    out: Annotated[Path | None, typer.Option(help="Write the module folder under this folder.")]
    = None,
    name: Annotated[str | None, typer.Option(help="Name of the equation module.")] = None,
    budget_s: Annotated[float, typer.Option("--budget-s", help="Search time budget (s).")] = 60.0,
    tolerance: Annotated[float | None, typer.Option(help="Trusted teacher nRMSE.")] = None,
    node: Annotated[str | None, typer.Option(help="Distil this node of the composite REF, "
                                             "from the values it saw.")] = None,
    data_files: Annotated[list[Path] | None, typer.Option(
        "--data", help="With --node: data (.npz) to run the composite over instead of its "
                       "evaluation data (its inputs; or its inputs and states, run through "
                       "its rates).")] = None,
    jobs: Annotated[int, typer.Option(min=1, help="Solve the outputs side by side on this "
                                      "many local worker processes (a Dask LocalCluster).")]
    = 1,
    cluster: Annotated[str | None, typer.Option(help="Send the outputs' searches to this "
                                                "Dask scheduler (tcp://HOST:8786; default: "
                                                "$REGISTRY_DASK_SCHEDULER).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Distil a module (queried as a black box) into an equation module; with --node, a
    node of a composite, from the values it saw while the composite ran over its data."""
    report = _registry().distill(ref, budget_s=budget_s, name=name, out=out, tolerance=tolerance,
                                 node=node, data=data_files, jobs=jobs,
                                 cluster=cluster or os.environ.get(SCHEDULER_ENV) or None)
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
