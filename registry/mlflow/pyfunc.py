"""The MLflow pyfunc of a published module: DataFrame in, DataFrame out.

A published model carries one artifact, `registry`: the bundle that
`registry.store.bundle.BundleStore` reads (a self-contained copy of the
version and its parents). Loading needs the `registry` package, not a git
repository or a checkout: the files are verified, and the module is rebuilt by
`registry.loading.Loader` exactly as `Registry.load` builds it.

Example:
    >>> model = mlflow.pyfunc.load_model("models:/gravity@prod")
    >>> model.predict(pd.DataFrame({"m1": [1.0], "m2": [2.0], "r": [0.5]}))
                  F
    0  5.339440e-10
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from registry.loading import Loader
from registry.store.bundle import BUNDLE_FILE, BUNDLE_FORMAT, BundleStore

if TYPE_CHECKING:
    from registry.nn.ports import PortModule

__all__ = ["ARTIFACT", "BUNDLE_FILE", "BUNDLE_FORMAT", "RegistryModel", "load_bundle"]

ARTIFACT = "registry"


def load_bundle(path: str | Path) -> tuple[PortModule, str]:
    """Build the module a bundle directory holds; returns it and its exact reference."""
    store = BundleStore(Path(path))
    return Loader(store.resolve).load(store.ref), store.ref


def module_dtype(module: Any) -> Any:
    """The dtype the module takes its inputs in: a network's declared one (its weights may be
    bfloat16 or int8), else that of its parameters and buffers (float32 when it has none)."""
    import torch

    declared = getattr(module, "input_dtype", None)
    if declared is not None:
        return declared
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
