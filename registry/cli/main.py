"""The `registry` command line: parses arguments, calls `registry.api`, prints.

No logic lives here. Errors of the registry print one red line and exit 1
(`--traceback` shows the stack). Every reading command offers `--json`.
"""


import json
import os
import sys
from typing import Annotated, Any

import typer

from registry.errors import RegistryError

app = typer.Typer(
    name="registry",
    help="A registry of reusable, distilled ML modules.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

_state = {"traceback": bool(os.environ.get("REGISTRY_TRACEBACK"))}

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")]


@app.callback()
def _options(
    traceback: Annotated[bool, typer.Option("--traceback", help="Show the full stack on errors.")]
    = False,
) -> None:
    _state["traceback"] = _state["traceback"] or traceback


def _registry() -> Any:
    """The local repository (around $REGISTRY_ROOT, else the cwd)."""
    from registry import api

    return api.open(os.environ.get("REGISTRY_ROOT", "."))


RemoteOption = Annotated[str | None, typer.Option(
    "--remote", metavar="URL", help="Use the registry server at URL (`registry serve`); "
    "default: $REGISTRY_URL, else the local repository.")]


def _registry_or_remote(remote: str | None) -> Any:
    """The server at `remote` (or $REGISTRY_URL) when one is given, else the local registry."""
    from registry import api

    url = remote or os.environ.get("REGISTRY_URL")
    return api.open(url) if url else _registry()


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, default=str))


def _print_fields(data: dict[str, Any], as_json: bool, *, fmt: str = "") -> None:
    """`data` as JSON, or as `key: value` lines (values formatted with `fmt`)."""
    if as_json:
        _print_json(data)
        return
    for key, value in data.items():
        typer.echo(f"{key}: {value:{fmt}}")


def _table(rows: list[list[str]], header: list[str]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def main() -> None:
    try:
        app()
    except RegistryError as exc:
        if _state["traceback"]:
            raise
        message = str(exc).replace("\n", "\n  ")
        typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
        sys.exit(1)


# The commands register themselves on `app` when their modules are imported, in the
# order `registry --help` lists them.
COMMAND_MODULES = ("read_commands", "write_commands", "model_commands", "variant_commands",
                   "ci_commands")


def _import_commands() -> None:
    import importlib

    for name in COMMAND_MODULES:
        importlib.import_module(f"registry.cli.{name}")


_import_commands()

__all__ = ["COMMAND_MODULES", "app", "main"]
