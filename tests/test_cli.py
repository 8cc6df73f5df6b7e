"""The command line: the JSON contract, and one-line errors with exit code 2 on bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgefptt.cli import main


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_train_json_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(
        capsys,
        "train",
        "--dataset",
        "digits",
        "--algorithm",
        "fptt",
        "--partitions",
        "4",
        "--epochs",
        "1",
        "--batch-size",
        "64",
        "--hidden",
        "16",
        "--lr",
        "0.01",
        "--alpha",
        "0.2",
        "--optimizer",
        "sgd",
        "--seed",
        "3",
        "--out",
        str(tmp_path),
        "--limit",
        "200",
        "--json",
    )
    assert code == 0
    doc = json.loads(out)
    assert 0.0 <= doc["final_test_accuracy"] <= 1.0
    assert doc["peak_activation_bytes"] > 0 and doc["param_state_bytes"] > 0
    assert len(doc["epochs"]) == 1 and doc["epochs"][0]["epoch"] == 1
    assert Path(doc["checkpoint"]).is_file()
    assert doc["config"]["alpha"] == 0.2 and doc["config"]["optimizer"] == "sgd"
    assert (tmp_path / "metrics.jsonl").is_file()


def test_train_resume_from_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = [
        "train",
        "--algorithm",
        "tbptt",
        "-K",
        "2",
        "--hidden",
        "8",
        "--limit",
        "100",
        "--schedule",
        "constant",
        "--out",
        str(tmp_path),
        "--json",
    ]
    assert _run(capsys, *args, "--epochs", "2")[0] == 0
    code, out, _ = _run(capsys, *args, "--epochs", "3", "--resume")
    assert code == 0
    assert [e["epoch"] for e in json.loads(out)["epochs"]] == [1, 2, 3]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--partitions", "0"], "--partitions: Input should be greater than or equal to 1"),
        (["--partitions", "65"], "exceeds the sequence length"),
        (["--dataset", "cifar"], "--dataset"),
        (["--dataset", "smnist"], "--data-dir"),
        (["--dataset", "smnist", "--data-dir", "/nonexistent/mnist"], "does not exist"),
        (["--lr", "-1"], "--lr"),
        (["--lr", "abc"], "--lr"),
        (["--epochs", "0"], "--epochs"),
        (["--optimizer", "lbfgs"], "--optimizer"),
        (["--algorithm", "rtrl"], "--algorithm"),
        (["--no-such-option"], "no-such-option"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    code, out, err = _run(capsys, "train", "--epochs", "1", "--out", str(tmp_path), *args)
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and needle in lines[0]
    assert "Traceback" not in err


def test_corrupt_data_and_checkpoint_exit_2(
    tmp_path: Path, mnist_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (mnist_dir / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03garbage")
    code, _, err = _run(
        capsys, "train", "--dataset", "smnist", "--data-dir", str(mnist_dir), "--out", str(tmp_path)
    )
    assert code == 2 and "t10k-images-idx3-ubyte" in err and len(err.strip().splitlines()) == 1

    (tmp_path / "checkpoint.pt").write_bytes(b"definitely not a checkpoint")
    code, _, err = _run(capsys, "train", "--out", str(tmp_path), "--resume")
    assert code == 2 and "not a readable checkpoint" in err
    assert len(err.strip().splitlines()) == 1


def test_console_script_runs_without_traceback(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "edgefptt", "train", "--partitions", "-3", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    helped = subprocess.run(
        [sys.executable, "-m", "edgefptt", "--help"], capture_output=True, text=True, check=False
    )
    assert helped.returncode == 0 and "demo" in helped.stdout and "train" in helped.stdout


@pytest.mark.skipif(shutil.which("cc") is None or shutil.which("make") is None,
                    reason="the edge step needs a C compiler and make")  # fmt: skip
def test_demo_ends_with_the_edge_step(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "demo", "--epochs", "1", "--json")
    assert code == 0
    edge = json.loads(out)["edge"]
    # the C evaluates the exported W_bar exactly as torch does: the same accuracy before
    assert edge["device_before"] == pytest.approx(edge["host_accuracy"], abs=1e-9)
    assert 0.0 <= edge["device_after"] <= 1.0
    assert edge["ram_bytes"] == edge["arena_bytes"] + edge["batch_bytes"]
    assert edge["batch_bytes"] == 8 * 64 * 4 + 8 * 4
    assert edge["finetune_samples"] + edge["eval_samples"] == 360


@pytest.mark.parametrize(
    "args",
    [
        ["train", "--lr", "inf"],
        ["train", "--alpha", "inf"],
        ["train", "--weight-decay", "inf"],
        ["train", "--linear-coef", "nan"],
        ["estimate", "--clock-mhz", "inf"],
        ["export-c", "--lr", "nan", "-o", "unused"],
    ],
)
def test_non_finite_numbers_are_refused(
    capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, _, err = _run(capsys, *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "finite" in lines[0]
    assert not Path("unused").exists()
