"""Rationed measurement: fresh cost figures for a shared machine (the server's).

Measuring builds the module and times it, so a server hands it out sparingly:

- one measurement at a time per `RationedMeter` (the server holds one per
  process): a second concurrent request raises `MeasureBusy`, which says when
  to retry;
- results are cached per exact registered version for `ttl_s` seconds (at most
  `max_entries` of them; the working tree's copy is never cached);
- modules recording more than `max_params` parameters raise `MeasureRefused`:
  measure those with `registry cost REF` where they run.

Example:
    >>> meter = RationedMeter()
    >>> meter.measure(reg.resolve("gravity@1.0.0"), reg.cost).cached     # doctest: +SKIP
    False
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from registry.errors import RegistryError

if TYPE_CHECKING:
    from registry.cost.measure import ModuleCost
    from registry.store.base import Resolved

__all__ = ["CACHE_S", "CACHE_SIZE", "MAX_PARAMS", "RETRY_AFTER_S", "MeasureBusy",
           "MeasureRefused", "Measurement", "RationedMeter"]

MAX_PARAMS = 1_000_000
CACHE_S = 600.0
CACHE_SIZE = 256
RETRY_AFTER_S = 5


class MeasureRefused(RegistryError):
    """The module is too large to measure here (it records more than `max_params`)."""


class MeasureBusy(RegistryError):
    """Another measurement is running; retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int = RETRY_AFTER_S) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Measurement:
    figures: dict[str, Any]  # `ModuleCost.to_dict()`
    cached: bool


class RationedMeter:
    """Holds the measurement lock, the cache (TTL and size bound) and the parameter limit."""

    def __init__(self, *, max_params: int = MAX_PARAMS, ttl_s: float = CACHE_S,
                 max_entries: int = CACHE_SIZE, retry_after: int = RETRY_AFTER_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_params = max_params
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self.retry_after = retry_after
        self.clock = clock
        self.lock = threading.Lock()
        self.cache: dict[str, tuple[float, dict[str, Any]]] = {}

    def measure(self, resolved: Resolved, cost: Callable[[str], ModuleCost]) -> Measurement:
        """Fresh figures for `resolved` from `cost` (`Registry.cost`), or this meter's recent
        ones for the same version."""
        exact = resolved.exact
        params = resolved.manifest.cost.params
        if params is not None and params > self.max_params:
            raise MeasureRefused(f"{exact} records {params} parameters; the server measures "
                                 f"modules up to {self.max_params} only; run `registry cost "
                                 f"{exact}` on your machine")
        cacheable = resolved.commit is not None
        now = self.clock()
        hit = self.cache.get(exact) if cacheable else None
        if hit is not None and now - hit[0] < self.ttl_s:
            return Measurement(hit[1], cached=True)
        if not self.lock.acquire(blocking=False):
            raise MeasureBusy("another measurement is running on this server; retry in a few "
                              "seconds", self.retry_after)
        try:
            figures: dict[str, Any] = cost(exact).to_dict()
        finally:
            self.lock.release()
        if cacheable:
            if len(self.cache) > self.max_entries:
                self.cache.clear()
            self.cache[exact] = (now, figures)
        return Measurement(figures, cached=False)
