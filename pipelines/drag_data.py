"""Sample the registered `drag` equation over its input ranges: training and test data.

The truth comes from the registry itself (`drag@^1`, evaluated in float64), so
the teacher learns exactly the module it will later be distilled back into.

    python pipelines/drag_data.py --out data/drag
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
import yaml

import registry
from registry.core.manifest import Sample
from registry.evaluation import sample_inputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data/drag"))
    parser.add_argument("--params", type=Path, default=Path("params.yaml"))
    args = parser.parse_args()
    params = yaml.safe_load(args.params.read_text())["drag_data"]

    reg = registry.open()
    manifest = reg.get("drag@^1")
    module = reg.load("drag@^1").double()
    args.out.mkdir(parents=True, exist_ok=True)
    splits = {"train": (params["n_train"], params["seed"]),
              "test": (params["n_test"], params["seed"] + 1)}
    for split, (n, seed) in splits.items():
        x = sample_inputs(manifest, Sample(n=n, seed=seed), where="drag")
        with torch.no_grad():
            y = module(torch.as_tensor(x)).numpy()
        arrays = {name: x[:, i] for i, name in enumerate(manifest.inputs)}
        arrays.update({name: y[:, j] for j, name in enumerate(manifest.outputs)})
        np.savez(args.out / f"{split}.npz", **arrays)
        print(f"wrote {args.out / f'{split}.npz'}: {n} samples of {manifest.ref}")


if __name__ == "__main__":
    main()
