"""Writing commands: new, register, restore-tags, doctor, promote."""


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
def doctor(
    repair: Annotated[bool, typer.Option(
        "--repair", help="Fix what is found (default: a dry run that changes nothing).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Find what interrupted registrations left: a journal, untagged Register commits,
    stale git locks, temporary files, upload folders. Exits 1 when a dry run finds any."""
    findings, actions = _registry().doctor(repair=repair)
    if as_json:
        _print_json({"findings": [f.to_dict() for f in findings], "actions": actions,
                     "repaired": repair})
    else:
        for finding in findings:
            typer.echo(f"{finding.what}: {finding.detail} (repair: {finding.repair})")
        for action in actions:
            typer.echo(action)
        if not findings:
            typer.echo("nothing to repair")
        elif not repair:
            typer.echo(f"dry run: {len(findings)} found; `registry doctor --repair` fixes them")
    if findings and not repair:
        raise typer.Exit(1)


@app.command()
def promote(ref: str, stage: str) -> None:
    """Assign STAGE (e.g. prod) to the version REF resolves to (a GTO stage tag)."""
    typer.echo(f"tagged {_registry().promote(ref, stage)}")
