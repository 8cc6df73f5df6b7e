"""Sections 2 and 4: latency against K from the hardware model, and the design-space front."""

from __future__ import annotations

from typing import Any

from edgefptt.config import make_specs
from edgefptt.hw import explore
from edgefptt.hw import plot as plot_pareto
from edgefptt.reference import firesim_calibration
from edgefptt.report.plots import k_axis, new_figure, save
from edgefptt.report.section import Figure, Rendered, ReportContext, Table

KS = [1, 2, 7, 14, 28, 56, 112, 392, 784]
CORES = [1, 2, 4, 6, 8, 10]
# Latency ratios the seed paper states in its text (shared/reference/paper_workload.md).
PUBLISHED_RATIOS = [
    {"design": "4x4-1", "ratio": "K=14 / K=1", "published": "about 1.17"},
    {"design": "4x4-2", "ratio": "K=14 / K=1", "published": "about 1.2"},
    {"design": "4x4-1", "ratio": "K=28 / K=1", "published": "1.34-1.41 (1-2 cores)"},
    {"design": "4x4-2", "ratio": "K=28 / K=1", "published": "1.34-1.41 (1-2 cores)"},
    {"design": "4x4-10", "ratio": "K=28 / K=1", "published": "1.15-1.19 (10 cores)"},
]
STACKED = [("4x4-1", 1), ("4x4-1", 14), ("4x4-1", 784), ("4x4-10", 14), ("8x8-10", 14)]


def _design(record: dict[str, Any]) -> str:
    return f"{record['mesh']}x{record['mesh']}-{record['cores']}"


def compute_latency(ctx: ReportContext) -> dict[str, Any]:
    net, run = make_specs("paper-smnist", dtype="bf16", schedule="paper")
    records = explore(
        net,
        run,
        [4, 8],
        CORES,
        KS,
        ["bf16"],
        ["paper"],
        progress=lambda done, total: ctx.progress("hardware model", done / total),
    )
    measured = [
        {"design": f"{row['mesh']}-{row['cores']}", "K": row["K"], "cycles": row["total cycles"]}
        for row in firesim_calibration()
    ]
    return {"records": records, "firesim": measured}


