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
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from registry.errors import RegistryError

if TYPE_CHECKING:
    from registry.core.manifest import Manifest
    from registry.loading import Loader
    from registry.store.base import Resolved
    from registry.store.local import LocalStore

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


def check_module(store: LocalStore, loader: Loader, name: str, *, base: Manifest | None,
                 base_tree_matches: bool, change: str) -> ModuleReport:
    """Run every check on the working-tree module `name` against its `base` manifest."""
    results: list[CheckResult] = []
    version = "?"
    try:
        resolved = store.resolve(f"{name}@workspace")
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
        ("parents", lambda: _parents(store, manifest)),
        ("version", lambda: _version(store, manifest, base, base_tree_matches)),
    ]
    for check, step in steps:
        results += _guarded(check, step)
    if any(r.verdict == "fail" for r in results):
        results += [CheckResult(c, "skip", detail="an earlier check failed")
                    for c in ("accuracy", "budget", "regression")]
        return ModuleReport(name, version, change, results)
    measured: dict[str, Any] = {}
    results += _guarded("accuracy", lambda: _accuracy(loader, resolved, measured))
    results += _guarded("cost", lambda: _compute(loader, resolved, measured))
    if "flops" not in measured:
        results += [CheckResult(c, "skip", detail="the module could not be measured")
                    for c in ("budget", "regression")]
        return ModuleReport(name, version, change, results)
    from registry.gate.budget_check import budget_results

    results += _guarded("budget", lambda: budget_results(manifest, measured))
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
    from registry.core.semantics import validate_equations

    try:
        validate_equations(manifest, source=resolved.where("module.yaml"))
    except RegistryError as exc:
        yield CheckResult("units", "fail", detail=str(exc))
        return
    n = len(manifest.equation or {})
    yield CheckResult("units", "pass",
                      value=f"{n} equation{'s' * (n != 1)} consistent" if n else "units parse")


def _integrity(manifest: Manifest, resolved: Resolved) -> Iterator[CheckResult]:
    from registry.core.integrity import verify
    from registry.errors import IntegrityError

    files = manifest.files()
    trained_on = manifest.provenance.data
    if trained_on is not None:
        yield _training_data(resolved, trained_on.path, trained_on.md5)
    if not files:
        if trained_on is None:
            yield CheckResult("integrity", "skip", detail="no files with hashes")
        return
    for field, ref in files:
        try:
            data = resolved.reader(ref.path)  # unverified: the check itself is below
        except RegistryError as exc:
            yield CheckResult(f"integrity:{field}", "fail", detail=str(exc))
            continue
        try:
            verify(data, ref.sha256, where=resolved.where(ref.path), field=field)
        except IntegrityError:
            from registry.core.integrity import sha256_bytes

            actual = sha256_bytes(data)
            yield CheckResult(f"integrity:{field}", "fail", value=f"sha256 {actual[:12]}…",
                              budget=f"sha256 {ref.sha256[:12]}…",
                              detail=f"{resolved.where(ref.path)}: the file does not match "
                                     f"`{field}.sha256`; restore it or record the new hash")
        else:
            yield CheckResult(f"integrity:{field}", "pass", value=f"sha256 {ref.sha256[:12]}…")


def _training_data(resolved: Resolved, path: str, md5: str) -> CheckResult:
    """The training data DVC tracks: verified when present (after `dvc pull` or a pipeline
    run), reported as skipped otherwise — the module does not need it to run."""
    root = resolved.root
    target = (root / path).resolve() if root is not None else None
    if root is None or target is None or root.resolve() not in target.parents or \
            not target.is_file():
        return CheckResult("integrity:provenance.data", "skip",
                           detail=f"{path} is not in this checkout (`dvc pull` fetches it)")
    actual = hashlib.md5(target.read_bytes(), usedforsecurity=False).hexdigest()
    if actual != md5:
        return CheckResult("integrity:provenance.data", "fail", value=f"md5 {actual[:12]}…",
                           budget=f"md5 {md5[:12]}…",
                           detail=f"{path}: not the data the module was trained on; restore "
                                  "it (`dvc checkout`) or retrain")
    return CheckResult("integrity:provenance.data", "pass", value=f"md5 {md5[:12]}…")


def _parents(store: LocalStore, manifest: Manifest) -> Iterator[CheckResult]:
    pinned = list(manifest.provenance.parents)
    if manifest.provenance.distilled_from:
        from registry.core.reference import split_part

        pinned.append(split_part(manifest.provenance.distilled_from)[0])
    if not pinned:
        yield CheckResult("parents", "skip", detail="no parents")
        return
    missing = []
    for ref in pinned:
        try:
            store.resolve(ref)
        except RegistryError as exc:
            missing.append(f"{ref}: {exc}")
    if missing:
        yield CheckResult("parents", "fail", value=f"{len(missing)}/{len(pinned)} unresolvable",
                          detail="; ".join(missing) + " (run `registry restore-tags`, or "
                                 "register the parents first)")
    else:
        yield CheckResult("parents", "pass", value=", ".join(pinned))


def _version(store: LocalStore, manifest: Manifest, base: Manifest | None,
             base_tree_matches: bool) -> Iterator[CheckResult]:
    from registry.core.reference import Version
    from registry.store.tags import version_tag

    tag = version_tag(manifest.name, manifest.version)
    tagged = {t.name: t for t in store.repo.tags()}.get(tag)
    if tagged is not None and not store.repo.folder_matches(tagged.commit,
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


def _accuracy(loader: Loader, resolved: Resolved,
              measured: dict[str, Any]) -> Iterator[CheckResult]:
    manifest = resolved.manifest
    if manifest.evaluation is None:
        yield CheckResult("accuracy", "fail",
                          detail="no `evaluation` section: add `data` or `reference` so "
                                 "accuracy can be measured")
        return
    metrics = loader.evaluate(resolved)
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


def _compute(loader: Loader, resolved: Resolved,
             measured: dict[str, Any]) -> Iterator[CheckResult]:
    """Count FLOPs and parameters afresh (exact); nothing reported here on its own."""
    from registry.cost.measure import count_flops, model_module_energy
    from registry.nn.weights import weight_stats

    manifest = resolved.manifest
    module = loader.build(resolved)
    measured["flops"] = count_flops(module, manifest, backward=False).forward
    measured["params"] = weight_stats(module).params
    recorded = manifest.cost.flops_per_sample
    if recorded is not None and recorded != measured["flops"]:
        yield CheckResult("cost:flops_per_sample", "fail", value=str(measured["flops"]),
                          budget=f"recorded {recorded}",
                          detail="the recorded FLOPs are stale; re-register to measure them")
    kept = manifest.cost.energy_modeled_j_per_sample  # re-modeled with the table it names
    energy = model_module_energy(module, manifest,
                                 table=kept.method.removeprefix("modeled:") if kept else None)
    measured["energy:modeled"] = (energy.j_per_sample, energy.method)
    if kept is not None and not math.isclose(
            kept.value, energy.j_per_sample, rel_tol=1e-9):
        yield CheckResult("cost:energy_modeled_j_per_sample", "fail",
                          value=f"{_g(energy.j_per_sample)} J",
                          budget=f"recorded {_g(kept.value)} J",
                          detail="the recorded modeled energy is stale; re-register to model it")
    return


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
