"""Refit every constant of the hardware model and rewrite src/edgefptt/hw/calibration.py.

Usage: .venv/bin/python tools/calibrate_hw.py [--no-loo]

Inputs: only the packaged reference tables (firesim_calibration.csv: 21 FireSim points;
fpga_resources.csv; fpga_power_w.csv). Cycle constants are fitted by bounded least squares on
the residuals (model - measured) of every group of every point, each divided by the point's
measured total, so that each point's total error is what is minimised. Leave-one-out: the fit
is repeated 21 times without one point, which is then predicted. Area and power constants are
closed-form fits (see hw/fpga.py for the rules).
"""

from __future__ import annotations

import argparse
import json
import math
import pprint
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import least_squares

from edgefptt.config import make_specs
from edgefptt.hw.gemmini import Accelerator, choose_tiles, dma_cycles
from edgefptt.hw.rocket import SERIAL_GROUPS, recipe
from edgefptt.hw.summary import workload_summary
from edgefptt.reference import firesim_calibration, fpga_power_w, fpga_resources
from edgefptt.workload.kernels import GROUPS

OUT = Path(__file__).resolve().parents[1] / "src" / "edgefptt" / "hw" / "calibration.py"
CLASSES = (
    "sigmoid",
    "tanh",
    "ewo_forward",
    "ewo_backward",
    "lstm_grad_output",
    "lstm_grad_gates",
    "bias_grad",
    "fptt_sgd",
)
SCALARS = (
    "call_cycles",
    "barrier_cycles",
    "barrier_per_core_cycles",
    "softmax_cycles",
    "copy_row_cycles",
    "copy_block_cycles",
    "copy_call_cycles",
    "mm_call_cycles",
    "mm_tile_cycles",
    "mm_block_cycles",
    "mm_transpose_cycles",
)
NAMES = [f"{c}.{p}" for c in CLASSES for p in ("w", "delta", "kappa")] + list(SCALARS)
IDX = {n: i for i, n in enumerate(NAMES)}


def bf16_accelerator(dim: int) -> Accelerator:
    """The seed paper's measured config: BF16 in and out, 128 KiB / 32 KiB, 5-cycle hops."""
    return Accelerator(dim, 2, 2, 128 * 1024, 32 * 1024, 5, 16)


