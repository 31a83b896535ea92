"""Build the torch module a manifest describes, reading its files from a version.

Example:
    >>> module = build_module(store.resolve("drag-net@1.0.0"))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from registry.errors import CompositionError
from registry.nn.equation import EquationModule
from registry.nn.network import NetworkModule
from registry.nn.ports import PortModule
from registry.nn.weights import load_weights
from registry.validation import validate_equations

if TYPE_CHECKING:
    from registry.store.store import Resolved

__all__ = ["build_module"]


def build_module(resolved: Resolved) -> PortModule:
    """An `EquationModule` or a `NetworkModule` (weights verified) for `resolved`."""
    manifest = resolved.manifest
    source = resolved.where("module.yaml")
    inputs, outputs = list(manifest.inputs), list(manifest.outputs)
    if manifest.kind == "equation":
        equations = validate_equations(manifest, source=source)
        constants = {n: (c.value, c.trainable) for n, c in manifest.constants.items()}
        return EquationModule(equations, inputs=inputs, constants=constants)
    if manifest.kind == "network":
        assert manifest.network is not None
        network = NetworkModule(manifest.network.arch, manifest.network.config, inputs=inputs,
                                outputs=outputs, where=f"{source}: network")
        weights = manifest.network.weights
        load_weights(network, resolved.read(weights.path), sha256=weights.sha256,
                     where=resolved.where(weights.path))
        network.eval()  # safe: nn.Module.eval switches off training mode; nothing is evaluated
        return network
    raise CompositionError(f"{source}: a composite is rebuilt from its compose spec by "
                           "`Registry.load` (registry.api), not by `build_module`")
