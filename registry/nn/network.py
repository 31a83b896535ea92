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

__all__ = ["ACTIVATIONS", "ARCHITECTURES", "NetworkModule", "register_architecture"]

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
        return self.net(z) * self.out_scale + self.out_shift
