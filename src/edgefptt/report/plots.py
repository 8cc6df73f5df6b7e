"""Figure helpers: every plot saved as PNG with labelled axes and units."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

MIB = 1024 * 1024


def new_figure(columns: int = 1, width: float = 6.0, height: float = 4.0) -> tuple[Figure, list]:
    fig, axes = plt.subplots(1, columns, figsize=(width * columns, height), squeeze=False)
    return fig, list(axes[0])


def save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def k_axis(ax, ks: list[int]) -> None:
    """A log-scaled partitions axis labelled with the K values themselves."""
    from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(FixedLocator(sorted(set(ks))))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("partitions K")


def plain_log_y(ax) -> None:
    """Log-scaled y axis with plain numbers rather than powers of ten."""
    from matplotlib.ticker import FuncFormatter

    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    # label only the 2s and 5s between decades, so the labels never crowd
    ax.yaxis.set_minor_formatter(
        FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else "")
    )


def plain_log_x(ax) -> None:
    """Log-scaled x axis with plain numbers rather than powers of ten."""
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(
        FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else "")
    )
