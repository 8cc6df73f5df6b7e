"""Miss model against Spike's cache simulator, and the measured instruction counts, as JSON.

Run: .venv/bin/python benchmarks/hw_cache.py [--dtype fp32,bf16] [--profile] [--passes]
(needs Spike + pk and riscv64-linux-gnu-gcc, see tests/test_hw_cache.py; about 4 minutes;
``--passes-only`` runs the pass check alone, about 10 s a case, 20 s at H = 32)

- ``kernels``: per kernel, Spike's L1 D and L2 misses of its calls beside the model's, the
  relative error, and Spike's instructions per call and per MAC (rdcycle = instret on Spike);
- ``loop_costs``: per matmul loop, instructions per MAC and per output fitted to those counts,
  beside the constants the model uses (hw/cpu.py MATMUL_INSN: update them from here when
  matmul_portable.c changes);
- ``element_costs`` (with --profile, needs qemu-riscv64): instructions per work element of our
  generated kernels, measured on a small export under qemu (hw/cpu.py
  GENERATED_INSN_PER_ELEMENT);
- ``passes`` (with --passes): whole generated training passes of small networks (export-c,
  ``make riscv``, run on Spike), Spike's L1 D misses of the second pass per kernel group
  (attributed at the program's ``ef_sync`` calls, edgefptt.hw.spikepass) beside the model's
  walk of the same pass, the error; a markdown table of them on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from edgefptt.codegen import export_c
from edgefptt.codegen.build import gemmini_env, gemmini_missing
from edgefptt.config import make_specs
from edgefptt.hw.cpu import GENERATED_INSN_PER_ELEMENT, MATMUL_INSN
from edgefptt.hw.spikecheck import element_costs, loop_costs, measure, predict, scenarios
from edgefptt.hw.spikepass import CASES, compare, measure_pass, predict_pass


def passes(env: dict[str, str], names: list[str]) -> list[dict]:
    """The pass check of each case named (edgefptt.hw.spikepass.CASES), with its table."""
    doc = []
    print("\n| case | group | calls | Spike L1 | model L1 | error |", file=sys.stderr)
    print("|---|---|---|---|---|---|", file=sys.stderr)
    for case in (c for c in CASES if c.name in names):
        spike = measure_pass(case, env)
        rows = compare(spike, predict_pass(case, arena=spike.arena))
        doc.append({"case": case.name, "spec": vars(case), "groups": rows})
        for r in rows:
            err = f"{r['error_pct']:+.1f} %" if r["large"] else f"{r['error_misses']:+d} (abs.)"
            print(f"| {case.name} | {r['group']} | {r['calls']} | {r['spike_l1_misses']:,} | "
                  f"{r['model_l1_misses']:,} | {err} |", file=sys.stderr, flush=True)  # fmt: skip
    return doc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="fp32,bf16", help="fp32 and/or bf16")
    parser.add_argument("--profile", action="store_true", help="also measure element costs")
    parser.add_argument("--passes", action="store_true", help="also check whole passes")
    parser.add_argument("--passes-only", action="store_true", help="only check whole passes")
    parser.add_argument("--cases", default=",".join(c.name for c in CASES), help="pass cases")
    args = parser.parse_args()
    env = gemmini_env(
        Path(__file__).resolve().parents[2] / "shared" / "toolchains" / "spike-gemmini"
    )
    missing = gemmini_missing(env)
    if missing:
        print(json.dumps({"skipped": missing}))
        return 0
    env = {**os.environ, **env}
    if args.passes_only:
        print(json.dumps({"passes": passes(env, args.cases.split(","))}, indent=2))
        return 0
    rows, measured = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in args.dtype.split(","):
            net, run = make_specs("paper-smnist", partitions=784, schedule="exact", dtype=dtype)
            export = export_c(net, run, Path(tmp) / dtype, seed=1)
            for s in scenarios(dtype=dtype):
                m = measure(s, export.out_dir, env)
                l1, l2 = predict(s)
                per_call = m["instructions"] / s.repeat
                measured.append((s, per_call))
                rows.append(
                    {
                        "kernel": s.name,
                        "group": s.group,
                        "loop": s.loop,
                        "calls": s.repeat,
                        "spike_l1_misses": m["l1_misses"],
                        "model_l1_misses": round(l1),
                        "l1_error_pct": 100 * (l1 / max(1, m["l1_misses"]) - 1),
                        "spike_l2_misses": m["l2_misses"],
                        "model_l2_misses": round(l2),
                        "instructions_per_call": per_call,
                        "instructions_per_mac": per_call / s.macs if s.macs else None,
                    }
                )
                print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    costs = {
        "/".join(key): {
            "measured": {"per_mac": c.per_mac, "per_output": c.per_output},
            "model": (
                {"per_mac": MATMUL_INSN[key].per_mac, "per_output": MATMUL_INSN[key].per_output}
                if key in MATMUL_INSN
                else None
            ),
        }
        for key, c in loop_costs(measured).items()
    }
    doc: dict = {"kernels": rows, "loop_costs": costs}
    if args.profile:
        doc["element_costs"] = {
            f"{dtype}/{schedule}": {
                "measured": element_costs(
                    "paper-smnist", dtype, schedule, hidden_size=32, seq_len=56, partitions=4
                )["per_element"],
                "model": GENERATED_INSN_PER_ELEMENT[dtype][schedule],
            }
            for dtype in args.dtype.split(",")
            for schedule in ("exact", "paper")
        }
    if args.passes:
        doc["passes"] = passes(env, args.cases.split(","))
    print(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
