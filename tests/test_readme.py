"""The README's examples run as written (in a throwaway registry).

- Each ```python block runs in a registry holding `gravity`.
- The shell commands of `## A tour` run, in order, with the project's CLI in a
  scratch repository; every one must exit 0, and where the README shows a
  command's output, the command must print exactly that. The commands are read
  from the README, so the test fails when the tour stops working. Commands
  that need a server, the network or minutes of work are skipped by name
  (`SKIP`), each with its reason, so it shows in the test report.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import MODULES, PROJECT, git, make_repo

README = (PROJECT / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.S)


def test_readme_has_python_examples() -> None:
    assert BLOCKS


@pytest.mark.parametrize("block", BLOCKS)
def test_readme_python_example_runs(block: str, reg, repo: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    reg.register(repo / "modules" / "gravity")
    monkeypatch.chdir(repo)
    namespace: dict[str, object] = {}
    exec(compile(block, "README.md", "exec"), namespace)  # our own documentation, not input
    assert namespace["F"].shape == (1,)  # type: ignore[attr-defined]


# --- the tour's shell commands ------------------------------------------------------------

# Commands the tour may show that this test does not run, keyed by their first words (the
# program without its directory, then its arguments). Everything else in the tour runs.
SKIP = {
    "registry serve": "a server that runs until stopped (tests/test_server_api.py, test_web.py)",
    "make pipeline": "the whole DVC pipeline, minutes of training (its stages are tested alone)",
    "make test": "the test suite itself",
    "make lint": "ruff and mypy over the project, not a registry command",
    "dvc repro": "the whole DVC pipeline, minutes of training",
    "registry distill": "a search that runs to its --budget-s (tests/test_distill.py)",
    "registry train": "training, tens of seconds (tests/test_compose.py)",
    "registry publish": "needs an MLflow tracking server (tests/test_publish.py)",
    "curl": "needs `registry serve` running",
    "open": "opens a browser",
    "mlflow ui": "a server that runs until stopped",
    "pip": "installs packages from the network",
}

BIN = Path(sys.executable).parent


@dataclass
class Command:
    line: str                     # as written, without the prompt
    argv: list[str]               # program (as written) and arguments, comment removed
    env: dict[str, str]           # leading NAME=value assignments
    comment: str                  # the trailing `# ...`, if any
    output: list[str] = field(default_factory=list)  # the lines the README shows after it

    @property
    def words(self) -> str:
        return " ".join([Path(self.argv[0]).name, *self.argv[1:]])

    @property
    def skip(self) -> str | None:
        return next((reason for key, reason in SKIP.items()
                     if self.words == key or self.words.startswith(key + " ")), None)


def _section(text: str, title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    assert match, f"README.md has no `## {title}` section"
    return match[1]


def _command(line: str) -> Command:
    # A comment starts at a `#` after whitespace (bash's rule: `gravity#prod` is one argument).
    match = re.search(r"(?:^|\s)#", line)
    code, comment = (line[:match.start()], line[match.end():]) if match else (line, "")
    words = shlex.split(code)
    env = {}
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    assert words, f"README tour: no command in {line!r}"
    return Command(line, words, env, comment.strip())


def tour_commands(text: str = README) -> list[Command]:
    """The commands of the tour's shell blocks, each with the output shown after it.

    In a block with prompts (`$ cmd`), the prompted lines are commands and the
    lines after one are its output; in a block without, every line that is not
    blank or a `#` comment is a command.
    """
    commands: list[Command] = []
    for block in re.findall(r"```(?:bash|sh|shell|console)\n(.*?)```", _section(text, "A tour"),
                            re.S):
        lines = re.sub(r"\\\n\s*", " ", block).splitlines()  # join continued lines
        prompted = any(line.startswith("$ ") for line in lines)
        current: Command | None = None
        for line in lines:
            if prompted and line.startswith("$ "):
                current = _command(line[2:].strip())
                commands.append(current)
            elif prompted:
                if current is not None and line.strip():
                    current.output.append(line.rstrip())
            elif line.strip() and not line.lstrip().startswith("#"):
                commands.append(_command(line.strip()))
    return commands


TOUR = tour_commands()


def test_tour_parser_reads_prompts_outputs_and_comments() -> None:
    text = ("## A tour\n\n```sh\n$ .venv/bin/registry list   # the list\nNAME  VERSION\n"
            "gravity  1.0.1\n\n$ X=1 registry show gravity#prod --json\n```\n"
            "```bash\n# a comment\nmake pipeline\n```\n## Next\n```sh\n$ registry new x\n```\n")
    first, second, third = tour_commands(text)
    assert (first.argv, first.comment, first.output) == (
        [".venv/bin/registry", "list"], "the list", ["NAME  VERSION", "gravity  1.0.1"])
    assert (second.argv, second.env, second.output) == (
        ["registry", "show", "gravity#prod", "--json"], {"X": "1"}, [])
    assert third.words == "make pipeline" and third.skip


def test_readme_tour_has_commands_to_run_and_output_to_compare() -> None:
    assert [c for c in TOUR if not c.skip], "the README's tour runs no command"
    assert [c for c in TOUR if not c.skip and c.output], "the tour shows no output to check"


def _argv(command: Command) -> list[str]:
    program = Path(command.argv[0]).name
    if program == "registry":
        return [sys.executable, "-m", "registry.cli", *command.argv[1:]]
    found = BIN / program if (BIN / program).exists() else shutil.which(program)
    assert found, f"README tour: `{command.argv[0]}` is not installed (in {BIN} or on PATH)"
    return [str(found), *command.argv[1:]]


def _tour_repo(root: Path) -> Path:
    """A registry with every module of the working tree at its declared version, and the
    1.0.0 versions of `gravity`, `drag` and `drag-net` registered before them (the seed
    copies the `repo` fixture makes), so references to either resolve."""
    import registry
    from registry.core.manifest import load_manifest

    seeds = ["gravity", "drag", "drag-net"]
    make_repo(root, seeds)
    reg = registry.open(root)
    for name in seeds:
        reg.register(root / "modules" / name)
    shutil.rmtree(root / "modules")
    shutil.copytree(MODULES, root / "modules", ignore=shutil.ignore_patterns("__pycache__"))
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "modules as in the working tree")
    for path in sorted(MODULES.glob("*/module.yaml")):
        manifest = load_manifest(path.parent)
        tag = f"{manifest.name}@v{manifest.version}"
        if tag not in git(root, "tag", "--list", tag):
            git(root, "tag", "-a", tag, "-m", f"{manifest.ref} (test copy)")
    return root


@pytest.fixture(scope="module")
def tour(tmp_path_factory) -> tuple[Path, dict[str, subprocess.CompletedProcess[str]]]:
    """Every tour command not skipped, run in the README's order in one scratch repository."""
    root = _tour_repo(tmp_path_factory.mktemp("tour") / "repo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
    env.update(MLFLOW_DISABLE_TELEMETRY="true", DVC_NO_ANALYTICS="1", COLUMNS="200")
    results = {}
    for command in TOUR:
        if command.skip is None:
            results[command.line] = subprocess.run(
                _argv(command), cwd=root, env={**env, **command.env}, capture_output=True,
                text=True, timeout=300)
    return root, results


def _check_show(root: Path, command: Command, out: str) -> None:
    if "--json" not in command.argv:
        return
    from registry.core.reference import parse_reference

    shown = json.loads(out)
    ref = parse_reference(next(a for a in command.argv[2:] if not a.startswith("-")))
    assert shown["manifest"]["name"] == ref.name
    if ref.spec and re.fullmatch(r"\d+\.\d+\.\d+", ref.spec):
        assert shown["ref"] == f"{ref.name}@{ref.spec}" == (
            f"{shown['manifest']['name']}@{shown['manifest']['version']}")
        assert shown["tag"] == f"{ref.name}@v{ref.spec}"
    # "read from the tag's commit"
    assert shown["commit"] == git(root, "rev-parse", f"{shown['tag']}^{{commit}}").strip()


def _check_load(root: Path, command: Command, out: str) -> None:
    import registry

    ref = command.argv[2]
    summary = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    assert summary["ref"] == registry.open(root).get(ref).ref
    assert summary["ref"].startswith(ref.split("@")[0].split("#")[0] + "@")
    assert {"class", "inputs", "outputs", "parameters"} <= set(summary)


def _check_evaluate(root: Path, command: Command, out: str) -> None:
    import registry

    recorded = registry.open(root).get(command.argv[2]).evaluation.metrics
    measured = {k: float(v) for k, v in (line.split(": ") for line in out.splitlines())}
    assert set(measured) == set(recorded)
    for key, value in recorded.items():
        assert measured[key] == pytest.approx(value, rel=1e-4, abs=1e-9), key


def _check_promote(root: Path, command: Command, out: str) -> None:
    name, stage = command.argv[2].split("@")[0], command.argv[3]
    tag = out.strip().removeprefix("tagged ")
    assert tag.startswith(f"{name}#{stage}#") and tag in git(root, "tag").split()
    for claimed in re.findall(r"\S+#\S+#\d+", command.comment):  # "GTO stage tag gravity#prod#1"
        assert claimed == tag, f"README tour: `{command.line}` says {claimed}, made {tag}"


def _check_gto_show(root: Path, command: Command, out: str) -> None:
    import registry

    names = {row.name for row in registry.open(root).list()}
    assert names and all(name in out for name in names)  # "GTO reads the same tags"


CHECKS: dict[str, Callable[[Path, Command, str], None]] = {
    "registry show": _check_show,
    "registry load": _check_load,
    "registry evaluate": _check_evaluate,
    "registry promote": _check_promote,
    "gto show": _check_gto_show,
}


@pytest.mark.parametrize("command", [
    pytest.param(c, id=c.words, marks=[pytest.mark.skip(reason=f"`{c.words}`: {c.skip}")]
                 if c.skip else []) for c in TOUR])
def test_readme_tour_command_runs(command: Command, tour) -> None:
    root, results = tour
    done = results[command.line]
    assert done.returncode == 0, (f"README tour: `{command.line}` exited {done.returncode}:\n"
                                  f"{done.stdout}\n{done.stderr}")
    if command.output:
        printed = [line.rstrip() for line in done.stdout.splitlines() if line.strip()]
        assert printed == command.output, f"README tour: `{command.line}` prints otherwise"
    check = next((f for key, f in CHECKS.items() if command.words.startswith(key + " ")
                  or command.words == key), None)
    if check is not None:
        check(root, command, done.stdout)
