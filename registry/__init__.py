"""A registry of reusable, distilled ML modules.

Equations and networks live in a git repository with their provenance and
cost; `registry.open()` is the entry point.

Example:
    >>> import registry
    >>> gravity = registry.open().load("gravity@^1")
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
    RegistryError,
    UnitError,
    VersionConflict,
)

if TYPE_CHECKING:
    from registry.api import Registry, open

__version__ = "0.1.0"
__all__ = [
    "BudgetExceeded",
    "CompositionError",
    "DistillationError",
    "ExpressionError",
    "IntegrityError",
    "ManifestError",
    "NotFound",
    "Registry",
    "RegistryError",
    "UnitError",
    "VersionConflict",
    "open",
]

_LAZY = {"open": "registry.api", "Registry": "registry.api"}


def __getattr__(name: str) -> Any:
    # The API pulls in pydantic and SQLAlchemy: import it on first use only.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'registry' has no attribute {name!r}")
