"""Bad input of every kind is refused early with exit 2 and one line (issue 19, part B):
damaged data files, broken audio, out-of-range numbers, runs that cannot fit the memory, and
slow runs that used to fail late."""

from __future__ import annotations

import gzip
import io
import json
import math
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from rich.console import Console

import edgefptt.config
from edgefptt.cli import main
from edgefptt.codegen.inputs import load_batch
from edgefptt.config import golden_min_bytes, make_specs
from edgefptt.data import idx
from edgefptt.data import speech_commands as sc
from edgefptt.errors import DataError
from edgefptt.train.config import make_config
from test_speech_data import SR, make_tone_corpus


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "internal error" not in lines[0] and "interrupted" not in lines[0]
    return lines[0]


# ---------------------------------------------------------------------------- IDX files
def _idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 8, array.ndim]) + np.asarray(array.shape, dtype=">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def test_gzip_idx_with_a_corrupt_block_is_a_data_error(
    mnist_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    labels = mnist_dir / "train-labels-idx1-ubyte"
    packed = bytearray(gzip.compress(labels.read_bytes(), mtime=0))
    packed[10] = 0x07  # the first deflate block: final, of the reserved type 3 (invalid)
    labels.unlink()
    broken = mnist_dir / "train-labels-idx1-ubyte.gz"
    broken.write_bytes(bytes(packed))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz is a damaged gzip file"):
        idx.read_idx(broken, 1)
    code, _, err = _run(capsys, "train", "--dataset", "smnist", "--data-dir", str(mnist_dir))
    assert code == 2 and "train-labels-idx1-ubyte.gz" in _one_line_error(err)


def test_idx_dimensions_whose_product_overflows_int64_are_refused(tmp_path: Path) -> None:
    # 2^31 * 2^31 * 4 = 2^64 wraps to 0 in int64: an empty body must not pass as that shape
    path = tmp_path / "images"
    path.write_bytes(bytes([0, 0, 8, 3]) + np.asarray([2**31, 2**31, 4], ">u4").tobytes())
    with pytest.raises(DataError, match="header promises"):
        idx.read_idx(path, 3)


def test_gzip_idx_larger_than_the_bound_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(_idx_bytes(np.zeros(200, dtype=np.uint8))))
    assert idx.read_idx(path, 1).shape == (200,)
    monkeypatch.setattr(idx, "MAX_IDX_BYTES", 100)
    with pytest.raises(DataError, match="decompresses to more than 100 bytes"):
        idx.read_idx(path, 1)


# ---------------------------------------------------------------------------- export-c --data
def _specs() -> tuple[edgefptt.config.NetworkSpec, edgefptt.config.RunSpec]:
    return make_specs(
        input_size=1, hidden_size=4, num_classes=3, batch_size=2, seq_len=5, schedule="exact"
    )


