"""Data files (`.npz`) opened only once their headers say they are small enough.

An `.npz` is a zip of `.npy` arrays, and both layers declare sizes that
`np.load` believes: a zip member's uncompressed size, and each array's shape
and dtype (numpy allocates the whole declared array before reading a byte of
it). So `open_npz` reads the zip's directory and each `.npy` header first, and
refuses, naming the file, the member and the limit: members that are not
stored or deflated `.npy` arrays, object dtypes (pickles), headers over
`MAX_NPY_HEADER_BYTES`, more than `MAX_NPZ_MEMBERS` members, and more than
`MAX_ARRAY_BYTES` in all, whether declared by the zip or by the arrays, before
an array is decompressed (only the headers are, with small reads).

Every `.npz` the registry reads (evaluation data, recordings, swap data) goes
through `open_npz`.

Example:
    >>> with open_npz(data, where="modules/drag-net/test.npz") as arrays:
    ...     x = arrays["v"]
"""

from __future__ import annotations

import io
import math
import zipfile
import zlib
from pathlib import Path
from typing import IO, Any

import numpy as np
from numpy.lib import format as npy

from registry.core.limits import MAX_ARRAY_BYTES
from registry.errors import ManifestError

__all__ = ["MAX_ARRAY_BYTES", "MAX_NPY_HEADER_BYTES", "MAX_NPZ_MEMBERS", "check_npz",
           "open_npz"]

MAX_NPZ_MEMBERS = 4096
MAX_NPY_HEADER_BYTES = 10_000  # numpy's own `max_header_size`
_PLAIN = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)  # what `numpy.savez(_compressed)` writes
_VERSIONS = ((1, 0), (2, 0), (3, 0))
_LIMITS = "registry/core/limits.py"


def open_npz(source: bytes | Path, *, where: str, limit: int = MAX_ARRAY_BYTES) -> Any:
    """`np.load` of `source` (no pickles), once `check_npz` accepts it; use it with `with`."""
    check_npz(source, where=where, limit=limit)
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    return np.load(stream, allow_pickle=False)


def check_npz(source: bytes | Path, *, where: str, limit: int = MAX_ARRAY_BYTES) -> int:
    """The bytes `source`'s arrays declare, or `ManifestError` when over `limit` (or unsafe).

    Each array's declared bytes are at most its zip member's size, and those
    add up to at most `limit`: what `np.load` allocates is bounded by `limit`.
    """
    stream: IO[bytes] | Path = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with zipfile.ZipFile(stream) as archive:
            members = archive.infolist()
            if len(members) > MAX_NPZ_MEMBERS:
                raise ManifestError(f"{where}: {len(members)} arrays, over the limit of "
                                    f"{MAX_NPZ_MEMBERS} (MAX_NPZ_MEMBERS in "
                                    "registry/core/arrays.py); keep one array per port")
            for member in members:
                if not member.filename.endswith(".npy") or member.compress_type not in _PLAIN:
                    raise ManifestError(f"{where}: member {member.filename[:80]!r} is not a "
                                        "stored or deflated .npy array; write the file with "
                                        "`numpy.savez` (one array per port)")
            unpacked = sum(member.file_size for member in members)
            if unpacked > limit:
                raise _too_large(where, unpacked, limit)
            return sum(_declared(archive, member, where) for member in members)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError,
            EOFError, OSError, zlib.error):
        raise ManifestError(f"{where}: not a readable .npz (zip) file; write it with "
                            "`numpy.savez` (one array per port)") from None


def _declared(archive: zipfile.ZipFile, member: zipfile.ZipInfo, where: str) -> int:
    """The bytes the `.npy` header of `member` declares; its header is read, nothing else."""
    name = f"{where}: array {member.filename[:80]!r}"
    with archive.open(member) as handle:  # small reads only: each inflates a bounded amount
        magic = handle.read(len(npy.MAGIC_PREFIX) + 2)
        version = tuple(magic[-2:])
        length_bytes = 2 if version == (1, 0) else 4
        if magic[:-2] != npy.MAGIC_PREFIX or version not in _VERSIONS:
            raise ManifestError(f"{name}: not a .npy array (no numpy header); write the file "
                                "with `numpy.savez`")
        prefix = handle.read(length_bytes)
        length = int.from_bytes(prefix, "little") if len(prefix) == length_bytes else -1
        if not 0 <= length <= MAX_NPY_HEADER_BYTES:
            raise ManifestError(f"{name}: its .npy header declares {length:,} bytes, over the "
                                f"limit of {MAX_NPY_HEADER_BYTES:,} (MAX_NPY_HEADER_BYTES in "
                                "registry/core/arrays.py); write the file with `numpy.savez`")
        header = io.BytesIO(prefix + handle.read(length))
    try:
        reader = npy.read_array_header_1_0 if version == (1, 0) else npy.read_array_header_2_0
        shape, _, dtype = reader(header)
    except (ValueError, TypeError, SyntaxError):
        raise ManifestError(f"{name}: unreadable .npy header; write the file with "
                            "`numpy.savez`") from None
    if dtype.hasobject:
        raise ManifestError(f"{name}: dtype {dtype} holds Python objects (a pickle), which are "
                            "never loaded; store numbers (float64)")
    if any(d < 0 for d in shape):
        raise ManifestError(f"{name}: shape {list(shape)} has a negative length; write the "
                            "file with `numpy.savez`")
    size = math.prod(shape) * dtype.itemsize
    if size > member.file_size:
        raise ManifestError(f"{name}: its header declares {size:,} bytes (shape {list(shape)}, "
                            f"{dtype}) but the member holds {member.file_size:,}; write the file "
                            "again with `numpy.savez`")
    return size


def _too_large(where: str, size: int, limit: int) -> ManifestError:
    return ManifestError(f"{where}: its arrays unpack to {size:,} bytes, over the limit of "
                         f"{limit:,} (MAX_ARRAY_BYTES in {_LIMITS}); evaluate on fewer points")
