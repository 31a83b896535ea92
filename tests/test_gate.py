"""The gate (`registry check`) and `registry diff`, on pull requests made in throwaway repos.

Each case is the flow a contributor follows: branch from main, edit a module,
`registry register` it (which measures and records its metrics and cost),
then CI runs `registry check --base main`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.conftest import git
from tests.test_cli import cli


def edit(repo: Path, name: str, change) -> None:
    path = repo / "modules" / name / "module.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


SLOPPY = "G*m1*m2/r**2*(1 + m1/(100*m2))"  # off by up to 100 %: a real accuracy loss


def bump(data: dict, version: str) -> None:
    data["version"] = version


@pytest.fixture
def main_repo(repo: Path) -> Path:
    """gravity and drag registered at 1.0.0 on main; a branch `pr` checked out."""
    assert cli(repo, "register", "modules/gravity", "modules/drag").returncode == 0
    git(repo, "checkout", "-q", "-b", "pr")
    return repo


def check(repo: Path, *args: str, env_summary: Path | None = None):
    import os
    import subprocess
    import sys

    env = os.environ | ({"GITHUB_STEP_SUMMARY": str(env_summary)} if env_summary else {})
    env.pop("GITHUB_STEP_SUMMARY", None) if env_summary is None else None
    return subprocess.run([sys.executable, "-m", "registry.cli", "check", *args], cwd=repo,
                          capture_output=True, text=True, timeout=300, env=env)


def test_flops_over_budget_fail_naming_module_budget_and_value(main_repo: Path) -> None:
    def costlier(data: dict) -> None:
        # The same values, more work: sin² + cos² of a dimensionless ratio is 1.
        data["equation"]["F"] = "G*m1*m2/r**2*(sin(m1/m2)**2 + cos(m1/m2)**2)"
        bump(data, "1.0.1")

    edit(main_repo, "gravity", costlier)
    assert cli(main_repo, "register", "modules/gravity").returncode == 0
    result = check(main_repo, "--base", "main", "--format", "json")
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    (gravity,) = report["modules"]  # drag did not change: not checked
    assert gravity["name"] == "gravity" and gravity["version"] == "1.0.1"
    rows = {r["check"]: r for r in gravity["results"]}
    over = rows["budget:max_flops_per_sample"]
    flops = int(over["value"])
    assert over["verdict"] == "fail" and flops > 10 and over["budget"] == "≤ 10"
    assert over["detail"] == (f"gravity: {flops} FLOPs per sample exceed the budget "
                              "max_flops_per_sample: 10")
    assert rows["regression:flops_per_sample"]["verdict"] == "fail"
    assert rows["regression:r2"]["verdict"] == "pass"  # accuracy is untouched
    assert "registry check failed" in result.stderr and "gravity" in result.stderr


def test_lower_accuracy_than_the_base_version_fails(main_repo: Path) -> None:
    def sloppy(data: dict) -> None:
        data["equation"]["F"] = SLOPPY  # no longer the reference law: r2 drops
        bump(data, "1.0.1")

    edit(main_repo, "gravity", sloppy)
    assert cli(main_repo, "register", "modules/gravity").returncode == 0
    result = check(main_repo, "--base", "main")
    assert result.returncode == 1
    row = next(line for line in result.stdout.splitlines()
               if line.startswith("| gravity | 1.0.1 | regression:r2 |"))
    assert row.endswith("| ❌ fail |") and "base 1.0.0: 1" in row
    assert "gravity regressed against the base version" in result.stdout


def test_an_accepted_trade_off_lets_a_regression_pass(main_repo: Path) -> None:
    def traded(data: dict) -> None:
        data["equation"]["F"] = "G*m1*m2/r**2*(sin(m1/m2)**2 + cos(m1/m2)**2)"
        data["budget"]["max_flops_per_sample"] = 40
        data["budget"]["accepted"] = [{"check": "regression:flops_per_sample",
                                       "reason": "the trig form documents the identity used"}]
        bump(data, "1.1.0")

    edit(main_repo, "gravity", traded)
    assert cli(main_repo, "register", "modules/gravity").returncode == 0
    result = check(main_repo, "--base", "main", "--format", "json")
    assert result.returncode == 0, result.stdout
    rows = {r["check"]: r for r in json.loads(result.stdout)["modules"][0]["results"]}
    assert rows["regression:flops_per_sample"]["detail"].startswith("accepted trade-off: the trig")


def test_an_honest_improvement_passes_and_goes_to_the_step_summary(repo: Path,
                                                                   tmp_path: Path) -> None:
    edit(repo, "gravity", lambda d: d["equation"].update(F=SLOPPY))
    git(repo, "commit", "-qam", "a sloppy gravity")
    assert cli(repo, "register", "modules/gravity").returncode == 0
    git(repo, "checkout", "-q", "-b", "pr")
    edit(repo, "gravity", lambda d: (d["equation"].update(F="G*m1*m2/r**2"),
                                     bump(d, "1.0.1")))
    assert cli(repo, "register", "modules/gravity").returncode == 0
    summary = tmp_path / "summary.md"
    result = check(repo, "--base", "main", env_summary=summary)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("## registry check against `main`: ✅ passed")
    assert "| gravity | 1.0.1 | regression:r2 | 1 | base 1.0.0: 0.99" in result.stdout
    assert summary.read_text() == result.stdout


def test_changing_a_released_version_in_place_is_refused(main_repo: Path) -> None:
    edit(main_repo, "gravity", lambda d: d["constants"]["G"].update(value=6.7e-11))
    result = check(main_repo, "--base", "main", "--format", "json")
    assert result.returncode == 1
    rows = {r["check"]: r for r in json.loads(result.stdout)["modules"][0]["results"]}
    assert rows["version"]["verdict"] == "fail"
    assert "changing a released version in place is refused" in rows["version"]["detail"]
    assert rows["accuracy"]["verdict"] == "skip"


def test_broken_manifest_and_bad_hash_fail_with_the_file_named(main_repo: Path) -> None:
    assert cli(main_repo, "register", "modules/drag-net").returncode == 0
    git(main_repo, "checkout", "-q", "main")
    git(main_repo, "merge", "-q", "pr")
    git(main_repo, "checkout", "-q", "pr")
    weights = main_repo / "modules" / "drag-net" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    (main_repo / "modules" / "gravity" / "module.yaml").write_text("schema: 1\nname: [\n")
    result = check(main_repo, "--base", "main", "--format", "json")
    assert result.returncode == 1
    modules = {m["name"]: {r["check"]: r for r in m["results"]}
               for m in json.loads(result.stdout)["modules"]}
    assert modules["gravity"]["schema"]["verdict"] == "fail"
    assert "modules/gravity/module.yaml" in modules["gravity"]["schema"]["detail"]
    bad = modules["drag-net"]["integrity:network.weights"]
    assert bad["verdict"] == "fail" and "weights.safetensors" in bad["detail"]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_checks_fanned_out_to_worker_processes_equal_the_serial_ones(main_repo: Path) -> None:
    """Issue 17: `check --jobs 2` runs the modules' checks as tasks on a Dask LocalCluster
    of worker processes; the report is the serial one, a failing module included."""
    def costlier(data: dict) -> None:
        data["equation"]["F"] = "G*m1*m2/r**2*(sin(m1/m2)**2 + cos(m1/m2)**2)"
        bump(data, "1.0.1")

    edit(main_repo, "gravity", costlier)
    serial = check(main_repo, "--all", "--no-cache", "--format", "json")
    fanned = check(main_repo, "--all", "--no-cache", "--jobs", "2", "--format", "json")
    assert serial.returncode == fanned.returncode == 1, fanned.stderr
    rows = [json.loads(r.stdout)["modules"] for r in (serial, fanned)]
    assert rows[0] == rows[1]
    assert [m["name"] for m in rows[1]] == ["drag", "drag-net", "gravity"]
    assert [m["passed"] for m in rows[1]] == [True, True, False]


def test_unchanged_modules_are_served_from_the_cache(main_repo: Path) -> None:
    first = check(main_repo, "--all", "--format", "json")
    assert first.returncode == 0, first.stdout + first.stderr
    assert [m["cached"] for m in json.loads(first.stdout)["modules"]] == [False] * 3
    again = check(main_repo, "--all", "--format", "json")
    assert [m["cached"] for m in json.loads(again.stdout)["modules"]] == [True] * 3
    assert "Cached (unchanged since the last check): drag, drag-net, gravity" in check(
        main_repo, "--all").stdout


def test_an_unknown_base_is_a_clear_error(main_repo: Path) -> None:
    result = check(main_repo, "--base", "origin/nowhere")
    assert result.returncode == 1
    assert "--base origin/nowhere: no such revision here" in result.stderr
    assert "Traceback" not in result.stderr


def test_diff_reports_added_and_bumped_modules_with_deltas(main_repo: Path) -> None:
    import shutil

    edit(main_repo, "gravity", lambda d: (d["equation"].update(F=SLOPPY), bump(d, "1.0.1")))
    assert cli(main_repo, "register", "modules/gravity").returncode == 0
    shutil.copytree(main_repo / "modules" / "drag", main_repo / "modules" / "stokes")
    edit(main_repo, "stokes", lambda d: d.update(name="stokes"))
    result = cli(main_repo, "diff", "main", "--format", "json")
    assert result.returncode == 0, result.stderr
    changes = {c["name"]: c for c in json.loads(result.stdout)}
    assert set(changes) == {"gravity", "stokes"}  # drag is untouched
    assert changes["stokes"]["change"] == "added"
    gravity = changes["gravity"]
    assert (gravity["change"], gravity["old_version"], gravity["new_version"]) == (
        "bumped", "1.0.0", "1.0.1")
    assert gravity["delta"]["r2"] < 0 and gravity["delta"]["flops_per_sample"] > 0
    committed = cli(main_repo, "diff", "main", "pr").stdout  # stokes is not committed
    assert "| gravity | bumped | 1.0.0 → 1.0.1 |" in committed and "stokes" not in committed
    git(main_repo, "checkout", "-q", "main")
    assert "| gravity | removed |" not in cli(main_repo, "diff", "pr", "main").stdout
    assert "| gravity | bumped | 1.0.1 → 1.0.0 |" in cli(main_repo, "diff", "pr", "main").stdout
