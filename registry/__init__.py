"""A registry of reusable, distilled ML modules.

Equations and networks live in a git repository with their provenance and
cost; `registry.open()` is the entry point.

Example:
    >>> import registry
    >>> gravity = registry.open().load("gravity@^1")
    >>> net = registry.compose("pipelines/baseball.compose.yaml")
    >>> result = registry.distill(fn, inputs={"x": ("m", (0.0, 1.0))}, outputs={"y": "m"})
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from registry.errors import (
    BudgetExceeded,
    CompositionError,
    DistillationError,
    ExpressionError,
    IntegrityError,
    ManifestError,
    NotFound,
    PublishError,
    RegistryError,
    ServerUnreachable,
    ShrinkError,
    Unauthorized,
    UnitError,
    VersionConflict,
)

if TYPE_CHECKING:
    from pathlib import Path

__version__ = "0.1.0"
__all__ = [
    "BudgetExceeded",
    "CompositionError",
    "DistillationError",
    "ExpressionError",
    "IntegrityError",
    "ManifestError",
    "NotFound",
    "PublishError",
    "Registry",
    "RegistryError",
    "ServerUnreachable",
    "ShrinkError",
    "Unauthorized",
    "UnitError",
    "VersionConflict",
    "compose",
    "distill",
    "open",
]

_LAZY = {"open": "registry.api", "Registry": "registry.api"}


# This package's own module imports nothing above `errors` (so that every layer
# may import `registry.errors`): the API is looked up on first use.


def compose(spec: Any | str | Path) -> Any:
    """Build the network a compose spec describes (a `ComposedModule`), its modules from
    `registry.open()`."""
    return __getattr__("open")().compose(spec)


def distill(fn: Any, *, inputs: dict[str, tuple[str, tuple[float, float]]],
            outputs: dict[str, str], budget_s: float = 60.0, **options: Any) -> Any:
    """Distil any callable `(batch, n_inputs) -> (batch, n_outputs)` into equations (a
    `registry.distillation.DistillResult`)."""
    import importlib

    run = importlib.import_module("registry.distillation").distill
    return run(fn, inputs=inputs, outputs=outputs, budget_s=budget_s, **options)


def __getattr__(name: str) -> Any:
    # The API pulls in pydantic and SQLAlchemy: import it on first use only.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'registry' has no attribute {name!r}")
