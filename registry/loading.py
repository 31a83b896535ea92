"""Loading: the torch module a resolved version describes, whatever store it came from.

The one place modules are built by kind: an equation is compiled from its
checked expressions, a network gets its verified safetensors weights, and a
composite is rebuilt from its pinned compose spec, each parent resolved
through the same `resolve` function and built the same way. `Loader` takes
that function (any store's `resolve`), so the composer never calls the api.

Example:
    >>> loader = Loader(LocalStore(root).resolve)
    >>> loader.load("drag-net@1.0.0")
    >>> loader.evaluate(loader.resolve("gravity@1.0.0"))
    {'rmse': 1.1e-17, 'nrmse': 3.2e-08, 'r2': 1.0, 'max_rel_error': 1.9e-07}
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from registry.core.manifest import MANIFEST_FILE
from registry.errors import CompositionError

if TYPE_CHECKING:
    from registry.composition.module import ComposedModule
    from registry.composition.spec import ComposeSpec
    from registry.nn.ports import PortModule
    from registry.store.base import Resolved

__all__ = ["Loader", "build_module"]


def build_module(resolved: Resolved) -> PortModule:
    """An `EquationModule` or a `NetworkModule` (weights verified) for `resolved`."""
    from registry.core.semantics import validate_equations
    from registry.nn.equation import EquationModule
    from registry.nn.network import NetworkModule
    from registry.nn.weights import load_weights

    manifest = resolved.manifest
    source = resolved.where(MANIFEST_FILE)
    inputs, outputs = list(manifest.inputs), list(manifest.outputs)
    if manifest.kind == "equation":
        equations = validate_equations(manifest, source=source)
        constants = {n: (c.value, c.trainable) for n, c in manifest.constants.items()}
        return EquationModule(equations, inputs=inputs, constants=constants)
    if manifest.kind == "network":
        assert manifest.network is not None
        network = NetworkModule(manifest.network.arch, manifest.network.config, inputs=inputs,
                                outputs=outputs, where=f"{source}: network",
                                precision=manifest.network.precision)
        weights = manifest.network.weights
        load_weights(network, resolved.read(weights.path), sha256=weights.sha256,
                     where=resolved.where(weights.path))
        network.eval()  # safe: nn.Module.eval switches off training mode; nothing is evaluated
        return network
    raise CompositionError(f"{source}: a composite is rebuilt from its compose spec by "
                           "`Loader.build`, not by `build_module`")


class Loader:
    """Builds, composes and evaluates modules, resolving references with `resolve`."""

    def __init__(self, resolve: Callable[[str], Resolved], *,
                 choose: Callable[[str], str] | None = None) -> None:
        self.resolve = resolve
        self.choose = choose  # `best(drag, max_nrmse=0.01)` -> the exact reference it picks

    def load(self, ref: str) -> PortModule:
        """The torch module `ref` resolves to, with verified weights."""
        return self.build(self.resolve(ref))

    def build(self, resolved: Resolved) -> PortModule:
        """Any kind of module; a composite from its pinned spec and trained weights."""
        manifest = resolved.manifest
        if manifest.kind != "composite":
            return build_module(resolved)
        from registry.composition.spec import read_spec

        assert manifest.composition is not None
        where = resolved.where(manifest.composition.spec)
        spec = read_spec(resolved.read(manifest.composition.spec), source=where)
        weights = manifest.composition.weights
        blob = None if weights is None else (resolved.read(weights.path), weights.sha256,
                                             resolved.where(weights.path))
        composed = self.compose(spec, source=where, weights=blob)
        composed.eval()  # safe: nn.Module.eval switches off training mode
        return composed

    def compose(self, spec: ComposeSpec | str | Path, *, source: str | None = None,
                weights: tuple[bytes, str, str] | None = None) -> ComposedModule:
        """Plan `spec` (a file, or a `ComposeSpec`) and build its network from its nodes'
        modules; trained `weights` (`data, sha256, where`) are verified and loaded last."""
        from registry.composition.graph import build_plan
        from registry.composition.module import ComposedModule
        from registry.composition.spec import load_spec

        if isinstance(spec, str | Path):
            spec = load_spec(Path(spec))
        found: dict[str, Resolved] = {}

        def planned(ref: str) -> tuple[object, str]:
            from registry.alternatives import is_best

            if is_best(ref):
                if self.choose is None:
                    raise CompositionError(f"{ref}: this store cannot list alternatives; "
                                           "pin an exact version")
                ref = self.choose(ref)
            resolved = self.resolve(ref)
            found[resolved.exact] = resolved
            return resolved.manifest, resolved.exact

        plan = build_plan(spec, resolve=planned,  # type: ignore[arg-type]
                          source=source or spec.source)
        composed = ComposedModule(plan, {node: self.build(found[exact])
                                         for node, exact in plan.pinned.items()})
        if weights is not None:
            from registry.nn.weights import load_weights

            data, sha, where = weights
            load_weights(composed, data, sha256=sha, where=where)
        return composed

    def evaluate(self, resolved: Resolved, module: PortModule | None = None) -> dict[str, float]:
        """Accuracy metrics of the module from its `evaluation` section."""
        from registry.evaluation import evaluate

        built = module if module is not None else self.build(resolved)
        return evaluate(resolved, module=built, load=self.load)
