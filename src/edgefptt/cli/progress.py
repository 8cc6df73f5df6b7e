"""A rich progress bar and per-epoch lines for training runs (stderr only)."""

from __future__ import annotations

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
