"""What a distillation returns: the chosen equation per output, its Pareto front of
complexity against error, how the choice is made, and where the teacher was asked (the
box over the input ranges, or recorded points) with what each structure test did there."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry.distillation.candidates import Candidate
from registry.distillation.resolution import working_tolerance
from registry.errors import DistillationError

__all__ = ["DistillResult", "pareto_front"]


def pareto_front(candidates: list[Candidate]) -> list[Candidate]:
    """The candidates no other beats on both complexity and error, simplest first."""
    front: list[Candidate] = []
    for cand in sorted(candidates, key=lambda c: (c.complexity, c.nrmse)):
        if not front or cand.nrmse < front[-1].nrmse:
            front.append(cand)
    return front


@dataclass
class DistillResult:
    equations: dict[str, str]
    chosen: dict[str, Candidate]
    pareto: dict[str, list[Candidate]]
    found: bool
    message: str
    inputs: dict[str, tuple[str, tuple[float, float]]]
    outputs: dict[str, str]
    duration_s: float
    energy: Any = None
    teacher_metrics: dict[str, float] = field(default_factory=dict)
    domain: str = "box"  # "box": the input ranges; "recorded": the given points only
    n_points: int | None = None  # recorded rows (None for the box)
    held_out_points: int | None = None  # of which kept out of fitting, for rescoring
    structure_tests: dict[str, dict[str, str]] = field(default_factory=dict)  # output ->
    # test (irrelevant_inputs, translation_symmetry, separability) -> what it did
    budget_use: dict[str, str] = field(default_factory=dict)  # output -> where its budget
    # went ("finished in 3.1 s of 30 s", or the stage it ran out in)

    def manifest(self, name: str, version: str = "1.0.0", *, distilled_from: str | None = None,
                 summary: str | None = None) -> Any:
        """An `equation` manifest for the chosen equations (provenance: distilled)."""
        from registry.core.manifest import Manifest

        if not self.found:
            raise DistillationError(self.message)
        data: dict[str, Any] = {
            "name": name, "version": version, "kind": "equation",
            "summary": summary or f"Distilled from {distilled_from or 'a teacher'}",
            "inputs": {n: {"unit": u, "range": list(r)} for n, (u, r) in self.inputs.items()},
            "outputs": {n: {"unit": u} for n, u in self.outputs.items()},
            "equation": dict(self.equations),
            "provenance": {"source": "distilled", "distilled_from": distilled_from},
        }
        if distilled_from is not None:
            data["evaluation"] = {"reference": {"module": distilled_from},
                                  "sample": {"n": 4096, "seed": 0}}
        if self.energy is not None:
            data["cost"] = {"training": self.energy.to_training_cost().model_dump(
                exclude_none=True)}
        return Manifest.model_validate(data)

    def plot(self, path: Path) -> Path:
        """A PNG of each output's Pareto front (complexity against error), chosen marked."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(self.pareto), figsize=(5 * len(self.pareto), 3.6),
                                 squeeze=False)
        for ax, (output, front) in zip(axes[0], self.pareto.items(), strict=True):
            ax.plot([c.complexity for c in front], [max(c.nrmse, 1e-17) for c in front], "o-")
            chosen = self.chosen.get(output)
            if chosen is not None:
                ax.plot([chosen.complexity], [max(chosen.nrmse, 1e-17)], "r*", markersize=14,
                        label=self.equations.get(output, "")[:40])
                ax.legend(fontsize=7)
            ax.set_yscale("log")
            ax.set_xlabel("complexity (tree nodes)")
            ax.set_ylabel("nRMSE against the teacher")
            ax.set_title(f"Pareto front: {output}")
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return path

    def to_dict(self) -> dict[str, Any]:
        return {"found": self.found, "message": self.message, "equations": self.equations,
                "chosen": {k: c.to_dict() for k, c in self.chosen.items()},
                "pareto": {k: [c.to_dict() for c in v] for k, v in self.pareto.items()},
                "duration_s": self.duration_s, "domain": self.domain,
                "n_points": self.n_points, "held_out_points": self.held_out_points,
                "structure_tests": self.structure_tests, "budget_use": self.budget_use}


KNEE_PER_NODE = 0.06  # a candidate n nodes longer than a simpler one that fits the teacher
KNEE_NODES = 10  # 1 + 0.06·n times better (n ≤ 10) is preferred to it, where the simpler
KNEE_FLOOR = 0.2  # one misses by more than this share of the tolerance


def _choose(candidates: list[Candidate], tolerance: float) -> Candidate | None:
    """The simplest candidate within 1.5× of the best error (or the tolerance, tightened as
    the solver tightens it, with the best candidate's error as the floor), preferring
    dimensionally consistent ones; unless a candidate a few nodes longer fits the teacher
    better by 6 % a node (then that one, and so on from it).

    With a teacher trained on noisy data the tolerance is near the noise, while the law
    fits the teacher far better than that; a simpler approximant 20× worse than the best
    is not the law even when it is within the tolerance. And a truncated series of the
    law (2πkT/ħω − ½ for 1/(e^{ħω/2πkT} − 1)) can fit within the tolerance where the
    law, four nodes longer, fits twice as well: the two are told apart by how close
    they come, not by whether they pass."""
    consistent = [c for c in candidates if c.units_ok]
    # A law that fits only against the declared units means the units are wrong (a typo
    # in a table): it is still the answer, and the caller reports the contradiction.
    pool = (consistent if any(c.nrmse <= tolerance for c in consistent)
            else candidates if any(c.nrmse <= tolerance for c in candidates)
            else consistent or candidates)
    if not pool:
        return None
    best = min(c.nrmse for c in pool)
    threshold = max(best * 1.5, working_tolerance(tolerance, best))
    within = sorted((c for c in pool if c.nrmse <= threshold),
                    key=lambda c: (c.complexity, c.nrmse))
    pick = within[0]
    for cand in within[1:]:
        longer = cand.complexity - pick.complexity
        if (pick.nrmse > KNEE_FLOOR * tolerance and longer <= KNEE_NODES
                and cand.nrmse * (1 + KNEE_PER_NODE * longer) <= pick.nrmse):
            pick = cand
    return pick
