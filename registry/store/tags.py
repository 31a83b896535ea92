"""Tag names, the one place they are formatted and parsed (GTO's format).

A version is the annotated tag `<name>@v<semver>`; a stage assignment is
`<name>#<stage>#<n>` (`<name>#<stage>!#<n>` unassigns), so `gto show` reads
the same registry. Names and versions are ASCII only: `[0-9]`, never `\\d`,
which in a Python regex also matches other scripts' digits.

Example:
    >>> version_tag("gravity", "1.0.0")
    'gravity@v1.0.0'
    >>> parse_version_tag("gravity@v1.0.0")
    ('gravity', '1.0.0')
"""

from __future__ import annotations

import re

__all__ = ["REGISTER_SUBJECT", "STAGE_TAG", "VERSION_TAG", "parse_register_subject",
           "parse_stage_tag", "parse_version_tag", "register_subject", "stage_tag",
           "tag_of_ref", "version_tag"]

_NAME = r"[a-z][a-z0-9-]{0,62}"
_VERSION = r"[0-9]+\.[0-9]+\.[0-9]+[0-9A-Za-z.+-]*"
VERSION_TAG = re.compile(rf"^(?P<name>{_NAME})@v(?P<version>{_VERSION})$", re.ASCII)
STAGE_TAG = re.compile(
    rf"^(?P<name>{_NAME})#(?P<stage>[a-z][a-z0-9_-]{{0,40}})(?P<unassign>!?)#(?P<n>[0-9]+)$",
    re.ASCII)
REGISTER_SUBJECT = re.compile(
    rf"^Register (?P<name>{_NAME})@(?P<version>[0-9]+\.[0-9]+\.[0-9]+\S*)$", re.ASCII)


def version_tag(name: str, version: str) -> str:
    """The tag of a registered version: `gravity@v1.0.0`."""
    return f"{name}@v{version}"


def tag_of_ref(ref: str) -> str:
    """The tag of an exact reference `name@version`."""
    name, _, version = ref.partition("@")
    return version_tag(name, version)


def parse_version_tag(tag: str) -> tuple[str, str] | None:
    """`(name, version)` of a version tag; None for any other tag."""
    match = VERSION_TAG.match(tag)
    return (match["name"], match["version"]) if match else None


def stage_tag(name: str, stage: str, number: int) -> str:
    """The `number`-th stage assignment of `name`: `gravity#prod#3`."""
    return f"{name}#{stage}#{number}"


def parse_stage_tag(tag: str) -> tuple[str, str, int, bool] | None:
    """`(name, stage, number, unassign)` of a stage tag; None for any other tag."""
    match = STAGE_TAG.match(tag)
    if match is None:
        return None
    return match["name"], match["stage"], int(match["n"]), bool(match["unassign"])


def register_subject(ref: str) -> str:
    """The subject of the commit that registers `name@version`."""
    return f"Register {ref}"


def parse_register_subject(subject: str) -> tuple[str, str] | None:
    match = REGISTER_SUBJECT.match(subject)
    return (match["name"], match["version"]) if match else None
