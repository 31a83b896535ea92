"""What every check builds first, built once in the process local workers fork from.

`run_gate` names this module in `run_tasks(preload=...)`: the forkserver imports it
before forking the workers, so each starts with the unit registry (pint: about 0.45 s to
build) and torch's and sympy's imports in memory instead of building them itself.
Importing it anywhere else only costs that time once.
"""

from __future__ import annotations

import sympy  # noqa: F401  (imported for the workers: the equations' parser)
import torch  # noqa: F401  (imported for the workers: every module runs on it)

from registry.core.units import unit_registry

unit_registry()
