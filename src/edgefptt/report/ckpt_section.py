"""Section: FPTT against checkpointed BPTT (and truncated BPTT) at equal memory.

Two views of the same question, both with the device's training arena on the x axis:

- **Latency (modelled)**: the paper network (paper-smnist: I = 1, H = 128, C = 10, B = 4,
  T = 784) in bf16 on the seed paper's SoC (gemmini-bf16: a 4x4 BF16 Gemmini, one Rocket core,
  500 MHz), costed by the calibrated hardware model. FPTT over K is the exact schedule with the
  lifetime plan (:func:`edgefptt.plan.budget.arena_bytes`, :func:`~edgefptt.plan.budget.
  pass_cycles`); checkpointed BPTT over S is the checkpoint schedule
  (:func:`~edgefptt.plan.budget.checkpoint_arena_bytes`, :func:`~edgefptt.plan.budget.
  checkpoint_pass_cycles`).
- **Accuracy (measured)**: host runs on pixel digits (T = 64) with the report's training
  settings; the x axis is the arena the same schedule would need on the device for that run's
  network (fp32, the host's arithmetic; batch as trained). bptt, tbptt and fptt come from the
  training section (not run twice); this section trains bptt-ckpt only.

Truncated BPTT has no device workload of its own. It is placed as the exact schedule (same K
partitions, same truncated per-partition gradients, same kernels and activations) with the FPTT
update replaced by the checkpoint schedule's plain SGD step (``bias_grad`` row by row, then
``zero`` on the gradients), and without W_bar and lambda:

- arena: the lifetime plan puts the persistent buffers back to back below every partition
  buffer, so dropping W_bar and lambda (2P elements) lowers the arena by exactly 2P*e bytes and
  moves nothing else: ``M_tbptt(K) = M_fptt(K) - 2*P*e``;
- latency: the model costs kernels one by one and every partition ends with one update, so
  ``C_tbptt(K) = C_fptt(K) - K * (U_fptt - U_sgd)``, U the cycles of one update.

tests/test_report_ckpt.py checks both against a TBPTT workload built kernel by kernel.

Points: K over divisors of T = 784 from 1 to T; S from 1 up to S_min, the count with the
smallest arena (about sqrt(5.5 T), docs/workload.md). Along each series the arena falls
strictly; beyond S_min checkpointing needs more memory *and* more time, so those S are left out.
"""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache
from typing import Any

from edgefptt.config import DTYPE_BYTES, NetworkSpec, RunSpec, make_specs
from edgefptt.plan.budget import (
    BUDGET_PLANS,
    arena_bytes,
    checkpoint_arena_bytes,
    checkpoint_pass_cycles,
    pass_cycles,
    soc_for,
)
from edgefptt.report.plots import MIB, new_figure, plain_log_x, plain_log_y, save
from edgefptt.report.section import Figure, Rendered, ReportContext, Table

DTYPE = "bf16"  # the seed paper's SoC computes in BF16
SOC_NAME = "gemmini-bf16"
PAPER_KS = (1, 2, 4, 7, 14, 28, 56, 112, 196, 392, 784)
PAPER_SEGMENTS = (1, 2, 4, 7, 14, 28)  # and S_min
DIGITS_DTYPE = "fp32"  # the host trains in fp32
FULL_HOST_SEGMENTS = (2, 8, 32)
ALGORITHMS = ("fptt", "tbptt", "bptt-ckpt")
STYLE = {"fptt": "o-", "tbptt": "s-", "bptt-ckpt": "^-"}
OFFSET = {"fptt": (3, 3), "tbptt": (3, -9), "bptt-ckpt": (3, 3)}  # labels of near points apart
LABEL = {"fptt": "FPTT over K", "tbptt": "TBPTT over K", "bptt-ckpt": "checkpointed BPTT over S"}


# ---------------------------------------------------------------------------- device model


def _phase_cycles(workload: Any, phase: str, soc: Any) -> float:
    """Modelled cycles of the first partition's kernels of ``phase`` in ``workload``."""
    from edgefptt.hw import group_cycles, summarize

    kernels = [k for k in workload.kernels if k.phase == phase and k.partition == 0]
    return float(sum(group_cycles(summarize(replace(workload, kernels=kernels)), soc).values()))


