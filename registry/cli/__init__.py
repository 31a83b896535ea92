"""The `registry` command line: parses arguments, calls `registry.api`, prints.

No logic lives here. Errors of the registry print one red line and exit 1
(`--traceback` shows the stack). Every reading command offers `--json`.
Commands live in `read_commands`, `write_commands`, `model_commands` and
`ci_commands`; `main` holds the Typer app and the entry point.

The command modules do not use `from __future__ import annotations`: Typer reads every
command's signature at each start, and string annotations are compiled there one by one
(~13 ms of each `registry list`, against 0.3 s in all).
"""

from registry.cli.main import _state, app, main

__all__ = ["_state", "app", "main"]
