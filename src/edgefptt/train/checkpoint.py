"""Checkpoints and logs written atomically: a crash or Ctrl-C never leaves half a file."""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import tempfile
import zipfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import torch

from edgefptt.errors import CheckpointError

CHECKPOINT_FORMAT = "edgefptt-checkpoint"
CHECKPOINT_VERSION = 1


def atomic_write(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write through ``write`` into a temporary file beside ``path``, then rename it over."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    document = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **payload}
    atomic_write(path, lambda handle: torch.save(document, handle))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; a bad file raises CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; train without --resume first")
    try:
        document = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint ({first_line})") from None
    if not isinstance(document, dict) or document.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not an edgefptt checkpoint")
    if document.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint version {document.get('version')}, "
            f"this edgefptt reads version {CHECKPOINT_VERSION}"
        )
    return document


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    """Replace ``path`` with one JSON line per record."""
    text = "".join(json.dumps(r) + "\n" for r in records)
    atomic_write(path, lambda handle: handle.write(text.encode()))