@lru_cache(maxsize=16)
def update_cycles(net: NetworkSpec, dtype: str) -> dict[str, float]:
    """Cycles of one FPTT update (four ``fptt_sgd``) and of one plain SGD step (the checkpoint
    schedule's update), on the default SoC of ``dtype``; neither depends on L or K."""
    from edgefptt.workload import build_exact
    from edgefptt.workload.checkpoint import build_checkpoint

    soc = soc_for(dtype)
    one = {"batch_size": 1, "seq_len": 1, "dtype": dtype}
    fptt = build_exact(net, RunSpec(partitions=1, schedule="exact", **one))  # type: ignore[arg-type]
    sgd = build_checkpoint(net, RunSpec(segments=1, schedule="checkpoint", **one))  # type: ignore[arg-type]
    return {"fptt": _phase_cycles(fptt, "update", soc), "sgd": _phase_cycles(sgd, "update", soc)}


def fptt_state_bytes(net: NetworkSpec, dtype: str) -> int:
    """W_bar and lambda of every parameter: 2P elements."""
    return 2 * net.num_params * DTYPE_BYTES[dtype]


def tbptt_arena_bytes(net: NetworkSpec, run: RunSpec, plan: str) -> int:
    """The exact schedule's arena (``plan``) without the FPTT state: M_fptt(K) - 2Pe."""
    return arena_bytes(net, run, plan) - fptt_state_bytes(net, run.dtype)


def tbptt_pass_cycles(net: NetworkSpec, run: RunSpec, plan: str) -> float:
    """Cycles of a TBPTT pass on the default SoC of ``run.dtype``:
    C_fptt(K) - K (U_fptt - U_sgd)."""
    updates = update_cycles(net, run.dtype)
    return pass_cycles(net, run, plan) - run.partitions * (updates["fptt"] - updates["sgd"])


def _kth(run: RunSpec, k: int) -> RunSpec:
    return run.model_copy(update={"schedule": "exact", "partitions": k, "segments": None})


def _sth(run: RunSpec, s: int) -> RunSpec:
    return run.model_copy(update={"schedule": "checkpoint", "partitions": 1, "segments": s})


def smallest_arena_segments(net: NetworkSpec, run: RunSpec) -> int:
    """S_min: the segment count whose checkpoint arena is smallest (the fewest on ties)."""
    return min(
        range(1, run.seq_len + 1), key=lambda s: (checkpoint_arena_bytes(net, _sth(run, s)), s)
    )


def device_point(net: NetworkSpec, run: RunSpec, algorithm: str, count: int) -> dict[str, Any]:
    """Arena bytes and modelled cycles of one schedule (lifetime plan) on the dtype's SoC."""
    if algorithm == "bptt-ckpt":
        s_run = _sth(run, count)
        return {
            "algorithm": algorithm,
            "count": count,
            "max_len": s_run.max_segment_len,
            "arena_bytes": checkpoint_arena_bytes(net, s_run),
            "cycles": checkpoint_pass_cycles(net, s_run, soc_for(run.dtype)),
        }
    k_run = _kth(run, count)
    arena, cycles = (
        (arena_bytes(net, k_run, "lifetime"), pass_cycles(net, k_run, "lifetime"))
        if algorithm == "fptt"
        else (tbptt_arena_bytes(net, k_run, "lifetime"), tbptt_pass_cycles(net, k_run, "lifetime"))
    )
    return {
        "algorithm": algorithm,
        "count": count,
        "max_len": k_run.max_partition_len,
        "arena_bytes": arena,
        "cycles": cycles,
    }


