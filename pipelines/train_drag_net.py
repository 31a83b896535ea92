"""Train `drag-net`, a small MLP teacher of quadratic drag, and write its module folder.

Logs parameters, the loss curve and final metrics to MLflow; writes
`weights.safetensors`, the evaluation data and `module.yaml` (provenance:
trained, the git commit, the MLflow run, the md5 of the training data as DVC
records it) to `--out`.

    python pipelines/train_drag_net.py --data data/drag --out build/drag-net
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

import registry
from registry.core.manifest import Manifest, sha256_file, write_manifest
from registry.cost.energy import track_energy
from registry.cost.flops import count_module_flops
from registry.evaluation import compute_metrics
from registry.mlflow.tracking import MlflowRunHandle, mlflow_run
from registry.nn.network import NetworkModule
from registry.nn.weights import save_weights

NAME = "drag-net"


def load_split(path: Path, inputs: list[str], outputs: list[str]) -> tuple[torch.Tensor, ...]:
    with np.load(path, allow_pickle=False) as data:
        x = np.stack([data[n] for n in inputs], axis=1)
        y = np.stack([data[n] for n in outputs], axis=1)
    return torch.as_tensor(x, dtype=torch.float32), torch.as_tensor(y, dtype=torch.float32)


def train(net: NetworkModule, x: torch.Tensor, y: torch.Tensor, params: dict[str, Any],
          run: MlflowRunHandle) -> list[tuple[int, float]]:
    """Adam on the standardised mean squared error, cosine learning-rate decay; returns
    the (step, loss) curve logged to MLflow."""
    curve: list[tuple[int, float]] = []
    optimiser = torch.optim.Adam(net.parameters(), lr=params["lr"])
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=params["steps"])
    generator = torch.Generator().manual_seed(params["seed"])
    for step in range(1, params["steps"] + 1):
        idx = torch.randint(0, len(x), (params["batch"],), generator=generator)
        z = (net(x[idx]) - net.out_shift) / net.out_scale
        target = (y[idx] - net.out_shift) / net.out_scale
        loss = torch.mean((z - target) ** 2)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 200 == 0 or step == params["steps"]:
            run.log_metric("train_loss", loss.item(), step=step)
            curve.append((step, loss.item()))
    return curve


def train_flops(net: NetworkModule, params: dict[str, Any]) -> float:
    """Training compute: forward+backward FLOPs per sample × samples seen (optimiser excluded)."""
    example = torch.zeros(16, len(net.input_names))
    per_sample = count_module_flops(net, example).forward_backward or 0
    return float(per_sample * params["steps"] * params["batch"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/drag"))
    parser.add_argument("--out", type=Path, default=Path("build/drag-net"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    params = yaml.safe_load(args.params.read_text())["drag_net"]

    reg = registry.open()
    teacher_of = reg.get("drag@^1")
    inputs, outputs = list(teacher_of.inputs), list(teacher_of.outputs)
    x, y = load_split(args.data / "train.npz", inputs, outputs)
    x_test, y_test = load_split(args.data / "test.npz", inputs, outputs)

    torch.manual_seed(params["seed"])
    config = {"hidden": params["hidden"], "activation": params["activation"]}
    net = NetworkModule("mlp", config, inputs=inputs, outputs=outputs)
    net.set_standardisation(x, y)
    data_md5 = hashlib.md5((args.data / "train.npz").read_bytes()).hexdigest()

    with mlflow_run(NAME, root=reg.root, run_name=f"train-{NAME}",
                    params={**params, "n_train": len(x), "data_md5": data_md5}) as run:
        with track_energy() as tracker:
            curve = train(net, x, y, params, run)
        energy = tracker.report
        net.eval()
        with torch.no_grad():
            metrics = compute_metrics(net(x_test).double().numpy(), y_test.double().numpy())
        run.log_metrics({**metrics, "train_energy_j": energy.energy_j, "train_cpu_s": energy.cpu_s,
                         "train_co2_kg": energy.co2_kg})
        produced = reg.git_info(NAME)
        run.set_tags({"energy_method": energy.method, "git_commit": produced.commit})
        training = energy.to_training_cost().model_copy(update={"flops": train_flops(net, params)})

        args.out.mkdir(parents=True, exist_ok=True)
        weights_sha = save_weights(net, args.out / "weights.safetensors")
        shutil.copyfile(args.data / "test.npz", args.out / "test.npz")
        manifest = Manifest.model_validate({
            "name": NAME,
            "version": _current_version(reg.root),
            "kind": "network",
            "summary": "MLP teacher trained on samples of quadratic drag",
            "inputs": {n: p.model_dump(exclude_none=True) for n, p in teacher_of.inputs.items()},
            "outputs": {n: p.model_dump(exclude_none=True) for n, p in teacher_of.outputs.items()},
            "network": {"arch": "mlp", "config": config,
                        "weights": {"path": "weights.safetensors", "sha256": weights_sha}},
            "evaluation": {"data": {"path": "test.npz",
                                    "sha256": sha256_file(args.out / "test.npz")},
                           "metrics": metrics},
            "cost": {"training": training.model_dump(exclude_none=True)},
            "budget": {"min_r2": 0.999},
            "provenance": {
                "source": "trained",
                "git": produced.model_dump(),
                "mlflow": {"run_id": run.run_id, "experiment": run.experiment},
                "data": {"path": str(args.data / "train.npz"), "md5": data_md5},
                "created": dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat(),
            },
        })
        write_manifest(manifest, args.out / "module.yaml")
        run.log_artifact(args.out / "module.yaml")
        (args.out / "history.csv").write_text("step,train_loss\n" + "".join(
            f"{step},{loss:.6g}\n" for step, loss in curve))
        (args.out / "metrics.json").write_text(json.dumps(
            {**metrics, "train_cpu_s": round(energy.cpu_s, 3),
             "train_duration_s": round(energy.duration_s, 3),
             "train_energy_j": round(energy.energy_j, 3), "train_co2_kg": energy.co2_kg},
            indent=2) + "\n")
    print(f"trained {NAME}: {json.dumps(metrics)} in {energy.duration_s:.1f} s, "
          f"{energy.energy_j:.0f} J ({energy.method}), MLflow run {run.run_id}")


def _current_version(root: Path) -> str:
    """Keep the version in the working tree; `register --bump` moves it on if content changed."""
    path = root / "modules" / NAME / "module.yaml"
    if path.is_file():
        return str(yaml.safe_load(path.read_text())["version"])
    return "1.0.0"


if __name__ == "__main__":
    registry.open()  # fail early outside a registry
    main()
