"""Fit the generated C learner into a RAM budget: pick K, the arena plan and the element type.

The learner `edgefptt export-c` generates holds three things in RAM:

- the arena: the lifetime-planned arena of the exact schedule, with the ``lifetime`` plan (every
  step's gates kept for backward) or the ``recompute`` plan (only [x, h] and c kept per step);
- one batch of inputs: B*T*I*e bytes of samples plus 4*B bytes of int32 labels;
- the state image (docs/learner.md): 140 + 3*P*e bytes for one LSTM layer; for other networks
  the layer list and every parameter once, W_bar and lambda of the trainable ones.

e is the element size (4 for fp32, 2 for bf16). :func:`choose` returns the partition count K,
plan and dtype whose total fits a byte budget and whose modelled latency per training pass is
smallest (ties: fewer bytes, then fp32, then the lifetime plan, then the smaller K).

Two shortcuts keep a search over every K of a long sequence cheap (the paper's T = 784 in a
second or two), both checked against the full workload in tests/test_budget.py:

- The arena depends on K only through L = ceil(T/K), the longest partition: it equals the arena
  of a one-partition pass of L steps (same persistent buffers, partition buffers sized by L).
- The kernels of one partition depend only on its length, so the cost of a K-partition pass is
  the sum of the costs of one-partition passes of its partition lengths (T mod K of length
  ceil(T/K), the rest floor(T/K)). A pass is costed from a handful of short workloads.

Latency comes from the hardware model (:mod:`edgefptt.hw`, calibrated Gemmini + Rocket): the
default SoC of each element type (gemmini-fp32 or gemmini-bf16: a 4x4 mesh, one core, 500 MHz),
costing the exact schedule's kernels *of the plan*. ``hw.estimate`` costs the recompute plan
with the lifetime plan's kernels (it takes the plan for memory only), so the costing here
summarises the recompute workload itself and calls :func:`edgefptt.hw.group_cycles` on it;
the recomputed gate matmuls are therefore counted.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

from edgefptt.config import DTYPE_BYTES, NetworkSpec, RunSpec
from edgefptt.errors import ConfigError
from edgefptt.learn.layout import network_image_bytes
from edgefptt.plan.memory import lifetime_plan
from edgefptt.workload import build_exact
from edgefptt.workload.kernels import Workload

BUDGET_PLANS = ("lifetime", "recompute")
BUDGET_DTYPES = ("fp32", "bf16")
LATENCY_UNIT = "cycles"
LATENCY_SOURCE = (
    "hardware model (edgefptt.hw, calibrated): one training pass of the exact schedule with the "
    "plan's own kernels, on the default SoC of the dtype (gemmini-fp32 or gemmini-bf16: 4x4 "
    "mesh, 1 Rocket core, 500 MHz)"
)

# Size suffixes: decimal (SI) multiples, and binary ones spelled with an i.
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "m": 1000**2,
    "mb": 1000**2,
    "g": 1000**3,
    "gb": 1000**3,
    "ki": 1024,
    "kib": 1024,
    "mi": 1024**2,
    "mib": 1024**2,
    "gi": 1024**3,
    "gib": 1024**3,
}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([a-z]*)\s*$", re.IGNORECASE)
BYTES_HELP = (
    "Plain bytes or a number with a suffix: K/KB = 1000, M/MB = 1000^2, G/GB = 1000^3; "
    "KiB, MiB, GiB = powers of 1024 (e.g. 580KB, 1.5MB, 512KiB)."
)


class BudgetError(ConfigError):
    """No choice of K, plan and dtype fits the memory budget (the message gives the minimum)."""


def parse_bytes(text: str | int) -> int:
    """A byte count from '580000', '580KB', '1.5MB', '512KiB' (K = 1000, Ki = 1024).

    Suffixes are case-insensitive. A fractional result is rounded down (a budget is a ceiling).
    Raises ConfigError on anything else, and on a count below one byte.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        value = text
    else:
        match = _SIZE.match(str(text))
        unit = match.group(2).lower() if match else None
        if match is None or unit not in _UNITS:
            raise ConfigError(
                f"cannot read {text!r} as a byte count; give e.g. 600000, 580KB, 1.5MB or 512KiB "
                "(K = 1000, KiB = 1024)"
            )
        try:
            value = int(Decimal(match.group(1)) * _UNITS[unit])
        except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
            raise ConfigError(f"cannot read {text!r} as a byte count") from None
    if value < 1:
        raise ConfigError(f"a memory budget must be at least 1 byte (got {text!r})")
    return value


