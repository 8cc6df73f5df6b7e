"""The adding problem (Hochreiter & Schmidhuber 1997): a synthetic long-memory regression task.

Each step carries two features: a value drawn uniformly from [0, 1] and a marker that is 1 at
exactly two steps (one in each half of the sequence) and 0 elsewhere. The target is the sum of
the two marked values. Predicting 1.0 always gives a mean squared error of about 0.167.
"""

from __future__ import annotations

import torch

from edgefptt.data.base import SequenceData
from edgefptt.errors import ConfigError


def make(num: int, seq_len: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``num`` sequences of the adding problem: x (num, T, 2), y (num,)."""
    values = torch.rand(num, seq_len, generator=generator)
    half = seq_len // 2
    first = torch.randint(0, half, (num,), generator=generator)
    second = torch.randint(half, seq_len, (num,), generator=generator)
    markers = torch.zeros(num, seq_len)
    rows = torch.arange(num)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = torch.stack([values, markers], dim=2)
    y = values[rows, first] + values[rows, second]
    return x, y


def load(
    seq_len: int = 100, num_train: int = 10_000, num_test: int = 1_000, seed: int = 0
) -> SequenceData:
    """Train and test sets of the adding problem with sequence length ``seq_len``."""
    if seq_len < 2:
        raise ConfigError(f"the adding problem needs --seq-len >= 2 (got {seq_len})")
    if num_train < 1 or num_test < 1:
        raise ConfigError("the adding problem needs at least one train and one test sequence")
    generator = torch.Generator().manual_seed(seed)
    train_x, train_y = make(num_train, seq_len, generator)
    test_x, test_y = make(num_test, seq_len, generator)
    return SequenceData(
        name=f"adding-T{seq_len}",
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        num_classes=1,
        task="regression",
    )