@lru_cache(maxsize=64)
def _options(
    net: NetworkSpec, run: RunSpec, algorithm: str
) -> tuple[tuple[float, int, int, str], ...]:
    """(cycles, arena, K, plan) of FPTT or TBPTT for every K of 1..T and both plans."""
    options = []
    for plan in BUDGET_PLANS:
        for k in range(1, run.seq_len + 1):
            k_run = _kth(run, k)
            if algorithm == "fptt":
                arena, cycles = arena_bytes(net, k_run, plan), pass_cycles(net, k_run, plan)
            else:
                arena = tbptt_arena_bytes(net, k_run, plan)
                cycles = tbptt_pass_cycles(net, k_run, plan)
            options.append((cycles, arena, k, plan))
    return tuple(options)


def fastest_within(
    net: NetworkSpec, run: RunSpec, algorithm: str, budget: int
) -> dict[str, Any] | None:
    """The fastest K (1..T) and plan (lifetime, recompute) of FPTT or TBPTT whose arena fits
    ``budget``; ties go to fewer bytes, then the smaller K (the planner's order)."""
    fitting = [o for o in _options(net, run, algorithm) if o[1] <= budget]
    if not fitting:
        return None
    cycles, arena, k, plan = min(fitting, key=lambda o: (o[0], o[1], o[2]))
    return {"partitions": k, "plan": plan, "arena_bytes": arena, "cycles": cycles}


def paper_device(progress: Any = lambda message, fraction: None) -> dict[str, Any]:
    """Every modelled number of the section for the paper network."""
    net, run = make_specs("paper-smnist", schedule="exact", dtype=DTYPE)
    soc = soc_for(DTYPE)
    s_min = smallest_arena_segments(net, run)
    segments = sorted({s for s in PAPER_SEGMENTS if s < s_min} | {s_min})
    plan = [(a, k) for a in ("fptt", "tbptt") for k in PAPER_KS if k <= run.seq_len]
    plan += [("bptt-ckpt", s) for s in segments]
    points = []
    for n, (algorithm, count) in enumerate(plan):
        progress(f"device model: {algorithm} {count}", n / (len(plan) + len(segments)))
        point = device_point(net, run, algorithm, count)
        point["seconds"] = point["cycles"] / soc.clock_hz
        points.append(point)
    equal = []
    for n, s in enumerate(segments[1:]):
        progress(f"equal memory: S={s}", (len(plan) + n) / (len(plan) + len(segments)))
        ckpt = next(p for p in points if p["algorithm"] == "bptt-ckpt" and p["count"] == s)
        budget = ckpt["arena_bytes"]
        equal.append(
            {
                "budget_bytes": budget,
                "bptt-ckpt": {"segments": s, "cycles": ckpt["cycles"]},
                "fptt": fastest_within(net, run, "fptt", budget),
                "tbptt": fastest_within(net, run, "tbptt", budget),
            }
        )
    updates = update_cycles(net, DTYPE)
    return {
        "network": net.model_dump(),
        "batch": run.batch_size,
        "seq_len": run.seq_len,
        "dtype": DTYPE,
        "soc": SOC_NAME,
        "clock_hz": soc.clock_hz,
        "params": net.num_params,
        "fptt_state_bytes": fptt_state_bytes(net, DTYPE),
        "update_cycles": updates,
        "segments_min_arena": s_min,
        "points": points,
        "equal_memory": equal,
    }


# ---------------------------------------------------------------------------- host runs


def host_segments(settings: dict[str, Any], seq_len: int) -> list[int]:
    """S of the measured bptt-ckpt runs: round(sqrt T) in a quick report, a spread otherwise."""
    from edgefptt.config import default_segments

    if settings.get("quick", True):
        return [default_segments(seq_len)]
    return [s for s in FULL_HOST_SEGMENTS if s <= seq_len]


