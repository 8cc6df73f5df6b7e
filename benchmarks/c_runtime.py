"""Generated C against PyTorch: wall time of one training pass, paper preset, one thread.

For K in {1, 14, 28, 784}: the exported C (exact schedule, fp32, lifetime arena, built with
``make host`` and CFLAGS, default -O2) runs one pass of K partitions (forward, backward, FPTT-SGD
update); PyTorch runs the same pass with torch.nn.LSTM per partition (last-step readout,
cross-entropy, FPTT penalty, SGD step, FPTT step, state carried detached), one thread. Both take
the fastest of several passes. Also: the C latency ratio K=14 / K=1 (paper: 1.17-1.20 on its
hardware) and the arena bytes against the seed paper's layout. Prints one JSON document.

Run: python benchmarks/c_runtime.py [--cflags "-O2 -march=native"] [--passes 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

from edgefptt.codegen import export_c, make, run_binary
from edgefptt.config import make_specs
from edgefptt.plan import plan_memory
from edgefptt.train.fptt import FPTT

KS = (1, 14, 28, 784)


def torch_pass_s(net, run, x, y, passes: int) -> float:
    """Fastest wall time of one FPTT pass with torch.nn.LSTM per partition."""
    torch.set_num_threads(1)
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(net.input_size, net.hidden_size, batch_first=True)
    readout = torch.nn.Linear(net.hidden_size, net.num_classes)
    params = [*lstm.parameters(), *readout.parameters()]
    sgd = torch.optim.SGD(params, lr=run.learning_rate)
    fptt = FPTT(params, alpha=run.alpha, beta=run.beta)
    xs = torch.as_tensor(x, dtype=torch.float32)
    ys = torch.as_tensor(y, dtype=torch.long)
    length = run.seq_len // run.partitions

    def one_pass() -> None:
        state = None
        for p in range(run.partitions):
            out, (h, c) = lstm(xs[:, p * length : (p + 1) * length], state)
            loss = torch.nn.functional.cross_entropy(readout(out[:, -1]), ys)
            sgd.zero_grad()
            (loss + fptt.penalty()).backward()
            sgd.step()
            fptt.step()
            state = (h.detach(), c.detach())

    one_pass()  # warm up
    best = float("inf")
    for _ in range(passes):
        start = time.perf_counter()
        one_pass()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cflags", default="-O2", help="CFLAGS of make host (default -O2)")
    parser.add_argument("--passes", type=int, default=5, help="timed passes per point")
    parser.add_argument("--ks", default=",".join(map(str, KS)), help="comma-separated K values")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in (int(v) for v in args.ks.split(",")):
            print(f"K={k} ...", file=sys.stderr, flush=True)
            net, run = make_specs("paper-smnist", partitions=k, schedule="exact")
            export = export_c(net, run, Path(tmp) / f"k{k}")
            binary = make(export.out_dir, "host", cflags=args.cflags)
            out = run_binary(binary, threads=1, time_passes=args.passes)
            torch_s = torch_pass_s(net, run, export.inputs, export.labels, args.passes)
            paper = plan_memory(net, make_specs("paper-smnist", partitions=k)[1], "paper")
            rows.append(
                {
                    "partitions": k,
                    "c_pass_s": out.pass_s,
                    "torch_pass_s": torch_s,
                    "c_over_torch": out.pass_s / torch_s,
                    "c_groups_ns_first_pass": out.groups,
                    "arena_bytes": export.arena_bytes,
                    "paper_layout_bytes": paper.total_bytes,
                    "arena_over_paper": export.arena_bytes / paper.total_bytes,
                }
            )
    by_k = {r["partitions"]: r for r in rows}
    ratio = by_k[14]["c_pass_s"] / by_k[1]["c_pass_s"] if 1 in by_k and 14 in by_k else None
    torch_ratio = (
        by_k[14]["torch_pass_s"] / by_k[1]["torch_pass_s"] if 1 in by_k and 14 in by_k else None
    )
    return {
        "preset": "paper-smnist",
        "schedule": "exact",
        "dtype": "fp32",
        "threads": 1,
        "cflags": args.cflags,
        "rows": rows,
        "c_ratio_k14_over_k1": ratio,
        "torch_ratio_k14_over_k1": torch_ratio,
        "paper_ratio_k14_over_k1": [1.17, 1.20],
        "targets": {
            "c_at_least_as_fast_as_torch_every_k": all(r["c_over_torch"] <= 1.0 for r in rows),
            "c_ratio_k14_over_k1_at_most_1_05": ratio is not None and ratio <= 1.05,
        },
    }


if __name__ == "__main__":
    json.dump(main(), sys.stdout, indent=2)
    sys.stdout.write("\n")
