"""Publish a registered module to the MLflow Model Registry (`registry publish REF --mlflow`).

The module is logged as an MLflow pyfunc model in the experiment
`registry-publish` and registered under the module's own name:

- its artifact `registry` is a self-contained copy of the version's folder
  (module.yaml, weights, compose.yaml...) and, for a composite, of every
  module it wires in, so the model loads with the `registry` package alone:
  no git repository, no checkout (see `registry.mlflow.pyfunc`);
- its signature has one double column per input port and per output port;
- the model version is tagged `registry_ref`, `registry_version`,
  `registry_commit` (and `registry_tag`, `registry_kind`), described by the
  module's summary, and given the aliases `v<version>` (dots as `_`: `v1_0_1`)
  and one per registry stage currently on that version (`prod`...).

Publishing a version again reuses its MLflow model version and only
refreshes the aliases. Runs go to `tracking_uri`, else `MLFLOW_TRACKING_URI`,
else `sqlite:///<root>/mlruns.db`, artifacts to `<root>/mlartifacts` (the
convention of `registry.mlflow.tracking`).

Example:
    >>> result = publish_mlflow(registry.open(), "gravity@prod")
    >>> result.name, result.mlflow_version, result.aliases
    ('gravity', '1', ['v1_0_1', 'prod'])
    >>> mlflow.pyfunc.load_model("models:/gravity@prod").predict(frame)
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry.core.integrity import sha256_bytes
from registry.core.manifest import MANIFEST_FILE, Manifest
from registry.errors import IntegrityError, NotFound, PublishError
from registry.store.base import MODULES_DIR, Resolved

if TYPE_CHECKING:
    from registry.loading import Loader
    from registry.store.local import LocalStore

__all__ = ["EXPERIMENT", "PublishError", "PublishResult", "publish_mlflow", "version_alias"]

EXPERIMENT = "registry-publish"
MODEL_NAME = "model"  # the logged model's name inside its run
# What loading a published model imports (the `registry` package itself is not on
# PyPI under that name, so it is not listed: install it from the project).
_REQUIREMENTS = ("mlflow", "torch", "numpy", "pandas", "sympy", "pint", "pydantic", "pyyaml",
                 "safetensors", "sqlalchemy", "filelock")
_ENTRY_POINT = '''"""MLflow models-from-code entry point, written by `registry publish --mlflow`."""

import mlflow

from registry.mlflow.pyfunc import RegistryModel

mlflow.models.set_model(RegistryModel())
'''
_REMOTE_SCHEMES = ("http", "https", "databricks", "databricks-uc", "uc")
_RESERVED_ALIAS = re.compile(r"^(latest|[vV][0-9]+)$", re.IGNORECASE)


@dataclass(frozen=True)
class PublishResult:
    """Where a module version landed in the MLflow Model Registry."""

    ref: str  # the exact registry reference, e.g. gravity@1.0.1
    name: str  # the registered model's name (the module's)
    mlflow_version: str
    run_id: str
    aliases: list[str]
    model_uri: str  # models:/<name>/<version>
    tracking_uri: str = ""
    created: bool = True  # False: the version was published before (aliases refreshed)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def version_alias(version: str) -> str:
    """The MLflow alias of a semantic version: `v` + the version, dots (and `+`) as `_`."""
    return "v" + re.sub(r"[^\w-]", "_", version)


def publish_mlflow(store: LocalStore, loader: Loader, ref: str, *,
                   tracking_uri: str | None = None) -> PublishResult:
    """Log the module `ref` resolves to as a pyfunc model and register it under its name."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    resolved = loader.resolve(ref)
    manifest = resolved.manifest
    if resolved.commit is None:
        raise NotFound(f"{ref}: only registered versions can be published; register it first "
                       f"(`registry register {MODULES_DIR}/{manifest.name}`), then publish "
                       f"`{manifest.name}@VERSION`")
    from registry.mlflow.tracking import tracking_uri as default_uri

    uri = tracking_uri or default_uri(store.root)
    stages = store.stages(manifest.name)
    current = sorted(stage for (_, stage), version in stages.items()
                     if version == manifest.version)
    known = {s.stage for s in store.repo.stage_tags() if s.module == manifest.name}
    from mlflow.exceptions import MlflowException

    try:
        return _publish(store, loader, resolved, uri, current_stages=current, known_stages=known)
    except MlflowException as exc:
        first = (str(getattr(exc, "message", exc)).strip().splitlines() or ["(no message)"])[0]
        raise PublishError(f"publishing {manifest.ref} to MLflow at {uri} failed: {first}; "
                           "check --tracking-uri (or MLFLOW_TRACKING_URI) and that the server "
                           "is reachable") from None


