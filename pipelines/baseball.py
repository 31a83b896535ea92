"""Baseballs, then meteorites: physics modules + a learned residual against an MLP from scratch.

1. A true simulator (float64 RK4, dt = 1 ms) flies projectiles under gravity,
   quadratic drag in an exponential atmosphere, and lift from backspin (the
   effect no registered module knows).
2. (a) `pipelines/baseball.compose.yaml`: gravity + drag from the registry and a
   16×16 residual MLP, trained on the rates along observed trajectories
   (`target: derivatives`: no integration in the loop), then used end to end.
   (b) MLPs from scratch mapping launch conditions to landing distance, grown
   until they reach (a)'s test error on baseballs or the size budget runs out.
   Both: test error, training FLOPs, CPU-seconds, estimated joules, parameters,
   inference FLOPs.
3. The same modules and trained residual fly meteorites (different masses,
   sizes, speeds, altitudes, so air densities); both models are scored there
   without retraining.

    python pipelines/baseball.py --out reports/baseball.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

import registry
from registry.composition.spec import load_spec
from registry.cost.energy import track_energy
from registry.cost.flops import count_module_flops
from registry.cost.measure import to_modeled
from registry.cost.modeled import model_energy
from registry.evaluation import compute_metrics
from registry.mlflow.tracking import mlflow_run
from registry.nn.network import NetworkModule

G, M_EARTH, R_EARTH, RHO0, H = 6.6743e-11, 5.972e24, 6.371e6, 1.225, 8500.0
INPUTS = ["v0", "angle", "h0", "m", "A", "C_d"]
METEORITE_RANGES = {"v0": (150.0, 400.0), "angle": (-0.6, -0.1), "h0": (3000.0, 6000.0),
                    "m": (0.5, 5.0), "A": (0.003, 0.02), "C_d": (0.4, 0.6)}


def launches(ranges: dict[str, tuple[float, float]], n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.uniform(*ranges[k], size=n) for k in INPUTS}


def simulate(p: dict[str, np.ndarray], *, c_lift: float, dt: float, max_time: float,
             observe_every: int = 0) -> dict[str, np.ndarray]:
    """Fly every launch in `p`; the landing distance, and (optionally) observed states + rates."""

    def rates(s: np.ndarray) -> np.ndarray:
        _, y, vx, vy = s
        speed = np.sqrt(vx**2 + vy**2)
        rho = RHO0 * np.exp(-y / H)
        drag = 0.5 * rho * p["C_d"] * p["A"] * speed / p["m"]
        lift = 0.5 * rho * p["A"] * c_lift * speed / p["m"]  # backspin: perpendicular to v
        gravity = G * M_EARTH / (R_EARTH + y) ** 2
        return np.stack([vx, vy, -drag * vx - lift * vy, -gravity - drag * vy + lift * vx])

    s = np.stack([np.zeros_like(p["v0"]), p["h0"], p["v0"] * np.cos(p["angle"]),
                  p["v0"] * np.sin(p["angle"])])
    landed = np.full(s.shape[1], np.nan)
    seen: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for step in range(math.ceil(max_time / dt)):
        if observe_every and step % observe_every == 0:
            flying = np.isnan(landed)
            seen.append((np.flatnonzero(flying), s[:, flying], rates(s)[:, flying]))
        k1 = rates(s)
        k2 = rates(s + dt / 2 * k1)
        k3 = rates(s + dt / 2 * k2)
        k4 = rates(s + dt * k3)
        new = s + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        fell = np.isnan(landed) & (s[1] > 0) & (new[1] <= 0)
        w = s[1, fell] / (s[1, fell] - new[1, fell])
        landed[fell] = s[0, fell] + w * (new[0, fell] - s[0, fell])
        s = new
        if not np.isnan(landed).any():
            break
    out = {**p, "distance": landed}
    if observe_every:
        index = np.concatenate([i for i, _, _ in seen])
        states = np.concatenate([st for _, st, _ in seen], axis=1)
        rate = np.concatenate([r for _, _, r in seen], axis=1)
        out = {**{k: v[index] for k, v in p.items()},
               **dict(zip(["x", "y", "vx", "vy"], states, strict=True)),
               **{f"d_{n}": r for n, r in zip(["x", "y", "vx", "vy"], rate, strict=True)}}
    return out


def as_x(data: dict[str, np.ndarray]) -> torch.Tensor:
    return torch.as_tensor(np.stack([data[k] for k in INPUTS], axis=1), dtype=torch.float32)


def score(model: torch.nn.Module, data: dict[str, np.ndarray],
          chunk: int = 512) -> dict[str, float]:
    with torch.no_grad():
        x = as_x(data)
        predicted = torch.cat([model(x[i:i + chunk]) for i in range(0, len(x), chunk)])
    metrics = compute_metrics(predicted.double().numpy(), data["distance"][:, None])
    return {**metrics, "mae": float(np.mean(np.abs(predicted.numpy()[:, 0] - data["distance"])))}


def train_scratch(hidden: list[int], train: dict[str, np.ndarray], val: dict[str, np.ndarray],
                  *, target_rmse: float, max_steps: int, seed: int) -> dict[str, Any]:
    """An MLP from scratch on (launch → distance); stops once validation RMSE ≤ target."""
    torch.manual_seed(seed)
    net = NetworkModule("mlp", {"hidden": hidden, "activation": "tanh"}, inputs=INPUTS,
                        outputs=["distance"])
    x, y = as_x(train), torch.as_tensor(train["distance"][:, None], dtype=torch.float32)
    net.set_standardisation(x, y)
    optimiser = torch.optim.Adam(net.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    per_sample = count_module_flops(net, x[:16]).forward_backward or 0
    steps, batch, best = 0, 256, math.inf
    modeled = model_energy(net, x[:batch], backward=True)  # forward+backward, one batch
    name = "x".join(map(str, hidden))
    with mlflow_run("baseball-scratch", root=registry.open().root, run_name=f"scratch-{name}",
                    params={"hidden": hidden, "max_steps": max_steps, "batch": batch,
                            "lr": 3e-3, "seed": seed, "target_rmse": target_rmse}) as run:
        with track_energy() as tracker:
            while steps < max_steps:
                idx = torch.randint(0, len(x), (batch,), generator=generator)
                loss = torch.mean(((net(x[idx]) - y[idx]) / net.out_scale) ** 2)
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
                steps += 1
                if steps % 250 == 0:
                    best = min(best, score(net, val)["rmse"])
                    run.log_metric("val_rmse", best, step=steps)
                    if best <= target_rmse:
                        break
        energy = tracker.report
        assert energy is not None
        run.log_metrics({"train_energy_j": energy.energy_j, "train_cpu_s": energy.cpu_s,
                         "train_flops": float(per_sample * steps * batch)})
        run.set_tags({"energy_method": energy.method})
    return {"net": net, "hidden": hidden, "steps": steps, "reached": best <= target_rmse,
            "val_rmse": best, "train_flops": float(per_sample * steps * batch),
            "train_energy_modeled_j": modeled.j_per_sample * steps * batch,
            "train_cpu_s": energy.cpu_s, "train_energy_j": energy.energy_j,
            "energy_method": energy.method, "params": sum(p.numel() for p in net.parameters())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=Path("pipelines/baseball.compose.yaml"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--out", type=Path, default=Path("reports/baseball.json"))
    parser.add_argument("--register", default="baseball-flight")
    args = parser.parse_args()
    cfg = yaml.safe_load(args.params.read_text())["baseball"]
    torch.manual_seed(cfg["seed"])
    reg = registry.open()
    spec = load_spec(args.spec)
    ranges = {k: tuple(spec.inputs[k].range) for k in INPUTS}  # type: ignore[arg-type]
    truth = {"c_lift": cfg["c_lift"], "dt": 1e-3, "max_time": 15.0}

    wall = time.perf_counter()
    observed = simulate(launches(ranges, cfg["n_trajectories"], 1), observe_every=50, **truth)
    scratch_train = simulate(launches(ranges, cfg["n_scratch_launches"], 2), **truth)
    scratch_val = simulate(launches(ranges, 400, 3), **truth)
    test = simulate(launches(ranges, cfg["n_test"], 4), **truth)
    meteors = simulate(launches(METEORITE_RANGES, cfg["n_meteorites"], 5), c_lift=cfg["c_lift"],
                       dt=0.005, max_time=400.0)
    simulated_s = time.perf_counter() - wall
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out.with_name("baseball-test.npz"), **test)
    # For the network-distillation stage: where the residual trained, and meteorites.
    np.savez(args.out.with_name("baseball-train.npz"), **observed)
    np.savez(args.out.with_name("meteorites.npz"), **meteors)

    # (a) the composite: physics from the registry, only the residual trains.
    trained = reg.train(
        spec, observed, target="derivatives", max_epochs=cfg["max_epochs"], batch=256,
        lr=cfg["lr"], target_nrmse=cfg["target_rate_nrmse"], progress=False)
    composite, result, energy, run_id = trained.net, trained.result, trained.energy, trained.run_id
    composite.eval()
    composite_test = score(composite, test)
    inference_flops = count_module_flops(composite, as_x(test)[:16], backward=False).forward

    # (b) from scratch, as large as needed to reach (a)'s test error.
    tried = []
    for hidden in cfg["scratch_sizes"]:
        run = train_scratch(hidden, scratch_train, scratch_val,
                            target_rmse=composite_test["rmse"], max_steps=cfg["scratch_max_steps"],
                            seed=cfg["seed"])
        run["test"] = score(run["net"], test)
        tried.append(run)
        if run["reached"]:
            break
    chosen = next((r for r in tried if r["reached"]), min(tried, key=lambda r: r["val_rmse"]))

    # 3. Meteorites: the same modules and residual, different bodies and atmosphere.
    meteor_spec = spec.model_copy(deep=True)
    meteor_spec.dynamics.dt, meteor_spec.dynamics.max_time = 0.05, 400.0  # type: ignore[union-attr]
    meteor_spec.inputs = {k: v.model_copy(update={"range": METEORITE_RANGES[k]})
                          for k, v in spec.inputs.items()}
    meteor_net = reg.compose(meteor_spec)
    meteor_net.load_state_dict(composite.state_dict())
    meteor_net.eval()

    training = energy.to_training_cost().model_copy(update={
        "flops": result.train_flops,
        "energy_modeled": to_modeled(result.modeled_per_sample, samples=result.samples_seen)})
    registered = reg.register_composite(composite, name=args.register, training=training,
                                        mlflow_run_id=run_id,
                                        evaluation_data=args.out.with_name("baseball-test.npz"))
    report = {
        "simulated_s": round(simulated_s, 1),
        "data": {"observed_states": len(observed["x"]), "trajectories": cfg["n_trajectories"],
                 "scratch_launches": cfg["n_scratch_launches"], "test_launches": cfg["n_test"],
                 "meteorites": cfg["n_meteorites"]},
        "composite": {
            "registered": registered.tag, "epochs": result.epochs,
            "val_rate_nrmse": result.metrics["nrmse"], "test": composite_test,
            "train_flops": result.train_flops, "train_cpu_s": energy.cpu_s,
            "train_energy_modeled_j": result.modeled_energy_j,
            "train_energy_j": energy.energy_j, "energy_method": energy.method,
            "trainable_params": sum(p.numel() for p in composite.parameters() if p.requires_grad),
            "inference_flops": inference_flops, "meteorites": score(meteor_net, meteors),
        },
        "scratch": {
            "tried": [{k: v for k, v in r.items() if k != "net"} for r in tried],
            "chosen_hidden": chosen["hidden"], "reached_composite_error": chosen["reached"],
            "test": chosen["test"], "train_flops": chosen["train_flops"],
            "train_energy_modeled_j": chosen["train_energy_modeled_j"],
            "train_cpu_s": chosen["train_cpu_s"], "train_energy_j": chosen["train_energy_j"],
            "params": chosen["params"],
            "inference_flops": count_module_flops(chosen["net"], as_x(test)[:16],
                                                  backward=False).forward,
            "meteorites": score(chosen["net"], meteors),
        },
    }
    report["ratios"] = {
        "training_flops_scratch_over_composite":
            report["scratch"]["train_flops"] / report["composite"]["train_flops"],
        "training_energy_modeled_scratch_over_composite":
            report["scratch"]["train_energy_modeled_j"]
            / report["composite"]["train_energy_modeled_j"],
        "training_cpu_s_scratch_over_composite":
            report["scratch"]["train_cpu_s"] / report["composite"]["train_cpu_s"],
        "meteorite_rmse_scratch_over_composite":
            report["scratch"]["meteorites"]["rmse"] / report["composite"]["meteorites"]["rmse"],
    }
    args.out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    args.out.with_name("baseball-history.csv").write_text(
        "epoch,val_rate_nrmse\n" + "".join(f"{i},{v:.6g}\n"
                                           for i, v in enumerate(result.history, 1)))
    print(json.dumps({"composite": report["composite"]["test"], "scratch": chosen["test"],
                      "ratios": report["ratios"]}, indent=2))


if __name__ == "__main__":
    main()
