"""Injected crash points, for the tests that kill a registration at each of its steps.

`crash_point("commit")` does nothing unless the environment variable
`REGISTRY_FAULT_INJECT` names that step; then the process kills itself with
SIGKILL (no cleanup, no `finally`), as a power cut or the OOM killer would.
`holding` names a lock file to leave behind first, as a git process killed
while it holds `.git/index.lock` does.

Example:
    $ REGISTRY_FAULT_INJECT=commit registry register modules/gravity   # dies after the commit
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

__all__ = ["FAULT_ENV", "STEPS", "crash_point"]

FAULT_ENV = "REGISTRY_FAULT_INJECT"
# The steps of a registration, in order (see `LocalStore.commit`).
STEPS = ("journal", "manifest-temp", "manifest", "git-add", "commit", "tag")


def crash_point(step: str, *, holding: Path | None = None) -> None:
    """Die here when `REGISTRY_FAULT_INJECT` names `step`."""
    if os.environ.get(FAULT_ENV) != step:
        return
    if holding is not None:
        holding.write_bytes(b"")
    os.kill(os.getpid(), signal.SIGKILL)