def _publish(store: LocalStore, loader: Loader, resolved: Resolved, uri: str, *,
             current_stages: list[str], known_stages: set[str]) -> PublishResult:
    from mlflow import MlflowClient

    with _tracking_uri_set(uri):
        client = MlflowClient(tracking_uri=uri)
        return _publish_to(client, store, loader, resolved, uri, current_stages=current_stages,
                           known_stages=known_stages)


@contextmanager
def _tracking_uri_set(uri: str) -> Iterator[None]:
    """MLflow's global tracking URI (and `MLFLOW_TRACKING_URI`, which it sets) for a while.

    `mlflow.set_tracking_uri` also writes the environment variable; left behind, it
    would send this process's later runs (`registry train`...) to this URI.
    """
    import mlflow

    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None)  # type: ignore[arg-type]  # None: unset, use the env
        if before is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = before


def _publish_to(client: Any, store: LocalStore, loader: Loader, resolved: Resolved, uri: str, *,
                current_stages: list[str], known_stages: set[str]) -> PublishResult:
    import mlflow

    manifest = resolved.manifest
    name, exact = manifest.name, manifest.ref
    existing = _find_version(client, name, exact)
    created = existing is None
    if existing is None:
        with tempfile.TemporaryDirectory(prefix="registry-publish-") as tmp:
            bundle = Path(tmp) / "registry"
            write_bundle(store, loader, resolved, bundle)
            sample = _check_bundle(store, loader, resolved, bundle)
            entry = Path(tmp) / "registry_model.py"
            entry.write_text(_ENTRY_POINT)
            run_id, model_uri = _log_model(store, loader, resolved, bundle, entry, sample)
        tags = {"registry_ref": exact, "registry_version": manifest.version,
                "registry_commit": resolved.commit or "", "registry_tag": resolved.tag or "",
                "registry_kind": manifest.kind}
        version = mlflow.register_model(model_uri, name, tags=tags)
        if manifest.summary:
            client.update_model_version(name, str(version.version), description=manifest.summary)
            if not client.get_registered_model(name).description:
                client.update_registered_model(name, description=manifest.summary)
        mlflow_version = str(version.version)
    else:
        mlflow_version, run_id = str(existing.version), existing.run_id or ""
    aliases = _refresh_aliases(client, name, mlflow_version, manifest.version,
                               current_stages=current_stages, known_stages=known_stages)
    return PublishResult(ref=exact, name=name, mlflow_version=mlflow_version, run_id=run_id,
                         aliases=aliases, model_uri=f"models:/{name}/{mlflow_version}",
                         tracking_uri=uri, created=created)


def _find_version(client: Any, name: str, exact: str) -> Any:
    """The model version of `name` tagged `registry_ref == exact`, if one was published."""
    for version in client.search_model_versions(f"name = '{name}'"):
        if version.tags.get("registry_ref") == exact:
            return version
    return None


def _log_model(store: LocalStore, loader: Loader, resolved: Resolved, bundle: Path, entry: Path,
               example: Any) -> tuple[str, str]:
    import mlflow
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    manifest = resolved.manifest
    signature = ModelSignature(inputs=Schema([ColSpec("double", n) for n in manifest.inputs]),
                               outputs=Schema([ColSpec("double", n) for n in manifest.outputs]))
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        location = None
        if mlflow.get_tracking_uri().split(":", 1)[0] not in _REMOTE_SCHEMES:
            artifacts = (store.root / "mlartifacts").resolve()
            artifacts.mkdir(exist_ok=True)
            location = artifacts.as_uri()
        experiment_id = mlflow.create_experiment(EXPERIMENT, artifact_location=location)
    else:
        experiment_id = experiment.experiment_id
    tags = {"registry_ref": manifest.ref, "registry_commit": resolved.commit or "",
            "registry_kind": manifest.kind}
    with mlflow.start_run(experiment_id=experiment_id, run_name=f"publish-{manifest.ref}",
                          tags=tags) as run:
        mlflow.log_params({"ref": manifest.ref, "kind": manifest.kind,
                           "inputs": ",".join(manifest.inputs),
                           "outputs": ",".join(manifest.outputs)})
        info = mlflow.pyfunc.log_model(
            name=MODEL_NAME,
            python_model=str(entry),
            artifacts={"registry": str(bundle)},
            signature=signature,
            input_example=example,
            pip_requirements=_requirements(),
            metadata={"registry_ref": manifest.ref, "registry_commit": resolved.commit,
                      "requires": "the `registry` package (registry.mlflow.pyfunc)"},
        )
        return run.info.run_id, info.model_uri


