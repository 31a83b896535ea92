"""The registry at scale: N modules × V versions, against `gto show` on the same repository.

A scratch repository is written with `git fast-import` in the registry's own format: for
each version a commit `Register <name>@<version>` holding `modules/<name>/module.yaml`
and an annotated tag `<name>@v<version>`, as `registry register` makes them (the
manifests are gravity's, renamed). Then, interleaved over `--runs` rounds (medians):

- `registry list`, cold (no index: the first read builds it; from 1,000 new versions on
  it parses each module's latest manifest, the others at their first read) and warm;
- `registry show <name>@<version>` (the first after the listing: it completes that
  module's other versions);
- `registry list --all`, the first after those (it completes every other version: the
  rest of a full rebuild's work);
- the list page (`GET /`) and `GET /api/v1/modules?limit=50`, through the app in process;
- `gto show` on the same repository (the anchor: it reads the tags and their commits;
  in the first `--gto-runs` rounds only, as it takes minutes at 10k versions).

    .venv/bin/python benchmarks/scale.py --modules 1000 --versions 10 --runs 3

The CLI timings include the interpreter's start, as a user feels them. The package's
bytecode is compiled first, as `pip install` does for a wheel: with
`PYTHONDONTWRITEBYTECODE` set (this machine sets it), an editable checkout would compile
the registry's sources again at every start (about a tenth of a warm `list`). Ratios
are what to read: the machines are shared and noisy.
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
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1",
       "GIT_TERMINAL_PROMPT": "0"}
ENV.pop("REGISTRY_ROOT", None)
ENV.pop("REGISTRY_INDEX_URL", None)


def write_repository(path: Path, modules: int, versions: int) -> None:
    """`modules` × `versions` registered versions, by one `git fast-import` stream."""
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    base = yaml.safe_load((ROOT / "modules" / "gravity" / "module.yaml").read_text())
    stamp = 1_700_000_000
    chunks: list[bytes] = []
    mark = 0
    for v in range(versions):
        for m in range(modules):
            name, version = f"mod{m:05d}", f"1.0.{v}"
            manifest = dict(base, name=name, version=version,
                            summary=f"Newtonian attraction, variant {m} (v{v})")
            text = yaml.safe_dump(manifest, sort_keys=False).encode()
            mark += 1
            when = f"{stamp + mark} +0000"
            message = f"Register {name}@{version}\n".encode()
            chunks.append(b"commit refs/heads/main\n" + f"mark :{mark}\n".encode()
                          + f"committer registry <registry@localhost> {when}\n".encode()
                          + f"data {len(message)}\n".encode() + message
                          + (b"" if mark == 1 else f"from :{mark - 1}\n".encode())
                          + f"M 100644 inline modules/{name}/module.yaml\n".encode()
                          + f"data {len(text)}\n".encode() + text + b"\n")
            tag_message = f"Registering artifact {name} version v{version}\n".encode()
            chunks.append(f"tag {name}@v{version}\nfrom :{mark}\n".encode()
                          + f"tagger registry <registry@localhost> {when}\n".encode()
                          + f"data {len(tag_message)}\n".encode() + tag_message)
    subprocess.run(["git", "fast-import", "--quiet"], cwd=path, input=b"".join(chunks),
                   check=True)
    subprocess.run(["git", "reset", "-q", "--hard", "main"], cwd=path, check=True)


def timed(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed: {result.stderr[-2000:]}")
    return elapsed


def in_process(repo: Path, paths: list[str]) -> dict[str, float]:
    """Each path's median time through the app (a fresh app, the index already warm)."""
    code = (
        "import json, statistics, sys, time\n"
        "from fastapi.testclient import TestClient\n"
        "from registry.server.app import create_app\n"
        "app = create_app(sys.argv[1])\n"
        "out = {}\n"
        "with TestClient(app) as c:\n"
        "    for path in sys.argv[2:]:\n"
        "        assert c.get(path).status_code == 200, path\n"
        "        times = []\n"
        "        for _ in range(5):\n"
        "            t = time.perf_counter()\n"
        "            r = c.get(path)\n"
        "            times.append(time.perf_counter() - t)\n"
        "            assert r.status_code == 200, (path, r.status_code)\n"
        "        out[path] = statistics.median(times)\n"
        "print(json.dumps(out))\n")
    result = subprocess.run([sys.executable, "-c", code, str(repo), *paths], cwd=repo, env=ENV,
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"the app failed: {result.stderr[-2000:]}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modules", type=int, default=1000)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-gto", action="store_true", help="skip the gto anchor")
    parser.add_argument("--gto-runs", type=int, default=1,
                        help="rounds that also time `gto show` (minutes each at 10k)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="registry-scale-"))
    repo = work / "repo"
    try:
        started = time.perf_counter()
        write_repository(repo, args.modules, args.versions)
        print(f"wrote {args.modules * args.versions:,} versions in "
              f"{time.perf_counter() - started:.1f} s", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "registry")],
                       check=True)
        cli = [sys.executable, "-m", "registry.cli"]
        last = f"mod{args.modules - 1:05d}@1.0.{args.versions - 1}"
        gto = shutil.which("gto", path=str(Path(sys.executable).parent)) or shutil.which("gto")
        figures: dict[str, list[float]] = {}
        for _ in range(args.runs):
            for path in (repo / ".registry").glob("index.sqlite*"):
                path.unlink()
            figures.setdefault("registry list, cold", []).append(timed([*cli, "list"], repo))
            figures.setdefault("registry list, warm", []).append(timed([*cli, "list"], repo))
            figures.setdefault(f"registry show {last}", []).append(
                timed([*cli, "show", last], repo))
            figures.setdefault("registry list --all, first (completes the rest)", []).append(
                timed([*cli, "list", "--all"], repo))
            pages = in_process(repo, ["/", "/api/v1/modules?limit=50", "/api/v1/health"])
            for path, seconds in pages.items():
                figures.setdefault(f"GET {path} (in process)", []).append(seconds)
            if gto and not args.no_gto and len(figures.get("gto show", [])) < args.gto_runs:
                figures.setdefault("gto show", []).append(timed([gto, "show"], repo))
        medians = {k: statistics.median(v) for k, v in figures.items()}
        anchor = medians.get("gto show")
        print(f"\n{args.modules:,} modules × {args.versions} versions = "
              f"{args.modules * args.versions:,} versions; medians of {args.runs} "
              "interleaved runs\n")
        print("| what | seconds | gto show ÷ this |")
        print("| --- | ---: | ---: |")
        for what, seconds in medians.items():
            ratio = f"{anchor / seconds:,.0f}×" if anchor and what != "gto show" else "—"
            print(f"| {what} | {seconds:.3f} | {ratio} |")
        if args.json:
            report: dict[str, Any] = {"modules": args.modules, "versions": args.versions,
                                      "runs": args.runs, "medians_s": medians}
            args.json.write_text(json.dumps(report, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
