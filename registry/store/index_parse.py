"""The manifests of an index rebuild, parsed and validated in several processes.

A cold rebuild at 10,000 versions is 5 s of strict YAML, pydantic and normalising on
one core (`benchmarks/scale.py`). From `PARALLEL_MIN` manifests on, this process parses
one share and `python -m registry.store.index_parse` workers (up to `MAX_WORKERS`, one
per further core) parse the others: the texts go in as JSON on stdin, the rows come back
as JSON on stdout. Plain subprocesses, not multiprocessing: no pickling, and a caller's
`__main__` is never re-imported (a script without a main guard would run again). A
worker that fails costs only speed: its share is parsed here.

Example:
    >>> parse_many([("t:module.yaml", "schema: 1\\n")])
    [None]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

__all__ = ["MAX_WORKERS", "PARALLEL_MIN", "parse_many"]

PARALLEL_MIN = 2000  # below this one process is done before a worker has imported pydantic
MAX_WORKERS = 8

Row = tuple[str, str, str, str]  # kind, summary, manifest JSON, ports JSON


def parse_one(source: str, text: str) -> Row | None:
    """The index columns of one manifest; None where it is not a valid manifest (a tag
    whose commit holds something else is not a version of ours)."""
    from registry.core.manifest import parse_manifest
    from registry.store.index_rows import ports_json

    try:
        manifest = parse_manifest(text, source=source)
    except Exception:
        return None
    data = manifest.to_dict()
    return manifest.kind, manifest.summary, json.dumps(data), ports_json(data)


def parse_many(items: list[tuple[str, str]]) -> list[Row | None]:
    """`parse_one` over `(source, text)` pairs, in order, spread over the cores."""
    workers = min(os.cpu_count() or 1, MAX_WORKERS) - 1
    if len(items) < PARALLEL_MIN or workers < 1:
        return [parse_one(*item) for item in items]
    size = -(-len(items) // (workers + 1))
    shares = [items[i:i + size] for i in range(0, len(items), size)]
    started = [_start(share) for share in shares[1:]]
    results = [parse_one(*item) for item in shares[0]]
    for share, (proc, feeder) in zip(shares[1:], started, strict=True):
        rows = _finish(proc, feeder)
        results.extend(rows if rows is not None and len(rows) == len(share)
                       else [parse_one(*item) for item in share])
    return results


def _start(share: list[tuple[str, str]]) -> tuple[subprocess.Popen[bytes], threading.Thread]:
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [package_root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    payload = json.dumps(share).encode()

    def feed() -> None:  # a thread: the pipe holds 64 KB, the share megabytes
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(payload)
            proc.stdin.close()
        except OSError:
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    return proc, feeder


def _finish(proc: subprocess.Popen[bytes], feeder: threading.Thread) -> list[Any] | None:
    assert proc.stdout is not None
    data = proc.stdout.read()
    feeder.join()
    if proc.wait() != 0:
        return None
    try:
        rows = json.loads(data)
    except ValueError:
        return None
    return [tuple(r) if r is not None else None for r in rows]


def _main() -> None:
    items = json.load(sys.stdin)
    json.dump([parse_one(source, text) for source, text in items], sys.stdout)


if __name__ == "__main__":
    _main()
