"""`export-data`, `evaluate` and `import-c`: against the dataset loader, the training loop's own
evaluation under W_bar, and a device state built by hand from a checkpoint's edge parameters."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import ml_dtypes
import numpy as np
import pytest
import torch

from edgefptt.cli import main
from edgefptt.data import SpeechOptions, load_dataset
from edgefptt.learn.samples import read_samples
from edgefptt.learn.state import LearnerState, write_state_file
from edgefptt.models import model_to_edge
from edgefptt.train.checkpoint import load_checkpoint, save_checkpoint
from edgefptt.train.config import make_config
from edgefptt.train.loop import TrainResult, evaluate, fit, load_data
from test_speech_data import make_tone_corpus


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _one_line_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


# ---------------------------------------------------------------------------- export-data
def test_export_data_digits_limit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "test.efs"
    code, text, _ = _run(
        capsys, "export-data", "--dataset", "digits", "--split", "test", "--limit", "30",
        "-o", str(out), "--json",
    )  # fmt: skip
    assert code == 0
    doc = json.loads(text)
    assert (doc["count"], doc["seq_len"], doc["input_size"], doc["num_classes"]) == (30, 64, 1, 10)
    assert doc["bytes"] == out.stat().st_size
    reference = load_dataset("digits")
    read = read_samples(out, seq_len=64, input_size=1, num_classes=10)
    assert read.count == 30 and read.dtype == "fp32"
    np.testing.assert_array_equal(read.x, reference.test_x[:30].numpy())
    np.testing.assert_array_equal(read.y, reference.test_y[:30].numpy())


def test_export_data_bf16_rows_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "train.efs"
    code, text, _ = _run(
        capsys, "export-data", "--dataset", "digits", "--order", "row", "--limit", "12",
        "--dtype", "bf16", "-o", str(out),
    )  # fmt: skip
    assert code == 0
    assert "bf16" in text and "12" in text
    reference = load_dataset("digits", order="row").train_x[:12].numpy()
    read = read_samples(out)
    assert (read.count, read.seq_len, read.input_size) == (12, 8, 8)
    np.testing.assert_array_equal(read.x, reference.astype(ml_dtypes.bfloat16).astype(np.float32))


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--dataset", "digits", "--split", "val"], "no val split"),
        (["--dataset", "digits", "--split", "dev"], "unknown --split"),
        (["--dataset", "adding"], "regression"),
        (["--dataset", "digits", "--dtype", "fp16"], "--dtype"),
        (["--dataset", "digits", "--limit", "0"], "--limit"),
    ],
)
def test_export_data_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], words: str
) -> None:
    code, _, err = _run(capsys, "export-data", *args, "-o", str(tmp_path / "x.efs"))
    assert code == 2
    assert words in _one_line_error(err)
    assert not (tmp_path / "x.efs").exists()


def test_export_data_output_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "absent" / "x.efs"  # missing folders are created
    args = ["export-data", "--dataset", "digits", "--limit", "3"]
    assert _run(capsys, *args, "-o", str(out))[0] == 0
    assert out.is_file()
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = _run(capsys, *args, "-o", str(blocker / "x.efs"))  # under a file: refused
    assert code == 2
    assert "is a file, not a directory" in _one_line_error(err)


def test_export_data_speech_validation_split(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = make_tone_corpus(tmp_path / "gsc")
    cache = tmp_path / "cache"
    out = tmp_path / "val.efs"
    code, text, _ = _run(
        capsys, "export-data", "--dataset", "speech_commands", "--data-dir", str(corpus),
        "--cache-dir", str(cache), "--split", "val", "--dtype", "bf16", "-o", str(out), "--json",
    )  # fmt: skip
    assert code == 0
    doc = json.loads(text)
    reference = load_dataset(
        "speech_commands",
        data_dir=corpus,
        speech=SpeechOptions(cache_dir=str(cache), eval_split="validation"),
    )
    read = read_samples(out, num_classes=12)
    assert doc["count"] == read.count == len(reference.test_y)
    np.testing.assert_array_equal(read.y, reference.test_y.numpy())
    bf16 = reference.test_x.numpy().astype(ml_dtypes.bfloat16).astype(np.float32)
    np.testing.assert_array_equal(read.x, bf16)


# ---------------------------------------------------------------------------- a trained model
RECIPES = {
    # the host recipe: FPTT manages every parameter, b_hh included
    "host": {"optimizer": "adam", "lr": 0.02, "schedule": "constant", "batch_size": 32},
    # the device recipe: one bias per gate, b_hh frozen at zero and not managed by FPTT
    "device": {"recipe": "device", "lr": 1.0, "batch_size": 32},
}


@pytest.fixture(scope="module", params=sorted(RECIPES))
def trained(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[TrainResult, Path]:
    config = make_config(
        dataset="digits",
        order="row",
        hidden=8,
        epochs=1,
        partitions=2,
        limit=100,
        seed=1,
        **RECIPES[request.param],
    )
    out = tmp_path_factory.mktemp("run")
    result = fit(config, out_dir=out)
    assert result.fptt is not None and result.checkpoint is not None
    return result, Path(result.checkpoint)


def _reference(result: TrainResult, limit: int | None = None) -> tuple[float, float]:
    config = make_config(**result.config)
    data = load_data(config)
    if limit is not None:
        data = dataclasses.replace(data, test_x=data.test_x[:limit], test_y=data.test_y[:limit])
    assert result.fptt is not None
    with result.fptt.average():
        return evaluate(result.model, data, config.eval_batch_size)


def test_evaluate_checkpoint_matches_training_evaluation(
    trained: tuple[TrainResult, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    result, checkpoint = trained
    loss, accuracy = _reference(result)
    code, text, _ = _run(capsys, "evaluate", "--checkpoint", str(checkpoint), "--json")
    assert code == 0
    doc = json.loads(text)
    assert doc["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert doc["loss"] == pytest.approx(loss, rel=1e-6)
    assert doc["weights"] == "w_bar" and doc["samples"] == 100
    counts = np.array(doc["classes"]["confusion_matrix"])
    assert counts.sum() == 100 and np.trace(counts) == round(accuracy * 100)
    code, text, _ = _run(capsys, "evaluate", "--checkpoint", str(checkpoint))
    assert code == 0
    assert f"{100 * accuracy:.2f}%" in text and "confusion matrix" in text
    _, first = _reference(result, limit=50)
    code, text, _ = _run(
        capsys, "evaluate", "--checkpoint", str(checkpoint), "--limit", "50", "--json"
    )
    assert code == 0
    doc = json.loads(text)
    assert doc["samples"] == 50 and doc["accuracy"] == pytest.approx(first, abs=1e-12)


def test_evaluate_on_a_sample_file(
    trained: tuple[TrainResult, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result, checkpoint = trained
    _, accuracy = _reference(result)
    samples = tmp_path / "test.efs"
    args = ["export-data", "--dataset", "digits", "--order", "row", "--split", "test"]
    assert _run(capsys, *args, "--limit", "100", "-o", str(samples))[0] == 0  # as trained
    code, text, _ = _run(
        capsys, "evaluate", "--checkpoint", str(checkpoint), "--samples", str(samples), "--json"
    )
    assert code == 0
    assert json.loads(text)["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    # A sample file of another shape is refused in one line.
    other = tmp_path / "pixel.efs"
    assert (
        _run(capsys, "export-data", "--dataset", "digits", "--limit", "5", "-o", str(other))[0] == 0
    )
    code, _, err = _run(
        capsys, "evaluate", "--checkpoint", str(checkpoint), "--samples", str(other)
    )
    assert code == 2 and "I = 1" in _one_line_error(err)


# ---------------------------------------------------------------------------- import-c
def _edge(tensors: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Tensors by torch parameter name -> edge arrays, written out here independently."""
    w = torch.cat([tensors["rnn.weight_ih_l0"], tensors["rnn.weight_hh_l0"]], dim=1)
    b = tensors["rnn.bias_ih_l0"]
    if "rnn.bias_hh_l0" in tensors:
        b = b + tensors["rnn.bias_hh_l0"]
    return {
        "W": w.numpy().astype(np.float32),
        "b": b.numpy().astype(np.float32),
        "W_y": tensors["readout.weight"].numpy().astype(np.float32),
        "b_y": tensors["readout.bias"].numpy().astype(np.float32),
    }


