"""Counting a fixed-step integrator from its first steps.

Counting a composite with dynamics by running its whole ODE under the FLOP counter
costs seconds (baseball-flight: 2,280 rate evaluations under `FlopCounterMode`), and
the count is the same every step: the same ops on tensors of the same shapes. While
`StepExtrapolation` is active (the FLOP counter sets it), `composition.ode.integrate`
runs its first two steps under the counter (the FLOP counter's, or the modeled
energy's recorder of arithmetic and bytes), takes each op's count from them (step 0
holds the "has every sample stopped?" check that runs every few steps, step 1 does
not), runs the rest outside the counter (in a helper thread: dispatch modes are
thread-local) and adds their count here: `steps × step 1` plus `checks × (step 0 −
step 1)`. The history those steps leave behind, and everything after the integration
(the event interpolation, the outputs, a backward pass), is counted as it runs. Tests
hold the result equal to the full count (`tests/test_flops_extrapolation.py`), forward
and backward, op by op. One difference: the backward pass's in-place gradient
accumulation (`add_`, which has no formula and counts 0 either way) is not listed among
the uncounted ops for the steps run in the helper thread.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["ACTIVE", "StepExtrapolation", "uncounted"]

T = TypeVar("T")


@dataclass
class StepExtrapolation:
    snapshot: Callable[[], Counter[Any]]  # the counter's totals so far (per op, or any key)
    extra: Counter[Any] = field(default_factory=Counter)  # counts run outside the counter

    def add_steps(self, before: Counter[Any], after_first: Counter[Any],
                  after_second: Counter[Any], steps: int, checks: int) -> None:
        """Add `steps` more steps like the second, `checks` of them also holding the first
        step's extra work."""
        for op in set(before) | set(after_first) | set(after_second):
            first = after_first[op] - before[op]
            second = after_second[op] - after_first[op]
            self.extra[op] += steps * second + checks * (first - second)


ACTIVE: ContextVar[StepExtrapolation | None] = ContextVar("registry_step_extrapolation",
                                                          default=None)


def uncounted(work: Callable[[], T]) -> T:
    """`work()` in a helper thread (outside the caller's dispatch modes), with the caller's
    grad mode; its exceptions are raised here."""
    import torch

    grad = torch.is_grad_enabled()
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            with torch.set_grad_enabled(grad):
                result.append(work())
        except BaseException as exc:  # re-raised in the caller's thread
            error.append(exc)

    worker = threading.Thread(target=run, name="registry-uncounted-steps")
    worker.start()
    worker.join()
    if error:
        raise error[0]
    return result[0]
