"""The MLflow side of `registry publish --mlflow`: a module folder bundle and its pyfunc.

A published model carries one artifact, `registry`: a small, self-contained
copy of the module's version (and, for a composite, of every module it wires
in), laid out so the registry's own builders read it like a working tree:

    registry/
      bundle.json                              what is inside, with each file's sha256
      <exact ref>/modules/<name>/module.yaml   e.g. gravity@1.0.1/modules/gravity/module.yaml
      <exact ref>/modules/<name>/weights.safetensors ...

Loading needs the `registry` package, not a git repository or a checkout:
the files are verified against `bundle.json`, weights again against the
manifest's sha256 (safetensors only), and the module is rebuilt the way
`Registry.load` builds it.

Example:
    >>> model = mlflow.pyfunc.load_model("models:/gravity@prod")
    >>> model.predict(pd.DataFrame({"m1": [1.0], "m2": [2.0], "r": [0.5]}))
                  F
    0  5.339440e-10
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from registry.api import Registry
from registry.errors import IntegrityError, ManifestError, NotFound
from registry.spec import MANIFEST_FILE, parse_manifest
from registry.store.git import GitRepo
from registry.store.store import MODULES_DIR, Resolved, Store

if TYPE_CHECKING:
    from registry.nn.ports import PortModule
    from registry.reference import Reference

__all__ = ["ARTIFACT", "BUNDLE_FILE", "BUNDLE_FORMAT", "RegistryModel", "load_bundle"]

ARTIFACT = "registry"
BUNDLE_FILE = "bundle.json"
BUNDLE_FORMAT = 1



class _BundleRepo(GitRepo):
    """A `GitRepo` stand-in for one bundled version: files come from disk, not from git."""

    def read_file(self, commit: str, path: str) -> bytes:
        target = self.root / path
        if not target.is_file():
            raise NotFound(f"{target}: missing from the published model's bundle; republish it "
                           "with `registry publish REF --mlflow`")
        return target.read_bytes()


class _BundleStore(Store):
    """Resolves the references a bundle holds (and only those): no git, no index."""

    def __init__(self, root: Path, modules: dict[str, Resolved], aliases: dict[str, str]) -> None:
        super().__init__(root)
        self._modules = modules
        self._aliases = aliases

    def resolve(self, ref: str | Reference) -> Resolved:
        text = ref if isinstance(ref, str) else str(ref)
        exact = self._aliases.get(text, text)
        found = self._modules.get(exact)
        if found is None:
            raise NotFound(f"`{text}` is not in the published model's bundle (it holds "
                           f"{', '.join(sorted(self._modules))}); republish with "
                           "`registry publish REF --mlflow`")
        return found


class _BundleRegistry(Registry):
    """A `Registry` over a bundle: `load` builds exactly as the real one does."""

    def __init__(self, root: Path, modules: dict[str, Resolved], aliases: dict[str, str]) -> None:
        self.root = root
        self.store = _BundleStore(root, modules, aliases)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def load_bundle(path: str | Path) -> tuple[PortModule, str]:
    """Build the module a bundle directory holds; returns it and its exact reference."""
    root = Path(path)
    index_path = root / BUNDLE_FILE
    if not index_path.is_file():
        raise NotFound(f"{index_path}: no such file; this is not a bundle written by "
                       "`registry publish --mlflow`")
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{index_path}: not valid JSON ({exc}); republish the module") from None
    found = index.get("format") if isinstance(index, dict) else None
    if found != BUNDLE_FORMAT:
        raise ManifestError(f"{index_path}: format {found!r} is not {BUNDLE_FORMAT}; load it "
                            "with the registry version that published it, or republish")
    modules: dict[str, Resolved] = {}
    for exact, entry in index["modules"].items():
        name = entry["name"]
        folder = root / exact / MODULES_DIR / name
        for relpath, sha in entry["files"].items():
            file = folder / relpath
            if not file.is_file():
                raise NotFound(f"{file}: missing from the published model's bundle; republish "
                               f"{exact} with `registry publish {exact} --mlflow`")
            if _sha256(file.read_bytes()) != sha:
                raise IntegrityError(f"{file}: sha256 differs from the bundle's record {sha}; "
                                     f"the model's artifacts were changed: republish {exact}")
        manifest = parse_manifest((folder / MANIFEST_FILE).read_text(encoding="utf-8"),
                                  source=f"{exact}:{MODULES_DIR}/{name}/{MANIFEST_FILE}")
        if manifest.name != name:
            raise ManifestError(f"{folder / MANIFEST_FILE}: name `{manifest.name}` differs from "
                                f"the bundle's `{name}`; republish {exact}")
        repo = _BundleRepo(root / exact)
        modules[exact] = Resolved(manifest, repo, entry.get("commit"), entry.get("tag"))
    reg = _BundleRegistry(root, modules, dict(index.get("resolve", {})))
    ref = index["ref"]
    return reg._build(reg.store.resolve(ref)), ref


def module_dtype(module: Any) -> Any:
    """The floating dtype of the module's parameters and buffers (float32 when it has none)."""
    import torch

    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.is_floating_point():
            return tensor.dtype
    return torch.float32


class RegistryModel(PythonModel):
    """MLflow pyfunc over a registry module: DataFrame of input ports -> DataFrame of outputs.

    Logged as "models from code" (a two-line entry file that instantiates
    this class), so nothing is pickled; the instance holds no weights:
    everything is read from the `registry` artifact in `load_context`.
    """

    def load_context(self, context: Any) -> None:
        module, ref = load_bundle(context.artifacts[ARTIFACT])
        self.module = module
        self.ref = ref
        self.dtype = module_dtype(module)

    def predict(self, context: Any, model_input: pd.DataFrame,
                params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Outputs for each row; also takes a dict of columns or an (n, n_inputs) array."""
        import numpy as np
        import torch

        module = self.module
        inputs, outputs = module.input_names, module.output_names
        if isinstance(model_input, pd.DataFrame):
            missing = [n for n in inputs if n not in model_input.columns]
            if missing:
                raise ValueError(f"{self.ref}: missing input columns {missing}; the model takes "
                                 f"{inputs}")
            array = model_input[inputs].to_numpy(dtype=np.float64)
        elif isinstance(model_input, dict):
            missing = [n for n in inputs if n not in model_input]
            if missing:
                raise ValueError(f"{self.ref}: missing inputs {missing}; the model takes {inputs}")
            array = np.stack([np.asarray(model_input[n], dtype=np.float64).reshape(-1)
                              for n in inputs], axis=1)
        else:
            array = np.asarray(model_input, dtype=np.float64)
            if array.ndim == 1 and len(inputs) == 1:
                array = array[:, None]
            if array.ndim != 2 or array.shape[1] != len(inputs):
                raise ValueError(f"{self.ref}: expected an array of shape (n, {len(inputs)}) "
                                 f"with columns {inputs}, got shape {array.shape}")
        with torch.no_grad():
            result = module(torch.tensor(array, dtype=self.dtype))
        assert isinstance(result, torch.Tensor)
        values = result.detach().cpu().to(torch.float64).numpy()
        index = model_input.index if isinstance(model_input, pd.DataFrame) else None
        return pd.DataFrame(values, columns=outputs, index=index)