def dtype_choices(option: str | None, default: str = "fp32") -> tuple[str, ...]:
    """The dtypes a --dtype option allows: ``auto`` both, None the default, else that one."""
    if option is None:
        return (default,)
    if option == "auto":
        return BUDGET_DTYPES
    if option not in BUDGET_DTYPES:
        raise ConfigError(f"unknown dtype {option!r}; choose from auto, {', '.join(BUDGET_DTYPES)}")
    return (option,)


def state_bytes(net: NetworkSpec, dtype: str) -> int:
    """Size of the learner's state image: 140 + 3*P*e bytes for one LSTM layer (docs/learner.md;
    frozen tensors have no W_bar or lambda)."""
    _element_bytes(dtype)  # a clear error for an unknown dtype
    return network_image_bytes(net, dtype)


def batch_bytes(net: NetworkSpec, run: RunSpec, dtype: str) -> int:
    """One batch of inputs in RAM: B*T*I*e bytes of samples and 4*B bytes of int32 labels."""
    b = run.batch_size
    return b * run.seq_len * net.input_size * _element_bytes(dtype) + 4 * b


def arena_bytes(net: NetworkSpec, run: RunSpec, plan: str) -> int:
    """The exported arena (exact schedule, ``plan``) of ``run``'s K and dtype, from L alone.

    Equal to ``export_workload(net, run, plan)[1].total_bytes`` (tests/test_budget.py checks
    it), at the cost of a one-partition workload of L = ceil(T/K) steps.
    """
    _check_plan(plan)
    return _unit_arena(net, run.batch_size, run.max_partition_len, plan, run.dtype)


def pass_cycles(net: NetworkSpec, run: RunSpec, plan: str) -> float:
    """Modelled cycles of one training pass (exact schedule, ``plan``'s kernels).

    On the default SoC of ``run.dtype``; the sum over partition lengths of one-partition costs.
    """
    _check_plan(plan)
    base, extra = divmod(run.seq_len, run.partitions)
    cycles = (run.partitions - extra) * _unit_cycles(net, run.batch_size, base, plan, run.dtype)
    if extra:
        cycles += extra * _unit_cycles(net, run.batch_size, base + 1, plan, run.dtype)
    return cycles


def soc_for(dtype: str) -> Any:
    """The SoC a pass of ``dtype`` is costed on: the estimate command's default for it."""
    from edgefptt.hw import make_soc

    return make_soc(None, dtype=dtype)


@dataclass(frozen=True)
class Candidate:
    """One (K, plan, dtype): the fastest K among those with the same longest partition L."""

    partitions: int
    max_partition_len: int
    plan: str
    dtype: str
    arena_bytes: int
    batch_bytes: int
    state_bytes: int
    latency: float
    fits: bool

    @property
    def total_bytes(self) -> int:
        return self.arena_bytes + self.batch_bytes + self.state_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "partitions": self.partitions,
            "max_partition_len": self.max_partition_len,
            "plan": self.plan,
            "dtype": self.dtype,
            "arena_bytes": self.arena_bytes,
            "batch_bytes": self.batch_bytes,
            "state_bytes": self.state_bytes,
            "total_bytes": self.total_bytes,
            "latency": self.latency,
            "fits": self.fits,
        }


