"""The teacher: a black box from named input arrays to one output array, and the
adapter that wraps a network (or any tensor callable) as one."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

__all__ = ["LoadedTeacher", "Teacher", "teacher_from_callable"]

Teacher = Callable[[Mapping[str, np.ndarray]], np.ndarray]


def teacher_from_callable(fn: Callable[..., object], inputs: list[str], output: int, *,
                          double: bool = False) -> Teacher:
    """Wrap `fn((batch, n_inputs) tensor) -> (batch, n_outputs)` as a numpy teacher
    (float32 inputs, as networks run, unless `double`)."""
    import torch

    dtype = torch.float64 if double else torch.float32

    def query(values: Mapping[str, np.ndarray]) -> np.ndarray:
        x = np.stack([np.asarray(values[n], dtype=np.float64) for n in inputs], axis=1)
        with torch.no_grad():
            out = fn(torch.as_tensor(x, dtype=dtype))
        return np.asarray(out, dtype=np.float64).reshape(len(x), -1)[:, output]

    return query


class LoadedTeacher:
    """A teacher named by `load` (a picklable callable returning the module, e.g. a
    `functools.partial` over the registry's loader and a reference): what travels to a
    worker process is that name, never the weights; each process loads the module, its
    hashes checked, on its first call. `module`: the one already built here (used in this
    process, never pickled)."""

    def __init__(self, load: Callable[[], Callable[..., object]],
                 module: Callable[..., object] | None = None) -> None:
        self.load = load
        self._module = module

    def __getstate__(self) -> dict[str, object]:
        return {"load": self.load}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.load = state["load"]  # type: ignore[assignment]
        self._module = None

    def __call__(self, x: object) -> object:
        if self._module is None:
            self._module = self.load()
        return self._module(x)
