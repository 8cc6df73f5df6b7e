"""Design-space exploration: sweep SoC and run parameters, mark the Pareto-optimal points."""

from __future__ import annotations

import csv
import itertools
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from edgefptt.config import NetworkSpec, RunSpec, make_specs
from edgefptt.errors import ConfigError
from edgefptt.hw.spec import make_soc
from edgefptt.hw.summary import workload_summary

CSV_COLUMNS = (
    "mesh",
    "cores",
    "partitions",
    "dtype",
    "schedule",
    "accelerator",
    "total_cycles",
    "seconds",
    "memory_bytes",
    "lut",
    "ff",
    "bram",
    "dsp",
    "power_w",
    "energy_j",
    "pareto",
)


def pareto_flags(points: Sequence[Sequence[float]]) -> list[bool]:
    """True where no other point is at least as good in every objective and better in one.

    Points are visited in lexicographic order, so only earlier points can dominate a point,
    and it is enough to compare against the front found so far (domination is transitive).
    """
    import numpy as np

    pts = np.asarray(points, dtype=float)
    if pts.size == 0:
        return []
    flags = np.zeros(len(pts), dtype=bool)
    front = np.empty((0, pts.shape[1]))
    for i in np.lexsort(pts.T[::-1]):
        p = pts[i]
        if front.size and np.any(np.all(front <= p, axis=1) & np.any(front < p, axis=1)):
            continue
        flags[i] = True
        front = np.vstack([front, p])
    return flags.tolist()


