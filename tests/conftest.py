"""Shared fixtures: small datasets the tests build themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from edgefptt.data.idx import write_idx


@pytest.fixture(autouse=True)
def _deterministic_threads() -> None:
    torch.set_num_threads(2)


def make_mnist_dir(root: Path, num_train: int = 40, num_test: int = 20, seed: int = 0) -> Path:
    """Four tiny IDX files in the MNIST layout: class k lights up row k of the image."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for stem, count in (("train", num_train), ("t10k", num_test)):
        labels = rng.integers(0, 10, size=count).astype(np.uint8)
        images = rng.integers(0, 30, size=(count, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 * label + 4] = 255
        write_idx(root / f"{stem}-images-idx3-ubyte", images)
        write_idx(root / f"{stem}-labels-idx1-ubyte", labels)
    return root


@pytest.fixture
def mnist_dir(tmp_path: Path) -> Path:
    return make_mnist_dir(tmp_path / "mnist")
