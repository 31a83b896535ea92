"""Shrink `drag-net` into pruned, int8 and student variants, register them, and compare.

Each variant is written and registered by `Registry.shrink` (provenance
`derived_from` the exact teacher, the method and its settings). Then every
alternative of the drag interface is judged on the same ground truth (`drag`'s
evaluation: 4096 samples of the reference law), its FLOPs, weight bytes and
modeled energy counted afresh (`alternatives --measure`), its latency at batch
4096 measured side by side in interleaved turns in this one run; training energy
is as recorded (estimated where no counter exists, and labelled so); `select`
picks the cheapest within the budgets of `params.yaml`.

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


def _row(reg: Any, found: Any, latency_ns: float) -> dict[str, Any]:
    card = reg.get(found.ref)
    derivation = card.provenance.derivation
    training = card.cost.training
    return {
        "module": found.ref, "kind": card.kind,
        "precision": card.network.precision if card.network else None,
        "nrmse": found.nrmse,  # on the interface module's evaluation (measured here)
        "nrmse_own_evaluation": card.evaluation.metrics.get("nrmse") if card.evaluation
        else None,
        "nrmse_vs_teacher": derivation.vs_teacher.get("nrmse") if derivation else None,
        "flops_per_sample": found.flops,
        "nonzero_flops_per_sample": card.cost.nonzero_flops_per_sample,
        "weight_bytes": found.weight_bytes or 0,
        "latency_ns_per_sample": round(latency_ns, 2),
        "latency_speedup_vs_teacher": None,
        "energy_modeled_j_per_sample": found.energy_j,
        "training_energy_j": training.energy_j if training else None,
        "training_energy_method": training.method if training else None,
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
    for method in params["variants"]:
        options = dict(method)
        report = reg.shrink(teacher_ref, register=True, **options)

        print(f"{report.registered}: {report.method}, {report.steps or 0} steps, nRMSE vs "
              f"teacher {report.variant['vs_teacher']['nrmse']:.3g}")

    # every alternative of the interface, judged on its evaluation and measured side by side
    found = reg.alternatives(params["interface"], measure=True)
    refs = [a.ref for a in found]
    manifest = reg.get(teacher_ref)
    x = torch.as_tensor(sample_inputs(manifest, Sample(n=LATENCY_BATCH, seed=0),
                                      where=manifest.ref), dtype=torch.float32)
    latency = side_by_side({ref: reg.load(ref) for ref in refs}, x, rounds=5)
    rows = [_row(reg, a, latency[a.ref].ns_per_sample) for a in found]
    base = latency[teacher_ref].ns_per_sample
    for row in rows:
        row["latency_speedup_vs_teacher"] = round(base / row["latency_ns_per_sample"], 2)
    teacher_row = next(r for r in rows if r["module"] == teacher_ref)
    variants = [r for r in rows if r["derived_from"] == teacher_ref]
    meets = [r["module"] for r in variants
             if r["nrmse"] is not None and r["nrmse"] <= 2 * teacher_row["nrmse"]
             and r["latency_speedup_vs_teacher"] >= 4]
    students = [r for r in variants if r["method"] == "student"]
    selections = {}
    for budget, by in params["select"]:
        try:
            chosen = reg.select(params["interface"], max_nrmse=budget, by=by, measure=True)
            selections[f"{by}<= nrmse {budget}"] = {"module": chosen.ref, "figure":
                                                    chosen.figure(by), "nrmse": chosen.nrmse}
        except registry.RegistryError as exc:
            selections[f"{by}<= nrmse {budget}"] = {"error": str(exc)}
    summary = {
        "teacher": teacher_ref, "hardware": latency[teacher_ref].hardware,
        "accuracy_on": found[0].accuracy_on,
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
    header = ("| module | method | nRMSE | nRMSE vs teacher | FLOPs | nonzero FLOPs | "
              "weight bytes | ns/sample @4096 | × teacher | modeled J/sample | training J (est.) |")
    lines = [header, "|" + " --- |" * 11]

    def g(value: Any, fmt: str = ".3g") -> str:
        return "—" if value is None else format(value, fmt)

    for r in rows:
        lines.append(f"| {r['module']} | {r['method']} | {g(r['nrmse'])} | "
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
