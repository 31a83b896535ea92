"""Module references (`gravity@^1`) and the semantic versions they select."""

from __future__ import annotations

import random

import pytest

from registry.core.reference import Reference, Version, parse_reference
from registry.errors import NotFound

# --------------------------------------------------------------------------- parse_reference


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("gravity", Reference("gravity")),
        ("  gravity  ", Reference("gravity")),
        ("drag-net", Reference("drag-net")),
        ("gravity@1.2.0", Reference("gravity", "1.2.0")),
        ("gravity@v1.2.0", Reference("gravity", "1.2.0")),
        ("gravity@1.2.0-rc.1", Reference("gravity", "1.2.0-rc.1")),
        ("gravity@^1", Reference("gravity", "^1")),
        ("gravity@^0.2", Reference("gravity", "^0.2")),
        ("gravity@~1.2", Reference("gravity", "~1.2")),
        ("gravity@1", Reference("gravity", "1")),
        ("gravity@1.2", Reference("gravity", "1.2")),
        ("gravity#prod", Reference("gravity", stage="prod")),
        ("gravity#pre_prod-2", Reference("gravity", stage="pre_prod-2")),
        ("gravity@workspace", Reference("gravity", "workspace")),
        ("gravity@latest", Reference("gravity", "latest")),
    ],
)
def test_parse_reference(text: str, expected: Reference) -> None:
    assert parse_reference(text) == expected


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("gravity", "gravity"),
        ("gravity@v1.2.0", "gravity@1.2.0"),
        ("gravity@^1", "gravity@^1"),
        ("gravity#prod", "gravity#prod"),
        ("gravity@workspace", "gravity@workspace"),
    ],
)
def test_a_reference_prints_as_written(text: str, shown: str) -> None:
    assert str(parse_reference(text)) == shown


def test_workspace_reference_says_so() -> None:
    assert (parse_reference("gravity@workspace").is_workspace,
            parse_reference("gravity@1.0.0").is_workspace) == (True, False)


_NOT_A_REFERENCE = ("is not a module reference; write `name`, `name@1.2.0`, `name@^1`, "
                    "`name@~1.2`, `name#stage` or `name@workspace`")


_WRITE = "; write `1.2.0`, `^1` or `~1.2`"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", f"'' {_NOT_A_REFERENCE}"),
        ("Gravity", f"'Gravity' {_NOT_A_REFERENCE}"),
        ("1gravity", f"'1gravity' {_NOT_A_REFERENCE}"),
        ("grav ity", f"'grav ity' {_NOT_A_REFERENCE}"),
        ("gravity@", f"'gravity@' {_NOT_A_REFERENCE}"),
        ("gravity#", f"'gravity#' {_NOT_A_REFERENCE}"),
        ("gravity#Prod", f"'gravity#Prod' {_NOT_A_REFERENCE}"),
        ("gravity@1#prod", f"'gravity@1#prod' {_NOT_A_REFERENCE}"),
        ("gravity@1@2", f"'gravity@1@2' {_NOT_A_REFERENCE}"),
        ("../gravity", f"'../gravity' {_NOT_A_REFERENCE}"),
        (None, f"None {_NOT_A_REFERENCE}"),
        ("gravity@x", "'gravity@x': `x` is not a version or range" + _WRITE),
        ("gravity@^", "'gravity@^': `^` is not a version or range" + _WRITE),
        ("gravity@>=1", "'gravity@>=1': `>=1` is not a version or range" + _WRITE),
        ("gravity@1.2.3.4", "'gravity@1.2.3.4': `1.2.3.4` is not a version or range" + _WRITE),
        ("gravity@v^1", "'gravity@v^1': `v^1` is not a version or range" + _WRITE),
    ],
)
def test_parse_reference_refuses(text: str, message: str) -> None:
    with pytest.raises(NotFound) as caught:
        parse_reference(text)  # type: ignore[arg-type]

    assert str(caught.value) == message


# --------------------------------------------------------------------------- select

VERSIONS = [
    "0.1.0", "0.2.0", "0.2.5", "0.3.0", "1.0.0", "1.2.0", "1.2.3", "1.3.0-rc.1", "1.4.0",
    "2.0.0-alpha.1", "2.0.0-beta",
]


