"""The common interface of every loaded module: named ports, two calling styles.

A `PortModule` maps a `(batch, n_inputs)` tensor to `(batch, n_outputs)`, with
columns in the manifest's port order, and also a dict of tensors keyed by input
name to a dict keyed by output name.

Example:
    >>> gravity({"m1": m1, "m2": m2, "r": r})["F"]
    >>> gravity(torch.stack([m1, m2, r], dim=1))[:, 0]
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

__all__ = ["PortModule"]


class PortModule(nn.Module):
    """Base of equation, network and composite modules."""

    def __init__(self, input_names: list[str], output_names: list[str]) -> None:
        super().__init__()
        self.input_names = list(input_names)
        self.output_names = list(output_names)

    def forward_tensor(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(
        self, x: torch.Tensor | Mapping[str, torch.Tensor]
    ) -> torch.Tensor | dict[str, torch.Tensor]:
        if isinstance(x, Mapping):
            missing = [n for n in self.input_names if n not in x]
            if missing:
                raise KeyError(f"missing inputs {missing}; `{type(self).__name__}` takes "
                               f"{self.input_names}")
            stacked = torch.stack([torch.as_tensor(x[n]) for n in self.input_names], dim=-1)
            out = self.forward_tensor(stacked)
            return {name: out[..., i] for i, name in enumerate(self.output_names)}
        if x.shape[-1] != len(self.input_names):
            raise ValueError(f"expected a (batch, {len(self.input_names)}) tensor with columns "
                             f"{self.input_names}, got shape {tuple(x.shape)}")
        return self.forward_tensor(x)

    def extra_repr(self) -> str:
        return f"inputs={self.input_names}, outputs={self.output_names}"
