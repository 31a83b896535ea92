"""The builder's overhead: a composed network against the same computation written by hand.

A static composition (no ODE) of the registered `gravity` and `drag` modules:
the vertical acceleration of a falling body, a = (F_drag - F_gravity)/m, at
batch 4096, timed side by side in one run (median over ≥0.2 s windows, several
interleaved rounds). The goal: the builder costs almost nothing (≤ 1.05×).

    .venv/bin/python benchmarks/compose.py [--batch 4096] [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

import torch

import registry
from registry.composition import Builder
from registry.cost.latency import describe_hardware, time_calls

G, M_EARTH, R_EARTH = 6.6743e-11, 5.972e24, 6.371e6


def composed_network(reg: Any) -> Any:
    return (Builder("falling-body")
            .input("y", "m", range=(0.0, 1000.0)).input("v", "m/s", range=(1.0, 60.0))
            .input("m", "kg", range=(0.1, 10.0)).input("A", "m^2", range=(0.001, 0.1))
            .input("C_d", "1", range=(0.1, 1.0)).input("rho", "kg/m^3", range=(0.5, 1.5))
            .constant("M_earth", M_EARTH, "kg").constant("R_earth", R_EARTH, "m")
            .module("gravity", "gravity@^1",
                    inputs={"m1": "M_earth", "m2": "m", "r": "R_earth + y"}, outputs={"F": "F_g"})
            .module("drag", "drag@^1", outputs={"F": "F_d"})
            .output("a", "(F_d - F_g)/m", unit="m/s^2")
            .build(reg))


def by_hand(x: torch.Tensor) -> torch.Tensor:
    y, v, m, area, c_d, rho = x.unbind(-1)
    r = R_EARTH + y
    f_g = G * M_EARTH * m / (r * r)
    f_d = 0.5 * rho * c_d * area * (v * v)
    return ((f_d - f_g) / m).unsqueeze(-1)


class ByHand(torch.nn.Module):
    """The same function as a module: what a user would otherwise write and call."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return by_hand(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    net = composed_network(registry.open())
    x = net.sample_inputs(args.batch, seed=0)
    with torch.no_grad():
        torch.testing.assert_close(net(x), by_hand(x), rtol=1e-5, atol=1e-5)
        module = ByHand()
        runs: dict[str, list[float]] = {"composed": [], "function": [], "module": []}
        for _ in range(args.rounds):  # interleaved, so drift hits all alike
            runs["composed"].append(statistics.median(time_calls(lambda: net(x))))
            runs["function"].append(statistics.median(time_calls(lambda: by_hand(x))))
            runs["module"].append(statistics.median(time_calls(lambda: module(x))))
    c, f, m = (statistics.median(runs[k]) for k in ("composed", "function", "module"))
    print(f"batch {args.batch} on {describe_hardware()}, median of {args.rounds} rounds")
    print("| implementation | µs per call | ns per sample | ÷ hand-written function |")
    print("| --- | ---: | ---: | ---: |")
    for label, t in [("composed (`registry.composition`)", c), ("hand-written torch function", f),
                     ("hand-written `nn.Module`", m)]:
        print(f"| {label} | {t * 1e6:.1f} | {t / args.batch * 1e9:.2f} | {t / f:.3f}× |")
    print(f"\ncomposed ÷ hand-written function: {c / f:.3f}×; ÷ hand-written module: {c / m:.3f}×")


if __name__ == "__main__":
    main()
