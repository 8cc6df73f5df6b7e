"""Checkpointed BPTT beside BPTT and FPTT: host memory and time, device arena and latency.

Host (measured): an LSTM on pixel digits (T = 64) for a few epochs with bptt, bptt-ckpt over
S and fptt over K; peak activation memory (SavedTensorMeter, plus the stored boundary states
for bptt-ckpt), seconds per epoch and test accuracy. Device (modelled): the paper network
(paper-smnist), arena bytes of the lifetime plan and cycles of one training pass on the
default SoC of the dtype, for FPTT over K (exact schedule, lifetime and recompute plans) and
the checkpoint schedule over S.

    python benchmarks/checkpointed_bptt.py [--epochs 1] [--limit 300] [--dtype fp32]

Prints one JSON document. A couple of minutes on 2 cores with the defaults.
"""

from __future__ import annotations

import argparse
import json
import time

from edgefptt.config import make_specs
from edgefptt.hw import make_soc
from edgefptt.plan.budget import (
    arena_bytes,
    checkpoint_arena_bytes,
    checkpoint_pass_cycles,
    pass_cycles,
)
from edgefptt.train.config import make_config
from edgefptt.train.loop import fit, load_data

HOST_SEGMENTS = (2, 4, 8, 16, 32)
HOST_PARTITIONS = (2, 4, 8, 16)
DEVICE_PARTITIONS = (1, 2, 7, 14, 28, 56, 112, 392, 784)
DEVICE_SEGMENTS = (1, 2, 4, 8, 14, 28, 56, 66, 112, 196, 392, 784)


def host(epochs: int, limit: int | None) -> list[dict]:
    base = make_config(dataset="digits", epochs=epochs, limit=limit, seed=0)
    data = load_data(base)
    runs = [("bptt", {})]
    runs += [("bptt-ckpt", {"segments": s}) for s in HOST_SEGMENTS]
    runs += [("fptt", {"partitions": k}) for k in HOST_PARTITIONS]
    records = []
    for algorithm, extra in runs:
        config = make_config(dataset="digits", epochs=epochs, limit=limit, seed=0,
                             algorithm=algorithm, **extra)  # fmt: skip
        started = time.perf_counter()
        result = fit(config, data)
        records.append(
            {
                "algorithm": algorithm,
                **extra,
                "peak_activation_bytes": result.peak_activation_bytes,
                "seconds_per_epoch": sum(r["wall_s"] for r in result.history) / epochs,
                "test_accuracy": result.final_test_accuracy,
                "total_s": time.perf_counter() - started,
            }
        )
    return records


def device(dtype: str) -> dict:
    net, run = make_specs("paper-smnist", schedule="exact", dtype=dtype)
    soc = make_soc(None, dtype=dtype)
    fptt = []
    for k in DEVICE_PARTITIONS:
        k_run = run.model_copy(update={"partitions": k})
        for plan in ("lifetime", "recompute"):
            fptt.append(
                {
                    "partitions": k,
                    "plan": plan,
                    "arena_bytes": arena_bytes(net, k_run, plan),
                    "cycles": pass_cycles(net, k_run, plan),
                }
            )
    checkpoint = []
    for s in DEVICE_SEGMENTS:
        s_run = run.model_copy(update={"schedule": "checkpoint", "segments": s})
        checkpoint.append(
            {
                "segments": s,
                "max_segment_len": s_run.max_segment_len,
                "arena_bytes": checkpoint_arena_bytes(net, s_run),
                "cycles": checkpoint_pass_cycles(net, s_run, soc),
            }
        )
    return {
        "network": "paper-smnist",
        "dtype": dtype,
        "soc": f"default for {dtype}, {soc.mesh}x{soc.mesh} Gemmini, {soc.cores} core",
        "clock_hz": soc.clock_hz,
        "fptt": fptt,
        "checkpoint": checkpoint,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--limit", type=int, default=300, help="samples per split")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    args = parser.parse_args()
    started = time.perf_counter()
    document = {
        "host": {"dataset": "digits", "epochs": args.epochs, "runs": host(args.epochs, args.limit)},
        "device": device(args.dtype),
    }
    document["wall_s"] = time.perf_counter() - started
    print(json.dumps(document, indent=1))


if __name__ == "__main__":
    main()
