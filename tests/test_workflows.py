"""The GitHub Actions workflows: schema-checked, linted, and checked for what the gate needs.

The required check validates both workflows against SchemaStore's GitHub workflow schema with
`check-jsonschema --builtin-schema vendor.github-workflows` (the `dev` extra; the schema is vendored
in the package, so it runs offline). A missing `check-jsonschema` is a failed install, not a reason
to skip. actionlint, which also checks expressions and script injection, is optional: its tests run
only where an `actionlint` binary is installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = ROOT / ".github" / "workflows"
PULL_REQUEST = WORKFLOWS / "pull-request.yml"
MAIN = WORKFLOWS / "main.yml"
ALL_WORKFLOWS = [PULL_REQUEST, MAIN]


def beside_interpreter_or_on_path(name: str) -> str | None:
    """A console script beside this interpreter (the venv's bin/), else on PATH."""
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)


def check_jsonschema() -> str:
    found = beside_interpreter_or_on_path("check-jsonschema")
    if found is None:
        pytest.fail(
            "check-jsonschema not found beside the interpreter nor on PATH; "
            "install the dev extras: pip install -e '.[dev]'"
        )
    return found


def run_schema_check(*files: Path) -> subprocess.CompletedProcess[str]:
    """Validate against the workflow schema vendored in check-jsonschema (no download)."""
    return subprocess.run(
        [
            check_jsonschema(),
            "--builtin-schema",
            "vendor.github-workflows",
            "--color",
            "never",
            *map(str, files),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def actionlint() -> str:
    found = beside_interpreter_or_on_path("actionlint")
    if found is None:
        pytest.skip("actionlint not installed (optional): the schema check above runs instead")
    return found


def run_actionlint(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [actionlint(), "-no-color", *map(str, files)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.name}: not a mapping"
    return data


def triggers(workflow: dict[str, Any]) -> dict[str, Any]:
    """`on:`, which YAML 1.1 (PyYAML) reads as the key True."""
    on = workflow["on"] if "on" in workflow else workflow.get(True)
    assert on is not None, "workflow has no `on:`"
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return dict.fromkeys(on)
    return dict(on)


def steps(workflow: dict[str, Any], job: str | None = None) -> list[dict[str, Any]]:
    jobs = workflow["jobs"]
    names = [job] if job is not None else list(jobs)
    return [step for name in names for step in jobs[name].get("steps", [])]


def runs(workflow: dict[str, Any], job: str | None = None) -> list[str]:
    return [step["run"] for step in steps(workflow, job) if "run" in step]


def readme_test_command() -> str:
    """The README's test command: the `make test` line of a fenced code block, less its comment."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", readme, flags=re.MULTILINE | re.DOTALL)
    commands = [
        line.split("#", 1)[0].strip()
        for block in blocks
        for line in block.splitlines()
        if line.strip().startswith("make test")
    ]
    assert commands, "README.md has no `make test` line in a code block"
    assert len(set(commands)) == 1, f"README.md gives several test commands: {commands}"
    return commands[0]


# --- the workflow schema (required) -------------------------------------------------------------


def test_workflows_exist() -> None:
    for path in ALL_WORKFLOWS:
        assert path.is_file(), f"missing {path.relative_to(ROOT)}"


def test_schema_check_passes_on_the_workflows() -> None:
    result = run_schema_check(*ALL_WORKFLOWS)
    assert result.returncode == 0, (
        f"check-jsonschema exited {result.returncode}:\n{result.stdout}{result.stderr}"
    )


GOOD_JOB = (
    "  ok:\n    runs-on: ubuntu-latest\n    timeout-minutes: 5\n    steps:\n      - run: echo hi\n"
)


def test_schema_check_accepts_a_minimal_workflow(tmp_path: Path) -> None:
    """The control for the broken cases below: each differs from this in one place."""
    good = tmp_path / "good.yml"
    good.write_text("on: push\njobs:\n" + GOOD_JOB, encoding="utf-8")
    result = run_schema_check(good)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("text", "named"),
    [
        pytest.param(
            "on: push\njobs:\n" + GOOD_JOB.replace("    runs-on: ubuntu-latest\n", ""),
            "runs-on",
            id="job-without-runs-on",
        ),
        pytest.param(
            "on: push\njobs:\n" + GOOD_JOB.replace("    steps:", "    not-a-key: true\n    steps:"),
            "not-a-key",
            id="unknown-job-key",
        ),
        pytest.param(
            "on: pull_requests\njobs:\n" + GOOD_JOB,
            "pull_requests",
            id="misspelt-trigger",
        ),
    ],
)
def test_schema_check_can_fail(tmp_path: Path, text: str, named: str) -> None:
    """The check is not a no-op: each broken workflow is refused, naming what is wrong."""
    bad = tmp_path / "bad.yml"
    bad.write_text(text, encoding="utf-8")
    result = run_schema_check(bad)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"check-jsonschema accepted a broken workflow:\n{output}"
    assert named in output, output


# --- actionlint (optional) ----------------------------------------------------------------------


def test_actionlint_passes_on_the_workflows() -> None:
    result = run_actionlint(*ALL_WORKFLOWS)
    assert result.returncode == 0, (
        f"actionlint exited {result.returncode}:\n{result.stdout}{result.stderr}"
    )


def test_actionlint_can_fail(tmp_path: Path) -> None:
    """The lint is not a no-op: a job without `runs-on` and with an unknown key is refused."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\n"
        "jobs:\n"
        "  broken:\n"
        "    timeout-minutes: 5\n"
        "    not-a-key: true\n"
        "    steps:\n"
        "      - run: echo hi\n",
        encoding="utf-8",
    )
    result = run_actionlint(bad)
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"actionlint accepted a broken workflow:\n{output}"
    assert "runs-on" in output, output
    assert "not-a-key" in output, output


def test_actionlint_flags_untrusted_input_in_a_script(tmp_path: Path) -> None:
    """Why the gate passes the base ref through `env:` rather than `${{ }}` in `run:`."""
    bad = tmp_path / "inject.yml"
    bad.write_text(
        "on: pull_request\n"
        "jobs:\n"
        "  a:\n"
        "    runs-on: ubuntu-latest\n"
        "    timeout-minutes: 5\n"
        "    steps:\n"
        '      - run: echo "${{ github.event.pull_request.title }}"\n',
        encoding="utf-8",
    )
    result = run_actionlint(bad)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "potentially untrusted" in output, output


# --- the pull-request gate ----------------------------------------------------------------------


def test_pull_request_triggers_on_pull_requests_to_main() -> None:
    on = triggers(load(PULL_REQUEST))
    assert "pull_request" in on
    branches = (on["pull_request"] or {}).get("branches")
    assert branches is None or "main" in branches


def test_pull_request_is_read_only_and_cancels_superseded_runs() -> None:
    workflow = load(PULL_REQUEST)
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["concurrency"]["cancel-in-progress"] is True
    assert "pull_request.number" in workflow["concurrency"]["group"]


@pytest.mark.parametrize("path", ALL_WORKFLOWS, ids=lambda p: p.name)
def test_telemetry_is_off(path: Path) -> None:
    env = load(path)["env"]
    assert env["MLFLOW_DISABLE_TELEMETRY"] == "true"
    assert env["DVC_NO_ANALYTICS"] == "1"


@pytest.mark.parametrize("path", ALL_WORKFLOWS, ids=lambda p: p.name)
def test_checkout_fetches_full_history_and_python_is_311(path: Path) -> None:
    workflow = load(path)
    for name, job in workflow["jobs"].items():
        uses = {step.get("uses", "").split("@")[0]: step for step in job["steps"]}
        assert "actions/checkout" in uses, f"{name}: no checkout"
        assert uses["actions/checkout"]["with"]["fetch-depth"] == 0, f"{name}: shallow checkout"
        setup = uses.get("actions/setup-python")
        assert setup is not None, f"{name}: no setup-python"
        assert str(setup["with"]["python-version"]) == "3.11"
        assert setup["with"]["cache"] == "pip"
        deps = setup["with"]["cache-dependency-path"].split()
        assert sorted(deps) == ["constraints.txt", "pyproject.toml"]


def test_pull_request_installs_with_the_makefile_stamp_before_using_the_cli() -> None:
    scripts = runs(load(PULL_REQUEST))
    assert "$(VENV)/.installed" in (ROOT / "Makefile").read_text(encoding="utf-8")
    install = scripts.index("make .venv/.installed")
    first_cli = next(i for i, s in enumerate(scripts) if ".venv/bin/" in s)
    assert install < first_cli


def test_pull_request_restores_tags() -> None:
    assert any("registry restore-tags" in s for s in runs(load(PULL_REQUEST)))


def test_pull_request_runs_registry_check_against_the_base_ref() -> None:
    workflow = load(PULL_REQUEST)
    checks = [s for s in steps(workflow) if "registry check" in s.get("run", "")]
    assert len(checks) == 1, checks
    step = checks[0]
    script = step["run"]
    assert "--base" in script and "--format md" in script
    # The base ref comes in through env:, never as ${{ }} inside the script.
    assert "${{" not in script
    assert step["env"]["BASE_REF"] == "${{ github.base_ref }}"
    assert re.search(r'--base "?origin/\$\{?BASE_REF\}?"?', script), script
    output = re.search(r"--output (\S+)", script)
    assert output is not None and output.group(1) == "check-report.md"


@pytest.mark.parametrize("path", ALL_WORKFLOWS, ids=lambda p: p.name)
def test_no_expression_is_interpolated_into_a_script(path: Path) -> None:
    for script in runs(load(path)):
        assert "${{" not in script, f"{path.name}: pass values via env:, not in run:\n{script}"


@pytest.mark.parametrize("path", ALL_WORKFLOWS, ids=lambda p: p.name)
def test_the_check_report_is_uploaded_always(path: Path) -> None:
    uploads = [
        s
        for s in steps(load(path))
        if s.get("uses", "").startswith("actions/upload-artifact@")
        and s["with"]["path"] == "check-report.md"
    ]
    assert len(uploads) == 1, uploads
    assert uploads[0]["with"]["name"] == "registry-check-report"
    assert uploads[0]["if"] == "always()"


def test_dvc_pull_only_where_a_remote_is_configured() -> None:
    for path in ALL_WORKFLOWS:
        for script in runs(load(path)):
            if "dvc pull" not in script:
                continue
            assert re.search(
                r"if \S*dvc remote list \| grep -q \.; then\s+\S*dvc pull\s+else", script
            ), f"{path.name}: unconditional dvc pull:\n{script}"
    assert any("dvc pull" in s for s in runs(load(PULL_REQUEST)))


def test_pull_request_runs_the_test_suite() -> None:
    assert "make test" in [s.strip() for s in runs(load(PULL_REQUEST))]


@pytest.mark.parametrize("path", ALL_WORKFLOWS, ids=lambda p: p.name)
def test_every_job_has_a_timeout(path: Path) -> None:
    for name, job in load(path)["jobs"].items():
        timeout = job.get("timeout-minutes")
        assert isinstance(timeout, int) and timeout > 0, f"{path.name}: job {name} has no timeout"


# --- main ---------------------------------------------------------------------------------------


def test_main_triggers_on_push_to_main_and_by_hand() -> None:
    on = triggers(load(MAIN))
    assert "main" in on["push"]["branches"]
    assert "workflow_dispatch" in on


def test_main_tests_then_checks_every_module() -> None:
    scripts = [s.strip() for s in runs(load(MAIN), "test")]
    assert "make test" in scripts
    check = next(i for i, s in enumerate(scripts) if "registry check" in s)
    assert scripts.index("make test") < check
    assert "--all" in scripts[check] and "--output check-report.md" in scripts[check]


def test_main_pipeline_job_runs_make_pipeline_and_uploads_reports() -> None:
    workflow = load(MAIN)
    job = workflow["jobs"]["pipeline"]
    assert job["needs"] in ("test", ["test"])
    assert "make pipeline" in [s.strip() for s in runs(workflow, "pipeline")]
    uploads = [s for s in job["steps"] if s.get("uses", "").startswith("actions/upload-artifact@")]
    assert [u["with"]["path"].rstrip("/") for u in uploads] == ["reports"]


# --- the README ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ALL_WORKFLOWS, ids=lambda p: p.name)
def test_workflows_run_the_readme_test_command(path: Path) -> None:
    command = readme_test_command()
    assert command == "make test"
    assert command in [s.strip() for s in runs(load(path))], (
        f"{path.name} does not run the README's test command {command!r}"
    )


@pytest.mark.parametrize("path", ALL_WORKFLOWS, ids=lambda p: p.name)
def test_the_gate_cache_is_restored_before_the_check(path: Path) -> None:
    """Issue 16: the gate cache is git-ignored, so CI paid for every check afresh."""
    steps = [step for job in load(path)["jobs"].values() for step in job["steps"]]
    names = [s.get("name", "") for s in steps]
    cache = next(s for s in steps if s.get("uses", "").startswith("actions/cache@"))
    assert cache["with"]["path"] == ".registry/gate-cache"
    assert cache["with"]["restore-keys"] == "gate-"
    assert cache["with"]["key"].startswith("gate-${{ hashFiles('modules/**'")
    check = next(i for i, n in enumerate(names) if n.startswith("Registry check"))
    assert steps.index(cache) < check
