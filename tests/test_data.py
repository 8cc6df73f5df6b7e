"""Dataset loaders on data the tests build themselves."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from edgefptt import ConfigError, DataError
from edgefptt.data import adding, load_dataset
from edgefptt.data.idx import read_idx, write_idx


def test_digits_is_the_bundled_set_as_pixel_sequences() -> None:
    data = load_dataset("digits")
    assert data.train_x.shape[1:] == (64, 1) and data.seq_len == 64
    assert len(data.train_x) + len(data.test_x) == 1797
    assert set(data.train_y.tolist()) == set(range(10))
    row = load_dataset("digits", order="row")
    assert row.train_x.shape[1:] == (8, 8)
    # the same images, only reshaped
    torch.testing.assert_close(row.train_x.reshape(-1, 64, 1), data.train_x)


def test_smnist_pixel_row_and_permuted(mnist_dir: Path) -> None:
    pixel = load_dataset("smnist", data_dir=mnist_dir)
    assert pixel.train_x.shape == (40, 784, 1) and pixel.test_x.shape == (20, 784, 1)
    raw = read_idx(mnist_dir / "train-images-idx3-ubyte", 3)
    expected = (raw[0].reshape(784) / 255.0 - 0.1307) / 0.3081
    np.testing.assert_allclose(pixel.train_x[0, :, 0].numpy(), expected, rtol=1e-5)
    labels = read_idx(mnist_dir / "train-labels-idx1-ubyte", 1)
    assert pixel.train_y.tolist() == labels.tolist()

    row = load_dataset("smnist", data_dir=mnist_dir, order="row")
    assert row.train_x.shape == (40, 28, 28)
    torch.testing.assert_close(row.train_x.reshape(40, 784, 1), pixel.train_x)

    permuted = load_dataset("smnist", data_dir=mnist_dir, permute=True)
    assert not torch.equal(permuted.train_x, pixel.train_x)
    # one fixed permutation for every image: sorting each sequence gives the same values
    torch.testing.assert_close(
        permuted.train_x.sort(dim=1).values, pixel.train_x.sort(dim=1).values
    )
    again = load_dataset("smnist", data_dir=mnist_dir, permute=True)
    torch.testing.assert_close(again.train_x, permuted.train_x)


def test_smnist_reads_gzip_and_limit(mnist_dir: Path) -> None:
    for path in list(mnist_dir.iterdir()):
        path.with_name(path.name + ".gz").write_bytes(gzip.compress(path.read_bytes()))
        path.unlink()
    data = load_dataset("smnist", data_dir=mnist_dir, limit=5)
    assert len(data.train_x) == 5 and len(data.test_x) == 5


def test_smnist_missing_dir_and_file(tmp_path: Path, mnist_dir: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_dataset("smnist", data_dir=tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="--data-dir"):
        load_dataset("smnist")
    (mnist_dir / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte"):
        load_dataset("smnist", data_dir=mnist_dir)


def test_smnist_malformed_files_name_the_file(mnist_dir: Path) -> None:
    images = mnist_dir / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-10])
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte.*holds"):
        load_dataset("smnist", data_dir=mnist_dir)
    images.write_bytes(b"not an idx file at all")
    with pytest.raises(DataError, match="train-images-idx3-ubyte"):
        load_dataset("smnist", data_dir=mnist_dir)
    write_idx(images, np.zeros((3, 28, 28)))  # fewer images than labels
    with pytest.raises(DataError, match="labels"):
        load_dataset("smnist", data_dir=mnist_dir)


def test_adding_problem_targets_are_the_marked_sums() -> None:
    x, y = adding.make(200, 30, torch.Generator().manual_seed(0))
    assert x.shape == (200, 30, 2)
    markers = x[:, :, 1]
    assert (markers.sum(dim=1) == 2).all()
    assert (markers[:, :15].sum(dim=1) == 1).all()  # one marker in each half
    expected = (x[:, :, 0] * markers).sum(dim=1)
    torch.testing.assert_close(y, expected)
    data = load_dataset("adding", seq_len=30)
    assert data.task == "regression" and data.num_outputs == 1 and data.seq_len == 30


def test_unknown_dataset() -> None:
    with pytest.raises(ConfigError, match="unknown dataset"):
        load_dataset("imagenet")


def test_digits_limit_keeps_the_first_samples_of_each_split() -> None:
    whole = load_dataset("digits")
    cut = load_dataset("digits", limit=50)
    assert len(cut.train_x) == 50 and len(cut.test_y) == 50
    assert torch.equal(cut.train_x, whole.train_x[:50])
    assert torch.equal(cut.test_y, whole.test_y[:50])