@dataclass
class BudgetChoice:
    """The chosen K, plan and dtype, what they need in RAM, and what else was considered.

    ``run`` is the chosen run (exact schedule, K and dtype set), ready for export-c. ``latency``
    is in ``latency_unit`` (cycles) on the SoC ``soc``; ``latency_seconds`` at its clock.
    ``candidates`` holds, per longest partition length L, plan and dtype, the fastest K.
    """

    network: NetworkSpec
    run: RunSpec
    plan: str
    arena_bytes: int
    batch_bytes: int
    state_bytes: int
    budget_bytes: int
    latency: float
    latency_seconds: float
    soc: str
    latency_unit: str = LATENCY_UNIT
    latency_source: str = LATENCY_SOURCE
    candidates: list[Candidate] = field(default_factory=list, repr=False)

    @property
    def partitions(self) -> int:
        return self.run.partitions

    @property
    def dtype(self) -> str:
        return self.run.dtype

    @property
    def total_bytes(self) -> int:
        return self.arena_bytes + self.batch_bytes + self.state_bytes

    @property
    def bytes_left(self) -> int:
        return self.budget_bytes - self.total_bytes

    def best_per_plan_dtype(self) -> list[Candidate]:
        """The fastest fitting candidate of each (plan, dtype) considered."""
        best: dict[tuple[str, str], Candidate] = {}
        for cand in self.candidates:
            key = (cand.plan, cand.dtype)
            if cand.fits and (key not in best or _rank(cand) < _rank(best[key])):
                best[key] = cand
        return [best[k] for k in sorted(best, key=lambda k: _rank(best[k]))]

    def to_dict(self, candidates: bool = True) -> dict[str, Any]:
        record: dict[str, Any] = {
            "partitions": self.partitions,
            "max_partition_len": self.run.max_partition_len,
            "plan": self.plan,
            "dtype": self.dtype,
            "schedule": self.run.schedule,
            "arena_bytes": self.arena_bytes,
            "batch_bytes": self.batch_bytes,
            "state_bytes": self.state_bytes,
            "total_bytes": self.total_bytes,
            "budget_bytes": self.budget_bytes,
            "bytes_left": self.bytes_left,
            "latency": self.latency,
            "latency_unit": self.latency_unit,
            "latency_seconds": self.latency_seconds,
            "latency_source": self.latency_source,
            "soc": self.soc,
        }
        if candidates:
            record["candidates"] = [c.to_dict() for c in self.candidates]
        return record


