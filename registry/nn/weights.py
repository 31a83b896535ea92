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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from registry.core.integrity import sha256_bytes, verify
from registry.errors import IntegrityError, ManifestError

__all__ = ["MAX_SAFETENSORS_HEADER_BYTES", "MAX_WEIGHTS_BYTES", "WeightStats", "load_weights",
           "save_weights", "tensor_state", "weight_stats"]

MAX_WEIGHTS_BYTES = 1 << 30
MAX_SAFETENSORS_HEADER_BYTES = 1 << 20  # names, dtypes and shapes of a few thousand tensors


def save_weights(module: nn.Module, path: Path) -> str:
    """Write the module's state (parameters and buffers) as safetensors; returns its sha256."""
    from safetensors.torch import save

    state = {k: v.detach().contiguous().cpu() for k, v in tensor_state(module).items()}
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
        _load_tensor_state(module, state, where=where)
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
    expected = {name: tuple(t.shape) for name, t in tensor_state(module).items()}
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


# A dynamically quantized linear layer keeps its weights packed for its kernel; safetensors
# holds them as plain tensors: the int8 weight, its per-channel scales and zero points, the
# float bias.
_QUANTIZED_KEYS = ("weight", "weight_scale", "weight_zero_point", "bias")


def _quantized_layers(module: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in module.named_modules() if _is_quantized(m)}


def tensor_state(module: nn.Module) -> dict[str, torch.Tensor]:
    """The module's state as plain tensors (its `state_dict`, with int8 layers unpacked)."""
    quantized = _quantized_layers(module)
    state = {k: v for k, v in module.state_dict().items()
             if not any(k.startswith(f"{name}.") for name in quantized)}
    for name, layer in quantized.items():
        weight, bias = layer.weight(), layer.bias()  # type: ignore[operator]
        state[f"{name}.weight"] = weight.int_repr()
        state[f"{name}.weight_scale"] = weight.q_per_channel_scales().float()
        state[f"{name}.weight_zero_point"] = weight.q_per_channel_zero_points()
        state[f"{name}.bias"] = (bias if bias is not None
                                 else torch.zeros(weight.shape[0])).detach().float()
    return state


def _load_tensor_state(module: nn.Module, state: dict[str, torch.Tensor], *, where: str) -> None:
    """Load `tensor_state`'s tensors back (names and shapes were checked against the
    module's); a tensor stored in another number format than the module's is refused."""
    quantized = _quantized_layers(module)
    for name, layer in quantized.items():
        weight, scale, zero, bias = (state[f"{name}.{key}"] for key in _QUANTIZED_KEYS)
        if weight.dtype is not torch.int8:
            raise ManifestError(f"{where}: `{name}.weight` is stored as {weight.dtype}, the "
                                "layer is int8; check `network.precision`")
        qweight = torch._make_per_channel_quantized_tensor(  # the stored int8 values, as is
            weight, scale.double(), zero.long(), 0)
        layer.set_weight_bias(qweight, bias.float())  # type: ignore[operator]
    with torch.no_grad():
        for key, target in module.state_dict(keep_vars=True).items():
            if any(key.startswith(f"{name}.") for name in quantized):
                continue
            value = state[key]
            if value.dtype != target.dtype:
                raise ManifestError(f"{where}: `{key}` is stored as {value.dtype}, the module "
                                    f"runs {target.dtype}; check `network.precision`")
            target.copy_(value)


@dataclass(frozen=True)
class WeightStats:
    """What one forward call reads: the weights (and biases), how many are nonzero, their
    bytes (int8 layers: with their per-channel scales), and the zero entries of weight
    matrices (each a multiply-add that a dense kernel still executes)."""

    params: int
    nonzero: int
    bytes: int
    zero_macs: int


def weight_stats(module: nn.Module) -> WeightStats:
    """The `WeightStats` of `module` (int8 layers included)."""
    matrices: list[torch.Tensor] = []
    tensors: list[torch.Tensor] = []
    extra_bytes = 0
    for m in module.modules():
        if _is_quantized(m):
            weight, bias = m.weight(), m.bias()  # type: ignore[operator]
            matrices.append(weight.int_repr())
            tensors += [weight.int_repr(), *([bias.detach()] if bias is not None else [])]
            extra_bytes += weight.shape[0] * 4  # float32 scales, one per output channel
            continue
        own = [p.detach() for p in m.parameters(recurse=False)]
        tensors += own
        if isinstance(m, nn.Linear):
            matrices.append(m.weight.detach())
    return WeightStats(params=sum(t.numel() for t in tensors),
                       nonzero=sum(int(torch.count_nonzero(t)) for t in tensors),
                       bytes=sum(t.numel() * t.element_size() for t in tensors) + extra_bytes,
                       zero_macs=sum(int((w == 0).sum()) for w in matrices))


def _is_quantized(module: nn.Module) -> bool:
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantizedLinear

    return isinstance(module, DynamicQuantizedLinear)
