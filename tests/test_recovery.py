"""Interrupted registrations (issue 13, findings 3, 4, 8): every step killed, the next recovers.

A registration runs in a subprocess with `REGISTRY_FAULT_INJECT=<step>`, which
SIGKILLs it at that step (`registry.core.faults`); then the next registration,
`restore-tags` in a clone and `registry doctor` must find one consistent
registry: one `Register` commit per version, its tag on it, no temporary file
in any commit, no stale git lock, no journal.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import registry
from registry.cli.main import app
from registry.core.faults import FAULT_ENV, STEPS
from registry.errors import ManifestError
from tests.conftest import git, make_repo

COMMITTED = {"commit", "tag"}  # steps after which the version is committed


def register_killed_at(root: Path, step: str, module: str = "gravity") -> None:
    env = {**os.environ, FAULT_ENV: step, "REGISTRY_ROOT": str(root)}
    done = subprocess.run([sys.executable, "-m", "registry.cli", "register", f"modules/{module}"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == -9, (step, done.returncode, done.stderr[-2000:])


def register_subjects(root: Path, ref: str) -> list[str]:
    log = git(root, "log", "--format=%H %s").splitlines()
    return [line.split()[0] for line in log if line.endswith(f"Register {ref}")]


def assert_consistent(root: Path, ref: str = "gravity@1.0.0") -> str:
    commits = register_subjects(root, ref)
    assert len(commits) == 1, commits
    name, _, version = ref.partition("@")
    assert git(root, "rev-list", "-n1", f"{name}@v{version}").strip() == commits[0]
    tree = git(root, "ls-tree", "-r", "--name-only", commits[0])
    assert ".module." not in tree, tree
    assert not list((root / "modules").glob("*/.module.*.yaml"))
    gitdir = root / ".git"
    assert not (gitdir / "index.lock").exists()
    assert not (gitdir / "registry-journal.json").exists()
    assert git(root, "status", "--porcelain", "--", f"modules/{name}") == ""
    return commits[0]


def clone_without_tags(root: Path, dest: Path) -> Path:
    git(root.parent, "clone", "-q", "--no-tags", str(root), str(dest))
    assert git(dest, "tag", "-l") == ""
    return dest


@pytest.mark.parametrize("step", STEPS)
def test_a_registration_killed_at_any_step_is_recovered_by_the_next(
        tmp_path: Path, step: str) -> None:
    root = make_repo(tmp_path / "repo", ["gravity"])
    register_killed_at(root, step)
    if step == "git-add":  # git died holding its lock: nothing could commit without recovery
        assert (root / ".git" / "index.lock").exists()
    if step == "manifest-temp":
        assert list((root / "modules" / "gravity").glob(".module.*.yaml"))
    reg = registry.open(root)
    result = reg.register(root / "modules" / "gravity")
    # after the commit, the interrupted registration is finished: the retry measures nothing
    assert result.created is (step not in COMMITTED)
    commit = assert_consistent(root)
    assert result.commit == commit
    assert reg.resolve("gravity@1.0.0").manifest.cost.flops_per_sample == 4
    clone = clone_without_tags(root, tmp_path / "clone")
    assert registry.open(clone).restore_tags() == ["gravity@v1.0.0"]
    assert git(clone, "rev-list", "-n1", "gravity@v1.0.0").strip() == commit
    assert registry.open(root).doctor()[0] == []


def test_a_failed_registration_leaves_no_journal_and_the_manifest_as_it_was(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_repo(tmp_path / "repo", ["gravity"])
    manifest = root / "modules" / "gravity" / "module.yaml"
    before = manifest.read_bytes()
    reg = registry.open(root)

    def refuse(*args: object, **kwargs: object) -> str:
        raise RuntimeError("disk full")

    monkeypatch.setattr(reg.store.repo, "commit_folder", refuse)
    with pytest.raises(RuntimeError, match="disk full"):
        reg.register(manifest.parent)
    assert manifest.read_bytes() == before
    assert not (root / ".git" / "registry-journal.json").exists()
    assert git(root, "status", "--porcelain") == ""


def test_restore_tags_picks_the_newest_register_commit_in_every_clone(tmp_path: Path) -> None:
    """A history with two `Register` commits of one version (made by the old retry)."""
    root = make_repo(tmp_path / "repo", ["gravity"])
    reg = registry.open(root)
    first = reg.register(root / "modules" / "gravity").commit
    git(root, "tag", "-d", "gravity@v1.0.0")
    readme = root / "modules" / "gravity" / "NOTES.md"
    readme.write_text("measured again\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "Register gravity@1.0.0")
    second = git(root, "rev-parse", "HEAD").strip()
    for where in (root, clone_without_tags(root, tmp_path / "a"),
                  clone_without_tags(root, tmp_path / "b")):
        assert registry.open(where).restore_tags() == ["gravity@v1.0.0"]
        assert git(where, "rev-list", "-n1", "gravity@v1.0.0").strip() == second != first


def test_doctor_reports_then_repairs(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", ["gravity", "drag"])
    register_killed_at(root, "commit")
    stale = root / "modules" / "drag" / ".module.abc123.yaml"
    stale.write_text("")
    os.utime(stale, (1, 1))
    uploads = root / ".registry" / "uploads" / "upload-dead"
    uploads.mkdir(parents=True)
    os.utime(uploads, (1, 1))
    runner = CliRunner()
    env = {"REGISTRY_ROOT": str(root)}
    dry = runner.invoke(app, ["doctor"], env=env)
    assert dry.exit_code == 1, dry.output
    for kind in ("journal", "untagged-register-commit", "temp-file", "upload"):
        assert kind in dry.output
    assert "dry run" in dry.output and stale.exists() and uploads.exists()
    assert git(root, "tag", "-l") == ""  # nothing was changed
    fixed = runner.invoke(app, ["doctor", "--repair"], env=env)
    assert fixed.exit_code == 0, fixed.output
    assert "finished the interrupted registration of gravity@1.0.0" in fixed.output
    assert not stale.exists() and not uploads.exists()
    assert_consistent(root)
    clean = runner.invoke(app, ["doctor", "--json"], env=env)
    assert clean.exit_code == 0 and '"findings": []' in clean.output


# finding 4: links ----------------------------------------------------------------


def test_a_symlinked_weights_file_is_refused(tmp_path: Path) -> None:
    root = make_repo(tmp_path / "repo", ["drag-net"])
    folder = root / "modules" / "drag-net"
    real = tmp_path / "elsewhere.safetensors"
    (folder / "weights.safetensors").rename(real)
    (folder / "weights.safetensors").symlink_to(real)
    reg = registry.open(root)
    with pytest.raises(ManifestError, match=r"weights.safetensors: is a symbolic link; module "
                                            r"folders hold regular files only"):
        reg.register(folder)
    assert git(root, "tag", "-l") == ""
    report = reg.check(all_modules=True, use_cache=False)
    assert not report.passed
    assert report.failures[0][0] == "drag-net" and report.failures[0][1].check == "schema"
    assert "is a symbolic link" in report.to_markdown()


# finding 8: the index is a cache -------------------------------------------------


@pytest.mark.parametrize("damage", ["random-bytes", "one-bad-page"])
def test_a_corrupt_index_is_rebuilt_with_one_line(tmp_path: Path, damage: str) -> None:
    root = make_repo(tmp_path / "repo", ["gravity", "drag"])
    registry.open(root).register(root / "modules" / "gravity")
    index = root / ".registry" / "index.sqlite"
    data = bytearray(index.read_bytes())
    if damage == "random-bytes":
        data = bytearray(os.urandom(len(data)))
    else:
        data[100:4096] = os.urandom(4096 - 100)  # the header's tail and the first page
    index.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        Path(f"{index}{suffix}").unlink(missing_ok=True)
    listed = subprocess.run([sys.executable, "-m", "registry.cli", "list"], cwd=root,
                            capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert "gravity" in listed.stdout
    assert listed.stderr.strip().count("\n") == 0, listed.stderr  # one line
    assert "was corrupt" in listed.stderr and "rebuilt it from git" in listed.stderr
    index.write_bytes(os.urandom(8192))
    registered = CliRunner().invoke(app, ["register", str(root / "modules" / "drag")],
                                    env={"REGISTRY_ROOT": str(root)})
    assert registered.exit_code == 0, registered.output
    assert [r.name for r in registry.open(root).list()] == ["drag", "gravity"]
