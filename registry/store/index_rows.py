"""Index rows: what a version row holds besides its manifest, and GTO's stage rule."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from registry.core.reference import Version
from registry.store.base import VersionRow, latest_key
from registry.store.git import StageTag, VersionTag

__all__ = ["current_stages", "latest_of", "ports_json", "version_row"]


def ports_json(manifest: dict[str, Any]) -> str:
    """The units of the ports, stored beside the manifest: a listing reads these (a few
    dozen bytes) instead of decoding every manifest."""
    return json.dumps({"inputs": _units(manifest.get("inputs")),
                       "outputs": _units(manifest.get("outputs"))})


def version_row(r: Any, held: list[str], *, with_manifest: bool) -> VersionRow:
    ports = json.loads(r["ports"])
    manifest = json.loads(r["manifest"]) if with_manifest else None
    return VersionRow(r["name"], r["version"], r["kind"], r["summary"], r["tag"], r["commit"],
                      r["created"], tuple(sorted(held)), ports["inputs"], ports["outputs"],
                      manifest)


def latest_of(keys: Sequence[tuple[str, str]]) -> dict[str, str]:
    """{module: its latest version} of these (module, version) pairs (`latest_key`: a
    release above any pre-release, then semver): the row the index flags `latest`."""
    best: dict[str, tuple[tuple[Any, ...], str]] = {}
    for name, version in keys:
        key = latest_key(version)
        if name not in best or key > best[name][0]:
            best[name] = (key, version)
    return {name: version for name, (_, version) in best.items()}


def _units(ports: Any) -> dict[str, str]:
    return {str(n): str(p.get("unit", "1")) for n, p in (ports or {}).items()
            if isinstance(p, dict)}


def current_stages(stage_tags: Sequence[StageTag],
                    version_tags: Sequence[VersionTag]) -> list[dict[str, Any]]:
    """GTO's rule: the highest-numbered tag of a stage wins; `!` unassigns."""
    by_commit: dict[tuple[str, str], list[str]] = {}
    for vtag in version_tags:
        by_commit.setdefault((vtag.module, vtag.tag.commit), []).append(vtag.version)
    latest: dict[tuple[str, str], StageTag] = {}
    for stag in stage_tags:
        key = (stag.module, stag.stage)
        if key not in latest or stag.number > latest[key].number:
            latest[key] = stag
    rows = []
    for (module, stage), stag in latest.items():
        versions = by_commit.get((module, stag.tag.commit))
        if stag.unassign or not versions:
            continue
        rows.append({"name": module, "stage": stage, "number": stag.number,
                     "version": max(versions, key=Version.parse)})
    return rows
