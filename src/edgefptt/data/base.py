"""The in-memory form every dataset loader returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

Task = Literal["classification", "regression"]


@dataclass(frozen=True)
class SequenceData:
    """Train and test splits of a sequence task as float32 tensors of shape (N, T, I).

    Targets are int64 class labels for classification and float32 values for regression.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int  # 1 for regression
    task: Task = "classification"

    @property
    def seq_len(self) -> int:
        return int(self.train_x.shape[1])

    @property
    def input_size(self) -> int:
        return int(self.train_x.shape[2])

    @property
    def num_outputs(self) -> int:
        return self.num_classes
