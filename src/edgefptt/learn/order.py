"""The device's run bookkeeping: PRNG, per-epoch sample order, batch count, lr, early stop.

Everything here follows docs/learner.md ("The training procedure (device recipe)") to the bit,
because the generated C (``learner.c``) computes the same numbers and the two are compared:

- :class:`SplitMix64` and :func:`mix64`: the PRNG and its finaliser, all arithmetic mod 2^64;
- :func:`epoch_permutation`: the keyed Feistel permutation with cycle walking (position j of
  an epoch holds sample perm(j));
- :func:`batches_per_epoch`: floor(N / B), the rest of an epoch is not trained on;
- :func:`epoch_lr`: lr0 * F^floor(e / E) as float32 multiplications one at a time;
- :class:`EarlyStop`: the patience rule on the epoch's evaluation loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edgefptt.errors import ConfigError

MASK64 = (1 << 64) - 1
GOLDEN_GAMMA = 0x9E3779B97F4A7C15
MIX_MUL_1 = 0xBF58476D1CE4E5B9
MIX_MUL_2 = 0x94D049BB133111EB
FEISTEL_ROUNDS = 4
ROUND_SHIFT = 40  # round r adds (r + 1) << 40 to the key


def mix64(z: int) -> int:
    """The splitmix64 finaliser of a 64-bit value (``mix(z)`` in docs/learner.md)."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * MIX_MUL_1) & MASK64
    z = ((z ^ (z >> 27)) * MIX_MUL_2) & MASK64
    return z ^ (z >> 31)


class SplitMix64:
    """splitmix64: a 64-bit state that advances by the golden gamma; ``next`` mixes it."""

    def __init__(self, seed: int = 0) -> None:
        self._state = int(seed) & MASK64

    @property
    def state(self) -> int:
        """The current state (u64); setting it continues the sequence from there."""
        return self._state

    @state.setter
    def state(self, value: int) -> None:
        self._state = int(value) & MASK64

    def next(self) -> int:
        """Advance the state and return the next 64-bit output."""
        self._state = (self._state + GOLDEN_GAMMA) & MASK64
        return mix64(self._state)


def feistel_bits(n: int) -> int:
    """The width of the Feistel domain: the smallest even bits >= 2 with 2^bits >= n."""
    if n < 1:
        raise ConfigError(f"a permutation needs at least one element (got N = {n})")
    bits = 2
    while (1 << bits) < n:
        bits += 2
    return bits


def feistel(x: int, key: int, half: int) -> int:
    """One application of the keyed 4-round Feistel network on a 2*half-bit value."""
    mask = (1 << half) - 1
    left, right = x >> half, x & mask
    for r in range(FEISTEL_ROUNDS):
        f = mix64((key + ((r + 1) << ROUND_SHIFT) + right) & MASK64) & mask
        left, right = right, left ^ f
    return (left << half) | right


def permuted_index(j: int, n: int, key: int) -> int:
    """perm(j): the sample at position j (0 <= j < n) of the epoch with this key."""
    if not 0 <= j < n:
        raise ConfigError(f"position {j} is outside an epoch of {n} samples")
    half = feistel_bits(n) // 2
    x = feistel(j, key & MASK64, half)
    while x >= n:  # cycle walking: stays in [0, 2^bits), reaches [0, n) since j is there
        x = feistel(x, key & MASK64, half)
    return x


