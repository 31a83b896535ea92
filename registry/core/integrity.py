"""File integrity: the one sha256 and the one check against a manifest's record.

Every file a manifest hashes (`Manifest.files()`: network weights, composite
weights, evaluation data) is read through `verify` wherever it is read: the
builders, the evaluation, the gate, the server and the HTTP store's cache.

Example:
    >>> verify(data, "9f2c…", where="modules/drag-net/weights.safetensors",
    ...        field="network.weights")
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from registry.errors import IntegrityError

__all__ = ["CHUNK", "sha256_bytes", "sha256_file", "verify"]

CHUNK = 1 << 20


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify(data: bytes, sha256: str, *, where: str, field: str) -> bytes:
    """`data` when it hashes to `sha256`; `IntegrityError` naming the file and field if not."""
    actual = sha256_bytes(data)
    if actual != sha256:
        raise IntegrityError(
            f"{where}: sha256 is {actual}, but the manifest records {sha256} "
            f"(`{field}.sha256`); the file was changed or corrupted: restore it, or "
            "re-register the module if the change is intended")
    return data
