"""The training loop: learning, measured memory, checkpoints, resume, failures."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from edgefptt import CheckpointError, NonFiniteLossError, TrainingInterrupted
from edgefptt.data import load_dataset
from edgefptt.data.base import SequenceData
from edgefptt.train.checkpoint import load_checkpoint
from edgefptt.train.config import make_config
from edgefptt.train.loop import TrainCallbacks, Trainer, fit


def _tiny_data(n: int = 48, steps: int = 16, seed: int = 0) -> SequenceData:
    """A learnable toy task: the class is the sign pattern of the first and last inputs."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n + 16, steps, 2, generator=g)
    y = (x[:, 0, 0] > 0).long() + 2 * (x[:, -1, 1] > 0).long()
    return SequenceData("tiny", x[:n], y[:n], x[n:], y[n:], num_classes=4)


@pytest.mark.slow
def test_fptt_learns_pixel_digits() -> None:
    """FPTT (K = 8) reaches 90 % test accuracy on pixel digits within 30 epochs."""
    result = fit(make_config(algorithm="fptt", partitions=8, epochs=30, seed=0))
    best = max(r["test_accuracy"] for r in result.history)
    assert result.final_test_accuracy >= 0.90, result.history[-1]
    assert best >= 0.90


def test_activation_memory_shrinks_with_k() -> None:
    data = load_dataset("digits")
    base = {"algorithm": "fptt", "epochs": 1, "limit": None}
    one = Trainer(make_config(**base, partitions=1), data)
    eight = Trainer(make_config(**base, partitions=8), data)
    x, y = data.train_x[:32], data.train_y[:32]
    _, _, bytes_k1 = one.train_batch(x, y, measure=True)
    _, _, bytes_k8 = eight.train_batch(x, y, measure=True)
    assert bytes_k1 > 0 and bytes_k8 > 0
    assert bytes_k8 <= bytes_k1 / 4
    bptt = Trainer(make_config(algorithm="bptt", epochs=1), data)
    assert bptt.train_batch(x, y, measure=True)[2] == bytes_k1


def test_saved_bytes_count_a_known_graph_exactly() -> None:
    """exp saves its output, mul saves both inputs; views of one storage count once."""
    from edgefptt.train.memory import SavedTensorMeter

    weight = torch.ones(10, requires_grad=True)
    meter = SavedTensorMeter(exclude=[weight])
    x = torch.randn(100)
    with meter.measure():
        e = (x * weight[0]).exp()  # saves x (400 B), weight[0] (excluded), e (400 B)
        _ = e[:50] * e[50:].detach()  # saves two halves of e's storage (already counted)
    assert meter.saved_bytes == 800


def test_param_state_counts_fptt_and_optimizer() -> None:
    data = _tiny_data()
    config = make_config(algorithm="fptt", partitions=2, hidden=8, epochs=1, optimizer="adam")
    result = fit(config, data)
    n = sum(p.numel() for p in result.model.parameters())
    state = result.param_state
    assert state["weights_bytes"] == 4 * n
    assert state["fptt_bytes"] == 8 * n  # W_bar and lam, float32
    assert state["optimizer_bytes"] >= 8 * n  # Adam's two moments (plus step counters)
    assert state["total_bytes"] == sum(v for k, v in state.items() if k != "total_bytes")


class _CrashAfter(TrainCallbacks):
    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        if record["epoch"] == self.epochs:
            raise RuntimeError("simulated crash")


@pytest.mark.parametrize("algorithm", ["bptt", "tbptt", "fptt"])
def test_resume_continues_exactly(tmp_path: Path, algorithm: str) -> None:
    data = _tiny_data()
    config = make_config(algorithm=algorithm, partitions=4, hidden=8, epochs=4)
    full = fit(config, data, out_dir=tmp_path / "full")
    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(config, data, out_dir=tmp_path / "part", callbacks=_CrashAfter(2))
    resumed = fit(config, data, out_dir=tmp_path / "part", resume=True)
    losses = lambda r: [(e["train_loss"], e["test_loss"]) for e in r.history]  # noqa: E731
    assert losses(resumed) == losses(full)
    log = (tmp_path / "part" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in log] == [1, 2, 3, 4]


