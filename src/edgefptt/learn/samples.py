"""Sample files (``.efs``, version 1): labelled sequences for the edge learner.

The layout is fixed by docs/learner.md: a 32-byte header (magic, version, T, I, C, dtype, N),
the values sample-major in fp32 or bf16 (the top half of the float32, rounded to nearest even),
N int32 labels and a CRC-32 of every byte before it. All integers are little-endian.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from edgefptt.edge.bf16 import from_bf16_bits, to_bf16_bits
from edgefptt.errors import DataError
from edgefptt.train.checkpoint import atomic_write

SampleDtype = Literal["fp32", "bf16"]

MAGIC = b"EFPTTSMP"
VERSION = 1
HEADER = struct.Struct("<8sIIIIII")  # magic, version, T, I, C, dtype, N
HEADER_BYTES = HEADER.size  # 32
CRC_BYTES = 4
LABEL_BYTES = 4
DTYPE_CODES: dict[str, int] = {"fp32": 0, "bf16": 1}
DTYPE_NAMES: dict[int, SampleDtype] = {0: "fp32", 1: "bf16"}
ELEMENT_BYTES: dict[str, int] = {"fp32": 4, "bf16": 2}
REEXPORT = "re-export it with edgefptt export-data"


class SampleFileError(DataError):
    """A sample file is malformed, or does not fit what the reader expects."""


@dataclass(frozen=True)
class SampleFile:
    """The contents of a sample file; ``x`` is widened to float32 whatever the stored dtype."""

    x: np.ndarray  # float32 (N, T, I)
    y: np.ndarray  # int64 (N,)
    seq_len: int
    input_size: int
    num_classes: int
    dtype: SampleDtype
    count: int


def sample_file_bytes(n: int, t: int, i: int, dtype: str) -> int:
    """Size in bytes of a sample file of ``n`` samples of ``t`` steps by ``i`` features."""
    if dtype not in ELEMENT_BYTES:
        raise ValueError(f"unknown sample dtype {dtype!r}; use 'fp32' or 'bf16'")
    return HEADER_BYTES + n * t * i * ELEMENT_BYTES[dtype] + LABEL_BYTES * n + CRC_BYTES


def encode_samples(
    x: np.ndarray, y: np.ndarray, num_classes: int, dtype: str = "fp32", name: str = "samples"
) -> bytes:
    """The bytes of a sample file holding ``x`` (N, T, I) and labels ``y`` (N,)."""
    if dtype not in DTYPE_CODES:
        raise SampleFileError(f"{name}: unknown dtype {dtype!r}; use fp32 or bf16")
    values = np.asarray(x, dtype=np.float32)
    labels = np.asarray(y)
    if values.ndim != 3:
        raise SampleFileError(f"{name}: x must have shape (N, T, I), got {values.shape}")
    n, t, i = values.shape
    if n < 1 or t < 1 or i < 1:
        raise SampleFileError(f"{name}: x has shape {values.shape}; N, T and I must be >= 1")
    if labels.shape != (n,):
        raise SampleFileError(f"{name}: y must have shape ({n},) to match x, got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise SampleFileError(
            f"{name}: labels must be integers (class indices), got {labels.dtype}"
        )
    if num_classes < 1 or num_classes > 0xFFFFFFFF:
        raise SampleFileError(f"{name}: number of classes must be >= 1, got {num_classes}")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        k = int(bad[0])
        raise SampleFileError(
            f"{name}: label {int(labels[k])} of sample {k} is outside [0, {num_classes})"
        )
    if dtype == "bf16":
        stored = to_bf16_bits(values, "rne").astype("<u2")
        check = from_bf16_bits(stored)
    else:
        stored = values.astype("<f4")
        check = values
    finite = np.isfinite(check).reshape(n, -1).all(axis=1)
    if not finite.all():
        k = int(np.flatnonzero(~finite)[0])
        raise SampleFileError(
            f"{name}: sample {k} has a non-finite value"
            + (" (after rounding to bf16)" if dtype == "bf16" else "")
        )
    header = HEADER.pack(MAGIC, VERSION, t, i, num_classes, DTYPE_CODES[dtype], n)
    body = header + stored.tobytes() + labels.astype("<i4").tobytes()
    return body + struct.pack("<I", zlib.crc32(body))


def write_samples(
    path: str | Path, x: np.ndarray, y: np.ndarray, num_classes: int, dtype: str = "fp32"
) -> int:
    """Write a sample file atomically; returns its size in bytes."""
    target = Path(path)
    data = encode_samples(x, y, num_classes, dtype, name=str(target))
    atomic_write(target, lambda handle: handle.write(data))
    return len(data)


def decode_samples(
    data: bytes,
    name: str = "samples",
    *,
    seq_len: int | None = None,
    input_size: int | None = None,
    num_classes: int | None = None,
) -> SampleFile:
    """Parse and check the bytes of a sample file (see :func:`read_samples`)."""
    if len(data) < HEADER_BYTES:
        raise SampleFileError(
            f"{name} is {len(data)} bytes, shorter than the {HEADER_BYTES}-byte header of a "
            f"sample file; {REEXPORT}"
        )
    magic, version, t, i, c, code, n = HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise SampleFileError(
            f"{name} is not a sample file (magic {magic!r}, expected {MAGIC.decode()}); "
            f"give a .efs file written by edgefptt export-data"
        )
    if version != VERSION:
        raise SampleFileError(
            f"{name} has sample-file version {version}, this edgefptt reads version {VERSION}; "
            f"{REEXPORT}"
        )
    if code not in DTYPE_NAMES:
        raise SampleFileError(
            f"{name} has unknown dtype code {code} (0 = fp32, 1 = bf16); {REEXPORT}"
        )
    dtype = DTYPE_NAMES[code]
    if n == 0:
        raise SampleFileError(f"{name} holds no samples (N = 0); {REEXPORT} with at least one")
    if t == 0 or i == 0 or c == 0:
        raise SampleFileError(f"{name} has T = {t}, I = {i}, C = {c}; each must be >= 1")
    expected = sample_file_bytes(n, t, i, dtype)
    if len(data) != expected:
        which = "truncated" if len(data) < expected else "longer than its header says"
        raise SampleFileError(
            f"{name} is {len(data)} bytes but its header (N={n}, T={t}, I={i}, {dtype}) implies "
            f"{expected}: the file is {which}; {REEXPORT}"
        )
    (stored_crc,) = struct.unpack_from("<I", data, len(data) - CRC_BYTES)
    actual_crc = zlib.crc32(data[: len(data) - CRC_BYTES])
    if stored_crc != actual_crc:
        raise SampleFileError(
            f"{name} is damaged: CRC-32 {actual_crc:#010x} of its contents does not match the "
            f"stored {stored_crc:#010x}; {REEXPORT}"
        )
    for letter, value, want, what in (
        ("T", t, seq_len, "time steps"),
        ("I", i, input_size, "features per step"),
        ("C", c, num_classes, "classes"),
    ):
        if want is not None and value != want:
            raise SampleFileError(
                f"{name} has {letter} = {value} {what}, expected {want}; "
                f"{REEXPORT} from the dataset the model was trained on"
            )
    count = n * t * i
    e = ELEMENT_BYTES[dtype]
    raw = np.frombuffer(
        data, dtype="<f4" if dtype == "fp32" else "<u2", count=count, offset=HEADER_BYTES
    )
    values = raw.astype(np.float32) if dtype == "fp32" else from_bf16_bits(raw)
    x = values.reshape(n, t, i).copy()
    labels = np.frombuffer(data, dtype="<i4", count=n, offset=HEADER_BYTES + count * e)
    y = labels.astype(np.int64)
    bad = np.flatnonzero((y < 0) | (y >= c))
    if bad.size:
        k = int(bad[0])
        raise SampleFileError(
            f"{name}: label {int(y[k])} of sample {k} is outside [0, C = {c}); {REEXPORT}"
        )
    finite = np.isfinite(x).reshape(n, -1).all(axis=1)
    if not finite.all():
        k = int(np.flatnonzero(~finite)[0])
        raise SampleFileError(f"{name}: sample {k} holds a non-finite value; {REEXPORT}")
    return SampleFile(x=x, y=y, seq_len=t, input_size=i, num_classes=c, dtype=dtype, count=n)


def read_samples(
    path: str | Path,
    *,
    seq_len: int | None = None,
    input_size: int | None = None,
    num_classes: int | None = None,
) -> SampleFile:
    """Read and check a sample file; ``seq_len``, ``input_size``, ``num_classes`` (when given)
    must match its T, I and C. Every malformed case raises :class:`SampleFileError`."""
    source = Path(path)
    if not source.is_file():
        raise SampleFileError(
            f"no sample file at {source}; write one with edgefptt export-data -o {source}"
        )
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise SampleFileError(f"cannot read {source}: {exc.strerror or exc}") from None
    return decode_samples(
        data, str(source), seq_len=seq_len, input_size=input_size, num_classes=num_classes
    )
