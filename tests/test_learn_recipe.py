"""`train --recipe device` against the golden learner, resume, refused options, --init."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from edgefptt.cli import main
from edgefptt.codegen.export import export_workload
from edgefptt.codegen.inputs import checkpoint_params
from edgefptt.config import NetworkSpec, RunSpec
from edgefptt.data import load_dataset
from edgefptt.data.base import SequenceData
from edgefptt.edge import execute
from edgefptt.edge.executor import infer
from edgefptt.errors import ConfigError, TrainingInterrupted
from edgefptt.learn.golden import golden_learn
from edgefptt.learn.order import SplitMix64, epoch_lr, epoch_permutation
from edgefptt.models import model_to_edge
from edgefptt.train.checkpoint import load_checkpoint
from edgefptt.train.config import make_config
from edgefptt.train.loop import TrainCallbacks, Trainer, fit


def _tiny_data(n: int = 44, steps: int = 12, seed: int = 0) -> SequenceData:
    """A learnable toy task (4 classes, I = 2); 44 samples leave 4 untrained at B = 8."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n + 20, steps, 2, generator=g)
    y = (x[:, 0, 0] > 0).long() + 2 * (x[:, -1, 1] > 0).long()
    return SequenceData("tiny", x[:n], y[:n], x[n:], y[n:], num_classes=4)


def _small_digits() -> SequenceData:
    # --limit does not cut the bundled digits, so take a small slice here.
    d = load_dataset("digits")
    return SequenceData("digits-small", d.train_x[:68], d.train_y[:68], d.test_x[:30],
                        d.test_y[:30], num_classes=10)  # fmt: skip


def _specs(
    data: SequenceData, hidden: int, batch: int, k: int, lr: float = 0.01
) -> tuple[NetworkSpec, RunSpec]:
    net = NetworkSpec(input_size=data.input_size, hidden_size=hidden, num_classes=data.num_classes)
    run = RunSpec(
        batch_size=batch, seq_len=data.seq_len, partitions=k, schedule="exact", learning_rate=lr
    )
    return net, run


def _close(a: float, b: float, rel: float = 1e-4) -> bool:
    return abs(a - b) <= rel * abs(b)


class _BatchLosses(TrainCallbacks):
    def __init__(self) -> None:
        self.losses: list[tuple[int, int, float]] = []

    def on_batch_end(self, epoch: int, batch: int, loss: float) -> None:
        self.losses.append((epoch, batch, loss))


# ------------------------------------------------------------------ (a) host vs golden
def test_device_recipe_matches_the_golden_learner_on_digits() -> None:
    """torch autograd and the golden kernels, in fp32, give the same epochs (independently)."""
    data = _small_digits()
    options = {"hidden": 8, "partitions": 4, "batch_size": 8, "epochs": 2, "seed": 5}
    config = make_config(recipe="device", lr=0.2, lr_step="1:0.5", **options)
    trainer = Trainer(config, data)
    # one bias per gate: b_hh is zero and frozen, b_ih is the edge b
    assert not trainer.model.rnn.bias_hh_l0.requires_grad
    assert float(trainer.model.rnn.bias_hh_l0.abs().sum()) == 0.0
    start = model_to_edge(trainer.model)
    host = trainer.run()

    net, run = _specs(data, 8, 8, 4)
    golden = golden_learn(
        net, run, start, data.train_x.numpy(), data.train_y.numpy(), data.test_x.numpy(),
        data.test_y.numpy(), epochs=2, lr0=0.2, lr_step="1:0.5", seed=5,
    )  # fmt: skip
    assert len(golden.records) == len(host.history) == 2
    for h, g in zip(host.history, golden.records, strict=True):
        assert _close(h["train_loss"], g["train_loss"]), (h, g)
        assert _close(h["test_loss"], g["test_loss"]), (h, g)
        assert h["train_accuracy"] == g["train_accuracy"]
        assert h["test_accuracy"] == g["test_accuracy"]
        assert h["lr"] == g["lr"]
    assert [g["lr"] for g in golden.records] == [float(np.float32(0.2)), float(np.float32(0.1))]
    assert np.asarray(golden.records[-1]["confusion"]).sum() == len(data.test_x)
    # the final weights agree too (W and W_bar)
    final = model_to_edge(host.model)
    assert host.fptt is not None
    with host.fptt.average():
        averaged = model_to_edge(host.model)
    for name in ("W", "b", "W_y", "b_y"):
        np.testing.assert_allclose(golden.params[name], final[name], rtol=1e-3, atol=1e-5)
        bar = golden.fptt_state[name]["w_bar"]
        np.testing.assert_allclose(bar, averaged[name], rtol=1e-3, atol=1e-5)


