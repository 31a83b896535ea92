"""Inference cost of the equation module `drag` against its teacher `drag-net`.

Side by side in one run, at batch 1, 4096 and 1,000,000: FLOPs per sample
(exact), latency per sample (median over a ≥0.2 s window), energy per sample
(estimated from CPU-seconds × W/core on machines without RAPL, and labelled so),
and the memory-bandwidth floor: the time to copy the inputs and outputs once.
`drag` runs eagerly and fused (`torch.compile`), to show what fusing buys; at batch 1
also one call through the module (which takes the float fast path), its op-by-op tensor
path, the bare float function, an empty `nn.Module` and the same five operations on
plain Python floats.

    .venv/bin/python benchmarks/inference.py [--batches 1 4096 1000000] [--json out.json]

Ratios are what to read: absolute times depend on the (shared, noisy) machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

import registry
from registry.core.manifest import Sample
from registry.cost.energy import track_energy
from registry.cost.flops import count_module_flops
from registry.cost.latency import describe_hardware, time_calls
from registry.evaluation import sample_inputs
from registry.nn.fuse import fuse


def measure(call: Any, batch: int) -> dict[str, float]:
    with torch.no_grad(), track_energy() as tracker:
        times = time_calls(call)
    report = tracker.report
    return {"ns_per_sample": statistics.median(times) / batch * 1e9,
            "j_per_sample": report.energy_j / (len(times) * batch),
            "energy_method": report.method}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4096, 1_000_000])
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    reg = registry.open()
    manifest = reg.get("drag@^1")
    drag, teacher = reg.load("drag@^1"), reg.load("drag-net@^1")
    probe = torch.as_tensor(sample_inputs(manifest, Sample(n=64, seed=3), where="drag"),
                            dtype=torch.float32)
    fused = fuse(drag, probe=probe)
    flops = {"drag": count_module_flops(drag, probe[:16]).forward,
             "drag-net": count_module_flops(teacher, probe[:16]).forward}
    empty = _Empty()
    rows = []
    for batch in args.batches:
        x = torch.as_tensor(sample_inputs(manifest, Sample(n=max(batch, 16), seed=1), where="drag"),
                            dtype=torch.float32)[:batch].contiguous()
        out = torch.empty(batch, 1)
        with torch.no_grad():
            fused(x)  # compile for this shape before timing
        results = {
            "floor (copy in+out)": measure(lambda x=x, out=out: (x.clone(), out.copy_(x[:, :1])),
                                           batch),
            "drag eager": measure(lambda x=x: drag(x), batch),
            # The op-by-op tensor path, which the module skips for a few rows (issue 16).
            "drag tensor path": measure(lambda x=x: drag._forward_ops(x), batch),
            "drag fused": measure(lambda x=x: fused(x), batch),
            "drag-net": measure(lambda x=x: teacher(x), batch),
        }
        if batch == 1:
            row = [float(v) for v in x[0]]
            results["drag floats"] = measure(lambda row=row: drag._scalar(*row), batch)
            results["empty nn.Module"] = measure(lambda x=x: empty(x), batch)
            results["plain floats (the same five ops)"] = measure(
                lambda r=row: 0.5 * r[0] * r[1] * r[2] * r[3] ** 2, batch)
        rows.append({"batch": batch, **results})
        print(f"batch {batch}: done", file=sys.stderr)
    report = {"hardware": describe_hardware(), "flops_per_sample": flops, "rows": rows,
              "modules": {"drag": manifest.ref, "drag-net": reg.get("drag-net@^1").ref}}
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


class _Empty(torch.nn.Module):
    """An nn.Module that returns its input: what calling any module costs."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def render_one_call(report: dict[str, Any]) -> list[str]:
    """One call at batch 1, in µs: the module (float fast path), its tensor path, the bare
    float function, drag-net, and the baselines."""
    ones = [r for r in report["rows"] if r["batch"] == 1 and "drag floats" in r]
    if not ones:
        return []
    row = ones[0]
    names = ["drag eager", "drag tensor path", "drag floats", "drag-net", "empty nn.Module",
             "plain floats (the same five ops)"]
    lines = ["", "One call (batch 1), µs per call:", "",
             "| " + " | ".join(names) + " | drag-net ÷ drag |",
             "| " + " | ".join("---:" for _ in names) + " | ---: |",
             "| " + " | ".join(f"{row[n]['ns_per_sample'] / 1e3:.2f}" for n in names)
             + f" | {row['drag-net']['ns_per_sample'] / row['drag eager']['ns_per_sample']:.1f}× |"]
    return lines


def render(report: dict[str, Any]) -> str:
    flops = report["flops_per_sample"]
    lines = [
        f"{report['modules']['drag']} vs {report['modules']['drag-net']} on {report['hardware']}",
        f"FLOPs/sample: drag {flops['drag']}, drag-net {flops['drag-net']} "
        f"(ratio {flops['drag-net'] / flops['drag']:,.0f}×)",
        "",
        "| batch | drag eager ns/sample | drag fused ns/sample | drag-net ns/sample "
        "| floor ns/sample | latency drag-net ÷ drag fused "
        "| energy drag-net ÷ drag fused (estimated) | drag eager ÷ floor | drag fused ÷ floor |",
        "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in report["rows"]:
        eager, fused = row["drag eager"], row["drag fused"]
        net, floor = row["drag-net"], row["floor (copy in+out)"]
        lines.append(
            f"| {row['batch']:,} | {eager['ns_per_sample']:.3g} | {fused['ns_per_sample']:.3g} "
            f"| {net['ns_per_sample']:.3g} | {floor['ns_per_sample']:.3g} "
            f"| {net['ns_per_sample'] / fused['ns_per_sample']:,.0f}× "
            f"| {_ratio(net['j_per_sample'], fused['j_per_sample'])} "
            f"| {eager['ns_per_sample'] / floor['ns_per_sample']:.1f}× "
            f"| {fused['ns_per_sample'] / floor['ns_per_sample']:.1f}× |")
    lines += render_one_call(report)
    method = report["rows"][0]["drag eager"]["energy_method"]
    lines.append("")
    lines.append(f"Energy method: {method}.")
    return "\n".join(lines)


def _ratio(a: float, b: float) -> str:
    return f"{a / b:,.0f}×" if b > 0 else "n/a (no CPU time measured)"


if __name__ == "__main__":
    main()
