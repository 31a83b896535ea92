"""The verbs of the registry: one `Registry` over any store, shared by every face.

The CLI, the server, the web pages and Python users hold this class. It
validates, builds, measures and evaluates; the store (`registry.store`) only
resolves references and commits finished folders.

Example:
    >>> import registry
    >>> reg = registry.open()                     # the repository around the cwd, or REGISTRY_URL
    >>> reg.get("gravity@^1").version
    '1.0.0'
    >>> gravity = reg.load("gravity@1.0.0")       # a torch.nn.Module
    >>> remote = registry.open("http://127.0.0.1:8000")   # the same verbs, over HTTP
"""

from __future__ import annotations

import builtins
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.alternatives import Alternative, choose_best, find_alternatives, select
from registry.catalog import SearchQuery, WorkspaceModule
from registry.core.manifest import Manifest
from registry.core.reference import Version, parse_reference
from registry.errors import RegistryError
from registry.loading import Loader
from registry.store.base import MODULES_DIR, Bump, RegisterResult, Resolved, Store, VersionRow

if TYPE_CHECKING:
    from collections.abc import Mapping

    from registry.composition.module import ComposedModule
    from registry.composition.spec import ComposeSpec
    from registry.composition.swap import SwapReport
    from registry.composition.train import TrainReport
    from registry.core.manifest import GitInfo, TrainingCost
    from registry.cost.measure import ModuleCost
    from registry.distillation.registered import DistillReport
    from registry.gate import GateReport
    from registry.gate.diff import ModuleChange
    from registry.lineage import LineageNode
    from registry.mlflow.publish import PublishResult
    from registry.nn.ports import PortModule
    from registry.shrink import ShrinkReport
    from registry.store.local import LocalStore
    from registry.store.recovery import Finding

__all__ = ["Registry", "SearchResult", "open", "schema"]


@dataclass(frozen=True)
class SearchResult:
    modules: list[VersionRow]  # the latest version of each matching module
    unregistered: list[WorkspaceModule]