def render_latency(results: dict[str, Any], ctx: ReportContext) -> Rendered:
    records = results["records"]
    by = {(_design(r), r["partitions"]): r for r in records}
    fig, (ratio_ax, abs_ax) = new_figure(2)
    near = [k for k in KS if k <= 56]  # where the paper states its ratios
    for design in ("4x4-1", "4x4-2", "4x4-10", "8x8-1", "8x8-10"):
        base = by[design, 1]["total_cycles"]
        ratio_ax.plot(
            near,
            [by[design, k]["total_cycles"] / base for k in near],
            marker=".",
            label=f"model {design}",
        )
    ratio_ax.errorbar([14, 14], [1.17, 1.2], fmt="k*", ms=10, label="published K=14 (1-2 cores)")
    ratio_ax.vlines([28], 1.34, 1.41, colors="k", lw=4, label="published K=28, 1-2 cores")
    ratio_ax.vlines([28], 1.15, 1.19, colors="tab:gray", lw=4, label="published K=28, 10 cores")
    k_axis(ratio_ax, near)
    ratio_ax.set_ylabel("latency relative to K = 1")
    ratio_ax.set_title("latency against K (bf16 Gemmini, paper schedule)")
    ratio_ax.legend(fontsize=7)
    ratio_ax.grid(True, which="both", alpha=0.3)
    firesim = [m for m in results["firesim"] if m["design"] == "4x4-1"]
    abs_ax.plot(
        [m["K"] for m in firesim],
        [m["cycles"] / 500e6 for m in firesim],
        "ko",
        mfc="none",
        ms=8,
        label="FireSim, published (calibration data)",
    )
    abs_ax.plot(KS, [by["4x4-1", k]["seconds"] for k in KS], "o-", ms=3, label="model 4x4-1")
    abs_ax.plot(KS, [by["8x8-10", k]["seconds"] for k in KS], "s-", ms=3, label="model 8x8-10")
    k_axis(abs_ax, KS)
    abs_ax.set_yscale("log")
    abs_ax.set_ylabel("latency per training pass at 500 MHz (s)")
    abs_ax.set_title("absolute latency")
    abs_ax.legend(fontsize=8)
    abs_ax.grid(True, which="both", alpha=0.3)
    save(fig, ctx.figures_dir / "latency_vs_k.png")

    groups = list(records[0]["groups"])
    fig, axes = new_figure(1, width=9, height=4.5)
    ax = axes[0]
    bottoms = [0.0] * len(STACKED)
    labels = [f"{d} K={k}" for d, k in STACKED]
    for group in groups:
        values = [by[d, k]["groups"][group] / 500e6 for d, k in STACKED]
        ax.bar(labels, values, bottom=bottoms, label=group)
        bottoms = [b + v for b, v in zip(bottoms, values, strict=True)]
    ax.set_ylabel("latency per training pass at 500 MHz (s)")
    ax.set_title("where the time goes (model, per kernel group)")
    ax.legend(fontsize=7, ncol=2)
    save(fig, ctx.figures_dir / "latency_groups.png")

    ratio_rows = []
    for entry in PUBLISHED_RATIOS:
        k = 14 if "14" in entry["ratio"] else 28
        model = by[entry["design"], k]["total_cycles"] / by[entry["design"], 1]["total_cycles"]
        ratio_rows.append([entry["design"], entry["ratio"], f"{model:.3f}", entry["published"]])
    measured_rows = []
    for m in results["firesim"]:
        model = by.get((m["design"], m["K"]))
        if model is None:
            continue
        error = 100 * (model["total_cycles"] / m["cycles"] - 1)
        measured_rows.append(
            [
                m["design"],
                str(m["K"]),
                f"{m['cycles']:,}",
                f"{model['total_cycles']:,}",
                f"{error:+.2f}%",
            ]
        )
    return Rendered(
        source="modelled (edgefptt's hardware model) beside published FireSim measurements",
        commands=[
            "edgefptt estimate --preset paper-smnist --mesh 4 --cores 1 --dtype bf16 "
            "--partitions 14 --schedule paper",
            "python benchmarks/hw_model.py",
        ],
        paragraphs=[
            "The model costs each kernel of the paper's training pass from what it does (matmul "
            "shapes and calls on Gemmini, element counts on the Rocket cores) with a small set of "
            "constants fitted on 21 published FireSim points; the table below compares it with "
            "exactly those points, so it shows the fit, not a prediction. The other FireSim "
            "design points were kept back and are not used anywhere.",
        ],
        tables=[
            Table(
                "Latency ratios: model against the seed paper's text",
                ["design", "ratio", "model", "published"],
                ratio_rows,
            ),
            Table(
                "Total cycles: model against the FireSim calibration points",
                ["design", "K", "FireSim (published)", "model", "error"],
                measured_rows,
            ),
        ],
        figures=[
            Figure(
                "figures/latency_vs_k.png",
                "Latency against K: ratios to K = 1 with the paper's stated ratios, and "
                "absolute latency with the FireSim points.",
            ),
            Figure("figures/latency_groups.png", "Per-group breakdown for a few design points."),
        ],
    )


def compute_pareto(ctx: ReportContext) -> dict[str, Any]:
    net, run = make_specs("paper-smnist")
    ks = [1, 14, 28, 784] if ctx.settings["quick"] else KS
    records = explore(
        net,
        run,
        [4, 8, 16],
        [1, 2, 4, 8, 10],
        ks,
        ["bf16", "fp32"],
        ["paper", "exact"],
        progress=lambda done, total: ctx.progress("design points", done / total),
    )
    return {"records": records}


def render_pareto(results: dict[str, Any], ctx: ReportContext) -> Rendered:
    records = results["records"]
    plot_pareto(records, ctx.figures_dir / "pareto.png")
    front = sorted((r for r in records if r["pareto"]), key=lambda r: r["seconds"])
    rows = [
        [
            _design(r),
            r["dtype"],
            r["schedule"],
            str(r["partitions"]),
            f"{1e3 * r['seconds']:.1f}",
            f"{r['memory_bytes']:,}",
            f"{r['lut']:,}",
            f"{r['energy_j']:.3f}",
        ]
        for r in front[:15]
    ]
    return Rendered(
        source="modelled (hardware model, memory planner, FPGA resource and power fits)",
        commands=[
            "edgefptt explore --mesh 4,8,16 --cores 1,2,4,8,10 --partitions 1,14,28,784 "
            "--dtype bf16,fp32 --schedule paper,exact --plot pareto.png --json",
        ],
        paragraphs=[
            f"{len(records)} design points; {len(front)} are Pareto-optimal in latency, memory "
            "and LUTs together. Memory is the paper layout for the paper schedule and the "
            "lifetime plan for the exact schedule.",
        ],
        tables=[
            Table(
                "The fastest Pareto-optimal points",
                [
                    "design",
                    "dtype",
                    "schedule",
                    "K",
                    "latency (ms)",
                    "memory (B)",
                    "LUTs",
                    "energy (J)",
                ],
                rows,
            )
        ],
        figures=[
            Figure(
                "figures/pareto.png",
                "Latency against memory and against LUTs (Pareto points circled), and "
                "latency against K per design.",
            )
        ],
    )