def choose(
    net: NetworkSpec,
    run: RunSpec,
    budget_bytes: int,
    dtypes: Sequence[str] = ("fp32",),
    plans: Sequence[str] = BUDGET_PLANS,
    partitions: Iterable[int] | None = None,
) -> BudgetChoice:
    """The fastest (K, plan, dtype) whose learner fits ``budget_bytes`` of RAM.

    ``run`` gives B, T and the FPTT hyper-parameters; its K, dtype and schedule are ignored
    (the learner runs the exact schedule). K ranges over 1..T, or over ``partitions`` when
    given; ``dtypes`` ("fp32", "bf16" or both) and ``plans`` (lifetime, recompute) restrict the
    other two choices. Latency: see the module docstring (hardware model, cycles). Ties go to
    fewer bytes, then fp32 over bf16, then lifetime over recompute, then the smaller K.

    Raises BudgetError (a ConfigError) when nothing fits; its message names the smallest total
    any allowed choice needs and that choice.
    """
    if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, int) or budget_bytes < 1:
        raise ConfigError(
            f"a memory budget must be a positive number of bytes (got {budget_bytes!r})"
        )
    dtypes = _distinct(dtypes, BUDGET_DTYPES, "dtype")
    plans = _distinct(plans, BUDGET_PLANS, "plan")
    t = run.seq_len
    if partitions is None:
        ks = list(range(1, t + 1))
    else:
        ks = sorted(set(partitions))
        bad = [k for k in ks if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= t]
        if bad or not ks:
            raise ConfigError(f"partitions K must be between 1 and T={t} (got {bad or 'none'})")
    base = run.model_copy(update={"schedule": "exact", "partitions": 1})
    candidates: list[Candidate] = []
    for dtype in dtypes:
        batch, state = batch_bytes(net, run, dtype), state_bytes(net, dtype)
        for plan in plans:
            fastest: dict[int, tuple[float, int]] = {}  # L -> (latency, K)
            for k in ks:
                length = -(-t // k)
                cycles = pass_cycles(
                    net, base.model_copy(update={"partitions": k, "dtype": dtype}), plan
                )
                if length not in fastest or (cycles, k) < fastest[length]:
                    fastest[length] = (cycles, k)
            for length, (cycles, k) in fastest.items():
                arena = _unit_arena(net, run.batch_size, length, plan, dtype)
                total = arena + batch + state
                candidates.append(
                    Candidate(
                        k, length, plan, dtype, arena, batch, state, cycles, total <= budget_bytes
                    )
                )
    candidates.sort(key=lambda c: (c.partitions, BUDGET_PLANS.index(c.plan), c.dtype != "fp32"))
    fitting = [c for c in candidates if c.fits]
    if not fitting:
        raise BudgetError(_too_small(budget_bytes, candidates, dtypes, plans, partitions, ks))
    best = min(fitting, key=_rank)
    chosen = RunSpec(
        **{
            **run.model_dump(),
            "schedule": "exact",
            "partitions": best.partitions,
            "dtype": best.dtype,
        }
    )
    soc = soc_for(best.dtype)
    return BudgetChoice(
        network=net,
        run=chosen,
        plan=best.plan,
        arena_bytes=best.arena_bytes,
        batch_bytes=best.batch_bytes,
        state_bytes=best.state_bytes,
        budget_bytes=budget_bytes,
        latency=best.latency,
        latency_seconds=best.latency / soc.clock_hz,
        soc=_soc_name(best.dtype),
        candidates=candidates,
    )


# ---------------------------------------------------------------------------- internals


def _rank(c: Candidate) -> tuple[float, int, int, int, int]:
    """Order of preference: latency, bytes, fp32 before bf16, lifetime before recompute, K."""
    return (
        c.latency,
        c.total_bytes,
        BUDGET_DTYPES.index(c.dtype),
        BUDGET_PLANS.index(c.plan),
        c.partitions,
    )


def _too_small(
    budget: int,
    candidates: list[Candidate],
    dtypes: Sequence[str],
    plans: Sequence[str],
    partitions: Iterable[int] | None,
    ks: list[int],
) -> str:
    least = min(candidates, key=lambda c: (c.total_bytes, *_rank(c)))
    limits = []
    if partitions is not None:
        limits.append(f"K={ks[0]}" if len(ks) == 1 else f"K in {ks}")
    if tuple(plans) != BUDGET_PLANS:
        limits.append(f"the {plans[0]} plan")
    if tuple(dtypes) == ("fp32",):
        limits.append("fp32 only (--dtype auto also tries bf16)")
    elif tuple(dtypes) != BUDGET_DTYPES:
        limits.append(f"{dtypes[0]} only")
    within = f" with {', '.join(limits)}" if limits else ""
    return (
        f"a memory budget of {budget:,} bytes is too small{within}: the learner needs at least "
        f"{least.total_bytes:,} bytes (K={least.partitions}, {least.plan}, {least.dtype}); raise "
        "the budget or shrink --hidden/--batch"
    )


def _distinct(values: Sequence[str], allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    values = tuple(dict.fromkeys(values))
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        raise ConfigError(
            f"unknown {what} {unknown[0] if unknown else '(none given)'!r}; choose from "
            f"{', '.join(allowed)}"
        )
    return tuple(v for v in allowed if v in values)


def _check_plan(plan: str) -> None:
    if plan not in BUDGET_PLANS:
        raise ConfigError(f"the learner's arena uses the lifetime or recompute plan (got {plan!r})")


def _element_bytes(dtype: str) -> int:
    if dtype not in BUDGET_DTYPES:
        raise ConfigError(f"unknown dtype {dtype!r}; choose from {', '.join(BUDGET_DTYPES)}")
    return DTYPE_BYTES[dtype]


def _soc_name(dtype: str) -> str:
    from edgefptt.hw.spec import default_soc_preset

    return default_soc_preset(dtype)


def _unit_run(batch: int, length: int, dtype: str) -> RunSpec:
    """A one-partition exact run of ``length`` steps (hyper-parameters do not change shapes)."""
    return RunSpec(batch_size=batch, seq_len=length, partitions=1, dtype=dtype, schedule="exact")  # type: ignore[arg-type]


def _retyped(workload: Workload, dtype: str) -> Workload:
    """The same workload with its arena buffers in ``dtype`` (kernels and views are unchanged)."""
    if workload.run.dtype == dtype:
        return workload
    old = workload.run.dtype
    buffers = {
        name: replace(buf, dtype=dtype) if buf.dtype == old else buf
        for name, buf in workload.buffers.items()
    }
    run = workload.run.model_copy(update={"dtype": dtype})
    return replace(workload, run=run, buffers=buffers)


@lru_cache(maxsize=4096)
def _unit(net: NetworkSpec, batch: int, length: int, plan: str) -> tuple[Any, dict[str, int]]:
    """One exact partition of ``length`` steps: its kernel summary and arena bytes per dtype.

    Built once in fp32; kernel shapes do not depend on the element type, and the bf16 arena is
    planned on the same kernels with the buffers retyped. Only the small results are cached.
    """
    from edgefptt.hw import summarize

    workload = build_exact(net, _unit_run(batch, length, "fp32"), recompute=plan == "recompute")
    arenas = {d: lifetime_plan(_retyped(workload, d), plan).total_bytes for d in BUDGET_DTYPES}
    return summarize(workload), arenas


def _unit_arena(net: NetworkSpec, batch: int, length: int, plan: str, dtype: str) -> int:
    return _unit(net, batch, length, plan)[1][dtype]


@lru_cache(maxsize=8192)
def _unit_cycles(net: NetworkSpec, batch: int, length: int, plan: str, dtype: str) -> float:
    from edgefptt.hw import group_cycles

    groups = group_cycles(_unit(net, batch, length, plan)[0], soc_for(dtype))
    return float(sum(groups.values()))


# ---------------------------------------------------------------------------- FPTT against
# checkpointed BPTT at one memory budget (`edgefptt memory --budget B --compare`)


@dataclass(frozen=True)
class ScheduleOption:
    """One way to train in the budget: FPTT with K partitions (exact schedule, a plan) or
    checkpointed BPTT with S segments; L is the longest partition or segment."""

    schedule: str  # "fptt" or "checkpoint"
    plan: str
    count: int  # K or S
    max_len: int
    arena_bytes: int
    latency: float | None  # cycles of one training pass (checkpoint: None unless it fits)
    fits: bool

    def to_dict(self, clock_hz: float) -> dict[str, Any]:
        return {
            "schedule": self.schedule,
            "plan": self.plan,
            "partitions" if self.schedule == "fptt" else "segments": self.count,
            "max_len": self.max_len,
            "arena_bytes": self.arena_bytes,
            "latency": self.latency,
            "latency_seconds": None if self.latency is None else self.latency / clock_hz,
            "fits": self.fits,
        }


@dataclass
class Comparison:
    """The fastest FPTT K and the fastest checkpoint S whose arena fits ``budget_bytes``.

    ``fptt`` / ``checkpoint`` are None when nothing of that kind fits; ``least`` then names
    the smallest arena of each kind. Latency: cycles on ``soc`` (the hardware model).
    """

    budget_bytes: int
    dtype: str
    soc: str
    clock_hz: float
    fptt: ScheduleOption | None
    checkpoint: ScheduleOption | None
    least: dict[str, ScheduleOption]
    options: list[ScheduleOption] = field(default_factory=list, repr=False)

    def to_dict(self, options: bool = False) -> dict[str, Any]:
        record: dict[str, Any] = {
            "budget_bytes": self.budget_bytes,
            "dtype": self.dtype,
            "soc": self.soc,
            "clock_hz": self.clock_hz,
            "latency_unit": LATENCY_UNIT,
            "counted": "the training pass's arena (memory plan); inputs and state image excluded",
            "fptt": None if self.fptt is None else self.fptt.to_dict(self.clock_hz),
            "checkpoint": (
                None if self.checkpoint is None else self.checkpoint.to_dict(self.clock_hz)
            ),
            "least": {k: v.to_dict(self.clock_hz) for k, v in self.least.items()},
        }
        if options:
            record["options"] = [o.to_dict(self.clock_hz) for o in self.options]
        return record


def compare_at_budget(
    net: NetworkSpec,
    run: RunSpec,
    budget_bytes: int,
    soc: Any,
    soc_name: str,
    plans: Sequence[str] = BUDGET_PLANS,
) -> Comparison:
    """For an arena budget, the fastest FPTT (K, plan) and the fastest checkpoint S that fit.

    ``run`` gives B, T and the dtype; ``soc`` (an :class:`edgefptt.hw.SoCSpec` of the same
    dtype) the hardware the latency is modelled on. FPTT: every K of 1..T with the lifetime
    and recompute plans of the exact schedule (the fastest K of each longest partition L).
    Checkpoint: for every longest segment L, the fewest segments S = ceil(T/L) that reach it
    (more segments of the same L need more memory and more per-segment kernels); only those
    that fit are costed. Ties go to fewer bytes, then the smaller K or S.
    """
    if isinstance(budget_bytes, bool) or not isinstance(budget_bytes, int) or budget_bytes < 1:
        raise ConfigError(
            f"a memory budget must be a positive number of bytes (got {budget_bytes!r})"
        )
    dtype = run.dtype
    if soc.dtype != dtype:
        raise ConfigError(
            f"the SoC {soc_name} computes in {soc.dtype} but the run is {dtype}; give "
            f"--dtype {soc.dtype} or another --soc"
        )
    plans = _distinct(plans, BUDGET_PLANS, "plan")
    t, batch = run.seq_len, run.batch_size
    options: list[ScheduleOption] = []
    for plan in plans:
        fastest: dict[int, tuple[float, int]] = {}  # L -> (cycles, K)
        for k in range(1, t + 1):
            base, extra = divmod(t, k)
            cycles = (k - extra) * _soc_unit_cycles(net, batch, base, plan, soc)
            if extra:
                cycles += extra * _soc_unit_cycles(net, batch, base + 1, plan, soc)
            length = -(-t // k)
            if length not in fastest or (cycles, k) < fastest[length]:
                fastest[length] = (cycles, k)
        for length, (cycles, k) in fastest.items():
            arena = _unit_arena(net, batch, length, plan, dtype)
            options.append(
                ScheduleOption("fptt", plan, k, length, arena, cycles, arena <= budget_bytes)
            )
    for s in sorted({-(-t // length) for length in range(1, t + 1)}):
        ckpt = run.model_copy(update={"schedule": "checkpoint", "partitions": 1, "segments": s})
        arena = checkpoint_arena_bytes(net, ckpt)
        fits = arena <= budget_bytes
        cycles = checkpoint_pass_cycles(net, ckpt, soc) if fits else None  # costed if it fits
        options.append(
            ScheduleOption(
                "checkpoint", "lifetime", s, ckpt.max_segment_len, arena, cycles, fits
            )
        )  # fmt: skip

    def rank(o: ScheduleOption) -> tuple[float, int, int]:
        return (o.latency if o.latency is not None else float("inf"), o.arena_bytes, o.count)

    best: dict[str, ScheduleOption | None] = {}
    least: dict[str, ScheduleOption] = {}
    for kind in ("fptt", "checkpoint"):
        mine = [o for o in options if o.schedule == kind]
        fitting = [o for o in mine if o.fits]
        best[kind] = min(fitting, key=rank) if fitting else None
        least[kind] = min(mine, key=lambda o: (o.arena_bytes, o.count))
    if best["fptt"] is None and best["checkpoint"] is None:
        smallest = min(least.values(), key=lambda o: o.arena_bytes)
        what = "K" if smallest.schedule == "fptt" else "S"
        raise BudgetError(
            f"a memory budget of {budget_bytes:,} bytes is too small for the training arena: "
            f"the least is {smallest.arena_bytes:,} bytes ({smallest.schedule}, "
            f"{what}={smallest.count}); raise the budget or shrink --hidden/--batch"
        )
    return Comparison(
        budget_bytes, dtype, soc_name, soc.clock_hz, best["fptt"], best["checkpoint"], least,
        options,
    )  # fmt: skip


def checkpoint_arena_bytes(net: NetworkSpec, run: RunSpec) -> int:
    """The lifetime arena of the checkpoint schedule, by the formula of docs/workload.md.

    s * [2P + 2BH(S + 2) + (L+1)B(I+2H) + 9LBH] (S counted as 0 when S = 1), valid when a
    segment's dpre (4LBH elements) can hold the logits, dy and loss (2BC + 1); otherwise the
    workload is built and planned (tests/test_checkpoint_schedule.py checks both ways against
    the planner).
    """
    i, h, c, b = net.input_size, net.hidden_size, net.num_classes, run.batch_size
    s, length = run.num_segments, run.max_segment_len
    if 4 * length * b * h < 2 * b * c + 1:
        from edgefptt.workload import build_workload

        return lifetime_plan(build_workload(net, run)).total_bytes
    stored = s if s > 1 else 0
    elements = 2 * net.num_params + 2 * b * h * (stored + 2)
    elements += (length + 1) * b * (i + 2 * h) + 9 * length * b * h
    return elements * run.element_bytes


def checkpoint_pass_cycles(net: NetworkSpec, run: RunSpec, soc: Any) -> float:
    """Modelled cycles of one checkpoint-schedule pass on ``soc``, from short workloads.

    A segment's kernels depend only on its length l, and the pass's other kernels not at all,
    so with c1(l) the cost of a one-segment pass of l steps and c2(l) that of a two-segment
    pass of 2l steps (which adds one recomputed segment), a pass of segments l_0..l_{S-1}
    costs c1(l_{S-1}) + sum over s < S-1 of (c2(l_s) - c1(l_s)).
    """
    from edgefptt.train.partition import partition_bounds

    bounds = partition_bounds(run.seq_len, run.num_segments)
    lengths = [stop - start for start, stop in bounds]
    batch = run.batch_size
    cycles = _checkpoint_unit_cycles(net, batch, lengths[-1], 1, soc)
    for length in lengths[:-1]:
        cycles += _checkpoint_unit_cycles(net, batch, length, 2, soc)
        cycles -= _checkpoint_unit_cycles(net, batch, length, 1, soc)
    return cycles


@lru_cache(maxsize=4096)
def _checkpoint_unit(net: NetworkSpec, batch: int, length: int, segments: int) -> Any:
    """The kernel summary of a checkpoint pass of ``segments`` segments of ``length`` steps."""
    from edgefptt.hw import summarize
    from edgefptt.workload.checkpoint import build_checkpoint

    run = RunSpec(
        batch_size=batch, seq_len=segments * length, schedule="checkpoint", segments=segments
    )
    return summarize(build_checkpoint(net, run))


def _checkpoint_unit_cycles(
    net: NetworkSpec, batch: int, length: int, segments: int, soc: Any
) -> float:
    from edgefptt.hw import group_cycles

    return float(sum(group_cycles(_checkpoint_unit(net, batch, length, segments), soc).values()))


def _soc_unit_cycles(net: NetworkSpec, batch: int, length: int, plan: str, soc: Any) -> float:
    """One exact partition of ``length`` steps on ``soc`` (see :func:`_unit`)."""
    from edgefptt.hw import group_cycles

    return float(sum(group_cycles(_unit(net, batch, length, plan)[0], soc).values()))
