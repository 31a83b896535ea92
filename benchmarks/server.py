"""The registry server under load, against an MLflow tracking server, side by side.

Both serve one model version's metadata on loopback: ours `GET /api/v1/modules/drag@<its
version>/manifest` (`registry serve`, with 1 and with 2 workers), MLflow's `GET /api/2.0/mlflow/
model-versions/get?name=drag&version=1` (`mlflow server`, SQLite backend, its default
workers). The load comes from `wrk` (`scripts/wrk.sh` installs Debian's), which keeps `c`
connections busy for `--seconds` each, at c = 1, 16 and 64; every (server, c) cell is run
once per round, rounds interleaved (`--runs`), and the medians reported: requests/s, p50
and p99 latency, errors (non-2xx answers and socket errors).

    scripts/wrk.sh && .venv/bin/python benchmarks/server.py --seconds 5 --runs 3

Without wrk an asyncio httpx client is used, and the table says so: it is itself the
bottleneck above c = 16 (about 150 requests/s at c = 64 on 2 cores, whatever the server).
The client shares the machine's cores with the servers (the same for each); ratios are
what to read.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1",
       "GIT_TERMINAL_PROMPT": "0"}
for key in ("REGISTRY_ROOT", "REGISTRY_INDEX_URL", "REGISTRY_TOKENS", "MLFLOW_TRACKING_URI"):
    ENV.pop(key, None)
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def registry_repo(where: Path) -> Path:
    """A repository with drag registered (as `registry register` makes it)."""
    repo = where / "repo"
    (repo / "modules").mkdir(parents=True)
    shutil.copytree(ROOT / "modules" / "drag", repo / "modules" / "drag")
    for args in (["init", "-q", "-b", "main"], ["add", "-A"],
                 ["-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm",
                  "drag"]):
        subprocess.run(["git", *args], cwd=repo, check=True, env=ENV)
    subprocess.run([sys.executable, "-m", "registry.cli", "register", "modules/drag"],
                   cwd=repo, check=True, env=ENV, capture_output=True)
    return repo


def wait_until_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the server exited before answering")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{url} did not answer within 90 s")


# Servers log every request; their output goes nowhere (an unread pipe fills up after a
# few thousand access-log lines and blocks the server: every request then timed out).


def start_ours(repo: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    import yaml

    version = yaml.safe_load((repo / "modules" / "drag" / "module.yaml").read_text())["version"]
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "registry.cli", "serve", "--port", str(port),
                             "--workers", str(workers)], cwd=repo, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}/api/v1/modules/drag@{version}/manifest"
    wait_until_up(url, proc)
    return proc, url


def start_mlflow(where: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    store = where / "mlflow"
    store.mkdir()
    proc = subprocess.Popen([str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port",
                             str(port), "--backend-store-uri", f"sqlite:///{store / 'db.sqlite'}",
                             "--default-artifact-root", str(store / "artifacts")],
                            cwd=where, env=ENV, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    wait_until_up(f"{base}/health", proc)
    api = f"{base}/api/2.0/mlflow"
    httpx.post(f"{api}/registered-models/create", json={"name": "drag"}, timeout=30)
    # A remote source: MLflow accepts a local path only inside a run's artifacts.
    httpx.post(f"{api}/model-versions/create",
               json={"name": "drag", "source": "s3://registry-bench/drag"}, timeout=30)
    url = f"{api}/model-versions/get?name=drag&version=1"
    wait_until_up(url, proc)
    return proc, url


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    """A wrk duration (`574.00us`, `1.62s`) in milliseconds."""
    number = text.rstrip("usm")
    return float(number) * _UNITS[text[len(number):]]


def load_wrk(url: str, concurrency: int, seconds: float) -> dict[str, float]:
    """One wrk run: requests/s, p50, p99 and errors from its `--latency` report."""
    import re

    threads = min(2, concurrency)
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{seconds:g}s",
                          "--timeout", "30s", "--latency", url], capture_output=True,
                         text=True, check=True, timeout=seconds + 60).stdout
    def field(pattern: str) -> str:
        found = re.search(pattern, out)
        if found is None:
            raise SystemExit(f"wrk's report has no match for {pattern!r}:\n{out}")
        return found.group(1)

    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), "
                              r"timeout (\d+)", out)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = sum(int(g) for g in socket_errors.groups()) if socket_errors else 0
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return {"rps": float(field(r"Requests/sec:\s+([\d.]+)")),
            "p50_ms": _ms(field(r"\s50%\s+([\d.]+\w+)")),
            "p99_ms": _ms(field(r"\s99%\s+([\d.]+\w+)")),
            "errors": float(errors)}


def load(url: str, concurrency: int, seconds: float) -> dict[str, float]:
    if shutil.which("wrk"):
        return load_wrk(url, concurrency, seconds)
    return asyncio.run(load_httpx(url, concurrency, seconds))


async def load_httpx(url: str, concurrency: int, seconds: float) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                start = time.perf_counter()
                try:
                    response = await client.get(url)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - start)
                errors += not ok

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    return {"rps": len(latencies) / elapsed,
            "p50_ms": 1e3 * ordered[len(ordered) // 2] if ordered else float("nan"),
            "p99_ms": 1e3 * ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
            if ordered else float("nan"),
            "errors": float(errors)}


def stop(proc: subprocess.Popen[bytes]) -> None:
    """The server and its worker processes (it leads its own process group)."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="registry-server-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        repo = registry_repo(work)
        targets: dict[str, str] = {}
        for workers in (1, 2):
            proc, url = start_ours(repo, workers)
            procs.append(proc)
            targets[f"registry, {workers} worker{'s' if workers > 1 else ''}"] = url
        proc, url = start_mlflow(work)
        procs.append(proc)
        targets["MLflow"] = url
        for url in targets.values():  # every worker loaded and warm before timing
            load(url, 8, 1.0)
        cells: dict[tuple[str, int], list[dict[str, float]]] = {}
        for _ in range(args.runs):
            for concurrency in args.concurrency:
                for name, url in targets.items():
                    cells.setdefault((name, concurrency), []).append(
                        load(url, concurrency, args.seconds))
                    print(f"{name} c={concurrency}: {cells[(name, concurrency)][-1]}",
                          file=sys.stderr, flush=True)
        rows: list[dict[str, Any]] = []
        for (name, concurrency), runs in cells.items():
            rows.append({"server": name, "concurrency": concurrency,
                         **{k: statistics.median(r[k] for r in runs) for k in runs[0]}})
        client = "wrk" if shutil.which("wrk") else "httpx (no wrk: the client limits c ≥ 16)"
        print(f"\nmedians of {args.runs} interleaved runs of {args.seconds:g} s each; "
              f"client: {client}\n")
        print("| server | c | requests/s | p50 ms | p99 ms | errors | ÷ MLflow requests/s |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        anchor = {r["concurrency"]: r["rps"] for r in rows if r["server"] == "MLflow"}
        for r in sorted(rows, key=lambda r: (r["concurrency"], r["server"])):
            print(f"| {r['server']} | {r['concurrency']} | {r['rps']:.0f} | {r['p50_ms']:.1f} "
                  f"| {r['p99_ms']:.1f} | {r['errors']:.0f} "
                  f"| {r['rps'] / anchor[r['concurrency']]:.2f}× |")
        if args.json:
            args.json.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
