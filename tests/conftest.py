"""Shared fixtures: throwaway git repositories holding copies of the seed modules."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
MODULES = PROJECT / "modules"

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True,
                          text=True).stdout


def make_repo(root: Path, modules: list[str]) -> Path:
    """A git repository at `root` with copies of the named seed modules, committed."""
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.name", "Test Author")
    git(root, "config", "user.email", "test@example.com")
    (root / ".gitignore").write_text(".registry/\n")
    for name in modules:
        shutil.copytree(MODULES / name, root / "modules" / name)
        _forget_registration(root / "modules" / name / "module.yaml")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "seed modules")
    return root


def _forget_registration(path: Path) -> None:
    """Drop what registering filled in, so the copy registers as a new module 1.0.0 would."""
    import yaml

    data = yaml.safe_load(path.read_text())
    data["version"] = "1.0.0"
    if data["provenance"].get("source") == "hand-written":
        data["provenance"].pop("git", None)
        data["provenance"].pop("created", None)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A registry repository with gravity, drag and drag-net in the working tree (unregistered)."""
    return make_repo(tmp_path / "repo", ["gravity", "drag", "drag-net"])


@pytest.fixture
def reg(repo: Path):
    import registry

    return registry.open(repo)