class Registry:
    """The registry's verbs over one `Store` (local repository, server, or bundle)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.loader = Loader(store.resolve, choose=lambda text: choose_best(store, text))

    def __repr__(self) -> str:
        return f"Registry({self.store!r})"

    @property
    def root(self) -> Path | None:
        """The repository's work tree (None for a server or a bundle)."""
        return getattr(self.store, "root", None)

    @property
    def index_backend(self) -> str:
        """The index's database (`sqlite`, `postgresql`), or `none` for a store without one."""
        index = getattr(self.store, "index", None)
        if index is None:
            return "none"
        try:
            from sqlalchemy.engine import make_url

            return str(make_url(index.url).get_backend_name())
        except Exception:  # an odd URL must not take health down, nor leak
            return "unknown"

    def reads_from_memory(self) -> bool:
        """Whether a read now needs no git process, rebuild or network (a local index that
        matches the refs: a server answers such reads without a thread)."""
        index = getattr(self.store, "index", None)
        return bool(index is not None and index.is_fresh())

    def _local(self, verb: str) -> LocalStore:
        from registry.store.local import LocalStore

        if not isinstance(self.store, LocalStore):
            raise RegistryError(f"`{verb}` works on a local repository, not on "
                                f"{self.store.location}; run it in a clone (and unset "
                                "REGISTRY_URL)")
        return self.store

    # reading -------------------------------------------------------------------

    def resolve(self, ref: str) -> Resolved:
        return self.store.resolve(ref)

    def get(self, ref: str) -> Manifest:
        """The manifest `ref` resolves to."""
        return self.store.resolve(ref).manifest

    def load(self, ref: str) -> PortModule:
        """The torch module `ref` resolves to, with verified weights."""
        return self.loader.load(ref)

    def compose(self, spec: ComposeSpec | str | Path, *,
                replace: Mapping[str, str] | None = None) -> ComposedModule:
        """Build the network a compose spec (a file, or a `ComposeSpec`) describes; `replace`
        swaps nodes for modules (`{"residual": "lift@^1"}`), unchecked (`swap` checks)."""
        if replace:
            from registry.composition.spec import load_spec
            from registry.composition.swap import replace_nodes

            loaded = load_spec(Path(spec)) if isinstance(spec, str | Path) else spec
            spec = replace_nodes(loaded, replace)
        return self.loader.compose(spec)

    def list(self, *, kind: str | None = None, all_versions: bool = False,
             manifests: bool = False) -> builtins.list[VersionRow]:
        """Registered versions (the latest of each module unless `all_versions`); each
        row's `manifest` (a dict) only with `manifests`."""
        if not all_versions:
            return self.store.latest(kind, manifests=manifests)
        rows = self.store.versions(kind=kind, manifests=manifests)
        return sorted(rows, key=lambda r: (r.name, Version.parse(r.version)))

    def versions(self, name: str, *, manifests: bool = False) -> builtins.list[VersionRow]:
        """Every registered version of `name`, oldest first (manifests as for `list`)."""
        return sorted(self.store.versions(name, manifests=manifests),
                      key=lambda r: Version.parse(r.version))

    def stages(self, name: str | None = None) -> dict[str, dict[str, str]]:
        """`{module: {stage: version}}` of the current stage assignments."""
        found: dict[str, dict[str, str]] = {}
        for (module, stage), version in sorted(self.store.stages(name).items()):
            found.setdefault(module, {})[stage] = version
        return found

    def in_workspace(self, name: str) -> bool:
        """Whether `modules/<name>/` is in the working tree (registered or not, valid or not)."""
        workspace = getattr(self.store, "workspace_names", None)
        return workspace is not None and name in workspace()

    def unregistered(self) -> builtins.list[str]:
        """Modules in the working tree with no registered version."""
        return self.store.unregistered()

    def search(self, text: str | None = None, *, kind: str | None = None,
               input_unit: str | None = None, output_unit: str | None = None) -> SearchResult:
        """Modules whose name or summary holds `text`, of `kind`, with a port in a unit."""
        from registry.catalog import search_store

        query = SearchQuery.parse(text=text, kind=kind, input_unit=input_unit,
                                  output_unit=output_unit)
        return SearchResult(*search_store(self.store, self.root, query))

    def alternatives(self, ref: str, *, measure: bool = False) -> builtins.list[Alternative]:
        """`ref` and the modules with its interface (ports, order, units), most accurate first;
        `measure` re-evaluates each on `ref`'s evaluation and counts its cost afresh."""
        from registry.cost.measure import alternative_figures

        def measured(asked: Resolved, candidate: Resolved) -> dict[str, Any]:
            module = self.loader.build(candidate)
            return alternative_figures(module, candidate.manifest,
                                       self.loader.evaluate(asked, module)["nrmse"])

        return find_alternatives(self.store, ref, measure=measured if measure else None)

    def select(self, ref: str, *, max_nrmse: float, by: str = "flops",
               measure: bool = False) -> Alternative:
        """The cheapest alternative of `ref` by `by` (flops, energy, latency) within
        `max_nrmse`; `BudgetExceeded` naming the most accurate one when none is."""
        return select(self.alternatives(ref, measure=measure), max_nrmse=max_nrmse, by=by,
                      asked=ref)

    def lineage(self, ref: str) -> LineageNode:
        """Where `ref` came from: teachers (down to a composite's node) and parents."""
        from registry.lineage import lineage

        return lineage(self.store.resolve, ref)

    def cost(self, ref: str, *, table: str | None = None) -> ModuleCost:
        """Measure the cost afresh: FLOPs, parameters, latency, energy (modeled with `table`)."""
        from registry.cost.measure import measure_cost

        resolved = self.store.resolve(ref)
        return measure_cost(self.loader.build(resolved), resolved.manifest, table=table)

    def evaluate(self, ref: str) -> dict[str, float]:
        """Recompute accuracy metrics from the module's `evaluation` section."""
        return self.loader.evaluate(self.store.resolve(ref))

    def git_info(self, name: str) -> GitInfo:
        """The provenance a module `name` produced now records (HEAD, author, dirty)."""
        return self._local("git_info").git_info(f"{MODULES_DIR}/{name}")

    # writing -------------------------------------------------------------------

    def register(self, path: str | Path, *, bump: Bump | None = None) -> RegisterResult:
        """Validate, measure metrics and cost, commit and tag the module at `path`; with
        `bump`, changed content registers as the next version, not a `VersionConflict`."""
        pending = self.store.stage(Path(path), bump=bump)
        if pending.done is not None:
            return pending.done
        if self.store.measures or pending.workspace is None:
            return self.store.commit(pending, None)
        return self.store.commit(pending, self._measured(pending.workspace))

    def _measured(self, workspace: Resolved) -> Manifest:
        """The manifest with its cost and metrics measured (weights verified on the way)."""
        from registry.cost.measure import measure_cost

        manifest = workspace.manifest
        module = self.loader.build(workspace)
        update: dict[str, Any] = {"cost": measure_cost(module, manifest, root=self.root)
                                  .to_cost(manifest.cost)}
        if manifest.evaluation is not None:
            metrics = self.loader.evaluate(workspace, module)
            update["evaluation"] = manifest.evaluation.model_copy(update={"metrics": metrics})
        return manifest.model_copy(update=update)

    def register_upload(self, staging: Path, name: str) -> RegisterResult:
        """Register a module folder that arrived elsewhere (an upload) as `modules/<name>/`."""
        with self._local("register an upload").swapped_in(staging, name) as folder:
            return self.register(folder)

    def register_composite(
        self, net: ComposedModule, *, name: str, version: str = "1.0.0",
        training: TrainingCost | None = None, mlflow_run_id: str | None = None,
        evaluation_data: Path | None = None, summary: str | None = None, bump: Bump = "patch",
    ) -> RegisterResult:
        """Write `modules/<name>/` (spec pinned to the exact versions used, weights,
        manifest) and register it; a changed composite registers as the next `bump`."""
        from registry.composition.folder import write_composite

        local = self._local("register a composite")
        folder = write_composite(net, local.root / MODULES_DIR / name, version=version,
                                 training=training, mlflow_run_id=mlflow_run_id,
                                 evaluation_data=evaluation_data, summary=summary)
        return self.register(folder, bump=bump)

    def swap(self, ref: str, replacements: Mapping[str, str], *, ood: Path | None = None,
             register: str | None = None) -> SwapReport:
        """Replace nodes of the composite `ref` by modules (`{"residual": "lift@^1"}`), check
        the result end to end on its evaluation data (and `ood`), and with `register` register
        it as that composite's next minor version. A swap that loses more accuracy than the
        composite's budget allows raises `BudgetExceeded` with both errors."""
        import dataclasses

        from registry.composition.swap import register_swapped, swap_registered

        resolved = self.store.resolve(ref)
        net, report = swap_registered(self.loader, resolved, replacements, ood=ood)
        if register is None:
            return report
        tag = register_swapped(resolved, net, replacements, name=register,
                               register_composite=self.register_composite)
        return dataclasses.replace(report, registered=tag)

    def train(self, spec: ComposeSpec | ComposedModule | str | Path, data: Mapping[str, Any], *,
              target: str = "outputs", run_name: str | None = None,
              **options: Any) -> TrainReport:
        """Compose `spec` (or take a built network) and train its trainable parts on `data`,
        logged to MLflow (parameters, per-epoch metrics, training FLOPs, energy, commit)."""
        from registry.composition.module import ComposedModule
        from registry.composition.train import train_tracked

        local = self._local("train")
        net = spec if isinstance(spec, ComposedModule) else self.compose(spec)
        return train_tracked(net, data, root=local.root, commit=local.repo.head(),
                             target=target, run_name=run_name, **options)

    def distill(self, ref: str, *, budget_s: float = 60.0, name: str | None = None,
                out: Path | None = None, tolerance: float | None = None,
                node: str | None = None, data: builtins.list[Path] | None = None,
                jobs: int = 1, cluster: str | None = None) -> DistillReport:
        """Distil the module `ref` (queried as a black box) into an equation module; with
        `out`, write `<out>/<name>/` (module.yaml, pareto.png, distill.json) for `registry
        register`. The tolerance defaults to twice the teacher's test nRMSE. With `node`,
        distil that node of the composite `ref` from the values it saw while the composite
        ran over `data` (`.npz`: its training data; else its evaluation data) into `<out or
        modules>/<name or composite-node>/` (tolerance 1e-2). `jobs` / `cluster`: outputs
        side by side on Dask, each worker loading the teacher by its reference."""
        from registry.distillation.registered import distill_reference

        local, resolved = self._local("distill"), self.store.resolve(ref)
        load = partial(_load, str(local.root), resolved.exact, node)  # what a worker builds
        return distill_reference(self.loader, resolved, root=local.root, commit=local.repo.head(),
                                 budget_s=budget_s, name=name, out=out, tolerance=tolerance,
                                 node=node, data=data, jobs=jobs, cluster=cluster, load=load)

    def shrink(self, ref: str, *, name: str | None = None, out: Path | None = None,
               register: bool = False, **method: Any) -> ShrinkReport:
        """Write a cheaper variant of the network `ref` to `<out or modules>/<name>/`: one of
        `prune=AMOUNT` (`structured=True`), `quantize="int8"`, `dtype="bfloat16"`, or
        `student=[16, 16]` with `target_nrmse` (`steps` bounds any training); with `register`,
        register it (the next patch version if it changed)."""
        from registry.shrink import ShrinkRequest, shrink_registered

        local = self._local("shrink")
        report = shrink_registered(self.loader, self.store.resolve(ref),
                                   ShrinkRequest.parse(**method), root=local.root,
                                   commit=local.repo.head(), out=out or local.root / MODULES_DIR,
                                   name=name)
        if register:
            report.registered = self.register(report.folder, bump="patch").tag
        return report

    def promote(self, ref: str, stage: str) -> str:
        """Point `stage` at the version `ref` resolves to; returns the GTO stage tag."""
        return self.store.promote(ref, stage)

    def restore_tags(self) -> builtins.list[str]:
        """Recreate version tags missing from this clone from the registration commits."""
        return self._local("restore-tags").restore_tags()

    def doctor(self, *, repair: bool = False) -> tuple[builtins.list[Finding],
                                                       builtins.list[str]]:
        """(findings, actions): what interrupted registrations left, and with `repair` fixed."""
        return self._local("doctor").doctor(repair=repair)

    def new(self, name: str, *, kind: str = "equation") -> Path:
        """Create `modules/<name>/` with a valid starting manifest of `kind`."""
        from registry.scaffold import write_template

        parse_reference(name)
        return write_template(self._local("new").root / MODULES_DIR / name, name, kind)

    # the gate and publishing ---------------------------------------------------

    def check(self, *, base: str | None = None, all_modules: bool = False,
              use_cache: bool = True, jobs: int = 1, cluster: str | None = None) -> GateReport:
        """The gate: validate, reproduce accuracy, hold budgets, refuse regressions; checks
        run on `jobs` local worker processes or the Dask scheduler `cluster` (`jobs`)."""
        from registry.gate import run_gate

        return run_gate(self._local("check"), self.loader, base=base, all_modules=all_modules,
                        use_cache=use_cache, jobs=jobs, cluster=cluster)

    def diff(self, base: str, head: str | None = None) -> builtins.list[ModuleChange]:
        """What changed in `modules/` from `base` to `head` (default: the working tree)."""
        from registry.gate.diff import diff_revisions

        return diff_revisions(self._local("diff"), base, head)

    def publish(self, ref: str, *, tracking_uri: str | None = None) -> PublishResult:
        """Publish a registered version as an MLflow pyfunc model under its own name."""
        from registry.mlflow.publish import publish_mlflow

        return publish_mlflow(self._local("publish"), self.loader, ref,
                              tracking_uri=tracking_uri)


