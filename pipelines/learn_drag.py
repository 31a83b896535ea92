"""DVC stage `learn-drag`: learn a concept inside training, distil it, reuse it.

The harder story: a composite in which the *drag* is an MLP node — gravity is
known, the lift is the `baseball-lift` equation the previous stage distilled —
is trained only on observed trajectories (their rates). Its drag node is then
recorded where it trained and distilled into an equation module
(`learned-drag`), which is compared with the hand-written `drag` and reused,
without retraining, to fly meteorites. The comparison: the training compute of
predicting meteorites with the reused modules (the baseball training, nothing
more) against MLPs from scratch trained on meteorite data until they reach the
same error.

Writes `reports/learn-drag.json`; `pipelines/report.py` prints it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

import registry
from registry.errors import RegistryError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseball import (
    METEORITE_RANGES,
    launches,
    score,
    simulate,
    train_scratch,
)


def learned_spec(base: dict[str, Any], lift: str) -> dict[str, Any]:
    """The baseball spec with drag as an MLP node and the residual replaced by the lift."""
    spec = json.loads(json.dumps(base))
    spec["name"] = "baseball-learned-drag"
    spec["summary"] = "Baseball flight with the drag learned inside training (gravity, lift known)"
    spec["nodes"] = {
        "gravity": base["nodes"]["gravity"],
        "drag": {"mlp": {"hidden": [16, 16], "activation": "tanh"},
                 "inputs": {"rho": "rho_air", "C_d": "C_d", "A": "A", "v": "speed"},
                 "outputs": {"F_d": "N"}},
        "lift": {"module": lift, "inputs": {"vx": "vx", "vy": "vy", "k": "k"},
                 "outputs": {"a_x": "a_x", "a_y": "a_y"}},
    }
    return spec


def compare(reg: Any, learned: str, reference: str) -> dict[str, Any]:
    """The learned equation against the hand-written one: symbolic and numeric."""
    import sympy

    from registry.core.expr import parse_expression

    a, b = reg.get(learned), reg.get(reference)
    names = [*a.inputs, *a.constants]
    left = parse_expression(next(iter(a.equation.values())), names=names)
    right = parse_expression(next(iter(b.equation.values())), names=[*b.inputs, *b.constants])
    ratio = sympy.nsimplify(sympy.simplify(left / right), tolerance=1e-3, rational=True)
    rng = np.random.default_rng(0)
    points = {n: rng.uniform(*p.range, 4096) for n, p in b.inputs.items() if p.range}
    x = torch.as_tensor(np.stack([points[n] for n in a.inputs], axis=1), dtype=torch.float64)
    y = torch.as_tensor(np.stack([points[n] for n in b.inputs], axis=1), dtype=torch.float64)
    with torch.no_grad():
        got = reg.load(learned).double()(x).numpy()
        want = reg.load(reference).double()(y).numpy()
    nrmse = float(np.sqrt(np.mean((got - want) ** 2)) / np.std(want))
    return {"learned": str(left), "hand_written": str(right), "ratio": str(ratio),
            "equivalent_after_snapping": bool(ratio == 1),
            "nrmse_over_drag_ranges": nrmse}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--spec", type=Path, default=Path("pipelines/baseball.compose.yaml"))
    parser.add_argument("--train", type=Path, default=Path("reports/baseball-train.npz"))
    parser.add_argument("--meteorites", type=Path, default=Path("reports/meteorites.npz"))
    parser.add_argument("--out", type=Path, default=Path("reports/learn-drag.json"))
    args = parser.parse_args()
    cfg = yaml.safe_load(args.params.read_text())["learn_drag"]
    torch.manual_seed(cfg["seed"])
    reg = registry.open()
    report: dict[str, Any] = {}
    try:
        lift = reg.resolve(f"{cfg['lift']}@^1").exact
    except RegistryError as exc:
        report["skipped"] = f"no lift module to reuse ({exc})"
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report, indent=2))
        return
    from registry.composition.spec import parse_spec

    spec = parse_spec(learned_spec(yaml.safe_load(args.spec.read_text()), lift),
                      source="learned-drag spec")
    with np.load(args.train, allow_pickle=False) as loaded:
        observed = {k: loaded[k] for k in loaded.files}
    trained = reg.train(spec, observed, target="derivatives", max_epochs=cfg["max_epochs"],
                        batch=256, lr=cfg["lr"], target_nrmse=cfg["target_rate_nrmse"],
                        progress=False)
    with np.load("reports/baseball-test.npz", allow_pickle=False) as loaded:
        test = {k: loaded[k] for k in loaded.files}
    trained.net.eval()
    composite = reg.register_composite(
        trained.net, name=spec.name, training=trained.training_cost(),
        mlflow_run_id=trained.run_id, evaluation_data=Path("reports/baseball-test.npz"))
    composite_ref = composite.tag.replace("@v", "@", 1)
    report["composite"] = {"registered": composite.tag, "epochs": trained.result.epochs,
                           "val_rate_nrmse": trained.result.metrics["nrmse"],
                           "train_flops": trained.result.train_flops,
                           "test": score(trained.net, test)}
    distilled = reg.distill(composite_ref, node="drag", data=[args.train], name=cfg["name"],
                            budget_s=cfg["budget_s"], tolerance=cfg["tolerance"])
    result = distilled.result
    report["distillation"] = {"found": result.found, "message": result.message,
                              "equations": result.equations,
                              "seconds": round(result.duration_s, 1)}
    report["learned_drag_equation"] = result.equations or None
    if not result.found or distilled.folder is None:
        args.out.write_text(json.dumps(report, indent=2, default=float) + "\n")
        print(json.dumps(report, indent=2, default=float))
        return
    learned = reg.register(distilled.folder, bump="patch")
    learned_ref = f"{learned.manifest.name}@{learned.manifest.version}"
    report["distillation"]["registered"] = learned.tag
    report["compared_with_drag"] = compare(reg, learned_ref, "drag@^1")
    report["lineage"] = reg.lineage(learned_ref).to_dict()

    # Meteorites with the reused modules: gravity + learned drag + lift, no training at all.
    meteor_spec = json.loads(json.dumps(yaml.safe_load(args.spec.read_text())))
    meteor_spec["name"] = "meteorite-flight"
    meteor_spec["nodes"] = {
        "gravity": meteor_spec["nodes"]["gravity"],
        "drag": {"module": learned_ref,
                 "inputs": {"rho": "rho_air", "C_d": "C_d", "A": "A", "v": "speed"},
                 "outputs": {"F_d": "F_d"}},
        "lift": {"module": lift, "inputs": {"vx": "vx", "vy": "vy", "k": "k"},
                 "outputs": {"a_x": "a_x", "a_y": "a_y"}},
    }
    meteor_spec["dynamics"]["dt"], meteor_spec["dynamics"]["max_time"] = 0.05, 400.0
    for name, (low, high) in METEORITE_RANGES.items():
        meteor_spec["inputs"][name]["range"] = [low, high]
    with np.load(args.meteorites, allow_pickle=False) as loaded:
        meteors = {k: loaded[k] for k in loaded.files}
    reused = reg.compose(parse_spec(meteor_spec, source="meteorite-flight"))
    reused.eval()
    reused_score = score(reused, meteors)
    truth = {"c_lift": yaml.safe_load(args.params.read_text())["baseball"]["c_lift"],
             "dt": 0.005, "max_time": 400.0}
    train = simulate(launches(METEORITE_RANGES, cfg["n_meteorite_train"], 11), **truth)
    val = simulate(launches(METEORITE_RANGES, 200, 12), **truth)
    tried = []
    for hidden in cfg["scratch_sizes"]:
        run = train_scratch(hidden, train, val, target_rmse=reused_score["rmse"],
                            max_steps=cfg["scratch_max_steps"], seed=cfg["seed"])
        run["test"] = score(run["net"], meteors)
        tried.append({k: v for k, v in run.items() if k != "net"})
        if run["reached"]:
            break
    report["meteorites"] = {
        "reused_modules": {"rmse": reused_score["rmse"], "r2": reused_score["r2"],
                           "training_flops": report["composite"]["train_flops"],
                           "training_flops_for_meteorites": 0},
        "scratch": tried,
        "scratch_reached_reused_error": any(r["reached"] for r in tried),
    }
    args.out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(json.dumps({k: report.get(k) for k in ("learned_drag_equation", "compared_with_drag")},
                     indent=2, default=float))


if __name__ == "__main__":
    main()
