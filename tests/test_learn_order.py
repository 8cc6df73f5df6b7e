"""The device's run bookkeeping: splitmix64, the Feistel sample order, batches, lr, early stop."""

from __future__ import annotations

import math

import numpy as np
import pytest

from edgefptt.errors import ConfigError
from edgefptt.learn.order import (
    EarlyStop,
    SplitMix64,
    batches_per_epoch,
    epoch_lr,
    epoch_permutation,
    feistel_bits,
    mix64,
    parse_lr_step,
    permuted_index,
)

MASK = (1 << 64) - 1


def test_splitmix64_matches_the_published_reference_outputs() -> None:
    # Vigna's splitmix64.c, seed 0: the first three outputs.
    rng = SplitMix64(0)
    assert [rng.next() for _ in range(3)] == [
        0xE220A8397B1DCDAF,
        0x6E789E6AA1B965F4,
        0x06C45D188009454F,
    ]


def test_splitmix64_state_continues_the_sequence() -> None:
    rng = SplitMix64(12345)
    rng.next()
    saved = rng.state
    expected = [rng.next() for _ in range(4)]
    other = SplitMix64(999)
    other.state = saved
    assert [other.next() for _ in range(4)] == expected
    # next() is mix(state + gamma) on the advanced state, all mod 2^64
    big = SplitMix64(MASK)
    assert big.next() == mix64((MASK + 0x9E3779B97F4A7C15) & MASK)
    assert big.state == (MASK + 0x9E3779B97F4A7C15) & MASK


def test_mix64_is_the_three_lines_of_the_contract() -> None:
    z = 0x0123456789ABCDEF
    a = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
    a = ((a ^ (a >> 27)) * 0x94D049BB133111EB) % 2**64
    assert mix64(z) == a ^ (a >> 31)
    assert mix64(0) == 0


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 16, 17, 255, 256, 257, 1000])
def test_the_order_is_a_permutation(n: int) -> None:
    for key in (0, 1, 0xDEADBEEF, MASK):
        order = epoch_permutation(n, key)
        assert order.dtype == np.int64 and order.shape == (n,)
        assert sorted(order.tolist()) == list(range(n))
        # the vectorised order is the scalar perm(j) of the contract, position by position
        assert order.tolist() == [permuted_index(j, n, key) for j in range(n)]


def test_the_order_depends_on_the_key_and_on_nothing_else() -> None:
    n = 1000
    first = epoch_permutation(n, 7)
    np.random.seed(123)  # no hidden use of global random state
    assert np.array_equal(epoch_permutation(n, 7), first)
    assert np.array_equal(epoch_permutation(n, 7 + (1 << 64)), first)  # keys are mod 2^64
    others = [epoch_permutation(n, key) for key in (8, 7 << 32, MASK)]
    for other in others:
        assert not np.array_equal(other, first)
        assert np.mean(other == first) < 0.05
    for n_small in (16, 17):
        assert not np.array_equal(epoch_permutation(n_small, 1), epoch_permutation(n_small, 2))


def test_feistel_domain_width() -> None:
    assert [feistel_bits(n) for n in (1, 2, 4, 5, 16, 17, 64, 65, 1000)] == [
        2, 2, 2, 4, 4, 6, 6, 8, 10,
    ]  # fmt: skip
    with pytest.raises(ConfigError):
        feistel_bits(0)


def test_feistel_round_follows_the_text() -> None:
    """One hand-written evaluation of perm(j) against the library, for N = 10 and a key."""
    n, key = 10, 0x1234_5678_9ABC_DEF0
    half = 2  # bits = 4 for N = 10
    mask = 3

    def feistel(x: int) -> int:
        left, right = x >> half, x & mask
        for r in range(4):
            f = mix64((key + ((r + 1) << 40) + right) % 2**64) & mask
            left, right = right, left ^ f
        return (left << half) | right

    def perm(j: int) -> int:
        x = feistel(j)
        while x >= n:
            x = feistel(x)
        return x

    assert epoch_permutation(n, key).tolist() == [perm(j) for j in range(n)]


def test_batches_per_epoch_drops_the_rest() -> None:
    assert batches_per_epoch(17, 8) == 2
    assert batches_per_epoch(16, 8) == 2
    assert batches_per_epoch(8, 8) == 1
    with pytest.raises(ConfigError, match="fewer than one batch"):
        batches_per_epoch(7, 8)


def test_epoch_lr_in_float32_one_multiplication_at_a_time() -> None:
    assert epoch_lr(0.1, 0) == float(np.float32(0.1))
    assert epoch_lr(0.1, 9, 0, 0.5) == float(np.float32(0.1))  # E = 0: constant
    lr, f = np.float32(0.1), np.float32(0.3)
    expected = [lr, lr, lr, np.float32(lr * f), np.float32(lr * f), np.float32(lr * f)]
    expected.append(np.float32(np.float32(lr * f) * f))
    assert [epoch_lr(0.1, e, 3, 0.3) for e in range(7)] == [float(v) for v in expected]
    # not the same as one float64 power, rounded once
    many = epoch_lr(0.1, 50, 1, 0.9)
    assert many == float(np.float32(many))


@pytest.mark.parametrize(
    ("text", "expected"), [("10:0.5", (10, 0.5)), (" 3 : 2 ", (3, 2.0)), ("1:1e-1", (1, 0.1))]
)
def test_parse_lr_step(text: str, expected: tuple[int, float]) -> None:
    assert parse_lr_step(text) == expected


@pytest.mark.parametrize("text", ["", "3", "3:", ":0.5", "a:0.5", "3:x", "0:0.5", "-1:0.5",
                                  "3:0", "3:-0.5", "3:nan", "3:inf", "3:1e39", "1.5:0.5",
                                  "1:2:3"])  # fmt: skip
def test_parse_lr_step_refuses_junk(text: str) -> None:
    with pytest.raises(ConfigError, match="--lr-step"):
        parse_lr_step(text)


def test_early_stop_counts_epochs_without_a_lower_loss() -> None:
    stop = EarlyStop(patience=2)
    assert [stop.update(v) for v in (2.0, 1.5, 1.5, 1.6)] == [False, False, False, True]
    assert stop.best == 1.5 and stop.since_best == 2
    off = EarlyStop(patience=0)
    assert not any(off.update(1.0) for _ in range(10))
    # compared as float32, the type the best loss is kept in: the same loss is not lower,
    # even where float32 rounds it up (float32(0.1) > 0.1)
    kept = EarlyStop(patience=1)
    kept.update(0.1)
    assert kept.best == float(np.float32(0.1)) and kept.best > 0.1
    assert kept.update(0.1)
    tiny = EarlyStop(patience=1)
    tiny.update(1.0)
    assert tiny.update(1.0 - 1e-12)  # lower only below float32 resolution
    again = EarlyStop(patience=1)
    again.load_state_dict(stop.state_dict())
    assert again.best == 1.5 and again.since_best == 2
    assert EarlyStop().best == math.inf