def test_golden_learner_bf16_and_the_executor_additions() -> None:
    data = _tiny_data()
    net, run = _specs(data, 6, 8, 3)
    start = model_to_edge(Trainer(make_config(recipe="device", hidden=6, partitions=3), data).model)
    x, y = data.train_x.numpy(), data.train_y.numpy()
    bf16 = run.model_copy(update={"dtype": "bf16"})
    result = golden_learn(net, bf16, start, x, y, epochs=2, lr0=0.1, seed=1, rounding="away")
    assert all(np.isfinite(r["train_loss"]) for r in result.records)
    assert result.records[0]["test_loss"] is None
    for value in result.params.values():  # every stored value is a bf16 number
        bits = np.asarray(value, dtype=np.float32).view(np.uint32)
        assert np.all(bits & 0xFFFF == 0)
    # K = 1: the logits the loss kernel reads are infer's logits (the same forward pass)
    one = run.model_copy(update={"partitions": 1})
    workload, memory = export_workload(net, one, "lifetime")
    stored = {k: v.astype(np.float32) for k, v in start.items()}
    trained = execute(workload, stored, x[:8], y[:8], record_logits=True, arena=memory)
    assert len(trained.logits) == 1 and trained.logits[0].shape == (8, 4)
    np.testing.assert_array_equal(trained.logits[0], infer(workload, stored, x[:8], arena=memory))
    k3, _ = export_workload(net, run, "recompute")
    assert len(execute(k3, stored, x[:8], y[:8], record_logits=True).logits) == 3
    assert execute(k3, stored, x[:8], y[:8]).logits == []


def test_patience_stops_host_and_golden_alike() -> None:
    """With an lr too small to move float32 weights every epoch has the same test loss."""
    data = _tiny_data()
    config = make_config(recipe="device", hidden=6, partitions=2, lr=1e-30, epochs=5, patience=2)
    trainer = Trainer(config, data)
    start = model_to_edge(trainer.model)
    host = trainer.run()
    assert host.stopped_early and [r["epoch"] for r in host.history] == [1, 2, 3]
    net, run = _specs(data, 6, 32, 2)
    golden = golden_learn(net, run, start, data.train_x.numpy(), data.train_y.numpy(),
                          data.test_x.numpy(), data.test_y.numpy(), epochs=5, lr0=1e-30,
                          patience=2)  # fmt: skip
    assert golden.stopped_early and len(golden.records) == 3


# ------------------------------------------------------------------ (b) resume
def test_device_recipe_resumes_exactly_from_the_middle_of_an_epoch(tmp_path: Path) -> None:
    data = _tiny_data()
    config = make_config(recipe="device", hidden=8, partitions=3, batch_size=8, epochs=3,
                         lr=0.3, lr_step="2:0.5", seed=11)  # fmt: skip
    full = fit(config, data)

    class PressCtrlC(TrainCallbacks):
        def on_batch_end(self, epoch: int, batch: int, loss: float) -> None:
            if epoch == 2 and batch == 1:
                os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(TrainingInterrupted) as caught:
        fit(config, data, out_dir=tmp_path, callbacks=PressCtrlC())
    saved = load_checkpoint(Path(caught.value.checkpoint))
    assert (saved["epoch"], saved["next_batch"]) == (1, 2)
    rng = SplitMix64(11)
    keys = [rng.next(), rng.next()]
    assert saved["order"]["key"] == keys[1] and saved["order"]["prng_state"] == rng.state
    resumed = fit(config, data, out_dir=tmp_path, resume=True)
    fields = ("train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr")
    assert [[r[f] for f in fields] for r in resumed.history] == [
        [r[f] for f in fields] for r in full.history
    ]
    # the order is the contract's: 44 samples, B = 8 -> 5 batches of the keyed permutation
    log = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in log] == [1, 2, 3]
    assert epoch_permutation(44, keys[0]).shape == (44,)


