"""Checkpointed BPTT on the host: exact gradients, bptt's losses, less activation memory."""

from __future__ import annotations

import pytest
import torch

from edgefptt.data import load_dataset
from edgefptt.data.base import SequenceData
from edgefptt.errors import ConfigError
from edgefptt.models import SequenceClassifier
from edgefptt.train.checkpointed import checkpointed_backward, segment_bounds
from edgefptt.train.config import make_config
from edgefptt.train.loop import Trainer, fit


def _tiny_data(n: int = 40, steps: int = 12, seed: int = 0) -> SequenceData:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n + 16, steps, 2, generator=g)
    y = (x[:, 0, 0] > 0).long() + 2 * (x[:, -1, 1] > 0).long()
    return SequenceData("tiny", x[:n], y[:n], x[n:], y[n:], num_classes=4)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("readout", ["last", "mean"])
def test_gradients_equal_one_backward_over_the_whole_sequence(cell, layers, readout):
    torch.manual_seed(0)
    model = SequenceClassifier(3, 5, 4, num_layers=layers, cell=cell, readout=readout).double()
    x, y = torch.randn(6, 11, 3, dtype=torch.float64), torch.randint(0, 4, (6,))
    outputs, _ = model(x)
    reference = torch.nn.functional.cross_entropy(outputs, y)
    reference.backward()
    expected = [p.grad.clone() for p in model.parameters()]
    for segments in (1, 2, 3, 4, 11):  # 3 and 4 give uneven segments (4, 4, 3 and 3, 3, 3, 2)
        model.zero_grad()
        step = checkpointed_backward(
            model,
            x,
            lambda out: torch.nn.functional.cross_entropy(out, y),
            segment_bounds(11, segments),
        )
        assert float(step.loss) == pytest.approx(float(reference.detach()), rel=1e-14)
        for p, want in zip(model.parameters(), expected, strict=True):
            torch.testing.assert_close(p.grad, want, rtol=1e-12, atol=1e-14)


def test_losses_equal_bptt_for_the_same_seed():
    data = _tiny_data()
    base = {"hidden": 8, "epochs": 3, "batch_size": 8, "seed": 3}
    bptt = fit(make_config(algorithm="bptt", **base), data)
    for segments in (None, 4, 12):
        ckpt = fit(make_config(algorithm="bptt-ckpt", segments=segments, **base), data)
        for a, b in zip(bptt.history, ckpt.history, strict=True):
            for key in ("train_loss", "test_loss", "train_accuracy", "test_accuracy"):
                assert b[key] == pytest.approx(a[key], rel=1e-5, abs=1e-7), (segments, key)
        summary = ckpt.summary()
        assert summary["algorithm"] == "bptt-ckpt" and summary["partitions"] == 1
        assert summary["segments"] == (segments or 3)  # round(sqrt 12) by default


@pytest.mark.parametrize("cell,states", [("lstm", 2), ("gru", 1)])
def test_peak_memory_is_the_stored_states_plus_one_segment(cell, states):
    """With S | T: bptt over one segment of L = T/S steps (which also saves its zero start
    state) plus S - 2 more stored states of B x H floats each; S = 1 is bptt itself."""
    data = load_dataset("digits")
    x, y = data.train_x[:32], data.train_y[:32]
    state_bytes = states * 32 * 32 * 4  # B = 32, H = 32

    def peak(xs: torch.Tensor, **options) -> int:
        trainer = Trainer(make_config(epochs=1, cell=cell, hidden=32, **options), data)
        return trainer.train_batch(xs, y, measure=True)[2]

    bptt = peak(x, algorithm="bptt")
    assert peak(x, algorithm="bptt-ckpt", segments=1) == bptt
    for segments in (2, 8, 16):
        length = 64 // segments
        short = peak(x[:, :length], algorithm="bptt")
        ckpt = peak(x, algorithm="bptt-ckpt", segments=segments)
        assert ckpt == short + (segments - 2) * state_bytes, segments
    assert peak(x, algorithm="bptt-ckpt") < bptt / 6  # default S = round(sqrt 64) = 8


def test_segments_option_is_checked():
    with pytest.raises(ConfigError, match="--segments belongs to --algorithm bptt-ckpt"):
        make_config(algorithm="fptt", segments=4)
    with pytest.raises(ConfigError, match="segments"):
        make_config(algorithm="bptt-ckpt", segments=0)
    data = _tiny_data(steps=12)
    with pytest.raises(ConfigError, match="between 1 and the sequence length T=12"):
        Trainer(make_config(algorithm="bptt-ckpt", segments=13), data)
    assert make_config(algorithm="bptt-ckpt").effective_partitions == 1
