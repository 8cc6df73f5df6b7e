"""Per-class accuracy and the confusion matrix of a trained classifier, and their plot."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from edgefptt.data.base import SequenceData
from edgefptt.train.fptt import FPTT


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 512) -> torch.Tensor:
    """Predicted class of each sequence in ``x`` (N, T, I)."""
    was_training = model.training
    model.eval()
    out = []
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    for start in range(0, len(x), batch_size):
        logits, _ = model(x[start : start + batch_size].to(device))
        out.append(logits.argmax(dim=-1).cpu())
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long)


def confusion_matrix(
    targets: Sequence[int], predictions: Sequence[int], num_classes: int
) -> np.ndarray:
    """counts[true, predicted] (int64, num_classes x num_classes)."""
    counts = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(
        counts, (np.asarray(targets, dtype=np.int64), np.asarray(predictions, dtype=np.int64)), 1
    )
    return counts


def per_class_accuracy(counts: np.ndarray) -> list[float | None]:
    """Recall of each class (diagonal over row sums); None for a class with no examples."""
    totals = counts.sum(axis=1)
    return [float(counts[i, i] / t) if t else None for i, t in enumerate(totals)]


def class_names_of(data: SequenceData) -> list[str]:
    names = getattr(data, "class_names", ())
    return list(names) if names else [str(i) for i in range(data.num_classes)]


def class_report(
    model: nn.Module,
    data: SequenceData,
    fptt: FPTT | None = None,
    batch_size: int = 512,
) -> dict[str, Any]:
    """Per-class accuracy and confusion matrix on the test split (with W_bar under FPTT)."""
    averaged = fptt.average() if fptt is not None else contextlib.nullcontext()
    with averaged:
        predictions = predict(model, data.test_x, batch_size)
    counts = confusion_matrix(data.test_y.tolist(), predictions.tolist(), data.num_classes)
    names = class_names_of(data)
    accuracy = per_class_accuracy(counts)
    return {
        "class_names": names,
        "per_class_accuracy": dict(zip(names, accuracy, strict=True)),
        "class_counts": dict(zip(names, counts.sum(axis=1).tolist(), strict=True)),
        "confusion_matrix": counts.tolist(),
        "accuracy": float(np.trace(counts) / max(1, counts.sum())),
    }


def save_confusion_plot(report: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """A PNG of the row-normalised confusion matrix with counts, and per-class accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = report["class_names"]
    counts = np.asarray(report["confusion_matrix"], dtype=np.float64)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = max(4.0, 0.55 * len(names) + 2.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right")
    ticks = [
        f"{n} ({100 * a:.0f}%)" if a is not None else f"{n} (-)"
        for n, a in zip(names, report["per_class_accuracy"].values(), strict=True)
    ]
    ax.set_yticks(range(len(names)), ticks)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true class (accuracy)")
    if len(names) <= 20:
        for i in range(len(names)):
            for j in range(len(names)):
                if counts[i, j]:
                    color = "white" if share[i, j] > 0.5 else "black"
                    ax.text(
                        j,
                        i,
                        f"{int(counts[i, j])}",
                        ha="center",
                        va="center",
                        color=color,
                        fontsize=7,
                    )
    ax.set_title(title or f"confusion matrix, accuracy {100 * report['accuracy']:.1f}%")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