@pytest.mark.parametrize(
    ("reference", "versions", "selected"),
    [
        ("gravity", VERSIONS, "1.4.0"),  # latest skips pre-releases
        ("gravity@latest", VERSIONS, "1.4.0"),
        ("gravity@^1", VERSIONS, "1.4.0"),
        ("gravity@^1.3", VERSIONS, "1.4.0"),
        ("gravity@^0.2", VERSIONS, "0.2.5"),
        ("gravity@^0", VERSIONS, "0.3.0"),
        ("gravity@^0.0.3", ["0.0.3", "0.0.4", "0.1.0"], "0.0.3"),
        ("gravity@~1.2", VERSIONS, "1.2.3"),
        ("gravity@~1", VERSIONS, "1.4.0"),
        ("gravity@1", VERSIONS, "1.4.0"),
        ("gravity@1.2", VERSIONS, "1.2.3"),
        ("gravity@1.2.0", VERSIONS, "1.2.0"),
        ("gravity@v1.2.0", VERSIONS, "1.2.0"),
        ("gravity@1.3.0-rc.1", VERSIONS, "1.3.0-rc.1"),  # an exact pre-release is selectable
        ("gravity@2.0.0-beta", VERSIONS, "2.0.0-beta"),
        ("gravity@1.2.0", ["1.2.0+build.7"], "1.2.0+build.7"),  # build metadata is ignored
        ("gravity", ["1.0.0-alpha", "1.0.0-beta"], "1.0.0-beta"),  # only pre-releases: newest
        ("gravity@^1", ["1.4.0", "1.0.0", "1.2.3"], "1.4.0"),  # order of the input is irrelevant
        ("gravity@^1", ["1.9.0", "1.10.0"], "1.10.0"),  # numeric, not text, order
    ],
)
def test_select(reference: str, versions: list[str], selected: str) -> None:
    assert parse_reference(reference).select(versions) == selected


@pytest.mark.parametrize(
    ("reference", "versions", "message"),
    [
        ("gravity@^3", VERSIONS,
         "no version of `gravity` matches `gravity@^3` (registered: " + ", ".join(VERSIONS) + ")"),
        # ^2 means >=2.0.0 <3.0.0, and 2.0.0-beta precedes 2.0.0.
        ("gravity@^2", ["2.0.0-alpha", "2.0.0-beta"],
         "no version of `gravity` matches `gravity@^2` (registered: 2.0.0-alpha, 2.0.0-beta)"),
        ("gravity@~1.5", ["1.4.0", "1.6.0"],
         "no version of `gravity` matches `gravity@~1.5` (registered: 1.4.0, 1.6.0)"),
        ("gravity@1.2.1", ["1.2.0", "1.2.2"],
         "no version of `gravity` matches `gravity@1.2.1` (registered: 1.2.0, 1.2.2)"),
        ("gravity", [],
         "`gravity` has no registered versions; register one with "
         "`registry register modules/gravity`"),
    ],
)
def test_select_refuses_when_nothing_matches(
    reference: str, versions: list[str], message: str
) -> None:
    with pytest.raises(NotFound) as caught:
        parse_reference(reference).select(versions)

    assert str(caught.value) == message


# --------------------------------------------------------------------------- Version

SEMVER_ORDER = [  # the example from semver.org 2.0, item 11, plus build metadata
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.1.0",
    "1.10.0",
    "2.0.0",
]


def test_versions_sort_by_semver_precedence() -> None:
    shuffled = SEMVER_ORDER[:]
    random.Random(0).shuffle(shuffled)

    assert sorted(shuffled, key=Version.parse) == SEMVER_ORDER


@pytest.mark.parametrize(
    ("lower", "higher"),
    [
        ("1.0.0-alpha", "1.0.0-alpha.1"),
        ("1.0.0-alpha.1", "1.0.0-beta"),
        ("1.0.0-beta", "1.0.0"),
        ("1.0.0-1", "1.0.0-alpha"),  # numeric identifiers sort before alphanumeric ones
        ("1.0.0-2", "1.0.0-10"),  # and compare as numbers
        ("1.9.9", "1.10.0"),
        ("0.9.0", "1.0.0-alpha"),
    ],
)
def test_version_precedence(lower: str, higher: str) -> None:
    assert Version.parse(lower) < Version.parse(higher)


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("1.2.3", Version(1, 2, 3)),
        ("v1.2.3", Version(1, 2, 3)),
        ("1.0.0-alpha.1", Version(1, 0, 0, ("alpha", 1))),
        ("1.0.0+build.5", Version(1, 0, 0)),  # build metadata has no precedence
    ],
)
def test_version_parse(text: str, version: Version) -> None:
    assert Version.parse(text) == version


@pytest.mark.parametrize("text", ["1.0", "01.0.0", "1.0.0-", "x", "1.0.0.0", ""])
def test_version_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError, match=r"is not a semantic version such as 1\.0\.0$"):
        Version.parse(text)


@pytest.mark.parametrize(("text", "shown"), [("v1.2.3", "1.2.3"), ("1.0.0-rc.1+b", "1.0.0-rc.1")])
def test_version_prints_without_prefix_or_build(text: str, shown: str) -> None:
    assert str(Version.parse(text)) == shown