def test_device_recipe_trains_floor_n_over_b_batches_in_the_contract_order() -> None:
    data = _tiny_data()
    config = make_config(recipe="device", hidden=4, partitions=2, batch_size=8, epochs=1, seed=2)
    seen: list[torch.Tensor] = []
    trainer = Trainer(config, data)
    original = trainer.train_batch

    def spy(x: torch.Tensor, y: torch.Tensor, measure: bool) -> tuple[float, int, int]:
        seen.append(x.clone())
        return original(x, y, measure)

    trainer.train_batch = spy  # type: ignore[method-assign]
    trainer.run()
    order = epoch_permutation(44, SplitMix64(2).next())
    assert len(seen) == 5 and all(len(x) == 8 for x in seen)
    assert torch.equal(torch.cat(seen), data.train_x[torch.from_numpy(order[:40])])


# ------------------------------------------------------------------ (c) refused options
@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["--optimizer", "adam", "--momentum", "0.9"], ["--optimizer adam", "--momentum 0.9"]),
        (["--algorithm", "tbptt"], ["--algorithm tbptt"]),
        (["--schedule", "cosine"], ["--schedule cosine", "--lr-step"]),
        (["--clip", "1"], ["--clip 1.0"]),
        (["--cell", "gru", "--layers", "2"], ["--cell gru", "--layers 2"]),
        (["--readout", "mean", "--loss-weighting", "ramp"], ["--readout mean", "--loss-weighting"]),
        (["--weight-decay", "0.1", "--reset-lambda"], ["--weight-decay 0.1", "--reset-lambda"]),
        (["--lr-step", "junk"], ["--lr-step", "E:F"]),
        (["--lr-step", "0:0.5"], ["--lr-step"]),
        (["--recipe", "edge"], ["--recipe"]),
        (["--dataset", "adding", "--seq-len", "8"], ["classifiers"]),
        (["--batch-size", "5000"], ["fewer than one batch"]),
        (["--init", "/nonexistent/ck.pt"], ["--init", "/nonexistent/ck.pt"]),
    ],
)
def test_contradicting_options_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needles: list[str]
) -> None:
    argv = ["train", "--recipe", "device", "--epochs", "1", "--out", str(tmp_path), *args]
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert captured.out == "" and len(lines) == 1 and lines[0].startswith("error: "), captured.err
    for needle in needles:
        assert needle in lines[0]


def test_lr_step_needs_the_device_recipe(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--lr-step", "2:0.5", "--out", str(tmp_path)]) == 2
    assert "--recipe device" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="--optimizer adam"):
        make_config(recipe="device", optimizer="adam")
    # what the recipe sets when the options are left out
    config = make_config(recipe="device")
    assert (config.algorithm, config.optimizer, config.momentum, config.weight_decay) == (
        "fptt", "sgd", 0.0, 0.0,
    )  # fmt: skip
    assert (config.clip, config.loss_weighting, config.schedule, config.reset_lambda) == (
        None, "last", "constant", False,
    )  # fmt: skip
    assert (config.cell, config.layers, config.readout) == ("lstm", 1, "last")
    # giving the recipe's own values is fine
    assert make_config(recipe="device", optimizer="sgd", momentum=0, clip=None) == config


