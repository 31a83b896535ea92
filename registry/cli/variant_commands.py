"""Variant commands: shrink a network, list a module's alternatives, select the cheapest."""


from pathlib import Path
from typing import Annotated, Any

import typer

from registry.cli.main import (
    JsonFlag,
    RemoteOption,
    _print_json,
    _registry,
    _registry_or_remote,
    _table,
    app,
)
from registry.errors import RegistryError


def _widths(text: str) -> list[int]:
    try:
        widths = [int(part) for part in text.replace("x", ",").split(",") if part.strip()]
    except ValueError:
        widths = []
    if not widths or any(w < 1 for w in widths):
        raise RegistryError(f"--student {text!r}: give the hidden widths, e.g. 24 or 16,16")
    return widths


def _g(value: Any, fmt: str = ".3g") -> str:
    return "-" if value is None else format(value, fmt)


@app.command()
def shrink(
    ref: Annotated[str, typer.Argument(help="The network to shrink, e.g. drag-net@^1.")],
    prune: Annotated[float | None, typer.Option(help="Prune this fraction by magnitude, then "
                                                "fine-tune on the teacher's outputs.")] = None,
    structured: Annotated[bool, typer.Option(help="With --prune: remove whole neurons "
                                             "(smaller layers, fewer FLOPs).")] = False,
    quantize: Annotated[str | None, typer.Option(help="int8: dynamic quantization of the "
                                                 "linear layers.")] = None,
    dtype: Annotated[str | None, typer.Option(help="float16 or bfloat16 weights and "
                                              "arithmetic.")] = None,
    student: Annotated[str | None, typer.Option(metavar="HIDDEN", help="Train a smaller MLP "
                                                "(widths, e.g. 24 or 16,16) on the teacher.")]
    = None,
    target_nrmse: Annotated[float | None, typer.Option(help="Train until the nRMSE against "
                                                       "the teacher is this (student: "
                                                       "required).")] = None,
    steps: Annotated[int | None, typer.Option(help="At most this many optimiser steps.")]
    = None,
    name: Annotated[str | None, typer.Option(help="The variant's module name.")] = None,
    out: Annotated[Path | None, typer.Option(help="Write <out>/<name>/ (default: modules/).")]
    = None,
    register: Annotated[bool, typer.Option(help="Register the variant.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Write a cheaper variant of a network: pruned, int8, float16/bfloat16, or a student."""
    reg = _registry()
    report = reg.shrink(ref, name=name, out=out, register=register, prune=prune,
                        structured=structured, quantize=quantize, dtype=dtype,
                        student=_widths(student) if student is not None else None,
                        target_nrmse=target_nrmse, steps=steps)
    if as_json:
        _print_json(report.to_dict())
        return
    rows = []
    for who, figures in (("teacher " + report.teacher, report.teacher_figures),
                         (f"variant {report.name}", report.variant)):
        rows.append([who, str(figures["flops_per_sample"]),
                     str(figures["nonzero_flops_per_sample"]), str(figures["weight_bytes"]),
                     _g(figures["latency_ns_per_sample"], ".1f"),
                     _g(figures["energy_modeled_j_per_sample"]),
                     _g(figures.get("training_energy_j"))])
    _table(rows, ["MODULE", "FLOPS", "NONZERO FLOPS", "WEIGHT BYTES", "NS/SAMPLE@4096",
                  "MODELED J/SAMPLE", "TRAINING J (est.)"])
    vs = report.variant["vs_teacher"]
    typer.echo(f"\nagainst the teacher: nRMSE {_g(vs['nrmse'])}, r2 {_g(vs['r2'], '.6f')}"
               + (f"; {report.steps} training steps" if report.steps else ""))
    typer.echo(f"written: {report.folder}" + (f"   registered: {report.registered}"
                                              if report.registered else
                                              f"   register: registry register {report.folder}"))


def _alternative_rows(found: list[Any]) -> list[list[str]]:
    return [[a.ref + (" *" if a.pareto else ""), a.kind, _g(a.nrmse), _g(a.flops, "d"),
             _g(a.energy_j), _g(a.latency_ns, ".1f"), _g(a.weight_bytes, "d"),
             a.derived_from or ""] for a in found]


_HEADER = ["MODULE", "KIND", "NRMSE", "FLOPS", "MODELED J/SAMPLE", "NS/SAMPLE", "WEIGHT BYTES",
           "DERIVED FROM"]


@app.command()
def alternatives(
    ref: Annotated[str, typer.Argument(help="A module, e.g. drag.")],
    measure: Annotated[bool, typer.Option(help="Re-evaluate every alternative on REF's "
                                          "evaluation and count its cost afresh (else: the "
                                          "recorded figures).")] = False,
    remote: RemoteOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Modules with the same interface as REF (ports, order, units), accuracy against cost."""
    found = _registry_or_remote(remote).alternatives(ref, measure=measure)
    if as_json:
        _print_json([a.to_dict() for a in found])
        return
    _table(_alternative_rows(found), _HEADER)
    on = f"{ref}'s evaluation" if measure else "each module's own evaluation"
    typer.echo(f"\nnRMSE on {on}; * on the Pareto front of nRMSE against FLOPs; energy modeled "
               "(exact), latency measured at registration")


@app.command()
def select(
    ref: Annotated[str, typer.Argument(help="A module whose interface to implement.")],
    max_nrmse: Annotated[float, typer.Option(help="The error budget (nRMSE).")],
    by: Annotated[str, typer.Option(help="flops, energy (modeled) or latency.")] = "flops",
    measure: Annotated[bool, typer.Option(help="Judge every alternative on REF's "
                                          "evaluation.")] = False,
    remote: RemoteOption = None,
    as_json: JsonFlag = False,
) -> None:
    """The cheapest alternative of REF within an error budget."""
    chosen = _registry_or_remote(remote).select(ref, max_nrmse=max_nrmse, by=by,
                                                measure=measure)
    if as_json:
        _print_json(chosen.to_dict())
        return
    typer.echo(f"{chosen.ref}   nRMSE {_g(chosen.nrmse)}   {by} {_g(chosen.figure(by))}")
