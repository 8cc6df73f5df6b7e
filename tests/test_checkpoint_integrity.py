"""Checkpoints: checksum, entry checks, full disks, unsafe pickles and the export's T."""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

import pytest
import torch

from edgefptt.cli import main
from edgefptt.errors import CheckpointError
from edgefptt.train.checkpoint import (
    DiskFullError,
    atomic_write,
    load_checkpoint,
    save_checkpoint,
    tensor_checksum,
)

TRAIN = ["train", "--dataset", "digits", "--hidden", "4", "-K", "2", "--limit", "40"]
TRAIN += ["--batch-size", "20", "--schedule", "constant", "--epochs", "1"]


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main(list(args))
    err = capsys.readouterr().err
    return code, err


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny digits run (T = 64): its folder holds checkpoint.pt."""
    out = tmp_path_factory.mktemp("run")
    assert main([*TRAIN, "--out", str(out), "--json"]) == 0
    return out


@pytest.fixture
def run_dir(trained: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


def _uses(run_dir: Path) -> dict[str, list[str]]:
    """The three loaders of a checkpoint, as command lines."""
    ckpt = str(run_dir / "checkpoint.pt")
    return {
        "resume": [*TRAIN, "--epochs", "2", "--out", str(run_dir), "--resume"],
        "evaluate": ["evaluate", "--checkpoint", ckpt],
        "export-c": [
            "export-c",
            "--weights",
            ckpt,
            "--seq-len",
            "64",
            "--batch",
            "2",
            "--partitions",
            "2",
            "-o",
            str(run_dir / "c"),
        ],
    }


def _flip_weight_bytes(path: Path) -> None:
    """Overwrite bytes in the middle of the stored input weights, as a bad disk would."""
    weights = torch.load(path, weights_only=True)["model"]["rnn.weight_ih_l0"]
    raw = path.read_bytes()
    where = raw.find(weights.numpy().tobytes())
    assert where > 0
    middle = where + weights.numel() * 2
    path.write_bytes(
        raw[:middle] + bytes(b ^ 0x5A for b in raw[middle : middle + 4]) + raw[middle + 4 :]
    )


@pytest.mark.parametrize("use", ["resume", "evaluate", "export-c"])
def test_flipped_weight_bytes_are_refused(
    run_dir: Path, capsys: pytest.CaptureFixture[str], use: str
) -> None:
    ckpt = run_dir / "checkpoint.pt"
    argv = _uses(run_dir)[use]
    assert main(argv) == 0  # intact: every loader takes it
    capsys.readouterr()
    if use == "resume":  # the run went on to epoch 2: corrupt that checkpoint instead
        argv = [*argv[:-3], "--epochs", "3", *argv[-3:]]
    _flip_weight_bytes(ckpt)
    code, err = _run(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and str(ckpt) in lines[0] and "corrupt" in lines[0], err


def test_checkpoints_without_a_checksum_still_load(run_dir: Path) -> None:
    ckpt = run_dir / "checkpoint.pt"
    document = torch.load(ckpt, weights_only=True)
    assert document["checksum"]["sha256"] == tensor_checksum(document)
    del document["checksum"]  # as written before checksums existed
    torch.save(document, ckpt)
    assert load_checkpoint(ckpt)["model"].keys() == document["model"].keys()
    document["model"]["readout.bias"][0] += 1.0  # without a checksum there is nothing to check
    torch.save(document, ckpt)
    load_checkpoint(ckpt)


def test_checksum_covers_shape_and_dtype() -> None:
    base = {"model": {"w": torch.zeros(2, 3)}}
    assert tensor_checksum(base) != tensor_checksum({"model": {"w": torch.zeros(3, 2)}})
    assert tensor_checksum(base) != tensor_checksum({"model": {"w": torch.zeros(6)}})
    assert tensor_checksum(base) != tensor_checksum(
        {"model": {"w": torch.zeros(2, 3, dtype=torch.int32)}}
    )
    assert tensor_checksum(base) != tensor_checksum({"model": {"v": torch.zeros(2, 3)}})
    assert tensor_checksum(base) == tensor_checksum({"model": {"w": torch.zeros(2, 3)}})


@pytest.mark.parametrize(
    ("entry", "key", "value", "needle"),
    [
        ("data", "input_size", None, "lacks 'input_size'"),
        ("data", "num_outputs", "ten", "num_outputs = 'ten'"),
        ("config", "hidden", None, "lacks 'hidden'"),
        ("config", "hidden", "four", "hidden = 'four'"),
        ("config", "cell", 3, "cell = 3"),
        ("data", "seq_len", 2.5, "seq_len = 2.5"),
    ],
)
@pytest.mark.parametrize("use", ["resume", "evaluate", "export-c"])
def test_missing_or_mistyped_entries_exit_2_naming_the_key(
    run_dir: Path,
    capsys: pytest.CaptureFixture[str],
    use: str,
    entry: str,
    key: str,
    value: object,
    needle: str,
) -> None:
    ckpt = run_dir / "checkpoint.pt"
    document = torch.load(ckpt, weights_only=True)
    payload = {k: v for k, v in document.items() if k not in ("format", "version", "checksum")}
    if value is None:
        del payload[entry][key]
    else:
        payload[entry][key] = value
    save_checkpoint(ckpt, payload)  # a valid checksum: only the entry is wrong
    code, err = _run(capsys, *_uses(run_dir)[use])
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "internal error" not in lines[0], err


def test_export_refuses_non_finite_weights(
    run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = run_dir / "checkpoint.pt"
    document = torch.load(ckpt, weights_only=True)
    payload = {k: v for k, v in document.items() if k not in ("format", "version", "checksum")}
    payload["fptt"] = None  # export W itself
    payload["model"]["readout.weight"][1, 2] = float("nan")
    save_checkpoint(ckpt, payload)
    code, err = _run(capsys, *_uses(run_dir)["export-c"])
    assert code == 2 and "non-finite" in err and "W_y" in err, err
    assert not (run_dir / "c").exists()


def test_export_compares_the_sequence_length(
    trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = str(trained / "checkpoint.pt")
    code, err = _run(
        capsys,
        "export-c",
        "--weights",
        ckpt,
        "--seq-len",
        "28",
        "--batch",
        "2",
        "--partitions",
        "2",
        "-o",
        str(tmp_path / "a"),
    )
    assert code == 2 and "T = 64" in err and "T = 28" in err and "--seq-len 64" in err, err
    # the preset's T (paper-smnist: 784) is compared too
    code, err = _run(
        capsys,
        "export-c",
        "--weights",
        ckpt,
        "--batch",
        "2",
        "--partitions",
        "2",
        "-o",
        str(tmp_path / "b"),
    )
    assert code == 2 and "T = 64" in err and "T = 784" in err and "preset" in err, err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_missing_weights_message_fits_export_c(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _run(
        capsys, "export-c", "--weights", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "c")
    )
    assert code == 2 and "no checkpoint at" in err and "--resume" not in err, err


class _Payload:
    """A pickle that would write a file if it were ever unpickled with code execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (Path.write_text, (str(self.marker), "code ran"))  # type: ignore[return-value]


