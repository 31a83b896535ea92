"""The pipeline's last stage: one short report of what the run produced.

Writes `reports/summary.json` (DVC metrics: each module's accuracy and cost,
the gate's verdict, the headline ratios), `reports/energy.csv` (DVC plot:
training and distillation energy per stage) and `reports/summary.md`, the text
`make pipeline` ends with.

    python pipelines/report.py            # the stage: write the three files
    python pipelines/report.py --show     # print summary.md; exit 1 if the gate failed
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import registry

REPORTS = Path("reports")


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {}


def modules(reg: Any) -> list[dict[str, Any]]:
    rows = []
    for row in reg.list():
        manifest = reg.get(row.tag.replace("@v", "@", 1))
        metrics = manifest.evaluation.metrics if manifest.evaluation else {}
        energy = manifest.cost.energy_j_per_sample
        modeled = manifest.cost.energy_modeled_j_per_sample
        training = manifest.cost.training
        rows.append({
            "name": manifest.name, "version": manifest.version, "kind": manifest.kind,
            "r2": metrics.get("r2"), "nrmse": metrics.get("nrmse"),
            "flops_per_sample": manifest.cost.flops_per_sample, "params": manifest.cost.params,
            "energy_j_per_sample": energy.value if energy else None,
            "energy_method": energy.method if energy else None,
            "energy_modeled_j_per_sample": modeled.value if modeled else None,
            "energy_modeled_method": modeled.method if modeled else None,
            "training_energy_j": training.energy_j if training else None,
            "training_energy_modeled_j": (training.energy_modeled.value if training
                                          and training.energy_modeled else None),
        })
    return rows


def energy_rows(baseball: dict[str, Any], drag_net: dict[str, Any],
                distilled: dict[str, Any] | None) -> list[tuple[str, float, float, str]]:
    rows = []
    if drag_net:
        rows.append(("train drag-net", drag_net["train_energy_j"], drag_net["train_cpu_s"],
                     "estimated:power_model"))
    if baseball:
        c, s = baseball["composite"], baseball["scratch"]
        rows.append(("train baseball composite", c["train_energy_j"], c["train_cpu_s"],
                     c["energy_method"]))
        rows.append((f"train baseball scratch {'x'.join(map(str, s['chosen_hidden']))}",
                     s["train_energy_j"], s["train_cpu_s"], c["energy_method"]))
    if distilled:
        rows.append(("distill drag-net", distilled["energy_j"] or 0.0, distilled["cpu_s"] or 0.0,
                     distilled["method"] or ""))
    return rows


def network_lines(n: dict[str, Any]) -> list[str]:
    """The network-distillation stage: the residual's equation, the swap, meteorites."""
    equation = n.get("residual_equation")
    lines = ["", "network distillation (baseball-flight residual → equation):"]
    if not equation:
        return [*lines, "  no equation found for the residual (see "
                        "reports/network-distillation.json)"]
    lines.append("  " + "; ".join(f"{k} = {v}" for k, v in equation.items()))
    b, m = n.get("baseball") or {}, n.get("meteorites") or {}
    if not n.get("swap_accepted"):
        return [*lines, "  swap refused (see reports/network-distillation.json)"]
    before, after = n.get("inference_flops_before") or 0, n.get("inference_flops_after") or 1
    lines.append(f"  baseball test RMSE {b.get('test_rmse_before', 0) * 1000:.3g} mm → "
                 f"{b.get('test_rmse_after', 0) * 1000:.3g} mm; FLOPs/sample {before:,} → "
                 f"{after:,} ({before / max(after, 1):.1f}× fewer)")
    if m.get("rmse_after") is not None:
        lines.append(f"  meteorites RMSE {m['rmse_before']:.4g} m → {m['rmse_after']:.4g} m "
                     "(no retraining)")
    drag = n.get("learned_drag_equation")
    if drag:
        compared = (n.get("learned_drag") or {}).get("compared_with_drag") or {}
        lines.append("  drag learned inside training: " + "; ".join(
            f"{k} = {v}" for k, v in drag.items())
            + (" (the hand-written law)" if compared.get("equivalent_after_snapping") else ""))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--show", action="store_true",
                        help="print reports/summary.md; exit 1 if the gate failed")
    args = parser.parse_args()
    if args.show:
        summary = _load(REPORTS / "summary.json")
        sys.stdout.write((REPORTS / "summary.md").read_text())
        sys.exit(0 if summary.get("gate", {}).get("passed") else 1)

    reg = registry.open()
    mods = modules(reg)
    check = _load(REPORTS / "check.json")
    baseball = _load(REPORTS / "baseball.json")
    drag_net = _load(Path("build/drag-net/metrics.json"))
    distill = _load(REPORTS / "distill-drag-net.json")
    by_name = {m["name"]: m for m in mods}
    eq, net = by_name.get("drag-eq"), by_name.get("drag-net")
    distilled_training = None
    if eq is not None:
        training = reg.get(f"drag-eq@{eq['version']}").cost.training
        distilled_training = training.model_dump() if training else None
    failures = [(m["name"], r["check"]) for m in check.get("modules", [])
                for r in m["results"] if r["verdict"] == "fail"]
    summary: dict[str, Any] = {
        "gate": {"passed": bool(check.get("passed")), "modules": len(check.get("modules", [])),
                 "failures": len(failures)},
        "modules": {m["name"]: {k: v for k, v in m.items() if k != "name" and v is not None}
                    for m in mods},
    }
    if eq and net and eq["flops_per_sample"]:
        summary["distill"] = {"equation": distill.get("equations", {}),
                              "flops_reduction": net["flops_per_sample"] / eq["flops_per_sample"],
                              "nrmse_vs_teacher": distill.get("chosen", {}).get("F", {})
                              .get("nrmse")}
    if baseball:
        summary["baseball"] = {"composite_test_rmse_m": baseball["composite"]["test"]["rmse"],
                               "scratch_test_rmse_m": baseball["scratch"]["test"]["rmse"],
                               **baseball["ratios"]}
        if baseball["composite"].get("train_energy_modeled_j"):
            summary["baseball"]["training_energy_modeled_j"] = {
                "composite": baseball["composite"]["train_energy_modeled_j"],
                "scratch": baseball["scratch"]["train_energy_modeled_j"]}
    network = _load(REPORTS / "network-distillation.json")
    learned = _load(REPORTS / "learn-drag.json")
    if network:
        summary["network_distillation"] = {
            k: network.get(k) for k in ("residual_equation", "learned_drag_equation",
                                        "inference_flops_before", "inference_flops_after")}
        summary["network_distillation"].update(
            {"baseball": network.get("baseball"), "meteorites": network.get("meteorites"),
             "swap_accepted": (network.get("swap") or {}).get("accepted")})
        if learned.get("learned_drag_equation"):
            summary["network_distillation"]["learned_drag_equation"] = \
                learned["learned_drag_equation"]
            summary["network_distillation"]["learned_drag"] = {
                k: learned.get(k) for k in ("compared_with_drag", "meteorites")}
    shrunk = _load(REPORTS / "shrink-drag-net.json")
    if shrunk:
        summary["shrink"] = {"targets": shrunk.get("targets"), "select": shrunk.get("select")}
    (REPORTS / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    energy = energy_rows(baseball, drag_net, distilled_training)
    (REPORTS / "energy.csv").write_text("stage,energy_j,cpu_s,method\n" + "".join(
        f"{stage},{j:.4g},{cpu:.4g},{method}\n" for stage, j, cpu, method in energy))

    width = max([16, *(len(m["name"]) + 1 for m in mods)])
    lines = ["", "== registry pipeline report ==", "",
             f"{'module':<{width}}{'version':<9}{'kind':<11}{'r2':>10}{'nRMSE':>11}"
             f"{'FLOPs':>10}{'modeled J':>11}{'est. J':>11}  methods"]
    for m in mods:
        lines.append(f"{m['name']:<{width}}{m['version']:<9}{m['kind']:<11}"
                     f"{_num(m['r2'], '.6f'):>10}{_num(m['nrmse'], '.3g'):>11}"
                     f"{_num(m['flops_per_sample'], 'd'):>10}"
                     f"{_num(m['energy_modeled_j_per_sample'], '.3g'):>11}"
                     f"{_num(m['energy_j_per_sample'], '.3g'):>11}  "
                     + ", ".join(filter(None, (m["energy_modeled_method"], m["energy_method"]))))
    if "distill" in summary:
        d = summary["distill"]
        lines += ["", f"distilled drag-net → drag-eq: {', '.join(d['equation'].values())}; "
                      f"{d['flops_reduction']:,.0f}× fewer FLOPs; nRMSE vs teacher "
                      f"{_num(d['nrmse_vs_teacher'], '.3g')}"]
    if "baseball" in summary:
        b = summary["baseball"]
        lines += [f"baseball: composite test RMSE {b['composite_test_rmse_m'] * 100:.2f} cm vs "
                  f"scratch {b['scratch_test_rmse_m'] * 100:.2f} cm; training FLOPs "
                  f"{b['training_flops_scratch_over_composite']:.0f}× fewer for the composite"]
        if b.get("training_energy_modeled_j"):
            t = b["training_energy_modeled_j"]
            lines += [f"baseball training energy, modeled (horowitz-45nm): composite "
                      f"{t['composite']:.3g} J, scratch {t['scratch']:.3g} J "
                      f"({t['scratch'] / t['composite']:.0f}×)"]
    if "network_distillation" in summary:
        lines += network_lines(summary["network_distillation"])
    if shrunk:
        lines += ["", f"drag-net shrunk ({shrunk['accuracy_on']}'s evaluation, latency at batch "
                      f"{shrunk['latency_batch']} side by side):"]
        lines += [f"  {r['module']:<28}{r['method']:<10} nRMSE {_num(r['nrmse'], '.3g'):>9}  "
                  f"FLOPs {r['flops_per_sample']:>6}  {r['latency_speedup_vs_teacher']:>6.2f}× "
                  "the teacher's speed" for r in shrunk["rows"] if r["derived_from"]]
        picked = (shrunk.get("select") or {}).get("flops<= nrmse 0.01", {})
        if picked.get("module"):
            lines += [f"  registry select drag --max-nrmse 0.01 --by flops → {picked['module']}"]
    if any(m["energy_modeled_j_per_sample"] is None for m in mods):
        lines += ["", "modeled J – : registered before modeled energy was recorded; "
                      "`registry cost REF` models it"]
    lines += ["", "energy (estimated unless the method says measured):"]
    lines += [f"  {stage:<34}{j:>9.1f} J {cpu:>7.1f} CPU-s  {method}"
              for stage, j, cpu, method in energy]
    gate = summary["gate"]
    verdict = ("PASSED" if gate["passed"] else
               f"FAILED ({gate['failures']} checks: "
               + ", ".join(f"{n} {c}" for n, c in failures[:5]) + ")")
    lines += ["", f"gate (registry check --all): {verdict} over {gate['modules']} modules; "
                  "details in reports/check.json", ""]
    text = "\n".join(lines)
    (REPORTS / "summary.md").write_text(text)
    print(f"wrote {REPORTS / 'summary.json'}, {REPORTS / 'energy.csv'}, {REPORTS / 'summary.md'}")


def _num(value: Any, spec: str) -> str:
    return "–" if value is None else format(value, spec)


if __name__ == "__main__":
    main()
