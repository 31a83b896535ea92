"""DVC stage `network-distillation`: distil the baseball composite's residual, swap it in.

1. Record the residual MLP node of the registered `baseball-flight` while the
   composite runs: through its rates at the observed training states (where it
   was trained) and through the ODE over its evaluation launches.
2. Distil the recorded values into an equation module (`baseball-lift`, the
   lift from backspin no module knew) and register it.
3. Swap it in for the MLP (`registry compose baseball-flight@^1 --replace
   residual=baseball-lift@^1`), checked end to end on the composite's test set;
   an accepted swap registers as the composite's next minor version.
4. Fly the meteorites with both networks, without retraining.

Writes `reports/network-distillation.json`; `pipelines/report.py` prints it.
A distillation that finds nothing, or a refused swap, is reported, not fatal.
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
from registry.errors import BudgetExceeded, RegistryError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseball import METEORITE_RANGES, score


def meteorite_net(reg: Any, ref: str) -> torch.nn.Module:
    """The registered composite `ref`, rebuilt for meteorites: the same modules and weights,
    a longer flight with a coarser step (as `pipelines/baseball.py` flies them)."""
    from registry.composition.spec import parse_spec

    resolved = reg.resolve(ref)
    net = reg.load(ref)
    spec = parse_spec(yaml.safe_load(resolved.read("compose.yaml")), source=ref)
    spec.dynamics.dt, spec.dynamics.max_time = 0.05, 400.0  # type: ignore[union-attr]
    spec.inputs = {k: v.model_copy(update={"range": METEORITE_RANGES[k]})
                   for k, v in spec.inputs.items()}
    meteors = reg.compose(spec)
    meteors.load_state_dict(net.state_dict())
    meteors.eval()  # safe: nn.Module.eval switches off training mode
    return meteors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    parser.add_argument("--train", type=Path, default=Path("reports/baseball-train.npz"))
    parser.add_argument("--meteorites", type=Path, default=Path("reports/meteorites.npz"))
    parser.add_argument("--out", type=Path, default=Path("reports/network-distillation.json"))
    args = parser.parse_args()
    cfg = yaml.safe_load(args.params.read_text())["network_distillation"]
    torch.manual_seed(cfg["seed"])
    reg = registry.open()
    before_ref = reg.resolve(cfg["composite"] + "@^1").exact
    with np.load(args.meteorites, allow_pickle=False) as loaded:
        meteors = {k: loaded[k] for k in loaded.files}
    report: dict[str, Any] = {"composite": before_ref, "node": cfg["node"]}

    distilled = reg.distill(before_ref, node=cfg["node"], data=[args.train], name=cfg["name"],
                            budget_s=cfg["budget_s"], tolerance=cfg["tolerance"])
    result = distilled.result
    report["distillation"] = {
        "found": result.found, "message": result.message, "equations": result.equations,
        "nrmse_against_node": {o: c.nrmse for o, c in result.chosen.items()},
        "seconds": round(result.duration_s, 1), "domain": result.to_dict().get("domain")}
    report["residual_equation"] = result.equations or None
    report["learned_drag_equation"] = None  # learning drag inside training: not built yet
    before_meteors = score(meteorite_net(reg, before_ref), meteors)
    report["meteorites"] = {"rmse_before": before_meteors["rmse"], "rmse_after": None}
    if not result.found or distilled.folder is None:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report, indent=2))
        return
    lift = reg.register(distilled.folder, bump="patch")
    report["distillation"]["registered"] = lift.tag
    try:
        swap = reg.swap(before_ref, {cfg["node"]: f"{lift.manifest.name}@{lift.manifest.version}"},
                        register=cfg["composite"])
    except BudgetExceeded as exc:
        report["swap"] = {"accepted": False, "reason": str(exc)}
    except RegistryError as exc:
        report["swap"] = {"accepted": False, "reason": f"{type(exc).__name__}: {exc}"}
    else:
        report["swap"] = swap.to_dict()
        report["baseball"] = {"test_rmse_before": swap.before["rmse"],
                              "test_rmse_after": swap.after["rmse"]}
        report["inference_flops_before"] = swap.flops_before
        report["inference_flops_after"] = swap.flops_after
        assert swap.registered is not None
        after_ref = swap.registered.replace("@v", "@", 1)
        report["meteorites"]["rmse_after"] = score(meteorite_net(reg, after_ref), meteors)["rmse"]
        report["lineage"] = reg.lineage(after_ref).to_dict()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(json.dumps({k: report.get(k) for k in ("baseball", "meteorites", "residual_equation",
                                                 "inference_flops_before",
                                                 "inference_flops_after")}, indent=2))


if __name__ == "__main__":
    main()