class Points:
    """Features of the 21 calibration points, flattened to one row per (point, kernel shape)."""

    def __init__(self) -> None:
        self.rows = firesim_calibration()
        rows: list[dict] = []
        for p, r in enumerate(self.rows):
            net, run = make_specs("paper-smnist", partitions=r["K"], dtype="bf16")
            dim, cores = int(str(r["mesh"]).split("x")[0]), int(r["cores"])
            for shape, n in workload_summary(net, run).shapes:
                row = {"p": p, "g": GROUPS.index(shape.group), "n": n, "N": cores}
                if shape.kind == "matmul":
                    acc = bf16_accelerator(dim)
                    mm = shape.matmul
                    t = choose_tiles(mm.m, mm.n, mm.k, acc)
                    row.update(
                        kind="mm",
                        tiles=t.tiles,
                        ideal=t.block_products * dim,
                        T=float(mm.transpose_a or mm.transpose_b),
                        fill=t.tiles * 2 * dim * acc.hop_cycles,
                        dma=dma_cycles(mm, t, acc),
                    )
                elif shape.group in SERIAL_GROUPS:
                    kind = "softmax" if shape.group == "softmax" else "copy"
                    row.update(kind=kind, work=shape.work, contiguous=float(shape.contiguous))
                else:
                    row.update(kind="par", work=shape.work, recipe=recipe(shape))
                rows.append(row)
        self.flat = rows
        self.n_points = len(self.rows)
        self.measured = np.array([[r[g] for g in GROUPS] for r in self.rows], dtype=float)
        self.total = np.array([r["total cycles"] for r in self.rows], dtype=float)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Predicted cycles, points x groups (mirrors hw/rocket.py and hw/gemmini.py)."""
        v = {n: x[i] for n, i in IDX.items()}
        out = np.zeros((self.n_points, len(GROUPS)))
        for r in self.flat:
            if r["kind"] == "mm":
                compute = r["ideal"] * (v["mm_block_cycles"] + r["T"] * v["mm_transpose_cycles"])
                t = (
                    v["mm_call_cycles"]
                    + r["tiles"] * v["mm_tile_cycles"]
                    + max(compute + r["fill"], r["dma"])
                )
            elif r["kind"] == "softmax":
                # One call overhead for all core kernels: 40-element softmaxes cannot split them.
                t = v["call_cycles"] + r["work"] * v["softmax_cycles"]
            elif r["kind"] == "copy":
                per = v["copy_block_cycles"] if r["contiguous"] else v["copy_row_cycles"]
                t = v["copy_call_cycles"] + r["work"] * per
            else:
                cores, per = r["N"], 0.0
                for cls, weight in r["recipe"].items():
                    w = v[f"{cls}.w"]
                    if cores > 1:
                        w *= 1 + v[f"{cls}.delta"] + v[f"{cls}.kappa"] * (cores - 1)
                    per += weight * w
                t = v["call_cycles"]
                if cores == 1:
                    t += r["work"] * per
                else:
                    t += v["barrier_cycles"] + v["barrier_per_core_cycles"] * cores
                    t += math.ceil(r["work"] / cores) * per
            out[r["p"], r["g"]] += r["n"] * t
        return out

    def residuals(self, x: np.ndarray, keep: np.ndarray) -> np.ndarray:
        pred = self.predict(x)
        fit = ((pred - self.measured) / self.total[:, None])[keep].ravel()
        # Two harts must beat one on a typical 512-element call (barrier included), or "more
        # cores" could be slower than the measurements ever were: a steep penalty keeps every
        # class inside that bound.
        barrier = x[IDX["barrier_cycles"]] + 2 * x[IDX["barrier_per_core_cycles"]]
        excess = []
        for c in CLASSES:
            w = x[IDX[f"{c}.w"]]
            two = barrier + 256 * w * (1 + x[IDX[f"{c}.delta"]] + x[IDX[f"{c}.kappa"]])
            excess.append(max(0.0, two - 0.97 * 512 * w) / (512 * max(w, 1.0)))
        return np.concatenate([fit, 10.0 * np.array(excess)])


def start() -> np.ndarray:
    x = np.zeros(len(NAMES))
    for c in CLASSES:
        x[IDX[f"{c}.w"]], x[IDX[f"{c}.delta"]], x[IDX[f"{c}.kappa"]] = 100.0, 0.05, 0.02
    x[IDX["fptt_sgd.w"]] = 220.0
    for name, value in {
        "call_cycles": 300,
        "barrier_cycles": 500,
        "barrier_per_core_cycles": 50,
        "softmax_cycles": 300,
        "copy_row_cycles": 15,
        "copy_block_cycles": 1,
        "copy_call_cycles": 100,
        "mm_call_cycles": 1000,
        "mm_tile_cycles": 100,
        "mm_block_cycles": 2.5,
        "mm_transpose_cycles": 0.8,
    }.items():
        x[IDX[name]] = value
    return x


def fit(points: Points, keep: np.ndarray, x0: np.ndarray) -> np.ndarray:
    # Every constant is a cost or a penalty: none may be negative.
    result = least_squares(
        points.residuals, x0, args=(keep,), bounds=(0.0, np.inf), x_scale="jac", max_nfev=2000
    )
    return result.x


def total_errors(points: Points, x: np.ndarray) -> np.ndarray:
    return (points.predict(x).sum(axis=1) - points.total) / points.total


def group_errors(points: Points, x: np.ndarray) -> dict[str, float]:
    """Per group: the median relative error over the points (model vs measured group cycles)."""
    rel = np.abs(points.predict(x) - points.measured) / points.measured
    return {g: float(np.median(rel[:, j])) for j, g in enumerate(GROUPS)}


def fit_area() -> dict:
    rows = fpga_resources()
    pick: dict = {}
    for r in rows:  # the first row of a config is the seed paper's own table
        pick.setdefault((r["module"], r["config"]), r)
    g4 = pick[("gemmini", "4x4 bf16 (custom)")]
    g8 = pick[("gemmini", "8x8 bf16 (custom)")]
    g4f = pick[("gemmini", "4x4 fp32 (default config)")]
    rocket = pick[("rocket_tile", "single RISC-V tile")]
    socs = [r for r in rows if r["module"] == "soc"]
    per_pe_bf16 = {k: (g8[k.upper()] - g4[k.upper()]) / 48 for k in ("lut", "ff")}
    fixed = {k: g4[k.upper()] - 16 * per_pe_bf16[k] for k in ("lut", "ff")}
    # FP32: the fixed part is shared; everything the FP32 4x4 has beyond it is in its 16 PEs.
    per_pe_fp32 = {k: (g4f[k.upper()] - fixed[k]) / 16 for k in ("lut", "ff")}
    gemmini_for = {"4x4-1": g4, "8x8-1": g8}
    uncore = {
        k: float(
            np.mean(
                [
                    s[k.upper()] - gemmini_for[s["config"]][k.upper()] - rocket[k.upper()]
                    for s in socs
                ]
            )
        )
        for k in ("lut", "ff", "bram", "dsp")
    }
    return {
        "GEMMINI_FIXED": fixed,
        "GEMMINI_PER_PE": {"bf16": per_pe_bf16, "fp32": per_pe_fp32},
        # BF16 Gemmini keeps 120 DSPs at 4x4 and 8x8 (outside the PEs); FP32 4x4 has 256 = 16/PE.
        "GEMMINI_DSP_FIXED": {"bf16": float(g4["DSP"]), "fp32": 0.0},
        "GEMMINI_DSP_PER_PE": {"bf16": 0.0, "fp32": g4f["DSP"] / 16},
        # 160 KiB (BF16) -> 40 BRAM and 320 KiB (FP32) -> 80: a quarter BRAM per KiB.
        "BRAM_PER_KIB": g4["BRAM"] / (128 + 32),
        "ROCKET_TILE": {k: float(rocket[k.upper()]) for k in ("lut", "ff", "bram", "dsp")},
        "UNCORE": uncore,
    }


def fit_power(area: dict) -> dict:
    """Each component as intercept + slope x its driving resource; a constant if the slope < 0."""
    # Imported late: hw.fpga reads the area constants that this script is about to write.
    power = fpga_power_w()
    drivers = {
        "dynamic_clocks": "ff",
        "dynamic_signals": "lut",
        "dynamic_logic": "lut",
        "dynamic_bram": "bram",
        "dynamic_dsp": "dsp",
    }

    def total_resources(point: str) -> dict[str, float]:
        mesh, cores = point.split("-")
        dim, n = int(mesh.split("x")[0]), int(cores)
        pes = dim * dim
        out = {}
        for k in ("lut", "ff"):
            gem = area["GEMMINI_FIXED"][k] + area["GEMMINI_PER_PE"]["bf16"][k] * pes
            out[k] = gem + n * area["ROCKET_TILE"][k] + area["UNCORE"][k]
        out["bram"] = area["BRAM_PER_KIB"] * 160 + n * area["ROCKET_TILE"]["bram"]
        out["bram"] += area["UNCORE"]["bram"]
        out["dsp"] = area["GEMMINI_DSP_FIXED"]["bf16"] + n * area["ROCKET_TILE"]["dsp"]
        out["dsp"] += area["UNCORE"]["dsp"]
        return out

    points = list(power)
    res = {p: total_resources(p) for p in points}
    components: dict[str, tuple[str, float, float]] = {}
    for comp in power[points[0]]:
        if comp == "total":
            continue
        y = np.array([power[p][comp] for p in points])
        driver = drivers.get(comp, "")
        if driver:
            xs = np.array([res[p][driver] for p in points])
            slope, intercept = np.polyfit(xs, y, 1)
            if slope > 0:
                components[comp] = (driver, float(intercept), float(slope))
                continue
        components[comp] = ("", float(y.mean()), 0.0)
    return {"POWER_COMPONENTS": components}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-loo", action="store_true", help="skip leave-one-out")
    args = parser.parse_args(argv)
    points = Points()
    everything = np.ones(points.n_points, dtype=bool)
    x = fit(points, everything, start())
    in_sample = total_errors(points, x)
    loo = []
    if not args.no_loo:
        for i in range(points.n_points):
            keep = everything.copy()
            keep[i] = False
            loo.append(float(total_errors(points, fit(points, keep, x))[i]))
            print(f"leave out point {i}: {100 * loo[-1]:+.2f} %", file=sys.stderr)
    v = {n: float(x[i]) for n, i in IDX.items()}
    core = {
        "classes": {c: (v[f"{c}.w"], v[f"{c}.delta"], v[f"{c}.kappa"]) for c in CLASSES},
        **{k: v[k] for k in SCALARS if not k.startswith("mm_")},
    }
    matmul = {k.removeprefix("mm_"): v[k] for k in SCALARS if k.startswith("mm_")}
    labels = [f"K={r['K']} {r['mesh']}-{r['cores']}" for r in points.rows]
    report = {
        "points": labels,
        "in_sample_total_error": [float(e) for e in in_sample],
        "loo_total_error": loo,
        "group_median_abs_error": group_errors(points, x),
    }
    area = fit_area()
    consts = {**area, **fit_power(area)}
    write(core, matmul, consts, report)
    summary = {
        "in_sample_median_abs_pct": 100 * float(np.median(np.abs(in_sample))),
        "in_sample_max_abs_pct": 100 * float(np.max(np.abs(in_sample))),
    }
    if loo:
        summary["loo_median_abs_pct"] = 100 * float(np.median(np.abs(loo)))
        summary["loo_max_abs_pct"] = 100 * float(np.max(np.abs(loo)))
    print(json.dumps(summary, indent=2))
    return 0


HEADER = '''"""Every fitted constant of the hardware model, in one place.

