"""The git-native store: register, versions, references, conflicts, the index cache."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import registry
from registry.errors import ManifestError, NotFound, VersionConflict
from tests.conftest import git


def bump_gravity(repo: Path, version: str, equation: str) -> None:
    path = repo / "modules" / "gravity" / "module.yaml"
    data = yaml.safe_load(path.read_text())
    data["version"] = version
    data["equation"]["F"] = equation
    data.pop("evaluation", None)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_register_commits_and_tags_in_gto_format(reg, repo: Path) -> None:
    result = reg.register(repo / "modules" / "gravity")
    assert (result.tag, result.created) == ("gravity@v1.0.0", True)
    assert git(repo, "rev-list", "-n1", "gravity@v1.0.0").strip() == result.commit
    assert git(repo, "cat-file", "-t", "gravity@v1.0.0").strip() == "tag"  # annotated


def test_register_fills_provenance_and_metrics(reg, repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD").strip()
    manifest = reg.register(repo / "modules" / "gravity").manifest
    assert manifest.provenance.git is not None
    assert (manifest.provenance.git.commit, manifest.provenance.git.author) == (
        head, "Test Author <test@example.com>")
    assert manifest.evaluation is not None and manifest.evaluation.metrics["r2"] >= 0.999999


def test_same_content_again_is_a_no_op(reg, repo: Path) -> None:
    first = reg.register(repo / "modules" / "gravity")
    again = reg.register(repo / "modules" / "gravity")
    assert (again.created, again.commit) == (False, first.commit)


def test_changed_content_with_the_same_version_is_a_conflict(reg, repo: Path) -> None:
    reg.register(repo / "modules" / "gravity")
    path = repo / "modules" / "gravity" / "module.yaml"
    path.write_text(path.read_text().replace("Newtonian attraction", "Attraction"))
    with pytest.raises(VersionConflict, match=r"gravity@1\.0\.0 is already registered .* bump "
                       r"`version` \(latest is 1\.0\.0\)"):
        reg.register(path.parent)
    assert git(repo, "tag", "--list").split() == ["gravity@v1.0.0"]


def test_bump_registers_changed_content_as_the_next_patch(reg, repo: Path) -> None:
    reg.register(repo / "modules" / "gravity")
    path = repo / "modules" / "gravity" / "module.yaml"
    path.write_text(path.read_text().replace("Newtonian attraction", "Attraction"))
    assert reg.register(path.parent, bump="patch").tag == "gravity@v1.0.1"


def test_old_version_is_read_from_its_tag_not_the_working_tree(reg, repo: Path) -> None:
    import torch

    reg.register(repo / "modules" / "gravity")
    bump_gravity(repo, "1.1.0", "2*G*m1*m2/r**2")
    reg.register(repo / "modules" / "gravity")
    x = torch.tensor([[1.0, 2.0, 2.0]])
    old, new = reg.load("gravity@1.0.0"), reg.load("gravity@^1")
    assert str(old.sympy()["F"]) == "G*m1*m2/r**2"
    assert str(new.sympy()["F"]) == "2*G*m1*m2/r**2"
    assert torch.allclose(new(x), 2 * old(x))


@pytest.mark.parametrize(("ref", "version"), [
    ("gravity", "1.1.0"), ("gravity@1.0.0", "1.0.0"), ("gravity@v1.0.0", "1.0.0"),
    ("gravity@^1", "1.1.0"), ("gravity@~1.0", "1.0.0"), ("gravity#prod", "1.0.0"),
])
def test_references_resolve(reg, repo: Path, ref: str, version: str) -> None:
    reg.register(repo / "modules" / "gravity")
    reg.promote("gravity@1.0.0", "prod")
    bump_gravity(repo, "1.1.0", "2*G*m1*m2/r**2")
    reg.register(repo / "modules" / "gravity")
    assert reg.get(ref).version == version


def test_workspace_reference_reads_uncommitted_changes(reg, repo: Path) -> None:
    reg.register(repo / "modules" / "gravity")
    bump_gravity(repo, "2.0.0", "3*G*m1*m2/r**2")
    assert reg.get("gravity@workspace").version == "2.0.0"
    assert reg.get("gravity").version == "1.0.0"


@pytest.mark.parametrize(("ref", "message"), [
    ("nothing", "no module `nothing`"),
    ("gravity@2.0.0", "no version of `gravity` matches `gravity@2.0.0` (registered: 1.0.0)"),
    ("gravity#prod", "`gravity` has no version in stage `prod`"),
    ("Gravity!", "is not a module reference"),
    ("drag", "`drag` is in the working tree but not registered"),
])
def test_unresolvable_references_say_why(reg, repo: Path, ref: str, message: str) -> None:
    reg.register(repo / "modules" / "gravity")
    with pytest.raises(NotFound) as caught:
        reg.get(ref)
    assert message in str(caught.value)


def test_gto_lists_registered_versions_and_stages(reg, repo: Path) -> None:
    reg.register(repo / "modules" / "gravity")
    reg.promote("gravity@1.0.0", "prod")
    gto = Path(sys.executable).with_name("gto")
    out = subprocess.run([str(gto), "show", "--json"], cwd=repo, capture_output=True, text=True,
                         check=True).stdout
    import json

    assert json.loads(out)["gravity"]["version"] == "v1.0.0"
    assert json.loads(out)["gravity"]["stage"] == {"prod": "v1.0.0"}


def test_index_is_a_cache_deleting_it_loses_nothing(reg, repo: Path) -> None:
    reg.register(repo / "modules" / "gravity")
    reg.register(repo / "modules" / "drag")
    before = [(r.name, r.version, r.commit) for r in reg.list()]
    for path in (repo / ".registry").glob("index.sqlite*"):
        path.unlink()
    after = [(r.name, r.version, r.commit) for r in registry.open(repo).list()]
    assert after == before == [(n, "1.0.0", after[i][2]) for i, n in enumerate(["drag", "gravity"])]


def test_index_follows_tags_made_outside_the_registry(reg, repo: Path) -> None:
    reg.register(repo / "modules" / "gravity")
    assert [r.name for r in reg.list()] == ["gravity"]
    git(repo, "tag", "-d", "gravity@v1.0.0")
    assert reg.list() == []


def test_the_latest_flag_follows_registrations_pre_releases_and_deleted_tags(
        reg, repo: Path) -> None:
    def latest() -> dict[str, str]:
        return {r.name: r.version for r in reg.list()}

    reg.register(repo / "modules" / "gravity")
    reg.register(repo / "modules" / "drag")
    head = git(repo, "rev-parse", "HEAD").strip()
    for version in ("1.10.0", "1.9.0", "2.0.0-rc.1"):  # 1.10 > 1.9 by semver, not by text
        bump_gravity(repo, version, "G*m1*m2/r**2")
        git(repo, "commit", "-qam", f"gravity {version}")
        git(repo, "tag", "-a", f"gravity@v{version}", "-m", "outside the registry")
    assert latest() == {"drag": "1.0.0", "gravity": "1.10.0"}  # a release beats an rc
    git(repo, "tag", "-d", "gravity@v1.10.0")
    assert latest() == {"drag": "1.0.0", "gravity": "1.9.0"}  # the flag moved back
    git(repo, "tag", "-a", "gravity@v1.10.0", "-m", "again", head)  # an older commit
    git(repo, "tag", "-d", "gravity@v1.9.0", "gravity@v2.0.0-rc.1")
    assert latest() == {"drag": "1.0.0", "gravity": "1.10.0"}
    assert [r.version for r in reg.versions("gravity")] == ["1.0.0", "1.10.0"]
    # Rebuilt from nothing, the same answer; one flagged row a module in the table.
    for path in (repo / ".registry").glob("index.sqlite*"):
        path.unlink()
    assert {r.name: r.version for r in registry.open(repo).list()} == latest()
    import sqlite3

    from registry.store.index_schema import VERSIONS_TABLE

    with sqlite3.connect(repo / ".registry" / "index.sqlite") as conn:
        flagged = conn.execute(f"SELECT name, version FROM {VERSIONS_TABLE} WHERE latest = 1"
                               " ORDER BY name").fetchall()
    assert flagged == [("drag", "1.0.0"), ("gravity", "1.10.0")]


def test_a_fresh_index_is_read_without_a_git_process(reg, repo: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16: every read spawned `git rev-parse` and `git for-each-ref` before looking
    at the cache; the refs' file stats now tell that nothing changed."""
    import time

    from registry.store.git import RACY_NS, GitRepo

    reg.register(repo / "modules" / "gravity")
    # A read within a clock tick of the tag's write is checked with git (the racy rule,
    # tested below); on a loaded machine the first read can fall inside it. Past it, one
    # read records the refs' state, and the reads after it need no git.
    time.sleep(2 * RACY_NS / 1e9)
    assert [r.name for r in reg.list()] == ["gravity"]
    calls: list[tuple[str, ...]] = []
    real = GitRepo.run

    def counting(self: GitRepo, *args: str, **kw: object) -> str:
        calls.append(args)
        return real(self, *args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(GitRepo, "run", counting)
    for _ in range(3):
        assert [r.name for r in reg.list()] == ["gravity"]
    assert calls == []
    # Never stale: a tag made or deleted by git itself, a registration, a packing of refs.
    git(repo, "tag", "-d", "gravity@v1.0.0")
    assert reg.list() == []
    git(repo, "tag", "-a", "-m", "again", "gravity@v1.0.0", "HEAD")
    assert [r.version for r in reg.list()] == ["1.0.0"]
    reg.register(repo / "modules" / "drag")
    assert [r.name for r in reg.list()] == ["drag", "gravity"]
    git(repo, "pack-refs", "--all")
    git(repo, "tag", "-d", "drag@v1.0.0")
    assert [r.name for r in reg.list()] == ["gravity"]
    assert calls  # each change was checked with git


def test_reads_are_remembered_until_the_refs_change(reg, repo: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16: a server's read built and ran a SQL query each time (0.4 ms a manifest
    GET); while the refs' files are unchanged the rows are answered from memory, and any
    change (registration, promotion, a tag made by git) is seen on the next read."""
    import time

    import sqlalchemy as sa

    from registry.store.git import RACY_NS

    reg.register(repo / "modules" / "gravity")
    time.sleep(2 * RACY_NS / 1e9)
    assert reg.resolve("gravity@1.0.0").manifest.version == "1.0.0"
    assert reg.reads_from_memory()
    from registry.store import index as index_module

    queries: list[str] = []  # reads go through sqlite3 (`read_sqlite`), writes the engine
    sa.event.listen(reg.store.index.engine, "before_cursor_execute",
                    lambda *a, **k: queries.append(str(a[2])))
    real_read = index_module.read_sqlite
    monkeypatch.setattr(index_module, "read_sqlite",
                        lambda path, sql, params: queries.append(sql) or real_read(path, sql,
                                                                                   params))
    for _ in range(3):
        assert reg.resolve("gravity@1.0.0").manifest.version == "1.0.0"
    assert queries == []
    reg.promote("gravity@1.0.0", "prod")
    assert reg.resolve("gravity#prod").manifest.version == "1.0.0"
    git(repo, "tag", "-a", "-m", "by hand", "gravity@v1.0.1", "HEAD")
    assert not reg.reads_from_memory()
    assert [r.version for r in reg.store.versions("gravity")] == ["1.0.0", "1.0.1"]
    time.sleep(2 * RACY_NS / 1e9)
    assert [r.version for r in reg.store.versions("gravity")] == ["1.0.0", "1.0.1"]
    assert reg.reads_from_memory() and any("SELECT" in q for q in queries)


def test_a_ref_changed_within_a_clock_tick_is_checked_with_git(reg, repo: Path) -> None:
    """File times are coarse (a kernel tick): a second tag written in the same tick as the
    state was read would leave the state as it was. So a state whose newest file time is
    within RACY_NS of now is not trusted (git's "racy" rule)."""
    import os
    import time

    from registry.store.git import RACY_NS, GitRepo

    reg.register(repo / "modules" / "gravity")
    tags = repo / ".git" / "refs" / "tags"
    git_repo = GitRepo(repo)
    settled = time.time_ns() - 10 * RACY_NS
    for path in (tags, *tags.iterdir(), repo / ".git" / "HEAD",
                 repo / ".git" / "refs" / "heads" / "main"):
        os.utime(path, ns=(settled, settled))
    assert git_repo.ref_state() is not None
    now = time.time_ns()
    os.utime(tags, ns=(now, now))
    assert git_repo.ref_state() is None


def test_module_outside_modules_folder_is_refused(reg, repo: Path, tmp_path: Path) -> None:
    stray = tmp_path / "elsewhere" / "gravity"
    stray.parent.mkdir()
    (repo / "modules" / "gravity").rename(stray)
    with pytest.raises(ManifestError, match="modules live in"):
        reg.register(stray)


def test_unit_error_is_refused_before_anything_is_written(reg, repo: Path) -> None:
    path = repo / "modules" / "gravity" / "module.yaml"
    data = yaml.safe_load(path.read_text())
    data["equation"]["F"] = "G*m1*m2/r**3"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    text = path.read_text()
    with pytest.raises(registry.UnitError, match=r"equation\.F: `F` must have dimension"):
        reg.register(path.parent)
    assert (path.read_text(), git(repo, "tag", "--list")) == (text, "")


def test_failure_after_writing_restores_the_manifest(reg, repo: Path) -> None:
    path = repo / "modules" / "gravity" / "module.yaml"
    text = path.read_text()
    (repo / ".git" / "index.lock").write_text("")  # another git process holds the index
    with pytest.raises(registry.RegistryError, match="git add failed"):
        reg.register(path.parent)
    assert (path.read_text(), git(repo, "tag", "--list")) == (text, "")


def test_concurrent_registrations_of_two_modules_both_land(repo: Path) -> None:
    command = [sys.executable, "-m", "registry.cli", "register"]
    procs = [subprocess.Popen([*command, f"modules/{name}"], cwd=repo, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for name in ("gravity", "drag")]
    outcomes = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outcomes
    assert sorted(git(repo, "tag", "--list").split()) == ["drag@v1.0.0", "gravity@v1.0.0"]
    assert [r.name for r in registry.open(repo).list()] == ["drag", "gravity"]
    assert git(repo, "status", "--porcelain", "modules") == ""


def test_tags_lost_in_a_clone_are_restored_from_history(reg, repo: Path, tmp_path: Path) -> None:
    reg.register(repo / "modules" / "gravity")
    bump_gravity(repo, "1.1.0", "2*G*m1*m2/r**2")
    reg.register(repo / "modules" / "gravity")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", "--no-tags", str(repo), str(clone))
    assert git(clone, "tag", "--list") == ""
    restored = registry.open(clone).restore_tags()
    assert restored == ["gravity@v1.0.0", "gravity@v1.1.0"]
    assert git(clone, "rev-list", "-n1", "gravity@v1.0.0") == git(repo, "rev-list", "-n1",
                                                                   "gravity@v1.0.0")
    assert str(registry.open(clone).load("gravity@1.0.0").sympy()["F"]) == "G*m1*m2/r**2"
    assert registry.open(clone).restore_tags() == []


def test_a_rebuild_parses_manifests_in_worker_processes_and_in_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16: the cold rebuild's parsing spreads over the cores (plain subprocesses);
    the rows are those of one process, in order, a broken manifest skipped, and a worker
    that fails costs only speed."""
    import os
    import sys

    from registry.store import index_parse

    text = (Path(__file__).parents[1] / "modules" / "gravity" / "module.yaml").read_text()
    items = [(f"t{i}:module.yaml", text.replace("name: gravity", f"name: g{i:03d}"))
             for i in range(12)]
    items[5] = ("t5:module.yaml", "schema: 1\nname: [\n")
    monkeypatch.setattr(index_parse, "PARALLEL_MIN", 4)
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    serial = [index_parse.parse_one(*item) for item in items]
    assert serial[5] is None and json.loads(serial[7][2])["name"] == "g007"
    assert index_parse.parse_many(items) == serial
    proc, feeder = index_parse._start(items[4:8])  # a worker's own answer, not the fallback
    assert index_parse._finish(proc, feeder) == serial[4:8]
    monkeypatch.setattr(sys, "executable", "/bin/false")  # every worker fails
    assert index_parse.parse_many(items) == serial


def test_many_blobs_stream_through_one_process_as_the_persistent_one_reads_them(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16: `read_files` for many specs streams them (missing ones, trees and a name
    with a newline are None, in order), equal to the one-at-a-time reads."""
    from registry.store import git as git_module
    from registry.store.git import GitRepo

    gitrepo = GitRepo(repo)
    head = gitrepo.head()
    specs = [f"{head}:modules/{n}/module.yaml" for n in ("gravity", "drag", "drag-net")] * 30
    specs += [f"{head}:modules/none/module.yaml", f"{head}:modules", "bad\nname",
              f"{'0' * 40}:x"]
    streamed = gitrepo.read_files(specs)
    monkeypatch.setattr(git_module, "BULK_READ", 10 ** 9)
    one_by_one = gitrepo.read_files(specs)
    assert streamed == one_by_one
    assert streamed[0] == (repo / "modules/gravity/module.yaml").read_bytes()
    assert streamed[-4:] == [None, None, None, None]


def test_parse_workers_started_early_end_when_not_needed(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from registry.store import index_parse

    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    parsers = index_parse.Parsers(index_parse.PARALLEL_MIN)
    procs = list(parsers.procs)
    assert len(procs) == 2 and all(p.poll() is None for p in procs)
    parsers.close()  # as after a failure before the texts arrive: ended, not waited for
    assert parsers.procs == [] and all(p.returncode in (0, -signal.SIGKILL) for p in procs)
    assert index_parse.Parsers(10).parse([("x", "schema: 1\n")]) == [None]  # none started


def test_the_fingerprint_from_the_listed_tags_is_gits_own(reg, repo: Path) -> None:
    from registry.store.git import GitRepo

    reg.register(repo / "modules" / "gravity")
    reg.promote("gravity@1.0.0", "prod")
    git(repo, "tag", "light")  # a lightweight tag: its object is the commit
    gitrepo = GitRepo(repo)
    tags = gitrepo.tags()
    assert len(tags) == 3
    assert gitrepo.fingerprint(tags) == gitrepo.fingerprint()
    git(repo, "tag", "-d", "light")
    assert gitrepo.fingerprint(gitrepo.tags()) == gitrepo.fingerprint() != gitrepo.fingerprint(
        tags)


def test_workers_read_the_blobs_of_their_share_and_answer_as_one_process(
        repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 16: `parse_blobs` spreads the reading of the blobs with their parsing; a
    missing blob, a tree and bytes that are not UTF-8 are None, in order, and a worker
    that fails costs only speed."""
    import os

    from registry.store import index_parse
    from registry.store.git import GitRepo

    (repo / "modules" / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a blob that is not UTF-8")
    gitrepo = GitRepo(repo)
    head = gitrepo.head()
    items = [(f"t{i}:module.yaml", f"{head}:modules/{n}/module.yaml")
             for i, n in enumerate(["gravity", "drag", "drag-net"] * 3)]
    items[4] = ("t4:module.yaml", f"{head}:modules/none/module.yaml")
    items[6] = ("t6:module.yaml", f"{head}:modules")
    items[7] = ("t7:module.yaml", f"{head}:modules/latin1.yaml")
    serial = index_parse.Parsers(0).parse_blobs(gitrepo, items)  # no worker: here
    assert [row is None for row in serial] == [False] * 4 + [True, False, True, True, False]
    assert [json.loads(row[2])["name"] for row in serial if row] == [
        "gravity", "drag", "drag-net", "gravity", "drag-net", "drag-net"]
    monkeypatch.setattr(index_parse, "PARALLEL_MIN", 4)
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    proc, feeder = index_parse._start({"root": str(repo), "specs": items[3:9]})
    assert index_parse._finish(proc, feeder) == serial[3:9]  # a worker's own answer
    assert index_parse.Parsers(len(items)).parse_blobs(gitrepo, items) == serial
    monkeypatch.setattr(sys, "executable", "/bin/false")  # every worker fails
    assert index_parse.Parsers(len(items)).parse_blobs(gitrepo, items) == serial
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")  # none can start
    parsers = index_parse.Parsers(len(items))
    assert parsers.procs == [] and parsers.parse_blobs(gitrepo, items) == serial