def digits_arenas(
    input_size: int,
    classes: int,
    hidden: int,
    batch: int,
    seq_len: int,
    ks: list[int],
    ss: list[int],
) -> list[dict[str, Any]]:
    """Device arenas (fp32, lifetime) of the digits runs' network for every plotted schedule."""
    net = NetworkSpec(input_size=input_size, hidden_size=hidden, num_classes=classes)
    run = RunSpec(batch_size=batch, seq_len=seq_len, dtype=DIGITS_DTYPE, schedule="exact")  # type: ignore[arg-type]
    rows = [
        {"algorithm": "bptt", "count": 1, "arena_bytes": tbptt_arena_bytes(net, run, "lifetime")}
    ]
    for k in sorted({k for k in ks if k <= seq_len}):
        k_run = _kth(run, k)
        rows.append(
            {"algorithm": "fptt", "count": k, "arena_bytes": arena_bytes(net, k_run, "lifetime")}
        )
        rows.append(
            {
                "algorithm": "tbptt",
                "count": k,
                "arena_bytes": tbptt_arena_bytes(net, k_run, "lifetime"),
            }
        )
    for s in ss:
        rows.append(
            {
                "algorithm": "bptt-ckpt",
                "count": s,
                "arena_bytes": checkpoint_arena_bytes(net, _sth(run, s)),
            }
        )
    return rows


def compute(ctx: ReportContext) -> dict[str, Any]:
    from edgefptt.data import load_dataset
    from edgefptt.train.config import make_config
    from edgefptt.train.loop import fit

    s = ctx.settings
    paper = paper_device(lambda message, fraction: ctx.progress(message, 0.3 * fraction))
    data = load_dataset("digits", limit=s.get("train_limit"))
    segments = host_segments(s, data.seq_len)
    common = {"epochs": s["train_epochs"], "hidden": s["hidden"], "limit": s.get("train_limit")}
    runs = []
    for n, count in enumerate(segments):
        ctx.progress(f"digits bptt-ckpt S={count}", 0.3 + 0.7 * n / len(segments))
        config = make_config(dataset="digits", algorithm="bptt-ckpt", segments=count, **common)
        result = fit(config, data)
        runs.append(
            {
                "algorithm": "bptt-ckpt",
                "count": count,
                "test_accuracy": result.final_test_accuracy,
                "peak_activation_bytes": result.peak_activation_bytes,
                "epoch_wall_s": sum(r["wall_s"] for r in result.history) / len(result.history),
            }
        )
    batch = min(make_config(dataset="digits", **common).batch_size, len(data.train_y))
    ks = [1, *s["train_ks"]]
    return {
        "settings": {k: s.get(k) for k in ("train_epochs", "train_ks", "hidden", "train_limit")},
        "paper": paper,
        "digits": {
            "name": data.name,
            "seq_len": data.seq_len,
            "batch": batch,
            "dtype": DIGITS_DTYPE,
            "arenas": digits_arenas(
                data.input_size, data.num_outputs, s["hidden"], batch, data.seq_len, ks, segments
            ),
            "runs": runs,
        },
    }


# ---------------------------------------------------------------------------- rendering


def _count_name(algorithm: str) -> str:
    return "S" if algorithm == "bptt-ckpt" else "K"


def _host_runs(results: dict[str, Any], ctx: ReportContext) -> tuple[list[dict[str, Any]], bool]:
    """Measured digits runs: this section's bptt-ckpt and the training section's others."""
    digits = results["digits"]
    arena = {(a["algorithm"], a["count"]): a["arena_bytes"] for a in digits["arenas"]}
    runs = [{**r, "source": "this section"} for r in digits["runs"]]
    training = (ctx.shared.get("training") or {}).get(digits["name"])
    settings = (ctx.shared.get("training") or {}).get("settings", {})
    same = all(settings.get(k) == results["settings"][k] for k in ("train_epochs", "hidden"))
    if training and same:
        for r in training["runs"]:
            runs.append(
                {
                    "algorithm": r["algorithm"],
                    "count": r["partitions"],
                    "test_accuracy": r["test_accuracy"],
                    "peak_activation_bytes": r["peak_activation_bytes"],
                    "epoch_wall_s": r["epoch_wall_s"],
                    "source": "training section",
                }
            )
    for r in runs:
        r["arena_bytes"] = arena.get((r["algorithm"], r["count"]))
    return [r for r in runs if r["arena_bytes"] is not None], bool(training and same)


