"""The seed paper's schedule against ours, both as generated C: memory and cost of one pass.

For the paper network (I=1, H=128, C=10, B=4, T=784), fp32, one thread, and each K: the arena
of `export-c --schedule exact` (lifetime plan), of `--schedule paper` with the lifetime plan and
with the paper's static layout (`--plan paper`); the host's seconds per training pass (best of
--passes); and, where gcc-riscv64-linux-gnu and qemu-user are installed, the RISC-V instructions
per pass (the qemu plugin; `make riscv`). The paper schedule does less backward work (its
truncated backward) but keeps every gate of every step; the exact schedule propagates through
the whole partition.

Run: python benchmarks/paper_schedule.py [--ks 14,28,784] [--passes 3] [--no-riscv]
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from edgefptt.codegen import export_c, make, run_binary, tool_missing
from edgefptt.codegen.build import instructions_per_pass
from edgefptt.config import make_specs

VARIANTS = (("exact", "lifetime"), ("paper", "lifetime"), ("paper", "paper"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", default="14,28,784", help="comma-separated K values")
    parser.add_argument("--passes", type=int, default=3, help="timed passes per binary")
    parser.add_argument("--no-riscv", action="store_true", help="skip the RISC-V counts")
    args = parser.parse_args()
    riscv = not args.no_riscv and tool_missing("riscv") is None
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in (int(v) for v in args.ks.split(",")):
            for schedule, plan in VARIANTS:
                net, run = make_specs("paper-smnist", partitions=k, schedule=schedule)
                out = Path(tmp) / f"{schedule}_{plan}_{k}"
                export = export_c(net, run, out, plan=plan, seed=0)
                host = run_binary(make(out, "host", learner=False), time_passes=args.passes)
                row = {
                    "partitions": k,
                    "schedule": schedule,
                    "plan": plan,
                    "arena_bytes": export.arena_bytes,
                    "host_pass_s": host.pass_s,
                    "riscv_instructions": None,
                }
                if riscv:
                    binary = make(out, "riscv", learner=False)
                    row["riscv_instructions"] = instructions_per_pass(binary, build_dir=out)
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    json.dump({"network": "paper-smnist", "dtype": "fp32", "rows": rows}, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
