"""Hardware-model benchmark: sweep speed, calibration error, and the seed paper's headline ratios.

Prints one JSON document. Run: .venv/bin/python benchmarks/hw_model.py
- points_per_s: design points evaluated per second on a 10,000-point sweep (target >= 10,000),
  workload summaries built beforehand (they are cached per distinct pass, as in explore);
- calibration: in-sample and leave-one-out total errors and per-group median errors, as fitted
  by tools/calibrate_hw.py (only the 21 FireSim calibration points exist in the package);
- headline: the model's ratios beside the published figures;
- exact_vs_paper: what the exact schedule buys on the same hardware;
- calibration_now: the total error on the 21 FireSim points of the model as it runs now (the
  calibrated path, which the hierarchy model leaves alone);
- cpu_only: the CPU-only SoC (one Rocket core, 500 MHz) from the memory-hierarchy model, fp32
  and emulated bf16, per K: cycles, seconds, ratio to K = 1, and the K = 784 / K = 1 change
  group by group (hw/explain.py);
- generated_vs_paper: the C that export-c writes against the seed paper's, K = 14, with and
  without Gemmini. With --quick only K = 1, 14, 784 for cpu_only.
"""

from __future__ import annotations

import json
import statistics
import time

from edgefptt.config import make_specs
from edgefptt.hw import calibration as cal
from edgefptt.hw import estimate, explore, make_soc, workload_summary

KS = (1, 2, 7, 14, 28, 56, 112, 392, 784)


def _total(k: int, mesh: int = 4, cores: int = 1, schedule: str = "paper") -> float:
    net, run = make_specs("paper-smnist", partitions=k, schedule=schedule)
    return estimate(net, run, make_soc(mesh=mesh, cores=cores, dtype="bf16")).total_cycles


def sweep_speed() -> dict:
    net, run = make_specs("paper-smnist")
    meshes = (4, 8, 16, 32)
    cores = tuple(range(1, 17))
    dtypes = ("bf16", "fp32")
    schedules = ("paper", "exact")
    # 4 x 16 x 9 x 2 x 2 = 2304 points per round; warm the workload summaries first.
    for k in KS:
        for schedule in schedules:
            workload_summary(net, run.model_copy(update={"partitions": k, "schedule": schedule}))
    explore(net, run, meshes, cores, KS, dtypes, schedules)
    target, done, start = 10_000, 0, time.perf_counter()
    clocks = [500e6, 400e6, 300e6, 200e6, 100e6]
    for clock in clocks:  # new SoCs each round: nothing but the per-shape caches is reused
        done += len(
            explore(net, run, meshes, cores, KS, dtypes, schedules, soc_values={"clock_hz": clock})
        )
        if done >= target:
            break
    elapsed = time.perf_counter() - start
    return {"points": done, "elapsed_s": elapsed, "points_per_s": done / elapsed}


def headline() -> dict:
    from edgefptt.hw.model import memory_bytes

    net, run = make_specs("paper-smnist", dtype="bf16")
    mem = {k: memory_bytes(net, run.model_copy(update={"partitions": k}), "paper") for k in KS}
    lat = {(k, c): _total(k, cores=c) for k in (1, 14, 28) for c in (1, 2, 10)}
    speedup = _total(1, mesh=4, cores=1) / _total(1, mesh=8, cores=10)
    mm = ("MatMul-1", "MatMul-2", "MatMul-3")
    net1, run1 = make_specs("paper-smnist", partitions=1)
    g4 = estimate(net1, run1, make_soc(mesh=4, dtype="bf16")).groups
    g8 = estimate(net1, run1, make_soc(mesh=8, dtype="bf16")).groups
    return {
        "memory_K14_over_K1": {"model": mem[14] / mem[1], "published": 1263112 / 10331080},
        "latency_K14_over_K1_4x4_1core": {"model": lat[14, 1] / lat[1, 1], "published": 1.17},
        "latency_K14_over_K1_4x4_2core": {"model": lat[14, 2] / lat[1, 2], "published": 1.2},
        "latency_K28_over_K1_4x4_1core": {
            "model": lat[28, 1] / lat[1, 1],
            "published": "1.34-1.41",
        },
        "latency_K28_over_K1_4x4_10core": {
            "model": lat[28, 10] / lat[1, 10],
            "published": "1.15-1.19",
        },
        "speedup_8x8_10core_over_4x4_1core_K1": {"model": speedup, "published": None},
        "matmul_cycles_cut_8x8_vs_4x4": {
            "model": 1 - sum(g8[g] for g in mm) / sum(g4[g] for g in mm),
            "published": "about 0.45",
        },
        "latency_cut_8x8_vs_4x4_1core_K1": {
            "model": 1 - sum(g8.values()) / sum(g4.values()),
            "published": "a few percent",
        },
    }


