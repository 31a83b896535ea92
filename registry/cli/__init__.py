"""The `registry` command line: parses arguments, calls `registry.api`, prints.

No logic lives here. Errors of the registry print one red line and exit 1
(`--traceback` shows the stack). Every reading command offers `--json`.
Commands live in `read_commands`, `write_commands`, `model_commands` and
`ci_commands`; `main` holds the Typer app and the entry point.
"""

from registry.cli.main import _state, app, main

__all__ = ["_state", "app", "main"]