# ------------------------------------------------------------------ (d) --init
def test_init_starts_from_the_checkpoints_w_bar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _tiny_data()
    # a host-recipe FPTT checkpoint (Adam, ramp): its W_bar differs from its W
    source = tmp_path / "source"
    fit(make_config(algorithm="fptt", partitions=2, hidden=6, epochs=1, batch_size=8), data,
        out_dir=source)  # fmt: skip
    ckpt = source / "checkpoint.pt"
    params, sizes = checkpoint_params(ckpt)
    assert sizes == {"input_size": 2, "hidden_size": 6, "num_classes": 4}
    document = load_checkpoint(ckpt)
    w_bar = document["fptt"]["state"]
    names = document["fptt_params"]
    bar = {n: w_bar[i]["w_bar"] for i, n in enumerate(names)}
    np.testing.assert_allclose(
        params["b"], (bar["rnn.bias_ih_l0"] + bar["rnn.bias_hh_l0"]).numpy(), rtol=0, atol=1e-7
    )
    np.testing.assert_array_equal(params["W_y"], bar["readout.weight"].numpy())
    assert not np.allclose(params["W_y"], document["model"]["readout.weight"].numpy())

    config = make_config(recipe="device", hidden=6, partitions=3, batch_size=8, epochs=1,
                         lr=0.1, seed=4, init=str(ckpt))  # fmt: skip
    trainer = Trainer(config, data)
    started = model_to_edge(trainer.model)
    for name in params:
        np.testing.assert_allclose(started[name], params[name], rtol=0, atol=1e-6)
    spy = _BatchLosses()
    trainer.callbacks = spy
    trainer.run()
    first = spy.losses[0][2]

    net, run = _specs(data, 6, 8, 3, lr=epoch_lr(0.1, 0))
    workload, memory = export_workload(net, run, "lifetime")
    index = epoch_permutation(44, SplitMix64(4).next())[:8]
    x, y = data.train_x.numpy()[index], data.train_y.numpy()[index]
    stored = {k: v.astype(np.float32) for k, v in params.items()}
    golden = execute(workload, stored, x, y, arena=memory)
    assert _close(first, golden.losses[-1])
    raw = {k: v.astype(np.float32) for k, v in _raw_weights(ckpt).items()}
    assert not _close(first, execute(workload, raw, x, y).losses[-1], rel=1e-3)

    # from the command line: --hidden comes from the checkpoint
    out = tmp_path / "cli"
    argv = [
        "train",
        "--recipe",
        "device",
        "--dataset",
        "digits",
        "--order",
        "row",
        "-K",
        "2",
        "--epochs",
        "1",
        "--batch-size",
        "256",
        "--init",
        str(ckpt),
        "--out",
        str(out),
    ]
    assert main(argv) == 2  # digits rows have 8 inputs, the checkpoint 2
    assert "input size 2" in capsys.readouterr().err


def _raw_weights(path: Path) -> dict[str, Any]:
    """The checkpoint's W (not W_bar) in the edge layout."""
    from edgefptt.models import SequenceClassifier

    document = load_checkpoint(path)
    model = SequenceClassifier(2, 6, 4)
    model.load_state_dict(document["model"])
    return model_to_edge(model)


def test_init_from_the_cli_takes_hidden_from_the_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["--recipe", "device", "--dataset", "digits", "--order", "row", "-K", "2",
              "--epochs", "1", "--batch-size", "128", "--lr", "0.1", "--json"]  # fmt: skip
    assert main(["train", *common, "--hidden", "5", "--out", str(tmp_path / "a")]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["config"]["recipe"] == "device" and first["stopped_early"] is False
    ckpt = tmp_path / "a" / "checkpoint.pt"
    argv = ["train", *common, "--init", str(ckpt), "--out", str(tmp_path / "b")]
    assert main(argv) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["config"]["hidden"] == 5 and second["config"]["init"] == str(ckpt)
    # fine-tuning starts where the first run's W_bar evaluated
    assert second["epochs"][0]["train_loss"] < first["epochs"][0]["train_loss"]
    assert main(["train", *common, "--init", str(ckpt), "--hidden", "7", "--out",
                 str(tmp_path / "c")]) == 2  # fmt: skip
    assert "hidden size 5" in capsys.readouterr().err