def _equal_memory_summary(rows: list[dict[str, Any]]) -> str:
    """Which of FPTT and checkpointed BPTT is faster at each budget, and where TBPTT stands."""

    def listed(counts: list[int]) -> str:
        return ", ".join(str(c) for c in counts) or "none"

    fptt_wins = [
        r["bptt-ckpt"]["segments"]
        for r in rows
        if r["fptt"] and r["fptt"]["cycles"] < r["bptt-ckpt"]["cycles"]
    ]
    ckpt_wins = [
        r["bptt-ckpt"]["segments"]
        for r in rows
        if r["fptt"] and r["fptt"]["cycles"] >= r["bptt-ckpt"]["cycles"]
    ]
    no_fptt = [r["bptt-ckpt"]["segments"] for r in rows if not r["fptt"]]
    tbptt_best = [
        r["bptt-ckpt"]["segments"]
        for r in rows
        if r["tbptt"]
        and r["tbptt"]["cycles"]
        <= min(r["bptt-ckpt"]["cycles"], r["fptt"]["cycles"] if r["fptt"] else 1e300)
    ]
    text = (
        f"On this model FPTT is faster than checkpointed BPTT within the arena of S = "
        f"{listed(fptt_wins)} and slower within that of S = {listed(ckpt_wins)}"
    )
    if no_fptt:
        text += f"; within that of S = {listed(no_fptt)} no FPTT K fits at all"
    return text + (
        f". TBPTT is the fastest within the arena of S = {listed(tbptt_best)} ({len(tbptt_best)} "
        f"of {len(rows)}): it recomputes nothing and its update is plain SGD, but its gradient "
        "is truncated at every partition, which only the accuracy panel can weigh."
    )