def _device_state(result: TrainResult) -> LearnerState:
    """A device state holding the run's weights, W_bar and lam (what an exported learner that
    trained the same way would have written)."""
    assert result.fptt is not None
    managed = {name: p for name, p in result.model.named_parameters() if p in result.fptt.state}
    edge = model_to_edge(result.model)  # type: ignore[arg-type]
    return LearnerState(
        input_size=8,
        hidden=8,
        num_classes=10,
        batch_size=32,
        seq_len=8,
        partitions=2,
        params={k: v.astype(np.float32) for k, v in edge.items()},
        w_bar=_edge({n: result.fptt.state[p]["w_bar"] for n, p in managed.items()}),
        lam=_edge({n: result.fptt.state[p]["lam"] for n, p in managed.items()}),
        sequence=9,
        epochs_completed=3,
        prng_state=12345,
        epoch_key=678,
        best_loss=1.5,
        epochs_since_best=1,
        patience=4,
        lr0=0.2,
        alpha=0.1,
        beta=0.5,
        linear_coef=1.0,
    )


def test_import_c_then_evaluate(
    trained: tuple[TrainResult, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result, checkpoint = trained
    loss, accuracy = _reference(result)
    state_path = tmp_path / "learner.state"
    write_state_file(state_path, _device_state(result))
    out = tmp_path / "imported.pt"
    code, text, _ = _run(
        capsys, "import-c", str(state_path), "--like", str(checkpoint), "-o", str(out)
    )
    assert code == 0 and "sequence 9" in text
    saved: dict[str, Any] = load_checkpoint(out)
    original = load_checkpoint(checkpoint)
    assert saved["epoch"] == 3 and saved["next_batch"] == 0 and saved["partial"] == {}
    assert saved["source"]["device_state"] == str(state_path) and saved["source"]["sequence"] == 9
    assert saved["config"]["algorithm"] == "fptt"
    assert saved["config"]["alpha"] == 0.1 and saved["config"]["beta"] == 0.5
    assert saved["data"] == original["data"]
    assert set(original) - {"history"} <= set(saved)  # the layout Trainer.save writes
    assert saved["order"] == {"prng_state": 12345, "key": None, "key_epoch": -1}
    assert saved["early_stop"]["best"] == 1.5 and saved["early_stop"]["since_best"] == 1
    # b goes to bias_ih with bias_hh zero, for the weights and for W_bar and lam alike.
    assert not saved["model"]["rnn.bias_hh_l0"].any()
    managed = saved["fptt_params"]
    assert managed == original.get("fptt_params", managed)
    fptt_state = saved["fptt"]["state"]
    assert len(fptt_state) == len(managed)
    if "rnn.bias_hh_l0" in managed:  # host recipe: b_hh managed, its W_bar and lam zero
        index = managed.index("rnn.bias_hh_l0")
        assert not fptt_state[index]["w_bar"].any() and not fptt_state[index]["lam"].any()
    code, text, _ = _run(capsys, "evaluate", "--checkpoint", str(out), "--json")
    assert code == 0
    doc = json.loads(text)
    assert doc["accuracy"] == pytest.approx(accuracy, abs=1e-12)
    assert doc["loss"] == pytest.approx(loss, rel=1e-4)


def test_import_c_refuses_a_misfit(
    trained: tuple[TrainResult, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, checkpoint = trained
    other = LearnerState(
        input_size=8, hidden=16, num_classes=10, batch_size=64, seq_len=8, partitions=2
    )
    state_path = tmp_path / "learner.state"
    write_state_file(state_path, other)
    out = tmp_path / "x.pt"
    code, _, err = _run(
        capsys, "import-c", str(state_path), "--like", str(checkpoint), "-o", str(out)
    )
    assert code == 2 and "H is 16" in _one_line_error(err)
    gru = load_checkpoint(checkpoint)
    gru["config"] = {**gru["config"], "cell": "gru"}
    gru_path = tmp_path / "gru.pt"
    save_checkpoint(gru_path, {k: v for k, v in gru.items() if k not in ("format", "version")})
    code, _, err = _run(
        capsys, "import-c", str(state_path), "--like", str(gru_path), "-o", str(out)
    )
    assert code == 2 and "one-layer LSTM" in _one_line_error(err)
    state_path.write_bytes(state_path.read_bytes()[:1000])
    code, _, err = _run(
        capsys, "import-c", str(state_path), "--like", str(checkpoint), "-o", str(out)
    )
    assert code == 2 and "1000 bytes" in _one_line_error(err)
    assert not out.exists()
