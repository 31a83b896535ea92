"""The registry's exceptions: one tree, so callers catch what they mean.

    RegistryError                 base: the CLI prints one line and exits 1
    ├── ManifestError             a module.yaml (or compose spec) is malformed
    ├── ExpressionError           an equation string is refused by the safe parser
    ├── UnitError                 a unit string is unknown, or dimensions disagree
    ├── NotFound                  a module, version, stage or file does not exist
    ├── VersionConflict           a released version would change in place
    │   └── WorkingTreeDirty      an upload would replace a folder with uncommitted changes
    ├── IntegrityError            a file's sha256 differs from the manifest's
    ├── CompositionError          a compose spec wires ports that cannot connect
    ├── DistillationError         the distiller cannot produce an equation
    ├── ShrinkError               a network cannot be shrunk as asked (a student short of target)
    ├── BudgetExceeded            a module breaks a budget it promises to keep
    ├── PublishError              MLflow refused or failed a publish step
    ├── ServerUnreachable         the registry server did not answer
    └── Unauthorized              the server refused a write (no token, or a wrong one)

Every message says what is wrong, where (file and field), and what to do.

The wire table `WIRE` is the one mapping between these classes and HTTP: the
server answers an exception with its row's status and `type`
(`{"type": ..., "message": ...}`), and the HTTP store turns an answer back
into the class of the row whose `type` it carries (`wire_class`).
"""

from __future__ import annotations

__all__ = [
    "WIRE",
    "BudgetExceeded",
    "CompositionError",
    "DistillationError",
    "ExpressionError",
    "IntegrityError",
    "ManifestError",
    "NotFound",
    "PublishError",
    "RegistryError",
    "ServerUnreachable",
    "ShrinkError",
    "Unauthorized",
    "UnitError",
    "VersionConflict",
    "WorkingTreeDirty",
    "wire_class",
    "wire_status",
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


class WorkingTreeDirty(VersionConflict):
    """A module folder has uncommitted changes that an upload would overwrite."""


class IntegrityError(RegistryError):
    """A file's content does not match the sha256 recorded for it."""


class CompositionError(RegistryError):
    """Nodes or ports of a composition cannot be wired as written."""


class DistillationError(RegistryError):
    """The distiller could not produce an equation."""


class ShrinkError(RegistryError):
    """A network cannot be shrunk as asked: its architecture, the settings, a target missed."""


class BudgetExceeded(RegistryError):
    """A module exceeds a budget its manifest promises."""


class PublishError(RegistryError):
    """The MLflow tracking server or model registry refused or failed a publish step."""


class ServerUnreachable(RegistryError):
    """The registry server did not answer (down, wrong URL, timed out)."""


class Unauthorized(RegistryError):
    """The server refused a write: no token, or not one of its tokens."""


# (class, HTTP status, type): the first row whose class the exception is an
# instance of gives the answer. `IntegrityError` is 409, not 500: an upload's
# bytes disagree with the hashes its own manifest declares (the client can
# fix it; retrying cannot succeed), while a 500 stays reserved for bugs.
WIRE: tuple[tuple[type[RegistryError], int, str], ...] = (
    (NotFound, 404, "not_found"),
    (WorkingTreeDirty, 409, "working_tree_dirty"),
    (VersionConflict, 409, "version_conflict"),
    (IntegrityError, 409, "integrity_error"),
    (ManifestError, 422, "manifest_error"),
    (ExpressionError, 422, "expression_error"),
    (UnitError, 422, "unit_error"),
    (CompositionError, 422, "composition_error"),
    (BudgetExceeded, 422, "budget_exceeded"),
    (Unauthorized, 401, "unauthorized"),
    (DistillationError, 400, "distillation_error"),
    (ShrinkError, 400, "shrink_error"),
    (PublishError, 400, "publish_error"),
    (RegistryError, 400, "registry_error"),
)

# Types the server's request checks answer with (no exception of their own):
# what they mean to a client.
_REQUEST_TYPES: dict[str, type[RegistryError]] = {
    "invalid_reference": NotFound,
    "missing_file": NotFound,
    "invalid_upload": ManifestError,
    "invalid_path": ManifestError,
    "writes_disabled": Unauthorized,
}
_BY_TYPE = {type_: cls for cls, _, type_ in WIRE} | _REQUEST_TYPES
_BY_STATUS: dict[int, type[RegistryError]] = {404: NotFound, 409: VersionConflict}


def wire_status(exc: RegistryError) -> tuple[int, str]:
    """The HTTP status and `type` of a registry exception."""
    for cls, status, type_ in WIRE:
        if isinstance(exc, cls):
            return status, type_
    return 400, "registry_error"  # pragma: no cover - RegistryError is the last row


def wire_class(type_: str, status: int) -> type[RegistryError]:
    """The exception class for an error answer: by its `type`, else by its status."""
    return _BY_TYPE.get(type_) or _BY_STATUS.get(status, RegistryError)