def render(results: dict[str, Any], ctx: ReportContext) -> Rendered:
    paper, digits = results["paper"], results["digits"]
    points = paper["points"]
    series = {a: [p for p in points if p["algorithm"] == a] for a in ALGORITHMS}
    bptt = next(p for p in series["tbptt"] if p["count"] == 1)
    ckpt1 = next(p for p in series["bptt-ckpt"] if p["count"] == 1)
    runs, have_training = _host_runs(results, ctx)

    fig, (lat_ax, acc_ax) = new_figure(2, height=4.5)
    for algorithm in ALGORITHMS:
        mine = series[algorithm]
        xs = [p["arena_bytes"] / MIB for p in mine]
        lat_ax.plot(
            xs, [p["seconds"] for p in mine], STYLE[algorithm], ms=4, label=LABEL[algorithm]
        )
        for p, x in zip(mine, xs, strict=True):
            lat_ax.annotate(
                f"{_count_name(algorithm)}={p['count']}",
                (x, p["seconds"]),
                fontsize=6,
                xytext=OFFSET[algorithm],
                textcoords="offset points",
            )
    lat_ax.plot(bptt["arena_bytes"] / MIB, bptt["seconds"], "k*", ms=12, label="BPTT (TBPTT K=1)")
    plain_log_x(lat_ax)
    plain_log_y(lat_ax)
    lat_ax.set_xlabel(f"device training arena (MiB, {paper['dtype']}, lifetime plan)")
    lat_ax.set_ylabel("modelled latency per training pass (s)")
    lat_ax.set_title(f"paper network (T = {paper['seq_len']}), {paper['soc']} at 500 MHz")
    for algorithm in ("fptt", "tbptt", "bptt-ckpt"):
        mine = sorted((r for r in runs if r["algorithm"] == algorithm), key=lambda r: r["count"])
        if mine:
            acc_ax.plot(
                [r["arena_bytes"] / 1024 for r in mine],
                [100 * r["test_accuracy"] for r in mine],
                STYLE[algorithm],
                ms=5,
                label=LABEL[algorithm] + " (measured)",
            )
            for r in mine:
                acc_ax.annotate(
                    f"{_count_name(algorithm)}={r['count']}",
                    (r["arena_bytes"] / 1024, 100 * r["test_accuracy"]),
                    fontsize=6,
                    xytext=OFFSET[algorithm],
                    textcoords="offset points",
                )
    for r in runs:
        if r["algorithm"] == "bptt":
            acc_ax.plot(
                r["arena_bytes"] / 1024,
                100 * r["test_accuracy"],
                "k*",
                ms=12,
                label="BPTT (measured)",
            )
    plain_log_x(acc_ax)
    acc_ax.set_xlabel(f"device training arena of the digits network (KiB, {digits['dtype']})")
    acc_ax.set_ylabel("test accuracy on digits (%)")
    acc_ax.set_title(f"host runs on pixel digits (T = {digits['seq_len']})")
    for ax in (lat_ax, acc_ax):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    save(fig, ctx.figures_dir / "ckpt_equal_memory.png")

    device_rows = []
    for p in points:
        device_rows.append(
            [
                p["algorithm"],
                f"{_count_name(p['algorithm'])}={p['count']}",
                str(p["max_len"]),
                f"{p['arena_bytes']:,}",
                f"{bptt['arena_bytes'] / p['arena_bytes']:.2f}x",
                f"{p['cycles']:,.0f}",
                f"{p['seconds']:.3f}",
                f"{p['cycles'] / bptt['cycles']:.3f}x",
            ]
        )
    equal_rows = []
    for e in paper["equal_memory"]:
        cells = [f"{e['budget_bytes']:,}"]
        ck = e["bptt-ckpt"]
        cells.append(f"S={ck['segments']}: {ck['cycles'] / paper['clock_hz']:.3f} s")
        timings = {"bptt-ckpt": ck["cycles"]}
        for algorithm in ("fptt", "tbptt"):
            best = e[algorithm]
            if best is None:
                cells.append("does not fit")
                continue
            timings[algorithm] = best["cycles"]
            cells.append(
                f"K={best['partitions']} {best['plan']}, {best['arena_bytes']:,} B: "
                f"{best['cycles'] / paper['clock_hz']:.3f} s"
            )
        cells.append(min(timings, key=lambda a: timings[a]))
        equal_rows.append(cells)
    host_rows = [
        [
            r["algorithm"],
            f"{_count_name(r['algorithm'])}={r['count']}",
            f"{r['arena_bytes']:,}",
            f"{100 * r['test_accuracy']:.2f}%",
            f"{r['peak_activation_bytes']:,}",
            f"{r['epoch_wall_s']:.2f}",
            r["source"],
        ]
        for r in sorted(
            runs, key=lambda r: (("bptt", *ALGORITHMS).index(r["algorithm"]), r["count"])
        )
    ]
    updates = paper["update_cycles"]
    settings = results["settings"]
    ckpt_runs = [r for r in runs if r["algorithm"] == "bptt-ckpt"]
    bptt_runs = [r for r in runs if r["algorithm"] == "bptt"]
    if ckpt_runs and bptt_runs:
        spread = max(abs(r["test_accuracy"] - bptt_runs[0]["test_accuracy"]) for r in ckpt_runs)
        exactness = (
            f"Measured here, bptt-ckpt ends within {100 * spread:.2f} accuracy points of bptt: "
            "its gradient is bptt's up to float32 rounding (summation order), which a few epochs "
            "of training can amplify into a small difference, not a systematic one."
        )
    else:
        exactness = ""
    missing = (
        ""
        if have_training
        else " The training section's results are missing (it failed or ran with other "
        "settings), so only this section's bptt-ckpt runs are shown on the accuracy panel."
    )
    e = DTYPE_BYTES[paper["dtype"]]
    return Rendered(
        source="modelled (memory planner, calibrated hardware model) for latency; measured here "
        "(host training on this machine's CPU) for accuracy",
        commands=[
            "edgefptt memory --preset paper-smnist --dtype bf16 --budget BYTES --compare",
            "edgefptt estimate --preset paper-smnist --dtype bf16 --schedule checkpoint "
            "--segments S",
            "edgefptt train --dataset digits --algorithm bptt-ckpt --segments S --json",
            "python benchmarks/checkpointed_bptt.py",
        ],
        paragraphs=[
            "Checkpointed BPTT keeps the exact BPTT gradient and stores only the (h, c) each of "
            "S segments starts from, recomputing each segment in the backward pass; FPTT and "
            "truncated BPTT keep one partition of K instead and change the gradient. Left: the "
            f"paper network (B = {paper['batch']}, T = {paper['seq_len']}, {paper['dtype']}), "
            "arena from the memory planner (lifetime plan) and latency of one training pass "
            f"from the calibrated hardware model on {paper['soc']}, the seed paper's SoC; "
            f"nothing on this panel is measured. S runs from 1 to S_min = "
            f"{paper['segments_min_arena']}, the count with the smallest arena; more segments "
            "cost both memory and time.",
            "Truncated BPTT has no device workload of its own; it is placed as the exact "
            "schedule (the same K partitions, truncated gradients, kernels and activations as "
            "FPTT) with the FPTT update replaced by the checkpoint schedule's plain SGD step and "
            "without W_bar and lambda. The lifetime plan puts persistent buffers back to back "
            "below every partition buffer, so its arena is FPTT's minus exactly 2Pe = "
            f"2 x {paper['params']:,} x {e} = {paper['fptt_state_bytes']:,} bytes at every K; "
            "the hardware model costs kernels one by one and every partition ends with one "
            "update, so its cycles are FPTT's minus K x (U_FPTT - U_SGD), with U_FPTT = "
            f"{updates['fptt']:,.0f} cycles (fptt_sgd over P weights) and U_SGD = "
            f"{updates['sgd']:,.0f} cycles (row-wise SGD and zeroing, costed like the "
            "bias-gradient loop it is written with; both per-element constants are fitted on "
            "FireSim, the SGD one on a different loop). At K = 1 this is BPTT "
            f"and meets the checkpoint schedule at S = 1: arenas {bptt['arena_bytes']:,} and "
            f"{ckpt1['arena_bytes']:,} bytes, cycles {bptt['cycles']:,.0f} and "
            f"{ckpt1['cycles']:,.0f}.",
            "At equal memory: for the arena of each checkpointed S, the fastest FPTT and TBPTT "
            "over every K = 1..T and both plans of the exact schedule (lifetime, recompute) "
            "that fit in it, as edgefptt memory --budget B --compare picks them. "
            + _equal_memory_summary(paper["equal_memory"]),
            "Right: accuracy measured on pixel digits with the report's training settings "
            f"(epochs: {settings['train_epochs']}, LSTM {settings['hidden']}, Adam, host recipe), "
            "against the arena the same schedule needs on the device for that network (fp32, "
            f"batch {digits['batch']}, T = {digits['seq_len']}): modelled memory, measured "
            "accuracy. bptt, tbptt and fptt are the training section's runs; bptt-ckpt is "
            f"trained here at S = {', '.join(str(r['count']) for r in ckpt_runs) or '-'}. "
            + exactness
            + missing,
        ],
        tables=[
            Table(
                f"Paper network on {paper['soc']} (modelled): arena and latency per training "
                "pass, against BPTT (TBPTT K = 1)",
                [
                    "algorithm",
                    "K or S",
                    "longest L",
                    "arena (B)",
                    "BPTT arena / arena",
                    "cycles",
                    "seconds",
                    "latency vs BPTT",
                ],
                device_rows,
            ),
            Table(
                "At equal memory (modelled): the fastest of each within a checkpointed arena",
                [
                    "arena budget (B)",
                    "checkpointed BPTT",
                    "fastest FPTT",
                    "fastest TBPTT",
                    "fastest",
                ],
                equal_rows,
            ),
            Table(
                f"Digits (measured accuracy) at the device arena of each schedule "
                f"({digits['dtype']}, modelled)",
                [
                    "algorithm",
                    "K or S",
                    "device arena (B)",
                    "test accuracy",
                    "host peak activation (B)",
                    "s/epoch",
                    "run",
                ],
                host_rows,
            ),
        ],
        figures=[
            Figure(
                "figures/ckpt_equal_memory.png",
                "Left: modelled latency of one training pass against the device arena, paper "
                "network on the seed paper's SoC. Right: measured test accuracy on digits "
                "against the device arena of the same schedule for the digits network.",
            )
        ],
    )