def open(path: str | Path | None = None, *, token: str | None = None,
         cache_dir: str | Path | None = None, timeout: float = 30.0) -> Registry:
    """The registry at `path`: a server URL, a published model's bundle, or a repository.

    Without `path`: `REGISTRY_URL` when set, else the repository around `REGISTRY_ROOT`
    (default: the cwd). `token`, `cache_dir` and `timeout` are for a server.
    """
    if path is None:
        path = os.environ.get("REGISTRY_URL") or os.environ.get("REGISTRY_ROOT", ".")
    text = str(path)
    if text.startswith(("http://", "https://")):
        from registry.store.http import HttpStore

        return Registry(HttpStore(text, token=token, cache_dir=cache_dir, timeout=timeout))
    from registry.store.bundle import BundleStore, is_bundle

    if is_bundle(Path(path)):
        return Registry(BundleStore(Path(path)))
    from registry.store.git import find_root
    from registry.store.local import LocalStore

    return Registry(LocalStore(find_root(Path(path))))


def _load(root: str, ref: str, node: str | None) -> Any:
    """`ref` (or its composite's `node`) loaded afresh, hashes checked: a task's teacher."""
    module = open(root).load(ref)
    return module if node is None else module.get_submodule(f"nodes.{node}")


def schema() -> dict[str, Any]:
    """The manifest's JSON Schema."""
    return Manifest.json_schema()
