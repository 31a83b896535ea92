"""Manifest validation errors as lines: `file: field.path: what is wrong; fix`.

Pydantic's errors are rewritten with the fix for each kind (an unknown key
lists the allowed ones, a pattern says what it wants). A validator that raises
`OverLimit` (`registry.core.limits`) names a field below the one it validates,
so a limit on `network.config.hidden` is reported there.

Example:
    >>> format_validation_error(exc, "modules/drag/module.yaml")
    'modules/drag/module.yaml: nmae: Extra inputs are not permitted; remove it or ...'
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from registry.core.limits import OverLimit

__all__ = ["format_validation_error"]

# What to suggest for each kind of pydantic error.
_FIXES = {
    "extra_forbidden": "remove it or fix its spelling (allowed keys: {allowed})",
    "missing": "add it",
    "string_pattern_mismatch": "{pattern_hint}",
    "literal_error": "use one of the allowed values",
}


def format_validation_error(error: ValidationError, source: str, *,
                            model: type[BaseModel] | None = None) -> str:
    """One line per problem: `file: field.path: what is wrong; fix`."""
    from registry.core.manifest import PATTERN_HINTS, Manifest

    lines = []
    for item in error.errors():
        loc = [str(part) for part in item["loc"]]
        error_ = (item.get("ctx") or {}).get("error")
        if isinstance(error_, OverLimit):  # a validator naming the field below its own
            loc.append(error_.field)
        field = ".".join(loc) or "(top level)"
        message = item["msg"].removeprefix("Value error, ")
        fix = _FIXES.get(item["type"], "")
        if item["type"] == "extra_forbidden":
            fix = fix.format(allowed=", ".join(_allowed_keys(item["loc"][:-1], model or Manifest)))
        elif item["type"] == "string_pattern_mismatch":
            pattern = (item.get("ctx") or {}).get("pattern", "")
            fix = PATTERN_HINTS.get(pattern, f"match the pattern {pattern}")
        lines.append(f"{source}: {field}: {message}" + (f"; {fix}" if fix else ""))
    return "\n".join(lines)


def _allowed_keys(loc: tuple[Any, ...], root: type[BaseModel]) -> list[str]:
    model: Any = root
    for part in loc:
        field = _field_by_alias(model, str(part))
        if field is None:  # a dict key (port name, ...): the value type is the model
            continue
        annotation = field.annotation
        model = _model_in(annotation)
        if model is None:
            return []
    return sorted(f.alias or n for n, f in model.model_fields.items())


def _field_by_alias(model: Any, key: str) -> Any:
    for name, field in model.model_fields.items():
        if key in (name, field.alias):
            return field
    return None


def _model_in(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()):
        found = _model_in(arg)
        if found is not None:
            return found
    return None
