"""Fusing an equation module's elementwise ops into one kernel with `torch.compile`.

Eager torch runs each op of an equation as its own pass over memory; at large
batch that is several times slower than copying the inputs once. Inductor
fuses them into one loop (it needs a C++ compiler on CPU). Where compiling is
impossible or fails, the eager module is returned and a warning says why.

Example:
    >>> fast = fuse(reg.load("drag@^1"))
    >>> fast(x)   # first call compiles (seconds), later calls run fused
"""

from __future__ import annotations

import shutil
import warnings

import torch
from torch import nn

__all__ = ["fuse"]


def fuse(module: nn.Module, *, probe: torch.Tensor | None = None) -> nn.Module:
    """`torch.compile(module)` when it compiles and agrees with eager on `probe`; else `module`."""
    if not any(shutil.which(cxx) for cxx in ("c++", "g++", "clang++")):
        warnings.warn("no C++ compiler found: running the equation module eagerly (unfused)",
                      RuntimeWarning, stacklevel=2)
        return module
    # Static shapes give inductor the fastest loops; a new batch size recompiles once.
    compiled = torch.compile(module, dynamic=False)
    if probe is None:
        return compiled  # type: ignore[return-value]
    try:
        with torch.no_grad():
            same = torch.allclose(compiled(probe), module(probe), rtol=1e-5, atol=0.0)
    except Exception as exc:  # any compiler failure means: stay eager
        warnings.warn(f"torch.compile failed ({type(exc).__name__}: {exc}); running eagerly",
                      RuntimeWarning, stacklevel=2)
        return module
    if not same:
        warnings.warn("the compiled module disagrees with eager; running eagerly",
                      RuntimeWarning, stacklevel=2)
        return module
    return compiled  # type: ignore[return-value]
