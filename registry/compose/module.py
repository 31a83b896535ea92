"""The composed network: a `torch.nn.Module` evaluating a checked `Plan`.

Equation nodes are frozen unless the spec says `train: constants`; network and
inline `mlp` nodes train unless `train: false`. With `dynamics`, the nodes and
expressions form the right-hand side of an ODE integrated by RK4, and the
outputs are read at the stop event.

Example:
    >>> net = ComposedModule(plan, modules={"gravity": gravity, "drag": drag})
    >>> net(torch.tensor([[35.0, 0.6]]))      # (batch, inputs) -> (batch, outputs)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

import torch
from torch import nn

from registry.compose.graph import Plan
from registry.compose.ode import integrate
from registry.nn.equation import EquationModule, compile_expression
from registry.nn.network import NetworkModule
from registry.nn.ports import PortModule

__all__ = ["ComposedModule"]


class ComposedModule(PortModule):
    """Modules wired by a compose spec, itself a module with ports."""

    def __init__(self, plan: Plan, modules: Mapping[str, PortModule]) -> None:
        spec = plan.spec
        super().__init__(plan.input_names, list(spec.outputs))
        self.plan = plan
        self.nodes = nn.ModuleDict()
        for name, node in spec.nodes.items():
            if node.mlp is not None:
                block = NetworkModule("mlp", {"hidden": node.mlp.hidden,
                                              "activation": node.mlp.activation},
                                      inputs=list(node.inputs), outputs=list(node.outputs),
                                      where=f"nodes.{name}.mlp")
                if node.mlp.zero_init:
                    last = cast(nn.Linear, cast(nn.Sequential, block.net)[-1])
                    nn.init.zeros_(last.weight)
                    nn.init.zeros_(last.bias)
                self.nodes[name] = block
            else:
                self.nodes[name] = _with_training(modules[name], node.train)
        self.constant_names = list(spec.constants)
        for name, constant in spec.constants.items():
            self.register_buffer(f"const_{name}", torch.tensor(constant.value))
        self._steps = [(step, {k: compile_expression(v) for k, v in step.wiring.items()})
                       for step in plan.steps]
        self._initial = {k: compile_expression(v) for k, v in plan.initial.items()}
        self._derivatives = {k: compile_expression(v) for k, v in plan.derivatives.items()}
        self._outputs = {k: compile_expression(v) for k, v in plan.outputs.items()}

    def sample_inputs(self, n: int, *, seed: int = 0) -> torch.Tensor:
        """`(n, inputs)` uniform over the declared input ranges (1.0 where none is declared)."""
        generator = torch.Generator().manual_seed(seed)
        columns = []
        for port in self.plan.inputs.values():
            low, high = port.range or (1.0, 1.0)
            columns.append(low + (high - low) * torch.rand(n, generator=generator))
        return torch.stack(columns, dim=1)

    def summary(self) -> dict[str, Any]:
        """Nodes, parameters (trainable), and forward FLOPs per sample on sampled inputs."""
        from registry.cost.flops import count_module_flops

        flops = count_module_flops(self, self.sample_inputs(16), backward=False)
        return {"name": self.plan.spec.name, "nodes": self.node_summary(),
                "inputs": self.input_names, "outputs": self.output_names,
                "params": sum(p.numel() for p in self.parameters()),
                "trainable_params": sum(p.numel() for p in self.parameters() if p.requires_grad),
                "flops_per_sample": flops.forward, "uncounted_ops": list(flops.uncounted_ops)}

    def node_summary(self) -> list[dict[str, object]]:
        rows = []
        for name, node in self.plan.spec.nodes.items():
            module = self.nodes[name]
            rows.append({
                "node": name,
                "kind": "mlp" if node.mlp is not None else self.plan.manifests[name].kind,
                "ref": self.plan.pinned.get(name, "inline"),
                "params": sum(p.numel() for p in module.parameters()),
                "trainable": sum(p.numel() for p in module.parameters() if p.requires_grad),
            })
        return rows

    def forward_tensor(self, x: torch.Tensor) -> torch.Tensor:
        env: dict[str, torch.Tensor] = {n: x[..., i] for i, n in enumerate(self.input_names)}
        like = x[..., 0]
        for name in self.constant_names:
            env[name] = getattr(self, f"const_{name}").to(x.dtype)
        dynamics = self.plan.spec.dynamics
        if dynamics is not None:
            state = {n: _column(fn(env), like) for n, fn in self._initial.items()}

            def rate(current: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
                scope = self._evaluate({**env, **current}, like)
                return {n: _column(fn(scope), like) for n, fn in self._derivatives.items()}

            steps = math.ceil(dynamics.max_time / dynamics.dt)
            env.update(integrate(rate, state, dt=dynamics.dt, steps=steps,
                                 stop_when=dynamics.stop_when))
        scope = self._evaluate(env, like)
        return torch.stack([_column(fn(scope), like) for fn in self._outputs.values()], dim=-1)

    def rates(self, x: torch.Tensor) -> torch.Tensor:
        """The dynamics' right-hand side at given states: `x` holds the composite's inputs,
        then the state variables (in spec order); returns their derivatives."""
        scope = self._evaluate(self._state_env(x), x[..., 0])
        like = x[..., 0]
        return torch.stack([_column(fn(scope), like) for fn in self._derivatives.values()], -1)

    @torch.no_grad()
    def standardise_mlp_inputs(self, x: torch.Tensor) -> None:
        """Fit each inline MLP's input shift and scale to its port values at the states in
        `x` (as for `rates`), so a residual sees inputs of order one."""
        like = x[..., 0]
        scope = self._evaluate(self._state_env(x), like)
        for step, wiring in self._steps:
            block = self.nodes[step.name] if step.kind == "node" else None
            if isinstance(block, NetworkModule) and self.plan.spec.nodes[step.name].mlp:
                ports = torch.stack([_column(wiring[p](scope), like)
                                     for p in block.input_names], -1)
                block.in_shift.copy_(ports.mean(0))
                block.in_scale.copy_(ports.std(0).clamp_min(1e-12))

    def _state_env(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        dynamics = self.plan.spec.dynamics
        if dynamics is None:
            raise ValueError("rates need a spec with `dynamics`")
        names = [*self.input_names, *dynamics.state]
        if x.shape[-1] != len(names):
            raise ValueError(f"expected columns {names}, got {x.shape[-1]} columns")
        env = {n: x[..., i] for i, n in enumerate(names)}
        for name in self.constant_names:
            env[name] = getattr(self, f"const_{name}").to(x.dtype)
        return env

    def _evaluate(self, env: dict[str, torch.Tensor],
                  like: torch.Tensor) -> dict[str, torch.Tensor]:
        scope = dict(env)
        for step, wiring in self._steps:
            if step.kind == "expression":
                scope[step.name] = _column(wiring[step.name](scope), like)
                continue
            module = cast(PortModule, self.nodes[step.name])
            ports = torch.stack([_column(wiring[p](scope), like) for p in module.input_names], -1)
            out = module.forward_tensor(ports)
            for i, port in enumerate(module.output_names):
                scope[step.provides[port]] = out[..., i]
        return scope


def _column(value: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value if value.shape == like.shape else value.expand_as(like)
    return torch.full_like(like, value)


def _with_training(module: PortModule, train: bool | str | None) -> PortModule:
    """Freeze or unfreeze a loaded module as the node asks (equations frozen by default)."""
    if isinstance(module, EquationModule):
        if train == "constants":
            trainable = {n: (v, True) for n, v in module.constant_values().items()}
            module = EquationModule(module.equations, inputs=module.input_names,
                                    constants=trainable)
        else:
            module.requires_grad_(False)
        return module
    module.requires_grad_(train is not False)
    return module
