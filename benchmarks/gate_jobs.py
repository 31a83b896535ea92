"""`registry check --all --no-cache` over many modules: serial against `--jobs N` (Dask).

A scratch repository gets `--modules` modules (default 40): this repository's five
(gravity, drag, drag-net, drag-eq, baseball-flight), registered, and renamed copies of
them (`gravity-05`, …): every check runs for real (schema, units, integrity, parents,
accuracy reproduced on the evaluation data, FLOPs counted, budgets). Then, interleaved
over `--runs` rounds (medians), the whole command as a user runs it: serial (`--jobs 1`,
this process) and `--jobs N` (a Dask LocalCluster of N worker processes, started and
stopped by the command, inside the timing). The reports must be equal.

    .venv/bin/python benchmarks/gate_jobs.py --modules 40 --jobs 2 --runs 3

On a machine with N cores the ideal speed-up is N; ratios are what to read.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1",
       "GIT_TERMINAL_PROMPT": "0"}
for key in ("REGISTRY_ROOT", "REGISTRY_INDEX_URL", "REGISTRY_DASK_SCHEDULER"):
    ENV.pop(key, None)
SOURCES = ("gravity", "drag", "drag-net", "drag-eq", "baseball-flight")
GIT = ["-c", "user.name=bench", "-c", "user.email=bench@localhost"]


def scratch_repository(where: Path, count: int) -> Path:
    """This repository's modules, registered (the copies' parents and composed parts),
    and `count` - 5 renamed copies of them: `count` modules to check."""
    repo = where / "repo"
    (repo / "modules").mkdir(parents=True)
    for source in SOURCES:
        shutil.copytree(ROOT / "modules" / source, repo / "modules" / source)
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=repo, check=True, env=ENV)
    commit(repo, "modules")
    subprocess.run([sys.executable, "-m", "registry.cli", "register",
                    *(f"modules/{s}" for s in SOURCES)], cwd=repo, check=True, env=ENV,
                   capture_output=True)
    for i in range(count - len(SOURCES)):
        source = SOURCES[i % len(SOURCES)]
        name = f"{source}-{i:02d}"
        shutil.copytree(ROOT / "modules" / source, repo / "modules" / name)
        path = repo / "modules" / name / "module.yaml"
        data = yaml.safe_load(path.read_text())
        data["name"] = name
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    commit(repo, "copies")
    return repo


def commit(repo: Path, message: str) -> None:
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=ENV)
    subprocess.run(["git", *GIT, "commit", "-qm", message], cwd=repo, check=True, env=ENV)


def check(repo: Path, jobs: int) -> tuple[float, list[dict[str, object]]]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "registry.cli", "check", "--all",
                             "--no-cache", "--jobs", str(jobs), "--format", "json"],
                            cwd=repo, env=ENV, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode not in (0, 1) or not result.stdout.strip():
        raise SystemExit(f"check --jobs {jobs} failed: {result.stderr[-2000:]}")
    return elapsed, json.loads(result.stdout)["modules"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=40)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="registry-gate-jobs-"))
    try:
        repo = scratch_repository(work, args.modules)
        times: dict[int, list[float]] = {1: [], args.jobs: []}
        reports = {}
        for _ in range(args.runs):
            for jobs in times:
                seconds, reports[jobs] = check(repo, jobs)
                times[jobs].append(seconds)
                print(f"--jobs {jobs}: {seconds:.1f} s", file=sys.stderr, flush=True)
        if reports[1] != reports[args.jobs]:
            raise SystemExit("the fanned-out report differs from the serial one")
        passed = sum(bool(m["passed"]) for m in reports[1])
        serial, fanned = statistics.median(times[1]), statistics.median(times[args.jobs])
        print(f"\n{args.modules} modules ({passed} pass), `check --all --no-cache`, medians of "
              f"{args.runs} interleaved runs, {os.cpu_count()} cores\n")
        print("| run | seconds | speed-up |")
        print("| --- | ---: | ---: |")
        print(f"| serial (`--jobs 1`) | {serial:.1f} | 1.00× |")
        print(f"| `--jobs {args.jobs}` (Dask LocalCluster) | {fanned:.1f} | "
              f"{serial / fanned:.2f}× |")
        if args.json:
            args.json.write_text(json.dumps({"modules": args.modules, "jobs": args.jobs,
                                             "runs": args.runs, "serial_s": times[1],
                                             "jobs_s": times[args.jobs],
                                             "speedup": serial / fanned}, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
