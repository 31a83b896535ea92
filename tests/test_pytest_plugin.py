"""The pytest plugin: `pytest --registry` turns the gate into one test per module per check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from registry.gate.checks import CHECKS
from tests.conftest import git
from tests.test_cli import cli


def run_pytest(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
                           "-rfs", *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_without_the_flag_the_plugin_adds_nothing(tmp_path: Path) -> None:
    (tmp_path / "test_one.py").write_text("def test_one():\n    assert True\n")
    result = run_pytest(tmp_path)
    assert result.returncode == 0 and "1 passed" in result.stdout


def test_one_test_per_module_per_check(repo: Path, tmp_path: Path) -> None:
    assert cli(repo, "register", "modules/gravity", "modules/drag").returncode == 0
    listing = run_pytest(tmp_path, "--registry", "--registry-root", str(repo), "--collect-only")
    ids = [line for line in listing.stdout.splitlines() if line.startswith("registry::")]
    assert ids == [f"registry::{m}::{c}" for m in ("drag", "drag-net", "gravity")
                   for c in CHECKS]
    result = run_pytest(tmp_path, "--registry", "--registry-root", str(repo))
    assert result.returncode == 0, result.stdout
    assert "SKIPPED [1] " in result.stdout and "gravity integrity: no files with hashes" in (
        result.stdout)


def test_a_budget_breach_fails_its_own_test_only(repo: Path, tmp_path: Path) -> None:
    path = repo / "modules" / "gravity" / "module.yaml"
    data = yaml.safe_load(path.read_text())
    data["budget"]["max_flops_per_sample"] = 3  # gravity needs 4
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    git(repo, "commit", "-qam", "a budget gravity cannot keep")
    result = run_pytest(tmp_path, "--registry", "--registry-root", str(repo), "-k", "gravity")
    assert result.returncode == 1
    assert "FAILED registry::gravity::budget" in result.stdout
    assert ("gravity 1.0.0 budget:max_flops_per_sample: gravity: 4 FLOPs per sample exceed the "
            "budget max_flops_per_sample: 3 (value 4, budget ≤ 3)") in result.stdout
    assert "1 failed" in result.stdout and "FAILED registry::gravity::accuracy" not in (
        result.stdout)