@pytest.mark.parametrize("kind", ["npy", "truncated", "empty", "pickled"])
def test_sample_npz_that_is_not_one_is_a_data_error(tmp_path: Path, kind: str) -> None:
    net, run = _specs()
    path = tmp_path / "samples.npz"
    good = io.BytesIO()
    np.savez(good, x=np.zeros((4, 5, 1)), y=np.zeros(4, dtype=np.int64))
    if kind == "npy":
        np.save(path.with_suffix(".npy"), np.zeros((4, 5, 1)))
        path.with_suffix(".npy").rename(path)
    elif kind == "truncated":
        path.write_bytes(good.getvalue()[: len(good.getvalue()) // 2])
    elif kind == "empty":
        path.write_bytes(b"")
    else:  # labels only a pickle could hold: never unpickled, and no advice to do so
        np.savez(path, x=np.zeros((4, 5, 1)), y=np.array([{"a": 1}] * 4, dtype=object))
    with pytest.raises(DataError) as caught:
        load_batch(path, net, run)
    message = str(caught.value)
    assert str(path) in message and "numpy.savez" in message and "allow_pickle" not in message
    path.write_bytes(good.getvalue())
    x, y = load_batch(path, net, run)
    assert x.shape == (2, 5, 1) and y.tolist() == [0, 0]


def test_export_c_with_an_empty_data_file_exits_2_not_130(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "empty.npz"
    data.write_bytes(b"")
    code, _, err = _run(
        capsys, "export-c", "--data", str(data), "--hidden", "4", "--seq-len", "8",
        "--batch", "2", "--input", "1", "-o", str(tmp_path / "out"),
    )  # fmt: skip
    assert code == 2 and "empty.npz is empty" in _one_line_error(err)


# ---------------------------------------------------------------------------- speech clips
def _float_wav(path: Path, samples: np.ndarray) -> None:
    soundfile.write(path, samples.astype(np.float32), SR, subtype="FLOAT")


def test_float_wavs_with_non_finite_or_huge_samples_are_skipped(tmp_path: Path) -> None:
    root = make_tone_corpus(tmp_path / "gsc")
    clip = np.random.default_rng(0).normal(0, 0.1, SR)
    bad = {
        "yes/00000000_nohash_0.wav": (np.nan, "non-finite"),
        "no/00000000_nohash_0.wav": (np.inf, "non-finite"),
        "up/00000000_nohash_0.wav": (3e30, "far outside"),
    }
    for rel, (value, _) in bad.items():
        damaged = clip.copy()
        damaged[100:110] = value
        _float_wav(root / rel, damaged)
    _float_wav(root / "down/00000000_nohash_0.wav", 4 * clip)  # loud, but a clip: kept
    data = sc.load(root, sc.SpeechOptions(cache_dir=str(tmp_path / "cache")))
    reasons = {s.path: s.reason for s in data.skipped}
    assert set(reasons) == set(bad)
    for rel, (_, needle) in bad.items():
        assert needle in reasons[rel]
    assert torch.isfinite(data.train_x).all() and torch.isfinite(data.test_x).all()
    # 4 training speakers per word, one clip each dropped for yes, no and up
    assert [data.train_y.tolist().count(k) for k in range(4)] == [3, 3, 3, 4]


def test_a_word_whose_clips_are_all_broken_is_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_tone_corpus(tmp_path / "gsc")
    for path in (root / "left").glob("*.wav"):
        _float_wav(path, np.full(SR, np.nan))
    options = sc.SpeechOptions(cache_dir=str(tmp_path / "cache"))
    with pytest.raises(DataError, match=r"every train clip of 'left' .* skipped as broken"):
        sc.load(root, options)
    code, _, err = _run(
        capsys, "train", "--dataset", "speech_commands", "--data-dir", str(root),
        "--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "run"),
    )  # fmt: skip
    assert code == 2 and "'left'" in _one_line_error(err)


def test_a_damaged_feature_cache_is_rebuilt(tmp_path: Path) -> None:
    root = make_tone_corpus(tmp_path / "gsc", words=("yes", "no"))
    options = sc.SpeechOptions(
        task="custom", words=("yes", "no"), unknown_fraction=0, silence_fraction=0,
        cache_dir=str(tmp_path / "cache"),
    )  # fmt: skip
    first = sc.load(root, options)
    (group,) = (tmp_path / "cache").rglob("yes.npz")
    np.savez(group, names=np.array(["yes/a.wav"]), stamps=np.zeros(2, dtype=np.int64),
             features=np.zeros((1, 3)), errors=np.array([""]))  # fmt: skip
    again = sc.load(root, options)
    # yes's 4 training and 1 test clip are computed again, no's come from the cache
    assert first.stats["computed_clips"] == 10 and again.stats["computed_clips"] == 5
    assert torch.equal(again.train_x, first.train_x)


# ---------------------------------------------------------------------------- numbers
@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["train", "--lr", "1e300"], "--lr"),
        (["train", "--seed", "99999999999999999999"], "--seed"),
        (["train", "--hidden", "100000"], "--hidden"),
        (["train", "--batch-size", "1000000"], "--batch-size"),
        (["demo", "--seed", "-1"], "--seed"),
        (["make-speech-data", "--background-s", "nan", "-o", "unused"], "--background-s"),
        (["make-speech-data", "--seed", "-1", "-o", "unused"], "--seed"),
        (["ops", "--hidden", "100000"], "--hidden"),
        (["export-c", "--hidden", "100000", "-o", "unused"], "--hidden"),
        (["export-c", "--batch", "1000000", "-o", "unused"], "--batch"),
        (["export-c", "--lr", "1e300", "-o", "unused"], "--lr"),
        (["export-c", "--seed", "-1", "-o", "unused"], "--seed"),
        (["memory", "--seq-len", "100000000"], "--seq-len"),
        (["ops", "--seq-len", "100000000"], "--seq-len"),
        (["estimate", "--seq-len", "100000000"], "--seq-len"),
        (["memory", "--budget", "1MB", "--seq-len", "20000"], "--partitions"),
        (["memory", "--device", "qemu-virt", "--seq-len", "20000"], "--partitions"),
        (
            ["export-c", "--memory-budget", "1MB", "--seq-len", "20000", "-o", "unused"],
            "--partitions",
        ),
    ],
)
def test_out_of_range_numbers_exit_2_at_once(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    args: list[str],
    needle: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(capsys, *args)
    assert code == 2 and out == ""
    assert needle in _one_line_error(err)
    assert not (tmp_path / "unused").exists() and not (tmp_path / "runs").exists()


def test_largest_seed_trains_with_both_recipes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the host recipe seeds each epoch's order with seed * 100003 + epoch: that must fit torch
    for recipe in ("host", "device"):
        out = tmp_path / recipe
        code, _, err = _run(
            capsys, "train", "--seed", str(2**32 - 1), "--recipe", recipe, "--hidden", "4",
            "--epochs", "1", "--limit", "16", "--batch-size", "8", "--out", str(out), "--json",
        )  # fmt: skip
        assert code == 0, err
        assert (out / "checkpoint.pt").is_file()


# ---------------------------------------------------------------------------- memory up front
def _torch_param_count(cell: str, layers: int, i: int, h: int, c: int) -> int:
    rnn = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(i, h, num_layers=layers)
    readout = torch.nn.Linear(h, c)
    return sum(p.numel() for p in (*rnn.parameters(), *readout.parameters()))


@pytest.mark.parametrize(
    ("options", "copies"),
    [
        ({"cell": "lstm", "layers": 1, "optimizer": "adam", "algorithm": "fptt"}, 6),
        ({"cell": "gru", "layers": 2, "optimizer": "sgd", "algorithm": "bptt"}, 3),
        (
            {
                "cell": "lstm",
                "layers": 3,
                "optimizer": "sgd",
                "momentum": 0.0,
                "algorithm": "tbptt",
            },
            2,
        ),
    ],
)
def test_train_memory_bound_counts_torchs_parameters(options: dict, copies: int) -> None:
    config = make_config(hidden=24, partitions=4, **options)
    weights = _torch_param_count(options["cell"], options["layers"], 3, 24, 5)
    assert config.min_memory_bytes(input_size=3, num_outputs=5) == 4 * copies * weights
    # plus h of each step of a partition: T = 10 over K = 4 (bptt: the whole sequence)
    steps = 10 if options["algorithm"] == "bptt" else 3
    with_activations = config.min_memory_bytes(3, 5, seq_len=10, batch=7)
    assert with_activations - 4 * copies * weights == 4 * 7 * steps * 24 * options["layers"]


@pytest.mark.parametrize(
    ("schedule", "partitions", "batch"), [("paper", 1, 4), ("exact", 4, 3), ("paper", 8, 2)]
)
def test_golden_bound_is_below_what_the_golden_allocates(
    schedule: str, partitions: int, batch: int
) -> None:
    from edgefptt.workload import build_workload

    net, run = make_specs(
        "paper-smnist", hidden_size=16, seq_len=64, batch_size=batch, partitions=partitions,
        schedule=schedule,
    )  # fmt: skip
    allocated = sum(4 * math.prod(b.shape) for b in build_workload(net, run).buffers.values())
    bound = golden_min_bytes(net, run)
    assert 0.1 * allocated < bound <= allocated


def test_ops_bound_is_below_what_the_counter_allocates() -> None:
    from edgefptt.plan import count_ops
    from edgefptt.workload import build_workload

    net, run = make_specs("paper-smnist", hidden_size=96, seq_len=8, schedule="exact")
    workload = build_workload(net, run)
    tracemalloc.start()
    count_ops(workload)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak >= 4 * 8 * 4 * 96 * (1 + 96)


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--hidden", "2048", "--layers", "2", "--device", "cpu"],
        ["ops", "--hidden", "1024"],
        ["export-c", "--hidden", "256", "--batch", "64", "-o", "unused"],
    ],
)
def test_a_run_that_cannot_fit_the_memory_is_refused_before_work(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    args: list[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(edgefptt.config, "available_memory_bytes", lambda: 2**24)  # 16 MiB

    def no_work(*_: object, **__: object) -> None:
        raise AssertionError("work started before the memory check")

    monkeypatch.setattr("edgefptt.cli.train_cmds.load_data", no_work)
    monkeypatch.setattr("edgefptt.workload.build_workload", no_work)
    monkeypatch.setattr("edgefptt.codegen.export_c", no_work)
    code, _, err = _run(capsys, *args)
    line = _one_line_error(err)
    assert code == 2 and "16,777,216 bytes" in line and "--hidden" in line
    needed = int(line.split("needs at least ")[1].split(" bytes")[0].replace(",", ""))
    assert needed > 2**24
    assert not (tmp_path / "unused").exists()


# ---------------------------------------------------------------------------- early checks
def test_report_checks_the_data_folder_before_any_section(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_report(*_: object, **__: object) -> None:
        raise AssertionError("the report started before its data folder was checked")

    monkeypatch.setattr("edgefptt.report.build_report", no_report)
    empty = tmp_path / "not-mnist"
    empty.mkdir()
    code, _, err = _run(
        capsys, "report", "--dataset", "smnist", "--data-dir", str(empty), "-o", str(tmp_path / "r")
    )
    assert code == 2 and "train-images-idx3-ubyte" in _one_line_error(err)
    code, _, err = _run(
        capsys, "report", "--dataset", "speech_commands", "--data-dir", str(empty),
        "-o", str(tmp_path / "r"),
    )  # fmt: skip
    assert code == 2 and "validation_list.txt" in _one_line_error(err)
    code, _, err = _run(
        capsys, "report", "--dataset", "digitz", "--data-dir", str(empty), "-o", str(tmp_path / "r")
    )
    assert code == 2 and "smnist or speech_commands" in _one_line_error(err)


def test_demo_rejects_k_above_t_before_training(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_training(*_: object, **__: object) -> None:
        raise AssertionError("the demo trained before checking K")

    monkeypatch.setattr("edgefptt.cli.train_cmds.compare", no_training)
    code, _, err = _run(capsys, "demo", "-K", "100", "--no-edge")
    assert code == 2 and "K=100 exceeds the sequence length T=64" in _one_line_error(err)


# ---------------------------------------------------------------------------- explore table
EXPLORE = ["explore", "--mesh", "4,8", "--cores", "1,2", "--partitions", "1,14"]


def test_explore_table_keeps_every_number_when_piped_narrow(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = _run(capsys, *EXPLORE, "--json")
    assert code == 0
    records = json.loads(out)
    monkeypatch.setattr("edgefptt.cli.hw_cmds.stdout", Console(width=60))  # a pipe, COLUMNS=60
    code, out, _ = _run(capsys, *EXPLORE)
    assert code == 0 and "…" not in out
    for r in records:
        for text in (f"{r['total_cycles']:,}", f"{r['lut']:,}", f"{r['energy_j']:.4g}"):
            assert text in out


def test_explore_table_folds_on_a_narrow_terminal(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    terminal = Console(width=60, force_terminal=True, color_system=None)
    monkeypatch.setattr("edgefptt.cli.hw_cmds.stdout", terminal)
    code, out, _ = _run(capsys, *EXPLORE)
    assert code == 0 and "…" not in out
    assert max(len(line) for line in out.splitlines()) <= 60
