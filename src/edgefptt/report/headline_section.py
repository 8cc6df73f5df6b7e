"""Section 3: the seed paper's headline (8.2x less memory for 1.2x latency) beside ours."""

from __future__ import annotations

from typing import Any

from edgefptt.config import make_specs
from edgefptt.hw import estimate, make_soc
from edgefptt.plan import plan_memory
from edgefptt.reference import paper_memory
from edgefptt.report.section import Rendered, ReportContext, Table


def _cycles(k: int, cores: int, schedule: str) -> float:
    net, run = make_specs("paper-smnist", partitions=k, dtype="bf16", schedule=schedule)
    return estimate(net, run, make_soc(mesh=4, cores=cores, dtype="bf16")).total_cycles


def compute(ctx: ReportContext) -> dict[str, Any]:
    published = {row["K"]: row for row in paper_memory()}
    out: dict[str, Any] = {
        "paper_k1_bytes": published[1]["fp32_bytes"],
        "paper": {
            "memory_ratio": published[1]["fp32_bytes"] / published[14]["fp32_bytes"],
            "latency_ratio_1core": 1.17,
            "latency_ratio_2core": 1.2,
        },
    }
    memory = {}
    for plan, schedule in (("paper", "paper"), ("lifetime", "exact"), ("recompute", "exact")):
        net, run = make_specs("paper-smnist", partitions=14, schedule=schedule)
        memory[plan] = plan_memory(net, run, plan).total_bytes
    out["model"] = {
        "memory_bytes_k14": memory,
        "memory_ratio_paper_layout": published[1]["fp32_bytes"] / memory["paper"],
        "memory_ratio_best_plan": published[1]["fp32_bytes"] / min(memory.values()),
        "latency_ratio_1core": _cycles(14, 1, "paper") / _cycles(1, 1, "paper"),
        "latency_ratio_2core": _cycles(14, 2, "paper") / _cycles(1, 2, "paper"),
        "exact_k14_over_paper_k1_1core": _cycles(14, 1, "exact") / _cycles(1, 1, "paper"),
    }
    c_results = ctx.shared.get("c_runtime")
    if c_results:
        out["generated_c"] = {
            "arena_bytes_k14": c_results.get("arena_bytes", {}).get("14"),
            "latency_ratio_host": c_results.get("c_ratio_k14_over_k1"),
            "latency_ratio_host_flushed": c_results.get("c_flushed_ratio_k14_over_k1"),
        }
    return out


def render(results: dict[str, Any], ctx: ReportContext) -> Rendered:
    paper, model = results["paper"], results["model"]
    rows = [
        [
            "seed paper (published)",
            f"{paper['memory_ratio']:.2f}x (C layout)",
            f"{paper['latency_ratio_1core']:.2f}x (4x4, 1 core), "
            f"{paper['latency_ratio_2core']:.2f}x (2 cores)",
            "FireSim, BF16 Gemmini",
        ],
        [
            "edgefptt, paper layout + hardware model",
            f"{model['memory_ratio_paper_layout']:.2f}x",
            f"{model['latency_ratio_1core']:.3f}x (1 core), {model['latency_ratio_2core']:.3f}x "
            "(2 cores)",
            "modelled",
        ],
        [
            "edgefptt, exact schedule + lifetime plan",
            f"{results['paper_k1_bytes'] / model['memory_bytes_k14']['lifetime']:.2f}x",
            f"{model['exact_k14_over_paper_k1_1core']:.3f}x (exact K=14 vs paper K=1, 1 core)",
            "planned + modelled",
        ],
        [
            "edgefptt, exact schedule + recompute plan",
            f"{model['memory_ratio_best_plan']:.2f}x",
            "not modelled (recompute adds one gate matmul per step)",
            "planned",
        ],
    ]
    c = results.get("generated_c")
    if c and c.get("arena_bytes_k14"):
        ratio = results["paper_k1_bytes"] / c["arena_bytes_k14"]
        latency, flushed = c.get("latency_ratio_host"), c.get("latency_ratio_host_flushed")
        if latency is None:
            cost = "-"
        elif flushed is None:
            cost = f"{latency:.3f}x (measured on this host's CPU)"
        else:
            cost = (
                f"{flushed:.3f}x with subnormals flushed; {latency:.3f}x IEEE, where K = 1 is "
                "slowed by subnormal gradients (measured on this host's CPU)"
            )
        rows.append(
            ["edgefptt, generated C (host)", f"{ratio:.2f}x (arena in the binary)", cost,
             "measured here"]
        )  # fmt: skip
    return Rendered(
        source="published (seed paper), modelled and measured here",
        commands=[
            "edgefptt memory --preset paper-smnist --partitions 14 --plan recompute "
            "--schedule exact",
            "edgefptt estimate --preset paper-smnist --partitions 14",
        ],
        paragraphs=[
            "Memory ratio: training memory at K = 1 in the paper's C layout divided by the "
            "memory at K = 14. Latency ratio: one training pass at K = 14 over one at K = 1. "
            "The host CPU is not the paper's SoC: the generated C's ratio says how the same "
            "pass scales on this machine, not what the SoC would do.",
        ],
        tables=[
            Table(
                "K = 14 against K = 1 (paper preset, BPTT = K = 1)",
                ["", "memory saved", "latency cost", "source"],
                rows,
            )
        ],
    )
