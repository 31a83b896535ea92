"""The README's Python examples run as written (in a throwaway registry)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import PROJECT

BLOCKS = re.findall(r"```python\n(.*?)```", (PROJECT / "README.md").read_text(), re.S)


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
