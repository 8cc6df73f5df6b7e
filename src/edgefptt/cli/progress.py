"""A rich progress bar and per-epoch lines for training runs (stderr only)."""

from __future__ import annotations

import time
from typing import Any

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from edgefptt.cli.common import human_bytes, stderr
from edgefptt.train.loop import TrainCallbacks


class RichTrainProgress(TrainCallbacks):
    """Shows one bar per epoch and prints a line of metrics when an epoch ends."""

    def __init__(self, label: str, total_epochs: int, quiet: bool = False) -> None:
        self.label = label
        self.total_epochs = total_epochs
        self.quiet = quiet
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=stderr,
            transient=True,
            disable=quiet,
        )
        self.task: Any = None

    def __enter__(self) -> RichTrainProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def on_epoch_start(self, epoch: int, num_batches: int, first_batch: int) -> None:
        if self.task is not None:
            self.progress.remove_task(self.task)
        self.task = self.progress.add_task(
            f"{self.label} epoch {epoch}/{self.total_epochs}",
            total=num_batches,
            completed=first_batch,
            loss="-",
        )

    def on_batch_end(self, epoch: int, batch: int, loss: float) -> None:
        self.progress.update(self.task, advance=1, loss=f"{loss:.4f}")

    def on_epoch_end(self, record: dict[str, Any]) -> None:
        if self.quiet:
            return
        self.progress.console.print(
            f"{self.label} epoch {record['epoch']:>3}/{self.total_epochs}  "
            f"train loss {record['train_loss']:.4f} acc {100 * record['train_accuracy']:5.1f}%  "
            f"test loss {record['test_loss']:.4f} acc {100 * record['test_accuracy']:5.1f}%  "
            f"{record['wall_s']:.1f} s  act {human_bytes(record['peak_activation_bytes'])}",
            highlight=False,
            soft_wrap=True,
        )


class SectionProgress:
    """Progress of long work in named sections, called as ``progress(section, message, done)``
    with ``done`` in [0, 1].

    On a terminal: one rich bar per section. Otherwise (a log file, a pipe, CI) plain lines on
    stderr, one when a section starts, when its message changes (at most one per
    ``every_s`` seconds) and when it ends, so that a long run is never silent.
    """

    def __init__(self, label: str, every_s: float = 5.0) -> None:
        self.label = label
        self.every_s = every_s
        self.plain = not stderr.is_terminal
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[step]}"),
            TimeElapsedColumn(),
            console=stderr,
            transient=True,
            disable=self.plain,
        )
        self.tasks: dict[str, Any] = {}
        self._shown: dict[str, tuple[str, float]] = {}
        self._finished: set[str] = set()

    def __enter__(self) -> SectionProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(*exc)  # type: ignore[arg-type]

    def __call__(self, section: str, message: str, fraction: float) -> None:
        if not self.plain:
            if section not in self.tasks:
                self.tasks[section] = self.progress.add_task(section, total=1.0, step="")
            self.progress.update(self.tasks[section], completed=fraction, step=message)
            return
        now = time.monotonic()
        last = self._shown.get(section)
        if section in self._finished:
            return
        if fraction >= 1.0:
            self._finished.add(section)
        elif last is not None and (last[0] == message or now - last[1] < self.every_s):
            return
        self._shown[section] = (message, now)
        stderr.print(
            f"{self.label}: {section}: {message} ({100 * min(max(fraction, 0.0), 1.0):.0f}%)",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
