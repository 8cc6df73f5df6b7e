"""Checks that an output folder or file can be written, made before any work starts.

A command that would fail only when it writes (after an epoch, after minutes of a report)
calls these first: the path must not be a file where a folder is wanted (or the reverse), no
part above it may be a file, and the nearest folder that exists must be writable. Nothing is
created here.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgefptt.errors import ConfigError


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(".")  # pragma: no cover - the root always exists


def _check_parents(path: Path, option: str) -> None:
    """Every existing folder above ``path`` is a folder, and the nearest one is writable."""
    above = _nearest_existing(path.parent)
    if not above.is_dir():
        raise ConfigError(f"{option} {path}: {above} is a file, not a folder; choose another path")
    if not os.access(above, os.W_OK | os.X_OK):
        raise ConfigError(
            f"{option} {path}: the folder {above} is not writable; choose another path"
        )


def check_output_dir(path: Path, option: str) -> None:
    """Raise ConfigError unless ``path`` is a writable folder or one that can be created."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path} is a file, not a folder; choose another path")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise ConfigError(f"{option} {path} is not writable; choose another folder")
        return
    _check_parents(path, option)


def check_output_file(path: Path, option: str, suffix: str | None = None) -> None:
    """Raise ConfigError unless ``path`` can be written as a file (ending in ``suffix``)."""
    path = Path(path)
    if suffix is not None and path.suffix.lower() != suffix:
        raise ConfigError(f"{option} writes a {suffix} file; give a name ending in {suffix}")
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a folder; give a file name")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"{option} {path} exists and is not writable; choose another name")
    _check_parents(path, option)
