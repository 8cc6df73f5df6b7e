"""Partitioning along time, and the cut in the graph at partition boundaries."""

from __future__ import annotations

import pytest
import torch

from edgefptt import ConfigError, detach_state, partition_bounds, partitions
from edgefptt.data.base import SequenceData
from edgefptt.models import SequenceClassifier
from edgefptt.train.config import make_config
from edgefptt.train.loop import Trainer


@pytest.mark.parametrize("seq_len", [1, 7, 10, 64, 784])
@pytest.mark.parametrize("k", [1, 2, 3, 4, 7, 14])
def test_every_step_exactly_once(seq_len: int, k: int) -> None:
    if k > seq_len:
        with pytest.raises(ConfigError):
            partition_bounds(seq_len, k)
        return
    bounds = partition_bounds(seq_len, k)
    assert len(bounds) == k
    steps = [t for start, stop in bounds for t in range(start, stop)]
    assert steps == list(range(seq_len))
    lengths = [stop - start for start, stop in bounds]
    assert max(lengths) - min(lengths) <= 1
    assert lengths == sorted(lengths, reverse=True)  # the shorter parts come last


def test_partitions_are_views_in_order() -> None:
    x = torch.arange(2 * 10 * 3).reshape(2, 10, 3)
    parts = partitions(x, 4)
    assert [p.shape[1] for p in parts] == [3, 3, 2, 2]
    torch.testing.assert_close(torch.cat(parts, dim=1), x)
    assert parts[1].data_ptr() == x[:, 3].data_ptr()


@pytest.mark.parametrize("k", [0, -1, 11])
def test_bad_k_is_rejected(k: int) -> None:
    with pytest.raises(ConfigError, match="K"):
        partitions(torch.zeros(1, 10, 1), k)


def test_detach_state_nested() -> None:
    a = torch.ones(2, requires_grad=True) * 2
    state = (a, [a, {"c": a}], None)
    out = detach_state(state)
    assert not out[0].requires_grad
    assert not out[1][0].requires_grad and not out[1][1]["c"].requires_grad
    assert out[2] is None


def test_gradient_never_crosses_a_partition_boundary() -> None:
    torch.manual_seed(0)
    model = SequenceClassifier(1, 8, 3)
    x = torch.randn(4, 12, 1, requires_grad=True)
    y = torch.tensor([0, 1, 2, 0])
    state = None
    for start, stop in partition_bounds(12, 3):
        x.grad = None
        outputs, state = model(x[:, start:stop], state)
        torch.nn.functional.cross_entropy(outputs, y).backward()
        touched = x.grad.abs().sum(dim=(0, 2)) > 0
        assert touched[start:stop].all()
        assert not touched[:start].any() and not touched[stop:].any()
        state = detach_state(state)


def test_training_loop_feeds_each_partition_a_detached_state() -> None:
    data = SequenceData(
        "tiny",
        torch.randn(8, 12, 1),
        torch.randint(0, 3, (8,)),
        torch.randn(4, 12, 1),
        torch.randint(0, 3, (4,)),
        3,
    )
    trainer = Trainer(make_config(algorithm="fptt", partitions=3, hidden=8, epochs=1), data)
    seen: list[tuple[int, bool]] = []
    forward = trainer.model.forward

    def recording_forward(x: torch.Tensor, state: object = None) -> object:
        if state is not None:
            seen.append((x.shape[1], any(s.requires_grad for s in state)))
        return forward(x, state)

    trainer.model.forward = recording_forward  # type: ignore[method-assign]
    trainer.train_batch(data.train_x, data.train_y, measure=False)
    assert seen == [(4, False), (4, False)]
