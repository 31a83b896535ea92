"""The command line: output, --json, one-line errors, lazy imports, refused code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import git


def cli(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "registry.cli", *args], cwd=repo,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def registered(repo: Path) -> Path:
    assert cli(repo, "register", "modules/gravity", "modules/drag").returncode == 0
    return repo


def test_list_shows_registered_and_unregistered_modules(registered: Path) -> None:
    result = cli(registered, "list")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "KIND", "STAGES", "SUMMARY"]
    assert [line.split()[:3] for line in lines[1:3]] == [["drag", "1.0.0", "equation"],
                                                         ["gravity", "1.0.0", "equation"]]
    assert "not registered yet: drag-net" in result.stdout


def test_list_json(registered: Path) -> None:
    data = json.loads(cli(registered, "list", "--json").stdout)
    assert [(m["name"], m["version"]) for m in data["modules"]] == [("drag", "1.0.0"),
                                                                   ("gravity", "1.0.0")]
    assert data["unregistered"] == ["drag-net"]


def test_show_json_gives_the_manifest_at_its_tag(registered: Path) -> None:
    data = json.loads(cli(registered, "show", "gravity@1.0.0", "--json").stdout)
    assert data["tag"] == "gravity@v1.0.0"
    assert data["commit"] == git(registered, "rev-list", "-n1", "gravity@v1.0.0").strip()
    assert data["manifest"]["equation"] == {"F": "G*m1*m2/r**2"}


def test_load_prints_a_summary(registered: Path) -> None:
    data = json.loads(cli(registered, "load", "drag@^1", "--json").stdout)
    assert data == {"ref": "drag@1.0.0", "class": "EquationModule",
                    "inputs": ["rho", "C_d", "A", "v"], "outputs": ["F"], "parameters": 0,
                    "trainable_parameters": 0, "equations": {"F": "0.5*A*C_d*rho*v**2"}}


def test_errors_are_one_red_line_and_exit_1(registered: Path) -> None:
    result = cli(registered, "show", "gravity@9.9.9")
    assert result.returncode == 1
    assert result.stderr.strip() == ("error: no version of `gravity` matches `gravity@9.9.9` "
                                     "(registered: 1.0.0)")
    assert "Traceback" not in result.stderr


def test_traceback_flag_shows_the_stack(registered: Path) -> None:
    result = cli(registered, "--traceback", "show", "gravity@9.9.9")
    assert result.returncode == 1 and "Traceback" in result.stderr


@pytest.mark.parametrize("command", [["list"], ["show", "gravity@1.0.0"], ["list", "--json"]])
def test_readers_do_not_import_torch_or_mlflow(registered: Path, command: list[str]) -> None:
    probe = ("import sys; from registry.cli import app\n"
             f"try:\n    app({command!r})\nexcept SystemExit:\n    pass\n"
             "heavy = sorted(m for m in ('torch', 'mlflow', 'dvc', 'sympy') if m in sys.modules)\n"
             "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=registered, capture_output=True,
                         text=True, check=True).stdout
    assert out.splitlines()[-1] == "HEAVY []"


def test_a_warm_read_does_not_import_sqlalchemy(registered: Path) -> None:
    """Issue 16: SQLAlchemy's import was 0.13 s of every `registry list`; an index that
    matches the refs is read with the standard library's sqlite3."""
    assert cli(registered, "list").returncode == 0  # the index brought up to date
    probe = ("import sys; from registry.cli import app\n"
             "try:\n    app(['list'])\nexcept SystemExit:\n    pass\n"
             "print('SQLALCHEMY', 'sqlalchemy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], cwd=registered, capture_output=True,
                         text=True, check=True).stdout
    assert "gravity" in out and out.splitlines()[-1] == "SQLALCHEMY False"


def test_code_in_an_equation_is_refused_and_never_run(repo: Path) -> None:
    path = repo / "modules" / "gravity" / "module.yaml"
    data = yaml.safe_load(path.read_text())
    data["equation"]["F"] = "__import__('os').system('touch pwned')"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    for command in (["register", "modules/gravity"], ["load", "gravity@workspace"]):
        result = cli(repo, *command)
        assert result.returncode == 1
        assert result.stderr.startswith("error: ")
        assert "equation.F: call to `__import__('os').system` is not allowed" in result.stderr
    assert not (repo / "pwned").exists()
    assert git(repo, "tag", "--list") == ""


def test_unit_error_names_expected_and_actual_dimension(repo: Path) -> None:
    path = repo / "modules" / "gravity" / "module.yaml"
    data = yaml.safe_load(path.read_text())
    data["equation"]["F"] = "m1*r"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    result = cli(repo, "register", "modules/gravity")
    assert result.returncode == 1
    assert ("equation.F: `F` must have dimension [mass] * [length] / [time] ** 2 (unit N), but "
            "the expression has dimension [mass] * [length]") in result.stderr


def test_manifest_error_names_file_field_and_fix(repo: Path) -> None:
    path = repo / "modules" / "gravity" / "module.yaml"
    path.write_text(path.read_text().replace("summary:", "summry:"))
    result = cli(repo, "register", "modules/gravity")
    assert result.returncode == 1
    assert "modules/gravity/module.yaml: summry: Extra inputs are not permitted; remove it or " \
           "fix its spelling (allowed keys: budget, composition," in result.stderr


def test_new_scaffolds_a_module_that_registers(repo: Path) -> None:
    assert cli(repo, "new", "hooke").returncode == 0
    assert cli(repo, "new", "spring-net", "--kind", "network").returncode == 0
    result = cli(repo, "register", "modules/hooke", "modules/spring-net")
    assert result.returncode == 0, result.stderr
    assert sorted(git(repo, "tag", "--list").split()) == ["hooke@v0.1.0", "spring-net@v0.1.0"]


def test_schema_is_json_schema_of_the_manifest(repo: Path) -> None:
    schema = json.loads(cli(repo, "schema").stdout)
    assert schema["title"] == "Module manifest (schema 1)"
    assert schema["additionalProperties"] is False
    assert {"name", "version", "kind", "inputs", "outputs"} <= set(schema["required"])


def test_promote_assigns_a_stage(registered: Path) -> None:
    assert cli(registered, "promote", "gravity@1.0.0", "prod").stdout.strip() == \
        "tagged gravity#prod#1"
    data = json.loads(cli(registered, "show", "gravity#prod", "--json").stdout)
    assert data["manifest"]["version"] == "1.0.0"
