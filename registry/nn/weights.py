"""Weights as safetensors, verified by sha256 before a byte is used.

Pickled checkpoints (`torch.load`) can run code; they are never read. The size
of a weights file is bounded.

Example:
    >>> sha = save_weights(module, Path("modules/drag-net/weights.safetensors"))
    >>> load_weights(module, data, sha256=sha, where="modules/drag-net/weights.safetensors")
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from registry.core.integrity import sha256_bytes, verify
from registry.errors import IntegrityError, ManifestError

__all__ = ["MAX_WEIGHTS_BYTES", "load_weights", "save_weights"]

MAX_WEIGHTS_BYTES = 1 << 30


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
