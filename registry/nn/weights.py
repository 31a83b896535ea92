"""Weights as safetensors, verified by sha256 before a byte is used.

Pickled checkpoints (`torch.load`) can run code; they are never read. The size
of a weights file is bounded, and so is its safetensors header (its first 8
bytes give the header's length); the tensors the header declares must be the
module's own, name for name and shape for shape, before a tensor is allocated.

Example:
    >>> sha = save_weights(module, Path("modules/drag-net/weights.safetensors"))
    >>> load_weights(module, data, sha256=sha, where="modules/drag-net/weights.safetensors")
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from torch import nn

from registry.core.integrity import sha256_bytes, verify
from registry.errors import IntegrityError, ManifestError

__all__ = ["MAX_SAFETENSORS_HEADER_BYTES", "MAX_WEIGHTS_BYTES", "load_weights", "save_weights"]

MAX_WEIGHTS_BYTES = 1 << 30
MAX_SAFETENSORS_HEADER_BYTES = 1 << 20  # names, dtypes and shapes of a few thousand tensors


def save_weights(module: nn.Module, path: Path) -> str:
    """Write the module's state (parameters and buffers) as safetensors; returns its sha256."""
    from safetensors.torch import save

    state = {k: v.detach().contiguous().cpu() for k, v in module.state_dict().items()}
    data = save(state, metadata={"format": "pt"})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return sha256_bytes(data)


def load_weights(module: nn.Module, data: bytes, *, sha256: str, where: str) -> None:
    """Check `data` against `sha256`, then load it into `module` (strictly: same keys)."""
    if len(data) > MAX_WEIGHTS_BYTES:
        raise IntegrityError(f"{where}: {len(data)} bytes is over the limit of "
                             f"{MAX_WEIGHTS_BYTES}")
    verify(data, sha256, where=where, field="weights")
    _check_declared(module, data, where=where)
    from safetensors import SafetensorError
    from safetensors.torch import load

    try:
        state = load(data)
    except SafetensorError as exc:
        raise IntegrityError(f"{where}: not a valid safetensors file ({exc})") from None
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ManifestError(f"{where}: weights do not fit the declared architecture: "
                            f"{str(exc).splitlines()[0]}; check `network.config`") from None


def _check_declared(module: nn.Module, data: bytes, *, where: str) -> None:
    """The header's tensors are the module's (names and shapes), read before any is loaded."""
    size = int.from_bytes(data[:8], "little") if len(data) >= 8 else -1
    if size > MAX_SAFETENSORS_HEADER_BYTES:
        raise IntegrityError(f"{where}: the safetensors header declares {size:,} bytes, over "
                             f"the limit of {MAX_SAFETENSORS_HEADER_BYTES:,} "
                             "(MAX_SAFETENSORS_HEADER_BYTES in registry/nn/weights.py); write "
                             "the weights with `save_weights`")
    try:
        header: Any = json.loads(data[8:8 + size]) if 0 <= size <= len(data) - 8 else None
        declared = {name: tuple(int(d) for d in entry["shape"]) for name, entry in
                    header.items() if name != "__metadata__"}
    except (ValueError, TypeError, KeyError, AttributeError):
        raise IntegrityError(f"{where}: not a valid safetensors file (unreadable header); "
                             "write the weights with `save_weights`") from None
    expected = {name: tuple(t.shape) for name, t in module.state_dict().items()}
    if declared == expected:
        return
    unexpected = sorted(set(declared) - set(expected))
    missing = sorted(set(expected) - set(declared))
    wrong = sorted(n for n in set(declared) & set(expected) if declared[n] != expected[n])
    problem = (f"unexpected tensors {unexpected[:5]}" if unexpected else
               f"missing tensors {missing[:5]}" if missing else
               f"`{wrong[0]}` has shape {list(declared[wrong[0]])}, the architecture "
               f"{list(expected[wrong[0]])}")
    raise ManifestError(f"{where}: weights do not fit the declared architecture: {problem}; "
                        "check `network.config`")
