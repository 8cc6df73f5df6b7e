"""Reading (and writing, for tests) the IDX binary format MNIST is distributed in."""

from __future__ import annotations

import gzip
import io
import math
import zlib
from pathlib import Path

import numpy as np

from edgefptt.errors import DataError

_UBYTE = 0x08
# The largest IDX file read (after decompression): MNIST's largest is 47 MB. A bound keeps a
# damaged or hostile .gz from filling the memory.
MAX_IDX_BYTES = 1 << 30


def _gunzip(raw: bytes, path: Path) -> bytes:
    """The decompressed bytes of a gzip file, at most MAX_IDX_BYTES of them."""
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as stream:
            data = stream.read(MAX_IDX_BYTES + 1)
    except (OSError, EOFError, zlib.error) as exc:  # BadGzipFile is an OSError
        raise DataError(
            f"{path} is a damaged gzip file ({exc or type(exc).__name__}); "
            "download or decompress it again"
        ) from None
    if len(data) > MAX_IDX_BYTES:
        raise DataError(f"{path} decompresses to more than {MAX_IDX_BYTES:,} bytes; not MNIST")
    return data


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file (optionally gzip-compressed) with ``ndim`` dimensions."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    if raw[:2] == b"\x1f\x8b":
        raw = _gunzip(raw, path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path} is not an IDX file (expected the magic bytes 00 00 08 {ndim:02x})")
    if raw[2] != _UBYTE or raw[3] != ndim:
        raise DataError(
            f"{path}: expected an unsigned-byte IDX file with {ndim} dimension(s) "
            f"(magic 00 00 08 {ndim:02x}), found {raw[:4].hex(' ')}"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path} is truncated inside its header")
    dims = tuple(int(d) for d in np.frombuffer(raw[4:header], dtype=">u4"))
    expected = math.prod(dims)  # exact: numpy's product would wrap around for huge dims
    if len(raw) - header != expected:
        raise DataError(
            f"{path}: header promises {'x'.join(map(str, dims))} = {expected} bytes of data, "
            f"file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as an IDX file (used to build test fixtures)."""
    data = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, _UBYTE, data.ndim]) + np.asarray(data.shape, dtype=">u4").tobytes()
    path.write_bytes(header + data.tobytes())
