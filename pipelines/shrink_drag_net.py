"""Shrink `drag-net` into pruned, int8 and student variants, register them, and compare.

Each variant is written and registered by `Registry.shrink` (provenance
`derived_from` the exact teacher, the method and its settings). Then every
alternative of the drag interface is measured side by side in this one run
(latency at batch 4096 in interleaved turns), beside the recorded accuracy,
FLOPs, weight bytes and energy (modeled; training energy estimated where no
counter exists, and labelled so), and `select` picks the cheapest within budgets.

    python pipelines/shrink_drag_net.py --out reports/shrink-drag-net.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import torch
import yaml

import registry
from registry.core.manifest import Sample
from registry.cost.latency import side_by_side
from registry.cost.measure import LATENCY_BATCH
from registry.evaluation import sample_inputs


def _row(reg: Any, ref: str, latency_ns: float, teacher: Any) -> dict[str, Any]:
    card = reg.get(ref)
    cost = card.cost
    derivation = card.provenance.derivation
    return {
        "module": ref, "kind": card.kind, "precision": card.network.precision if card.network
        else None,
        "nrmse_vs_data": card.evaluation.metrics.get("nrmse") if card.evaluation else None,
        "nrmse_vs_teacher": derivation.vs_teacher.get("nrmse") if derivation else None,
        "flops_per_sample": cost.flops_per_sample,
        "nonzero_flops_per_sample": cost.nonzero_flops_per_sample,
        "weight_bytes": cost.weight_bytes if cost.weight_bytes is not None else 0,
        "latency_ns_per_sample": round(latency_ns, 2),
        "latency_speedup_vs_teacher": None,
        "energy_modeled_j_per_sample": (cost.energy_modeled_j_per_sample.value
                                        if cost.energy_modeled_j_per_sample else None),
        "training_energy_j": cost.training.energy_j if cost.training else None,
        "training_energy_method": cost.training.method if cost.training else None,
        "derived_from": card.provenance.derived_from,
        "method": derivation.method if derivation else card.provenance.source,
        "settings": derivation.settings if derivation else {},
        "steps": derivation.steps if derivation else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("reports/shrink-drag-net.json"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    params = yaml.safe_load(args.params.read_text())["shrink"]
    reg = registry.open()
    teacher_ref = reg.resolve(params["teacher"]).exact
    shrunk = {}
    for method in params["variants"]:
        options = dict(method)
        report = reg.shrink(teacher_ref, register=True, **options)
        shrunk[report.name] = report
        print(f"{report.registered}: {report.method}, {report.steps or 0} steps, nRMSE vs "
              f"teacher {report.variant['vs_teacher']['nrmse']:.3g}")

    # every alternative of the interface, measured side by side in this run
    found = reg.alternatives(teacher_ref)
    refs = [a.ref for a in found]
    manifest = reg.get(teacher_ref)
    x = torch.as_tensor(sample_inputs(manifest, Sample(n=LATENCY_BATCH, seed=0),
                                      where=manifest.ref), dtype=torch.float32)
    latency = side_by_side({ref: reg.load(ref) for ref in refs}, x, rounds=5)
    teacher = reg.get(teacher_ref)
    rows = [_row(reg, ref, latency[ref].ns_per_sample, teacher) for ref in refs]
    base = latency[teacher_ref].ns_per_sample
    for row in rows:
        row["latency_speedup_vs_teacher"] = round(base / row["latency_ns_per_sample"], 2)
    teacher_row = next(r for r in rows if r["module"] == teacher_ref)
    variants = [r for r in rows if r["derived_from"] == teacher_ref]
    meets = [r["module"] for r in variants
             if r["nrmse_vs_data"] is not None
             and r["nrmse_vs_data"] <= 2 * teacher_row["nrmse_vs_data"]
             and r["latency_speedup_vs_teacher"] >= 4]
    students = [r for r in variants if r["method"] == "student"]
    selections = {}
    for budget, by in params["select"]:
        try:
            chosen = reg.select(params["interface"], max_nrmse=budget, by=by)
            selections[f"{by}<= nrmse {budget}"] = {"module": chosen.ref, "figure":
                                                    chosen.figure(by), "nrmse": chosen.nrmse}
        except registry.RegistryError as exc:
            selections[f"{by}<= nrmse {budget}"] = {"error": str(exc)}
    summary = {
        "teacher": teacher_ref, "hardware": latency[teacher_ref].hardware,
        "latency_batch": LATENCY_BATCH, "rows": rows,
        "targets": {
            "variant_within_2x_nrmse_and_4x_faster": meets,
            "student_training_energy_below_teacher": [
                {"module": r["module"], "student_j": r["training_energy_j"],
                 "teacher_j": teacher_row["training_energy_j"],
                 "met": (r["training_energy_j"] or 0) < (teacher_row["training_energy_j"] or 0)}
                for r in students],
        },
        "select": selections,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2) + "\n")
    header = ("| module | method | nRMSE vs data | nRMSE vs teacher | FLOPs | nonzero FLOPs | "
              "weight bytes | ns/sample @4096 | × teacher | modeled J/sample | training J (est.) |")
    lines = [header, "|" + " --- |" * 11]

    def g(value: Any, fmt: str = ".3g") -> str:
        return "—" if value is None else format(value, fmt)

    for r in rows:
        lines.append(f"| {r['module']} | {r['method']} | {g(r['nrmse_vs_data'])} | "
                     f"{g(r['nrmse_vs_teacher'])} | {r['flops_per_sample']} | "
                     f"{g(r['nonzero_flops_per_sample'], 'd')} | {r['weight_bytes']} | "
                     f"{r['latency_ns_per_sample']:.1f} | {r['latency_speedup_vs_teacher']:.2f} | "
                     f"{g(r['energy_modeled_j_per_sample'])} | {g(r['training_energy_j'])} |")
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(json.dumps(summary["targets"], indent=2))
    print(json.dumps(selections, indent=2))


if __name__ == "__main__":
    main()
