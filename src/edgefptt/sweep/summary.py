"""A sweep's summary: one JSON document and a plot of accuracy against activation memory."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

from edgefptt.train.checkpoint import atomic_write

SUMMARY_NAME = "sweep.json"
PLOT_NAME = "sweep.png"
MIB = 1024 * 1024


def summary_document(records: list[dict[str, Any]]) -> dict[str, Any]:
    finished = [r for r in records if r["status"] == "finished"]
    return {
        "runs": records,
        "finished": len(finished),
        "failed": len(records) - len(finished),
        "reused": sum(1 for r in records if r.get("reused")),
    }


def write_summary(out_dir: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Write sweep.json and (when any run finished) sweep.png; returns the document."""
    document = summary_document(records)
    plotted = plot_accuracy_memory(records, out_dir / PLOT_NAME)
    document["summary_json"] = str(out_dir / SUMMARY_NAME)
    document["plot"] = str(out_dir / PLOT_NAME) if plotted else None
    text = json.dumps(document, indent=1)
    atomic_write(out_dir / SUMMARY_NAME, lambda handle: handle.write(text.encode()))
    return document


def plot_accuracy_memory(records: list[dict[str, Any]], path: Path) -> bool:
    """Test accuracy against peak activation memory, one colour per algorithm, each point
    labelled with its K; False (and no file) when no run finished."""
    finished = [r for r in records if r["status"] == "finished"]
    if not finished:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_algorithm: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in finished:
        by_algorithm[r["algorithm"]].append(r)
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for algorithm, markers in zip(sorted(by_algorithm), "osD^v<>", strict=False):
        runs = sorted(by_algorithm[algorithm], key=lambda r: r["peak_activation_bytes"])
        xs = [r["peak_activation_bytes"] / MIB for r in runs]
        ys = [100 * r["final_test_accuracy"] for r in runs]
        ax.plot(xs, ys, markers, label=algorithm, alpha=0.8)
        for x, y, r in zip(xs, ys, runs, strict=True):
            ax.annotate(f"K={r['partitions']}", (x, y), fontsize=7, xytext=(3, 3),
                        textcoords="offset points")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("peak activation memory (MiB, log scale)")
    ax.set_ylabel("final test accuracy (%)")
    ax.set_title("sweep: accuracy against activation memory")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