def test_unsafe_pickles_are_refused_without_unsafe_advice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "evil.pt"
    torch.save({"format": "edgefptt-checkpoint", "version": 1, "x": _Payload(marker)}, ckpt)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(ckpt)
    message = str(caught.value)
    for advice in ("weights_only", "allow_pickle", "can still be loaded", "trust"):
        assert advice not in message
    assert "refuses" in message and str(ckpt) in message
    code, err = _run(capsys, "evaluate", "--checkpoint", str(ckpt))
    assert code == 2 and "weights_only" not in err and len(err.strip().splitlines()) == 1
    assert not marker.exists()


@pytest.mark.parametrize(
    "failure",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        "wrapped",  # torch's RuntimeError with the OSError behind it
    ],
)
def test_disk_full_keeps_the_last_good_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: object
) -> None:
    ckpt = tmp_path / "checkpoint.pt"
    save_checkpoint(ckpt, {"model": {"w": torch.ones(3)}})
    before = ckpt.read_bytes()

    def full_disk(obj: object, handle: object) -> None:
        handle.write(b"partial bytes")  # type: ignore[attr-defined]
        if failure == "wrapped":
            try:
                raise OSError(errno.ENOSPC, "No space left on device")
            except OSError as exc:
                raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos") from exc
        raise failure  # type: ignore[misc]

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(DiskFullError) as caught:
        save_checkpoint(ckpt, {"model": {"w": torch.zeros(3)}})
    message = str(caught.value)
    assert "disk is full" in message and "last good checkpoint" in message and str(ckpt) in message
    assert ckpt.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary left


def test_disk_full_during_training_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def full_disk(obj: object, handle: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    code, err = _run(capsys, *TRAIN, "--out", str(tmp_path / "run"))
    assert code == 2 and "disk is full" in err and "no checkpoint was written" in err, err
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == []


def test_other_write_errors_are_not_called_a_full_disk(tmp_path: Path) -> None:
    def broken(handle: object) -> None:
        raise OSError(errno.EIO, "Input/output error")

    with pytest.raises(OSError, match="Input/output") as caught:
        atomic_write(tmp_path / "x.bin", broken)
    assert not isinstance(caught.value, DiskFullError)
    assert list(tmp_path.iterdir()) == []
