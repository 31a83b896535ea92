"""A network module with 50 MB of weights through DVC and S3 (SeaweedFS), end to end.

A scratch repository (git + `dvc init`, default remote `s3://BUCKET/<run>` on the endpoint
`scripts/s3.sh` prints) gets `big-net`: drag-net's interface with hidden layers [3540,
3540] (12.6 M parameters, 50 MB of float32 weights, random: the figures are about
storage, not accuracy). Then, each step timed:

1. `registry register modules/big-net` (the weights go to DVC: over 5 MB), which pushes
   them to the remote; the git repository's growth is measured (`git count-objects`);
2. a fresh `git clone` elsewhere, with no DVC cache, runs `registry load big-net@1.0.0`
   and one forward pass (fetched from S3, md5 and sha256 verified).

    scripts/s3.sh && .venv/bin/python benchmarks/artifacts.py --endpoint http://127.0.0.1:18333
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "DVC_NO_ANALYTICS": "1",
       "GIT_TERMINAL_PROMPT": "0", "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID",
                                                                      "registry"),
       "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "registry")}
for key in ("REGISTRY_ROOT", "REGISTRY_INDEX_URL", "REGISTRY_DVC_THRESHOLD_BYTES"):
    ENV.pop(key, None)
HIDDEN = [3540, 3540]


def run(args: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=ENV, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{result.stdout[-2000:]}"
                         f"{result.stderr[-3000:]}")
    return time.perf_counter() - start


def git_bytes(repo: Path) -> int:
    out = subprocess.run(["git", "count-objects", "-v"], cwd=repo, env=ENV, check=True,
                         capture_output=True, text=True).stdout
    sizes = dict(line.split(": ") for line in out.splitlines())
    return 1024 * (int(sizes["size"]) + int(sizes["size-pack"]))  # KiB, loose + packed


def big_module(repo: Path) -> int:
    """`modules/big-net`: drag-net's manifest with wide hidden layers and fresh weights."""
    import torch

    from registry.nn.network import NetworkModule
    from registry.nn.weights import save_weights

    folder = repo / "modules" / "big-net"
    shutil.copytree(ROOT / "modules" / "drag-net", folder)
    (folder / "weights.safetensors").unlink()
    data = yaml.safe_load((folder / "module.yaml").read_text())
    data.update(name="big-net", version="1.0.0", summary="a 50 MB MLP (storage benchmark)")
    data["network"]["config"]["hidden"] = HIDDEN
    data.pop("cost", None)
    data["provenance"] = {"source": "trained"}
    data["evaluation"].pop("metrics", None)
    torch.manual_seed(0)
    network = NetworkModule("mlp", data["network"]["config"], inputs=list(data["inputs"]),
                            outputs=list(data["outputs"]), where="big-net")
    data["network"]["weights"]["sha256"] = save_weights(network, folder / "weights.safetensors")
    (folder / "module.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return (folder / "weights.safetensors").stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default=os.environ.get("REGISTRY_TEST_S3_URL",
                                                             "http://127.0.0.1:18333"))
    parser.add_argument("--bucket", default="registry-test")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="registry-artifacts-"))
    try:
        repo = work / "repo"
        shutil.copytree(ROOT / "modules" / "gravity", repo / "modules" / "gravity")
        dvc = [sys.executable, "-m", "dvc"]
        for step in (["git", "init", "-q", "-b", "main"], [*dvc, "init", "-q"],
                     [*dvc, "remote", "add", "-d", "store",
                      f"s3://{args.bucket}/bench-{uuid.uuid4().hex[:10]}"],
                     [*dvc, "remote", "modify", "store", "endpointurl", args.endpoint],
                     ["git", "add", "-A"],
                     ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost",
                      "commit", "-qm", "seed"]):
            run(step, repo)
        size = big_module(repo)
        subprocess.run(["git", "gc", "-q"], cwd=repo, env=ENV, check=True)
        before = git_bytes(repo)
        registered_s = run([sys.executable, "-m", "registry.cli", "register",
                            "modules/big-net"], repo)
        subprocess.run(["git", "gc", "-q"], cwd=repo, env=ENV, check=True)
        grew = git_bytes(repo) - before
        tree = subprocess.run(["git", "ls-tree", "-l", "HEAD", "modules/big-net/"], cwd=repo,
                              env=ENV, check=True, capture_output=True, text=True).stdout
        in_git = {line.split("\t")[1].rsplit("/", 1)[1]: int(line.split()[3])
                  for line in tree.splitlines()}
        clone = work / "clone"
        run(["git", "clone", "-q", str(repo), str(clone)], work)
        probe = ("import torch, registry\n"
                 "m = registry.open('.').load('big-net@1.0.0')\n"
                 "y = m(torch.tensor([[1.2, 0.47, 0.0042, 30.0]]))\n"
                 "assert torch.isfinite(y).all(), y\n")
        assert not (clone / "modules/big-net/weights.safetensors").exists()
        loaded_s = run([sys.executable, "-c", probe], clone)
        report = {"weights_bytes": size, "git_growth_bytes": grew, "files_in_git": in_git,
                  "register_and_push_s": registered_s, "fresh_clone_load_s": loaded_s}
        print(f"\nbig-net: {size / 1e6:.1f} MB of weights; git grew {grew / 1024:.1f} KiB for "
              f"the registration (commit, tag, manifest, pointers; after `git gc`)\n")
        print("files git holds for it: " + ", ".join(f"{k} {v:,} B" for k, v in in_git.items())
              + "\n")
        print("| step | seconds |")
        print("| --- | ---: |")
        print(f"| `registry register` (DVC add, push to S3, measure, commit, tag) | "
              f"{registered_s:.1f} |")
        print(f"| fresh clone: `load` (fetch from S3, md5 + sha256) and one call | "
              f"{loaded_s:.1f} |")
        if args.json:
            args.json.write_text(json.dumps(report, indent=2) + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
