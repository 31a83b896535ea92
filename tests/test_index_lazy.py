"""Issue 16: a rebuild that meets many new versions parses each module's latest only; the
other rows are completed at their first read, and every read answers as a full rebuild
would (the latest flag, invalid versions, kinds, incremental rebuilds)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import registry
from registry.store import index_rebuild
from registry.store.index_schema import VERSIONS_TABLE
from tests.conftest import git
from tests.test_store import bump_gravity


def _drop_index(repo: Path) -> None:
    for path in (repo / ".registry").glob("index.sqlite*"):
        path.unlink()


def _pending(repo: Path) -> dict[str, int]:
    with sqlite3.connect(repo / ".registry" / "index.sqlite") as conn:
        rows = conn.execute(f"SELECT name, version, pending FROM {VERSIONS_TABLE} "
                            "ORDER BY name, version").fetchall()
    return {f"{n}@{v}": p for n, v, p in rows}


def _tag_outside(repo: Path, version: str, text: str | None = None) -> None:
    """Commit gravity at `version` (or `text` as its manifest) and tag it by hand."""
    if text is None:
        bump_gravity(repo, version, "G*m1*m2/r**2")
    else:
        (repo / "modules" / "gravity" / "module.yaml").write_text(text)
    git(repo, "commit", "-qam", f"gravity {version}")
    git(repo, "tag", "-a", f"gravity@v{version}", "-m", "outside the registry")


def _everything(repo: Path) -> list[tuple[str, str, str, str, dict | None]]:
    rows = registry.open(repo).list(all_versions=True, manifests=True)
    return [(r.name, r.version, r.kind, r.summary, r.manifest) for r in rows]


@pytest.fixture
def versions(reg, repo: Path) -> Path:
    """gravity 1.0.0, 1.1.0, 1.2.0 and drag 1.0.0, registered; HEAD's gravity manifest
    restored afterwards by the tests that break it."""
    reg.register(repo / "modules" / "gravity")
    reg.register(repo / "modules" / "drag")
    for version in ("1.1.0", "1.2.0"):
        _tag_outside(repo, version)
    return repo


def test_a_large_rebuild_parses_only_the_latest_and_completes_the_rest_on_read(
        versions: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = versions
    eager = _everything(repo)
    assert [(n, v) for n, v, *_ in eager] == [("drag", "1.0.0"), ("gravity", "1.0.0"),
                                              ("gravity", "1.1.0"), ("gravity", "1.2.0")]
    monkeypatch.setattr(index_rebuild, "LAZY_MIN", 1)
    _drop_index(repo)
    listed = registry.open(repo).list()
    assert [(r.name, r.version, r.kind) for r in listed] == [("drag", "1.0.0", "equation"),
                                                             ("gravity", "1.2.0", "equation")]
    assert _pending(repo) == {"drag@1.0.0": 0, "gravity@1.0.0": 1, "gravity@1.1.0": 1,
                              "gravity@1.2.0": 0}
    # One module's read completes that module only.
    assert [r.version for r in registry.open(repo).versions("gravity")] == [
        "1.0.0", "1.1.0", "1.2.0"]
    assert set(_pending(repo).values()) == {0}
    _drop_index(repo)
    registry.open(repo).list()
    assert _everything(repo) == eager  # every row and manifest as a full rebuild gives
    assert set(_pending(repo).values()) == {0}


def test_an_invalid_latest_version_is_passed_over_and_an_invalid_older_one_dropped(
        versions: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = versions
    good = (repo / "modules" / "gravity" / "module.yaml").read_text()
    _tag_outside(repo, "1.3.0", "schema: 1\nname: [not, a, manifest\n")  # not ours
    _tag_outside(repo, "1.4.0", "kind: nonsense\n")
    eager = _everything(repo)
    assert {(n, v) for n, v, *_ in eager} == {("drag", "1.0.0"), ("gravity", "1.0.0"),
                                              ("gravity", "1.1.0"), ("gravity", "1.2.0")}
    assert [(r.name, r.version) for r in registry.open(repo).list()] == [
        ("drag", "1.0.0"), ("gravity", "1.2.0")]
    monkeypatch.setattr(index_rebuild, "LAZY_MIN", 1)
    _drop_index(repo)
    assert [(r.name, r.version) for r in registry.open(repo).list()] == [
        ("drag", "1.0.0"), ("gravity", "1.2.0")]  # 1.4.0 and 1.3.0 tried and dropped
    assert "gravity@1.4.0" not in _pending(repo) and "gravity@1.3.0" not in _pending(repo)
    # An older invalid version, pending until read: dropped when completed.
    _tag_outside(repo, "0.9.0", "kind: [also, not, ours]\n")
    (repo / "modules" / "gravity" / "module.yaml").write_text(good)
    git(repo, "commit", "-qam", "restore")
    _drop_index(repo)
    registry.open(repo).list()
    assert _pending(repo)["gravity@0.9.0"] == 1
    assert _everything(repo) == eager
    assert "gravity@0.9.0" not in _pending(repo)


def test_kinds_among_all_versions_and_incremental_rebuilds_see_pending_rows(
        versions: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = versions
    monkeypatch.setattr(index_rebuild, "LAZY_MIN", 1)
    _drop_index(repo)
    reg = registry.open(repo)
    assert [r.name for r in reg.list()] == ["drag", "gravity"]
    # A kind filter over every version completes the pending rows before it filters.
    assert [r.ref for r in reg.list(kind="equation", all_versions=True)] == [
        "drag@1.0.0", "gravity@1.0.0", "gravity@1.1.0", "gravity@1.2.0"]
    assert reg.list(kind="network", all_versions=True) == []
    _drop_index(repo)
    assert [r.name for r in registry.open(repo).list()] == ["drag", "gravity"]
    # A new tag while older rows are pending: the flag moves, the pending rows stay so.
    _tag_outside(repo, "2.0.0")
    assert {r.name: r.version for r in registry.open(repo).list()} == {
        "drag": "1.0.0", "gravity": "2.0.0"}
    assert _pending(repo)["gravity@1.1.0"] == 1 and _pending(repo)["gravity@2.0.0"] == 0
    # The latest tag deleted while the next one down is pending: that one is parsed now.
    git(repo, "tag", "-d", "gravity@v2.0.0", "gravity@v1.2.0")
    assert {r.name: r.version for r in registry.open(repo).list()} == {
        "drag": "1.0.0", "gravity": "1.1.0"}
    assert _pending(repo)["gravity@1.1.0"] == 0 and _pending(repo)["gravity@1.0.0"] == 1
    assert reg.get("gravity@1.0.0").version == "1.0.0"  # completed on read
    assert set(_pending(repo).values()) == {0}


def test_a_reference_parses_only_the_row_it_names(
        versions: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first `show` after a cold listing: the version is chosen from the version strings,
    and only its row is parsed; a chosen row that is not ours is dropped and the choice is
    made again from the module's complete rows."""
    repo = versions
    registry.open(repo).promote("gravity@1.0.0", "production")
    monkeypatch.setattr(index_rebuild, "LAZY_MIN", 1)
    _drop_index(repo)
    reg = registry.open(repo)
    reg.list()
    assert _pending(repo) == {"drag@1.0.0": 0, "gravity@1.0.0": 1, "gravity@1.1.0": 1,
                              "gravity@1.2.0": 0}
    assert reg.get("gravity").version == "1.2.0"  # the latest: parsed already
    assert reg.get("gravity@^1").version == "1.2.0"
    assert _pending(repo)["gravity@1.0.0"] == 1 and _pending(repo)["gravity@1.1.0"] == 1
    resolved = registry.open(repo).resolve("gravity@1.1.0")
    assert (resolved.manifest.version, resolved.tag) == ("1.1.0", "gravity@v1.1.0")
    assert _pending(repo) == {"drag@1.0.0": 0, "gravity@1.0.0": 1, "gravity@1.1.0": 0,
                              "gravity@1.2.0": 0}
    # A stage names a pending version: that row alone is parsed.
    held = registry.open(repo).resolve("gravity#production")
    assert (held.manifest.version, held.stages) == ("1.0.0", ("production",))
    assert set(_pending(repo).values()) == {0}


def test_a_pending_version_that_is_not_ours_is_never_resolved(
        versions: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = versions
    good = (repo / "modules" / "gravity" / "module.yaml").read_text()
    _tag_outside(repo, "0.9.0", "kind: [not, ours]\n")
    (repo / "modules" / "gravity" / "module.yaml").write_text(good)
    git(repo, "commit", "-qam", "restore")
    monkeypatch.setattr(index_rebuild, "LAZY_MIN", 1)
    _drop_index(repo)
    registry.open(repo).list()
    assert _pending(repo)["gravity@0.9.0"] == 1
    with pytest.raises(registry.NotFound,
                       match=r"no version of `gravity` matches `gravity@0\.9\.0` "
                             r"\(registered: 1\.0\.0, 1\.1\.0, 1\.2\.0\)"):
        registry.open(repo).resolve("gravity@0.9.0")
    assert "gravity@0.9.0" not in _pending(repo)
    assert registry.open(repo).resolve("gravity@~1.0").manifest.version == "1.0.0"
