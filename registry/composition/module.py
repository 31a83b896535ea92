"""The composed network: a `torch.nn.Module` evaluating a checked `Plan`.

Equation nodes are frozen unless the spec says `train: constants`; network and
inline `mlp` nodes train unless `train: false`. Frozen equations are inlined
(their ports replaced by their wiring) and every evaluation is compiled to a
`torch.fx` program, so the builder adds next to nothing to the cost of the
ops themselves. With `dynamics`, the nodes and expressions form the right-hand
side of an ODE integrated by RK4, and the outputs are read at the stop event.

Example:
    >>> net = ComposedModule(plan, modules={"gravity": gravity, "drag": drag})
    >>> net(torch.tensor([[35.0, 0.6]]))      # (batch, inputs) -> (batch, outputs)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, cast

import sympy
import torch
from torch import fx, nn

from registry.composition.graph import Plan
from registry.composition.ode import integrate
from registry.composition.program import ProgramStep, build_program
from registry.core.expr import symbol
from registry.nn.equation import EquationModule
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
        # Spec constants are fixed numbers: folded into the expressions.
        self._values = {symbol(n): sympy.Float(c.value) for n, c in spec.constants.items()}
        self._program_steps = [self._program_step(step) for step in plan.steps]
        state = list(spec.dynamics.state) if spec.dynamics is not None else []
        # Kept out of the module tree (a plain dict), so parameters are not listed twice.
        self._programs: dict[str, fx.GraphModule] = {
            "outputs": self._program([*self.input_names, *state], plan.outputs),
        }
        if spec.dynamics is not None:
            self._programs["initial"] = self._program(self.input_names, plan.initial, steps=False)
            self._programs["rates"] = self._program([*self.input_names, *state],
                                                    plan.derivatives)

    def _fold(self, expr: sympy.Expr) -> sympy.Expr:
        return expr.xreplace(self._values)

    def _program_step(self, step: Any) -> ProgramStep:
        if step.kind == "expression":
            return ("expression", {n: self._fold(e) for n, e in step.wiring.items()}, None, [])
        module = self.nodes[step.name]
        if isinstance(module, EquationModule) and not _trains_constants(module):
            ports = {symbol(p): e for p, e in step.wiring.items()}
            inlined = {step.provides[out]: self._fold(expr.xreplace(ports))
                       for out, expr in module.sympy(substitute_constants=True).items()}
            return ("expression", inlined, None, [])
        port_module = cast(PortModule, module)
        wiring = {p: self._fold(step.wiring[p]) for p in port_module.input_names}
        provides = [step.provides[p] for p in port_module.output_names]
        return ("node", wiring, f"nodes.{step.name}", provides)

    def _program(self, inputs: list[str], results: Mapping[str, sympy.Expr], *,
                 steps: bool = True) -> fx.GraphModule:
        return build_program(self, inputs=inputs, steps=self._program_steps if steps else [],
                             results={k: self._fold(v) for k, v in results.items()})

    def pinned_spec(self, *, name: str | None = None) -> dict[str, Any]:
        """The spec with every module reference pinned to the exact version it resolved to."""
        pinned = self.plan.spec.to_dict() | ({"name": name} if name else {})
        for node, ref in self.plan.pinned.items():
            pinned["nodes"][node]["module"] = ref
        return pinned

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
        from registry.nn.weights import weight_stats

        flops = count_module_flops(self, self.sample_inputs(16), backward=False)
        return {"name": self.plan.spec.name, "nodes": self.node_summary(),
                "inputs": self.input_names, "outputs": self.output_names,
                "params": weight_stats(self).params,
                "trainable_params": sum(p.numel() for p in self.parameters() if p.requires_grad),
                "flops_per_sample": flops.forward, "uncounted_ops": list(flops.uncounted_ops)}

    def node_summary(self) -> list[dict[str, object]]:
        from registry.nn.weights import weight_stats

        rows = []
        for name, node in self.plan.spec.nodes.items():
            module = self.nodes[name]
            rows.append({
                "node": name,
                "kind": "mlp" if node.mlp is not None else self.plan.manifests[name].kind,
                "ref": self.plan.pinned.get(name, "inline"),
                "params": weight_stats(module).params,
                "trainable": sum(p.numel() for p in module.parameters() if p.requires_grad),
            })
        return rows

    def forward_tensor(self, x: torch.Tensor) -> torch.Tensor:
        columns = x.unbind(-1)
        dynamics = self.plan.spec.dynamics
        if dynamics is not None:
            # Programs are called through `.forward`: they hold no hooks, so nn.Module's
            # call machinery would only add overhead on every RK4 stage.
            initial = self._programs["initial"].forward(*columns)
            state = dict(zip(dynamics.state, initial, strict=True))
            rates = self._programs["rates"].forward

            def rate(current: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
                values = rates(*columns, *(current[n] for n in dynamics.state))
                return dict(zip(dynamics.state, values, strict=True))

            final = integrate(rate, state, dt=dynamics.dt,
                              steps=math.ceil(dynamics.max_time / dynamics.dt),
                              stop_when=dynamics.stop_when)
            columns = (*columns, *(final[n] for n in dynamics.state))
        outputs = self._programs["outputs"].forward(*columns)
        return outputs[0].unsqueeze(-1) if len(outputs) == 1 else torch.stack(outputs, dim=-1)

    def rates(self, x: torch.Tensor) -> torch.Tensor:
        """The dynamics' right-hand side at given states: `x` holds the composite's inputs,
        then the state variables (in spec order); returns their derivatives."""
        self._check_state_columns(x)
        return torch.stack(self._programs["rates"].forward(*x.unbind(-1)), dim=-1)

    @torch.no_grad()
    def standardise_mlp_inputs(self, x: torch.Tensor) -> None:
        """Fit each inline MLP's input shift and scale to its port values at the states in
        `x` (columns as for `rates`), so a residual sees inputs of order one."""
        names = self._check_state_columns(x)
        for name, node in self.plan.spec.nodes.items():
            if node.mlp is None:
                continue
            block = cast(NetworkModule, self.nodes[name])
            step = next(s for s in self._program_steps if s[2] == f"nodes.{name}")
            probe = build_program(self, inputs=names, steps=self._program_steps,
                                  results=dict(step[1]))
            ports = torch.stack(probe(*x.unbind(-1)), dim=-1)
            block.in_shift.copy_(ports.mean(0))
            block.in_scale.copy_(ports.std(0).clamp_min(1e-12))

    def _check_state_columns(self, x: torch.Tensor) -> list[str]:
        dynamics = self.plan.spec.dynamics
        if dynamics is None:
            raise ValueError("rates need a spec with `dynamics`")
        names = [*self.input_names, *dynamics.state]
        if x.shape[-1] != len(names):
            raise ValueError(f"expected columns {names}, got {x.shape[-1]} columns")
        return names


def _trains_constants(module: EquationModule) -> bool:
    return any(p.requires_grad for p in module.parameters())


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
