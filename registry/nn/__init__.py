"""Torch modules built from manifests: equations, networks (imports torch)."""

from registry.nn.equation import EquationModule, register_torch_op
from registry.nn.network import ARCHITECTURES, NetworkModule, register_architecture
from registry.nn.ports import PortModule

__all__ = [
    "ARCHITECTURES",
    "EquationModule",
    "NetworkModule",
    "PortModule",
    "register_architecture",
    "register_torch_op",
]
