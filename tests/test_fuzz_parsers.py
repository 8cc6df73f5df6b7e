"""Property-based fuzzing of every parser of untrusted bytes.

Each test builds valid files (IDX, gzip IDX, WAV, .npz samples, checkpoints, sample files,
device states), then feeds the parser those files, random bytes, and mutations of the valid
ones (bit flips, overwritten bytes, truncation, splices; for the formats with a CRC also
mutations with the CRC recomputed, so that the checks behind the CRC are reached). The
property: a parser returns, or raises one of our typed user errors
(:class:`edgefptt.errors.UserInputError`); a command exits 0 or 2; nothing runs longer than
``LIMIT_S`` seconds.

In CI each test runs a fixed (derandomised) set of examples, a few thousand in all. More on
demand: ``pytest -m fuzz_long tests/test_fuzz_parsers.py`` runs FUZZ_LONG_FACTOR times as many,
randomly, and ``EDGEFPTT_FUZZ_EXAMPLES=N`` sets the examples per test outright.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import signal
import struct
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgefptt.cli import main
from edgefptt.codegen.inputs import checkpoint_params, load_batch
from edgefptt.config import NetworkSpec, RunSpec
from edgefptt.data import smnist
from edgefptt.data import speech_commands as sc
from edgefptt.data.idx import read_idx
from edgefptt.errors import UserInputError
from edgefptt.learn.samples import decode_samples, encode_samples, read_samples
from edgefptt.learn.state import LearnerState, encode_state, read_state, slot_bytes
from edgefptt.train.checkpoint import load_checkpoint

pytestmark = pytest.mark.fuzz_long

LIMIT_S = 10.0  # the most one example may take (a parse is milliseconds; a hang is caught)
FUZZ_LONG_FACTOR = 20


class Hang(BaseException):  # BaseException: no parser's `except Exception` may swallow it
    """An example ran past LIMIT_S."""


@contextlib.contextmanager
def time_bound(seconds: float = LIMIT_S) -> Iterator[None]:
    def on_alarm(signum: int, frame: object) -> None:
        raise Hang(f"an example ran longer than {seconds} s: the parser hangs")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def parses_or_refuses(call: Callable[[], Any]) -> Any:
    """``call()``'s result, or None when it raised a typed user error; anything else fails."""
    with time_bound():
        try:
            return call()
        except UserInputError as exc:
            message = str(exc)
            assert message and "\n" not in message.strip(), f"not one line: {message!r}"
            assert "weights_only=False" not in message and "allow_pickle=True" not in message
            return None


def exits_0_or_2(*args: str) -> int:
    with time_bound():
        code = main(list(args))
    assert code in (0, 2), f"edgefptt {' '.join(args)} exited {code}"
    return code


