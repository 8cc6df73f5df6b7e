"""Section 6: the generated C against PyTorch on this host: time per pass and arena bytes."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from edgefptt.codegen import export_c, make, run_binary
from edgefptt.codegen.timing import torch_pass_s
from edgefptt.config import make_specs
from edgefptt.plan import plan_memory
from edgefptt.report.plots import k_axis, new_figure, plain_log_y, save
from edgefptt.report.section import Figure, Rendered, ReportContext, Table


def compute(ctx: ReportContext) -> dict[str, Any]:
    quick = ctx.settings["quick"]
    ks = [1, 14] if quick else [1, 14, 28, 784]
    passes = 1 if quick else 3
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n, k in enumerate(ks):
            ctx.progress(f"generated C, K={k}", n / len(ks))
            net, run = make_specs("paper-smnist", partitions=k, schedule="exact")
            export = export_c(net, run, Path(tmp) / f"k{k}")
            binary = make(export.out_dir, "host", learner=False)
            c_s = run_binary(binary, threads=1, time_passes=passes).pass_s
            # the same build with subnormals flushed (x86 FTZ|DAZ; elsewhere the flag is a no-op)
            flushed = make(
                export.out_dir, "host", binary="train_flush", flush_subnormals=True, learner=False
            )
            c_flush_s = run_binary(flushed, threads=1, time_passes=passes).pass_s
            torch_s = torch_pass_s(net, run, export.inputs, export.labels, passes)
            paper = plan_memory(net, make_specs("paper-smnist", partitions=k)[1], "paper")
            rows.append(
                {
                    "partitions": k,
                    "c_pass_s": c_s,
                    "c_flushed_pass_s": c_flush_s,
                    "torch_pass_s": torch_s,
                    "arena_bytes": export.arena_bytes,
                    "paper_layout_bytes": paper.total_bytes,
                }
            )
    by_k = {r["partitions"]: r for r in rows}
    return {
        "rows": rows,
        "passes": passes,
        "arena_bytes": {str(k): r["arena_bytes"] for k, r in by_k.items()},
        "c_ratio_k14_over_k1": by_k[14]["c_pass_s"] / by_k[1]["c_pass_s"],
        "c_flushed_ratio_k14_over_k1": by_k[14]["c_flushed_pass_s"] / by_k[1]["c_flushed_pass_s"],
        "torch_ratio_k14_over_k1": by_k[14]["torch_pass_s"] / by_k[1]["torch_pass_s"],
    }


def render(results: dict[str, Any], ctx: ReportContext) -> Rendered:
    rows = results["rows"]
    ks = [r["partitions"] for r in rows]
    fig, (time_ax, mem_ax) = new_figure(2)
    time_ax.plot(
        ks,
        [1e3 * r["c_pass_s"] for r in rows],
        "o-",
        label="generated C (make host: -O2, native ISA, 1 thread)",
    )
    time_ax.plot(
        ks,
        [1e3 * r["torch_pass_s"] for r in rows],
        "s-",
        label="torch.nn.LSTM per partition (1 thread)",
    )
    time_ax.set_ylabel("time per training pass (ms)")
    time_ax.set_title("one FPTT pass on this host (paper preset, fp32)")
    mem_ax.plot(
        ks,
        [r["arena_bytes"] / 2**20 for r in rows],
        "o-",
        label="generated C: static arena (lifetime plan)",
    )
    mem_ax.plot(
        ks, [r["paper_layout_bytes"] / 2**20 for r in rows], "k--", label="seed paper's C layout"
    )
    mem_ax.set_ylabel("training memory (MiB)")
    mem_ax.set_title("memory of the training routine")
    for ax in (time_ax, mem_ax):
        k_axis(ax, ks)
        plain_log_y(ax)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    save(fig, ctx.figures_dir / "c_vs_torch.png")
    table = [
        [
            str(r["partitions"]),
            f"{1e3 * r['c_pass_s']:.1f}",
            f"{1e3 * r['c_flushed_pass_s']:.1f}",
            f"{1e3 * r['torch_pass_s']:.1f}",
            f"{r['c_pass_s'] / r['torch_pass_s']:.2f}",
            f"{r['arena_bytes']:,}",
            f"{r['paper_layout_bytes']:,}",
        ]
        for r in rows
    ]
    return Rendered(
        source="measured here (this host's CPU, one thread); arena bytes from the planner",
        commands=[
            "edgefptt export-c --preset paper-smnist --partitions 14 -o out/k14 && "
            "make -C out/k14 host && out/k14/train_host --time 5",
            "python benchmarks/c_runtime.py",
        ],
        paragraphs=[
            f"Fastest of {results['passes']} timed pass(es). Latency ratio K=14 / K=1: generated "
            f"C {results['c_ratio_k14_over_k1']:.3f} (IEEE), "
            f"{results['c_flushed_ratio_k14_over_k1']:.3f} with subnormals flushed; PyTorch "
            f"{results['torch_ratio_k14_over_k1']:.3f} (the seed paper reports 1.17-1.20 on its "
            "SoC). The C is `make host`: -O2 for this machine's ISA (-march=native), IEEE "
            "arithmetic. On x86 the K = 1 pass on both sides is slowed by subnormal gradients at "
            "the start of the sequence; benchmarks/c_runtime.py also times both sides with "
            "subnormals flushed, and the portable build (docs/deploy.md).",
        ],
        tables=[
            Table(
                "Generated C against PyTorch (paper preset, exact schedule, fp32)",
                [
                    "K",
                    "C (ms)",
                    "C, subnormals flushed (ms)",
                    "torch (ms)",
                    "C / torch",
                    "arena (B)",
                    "paper layout (B)",
                ],
                table,
            )
        ],
        figures=[
            Figure(
                "figures/c_vs_torch.png",
                "Time per pass and memory of the generated C against PyTorch.",
            )
        ],
    )
