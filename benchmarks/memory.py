"""Training memory of the paper preset for every K and both dtypes, as one JSON document.

For each (dtype, K): the seed paper's layout, the lifetime plan of the paper and exact schedules,
the recompute plan (exact schedule, only h and c kept per step), the best of them, and each one's
ratio to BPTT (K = 1 in the paper layout, same dtype). Run: python benchmarks/memory.py
"""

from __future__ import annotations

import json
import sys
import time

from edgefptt.config import make_specs
from edgefptt.plan import plan_memory
from edgefptt.reference import paper_memory

PLANS = {
    "paper_layout": ("paper", "paper"),
    "lifetime_paper": ("paper", "lifetime"),
    "lifetime_exact": ("exact", "lifetime"),
    "recompute_exact": ("exact", "recompute"),
}


def main() -> dict:
    started = time.perf_counter()
    rows = []
    for dtype in ("fp32", "bf16"):
        net, run = make_specs("paper-smnist", dtype=dtype)
        bptt = plan_memory(net, run, "paper").total_bytes
        for k in (row["K"] for row in paper_memory()):
            row: dict = {"dtype": dtype, "partitions": k}
            for label, (schedule, plan) in PLANS.items():
                net, run = make_specs("paper-smnist", dtype=dtype, partitions=k, schedule=schedule)
                result = plan_memory(net, run, plan)
                row[f"{label}_bytes"] = result.total_bytes
                row[f"{label}_ratio_to_bptt"] = round(bptt / result.total_bytes, 3)
                row["floor_bytes"] = result.floor_bytes
            best = min(PLANS, key=lambda label: row[f"{label}_bytes"])
            row["best_plan"] = best
            row["best_bytes"] = row[f"{best}_bytes"]
            row["best_ratio_to_bptt"] = row[f"{best}_ratio_to_bptt"]
            rows.append(row)
    at_14 = {r["dtype"]: r["best_ratio_to_bptt"] for r in rows if r["partitions"] == 14}
    return {
        "preset": "paper-smnist",
        "bptt": "K = 1 in the paper layout, same dtype",
        "rows": rows,
        "target_k14_ratio": 15.0,
        "k14_best_ratio": at_14,
        "target_met": all(v >= 15.0 for v in at_14.values()),
        "elapsed_s": round(time.perf_counter() - started, 2),
    }


if __name__ == "__main__":
    json.dump(main(), sys.stdout, indent=2)
    sys.stdout.write("\n")