def run_fuzz(request: pytest.FixtureRequest, examples: int, strategy: Any, check: Callable) -> None:
    """Run ``check`` on ``examples`` draws of ``strategy`` (more under -m fuzz_long)."""
    long_run = "fuzz_long" in (request.config.option.markexpr or "")
    count = int(os.environ.get("EDGEFPTT_FUZZ_EXAMPLES", 0)) or (
        examples * FUZZ_LONG_FACTOR if long_run else examples
    )

    @settings(
        max_examples=count,
        deadline=None,  # time_bound() is the hard limit; timings on a shared machine vary
        derandomize=not long_run,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(strategy)
    def prop(value: Any) -> None:
        check(value)

    prop()


# ---------------------------------------------------------------------------- mutations
class Blob(bytes):
    """File contents that print short: a failing example is left on disk in the test's
    tmp_path (every check writes its input there before parsing it)."""

    def __repr__(self) -> str:
        return f"Blob(<{len(self)} bytes, crc32 {zlib.crc32(self):08x}>)"


@st.composite
def mutated(draw: st.DrawFn, valid: st.SearchStrategy[bytes], crc_tail: bool = False) -> Blob:
    """A valid file, random bytes, or a mutation of a valid file."""
    return Blob(draw(_mutation(valid, crc_tail)))


@st.composite
def _mutation(draw: st.DrawFn, valid: st.SearchStrategy[bytes], crc_tail: bool) -> bytes:
    data = draw(valid)
    kind = draw(
        st.sampled_from(
            ["valid", "random", "flip", "overwrite", "truncate", "splice", "duplicate"]
            + (["recrc"] if crc_tail else [])
        )
    )
    if kind == "valid" or not data:
        return data
    if kind == "random":
        return draw(st.binary(max_size=2 * len(data) + 64))
    if kind == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))]
    if kind == "splice":
        i = draw(st.integers(0, len(data)))
        j = draw(st.integers(i, len(data)))
        return data[:i] + draw(st.binary(max_size=64)) + data[j:]
    if kind == "duplicate":
        i = draw(st.integers(0, len(data) - 1))
        return data[:i] + data[i:] + data[i:]
    out = bytearray(data)
    if kind == "overwrite":
        i = draw(st.integers(0, len(out) - 1))
        chunk = draw(st.binary(min_size=1, max_size=16))
        out[i : i + len(chunk)] = chunk
        return bytes(out)
    positions = draw(st.lists(st.integers(0, 8 * len(out) - 1), min_size=1, max_size=8))
    for bit in positions:
        out[bit // 8] ^= 1 << (bit % 8)
    if kind == "recrc" and len(out) > 4:  # corrupt contents behind a correct CRC-32
        out[-4:] = struct.pack("<I", zlib.crc32(bytes(out[:-4])))
    return bytes(out)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ---------------------------------------------------------------------------- IDX
@st.composite
def idx_files(draw: st.DrawFn) -> tuple[int, bytes]:
    ndim = draw(st.sampled_from([1, 3]))
    dims = [draw(st.integers(0, 5))] + ([28, 28] if ndim == 3 and draw(st.booleans()) else [])
    if ndim == 3 and len(dims) == 1:
        dims += [draw(st.integers(0, 4)), draw(st.integers(0, 4))]
    body = draw(st.binary(min_size=int(np.prod(dims)), max_size=int(np.prod(dims))))
    header = bytes([0, 0, 8, ndim]) + np.asarray(dims, dtype=">u4").tobytes()
    return ndim, header + body


@st.composite
def idx_inputs(draw: st.DrawFn) -> tuple[int, bool, bytes]:
    ndim, raw = draw(idx_files())
    compressed = draw(st.booleans())
    if compressed:  # mutate the compressed stream (or the IDX inside it)
        inner = draw(mutated(st.just(raw)))
        return ndim, True, draw(mutated(st.just(gzip.compress(inner, mtime=0))))
    return ndim, False, draw(mutated(st.just(raw)))


def test_idx_reader_and_smnist_loader(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    from conftest import make_mnist_dir

    root = make_mnist_dir(tmp_path / "mnist", num_train=4, num_test=3)

    def check(case: tuple[int, bool, bytes]) -> None:
        ndim, compressed, data = case
        path = _write(tmp_path / ("file.gz" if compressed else "file"), data)
        array = parses_or_refuses(lambda: read_idx(path, ndim))
        if array is not None:
            assert array.dtype == np.uint8 and array.ndim == ndim
        # the same bytes as one of the four MNIST files
        name = "train-labels-idx1-ubyte" if ndim == 1 else "t10k-images-idx3-ubyte"
        for stale in (root / name, root / f"{name}.gz"):
            stale.unlink(missing_ok=True)
        _write(root / (f"{name}.gz" if compressed else name), data)
        loaded = parses_or_refuses(lambda: smnist.load(root, order="row"))
        if loaded is not None:
            assert torch.isfinite(loaded.train_x).all() and loaded.train_x.shape[1:] == (28, 28)
            assert int(loaded.train_y.max()) <= 9

    run_fuzz(request, 500, idx_inputs(), check)


# ---------------------------------------------------------------------------- WAV
SPECIAL = st.sampled_from([np.nan, np.inf, -np.inf, 1e30, -3e38, 1e4, 0.0])


@st.composite
def wav_files(draw: st.DrawFn) -> bytes:
    subtype = draw(st.sampled_from(["PCM_16", "PCM_24", "PCM_U8", "FLOAT", "DOUBLE"]))
    rate = draw(st.sampled_from([16_000, 16_000, 16_000, 8_000]))
    channels = draw(st.sampled_from([1, 1, 1, 2]))
    n = draw(st.integers(0, 400))
    samples = np.asarray(
        draw(st.lists(st.floats(-1, 1, width=32), min_size=n * channels, max_size=n * channels)),
        dtype=np.float32,
    ).reshape(n, channels)
    if subtype in ("FLOAT", "DOUBLE") and n and draw(st.booleans()):  # damaged float samples
        for _ in range(draw(st.integers(1, 3))):
            samples[draw(st.integers(0, n - 1)), 0] = draw(SPECIAL)
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, subtype=subtype, format="WAV")
    return buffer.getvalue()


def _warm_up_audio(folder: Path) -> None:
    """Read and featurize a valid clip once, untimed: in a fresh environment librosa's numba
    kernels compile on first use, which takes longer than the per-example bound and is no
    hang of ours."""
    settings_ = sc.FeatureSettings()
    clip = folder / "warm.wav"
    tone = 0.1 * np.sin(np.arange(settings_.sample_rate // 2, dtype=np.float32) / 7.0)
    soundfile.write(clip, tone, settings_.sample_rate, subtype="PCM_16")
    sc.finite_features(sc.read_audio(clip, settings_.sample_rate), settings_)


def test_wav_reader_gives_finite_features_or_a_reason(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    settings_ = sc.FeatureSettings()
    path = tmp_path / "clip.wav"
    _warm_up_audio(tmp_path)

    def check(data: bytes) -> None:
        _write(path, data)
        with time_bound():
            try:
                audio = sc.read_audio(path, settings_.sample_rate)
            except sc.BrokenClip as exc:
                assert str(exc)
                return
            assert audio.ndim == 1 and len(audio) and np.isfinite(audio).all()
            features = sc.finite_features(audio, settings_)
        if not isinstance(features, str):
            assert features.shape == (settings_.num_frames, settings_.features)
            assert np.isfinite(features).all()

    run_fuzz(request, 120, mutated(wav_files()), check)


def test_speech_loader_skips_or_refuses_a_fuzzed_clip(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from test_speech_data import make_tone_corpus

    _warm_up_audio(tmp_path)
    root = make_tone_corpus(tmp_path / "gsc", words=("yes", "no"))
    target = root / "yes" / "00000000_nohash_0.wav"  # a training clip
    options = sc.SpeechOptions(
        task="custom",
        words=("yes", "no"),
        unknown_fraction=0,
        silence_fraction=0,
        cache_dir=str(tmp_path / "cache"),
    )

    def check(data: bytes) -> None:
        _write(target, data)
        loaded = parses_or_refuses(lambda: sc.load(root, options))
        assert loaded is not None  # five good clips of each word remain
        assert torch.isfinite(loaded.train_x).all() and torch.isfinite(loaded.test_x).all()
        skipped = {s.path for s in loaded.skipped}
        assert loaded.stats["train_clips"] == 8 - len(skipped)

    run_fuzz(request, 25, mutated(wav_files()), check)


# ---------------------------------------------------------------------------- .npz samples
@st.composite
def npz_files(draw: st.DrawFn) -> tuple[NetworkSpec, RunSpec, bytes]:
    i, t = draw(st.integers(1, 3)), draw(st.integers(1, 5))
    n, b = draw(st.integers(0, 5)), draw(st.integers(1, 4))
    net = NetworkSpec(input_size=i, hidden_size=4, num_classes=3)
    run = RunSpec(batch_size=b, seq_len=t, partitions=1, schedule="exact")
    x_dtype = draw(st.sampled_from(["<f4", "<f8", "<f2", "<i4", "<c8"]))
    x = np.asarray(draw(st.lists(st.floats(-5, 5), min_size=n * t * i, max_size=n * t * i)))
    x = x.reshape(n, t, i).astype(x_dtype)
    if i == 1 and draw(st.booleans()):
        x = x[..., 0]
    y = np.asarray(draw(st.lists(st.integers(-1, 3), min_size=n, max_size=n)), dtype=np.int64)
    arrays: dict[str, Any] = {"x": x, "y": y}
    variant = draw(st.sampled_from(["plain", "plain", "no_y", "nan", "object", "strings"]))
    if variant == "no_y":
        del arrays["y"]
    elif variant == "nan" and x.size and x.dtype.kind == "f":
        x.reshape(-1)[0] = np.nan
    elif variant == "object":
        arrays["y"] = np.array([{"a": 1}] * n, dtype=object)
    elif variant == "strings":
        arrays["y"] = np.array(["cat"] * n)
    buffer = io.BytesIO()
    (np.savez_compressed if draw(st.booleans()) else np.savez)(buffer, **arrays)
    return net, run, buffer.getvalue()


@st.composite
def npz_inputs(draw: st.DrawFn) -> tuple[NetworkSpec, RunSpec, bytes]:
    net, run, data = draw(npz_files())
    if draw(st.integers(0, 9)) == 0:  # a lone .npy array instead of an archive
        buffer = io.BytesIO()
        np.save(buffer, np.zeros((2, run.seq_len, net.input_size)))
        data = buffer.getvalue()
    return net, run, draw(mutated(st.just(data)))


def test_npz_sample_loader(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    path = tmp_path / "samples.npz"

    def check(case: tuple[NetworkSpec, RunSpec, bytes]) -> None:
        net, run, data = case
        _write(path, data)
        batch = parses_or_refuses(lambda: load_batch(path, net, run))
        if batch is not None:
            x, y = batch
            assert x.shape == (run.batch_size, run.seq_len, net.input_size)
            assert np.isfinite(x).all() and ((y >= 0) & (y < net.num_classes)).all()

    run_fuzz(request, 400, npz_inputs(), check)


# ---------------------------------------------------------------------------- sample files
@st.composite
def efs_files(draw: st.DrawFn) -> bytes:
    n, t, i, c = (draw(st.integers(1, 4)) for _ in range(4))
    values = draw(st.lists(st.floats(-100, 100, width=32), min_size=n * t * i, max_size=n * t * i))
    labels = draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n))
    x = np.asarray(values, dtype=np.float32).reshape(n, t, i)
    return encode_samples(x, np.asarray(labels), c, draw(st.sampled_from(["fp32", "bf16"])))


def test_sample_file_reader(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    path = tmp_path / "samples.efs"

    def check(data: bytes) -> None:
        parsed = parses_or_refuses(lambda: decode_samples(data, "fuzzed.efs"))
        _write(path, data)
        again = parses_or_refuses(lambda: read_samples(path))
        assert (parsed is None) == (again is None)
        if parsed is not None:
            assert parsed.x.shape == (parsed.count, parsed.seq_len, parsed.input_size)
            assert np.isfinite(parsed.x).all()
            assert ((parsed.y >= 0) & (parsed.y < parsed.num_classes)).all()

    run_fuzz(request, 600, mutated(efs_files(), crc_tail=True), check)


# ---------------------------------------------------------------------------- device states
def _learner_state(draw: st.DrawFn, i: int, h: int, c: int) -> LearnerState:
    state = LearnerState(
        input_size=i,
        hidden=h,
        num_classes=c,
        batch_size=draw(st.integers(1, 8)),
        seq_len=64,
        partitions=8,
        dtype=draw(st.sampled_from(["fp32", "bf16"])),
        sequence=draw(st.integers(1, 5)),
        epochs_completed=draw(st.integers(0, 3)),
        lr0=0.01,
    )
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    for name in ("params", "w_bar", "lam"):
        setattr(state, name, {k: rng.normal(size=v.shape) for k, v in state.params.items()})
    return state


@st.composite
def state_files(draw: st.DrawFn, sizes: tuple[int, int, int] | None = None) -> bytes:
    """A two-slot state file; each slot a (possibly mutated, re-CRCed) image or zeros."""
    i, h, c = sizes or (draw(st.integers(1, 3)), draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    state = _learner_state(draw, i, h, c)
    size = slot_bytes(state.param_count, state.dtype)
    slots = []
    for _ in range(2):
        image = b"" if draw(st.integers(0, 3)) == 0 else encode_state(state)
        image = draw(mutated(st.just(image), crc_tail=True)) if image else image
        slots.append(image[:size].ljust(size, b"\0"))
    return draw(mutated(st.just(b"".join(slots))))


def test_device_state_reader(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    path = tmp_path / "state.bin"

    def check(data: bytes) -> None:
        _write(path, data)
        found = parses_or_refuses(lambda: read_state(path))
        if found is not None:
            state, slot = found
            assert slot in (0, 1)
            assert state.params.keys() == state.network.param_shapes().keys()
            for name, shape in state.network.param_shapes().items():
                assert state.params[name].shape == shape

    run_fuzz(request, 400, state_files(), check)


# ---------------------------------------------------------------------------- checkpoints
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real checkpoint of `edgefptt train` (digits, LSTM 4, one epoch, FPTT)."""
    out = tmp_path_factory.mktemp("fuzz-run")
    code = main(
        ["train", "--epochs", "1", "--hidden", "4", "--limit", "16", "--batch-size", "8",
         "--out", str(out / "run"), "--json"]
    )  # fmt: skip
    assert code == 0
    return out / "run" / "checkpoint.pt"


def _replace_somewhere(draw: st.DrawFn, value: Any, depth: int = 0) -> Any:
    """``value`` with one entry somewhere inside deleted or replaced by something odd."""
    odd = st.sampled_from(
        [None, "x", -1, 0, 2**70, 1.5, float("nan"), float("inf"), [], {}, [1, 2], True]
    ) | st.builds(lambda shape: torch.ones(shape), st.lists(st.integers(0, 3), max_size=3))
    containers = (dict, list)
    if isinstance(value, containers) and value and (depth == 0 or draw(st.integers(0, 2))):
        keys = list(value) if isinstance(value, dict) else list(range(len(value)))
        key = draw(st.sampled_from(keys))
        copy = dict(value) if isinstance(value, dict) else list(value)
        if isinstance(copy, dict) and draw(st.integers(0, 3)) == 0:
            del copy[key]
        else:
            copy[key] = _replace_somewhere(draw, copy[key], depth + 1)
        return copy
    if isinstance(value, torch.Tensor) and value.numel() and draw(st.booleans()):
        changed = value.clone()
        changed.view(-1)[0] = draw(st.sampled_from([float("nan"), float("inf"), 1e30]))
        return changed
    return draw(odd)


@st.composite
def checkpoint_files(draw: st.DrawFn, valid: bytes) -> bytes:
    if draw(st.booleans()):
        return draw(mutated(st.just(valid)))
    document = torch.load(io.BytesIO(valid), weights_only=True)
    buffer = io.BytesIO()
    torch.save(_replace_somewhere(draw, document), buffer)
    return Blob(buffer.getvalue())


def test_checkpoint_loaders(request: pytest.FixtureRequest, tmp_path: Path, trained: Path) -> None:
    path = tmp_path / "checkpoint.pt"

    def check(data: bytes) -> None:
        _write(path, data)
        document = parses_or_refuses(lambda: load_checkpoint(path))
        loaded = parses_or_refuses(lambda: checkpoint_params(path))
        if document is None:
            assert loaded is None  # what the loader refuses, export-c refuses too
        if loaded is not None:
            params, sizes = loaded
            assert all(np.isfinite(p).all() for p in params.values())
            h, i = sizes["hidden_size"], sizes["input_size"]
            assert params["W"].shape == (4 * h, i + h)

    run_fuzz(request, 150, checkpoint_files(trained.read_bytes()), check)


def test_import_c_and_evaluate_with_fuzzed_files(
    request: pytest.FixtureRequest, tmp_path: Path, trained: Path
) -> None:
    like, state, samples = tmp_path / "like.pt", tmp_path / "state.bin", tmp_path / "s.efs"
    out = tmp_path / "imported.pt"
    valid = trained.read_bytes()

    @st.composite
    def cases(draw: st.DrawFn) -> tuple[bytes, bytes, bytes]:
        checkpoint = draw(checkpoint_files(valid)) if draw(st.booleans()) else Blob(valid)
        x = np.zeros((2, 64, 1), dtype=np.float32)
        efs = draw(mutated(st.just(encode_samples(x, np.array([0, 1]), 10)), crc_tail=True))
        return checkpoint, draw(state_files((1, 4, 10))), efs

    def check(case: tuple[bytes, bytes, bytes]) -> None:
        _write(like, case[0])
        _write(state, case[1])
        _write(samples, case[2])
        out.unlink(missing_ok=True)
        exits_0_or_2("import-c", str(state), "--like", str(like), "-o", str(out), "--json")
        exits_0_or_2("evaluate", "--checkpoint", str(like), "--samples", str(samples), "--json")

    run_fuzz(request, 30, cases(), check)
