"""Sequential MNIST from the standard IDX files in a local directory (never downloaded).

The directory must hold ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each may end in ``.gz``; the
``train-images.idx3-ubyte`` spelling is accepted too).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from edgefptt.data.base import SequenceData
from edgefptt.data.idx import read_idx
from edgefptt.errors import ConfigError, DataError

FILES = {
    "train_images": ("train-images", "idx3-ubyte", 3),
    "train_labels": ("train-labels", "idx1-ubyte", 1),
    "test_images": ("t10k-images", "idx3-ubyte", 3),
    "test_labels": ("t10k-labels", "idx1-ubyte", 1),
}
# Pixel statistics of the MNIST training set (after scaling to [0, 1]).
MEAN, STD = 0.1307, 0.3081


def _find(data_dir: Path, stem: str, kind: str) -> Path:
    for name in (f"{stem}-{kind}", f"{stem}.{kind}"):
        for suffix in ("", ".gz"):
            candidate = data_dir / f"{name}{suffix}"
            if candidate.is_file():
                return candidate
    raise DataError(
        f"{data_dir} has no {stem}-{kind} (or {stem}-{kind}.gz); put the four MNIST IDX files "
        "in --data-dir"
    )


def load(
    data_dir: str | Path | None,
    order: str = "pixel",
    permute: bool = False,
    permutation_seed: int = 0,
    limit: int | None = None,
) -> SequenceData:
    """S-MNIST (``order="pixel"``: T=784, I=1; ``"row"``: T=28, I=28), optionally permuted.

    ``permute`` applies one fixed permutation of the pixel order (PS-MNIST), drawn from
    ``permutation_seed``; ``limit`` keeps the first N training and N test images.
    """
    if data_dir is None:
        raise ConfigError("the smnist dataset needs --data-dir pointing at the MNIST IDX files")
    root = Path(data_dir)
    if not root.is_dir():
        raise DataError(f"data directory {root} does not exist; pass --data-dir with MNIST files")
    if order not in ("pixel", "row"):
        raise ConfigError(f"unknown smnist order {order!r}; choose 'pixel' or 'row'")
    arrays = {}
    for key, (stem, kind, ndim) in FILES.items():
        path = _find(root, stem, kind)
        array = read_idx(path, ndim)
        if ndim == 3 and array.shape[1:] != (28, 28):
            raise DataError(f"{path}: expected 28x28 images, found {array.shape[1:]}")
        if ndim == 1 and array.size and array.max() > 9:
            raise DataError(f"{path}: labels must be 0..9, found {int(array.max())}")
        arrays[key] = (path, array)
    for split in ("train", "test"):
        (ipath, images), (lpath, labels) = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if len(images) != len(labels):
            raise DataError(f"{ipath} holds {len(images)} images but {lpath} {len(labels)} labels")
        if len(images) == 0:
            raise DataError(f"{ipath} holds no images")

    permutation = None
    if permute:
        permutation = np.random.default_rng(permutation_seed).permutation(784)

    def to_sequences(images: np.ndarray) -> torch.Tensor:
        if limit is not None:
            images = images[:limit]
        flat = (images.reshape(len(images), 784).astype(np.float32) / 255.0 - MEAN) / STD
        if permutation is not None:
            flat = flat[:, permutation]
        shape = (len(flat), 784, 1) if order == "pixel" else (len(flat), 28, 28)
        return torch.from_numpy(np.ascontiguousarray(flat.reshape(shape)))

    def to_labels(labels: np.ndarray) -> torch.Tensor:
        return torch.from_numpy((labels[:limit] if limit is not None else labels).astype(np.int64))

    name = ("ps" if permute else "s") + f"mnist-{order}"
    return SequenceData(
        name=name,
        train_x=to_sequences(arrays["train_images"][1]),
        train_y=to_labels(arrays["train_labels"][1]),
        test_x=to_sequences(arrays["test_images"][1]),
        test_y=to_labels(arrays["test_labels"][1]),
        num_classes=10,
    )
