"""pytest plugin: the gate inside a project's own test suite.

Installed with the package (entry point `pytest11`), inert unless asked:

    pytest --registry                      # every module of the registry found from cwd
    pytest --registry --registry-root DIR --registry-base origin/main

generates one test per module per check (`registry::gravity::accuracy`, …),
each passing, failing with the gate's message, or skipped with the reason the
check does not apply. The checks are those of `registry check`; a module is
checked once per session and shared by its tests, and the gate's cache keeps
unchanged modules free.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from registry.gate.checks import CHECKS

_REPORTS = pytest.StashKey[dict[str, Any]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("registry", "module registry gate")
    group.addoption("--registry", action="store_true", default=False,
                    help="Generate one test per registry module per gate check.")
    group.addoption("--registry-root", default=None, metavar="DIR",
                    help="The registry (a git repository with modules/); default: from cwd.")
    group.addoption("--registry-base", default=None, metavar="REV",
                    help="Revision to compare against for regressions (default: HEAD).")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "registry_check(module, check): a generated gate test")
    config.stash[_REPORTS] = {}


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    if not config.getoption("registry"):
        return
    collector = RegistryCollector.from_parent(session, name="registry", nodeid="registry")
    items.extend(collector.collect())


class RegistryCollector(pytest.Collector):
    """The registry's modules, each a set of check items."""

    def collect(self) -> Iterator[pytest.Item]:
        from registry.store.git import find_root
        from registry.store.local import LocalStore

        option = self.config.getoption("registry_root")
        root = Path(option).resolve() if option else find_root()
        names = LocalStore(root).workspace_names()
        if not names:
            raise pytest.UsageError(f"--registry: no modules under {root}/modules/")
        for name in names:
            for check in CHECKS:
                yield CheckItem.from_parent(self, name=f"{name}::{check}", module=name,
                                            check=check, root=root)


class CheckFailed(Exception):
    pass


class CheckItem(pytest.Item):
    def __init__(self, *, module: str, check: str, root: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.module, self.check, self.root = module, check, root
        self.add_marker(pytest.mark.registry_check(module, check))

    def runtest(self) -> None:
        report = self._module_report()
        rows = [r for r in report.results if r.group == self.check]
        failed = [r for r in rows if r.verdict == "fail"]
        if failed:
            raise CheckFailed("\n".join(
                f"{self.module} {report.version} {r.check}: {r.detail or 'failed'}"
                + (f" (value {r.value}, budget {r.budget})" if r.value or r.budget else "")
                for r in failed))
        if not rows or all(r.verdict == "skip" for r in rows):
            reason = rows[0].detail if rows else "not checked"
            pytest.skip(f"{self.module} {self.check}: {reason}")

    def _module_report(self) -> Any:
        reports = self.config.stash[_REPORTS]
        if self.module not in reports:
            import registry

            base = self.config.getoption("registry_base")
            gate = registry.open(self.root).check(base=base, all_modules=True)
            reports.update({m.name: m for m in gate.modules})
        return reports[self.module]

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str:
        if isinstance(excinfo.value, CheckFailed):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.root / "modules" / self.module / "module.yaml", None, \
            f"registry {self.module} {self.check}"