def exact_vs_paper() -> list[dict]:
    out = []
    for k in (1, 14, 784):
        for mesh, cores in ((4, 1), (8, 10)):
            paper, exact = _total(k, mesh, cores), _total(k, mesh, cores, "exact")
            out.append(
                {
                    "K": k,
                    "design": f"{mesh}x{mesh}-{cores}",
                    "paper_cycles": round(paper),
                    "exact_cycles": round(exact),
                    "exact_over_paper": exact / paper,
                }
            )
    return out


def calibration_now() -> dict:
    from edgefptt.reference import firesim_calibration

    errors = []
    for row in firesim_calibration():
        mesh = int(str(row["mesh"]).split("x")[0])
        total = _total(row["K"], mesh, row["cores"])
        errors.append(abs(total - row["total cycles"]) / row["total cycles"])
    return {
        "median_abs_pct": 100 * statistics.median(errors),
        "max_abs_pct": 100 * max(errors),
    }


def cpu_only(ks: tuple[int, ...]) -> dict:
    from edgefptt.hw.explain import partition_change

    out: dict = {}
    for dtype in ("fp32", "bf16"):
        soc = make_soc(dtype=dtype, accelerator=False)
        net, run = make_specs("paper-smnist", dtype=dtype)
        totals = {k: estimate(net, run.model_copy(update={"partitions": k}), soc).total_cycles
                  for k in ks}  # fmt: skip
        _, _, rows = partition_change(net, run, soc)
        out[dtype] = {
            "per_K": [
                {"K": k, "cycles": round(c), "seconds": c / soc.clock_hz, "over_K1": c / totals[1]}
                for k, c in totals.items()
            ],
            "K784_over_K1_by_group": [r.to_dict() for r in rows],
        }
    return out


def generated_vs_paper() -> list[dict]:
    out = []
    for schedule in ("paper", "exact"):
        net, run = make_specs("paper-smnist", partitions=14, schedule=schedule)
        for dtype in ("fp32", "bf16"):
            for accelerator in (True, False):
                soc = make_soc(dtype=dtype, accelerator=accelerator)
                paper = estimate(net, run, soc, code="paper").total_cycles
                ours = estimate(net, run, soc, code="generated").total_cycles
                out.append(
                    {
                        "schedule": schedule,
                        "dtype": dtype,
                        "soc": "gemmini 4x4, 1 core" if accelerator else "CPU only, 1 core",
                        "paper_cycles": round(paper),
                        "generated_cycles": round(ours),
                        "generated_over_paper": ours / paper,
                    }
                )
    return out


def main() -> None:
    import sys

    quick = "--quick" in sys.argv
    report = cal.REPORT
    loo = [abs(e) for e in report["loo_total_error"]]
    ins = [abs(e) for e in report["in_sample_total_error"]]
    doc = {
        "sweep": None if quick else sweep_speed(),
        "calibration": {
            "in_sample_median_abs_pct": 100 * statistics.median(ins),
            "in_sample_max_abs_pct": 100 * max(ins),
            "loo_median_abs_pct": 100 * statistics.median(loo) if loo else None,
            "loo_max_abs_pct": 100 * max(loo) if loo else None,
            "group_median_abs_pct": {
                g: 100 * e for g, e in report["group_median_abs_error"].items()
            },
        },
        "headline": headline(),
        "exact_vs_paper": exact_vs_paper(),
        "calibration_now": calibration_now(),
        "cpu_only": cpu_only((1, 14, 784) if quick else KS),
        "generated_vs_paper": generated_vs_paper(),
    }
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
