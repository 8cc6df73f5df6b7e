"""Section 1: memory against K for the paper preset, published layout beside our plans."""

from __future__ import annotations

from typing import Any

from edgefptt.config import make_specs
from edgefptt.plan import plan_memory
from edgefptt.reference import paper_memory
from edgefptt.report.plots import MIB, k_axis, new_figure, plain_log_y, save
from edgefptt.report.section import Figure, Rendered, ReportContext, Table

PLANS = (
    ("paper layout", "paper", "paper"),
    ("lifetime, paper schedule", "lifetime", "paper"),
    ("lifetime, exact schedule", "lifetime", "exact"),
    ("recompute, exact schedule", "recompute", "exact"),
)


def compute(ctx: ReportContext) -> dict[str, Any]:
    published = {row["K"]: row for row in paper_memory()}
    ks = sorted(published)
    rows = []
    total = len(ks) * 2
    for n, (k, dtype) in enumerate((k, d) for d in ("fp32", "bf16") for k in ks):
        ctx.progress(f"memory K={k} {dtype}", n / total)
        entry: dict[str, Any] = {"K": k, "dtype": dtype}
        entry["published_bytes"] = published[k][f"{dtype}_bytes"]
        for label, plan, schedule in PLANS:
            net, run = make_specs("paper-smnist", partitions=k, dtype=dtype, schedule=schedule)
            result = plan_memory(net, run, plan)
            entry[label] = result.total_bytes
            entry["floor_bytes"] = result.floor_bytes
        rows.append(entry)
    return {"rows": rows}


def render(results: dict[str, Any], ctx: ReportContext) -> Rendered:
    rows = results["rows"]
    fig, axes = new_figure(2)
    for ax, dtype in zip(axes, ("fp32", "bf16"), strict=True):
        mine = [r for r in rows if r["dtype"] == dtype]
        ks = [r["K"] for r in mine]
        ax.plot(
            ks,
            [r["published_bytes"] / MIB for r in mine],
            "ko",
            ms=8,
            mfc="none",
            label="published (seed paper)",
        )
        for label, _, _ in PLANS:
            ax.plot(ks, [r[label] / MIB for r in mine], marker=".", label=label)
        ax.plot(ks, [r["floor_bytes"] / MIB for r in mine], "k--", label="floor (parameter state)")
        k_axis(ax, ks)
        plain_log_y(ax)
        ax.set_ylabel("training memory (MiB)")
        ax.set_title(f"paper preset, {dtype}")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=8)
    save(fig, ctx.figures_dir / "memory_vs_k.png")

    headers = ["K", "dtype", "published", "paper layout (ours)", "match"]
    headers += [label for label, _, _ in PLANS[1:]] + ["floor", "best vs K=1 paper"]
    base = {r["dtype"]: r["published_bytes"] for r in rows if r["K"] == 1}
    table_rows = []
    for r in rows:
        best = min(r[label] for label, _, _ in PLANS)
        table_rows.append(
            [
                str(r["K"]),
                r["dtype"],
                f"{r['published_bytes']:,}",
                f"{r['paper layout']:,}",
                "yes" if r["paper layout"] == r["published_bytes"] else "NO",
            ]
            + [f"{r[label]:,}" for label, _, _ in PLANS[1:]]
            + [f"{r['floor_bytes']:,}", f"{base[r['dtype']] / best:.2f}x"]
        )
    matches = sum(r["paper layout"] == r["published_bytes"] for r in rows)
    return Rendered(
        source="published (seed paper's memory table) and computed here (memory planner)",
        commands=[
            "edgefptt memory --preset paper-smnist --partitions K --dtype fp32 --plan paper",
            "edgefptt memory --preset paper-smnist --partitions K --schedule exact "
            "--plan recompute --json",
            "python benchmarks/memory.py",
        ],
        paragraphs=[
            f"The paper layout reproduces the published table to the byte in {matches} of "
            f"{len(rows)} cases. The lifetime plan places every buffer by its live range in one "
            "arena; the recompute plan keeps only [x, h] and c per step and recomputes the gates "
            "in backward. The floor is the parameter state alone (W, gradient, W_bar, lambda).",
        ],
        tables=[
            Table(
                "Training memory in bytes (paper preset: I=1, H=128, C=10, B=4, T=784)",
                headers,
                table_rows,
            )
        ],
        figures=[
            Figure("figures/memory_vs_k.png", "Training memory against K (log-log), fp32 and bf16.")
        ],
    )
