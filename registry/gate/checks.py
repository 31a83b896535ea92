"""The gate's checks, one module at a time.

Each check yields rows `(check, value, budget, verdict, detail)`. Verdicts:
`pass`, `fail`, `info` (reported, not gated: an estimated energy figure) and
`skip` (does not apply, or could not run because an earlier check failed).

Tolerances (stated, not tuned per module):
- reproduction: recomputed r2 within 1e-6 (absolute) of the recorded one; other
  metrics within 0.1 % (relative, plus 1e-9 absolute): float32 round-off across
  torch builds, not a real change;
- regression against the base version: r2 may not drop by more than 1e-6; nRMSE
  and max relative error (dimensionless) may not grow by more than 0.1 % + 1e-6
  (float32 round-off: a rewritten equation that is the same law stays level);
  FLOPs and parameters may not grow at all;
- budgets on FLOPs and parameters: exact, zero tolerance.

A regression is allowed when the manifest's `budget.accepted` lists the check by
name (`regression:r2`, `regression:flops_per_sample`, …) with a reason.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from registry.errors import RegistryError

if TYPE_CHECKING:
    from registry.api import Registry
    from registry.spec import Manifest
    from registry.store.store import Resolved

__all__ = ["CHECKS", "CheckResult", "ModuleReport", "check_module"]

R2_TOLERANCE = 1e-6
RELATIVE_TOLERANCE = 1e-3
ERROR_METRICS = ("nrmse", "rmse", "max_rel_error")
CHECKS = ("schema", "units", "integrity", "parents", "version", "accuracy", "budget",
          "regression")


@dataclass(frozen=True)
class CheckResult:
    check: str
    verdict: str  # pass | fail | info | skip
    value: str = ""
    budget: str = ""
    detail: str = ""

    @property
    def group(self) -> str:
        """The family a row belongs to (`budget:min_r2` → `budget`)."""
        return self.check.split(":", 1)[0]


@dataclass
class ModuleReport:
    name: str
    version: str
    change: str  # added | changed | unchanged | removed
    results: list[CheckResult]
    cached: bool = False

    @property
    def passed(self) -> bool:
        return all(r.verdict != "fail" for r in self.results)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "change": self.change,
                "passed": self.passed, "cached": self.cached,
                "results": [asdict(r) for r in self.results]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModuleReport:
        return cls(data["name"], data["version"], data["change"],
                   [CheckResult(**r) for r in data["results"]], cached=True)


def _g(value: float) -> str:
    return f"{value:.6g}"


def check_module(reg: Registry, name: str, *, base: Manifest | None,
                 base_tree_matches: bool, change: str) -> ModuleReport:
    """Run every check on the working-tree module `name` against its `base` manifest."""
    results: list[CheckResult] = []
    version = "?"
    try:
        resolved = reg.resolve(f"{name}@workspace")
    except RegistryError as exc:
        results.append(CheckResult("schema", "fail", detail=str(exc)))
        results += [CheckResult(c, "skip", detail="the manifest does not load")
                    for c in CHECKS[1:]]
        return ModuleReport(name, version, change, results)
    manifest = resolved.manifest
    version = manifest.version
    results.append(CheckResult("schema", "pass", value=f"schema {manifest.schema_}"))
    steps: list[tuple[str, Callable[[], Iterator[CheckResult]]]] = [
        ("units", lambda: _units(manifest, resolved)),
        ("integrity", lambda: _integrity(manifest, resolved)),
        ("parents", lambda: _parents(reg, manifest)),
        ("version", lambda: _version(reg, manifest, base, base_tree_matches)),
    ]
    for check, step in steps:
        results += _guarded(check, step)
    if any(r.verdict == "fail" for r in results):
        results += [CheckResult(c, "skip", detail="an earlier check failed")
                    for c in ("accuracy", "budget", "regression")]
        return ModuleReport(name, version, change, results)
    measured: dict[str, Any] = {}
    results += _guarded("accuracy", lambda: _accuracy(reg, manifest, measured))
    results += _guarded("cost", lambda: _compute(reg, manifest, measured))
    if "flops" not in measured:
        results += [CheckResult(c, "skip", detail="the module could not be measured")
                    for c in ("budget", "regression")]
        return ModuleReport(name, version, change, results)
    results += _guarded("budget", lambda: _budget(manifest, measured))
    results += _guarded("regression", lambda: _regression(manifest, base, measured))
    return ModuleReport(name, version, change, results)


def _guarded(check: str, step: Callable[[], Iterator[CheckResult]]) -> list[CheckResult]:
    """A check that raises the registry's own error fails with that error's message."""
    try:
        return list(step())
    except RegistryError as exc:
        return [CheckResult(check, "fail", detail=str(exc))]


# checks -------------------------------------------------------------------------


def _units(manifest: Manifest, resolved: Resolved) -> Iterator[CheckResult]:
    from registry.validation import validate_equations

    try:
        validate_equations(manifest, source=resolved.where("module.yaml"))
    except RegistryError as exc:
        yield CheckResult("units", "fail", detail=str(exc))
        return
    n = len(manifest.equation or {})
    yield CheckResult("units", "pass",
                      value=f"{n} equation{'s' * (n != 1)} consistent" if n else "units parse")


def _integrity(manifest: Manifest, resolved: Resolved) -> Iterator[CheckResult]:
    files: list[tuple[str, str, str]] = []  # (field, path, sha256)
    if manifest.network is not None:
        files.append(("network.weights", manifest.network.weights.path,
                      manifest.network.weights.sha256))
    if manifest.composition is not None and manifest.composition.weights is not None:
        files.append(("composition.weights", manifest.composition.weights.path,
                      manifest.composition.weights.sha256))
    if manifest.evaluation is not None and manifest.evaluation.data is not None:
        files.append(("evaluation.data", manifest.evaluation.data.path,
                      manifest.evaluation.data.sha256))
    trained_on = manifest.provenance.data
    if trained_on is not None:
        yield _training_data(resolved, trained_on.path, trained_on.md5)
    if not files:
        if trained_on is None:
            yield CheckResult("integrity", "skip", detail="no files with hashes")
        return
    for field, path, sha in files:
        try:
            data = resolved.read(path)
        except RegistryError as exc:
            yield CheckResult(f"integrity:{field}", "fail", detail=str(exc))
            continue
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha:
            yield CheckResult(f"integrity:{field}", "fail", value=f"sha256 {actual[:12]}…",
                              budget=f"sha256 {sha[:12]}…",
                              detail=f"{resolved.where(path)}: the file does not match "
                                     f"`{field}.sha256`; restore it or record the new hash")
        else:
            yield CheckResult(f"integrity:{field}", "pass", value=f"sha256 {sha[:12]}…")


def _training_data(resolved: Resolved, path: str, md5: str) -> CheckResult:
    """The training data DVC tracks: verified when present (after `dvc pull` or a pipeline
    run), reported as skipped otherwise — the module does not need it to run."""
    target = (resolved.repo.root / path).resolve()
    if resolved.repo.root.resolve() not in target.parents or not target.is_file():
        return CheckResult("integrity:provenance.data", "skip",
                           detail=f"{path} is not in this checkout (`dvc pull` fetches it)")
    actual = hashlib.md5(target.read_bytes(), usedforsecurity=False).hexdigest()
    if actual != md5:
        return CheckResult("integrity:provenance.data", "fail", value=f"md5 {actual[:12]}…",
                           budget=f"md5 {md5[:12]}…",
                           detail=f"{path}: not the data the module was trained on; restore "
                                  "it (`dvc checkout`) or retrain")
    return CheckResult("integrity:provenance.data", "pass", value=f"md5 {md5[:12]}…")


def _parents(reg: Registry, manifest: Manifest) -> Iterator[CheckResult]:
    pinned = list(manifest.provenance.parents)
    if manifest.provenance.distilled_from:
        pinned.append(manifest.provenance.distilled_from)
    if not pinned:
        yield CheckResult("parents", "skip", detail="no parents")
        return
    missing = []
    for ref in pinned:
        try:
            reg.resolve(ref)
        except RegistryError as exc:
            missing.append(f"{ref}: {exc}")
    if missing:
        yield CheckResult("parents", "fail", value=f"{len(missing)}/{len(pinned)} unresolvable",
                          detail="; ".join(missing) + " (run `registry restore-tags`, or "
                                 "register the parents first)")
    else:
        yield CheckResult("parents", "pass", value=", ".join(pinned))


def _version(reg: Registry, manifest: Manifest, base: Manifest | None,
             base_tree_matches: bool) -> Iterator[CheckResult]:
    from registry.reference import Version

    tag = f"{manifest.name}@v{manifest.version}"
    tagged = {t.name: t for t in reg.store.repo.tags()}.get(tag)
    if tagged is not None and not reg.store.repo.folder_matches(tagged.commit,
                                                                 f"modules/{manifest.name}"):
        yield CheckResult("version", "fail", value=manifest.version,
                          detail=f"{manifest.name} {manifest.version} is released ({tag}) and "
                                 "its files changed: changing a released version in place is "
                                 "refused; bump `version` (or `registry register --bump patch`)")
        return
    if base is None:
        yield CheckResult("version", "pass", value=manifest.version, detail="new module")
        return
    if base_tree_matches:
        yield CheckResult("version", "pass", value=manifest.version, detail="unchanged")
        return
    if Version.parse(manifest.version) <= Version.parse(base.version):
        yield CheckResult("version", "fail", value=manifest.version, budget=f"> {base.version}",
                          detail=f"{manifest.name} changed but its version is "
                                 f"{manifest.version} (base: {base.version}); bump `version`")
        return
    yield CheckResult("version", "pass", value=f"{base.version} → {manifest.version}")


def _accuracy(reg: Registry, manifest: Manifest,
              measured: dict[str, Any]) -> Iterator[CheckResult]:
    if manifest.evaluation is None:
        yield CheckResult("accuracy", "fail",
                          detail="no `evaluation` section: add `data` or `reference` so "
                                 "accuracy can be measured")
        return
    metrics = reg.evaluate(f"{manifest.name}@workspace")
    measured["metrics"] = metrics
    recorded = manifest.evaluation.metrics
    if not recorded:
        yield CheckResult("accuracy", "fail", value=f"r2 {_g(metrics['r2'])}",
                          detail="no recorded metrics; register the module to record them")
        return
    for key, was in recorded.items():
        now = metrics.get(key)
        if now is None:
            yield CheckResult(f"accuracy:{key}", "skip", detail="not a metric the registry "
                              "computes")
            continue
        allowed = (R2_TOLERANCE if key == "r2"
                   else RELATIVE_TOLERANCE * abs(was) + 1e-9)
        same = abs(now - was) <= allowed
        yield CheckResult(f"accuracy:{key}", "pass" if same else "fail", value=_g(now),
                          budget=f"recorded {_g(was)} ± {_g(allowed)}",
                          detail="" if same else "recomputed metric differs from the recorded "
                          "one: re-register the module so its metrics are measured afresh")


def _compute(reg: Registry, manifest: Manifest, measured: dict[str, Any]) -> Iterator[CheckResult]:
    """Count FLOPs and parameters afresh (exact); nothing reported here on its own."""
    from registry.cost.measure import count_flops

    module = reg.load(f"{manifest.name}@workspace")
    measured["flops"] = count_flops(module, manifest, backward=False).forward
    measured["params"] = sum(p.numel() for p in module.parameters())
    recorded = manifest.cost.flops_per_sample
    if recorded is not None and recorded != measured["flops"]:
        yield CheckResult("cost:flops_per_sample", "fail", value=str(measured["flops"]),
                          budget=f"recorded {recorded}",
                          detail="the recorded FLOPs are stale; re-register to measure them")
    return


def _budget(manifest: Manifest, measured: dict[str, Any]) -> Iterator[CheckResult]:
    budget = manifest.budget
    metrics = measured.get("metrics", {})
    rows = 0
    for key, metric, lower_is_better in (("min_r2", "r2", False), ("max_nrmse", "nrmse", True),
                                         ("max_rmse", "rmse", True),
                                         ("max_rel_error", "max_rel_error", True)):
        limit = getattr(budget, key)
        if limit is None:
            continue
        rows += 1
        value = metrics.get(metric)
        if value is None:
            yield CheckResult(f"budget:{key}", "fail", budget=_g(limit),
                              detail=f"{metric} could not be measured")
            continue
        ok = value <= limit if lower_is_better else value >= limit
        yield CheckResult(f"budget:{key}", "pass" if ok else "fail", value=_g(value),
                          budget=f"{'≤' if lower_is_better else '≥'} {_g(limit)}",
                          detail="" if ok else f"{manifest.name}: {metric} {_g(value)} misses "
                          f"the budget {key}: {_g(limit)}")
    for key, what in (("max_flops_per_sample", "flops"), ("max_params", "params")):
        limit = getattr(budget, key)
        if limit is None:
            continue
        rows += 1
        value = measured[what]
        ok = value <= limit
        yield CheckResult(f"budget:{key}", "pass" if ok else "fail", value=str(value),
                          budget=f"≤ {limit}",
                          detail="" if ok else f"{manifest.name}: {value} "
                          f"{'FLOPs per sample' if what == 'flops' else 'parameters'} exceed "
                          f"the budget {key}: {limit}")
    energy = manifest.cost.energy_j_per_sample
    training = manifest.cost.training
    for key, figure, method in (
            ("max_energy_j_per_sample", energy.value if energy else None,
             energy.method if energy else None),
            ("max_training_energy_j", training.energy_j if training else None,
             training.method if training else None)):
        limit = getattr(budget, key)
        if limit is None:
            continue
        rows += 1
        if figure is None:
            yield CheckResult(f"budget:{key}", "fail", budget=f"≤ {_g(limit)} J",
                              detail="no recorded figure; register (or train) the module to "
                                     "measure it")
            continue
        ok = figure <= limit
        measured_figure = (method or "").startswith("measured:")
        verdict = ("pass" if ok else "fail") if measured_figure else "info"
        yield CheckResult(f"budget:{key}", verdict, value=f"{_g(figure)} J ({method})",
                          budget=f"≤ {_g(limit)} J",
                          detail="" if measured_figure else "estimated, not measured: "
                          "reported, not gated" + ("" if ok else " (over budget)"))
    if not rows:
        yield CheckResult("budget", "skip", detail="no budget declared")


def _accepted(manifest: Manifest, check: str) -> str | None:
    for trade in manifest.budget.accepted:
        if trade.check == check:
            return trade.reason
    return None


def _regression(manifest: Manifest, base: Manifest | None,
                measured: dict[str, Any]) -> Iterator[CheckResult]:
    if base is None:
        yield CheckResult("regression", "skip", detail="no base version")
        return
    metrics = measured.get("metrics", {})
    recorded = base.evaluation.metrics if base.evaluation else {}
    compared = 0
    for metric in ("r2", "nrmse", "max_rel_error"):
        was, now = recorded.get(metric), metrics.get(metric)
        if was is None or now is None:
            continue
        compared += 1
        if metric == "r2":
            worse, allowed = was - now, R2_TOLERANCE
        else:
            worse, allowed = now - was, RELATIVE_TOLERANCE * abs(was) + 1e-6
        yield _regression_row(manifest, f"regression:{metric}", worse > allowed,
                              value=_g(now), budget=f"base {base.version}: {_g(was)}")
    for key, what in (("flops_per_sample", "flops"), ("params", "params")):
        was = getattr(base.cost, key)
        now = measured.get(what)
        if was is None or now is None:
            continue
        compared += 1
        yield _regression_row(manifest, f"regression:{key}", now > was, value=str(now),
                              budget=f"base {base.version}: {was}")
    if not compared:
        yield CheckResult("regression", "skip", detail="nothing recorded to compare")


def _regression_row(manifest: Manifest, check: str, regressed: bool, *, value: str,
                    budget: str) -> CheckResult:
    if not regressed:
        return CheckResult(check, "pass", value=value, budget=budget)
    reason = _accepted(manifest, check)
    if reason is not None:
        return CheckResult(check, "pass", value=value, budget=budget,
                           detail=f"accepted trade-off: {reason}")
    return CheckResult(check, "fail", value=value, budget=budget,
                       detail=f"{manifest.name} regressed against the base version; fix it, or "
                              f"record `budget.accepted: [{{check: {check}, reason: …}}]`")
