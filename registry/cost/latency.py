"""Latency per sample: warm up, then time calls until the window reaches 0.2 s.

Reports the median time per sample and the spread (interquartile range over
median) across calls, with the batch size, thread count and CPU recorded: a
latency is only meaningful with the machine it was measured on.

Example:
    >>> measure_latency(module, x).ns_per_sample
    3.1
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Latency", "describe_hardware", "measure_latency", "side_by_side", "time_calls"]

MIN_WINDOW_S = 0.2


@dataclass(frozen=True)
class Latency:
    ns_per_sample: float
    spread: float  # interquartile range / median, over the timed calls
    batch: int
    calls: int
    hardware: str

    def to_dict(self) -> dict[str, Any]:
        return {"value": self.ns_per_sample, "batch": self.batch, "spread": self.spread,
                "method": f"median of {self.calls} calls", "hardware": self.hardware}


@functools.cache
def describe_hardware() -> str:
    """The CPU, its logical CPUs and torch's thread count, e.g. `AMD EPYC 7B13 (2 logical CPUs),
    torch 2.13.0 with 2 threads`."""
    import torch

    from registry.cost.energy import describe_cpu

    version = torch.__version__.split("+")[0]
    return f"{describe_cpu()}, torch {version} with {torch.get_num_threads()} threads"


def time_calls(call: Callable[[], Any], *, min_window_s: float = MIN_WINDOW_S, warmup: int = 3,
               min_calls: int = 5, max_calls: int = 1_000_000) -> list[float]:
    """Seconds per call of `call`, after `warmup`, until the timed total reaches `min_window_s`."""
    for _ in range(warmup):
        call()
    times: list[float] = []
    total = 0.0
    while (total < min_window_s or len(times) < min_calls) and len(times) < max_calls:
        start = time.perf_counter()
        call()
        elapsed = time.perf_counter() - start
        times.append(elapsed)
        total += elapsed
    return times


def measure_latency(module: Callable[[Any], Any], x: Any, *,
                    min_window_s: float = MIN_WINDOW_S) -> Latency:
    """Median latency per sample of `module(x)` (no autograd), batch = `len(x)`."""
    import torch

    with torch.no_grad():
        times = time_calls(lambda: module(x), min_window_s=min_window_s)
    median = statistics.median(times)
    q1, _, q3 = statistics.quantiles(times, n=4) if len(times) >= 4 else (median,) * 3
    batch = len(x)
    return Latency(ns_per_sample=median / batch * 1e9, spread=(q3 - q1) / median if median else 0.0,
                   batch=batch, calls=len(times), hardware=describe_hardware())


def side_by_side(modules: dict[str, Callable[[Any], Any]], x: Any, *, rounds: int = 3,
                 min_window_s: float = MIN_WINDOW_S) -> dict[str, Latency]:
    """Each module's latency on `x`, measured in `rounds` interleaved turns (the machine's
    load falls on all alike); the median turn of each, by ns per sample."""
    turns: dict[str, list[Latency]] = {name: [] for name in modules}
    for _ in range(max(rounds, 1)):
        for name, module in modules.items():
            turns[name].append(measure_latency(module, x, min_window_s=min_window_s))
    return {name: sorted(found, key=lambda lat: lat.ns_per_sample)[len(found) // 2]
            for name, found in turns.items()}