GENERATED by tools/calibrate_hw.py from the packaged reference tables; do not edit by hand,
rerun the script. Cycle constants were fitted on the 21 FireSim points only (BF16 Gemmini).
Units: cycles unless the name says otherwise.
"""

'''

FIXED = """
# The Rocket core has no BF16 unit: each scalar operation widens to FP32 and rounds back, which
# the seed paper puts at about twice the FP32 cost of element-wise work (not fitted: no FP32
# measurements exist). FP32 per-element costs are the fitted BF16 ones divided by this.
BF16_EMULATION_FACTOR = 2.0

"""


def write(core: dict, matmul: dict, consts: dict, report: dict) -> None:
    text = HEADER
    text += "# Rocket-core kernels: per class (cycles per element on one hart, delta, kappa).\n"
    text += f"CORE = {pprint.pformat(core, width=100, sort_dicts=False)}\n\n"
    text += "# Calibrated Gemmini matmul (hw/gemmini.py: calibrated_cycles).\n"
    text += f"MATMUL = {pprint.pformat(matmul, width=100, sort_dicts=False)}\n"
    text += FIXED + "\n"
    text += "# Area (fpga_resources.csv) and power (fpga_power_w.csv); rules in hw/fpga.py.\n"
    for name, value in consts.items():
        text += f"{name} = {pprint.pformat(value, width=100, sort_dicts=False)}\n"
    text += "\n# What the fit achieved (relative errors; see docs/hardware.md).\n"
    text += f"REPORT = {pprint.pformat(report, width=100, sort_dicts=False)}\n"
    OUT.write_text(text, encoding="utf-8")
    # Keep the generated module in the project's format (ruff sits beside this Python).
    ruff = Path(sys.executable).with_name("ruff")
    if ruff.exists():
        subprocess.run([str(ruff), "format", "-q", str(OUT)], check=False)


if __name__ == "__main__":
    raise SystemExit(main())
