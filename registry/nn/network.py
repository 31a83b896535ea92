"""Network modules: registered architectures built from a manifest's config.

Architectures register themselves with a decorator, so a manifest names one by
`arch` and passes its `config`. Every network is wrapped with fixed input and
output standardisation (buffers saved with the weights), so teachers train well
on physical quantities of any scale.

Example:
    >>> @register_architecture("mlp")
    ... def mlp(n_inputs, n_outputs, *, hidden=(64, 64), activation="tanh"): ...
    >>> NetworkModule("mlp", {"hidden": [64, 64]}, inputs=["v"], outputs=["F"])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from registry.core.limits import DEFAULT_HIDDEN, MAX_HIDDEN_WIDTH, check_network
from registry.errors import ManifestError
from registry.nn.ports import PortModule

__all__ = ["ACTIVATIONS", "ARCHITECTURES", "PRECISIONS", "NetworkModule", "quantize_linear_layers",
           "register_architecture"]

Builder = Callable[..., nn.Module]
ARCHITECTURES: dict[str, Builder] = {}

ACTIVATIONS: dict[str, Callable[[], nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
}


# the number formats a network may be stored and run in (the manifest's `network.precision`)
PRECISIONS = ("float32", "float16", "bfloat16", "int8")
_FLOAT_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def quantize_linear_layers(net: nn.Module) -> nn.Module:
    """`net` with its `nn.Linear` layers dynamically quantized to int8 in place (weights
    per output channel, activations per call), as `torch.ao.quantization` does. With three
    or more linear layers the first and the last stay float32 (the common recipe: the
    inputs and the output are where 8 bits cost most accuracy; in the shrink-drag-net stage
    quantizing them too made the error against the teacher 0.0169 instead of 0.0066)."""
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    linear = [name for name, m in net.named_children() if isinstance(m, nn.Linear)]
    chosen = linear[1:-1] if len(linear) >= 3 else linear
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(net, dict.fromkeys(chosen, per_channel_dynamic_qconfig),
                                inplace=True)


def register_architecture(name: str) -> Callable[[Builder], Builder]:
    """Register `builder(n_inputs, n_outputs, **config) -> nn.Module` under `name`."""

    def decorate(builder: Builder) -> Builder:
        ARCHITECTURES[name] = builder
        return builder

    return decorate


@register_architecture("mlp")
def mlp(n_inputs: int, n_outputs: int, *, hidden: Sequence[int] = DEFAULT_HIDDEN,
        activation: str = "tanh") -> nn.Module:
    """A fully connected network: `n_inputs → hidden[0] → … → n_outputs`, within the limits
    of `registry.core.limits` (counted before a layer is allocated)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation {activation!r} is unknown; use one of {sorted(ACTIVATIONS)}")
    if not hidden or any(not isinstance(h, int) or isinstance(h, bool) or h < 1
                         for h in hidden):
        raise ValueError(f"hidden must be a list of layer widths from 1 to {MAX_HIDDEN_WIDTH}, "
                         f"got {hidden!r}")
    check_network("mlp", {"hidden": list(hidden)}, n_inputs, n_outputs)  # counted, not built
    layers: list[nn.Module] = []
    width = n_inputs
    for size in hidden:
        layers += [nn.Linear(width, size), ACTIVATIONS[activation]()]
        width = size
    layers.append(nn.Linear(width, n_outputs))
    return nn.Sequential(*layers)


class NetworkModule(PortModule):
    """A registered architecture between input and output standardisation."""

    input_dtype = torch.float32  # inputs are standardised in float32, whatever the weights are
    in_shift: torch.Tensor
    in_scale: torch.Tensor
    out_shift: torch.Tensor
    out_scale: torch.Tensor

    def __init__(
        self,
        arch: str,
        config: Mapping[str, Any],
        *,
        inputs: list[str],
        outputs: list[str],
        where: str = "network",
        precision: str = "float32",
    ) -> None:
        super().__init__(inputs, outputs)
        if arch not in ARCHITECTURES:
            raise ManifestError(f"{where}.arch: unknown architecture {arch!r}; registered: "
                                f"{sorted(ARCHITECTURES)}")
        self.arch = arch
        self.config = dict(config)
        try:
            self.net = ARCHITECTURES[arch](len(inputs), len(outputs), **self.config)
        except (TypeError, ValueError) as exc:
            raise ManifestError(f"{where}.config: {exc}; fix the config of `{arch}`") from None
        if precision not in PRECISIONS:
            raise ManifestError(f"{where}.precision: {precision!r} is not one of {PRECISIONS}")
        self.precision = precision
        self.compute_dtype = _FLOAT_DTYPES.get(precision, torch.float32)
        if precision == "int8":
            self.net.eval()  # safe: nn.Module.eval switches off training mode
            quantize_linear_layers(self.net)
        elif precision != "float32":
            self.net.to(self.compute_dtype)
        self.register_buffer("in_shift", torch.zeros(len(inputs)))
        self.register_buffer("in_scale", torch.ones(len(inputs)))
        self.register_buffer("out_shift", torch.zeros(len(outputs)))
        self.register_buffer("out_scale", torch.ones(len(outputs)))

    def set_standardisation(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Fit the input/output shifts and scales to training data."""
        self.in_shift.copy_(x.mean(0))
        self.in_scale.copy_(x.std(0).clamp_min(1e-12))
        self.out_shift.copy_(y.mean(0))
        self.out_scale.copy_(y.std(0).clamp_min(1e-12))

    def forward_tensor(self, x: torch.Tensor) -> torch.Tensor:
        z = (x - self.in_shift) / self.in_scale
        if self.compute_dtype is not torch.float32:  # float16 / bfloat16 weights
            return self.net(z.to(self.compute_dtype)).to(z.dtype) * self.out_scale + self.out_shift
        if self.precision == "int8" and z.dtype is not torch.float32:
            return self.net(z.float()).to(z.dtype) * self.out_scale + self.out_shift
        return self.net(z) * self.out_scale + self.out_shift
