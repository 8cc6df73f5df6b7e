"""Datasets, loaded from local files or generated; nothing is downloaded at run time."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from edgefptt.data import adding, digits, smnist, speech_commands
from edgefptt.data.base import SequenceData
from edgefptt.data.speech_commands import Progress, SpeechData, SpeechOptions
from edgefptt.errors import ConfigError

DATASETS = ("digits", "smnist", "adding", "speech_commands")


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    order: str = "pixel",
    permute: bool = False,
    seq_len: int = 100,
    limit: int | None = None,
    seed: int = 0,
    speech: SpeechOptions | None = None,
    progress: Progress | None = None,
) -> SequenceData:
    """Load a dataset by name; options that do not apply to it are ignored.

    ``progress(done, total)`` is called while a dataset that takes long to load (speech) loads.
    """
    if limit is not None and limit < 1:
        raise ConfigError(f"--limit must be at least 1 (got {limit})")
    if order not in ("pixel", "row"):
        raise ConfigError(f"unknown order {order!r}; choose 'pixel' or 'row'")
    if name == "digits":
        data = digits.load(order=order)
        if limit is None:
            return data
        # the first N of each split (normalised with the whole training split's statistics)
        return replace(
            data,
            train_x=data.train_x[:limit],
            train_y=data.train_y[:limit],
            test_x=data.test_x[:limit],
            test_y=data.test_y[:limit],
        )
    if name == "smnist":
        return smnist.load(data_dir, order=order, permute=permute, limit=limit)
    if name == "adding":
        return adding.load(seq_len=seq_len, seed=seed)
    if name == "speech_commands":
        return speech_commands.load(data_dir, speech, limit=limit, seed=seed, progress=progress)
    raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def check_data_dir(
    name: str, data_dir: str | Path | None, speech: SpeechOptions | None = None
) -> None:
    """Check that ``data_dir`` holds dataset ``name``'s files before a long run reads them.

    S-MNIST: the four IDX files are read and checked (a second or two); speech_commands: the
    list files and word folders the task needs (no audio is decoded). Other datasets need no
    folder. Raises what the loader would: DataError or ConfigError, with the same message.
    """
    if name == "smnist":
        smnist.load(data_dir, limit=1)
    elif name == "speech_commands":
        if data_dir is None:
            raise ConfigError("the speech_commands dataset needs --data-dir")
        layout = speech_commands.read_layout(data_dir)
        speech_commands.class_names(layout, speech or SpeechOptions())


__all__ = [
    "DATASETS",
    "SequenceData",
    "SpeechData",
    "SpeechOptions",
    "check_data_dir",
    "load_dataset",
]
