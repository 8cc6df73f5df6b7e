"""The output folder of a training run: one writer at a time, no run replaced by accident.

- A lock file ``OUT/.edgefptt.lock`` (created with O_EXCL, holding the writer's pid, host and
  start time) is held while a run writes; a second run into the same folder is refused.
  A lock whose pid is not alive on this host is stale (its run was killed): it is taken over,
  and the caller is told so. A lock from another host is never taken over.
- A folder that already holds a run (``checkpoint.pt`` or ``metrics.jsonl``) is refused
  without ``resume`` (continue it) or ``overwrite`` (replace it).
- Temporary files a killed save left behind (``.checkpoint.pt.*.tmp``) are removed.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefptt.errors import CheckpointError, ConfigError
from edgefptt.train.checkpoint import stale_temporaries

LOCK_NAME = ".edgefptt.lock"
RUN_FILES = ("checkpoint.pt", "metrics.jsonl")
# A lock file is written right after it is created; an empty one younger than this may be
# in the middle of that write.
EMPTY_LOCK_GRACE_S = 10.0


class RunLockedError(ConfigError):
    """Another live process holds the output folder's lock."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except (OverflowError, ValueError):
        return False
    return True


def _read_lock(path: Path) -> dict[str, Any] | None:
    """The lock's owner, or None when the file is empty or not a lock we wrote."""
    try:
        owner = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(owner, dict) or type(owner.get("pid")) is not int:
        return None
    return owner


@dataclass
class RunDir:
    """What claiming an output folder did (notes for the user: a stale lock, old files)."""

    path: Path
    notes: list[str] = field(default_factory=list)


class RunLock:
    """``with RunLock(folder) as lock:`` holds ``folder/.edgefptt.lock`` for this process."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.notes: list[str] = []
        self._held = False

    def _create(self) -> bool:
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps(owner) + "\n")
        return True

    def acquire(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a stale lock taken over by another process at the same moment
            if self._create():
                self._held = True
                return
            owner = _read_lock(self.path)
            if owner is None:
                with contextlib.suppress(FileNotFoundError):
                    age = time.time() - self.path.stat().st_mtime
                    if age < EMPTY_LOCK_GRACE_S:
                        raise RunLockedError(
                            f"{self.path} is being written by another run starting in "
                            f"{self.folder}; wait for it or use another --out"
                        )
                    self.notes.append(f"removed an unreadable lock file {self.path}")
                    self.path.unlink()
                continue
            started = time.strftime(
                "%Y-%m-%d %H:%M:%S", time.localtime(float(owner.get("started", 0)))
            )
            who = f"pid {owner['pid']} on {owner.get('host')}, started {started}"
            if owner.get("host") == socket.gethostname() and not _pid_alive(owner["pid"]):
                self.notes.append(
                    f"took over a stale lock {self.path} ({who}: that process is gone)"
                )
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                continue
            raise RunLockedError(
                f"{self.folder} is in use by another run ({who}; lock {self.path}); wait for "
                "it to finish or use another --out (delete the lock only if no run is active)"
            )
        raise RunLockedError(f"could not take the lock {self.path}; try again")

    def release(self) -> None:
        if self._held:
            self._held = False
            owner = _read_lock(self.path)
            if owner is not None and owner.get("pid") == os.getpid():
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def claim_run_dir(folder: Path, *, resume: bool, overwrite: bool) -> Iterator[RunDir]:
    """Lock ``folder`` for one run and make it ready: refuse a run already there unless
    ``resume`` or ``overwrite`` (which removes the earlier run's files), refuse ``resume``
    without a checkpoint, and remove temporaries left by a killed save."""
    folder = Path(folder)
    if resume and overwrite:
        raise ConfigError("--resume continues the run in --out, --overwrite replaces it; give one")
    with RunLock(folder) as lock:
        claimed = RunDir(folder, list(lock.notes))
        existing = [name for name in RUN_FILES if (folder / name).exists()]
        if resume and not (folder / RUN_FILES[0]).is_file():
            raise CheckpointError(
                f"no checkpoint at {folder / RUN_FILES[0]} to resume; train without --resume first"
            )
        if existing and not resume:
            if not overwrite:
                raise ConfigError(
                    f"{folder} already holds a run ({', '.join(existing)}); continue it with "
                    "--resume, replace it with --overwrite, or choose another --out"
                )
            for name in existing:
                (folder / name).unlink()
            claimed.notes.append(f"replaced the earlier run in {folder} (--overwrite)")
        stale = stale_temporaries(folder, RUN_FILES)
        for path in stale:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if stale:
            claimed.notes.append(
                f"removed {len(stale)} temporary file(s) an interrupted save left in {folder}"
            )
        yield claimed