def _mix64_array(z: np.ndarray) -> np.ndarray:
    z = (z ^ (z >> np.uint64(30))) * np.uint64(MIX_MUL_1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(MIX_MUL_2)
    return z ^ (z >> np.uint64(31))


def _feistel_array(x: np.ndarray, key: int, half: int) -> np.ndarray:
    mask = np.uint64((1 << half) - 1)
    shift = np.uint64(half)
    left, right = x >> shift, x & mask
    for r in range(FEISTEL_ROUNDS):
        round_key = np.uint64((key + ((r + 1) << ROUND_SHIFT)) & MASK64)
        f = _mix64_array(right + round_key) & mask  # uint64 arithmetic wraps mod 2^64
        left, right = right, left ^ f
    return (left << shift) | right


def epoch_permutation(n: int, key: int) -> np.ndarray:
    """The epoch's order as an int64 array: element j is perm(j). Depends on (n, key) only."""
    half = feistel_bits(n) // 2
    key &= MASK64
    with np.errstate(over="ignore"):
        x = _feistel_array(np.arange(n, dtype=np.uint64), key, half)
        outside = np.flatnonzero(x >= np.uint64(n))
        while outside.size:
            x[outside] = _feistel_array(x[outside], key, half)
            outside = outside[x[outside] >= np.uint64(n)]
    return x.astype(np.int64)


def batches_per_epoch(n: int, b: int) -> int:
    """floor(N / B): the last N mod B positions of an epoch are not trained on."""
    if b < 1:
        raise ConfigError(f"the batch size must be at least 1 (got {b})")
    if n < b:
        raise ConfigError(
            f"the training set has {n} samples, fewer than one batch of B = {b}; "
            "give more samples or a smaller batch"
        )
    return n // b


def epoch_lr(lr0: float, epoch: int, step_epochs: int = 0, factor: float = 1.0) -> float:
    """lr of the 0-based ``epoch``: lr0, times F once per E completed epochs (E = 0: constant).

    Computed in float32, one multiplication at a time, as the device does; the result is that
    float32 value as a Python float.
    """
    if epoch < 0:
        raise ConfigError(f"epoch must be >= 0 (got {epoch})")
    lr = np.float32(lr0)
    if step_epochs > 0:
        f = np.float32(factor)
        for _ in range(epoch // step_epochs):
            lr = np.float32(lr * f)
    return float(lr)


def parse_lr_step(text: str) -> tuple[int, float]:
    """``"E:F"`` -> (E, F): multiply the learning rate by F every E epochs (E >= 1, F > 0)."""
    problem = (
        f"--lr-step wants E:F (every E epochs multiply the lr by F, e.g. 10:0.5); got {text!r}"
    )
    parts = str(text).split(":")
    if len(parts) != 2:
        raise ConfigError(problem)
    try:
        step_epochs = int(parts[0].strip())
        factor = float(parts[1].strip())
    except ValueError:
        raise ConfigError(problem) from None
    if step_epochs < 1:
        raise ConfigError(f"--lr-step: E must be at least 1 (got {text!r})")
    with np.errstate(over="ignore"):
        representable = math.isfinite(np.float32(factor))
    if not math.isfinite(factor) or factor <= 0 or not representable:
        raise ConfigError(f"--lr-step: F must be a positive float32 number (got {text!r})")
    return step_epochs, factor


@dataclass
class EarlyStop:
    """The patience rule: stop after ``patience`` epochs in a row whose loss is not below the
    best so far (0: never stop).

    The best loss is kept as float32 (the state image's field) and each epoch's loss is rounded
    to float32 before the comparison, so an epoch with the same loss as the best is never taken
    for a lower one (comparing the double with the rounded best would count it as lower
    whenever rounding went up, and a run with a constant loss would never stop).
    """

    patience: int = 0
    best: float = math.inf
    since_best: int = 0

    def update(self, loss: float) -> bool:
        """Record one epoch's loss; True when training should stop now."""
        with np.errstate(over="ignore"):
            value = float(np.float32(loss))
        if value < self.best:
            self.best = value
            self.since_best = 0
        else:
            self.since_best += 1
        return self.patience > 0 and self.since_best >= self.patience

    def state_dict(self) -> dict[str, float | int]:
        return {"patience": self.patience, "best": self.best, "since_best": self.since_best}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        self.best = float(state.get("best", math.inf))
        self.since_best = int(state.get("since_best", 0))
