"""The gate: what CI runs on a change to `modules/` (`registry check`, `Registry.check`).

`runner` picks the changed modules and caches results, `checks` runs each check
on one module, `budgets` holds the one budget-verdict rule (shared with the web
pages), and `diff` compares two revisions without building anything.
"""

from registry.gate.checks import CHECKS, CheckResult, ModuleReport, check_module
from registry.gate.runner import GateReport, run_gate, write_step_summary

__all__ = ["CHECKS", "CheckResult", "GateReport", "ModuleReport", "check_module", "run_gate",
           "write_step_summary"]
