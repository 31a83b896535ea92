"""Latency of a network's shrunk variants beside the teacher, at batch 1 and batch 4096.

Every registered alternative of `--interface` (default `drag`: the same ports and
units) is loaded and timed in interleaved turns in this one run (`side_by_side`:
the median turn, each turn a median over a ≥ 0.2 s window), so the machine's load
falls on all alike. Ratios to the teacher are what to read; absolute times depend
on the (shared, noisy) machine. Needs the variants registered (`dvc repro
shrink-drag-net`, or `registry shrink ... --register`).

    .venv/bin/python benchmarks/shrink.py [--teacher drag-net] [--batches 1 4096] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import registry
from registry.core.manifest import Sample
from registry.cost.latency import describe_hardware, side_by_side
from registry.evaluation import sample_inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teacher", default="drag-net")
    parser.add_argument("--interface", default="drag")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4096])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    reg = registry.open()
    teacher = reg.resolve(args.teacher).exact
    refs = [a.ref for a in reg.alternatives(args.interface)]
    if teacher not in refs:
        raise SystemExit(f"{teacher} does not implement the interface of {args.interface}")
    modules = {ref: reg.load(ref) for ref in refs}
    manifest = reg.get(teacher)
    drawn = torch.as_tensor(sample_inputs(manifest, Sample(n=max(args.batches), seed=0),
                                          where=manifest.ref), dtype=torch.float32)
    results: dict[str, dict[str, dict[str, float]]] = {}
    for batch in args.batches:
        measured = side_by_side(modules, drawn[:batch], rounds=args.rounds)
        base = measured[teacher].ns_per_sample
        results[str(batch)] = {ref: {"ns_per_sample": round(lat.ns_per_sample, 2),
                                     "speedup_vs_teacher": round(base / lat.ns_per_sample, 2),
                                     "spread": round(lat.spread, 3)}
                               for ref, lat in measured.items()}
    width = max(len(r) for r in refs)
    print(f"{'module':<{width}}  " + "  ".join(f"{'ns @' + b:>10}  {'x':>6}" for b in results))
    for ref in refs:
        cells = "  ".join(f"{results[b][ref]['ns_per_sample']:>10.1f}  "
                          f"{results[b][ref]['speedup_vs_teacher']:>6.2f}" for b in results)
        print(f"{ref:<{width}}  {cells}")
    summary = {"teacher": teacher, "hardware": describe_hardware(), "rounds": args.rounds,
               "batches": results}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