def _requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for dist in _REQUIREMENTS:
        try:
            pins.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            pins.append(dist)
    return pins


def _refresh_aliases(client: Any, name: str, mlflow_version: str, version: str, *,
                     current_stages: list[str], known_stages: set[str]) -> list[str]:
    """Point `v<version>` and the current stages' aliases here; drop stages that moved away."""
    wanted = [version_alias(version)]
    wanted += [s for s in current_stages if not _RESERVED_ALIAS.match(s) and s not in wanted]
    for alias in wanted:
        client.set_registered_model_alias(name, alias, mlflow_version)
    held = client.get_registered_model(name).aliases or {}
    for alias, target in held.items():
        if str(target) == mlflow_version and alias in known_stages and alias not in wanted:
            client.delete_registered_model_alias(name, alias)
    return wanted


# the bundle --------------------------------------------------------------------------------


def _files(manifest: Manifest, *, evaluation: bool) -> list[str]:
    """The module folder's files its manifest names (what building it reads, and its data)."""
    files = [MANIFEST_FILE]
    if manifest.composition is not None:
        files.append(manifest.composition.spec)
    files += [ref.path for field, ref in manifest.files()
              if evaluation or field != "evaluation.data"]
    return list(dict.fromkeys(files))


def write_bundle(store: LocalStore, loader: Loader, resolved: Resolved,
                 folder: Path) -> dict[str, Any]:
    """Copy the version's files (and its parents', for a composite) into `folder`.

    Layout: `<exact ref>/modules/<name>/<file>`, and `bundle.json` recording
    each module's commit, tag and files with their sha256, and how the compose
    specs' module references resolved.
    """
    from registry.composition.spec import read_spec
    from registry.store.bundle import BUNDLE_FILE, BUNDLE_FORMAT

    modules: dict[str, dict[str, Any]] = {}
    resolve: dict[str, str] = {}

    def add(found: Resolved, *, root: bool) -> str:
        manifest = found.manifest
        exact = manifest.ref if found.commit is not None else f"{manifest.name}@workspace"
        if exact in modules:
            return exact
        target = folder / exact / MODULES_DIR / manifest.name
        files = {}
        for relpath in _files(manifest, evaluation=root):
            data = found.read(relpath)
            path = target / relpath
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            files[relpath] = sha256_bytes(data)
        modules[exact] = {"name": manifest.name, "version": manifest.version,
                          "commit": found.commit, "tag": found.tag, "files": files}
        if manifest.composition is not None:
            where = found.where(manifest.composition.spec)
            spec = read_spec(found.read(manifest.composition.spec), source=where)
            for node in spec.nodes.values():
                if node.module is not None:
                    resolve[node.module] = add(loader.resolve(node.module), root=False)
        return exact

    folder.mkdir(parents=True, exist_ok=True)
    ref = add(resolved, root=True)
    index = {"format": BUNDLE_FORMAT, "ref": ref, "modules": modules, "resolve": resolve}
    (folder / BUNDLE_FILE).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    return index


def _check_bundle(store: LocalStore, loader: Loader, resolved: Resolved, bundle: Path) -> Any:
    """Build the module from the bundle alone and compare it with `Registry.load` on a sample.

    Returns a few rows of the sample (a DataFrame of input ports): the model's input example.
    """
    import numpy as np
    import pandas as pd
    import torch

    from registry.mlflow.pyfunc import load_bundle, module_dtype

    manifest = resolved.manifest
    expected_module = loader.build(resolved)
    published, _ = load_bundle(bundle)
    rng = np.random.default_rng(0)
    columns = [rng.uniform(*port.range, size=16) if port.range is not None else np.ones(16)
               for port in manifest.inputs.values()]
    x = torch.as_tensor(np.stack(columns, axis=1), dtype=module_dtype(expected_module))
    with torch.no_grad():
        expected, got = expected_module(x), published(x)
    assert isinstance(expected, torch.Tensor) and isinstance(got, torch.Tensor)
    if not np.allclose(got.double().numpy(), expected.double().numpy(), rtol=1e-6, atol=0.0,
                       equal_nan=True):
        raise IntegrityError(f"{manifest.ref}: the module rebuilt from the published files "
                             "differs from `registry load`; nothing was published (report this)")
    return pd.DataFrame({n: col[:4] for n, col in zip(manifest.inputs, columns, strict=True)})
