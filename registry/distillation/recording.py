"""Recording a part of a network: the values a submodule saw, where it saw them.

A part learned inside a bigger network (a node of a composite, any submodule
of a torch model) is distilled from the inputs it was actually called with,
not from a box over their ranges: those inputs are correlated and lie on the
manifold the data visited. A forward hook on the part records every call —
inside an ODE integration too, where a composite's node runs at each RK4 stage
— while the whole network runs over its data.

Example:
    >>> rec = record_node(net, "residual", x_train)         # a composite's node
    >>> rec.calls, rec.x.shape, rec.inputs
    (2280, (456000, 3), {'vx': 'm/s', 'vy': 'm/s', 'k': '1/m'})
    >>> rec = record_submodule(model, "encoder.2", batches, inputs={"a": "m"},
    ...                        outputs={"b": "s"})          # any torch model
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from registry.errors import CompositionError, DistillationError

if TYPE_CHECKING:
    import torch

    from registry.composition.module import ComposedModule

__all__ = ["MAX_RECORDED_ROWS", "MIN_RECORDED_ROWS", "Recording", "record_node",
           "record_submodule"]

MAX_RECORDED_ROWS = 500_000  # rows kept (evenly thinned beyond): bounds memory up front
MIN_RECORDED_ROWS = 50


@dataclass(frozen=True)
class Recording:
    """The port values one part saw: `x` (rows, inputs) and `y` (rows, outputs)."""

    part: str  # what was recorded: `baseball-flight@1.0.2#residual`, or a dotted path
    inputs: dict[str, str]  # port -> unit
    outputs: dict[str, str]
    x: np.ndarray
    y: np.ndarray
    calls: int  # forward calls seen (an ODE calls a node at every stage of every step)
    rows_seen: int  # rows before thinning to MAX_RECORDED_ROWS

    def points(self) -> dict[str, np.ndarray]:
        """`{input: column}`, what the distiller fits on."""
        return {name: self.x[:, i] for i, name in enumerate(self.inputs)}

    def npz(self) -> bytes:
        """The recording as an .npz (one array per port; no pickles)."""
        buffer = io.BytesIO()
        arrays = {**self.points(), **{n: self.y[:, i] for i, n in enumerate(self.outputs)}}
        np.savez(buffer, **arrays)  # type: ignore[arg-type]
        return buffer.getvalue()

    @property
    def sha256(self) -> str:
        """A hash of the recorded values (what lineage records), independent of file layout."""
        digest = hashlib.sha256()
        for name, column in [*self.points().items(),
                             *((n, self.y[:, i]) for i, n in enumerate(self.outputs))]:
            digest.update(name.encode() + b"\0")
            digest.update(np.ascontiguousarray(column, dtype="<f8").tobytes())
        return digest.hexdigest()


class _Recorder:
    """A forward hook that keeps `(inputs, outputs)` rows of every call."""

    def __init__(self, n_in: int, n_out: int, where: str) -> None:
        self.n_in, self.n_out, self.where = n_in, n_out, where
        self.xs: list[np.ndarray] = []
        self.ys: list[np.ndarray] = []
        self.calls = 0
        self.rows = 0

    def __call__(self, _module: Any, args: tuple[Any, ...], output: Any) -> None:
        import torch

        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if not tensors or not isinstance(output, torch.Tensor):
            raise DistillationError(f"{self.where}: the part is called with "
                                    f"{[type(a).__name__ for a in args]} and returns "
                                    f"{type(output).__name__}; only parts taking and returning "
                                    "tensors can be recorded")
        x = torch.cat([t.reshape(-1, t.shape[-1]) if t.dim() > 1 else t.reshape(-1, 1)
                       for t in tensors], dim=-1)
        y = output.reshape(-1, output.shape[-1]) if output.dim() > 1 else output.reshape(-1, 1)
        if x.shape[-1] != self.n_in or y.shape[-1] != self.n_out:
            raise DistillationError(f"{self.where}: the part takes {x.shape[-1]} input columns "
                                    f"and gives {y.shape[-1]} outputs, but {self.n_in} inputs "
                                    f"and {self.n_out} outputs were named; name one unit per "
                                    "column")
        self.calls += 1
        self.rows += x.shape[0]
        self.xs.append(x.detach().to(torch.float64).cpu().numpy())
        self.ys.append(y.detach().to(torch.float64).cpu().numpy())

    def recording(self, part: str, inputs: dict[str, str],
                  outputs: dict[str, str]) -> Recording:
        if not self.xs:
            raise DistillationError(f"{self.where}: the part was never called while the network "
                                    "ran over the data; is it on the path from the inputs to "
                                    "the outputs?")
        x, y = np.concatenate(self.xs), np.concatenate(self.ys)
        if len(x) > MAX_RECORDED_ROWS:
            keep = np.linspace(0, len(x) - 1, MAX_RECORDED_ROWS).astype(np.int64)
            x, y = x[keep], y[keep]
        finite = np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1)
        if not finite.all():
            raise DistillationError(f"{self.where}: {int((~finite).sum())} of {len(x)} recorded "
                                    "rows are not finite (NaN or inf); fix the network or its "
                                    "data before distilling the part")
        if len(x) < MIN_RECORDED_ROWS:
            raise DistillationError(f"{self.where}: only {len(x)} rows were recorded, fewer "
                                    f"than the {MIN_RECORDED_ROWS} a distillation needs; run the "
                                    "network over more data")
        return Recording(part, inputs, outputs, x, y, self.calls, self.rows)


def record_submodule(model: torch.nn.Module, path: str, data: torch.Tensor | Iterable[Any], *,
                     inputs: Mapping[str, str], outputs: Mapping[str, str],
                     part: str | None = None) -> Recording:
    """Run `model` over `data` (a tensor, or an iterable of batches) and record the
    submodule at the dotted `path` (`"encoder.2"`); `inputs`/`outputs` name its columns
    with their units, in order."""
    import torch

    def run() -> None:
        for batch in [data] if isinstance(data, torch.Tensor) else data:
            model(batch)

    return _record(model, path, run, inputs=inputs, outputs=outputs, part=part or path)


def record_node(net: ComposedModule, node: str, x: torch.Tensor | None = None, *,
                states: torch.Tensor | None = None, part: str | None = None) -> Recording:
    """Record the node `node` of a composite while it runs: over `x` (its inputs, batched;
    through the ODE when it has dynamics) and, for a composite with dynamics, at `states`
    (its inputs then its state variables, the columns `ComposedModule.rates` takes: where a
    residual trained on rates was trained). Port units come from the compose spec."""
    inputs, outputs = node_units(net, node)
    if x is None and states is None:
        raise DistillationError(f"{net.plan.spec.name}#{node}: give inputs to run the "
                                "composite on (its evaluation data, or --data)")

    def run() -> None:
        if x is not None:
            net(x)
        if states is not None:
            net.rates(states)

    return _record(net, f"nodes.{node}", run, inputs=inputs, outputs=outputs,
                   part=part or f"{net.plan.spec.name}#{node}")


def _record(model: torch.nn.Module, path: str, run: Any, *, inputs: Mapping[str, str],
            outputs: Mapping[str, str], part: str) -> Recording:
    import torch

    if not inputs or not outputs:
        raise DistillationError(f"{path}: name the part's inputs and outputs with their units "
                                "(`inputs={'v': 'm/s'}`); units drive the dimensional analysis")
    missing = [n for n, u in [*inputs.items(), *outputs.items()] if not u]
    if missing:
        raise DistillationError(f"{path}: ports {missing} have no unit; give each port a unit "
                                "('1' for a dimensionless one)")
    try:
        target = model.get_submodule(path)
    except AttributeError:
        names = [n for n, _ in model.named_modules() if n][:20]
        raise DistillationError(f"{path!r}: no such submodule of {type(model).__name__}; its "
                                f"submodules include {names}") from None
    recorder = _Recorder(len(inputs), len(outputs), part)
    handle = target.register_forward_hook(recorder)
    was_training = model.training
    model.eval()  # safe: nn.Module.eval switches off training mode
    try:
        with torch.no_grad():
            run()
    finally:
        handle.remove()
        model.train(was_training)
    return recorder.recording(part, dict(inputs), dict(outputs))


def node_units(net: ComposedModule, node: str) -> tuple[dict[str, str], dict[str, str]]:
    """`({input port: unit}, {output port: unit})` of a trainable node of `net`."""
    from registry.core.units import unit_of_expression
    from registry.nn.equation import EquationModule

    spec = net.plan.spec
    if node not in spec.nodes:
        raise CompositionError(f"{spec.name}: no node `{node}`; its nodes are "
                               f"{sorted(spec.nodes)}")
    module = net.get_submodule(f"nodes.{node}")
    if isinstance(module, EquationModule):
        raise DistillationError(f"{spec.name}: node `{node}` is an equation already "
                                f"({net.plan.pinned.get(node, 'inline')}); distil a network "
                                "node")
    step = next(s for s in net.plan.steps if s.kind == "node" and s.name == node)
    ports = getattr(module, "input_names", list(step.wiring))
    units = {}
    for port in ports:
        unit = unit_of_expression(step.wiring[port], net.plan.units,
                                  where=f"{spec.name}: nodes.{node}.inputs.{port}")
        units[port] = _unit_text(unit)
    produced = {port: _unit_text(net.plan.units[name]) for port, name in step.provides.items()}
    return units, {port: produced[port] for port in getattr(module, "output_names", produced)}


def _unit_text(unit: Any) -> str:
    text = f"{unit:~C}"
    return text if text and text != "dimensionless" else "1"
