"""Writing commands: new, register, restore-tags, promote."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from registry.cli.main import (
    JsonFlag,
    RemoteOption,
    _print_json,
    _registry,
    _registry_or_remote,
    app,
)


@app.command()
def new(
    name: str,
    kind: Annotated[str, typer.Option(help="equation or network.")] = "equation",
) -> None:
    """Create `modules/NAME/` with a valid starting manifest."""
    folder = _registry().new(name, kind=kind)
    typer.echo(f"created {folder}; edit module.yaml, then `registry register {folder}`")


class BumpPart(StrEnum):
    patch = "patch"
    minor = "minor"
    major = "major"


@app.command()
def register(
    paths: Annotated[list[Path], typer.Argument(help="Module folders (or module.yaml files).")],
    bump: Annotated[BumpPart | None, typer.Option(
        help="If the version exists with other content, register as the next version.")] = None,
    as_json: JsonFlag = False,
    remote: RemoteOption = None,
) -> None:
    """Validate module folders, measure them, commit them and tag their versions (with
    --remote: upload them to the server, with the token in $REGISTRY_TOKEN)."""
    reg = _registry_or_remote(remote)
    results = [reg.register(path, bump=bump.value if bump else None) for path in paths]
    if as_json:
        _print_json([{"tag": r.tag, "commit": r.commit, "created": r.created,
                      "manifest": r.manifest.to_dict()} for r in results])
        return
    for result in results:
        verb = "registered" if result.created else "already registered (no change)"
        typer.echo(f"{verb}: {result.tag} at {result.commit[:12]}")


@app.command("restore-tags")
def restore_tags() -> None:
    """Recreate version tags a clone lacks, from the commits `register` made."""
    restored = _registry().restore_tags()
    typer.echo(f"restored {len(restored)} tags" + (f": {', '.join(restored)}" if restored else ""))


@app.command()
def promote(ref: str, stage: str) -> None:
    """Assign STAGE (e.g. prod) to the version REF resolves to (a GTO stage tag)."""
    typer.echo(f"tagged {_registry().promote(ref, stage)}")
