"""The ways to shrink a network: pruning, int8, lower precision, a smaller student.

Each takes the teacher (a loaded `NetworkModule`) and returns a new
`NetworkModule`, never touching the teacher. Fine-tuning and student training
learn from the teacher's own outputs on inputs drawn from its declared ranges
(`TeacherData`): the teacher is the truth a variant is measured against.

- `prune`: magnitude pruning with `torch.nn.utils.prune`. Unstructured
  (`l1_unstructured` over all weight matrices at once) keeps the shapes and
  zeros the smallest weights; structured (`ln_structured`, L2 norm of each
  hidden neuron's incoming weights) removes whole neurons and rebuilds the
  layers smaller, so FLOPs fall for real. Then at most `steps` optimiser steps
  of fine-tuning (the pruning mask held), stopping early at `target_nrmse`.
- `quantize_int8`: dynamic quantization of the linear layers (int8 weights per
  output channel, activations quantized per call), as `torch.ao.quantization`
  does; no training.
- `to_precision`: float16 or bfloat16 weights and arithmetic; no training.
- `train_student`: a smaller MLP trained on the teacher's outputs with L-BFGS,
  checked every `CHECK_EVERY` iterations and stopped as soon as its nRMSE
  against the teacher reaches the target (not at convergence).

Example:
    >>> data = TeacherData.draw(teacher, manifest)
    >>> student, steps = train_student(teacher, data, hidden=[16, 16], target_nrmse=0.005)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from registry.errors import ShrinkError
from registry.nn.network import NetworkModule, quantize_linear_layers

if TYPE_CHECKING:
    from registry.core.manifest import Manifest

__all__ = ["CHECK_EVERY", "TRAIN_SAMPLES", "VALIDATION_SAMPLES", "TeacherData", "fine_tune",
           "finish_pruning", "prune", "quantize_int8", "to_precision", "train_student"]

TRAIN_SAMPLES = 8192
VALIDATION_SAMPLES = 4096
CHECK_EVERY = 20  # optimiser steps (L-BFGS iterations) between checks against the target
MAX_STEPS = 100_000


@dataclass(frozen=True)
class TeacherData:
    """Inputs drawn uniformly from the teacher's declared ranges and its outputs on them:
    `x`/`y` to learn from, `x_val`/`y_val` (another seed) to check against."""

    x: torch.Tensor
    y: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor

    @classmethod
    def draw(cls, teacher: nn.Module, manifest: Manifest, *, n: int = TRAIN_SAMPLES,
             seed: int = 0) -> TeacherData:
        from registry.core.manifest import Sample
        from registry.evaluation import sample_inputs

        def drawn(count: int, at: int) -> tuple[torch.Tensor, torch.Tensor]:
            x = torch.as_tensor(sample_inputs(manifest, Sample(n=count, seed=at),
                                              where=manifest.ref), dtype=torch.float32)
            with torch.no_grad():
                return x, teacher(x).float()

        x, y = drawn(n, seed)
        x_val, y_val = drawn(VALIDATION_SAMPLES, seed + 1)
        bad = int((~torch.isfinite(y)).sum() + (~torch.isfinite(y_val)).sum())
        if bad:
            raise ShrinkError(f"{manifest.ref} answers NaN or inf at {bad} of the "
                              f"{len(y) + len(y_val)} inputs drawn from its declared ranges; "
                              "a variant cannot learn from that: fix the teacher or its ranges")
        return cls(x, y, x_val, y_val)

    def nrmse(self, module: nn.Module) -> float:
        """The module's nRMSE against the teacher on the validation inputs."""
        from registry.evaluation import compute_metrics

        with torch.no_grad():
            predicted = module(self.x_val).double().numpy()
        return compute_metrics(predicted, self.y_val.double().numpy())["nrmse"]


def _mlp_layers(teacher: NetworkModule, method: str) -> list[nn.Linear]:
    if teacher.arch != "mlp" or teacher.precision != "float32":
        raise ShrinkError(f"{method} works on float32 `mlp` networks; this one is "
                          f"`{teacher.arch}` in {teacher.precision}")
    return [m for m in teacher.net.children() if isinstance(m, nn.Linear)]


