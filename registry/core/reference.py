"""References to module versions, and the semantic versions they select.

    gravity            the latest released version
    gravity@1.2.0      exactly that version (``@v1.2.0`` is accepted too)
    gravity@^1         the newest 1.x.y          (caret: same leftmost non-zero part)
    gravity@~1.2       the newest 1.2.y          (tilde: same major.minor)
    gravity#prod       the version the stage `prod` points at (GTO stage tags)
    gravity@workspace  the working tree, uncommitted

Example:
    >>> ref = parse_reference("gravity@^1")
    >>> ref.select(["0.9.0", "1.0.0", "1.4.2", "2.0.0"])
    '1.4.2'
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import total_ordering

from registry.errors import NotFound

__all__ = ["Reference", "Version", "parse_reference", "split_part"]

_NAME = r"[a-z][a-z0-9-]{0,62}"
_REFERENCE = re.compile(
    rf"^(?P<name>{_NAME})(?:@(?P<spec>[^#@\s]+)|#(?P<stage>[a-z][a-z0-9_-]{{0,40}}))?$"
)
# A part of a version: `baseball-flight@1.0.2#residual` (a node, or a dotted submodule path).
# `#` after `@version` names a part; `name#stage` (no version) stays a stage.
_PART = re.compile(rf"^(?P<ref>{_NAME}@[^#@\s]+)#(?P<part>[A-Za-z_][A-Za-z0-9_.]{{0,200}})$",
                   re.ASCII)
_VERSION = re.compile(
    r"^v?(?P<major>0|[1-9][0-9]*)\.(?P<minor>0|[1-9][0-9]*)\.(?P<patch>0|[1-9][0-9]*)"
    r"(?:-(?P<pre>[0-9A-Za-z.-]+))?(?:\+(?P<build>[0-9A-Za-z.-]+))?$"
)
_PARTIAL = re.compile(
    r"^(?P<op>[\^~])?(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*))?(?:\.(0|[1-9][0-9]*))?$"
)


@total_ordering
@dataclass(frozen=True)
class Version:
    """A semantic version with semver 2.0 precedence (build metadata ignored)."""

    major: int
    minor: int
    patch: int
    pre: tuple[int | str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> Version:
        match = _VERSION.match(text)
        if match is None:
            raise ValueError(f"{text!r} is not a semantic version such as 1.0.0")
        pre = tuple(int(p) if p.isdigit() else p for p in (match["pre"] or "").split(".") if p)
        return cls(int(match["major"]), int(match["minor"]), int(match["patch"]), pre)

    def _key(self) -> tuple[object, ...]:
        # A release sorts after its pre-releases; numeric identifiers before alphanumeric ones.
        pre_key = tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in self.pre)
        return (self.major, self.minor, self.patch, not self.pre, pre_key)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self._key() < other._key()

    def __str__(self) -> str:
        core = f"{self.major}.{self.minor}.{self.patch}"
        return core + ("-" + ".".join(map(str, self.pre)) if self.pre else "")


@dataclass(frozen=True)
class Reference:
    """A parsed reference; `select` picks a version among the registered ones."""

    name: str
    spec: str | None = None  # None: latest; "workspace"; "1.2.0"; "^1"; "~1.2"
    stage: str | None = None

    @property
    def is_workspace(self) -> bool:
        return self.spec == "workspace"

    def __str__(self) -> str:
        if self.stage:
            return f"{self.name}#{self.stage}"
        return f"{self.name}@{self.spec}" if self.spec else self.name

    def select(self, versions: Iterable[str]) -> str:
        """The newest of `versions` that this reference admits; `NotFound` if none."""
        parsed = sorted((Version.parse(v), v) for v in versions)
        if not parsed:
            raise NotFound(f"`{self.name}` has no registered versions; register one with "
                           f"`registry register modules/{self.name}`")
        low, high, exact = _bounds(self.spec)
        candidates = [
            (v, text) for v, text in parsed
            if (exact is None or v == exact)
            and (low is None or low <= v) and (high is None or v < high)
        ]
        if exact is None:  # ranges and "latest" skip pre-releases when a release matches
            releases = [c for c in candidates if not c[0].pre]
            candidates = releases or candidates
        if not candidates:
            known = ", ".join(text for _, text in parsed)
            raise NotFound(f"no version of `{self.name}` matches `{self}` (registered: {known})")
        return candidates[-1][1]


def _bounds(spec: str | None) -> tuple[Version | None, Version | None, Version | None]:
    """(inclusive low, exclusive high, exact) for a version spec."""
    if spec in (None, "latest"):
        return None, None, None
    assert spec is not None
    if _VERSION.match(spec):
        return None, None, Version.parse(spec)
    match = _PARTIAL.match(spec)
    if match is None:
        raise ValueError(spec)
    op, *parts = match.groups()
    given = [int(p) for p in parts if p is not None]
    major, minor, patch = [*given, 0, 0, 0][:3]
    low = Version(major, minor, patch)
    if op == "^":
        if major > 0 or len(given) == 1:
            high = Version(major + 1, 0, 0)
        elif minor > 0 or len(given) == 2:
            high = Version(0, minor + 1, 0)
        else:
            high = Version(0, 0, patch + 1)
    elif op == "~" and len(given) >= 2:
        high = Version(major, minor + 1, 0)
    elif len(given) == 1:  # `~1` or a bare `1`: any 1.x.y
        high = Version(major + 1, 0, 0)
    elif len(given) == 2:  # bare `1.2`: any 1.2.y
        high = Version(major, minor + 1, 0)
    else:
        high = Version(major, minor, patch + 1)
    return low, high, None


def parse_reference(text: str) -> Reference:
    """Parse `gravity`, `gravity@^1`, `gravity#prod`, ...; malformed text raises `NotFound`."""
    match = _REFERENCE.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise NotFound(
            f"{text!r} is not a module reference; write `name`, `name@1.2.0`, `name@^1`, "
            "`name@~1.2`, `name#stage` or `name@workspace`"
        )
    spec = match["spec"]
    if spec is not None and spec not in ("workspace", "latest"):
        try:
            _bounds(spec)
        except ValueError:
            raise NotFound(f"{text!r}: `{spec}` is not a version or range; write `1.2.0`, `^1` "
                           "or `~1.2`") from None
        spec = spec.removeprefix("v") if _VERSION.match(spec) else spec
    return Reference(match["name"], spec, match["stage"])


def split_part(text: str) -> tuple[str, str | None]:
    """`(reference, part)`: `baseball-flight@1.0.2#residual` gives
    `("baseball-flight@1.0.2", "residual")`; a reference without a part gives `(text, None)`."""
    match = _PART.match(text.strip())
    return (match["ref"], match["part"]) if match else (text, None)
