"""Sample files (.efs) and learner state images: byte layout, round trips, malformed files.

The references are independent of the code under test: offsets from docs/learner.md read with
struct, CRCs from zlib, bf16 rounding from ml_dtypes.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from edgefptt.errors import DataError, UserInputError
from edgefptt.learn.samples import (
    SampleFileError,
    read_samples,
    sample_file_bytes,
    write_samples,
)
from edgefptt.learn.state import (
    LearnerState,
    StateError,
    encode_state,
    read_state,
    update_state_file,
    write_state_file,
)


def _bf16(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)


def _samples(n: int = 5, t: int = 7, i: int = 3, c: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(n, t, i)).astype(np.float32)
    y = rng.integers(0, c, size=n)
    return x, y


# ---------------------------------------------------------------------------- sample files
def test_samples_round_trip_fp32(tmp_path: Path) -> None:
    x, y = _samples()
    path = tmp_path / "s.efs"
    size = write_samples(path, x, y, 4)
    assert size == path.stat().st_size == sample_file_bytes(5, 7, 3, "fp32")
    read = read_samples(path, seq_len=7, input_size=3, num_classes=4)
    assert read.x.dtype == np.float32 and read.y.dtype == np.int64
    np.testing.assert_array_equal(read.x, x)
    np.testing.assert_array_equal(read.y, y)
    assert (read.count, read.seq_len, read.input_size, read.num_classes, read.dtype) == (
        5,
        7,
        3,
        4,
        "fp32",
    )


def test_samples_round_trip_bf16_rounds_to_nearest_even(tmp_path: Path) -> None:
    x, y = _samples()
    # Exact halfway cases: 1 + 2^-8 ties down to 1.0 (even), 1 + 3 * 2^-8 ties up to 1 + 2^-6.
    ties = np.array([0x3F808000, 0x3F818000, 0xBF808000], dtype=np.uint32).view(np.float32)
    x[0, 0, :] = ties
    path = tmp_path / "b.efs"
    assert write_samples(path, x, y, 4, dtype="bf16") == sample_file_bytes(5, 7, 3, "bf16")
    read = read_samples(path)
    assert read.dtype == "bf16"
    np.testing.assert_array_equal(read.x, _bf16(x))
    bits = read.x[0, 0].view(np.uint32) >> 16
    assert bits.tolist() == [0x3F80, 0x3F82, 0xBF80]
    # Stored as 16-bit patterns: the top half of the float32.
    data = path.read_bytes()
    (first,) = struct.unpack_from("<H", data, 32)
    assert first == 0x3F80


def test_sample_file_byte_layout(tmp_path: Path) -> None:
    x, y = _samples(n=3, t=4, i=2, c=5)
    path = tmp_path / "layout.efs"
    write_samples(path, x, y, 5)
    data = path.read_bytes()
    assert data[0:8] == b"EFPTTSMP"
    assert struct.unpack_from("<6I", data, 8) == (1, 4, 2, 5, 0, 3)  # version T I C dtype N
    n_, t_, i_ = 3, 4, 2
    for n in range(n_):
        for t in range(t_):
            for i in range(i_):
                (value,) = struct.unpack_from("<f", data, 32 + ((n * t_ + t) * i_ + i) * 4)
                assert value == x[n, t, i]
    labels = struct.unpack_from(f"<{n_}i", data, 32 + n_ * t_ * i_ * 4)
    assert list(labels) == y.tolist()
    assert len(data) == 32 + n_ * t_ * i_ * 4 + 4 * n_ + 4
    (crc,) = struct.unpack_from("<I", data, len(data) - 4)
    assert crc == zlib.crc32(data[:-4])


def _recrc(data: bytes) -> bytes:
    body = data[:-4]
    return body + struct.pack("<I", zlib.crc32(body))


def _set_u32(offset: int, value: int) -> Callable[[bytes], bytes]:
    def change(data: bytes) -> bytes:
        out = bytearray(data)
        struct.pack_into("<I", out, offset, value)
        return _recrc(bytes(out))

    return change


def _zero_samples(data: bytes) -> bytes:
    header = bytearray(data[:32])
    struct.pack_into("<I", header, 28, 0)
    return bytes(header) + struct.pack("<I", zlib.crc32(bytes(header)))


def _nan_value(data: bytes) -> bytes:
    out = bytearray(data)
    struct.pack_into("<f", out, 32 + 4 * 5, float("nan"))
    return _recrc(bytes(out))


def _flip_value_byte(data: bytes) -> bytes:
    out = bytearray(data)
    out[40] ^= 0x01
    return bytes(out)


LABELS_AT = 32 + 5 * 7 * 3 * 4

MALFORMED: list[tuple[str, Callable[[bytes], bytes], dict[str, int], str]] = [
    ("shorter than the header", lambda d: d[:20], {}, "shorter than"),
    ("truncated", lambda d: d[:-9], {}, "truncated"),
    ("too long", lambda d: d + b"\0\0\0\0", {}, "longer"),
    ("wrong magic", lambda d: _recrc(b"EFPTTXXX" + d[8:]), {}, "magic"),
    ("unknown version", _set_u32(8, 2), {}, "version 2"),
    ("unknown dtype", _set_u32(24, 7), {}, "dtype code 7"),
    ("no samples", _zero_samples, {}, "N = 0"),
    ("other T", lambda d: d, {"seq_len": 8}, "T = 7"),
    ("other I", lambda d: d, {"input_size": 2}, "I = 3"),
    ("other C", lambda d: d, {"num_classes": 3}, "C = 4"),
    ("label too large", _set_u32(LABELS_AT + 4, 4), {}, "label 4 of sample 1"),
    ("negative label", _set_u32(LABELS_AT, 0xFFFFFFFF), {}, "label -1 of sample 0"),
    ("non-finite value", _nan_value, {}, "non-finite"),
    ("CRC mismatch", _flip_value_byte, {}, "CRC"),
]


@pytest.mark.parametrize(
    ("change", "expect", "words"),
    [case[1:] for case in MALFORMED],
    ids=[case[0] for case in MALFORMED],
)
def test_malformed_sample_files(
    tmp_path: Path,
    change: Callable[[bytes], bytes],
    expect: dict[str, int],
    words: str,
) -> None:
    x, y = _samples()
    good = tmp_path / "good.efs"
    write_samples(good, x, y, 4)
    bad = tmp_path / "bad.efs"
    bad.write_bytes(change(good.read_bytes()))
    with pytest.raises(SampleFileError) as info:
        read_samples(bad, **expect)
    message = str(info.value)
    assert words in message
    assert str(bad) in message and "\n" not in message
    assert "export-data" in message or "magic" in message
    assert isinstance(info.value, DataError) and isinstance(info.value, UserInputError)


def test_missing_sample_file(tmp_path: Path) -> None:
    with pytest.raises(SampleFileError, match="no sample file"):
        read_samples(tmp_path / "none.efs")


def test_writer_rejects_bad_input(tmp_path: Path) -> None:
    x, y = _samples()
    with pytest.raises(SampleFileError, match="outside"):
        write_samples(tmp_path / "a.efs", x, y, 2)
    x[1, 2, 0] = np.inf
    with pytest.raises(SampleFileError, match="non-finite"):
        write_samples(tmp_path / "a.efs", x, y, 4)
    assert not (tmp_path / "a.efs").exists()


# ---------------------------------------------------------------------------- state images
def _state(dtype: str = "fp32", hidden: int = 3, sequence: int = 1) -> LearnerState:
    i, h, c = 2, hidden, 4
    rng = np.random.default_rng(hidden + sequence)
    shapes = {"W": (4 * h, i + h), "b": (4 * h,), "W_y": (c, h), "b_y": (c,)}

    def tensors() -> dict[str, np.ndarray]:
        return {k: rng.normal(size=s).astype(np.float32) for k, s in shapes.items()}

    return LearnerState(
        input_size=i,
        hidden=h,
        num_classes=c,
        batch_size=8,
        seq_len=6,
        partitions=3,
        dtype=dtype,  # type: ignore[arg-type]
        params=tensors(),
        w_bar=tensors(),
        lam=tensors(),
        sequence=sequence,
        epochs_completed=7,
        batches_done=2,
        flags=1,
        epochs_since_best=1,
        prng_state=0x0123456789ABCDEF,
        epoch_key=0xFEDCBA9876543210,
        loss_sum=3.25,
        correct=11,
        seen=16,
        best_loss=0.5,
        lr0=0.125,
        step_epochs=10,
        step_factor=0.5,
        seed=2**40 + 3,
        patience=4,
        alpha=0.25,
        beta=0.5,
        linear_coef=1.0,
    )


def _param_count(i: int, h: int, c: int) -> int:
    return 4 * h * (i + h) + 4 * h + c * h + c


def test_state_image_layout() -> None:
    state = _state()
    image = encode_state(state)
    p = _param_count(2, 3, 4)
    assert len(image) == 140 + 3 * p * 4
    assert image[0:8] == b"EFPTTSTA"
    assert struct.unpack_from("<14I", image, 8) == (1, 1, 2, 3, 4, 8, 6, 3, 0, p, 7, 2, 1, 1)
    assert struct.unpack_from("<QQd", image, 64) == (0x0123456789ABCDEF, 0xFEDCBA9876543210, 3.25)
    assert struct.unpack_from("<IIffIf", image, 88) == (11, 16, 0.5, 0.125, 10, 0.5)
    assert struct.unpack_from("<QIfff", image, 112) == (2**40 + 3, 4, 0.25, 0.5, 1.0)
    flat = [state.params[k].reshape(-1) for k in ("W", "b", "W_y", "b_y")]
    stored = np.frombuffer(image, dtype="<f4", count=p, offset=136)
    np.testing.assert_array_equal(stored, np.concatenate(flat))
    lam = np.frombuffer(image, dtype="<f4", count=p, offset=136 + 2 * p * 4)
    np.testing.assert_array_equal(lam[: 4 * 3 * 5], state.lam["W"].reshape(-1))
    (crc,) = struct.unpack_from("<I", image, len(image) - 4)
    assert crc == zlib.crc32(image[:-4])


@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_state_file_round_trip(tmp_path: Path, dtype: str) -> None:
    state = _state(dtype)
    path = tmp_path / "state.bin"
    size = write_state_file(path, state)
    p, e = _param_count(2, 3, 4), 4 if dtype == "fp32" else 2
    slot = -(-(140 + 3 * p * e) // 4096) * 4096
    assert size == path.stat().st_size == 2 * slot
    data = path.read_bytes()
    assert not any(data[slot:])  # slot 1 zeros
    read, where = read_state(path, expect={"I": 2, "H": 3, "C": 4, "dtype": dtype})
    assert where == 0
    for name in ("params", "w_bar", "lam"):
        for key, value in getattr(state, name).items():
            want = value if dtype == "fp32" else _bf16(value)
            got = getattr(read, name)[key]
            assert got.dtype == np.float32 and got.shape == value.shape
            np.testing.assert_array_equal(got, want)
    for field in ("sequence", "epochs_completed", "batches_done", "prng_state", "epoch_key"):
        assert getattr(read, field) == getattr(state, field)
    assert (read.loss_sum, read.best_loss, read.lr0, read.seed) == (3.25, 0.5, 0.125, 2**40 + 3)
    assert read.stopped_early and read.dtype == dtype and read.param_count == p
    assert read.epoch == 7


def _region(*images: bytes | None, slot: int) -> bytes:
    out = bytearray(2 * slot)
    for k, image in enumerate(images):
        if image is not None:
            out[k * slot : k * slot + len(image)] = image
    return bytes(out)


def test_newest_slot_wins_and_damage_falls_back(tmp_path: Path) -> None:
    older, newer = _state(sequence=3), _state(sequence=4)
    slot = older.slot_bytes
    path = tmp_path / "state.bin"
    for images, expected_slot in (((older, newer), 1), ((newer, older), 0)):
        path.write_bytes(_region(*(encode_state(s) for s in images), slot=slot))
        read, where = read_state(path)
        assert (read.sequence, where) == (4, expected_slot)
        np.testing.assert_array_equal(read.params["W"], newer.params["W"])
    # A write of the newest image cut short (its CRC never written) leaves the older one.
    damaged = bytearray(encode_state(newer))
    damaged[200] ^= 0xFF
    path.write_bytes(_region(encode_state(older), bytes(damaged), slot=slot))
    read, where = read_state(path)
    assert (read.sequence, where) == (3, 0)
    np.testing.assert_array_equal(read.params["W"], older.params["W"])


def test_truncated_state_file(tmp_path: Path) -> None:
    state = _state()
    path = tmp_path / "state.bin"
    write_state_file(path, state)
    full = path.stat().st_size
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(StateError) as info:
        read_state(path)
    assert str(full - 100) in str(info.value) and str(full) in str(info.value)
    with pytest.raises(StateError, match="no state file"):
        read_state(tmp_path / "missing.bin")


def test_bad_crc_in_both_slots(tmp_path: Path) -> None:
    images = [bytearray(encode_state(_state(sequence=s))) for s in (1, 2)]
    for image in images:
        image[-1] ^= 0x55
    path = tmp_path / "state.bin"
    path.write_bytes(_region(*(bytes(i) for i in images), slot=_state().slot_bytes))
    with pytest.raises(StateError) as info:
        read_state(path)
    message = str(info.value)
    assert "slot 0: CRC mismatch" in message and "slot 1: CRC mismatch" in message
    assert "\n" not in message


def test_state_of_another_build(tmp_path: Path) -> None:
    path = tmp_path / "state.bin"
    write_state_file(path, _state(hidden=3))
    with pytest.raises(StateError) as info:
        read_state(path, expect={"H": 5})
    assert "slot 0: other build: H is 3, this build has 5" in str(info.value)
    assert "slot 1: empty" in str(info.value)
    # A full build description fixes the file size: another one is a size mismatch.
    with pytest.raises(StateError, match="bytes"):
        read_state(path, expect={"input_size": 2, "hidden": 40, "num_classes": 4, "dtype": "fp32"})
    with pytest.raises(StateError, match="seed is"):
        read_state(path, expect={"seed": 1})
    wrong_magic = bytearray(path.read_bytes())
    wrong_magic[0:8] = b"NOTSTATE"
    path.write_bytes(bytes(wrong_magic))
    with pytest.raises(StateError, match="slot 0: wrong magic"):
        read_state(path, expect={"I": 2, "H": 3, "C": 4, "dtype": "fp32"})


def test_update_alternates_slots(tmp_path: Path) -> None:
    path = tmp_path / "state.bin"
    state = _state()
    assert update_state_file(path, state) == 0 and state.sequence == 1
    assert update_state_file(path, state) == 1 and state.sequence == 2
    assert update_state_file(path, state) == 0 and state.sequence == 3
    read, where = read_state(path)
    assert (read.sequence, where) == (3, 0)
    # The older image is still in the other slot.
    slot = state.slot_bytes
    assert struct.unpack_from("<I", path.read_bytes(), slot + 12) == (2,)