def _loss(net: NetworkModule, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean squared error in the teacher's standardised output units."""
    return (((net(x) - y) / net.out_scale) ** 2).mean()


def fine_tune(net: NetworkModule, data: TeacherData, *, steps: int,
              target_nrmse: float | None = None) -> int:
    """At most `steps` L-BFGS iterations on the teacher's outputs (a pruning mask, if any,
    held); stops once the nRMSE against the teacher is at most `target_nrmse`. Returns the
    iterations run."""
    params = [p for p in net.parameters() if p.requires_grad]
    optimiser = torch.optim.LBFGS(params, lr=1.0, max_iter=CHECK_EVERY, history_size=50,
                                  line_search_fn="strong_wolfe")
    net.train()

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = _loss(net, data.x, data.y)
        loss.backward()
        return loss

    done = 0
    while done < steps:
        if target_nrmse is not None and data.nrmse(net) <= target_nrmse:
            break
        if done and not torch.isfinite(_loss(net, data.x, data.y)):
            raise ShrinkError(f"training diverged (the loss is not finite after {done} "
                              "steps); try fewer --steps or another --student width")
        optimiser.param_groups[0]["max_iter"] = min(CHECK_EVERY, steps - done)
        optimiser.step(closure)
        done += optimiser.param_groups[0]["max_iter"]
    net.eval()  # safe: nn.Module.eval switches off training mode
    return done


def prune(teacher: NetworkModule, amount: float, *, structured: bool) -> NetworkModule:
    """A pruned copy of `teacher` (not yet fine-tuned): `amount` of the weights (unstructured)
    or of each hidden layer's neurons (structured) removed by magnitude."""
    import torch.nn.utils.prune as torch_prune

    if not 0.0 < amount < 1.0:
        raise ShrinkError(f"--prune {amount}: the amount is a fraction between 0 and 1 "
                          "(0.5 prunes half)")
    layers = _mlp_layers(teacher, "pruning")
    if not structured:
        pruned = copy.deepcopy(teacher)
        targets = [(m, "weight") for m in pruned.net.children() if isinstance(m, nn.Linear)]
        torch_prune.global_unstructured(targets, pruning_method=torch_prune.L1Unstructured,
                                        amount=amount)
        return pruned
    kept: list[torch.Tensor] = []
    for layer in layers[:-1]:  # hidden layers: rank neurons by their incoming weights
        probe = nn.Linear(layer.in_features, layer.out_features)
        probe.weight.data.copy_(layer.weight.data)
        torch_prune.ln_structured(probe, "weight", amount=amount, n=2, dim=0)
        rows = probe.get_buffer("weight_mask").abs().sum(dim=1).nonzero().flatten()
        if len(rows) == 0:
            raise ShrinkError(f"--prune {amount} --structured would remove every neuron of a "
                              f"{layer.out_features}-wide layer; prune less")
        kept.append(rows)
    config = {**teacher.config, "hidden": [len(rows) for rows in kept]}
    smaller = NetworkModule("mlp", config, inputs=teacher.input_names,
                            outputs=teacher.output_names)
    _copy_standardisation(teacher, smaller)
    new_layers = [m for m in smaller.net.children() if isinstance(m, nn.Linear)]
    with torch.no_grad():
        columns = torch.arange(layers[0].in_features)
        for i, (old, new) in enumerate(zip(layers, new_layers, strict=True)):
            rows = kept[i] if i < len(kept) else torch.arange(old.out_features)
            new.weight.copy_(old.weight[rows][:, columns])
            new.bias.copy_(old.bias[rows])
            columns = rows
    return smaller


def finish_pruning(net: NetworkModule) -> None:
    """Make an unstructured pruning permanent: the masked weights become stored zeros."""
    import torch.nn.utils.prune as torch_prune

    for module in net.net.children():
        if isinstance(module, nn.Linear) and torch_prune.is_pruned(module):
            torch_prune.remove(module, "weight")


def quantize_int8(teacher: NetworkModule) -> NetworkModule:
    """A copy of `teacher` with its linear layers dynamically quantized to int8."""
    _mlp_layers(teacher, "int8 quantization")
    quantized = copy.deepcopy(teacher)
    quantized.eval()  # safe: nn.Module.eval switches off training mode
    quantize_linear_layers(quantized.net)
    quantized.precision = "int8"
    return quantized


def to_precision(teacher: NetworkModule, precision: str) -> NetworkModule:
    """A copy of `teacher` whose layers store and compute in float16 or bfloat16."""
    dtypes = {"float16": torch.float16, "bfloat16": torch.bfloat16}
    if precision not in dtypes:
        raise ShrinkError(f"--dtype {precision}: use one of {sorted(dtypes)} (`--quantize int8` "
                          "for integers)")
    _mlp_layers(teacher, f"{precision} conversion")
    converted = copy.deepcopy(teacher)
    converted.net.to(dtypes[precision])
    converted.precision, converted.compute_dtype = precision, dtypes[precision]
    return converted


def train_student(teacher: NetworkModule, data: TeacherData, *, hidden: Sequence[int],
                  target_nrmse: float, max_steps: int, seed: int = 0) -> tuple[NetworkModule, int]:
    """A fresh MLP of widths `hidden` trained on the teacher's outputs until its nRMSE against
    the teacher is at most `target_nrmse`; `ShrinkError` if `max_steps` do not get it there."""
    _mlp_layers(teacher, "a student")
    if not 0 < target_nrmse < 1:
        raise ShrinkError(f"--target-nrmse {target_nrmse}: give the student's target error "
                          "against the teacher as a fraction, e.g. 0.005")
    if not 0 < max_steps <= MAX_STEPS:
        raise ShrinkError(f"--steps {max_steps}: between 1 and {MAX_STEPS}")
    torch.manual_seed(seed)
    student = NetworkModule("mlp", {**teacher.config, "hidden": list(hidden)},
                            inputs=teacher.input_names, outputs=teacher.output_names)
    student.set_standardisation(data.x, data.y)
    steps = fine_tune(student, data, steps=max_steps, target_nrmse=target_nrmse)
    reached = data.nrmse(student)
    if not reached <= target_nrmse:  # NaN is no success
        raise ShrinkError(f"the student {list(hidden)} reached nRMSE {reached:.3g} against the "
                          f"teacher after {steps} steps, short of the target {target_nrmse:g}; "
                          "give it more --steps, wider --student layers, or a looser target")
    return student, steps


def _copy_standardisation(source: NetworkModule, target: NetworkModule) -> None:
    for name in ("in_shift", "in_scale", "out_shift", "out_scale"):
        getattr(target, name).copy_(getattr(source, name))
