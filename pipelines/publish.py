"""Copy a built module folder into `modules/<name>/` and register it.

A retrained module whose content differs from its registered version becomes
the next patch version (`register --bump patch`); identical content is a no-op.

    python pipelines/publish.py build/drag-net
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import registry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", type=Path)
    parser.add_argument("--report", type=Path, help="write the registration as JSON here")
    args = parser.parse_args()

    reg = registry.open()
    target = reg.root / "modules" / args.build.name
    target.mkdir(parents=True, exist_ok=True)
    for source in args.build.iterdir():
        # DVC's .gitignore, the metrics and the curve stay in build/: the module folder is git's.
        if (source.is_file() and not source.name.startswith(".")
                and source.name not in ("metrics.json", "history.csv")):
            shutil.copyfile(source, target / source.name)
    result = reg.register(target, bump="patch")
    verb = "registered" if result.created else "unchanged"
    print(f"{verb}: {result.tag} at {result.commit[:12]}")
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps({"tag": result.tag, "commit": result.commit,
                                           "created": result.created}, indent=2) + "\n")


if __name__ == "__main__":
    main()
