"""The registry's exceptions: one tree, so callers catch what they mean.

    RegistryError                 base: the CLI prints one line and exits 1
    ├── ManifestError             a module.yaml (or compose spec) is malformed
    ├── ExpressionError           an equation string is refused by the safe parser
    ├── UnitError                 a unit string is unknown, or dimensions disagree
    ├── NotFound                  a module, version, stage or file does not exist
    ├── VersionConflict           a released version would change in place
    ├── IntegrityError            a file's sha256 differs from the manifest's
    ├── CompositionError          a compose spec wires ports that cannot connect
    ├── DistillationError         the distiller cannot produce an equation
    └── BudgetExceeded            a module breaks a budget it promises to keep

Every message says what is wrong, where (file and field), and what to do.
"""

from __future__ import annotations

__all__ = [
    "BudgetExceeded",
    "CompositionError",
    "DistillationError",
    "ExpressionError",
    "IntegrityError",
    "ManifestError",
    "NotFound",
    "RegistryError",
    "UnitError",
    "VersionConflict",
]


class RegistryError(Exception):
    """Base of every error the registry raises on purpose."""


class ManifestError(RegistryError):
    """A manifest or spec file is malformed: names the file, the field and the fix."""


class ExpressionError(RegistryError):
    """An expression was refused by the whitelist parser (nothing was executed)."""


class UnitError(RegistryError):
    """A unit is unknown, or an expression's dimension differs from its output's."""


class NotFound(RegistryError):
    """A module, version, stage or file does not exist."""


class VersionConflict(RegistryError):
    """A version already exists with different content."""


class IntegrityError(RegistryError):
    """A file's content does not match the sha256 recorded for it."""


class CompositionError(RegistryError):
    """Nodes or ports of a composition cannot be wired as written."""


class DistillationError(RegistryError):
    """The distiller could not produce an equation."""


class BudgetExceeded(RegistryError):
    """A module exceeds a budget its manifest promises."""