def explore(
    net: NetworkSpec,
    run: RunSpec,
    meshes: Iterable[int],
    cores: Iterable[int],
    partitions: Iterable[int],
    dtypes: Iterable[str],
    schedules: Iterable[str],
    soc_values: dict[str, Any] | None = None,
    soc_preset: str | None = None,
    matmul_model: str = "calibrated",
    plan: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[dict[str, Any]]:
    """Estimate every combination; each record also carries ``pareto``.

    Pareto-optimal means not dominated in (seconds, memory_bytes, lut). Workload summaries,
    memory plans and per-shape costs are cached, so a point costs its distinct shapes only.
    """
    from edgefptt.hw.core_model import core_costs
    from edgefptt.hw.model import _hardware, default_plan, group_cycles, memory_bytes

    if matmul_model not in ("calibrated", "naive"):
        raise ConfigError(f"unknown matmul model {matmul_model!r}; choose from calibrated, naive")
    grid = list(itertools.product(meshes, cores, partitions, dtypes, schedules))
    if not grid:
        raise ConfigError("the sweep is empty: give at least one value of every axis")
    records: list[dict[str, Any]] = []
    # Per distinct pass: its summary and memory; per distinct SoC: resources and power.
    passes: dict[tuple[int, str, str], tuple[Any, int, str, RunSpec]] = {}
    socs: dict[tuple[int, int, str], tuple[Any, dict[str, int], float]] = {}
    for n, (mesh, ncores, k, dtype, schedule) in enumerate(grid):
        key = (k, dtype, schedule)
        if key not in passes:
            values = {**run.model_dump(), "partitions": k, "dtype": dtype, "schedule": schedule}
            point_run = make_specs(None, **net.model_dump(), **values)[1]
            point_plan = plan or default_plan(schedule)
            passes[key] = (
                workload_summary(net, point_run),
                memory_bytes(net, point_run, point_plan),
                point_plan,
                point_run,
            )
        skey = (mesh, ncores, dtype)
        if skey not in socs:
            spec = make_soc(
                soc_preset, **{**(soc_values or {}), "mesh": mesh, "cores": ncores, "dtype": dtype}
            )
            resources, power = _hardware(spec)
            socs[skey] = (spec, resources, power["total"])
        summary, memory, point_plan, point_run = passes[key]
        spec, resources, watts = socs[skey]
        if spec.accelerator:
            groups = group_cycles(summary, spec, matmul_model)
        else:  # CPU-only: the memory-hierarchy model (one walk per pass, cached)
            costs = core_costs(net, point_run, spec, "paper")
            groups = {g: c.cycles for g, c in costs.items()}
        total = sum(groups.values())
        seconds = total / spec.clock_hz
        records.append(
            {
                "total_cycles": round(total),
                "seconds": seconds,
                "clock_hz": spec.clock_hz,
                "groups": {g: round(c) for g, c in groups.items()},
                "memory_bytes": memory,
                **resources,
                "power_w": watts,
                "energy_j": watts * seconds,
                "mesh": mesh,
                "cores": ncores,
                "partitions": k,
                "dtype": dtype,
                "schedule": schedule,
                "accelerator": spec.accelerator,
                "matmul_model": matmul_model,
                "memory_plan": point_plan,
            }
        )
        if progress is not None:
            progress(n + 1, len(grid))
    flags = pareto_flags([(r["seconds"], r["memory_bytes"], r["lut"]) for r in records])
    for record, flag in zip(records, flags, strict=True):
        record["pareto"] = flag
    return records


def write_csv(records: Sequence[dict[str, Any]], path: str | Path) -> None:
    """One row per point: the CSV_COLUMNS, then the cycles of each group."""
    groups = list(records[0]["groups"]) if records else []
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow([*CSV_COLUMNS, *(f"{g}_cycles" for g in groups)])
        for r in records:
            writer.writerow([r[c] for c in CSV_COLUMNS] + [r["groups"][g] for g in groups])


def _front(xs: Sequence[float], ys: Sequence[float]) -> list[int]:
    """Indices of the 2-D Pareto front (minimise both), sorted by x."""
    flags = pareto_flags(list(zip(xs, ys, strict=True)))
    return sorted((i for i, f in enumerate(flags) if f), key=lambda i: (xs[i], ys[i]))


def plot(records: Sequence[dict[str, Any]], path: str | Path) -> None:
    """Three panels: latency vs memory, latency vs LUTs (fronts drawn), latency vs K per design."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ms = [r["seconds"] * 1e3 for r in records]
    mem = [r["memory_bytes"] / 2**20 for r in records]
    lut = [r["lut"] / 1e3 for r in records]
    pareto = [r["pareto"] for r in records]
    fig, axes = plt.subplots(1, 3, figsize=(17, 5.2))
    for ax, xs, label in ((axes[0], mem, "memory (MiB)"), (axes[1], lut, "LUTs (thousands)")):
        ax.scatter(xs, ms, s=14, c="0.7", label="design point")
        ax.scatter(
            [x for x, p in zip(xs, pareto, strict=True) if p],
            [y for y, p in zip(ms, pareto, strict=True) if p],
            s=30,
            facecolors="none",
            edgecolors="tab:red",
            label="Pareto-optimal (latency, memory, LUTs)",
        )
        front = _front(xs, ms)
        ax.plot(
            [xs[i] for i in front],
            [ms[i] for i in front],
            "-",
            c="tab:red",
            lw=1.2,
            label="2-D front",
        )
        ax.set_xlabel(label)
        ax.set_ylabel("latency per training pass (ms)")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_xscale("log")
    axes[0].set_title("latency vs memory")
    axes[1].set_title("latency vs LUTs")
    designs: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        label = f"{r['mesh']}x{r['mesh']}-{r['cores']}" if r["accelerator"] else f"cpu-{r['cores']}"
        designs.setdefault(f"{label} {r['dtype']} {r['schedule']}", []).append(r)
    ax = axes[2]
    for label, rows in designs.items():
        rows = sorted(rows, key=lambda r: r["partitions"])
        ax.plot(
            [r["partitions"] for r in rows],
            [r["seconds"] * 1e3 for r in rows],
            "o-",
            ms=3,
            lw=1,
            label=label,
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("partitions K")
    ax.set_ylabel("latency per training pass (ms)")
    ax.set_title("latency vs K per design")
    ax.grid(alpha=0.3)
    if len(designs) <= 24:
        ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
