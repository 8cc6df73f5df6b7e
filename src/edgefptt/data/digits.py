"""scikit-learn's bundled 8x8 handwritten digits as a 64-step pixel sequence (no download)."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

from edgefptt.data.base import SequenceData

# The split is fixed, independent of the training seed, so test accuracies are comparable.
SPLIT_SEED = 0
TEST_FRACTION = 0.2


def load(order: str = "pixel") -> SequenceData:
    """1797 digits; ``order="pixel"`` gives T=64, I=1 and ``"row"`` gives T=8, I=8.

    Pixel values 0..16 are scaled to [0, 1] and then standardised with the training split's
    mean and standard deviation.
    """
    bunch = load_digits()
    images = bunch.images.astype(np.float32) / 16.0  # (N, 8, 8)
    labels = bunch.target.astype(np.int64)
    seq = images.reshape(len(images), 64, 1) if order == "pixel" else images.reshape(-1, 8, 8)
    train_x, test_x, train_y, test_y = train_test_split(
        seq, labels, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels
    )
    mean, std = float(train_x.mean()), float(train_x.std())
    return SequenceData(
        name=f"digits-{order}",
        train_x=torch.from_numpy((train_x - mean) / std),
        train_y=torch.from_numpy(train_y),
        test_x=torch.from_numpy((test_x - mean) / std),
        test_y=torch.from_numpy(test_y),
        num_classes=10,
    )
