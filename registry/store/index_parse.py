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
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry.store.git import GitRepo

__all__ = ["MAX_WORKERS", "PARALLEL_MIN", "Parsers", "parse_many"]

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
    return Parsers(len(items)).parse(items)


class Parsers:
    """Worker processes for `count` manifests, started now so that their start (an
    interpreter, pydantic and the manifest models: about 0.3 s) overlaps the caller's
    reading of the blobs; `parse` hands them their shares. None below `PARALLEL_MIN`."""

    def __init__(self, count: int) -> None:
        workers = min(os.cpu_count() or 1, MAX_WORKERS) - 1
        self.procs: list[subprocess.Popen[bytes]] = []
        try:
            for _ in range(workers if count >= PARALLEL_MIN else 0):
                self.procs.append(_spawn())
        except OSError:  # no interpreter to start (an embedded one): all parsed here
            self.close()

    def parse(self, items: list[tuple[str, str]]) -> list[Row | None]:
        """`parse_one` over `(source, text)` pairs, in order."""
        return self._spread(items, lambda share: share, lambda share: [
            parse_one(*item) for item in share])

    def parse_blobs(self, repo: GitRepo, items: list[tuple[str, str]]) -> list[Row | None]:
        """`parse_one` over `(source, blob spec)` pairs (`<commit>:<path>`), in order; None
        for a missing or undecodable blob. Each worker reads its own share's blobs, so the
        reading is spread as the parsing is (10,000 blobs: 0.45 s in one process)."""
        return self._spread(items, lambda share: {"root": str(repo.root), "specs": share},
                            lambda share: _read_and_parse(repo, share))

    def _spread(self, items: list[tuple[str, str]], payload: Callable[[Any], Any],
                here: Callable[[Any], list[Row | None]]) -> list[Row | None]:
        if not self.procs or len(items) < PARALLEL_MIN:
            self.close()
            return here(items)
        size = -(-len(items) // (len(self.procs) + 1))
        shares = [items[i:i + size] for i in range(0, len(items), size)]
        started = [(proc, _feed(proc, payload(share)))  # (fewer shares: the rest end)
                   for proc, share in zip(self.procs, shares[1:], strict=False)]
        self.close(keep=len(started))
        results = here(shares[0])
        for share, (proc, feeder) in zip(shares[1:], started, strict=True):
            rows = _finish(proc, feeder)
            results.extend(rows if rows is not None and len(rows) == len(share)
                           else here(share))
        return results

    def close(self, keep: int = 0) -> None:
        """End the workers past the first `keep` (given nothing: killed, as they may be
        still importing, with nothing to lose)."""
        for proc in self.procs[keep:]:
            proc.kill()
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait()
        self.procs = self.procs[:keep]


def _read_and_parse(repo: GitRepo, items: list[tuple[str, str]]) -> list[Row | None]:
    blobs = repo.read_files([spec for _, spec in items], batch=True)
    rows: list[Row | None] = []
    for (source, _), blob in zip(items, blobs, strict=True):
        try:  # a tag whose commit lacks the manifest is not a version of ours
            rows.append(parse_one(source, blob.decode()) if blob is not None else None)
        except UnicodeDecodeError:
            rows.append(None)
    return rows


def _start(share: Any) -> tuple[subprocess.Popen[bytes], threading.Thread]:
    proc = _spawn()
    return proc, _feed(proc, share)


def _spawn() -> subprocess.Popen[bytes]:
    package_root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [package_root, *filter(None, [os.environ.get("PYTHONPATH")])])}
    return subprocess.Popen([sys.executable, "-m", __name__], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)


def _feed(proc: subprocess.Popen[bytes], share: Any) -> threading.Thread:
    payload = json.dumps(share).encode()

    def feed() -> None:  # a thread: the pipe holds 64 KB, the share megabytes
        assert proc.stdin is not None
        try:
            proc.stdin.write(payload)
            proc.stdin.close()
        except OSError:
            pass

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    return feeder


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
    from registry.core.manifest import Manifest
    from registry.store.index_rows import ports_json  # noqa: F401

    Manifest.model_rebuild()  # imported and built before the texts arrive (models defer it)
    data = sys.stdin.read()
    work = json.loads(data) if data.strip() else []
    if isinstance(work, dict):  # blobs to read here first
        from registry.store.git import GitRepo

        items = [(str(source), str(spec)) for source, spec in work["specs"]]
        json.dump(_read_and_parse(GitRepo(Path(work["root"])), items), sys.stdout)
    else:
        json.dump([parse_one(source, text) for source, text in work], sys.stdout)


if __name__ == "__main__":
    _main()