def test_resume_refuses_other_settings(tmp_path: Path) -> None:
    data = _tiny_data()
    fit(make_config(algorithm="fptt", partitions=2, hidden=8, epochs=1), data, out_dir=tmp_path)
    with pytest.raises(CheckpointError, match="--partitions=2"):
        fit(make_config(algorithm="fptt", partitions=4, hidden=8, epochs=2), data, tmp_path, True)
    # a constant learning rate may be given more epochs
    constant = {"algorithm": "fptt", "partitions": 2, "hidden": 8, "schedule": "constant"}
    fit(make_config(**constant, epochs=1), data, out_dir=tmp_path / "c")
    more = fit(make_config(**constant, epochs=2), data, out_dir=tmp_path / "c", resume=True)
    assert [r["epoch"] for r in more.history] == [1, 2]


def test_ctrl_c_writes_a_checkpoint_that_resumes_exactly(tmp_path: Path) -> None:
    data = _tiny_data()
    config = make_config(algorithm="fptt", partitions=4, hidden=8, epochs=3, batch_size=8)
    full = fit(config, data)

    class PressCtrlC(TrainCallbacks):
        def on_batch_end(self, epoch: int, batch: int, loss: float) -> None:
            if epoch == 2 and batch == 2:
                os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted) as caught:
        fit(config, data, out_dir=tmp_path, callbacks=PressCtrlC())
    saved = load_checkpoint(Path(caught.value.checkpoint))
    assert (saved["epoch"], saved["next_batch"]) == (1, 3)
    assert not list(tmp_path.glob("*.tmp"))
    resumed = fit(config, data, out_dir=tmp_path, resume=True)
    assert [r["train_loss"] for r in resumed.history] == [r["train_loss"] for r in full.history]
    assert [r["test_accuracy"] for r in resumed.history] == [
        r["test_accuracy"] for r in full.history
    ]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    data = _tiny_data()
    config = make_config(algorithm="fptt", partitions=2, hidden=8, epochs=2)

    class PoisonSecondEpoch(TrainCallbacks):
        def on_epoch_start(self, epoch: int, num_batches: int, first_batch: int) -> None:
            if epoch == 2:
                data.train_x[:, 5, 0] = float("nan")

    with pytest.raises(NonFiniteLossError, match="checkpoint") as caught:
        fit(config, data, out_dir=tmp_path, callbacks=PoisonSecondEpoch())
    assert caught.value.checkpoint == str(tmp_path / "checkpoint.pt")
    saved = load_checkpoint(tmp_path / "checkpoint.pt")
    assert saved["epoch"] == 1 and len(saved["history"]) == 1  # the last good state
    assert all(torch.isfinite(v).all() for v in saved["model"].values())
    assert not list(tmp_path.glob("*.tmp"))


def test_seed_makes_runs_repeatable() -> None:
    data = _tiny_data()
    config = make_config(algorithm="tbptt", partitions=2, hidden=8, epochs=2)
    a, b = fit(config, data), fit(config, data)
    assert [r["train_loss"] for r in a.history] == [r["train_loss"] for r in b.history]
    c = fit(config.model_copy(update={"seed": 1}), data)
    assert [r["train_loss"] for r in c.history] != [r["train_loss"] for r in a.history]


def test_fptt_evaluates_with_the_running_average() -> None:
    data = _tiny_data()
    trainer = Trainer(make_config(algorithm="fptt", partitions=2, hidden=8, epochs=1), data)
    trainer.run()
    from edgefptt.train.loop import evaluate

    with trainer.fptt.average():
        expected = evaluate(trainer.model, data)
    assert trainer.history[-1]["test_loss"] == expected[0]
    assert evaluate(trainer.model, data)[0] != expected[0]


def test_adding_problem_regression_trains() -> None:
    data = load_dataset("adding", seq_len=20)
    small = SequenceData(
        "adding",
        data.train_x[:512],
        data.train_y[:512],
        data.test_x[:256],
        data.test_y[:256],
        1,
        task="regression",
    )
    result = fit(
        make_config(dataset="adding", algorithm="fptt", partitions=2, hidden=16, epochs=4), small
    )
    assert result.history[-1]["test_loss"] < 0.2  # a constant guess gives about 0.167+
