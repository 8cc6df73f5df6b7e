"""Reproduction options of the reference FPTT code: the oracle loss and the epoch-end step."""

from __future__ import annotations

import pytest
import torch

from edgefptt.data.base import SequenceData
from edgefptt.errors import ConfigError
from edgefptt.train.config import make_config
from edgefptt.train.fptt import FPTT, OracleTargets
from edgefptt.train.loop import Trainer, build_model, fit

OPTIONS = {
    "algorithm": "fptt",
    "partitions": 2,
    "hidden": 6,
    "optimizer": "sgd",
    "momentum": 0.0,
    "lr": 0.2,
    "clip": None,
    "schedule": "constant",
    "batch_size": 6,
    "device": "cpu",
    "seed": 5,
}


def _data() -> SequenceData:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(6 + 4, 8, 2, generator=g)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 2, 0])
    return SequenceData("tiny", x[:6], y[:6], x[6:], y[6:], num_classes=3)


def test_oracle_table_takes_first_misclassified_sample_per_class() -> None:
    oracle = OracleTargets(num_classes=3, num_partitions=3, uniform_epochs=1)
    labels = torch.tensor([0, 0, 1, 2, 2, 1])
    probs = torch.tensor(
        [
            [0.8, 0.1, 0.1],  # class 0, right: skipped
            [0.2, 0.7, 0.1],  # class 0, wrong: taken
            [0.6, 0.3, 0.1],  # class 1, wrong: taken
            [0.1, 0.1, 0.8],  # class 2, right: skipped
            [0.5, 0.4, 0.1],  # class 2, wrong: taken
            [0.9, 0.05, 0.05],  # class 1, wrong, but class 1 is filled
        ]
    )
    oracle.update(probs, labels, p=1)
    assert torch.equal(oracle.table[:, 1], probs[[1, 2, 4]])
    assert torch.equal(oracle.table[:, 0], torch.zeros(3, 3))  # other partitions untouched
    oracle.update(probs, labels, p=2)  # the last partition never updates
    assert torch.equal(oracle.table[:, 2], torch.zeros(3, 3))
    # warm-up: uniform; then the table row of each label; last partition: one-hot
    assert torch.allclose(oracle.targets(labels, 1, epoch=0), torch.full((6, 3), 1 / 3))
    assert torch.equal(oracle.targets(labels, 1, epoch=1), probs[[1, 1, 2, 4, 4, 2]])
    assert torch.equal(oracle.targets(labels, 2, epoch=5), torch.eye(3)[labels])
    assert [oracle.weight(p) for p in range(3)] == pytest.approx([2 / 3, 1 / 3, 0])


def _reference_params(oracle: bool) -> list[torch.Tensor]:
    """One epoch (one batch) written out by hand: ramp-weighted cross-entropy, the oracle term
    with uniform targets, the FPTT penalty, plain SGD, then the FPTT state update."""
    data = _data()
    config = make_config(**OPTIONS, epochs=1)
    model = build_model(config, data)
    params = list(model.parameters())
    fptt = FPTT(params, alpha=config.alpha, beta=config.beta)
    x, y = data.train_x, data.train_y
    state = None
    for p, (start, stop) in enumerate([(0, 4), (4, 8)]):
        for q in params:
            q.grad = None
        logits, state = model(x[:, start:stop], state)
        log_probs = torch.log_softmax(logits, dim=-1)
        loss = (p + 1) / 2 * -log_probs[torch.arange(6), y].mean()
        if oracle:
            loss = loss + (1 - (p + 1) / 2) * torch.mean(-(1 / 3) * log_probs)
        (loss + fptt.penalty()).backward()
        with torch.no_grad():
            for q in params:
                q -= config.lr * q.grad
        fptt.step()
        state = tuple(s.detach() for s in state)
    return [q.detach() for q in params]


def test_oracle_loss_matches_hand_written_reference() -> None:
    data = _data()
    trained = fit(make_config(**OPTIONS, epochs=1, oracle_loss=True, oracle_uniform_epochs=1),
                  data).model  # fmt: skip
    with_oracle = _reference_params(oracle=True)
    without = _reference_params(oracle=False)
    for mine, ref in zip(trained.parameters(), with_oracle, strict=True):
        torch.testing.assert_close(mine.detach(), ref, rtol=1e-5, atol=1e-6)
    # the oracle term changes the update (the comparison above can tell them apart)
    assert any(
        not torch.allclose(a, b, atol=1e-5) for a, b in zip(with_oracle, without, strict=True)
    )


def test_epoch_end_average_sets_weights_to_w_bar_and_lambda_to_zero() -> None:
    data = _data()
    plain = fit(make_config(**OPTIONS, epochs=1), data)
    reset = fit(make_config(**OPTIONS, epochs=1, epoch_end_average=True), data)
    assert plain.fptt is not None and reset.fptt is not None
    w_bar = [plain.fptt.state[p]["w_bar"] for p in plain.model.parameters()]
    # the same first epoch, then W <- W_bar (of the plain run) and lambda <- 0
    for param, expected in zip(reset.model.parameters(), w_bar, strict=True):
        assert torch.equal(param.detach(), expected)
    assert all(torch.count_nonzero(st["lam"]) == 0 for st in reset.fptt.state.values())
    assert any(torch.count_nonzero(st["lam"]) > 0 for st in plain.fptt.state.values())


def test_reproduction_options_need_fptt() -> None:
    with pytest.raises(ConfigError, match="--algorithm fptt"):
        Trainer(make_config(**{**OPTIONS, "algorithm": "tbptt"}, oracle_loss=True), _data())
