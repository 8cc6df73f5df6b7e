"""Rocket-core cycles from first principles: issued instructions plus stalls from cache misses.

The pass is walked kernel by kernel in program order. For every operand row the walker keeps
the miss counters (L1 of hart 0, shared L2) at its last touch, so the chance that its lines
are still cached when touched again follows from the misses in between (random replacement,
:mod:`edgefptt.hw.cache`); re-touches inside a call follow from the loop order
(:mod:`edgefptt.hw.access`). The D-cache is blocking, so stalls add to the instruction count:
``cycles = instructions + L1 misses x L2 hit latency + L2 misses x DRAM latency``.

Instruction counts (all measured, never fitted): matmuls at the per-MAC and per-output counts
of each loop (``MATMUL_INSN``), read from the RISC-V build of the loops with Spike's
instruction counter (:mod:`edgefptt.hw.spikecheck`; benchmarks/hw_cache.py measures them
again); our own element-wise kernels at per-element counts of the generated runtime
(``GENERATED_INSN_PER_ELEMENT``, one pass under qemu-riscv64). The seed paper's element-wise
kernels keep their FireSim-fitted costs (:mod:`edgefptt.hw.core_model` says how).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from edgefptt.config import DTYPE_BYTES, NetworkSpec, RunSpec
from edgefptt.hw.access import Pattern, Touch, kernel_pattern
from edgefptt.hw.cache import ROCKET_CHIPYARD, CacheLevel, Hierarchy
from edgefptt.plan.memory import lifetime_plan
from edgefptt.workload import build_workload
from edgefptt.workload.kernels import GROUPS, Kernel, Workload

CODES = ("paper", "generated")


@dataclass(frozen=True, slots=True)
class LoopCost:
    """Instructions of one matmul call: ``per_mac`` x m n k + ``per_output`` x m n."""

    per_mac: float
    per_output: float = 0.0

    def instructions(self, m: int, n: int, k: int) -> float:
        return self.per_mac * m * n * k + self.per_output * m * n


# Instructions per matmul call by (code, loop, dtype), MEASURED with Spike's instruction
# counter on the RISC-V builds of the loops (benchmarks/hw_cache.py prints them again; rerun it
# and update this table when matmul_portable.c changes). Each loop was run at the pass's shapes
# that use it and fitted as per_mac x MACs + per_output x outputs (non-negative least squares
# on absolute counts; spikecheck.loop_costs).
# paper: gemmini.h's matmul_cpu built as gemmini-rocc-tests builds it (-O2 -ffast-math): "block"
#   the 4 x 4 block of C (nothing transposed, I and J multiples of 4; fitted on MatMul-1 4x128x512
#   and 4x128x10), "plain" the i, j, k loop (MatMul-2 4x128x129 and 4x10x128 with B transposed,
#   MatMul-3 128x129x4 with A transposed: per output, the sum's set-up and store). Both
#   multiply each operand by its scale factor (HAS_MVIN_SCALE), even when it is 1. bf16: the same
#   loop orders with every operation widened to fp32 and rounded back (spikecheck.PAPER_BF16).
# generated: matmul_portable.c built as an export's Makefile cross-builds it (-std=c99 -O2
#   -ffp-contract=fast, rv64gc: its scalar kernels for cores without a vector unit, measured
#   2026-12-02 03:40 UTC): "nt" 4 x 4 dot products of rows (B transposed; one depth of k in the
#   pass, so per MAC only), "nn" 4 x 4 blocks of C over all k (B not transposed; fitted on
#   MatMul-1 4x128x512 and 4x128x10), "nn_scaled" the same with A scaled (MatMul-3 128x129x4 and
#   the exact schedule's 512x129x16, A transposed), bf16 "plain" its 4 x 4 blocks of C
#   (rv_bf16_block: halves of 4 x 2 with the accumulators in integer registers, one copy of the
#   half per transpose and scale case; re-measured 2026-12-02 10:00 UTC after the copies: it
#   was 12.90 per MAC + 41.8 per output, and 19.70 + 18.1 before the halves) and
#   "plain_scaled" the same with a scale other than 1 (A scaled and rounded per block and k;
#   16.80 + 40.0 before the copies).
MATMUL_INSN: dict[tuple[str, str, str], LoopCost] = {
    ("paper", "block", "fp32"): LoopCost(2.19, 15.6),
    ("paper", "plain", "fp32"): LoopCost(8.00, 15.1),
    ("paper", "block", "bf16"): LoopCost(14.63, 21.4),
    ("paper", "plain", "bf16"): LoopCost(29.03, 16.1),
    ("generated", "nt", "fp32"): LoopCost(2.25, 0.0),
    ("generated", "nn", "fp32"): LoopCost(1.94, 10.7),
    ("generated", "nn_scaled", "fp32"): LoopCost(2.24, 4.6),
    ("generated", "plain", "bf16"): LoopCost(12.23, 61.5),
    ("generated", "plain_scaled", "bf16"): LoopCost(15.93, 40.5),
}
# Per matmul call: argument set-up, loop entry and exit (not measured separately).
MATMUL_CALL_INSN = 60.0

# Our runtime's kernels other than matmuls: instructions per call (entry, arguments, loop set-up;
# not measured separately) and per work element by dtype, schedule and op, MEASURED by
# spikecheck.element_costs (one pass of a small export, H = 32, T = 56, K = 4, under
# qemu-riscv64, libm charged to the kernels calling it, memcpy/memset to copies and zeroing;
# benchmarks/hw_cache.py --profile prints them again).
GENERATED_CALL_INSN = 40.0
GENERATED_INSN_PER_ELEMENT: dict[str, dict[str, dict[str, float]]] = {
    "fp32": {
        "exact": {
            "copy": 9.27,
            "lstm_cell_forward": 87.5,
            "softmax_xent": 28.3,
            "bias_grad": 5.18,
            "zero": 2.25,
            "lstm_cell_backward": 13.7,
            # not measured: the LSTM kernel's count scaled by the GRU's recipe cost (rocket.py)
            "gru_cell_forward": 54.5,
            "gru_cell_backward": 8.0,
            "add": 5.18,  # one rounded add per element, as bias_grad
            "fptt_sgd": 19.3,
        },
        "paper": {
            "copy": 6.17,
            "sigmoid": 61.2,
            "tanh": 79.5,
            "cell_state": 21.6,
            "mul": 10.1,
            "softmax": 22.5,
            "xent_grad": 10.0,
            "bias_grad": 7.38,
            "lstm_grad_output": 29.9,
            "lstm_grad_gates": 48.7,
            "fptt_sgd": 19.3,
        },
    },
    "bf16": {
        "exact": {
            "copy": 7.47,
            "lstm_cell_forward": 170.3,
            "softmax_xent": 102.6,
            "bias_grad": 20.6,
            "zero": 1.78,
            "lstm_cell_backward": 102.0,
            # not measured: the LSTM kernel's count scaled by the GRU's recipe cost (rocket.py)
            "gru_cell_forward": 106.1,
            "gru_cell_backward": 59.8,
            "add": 20.6,  # one rounded add per element, as bias_grad
            "fptt_sgd": 131.3,
        },
        "paper": {
            "copy": 5.13,
            "sigmoid": 127.9,
            "tanh": 104.8,
            "cell_state": 78.1,
            "mul": 38.4,
            "softmax": 92.6,
            "xent_grad": 21.8,
            "bias_grad": 28.2,
            "lstm_grad_output": 159.6,
            "lstm_grad_gates": 271.8,
            "fptt_sgd": 131.3,
        },
    },
}


def loop_of(kernel: Kernel, code: str, dtype: str) -> str:
    mm = kernel.matmul
    assert mm is not None
    if code == "paper":
        plain = mm.transpose_a or mm.transpose_b or mm.m % 4 or mm.n % 4
        return "plain" if plain else "block"
    if dtype == "bf16":  # a scale other than 1 is applied and rounded through calls
        return "plain" if mm.a_scale == 1.0 else "plain_scaled"
    if mm.transpose_b and not mm.transpose_a:
        return "nt"
    return "nn" if mm.a_scale == 1.0 else "nn_scaled"


def matmul_instructions(kernel: Kernel, code: str, dtype: str) -> float:
    mm = kernel.matmul
    assert mm is not None
    cost = MATMUL_INSN[(code, loop_of(kernel, code, dtype), dtype)]
    return MATMUL_CALL_INSN + cost.instructions(mm.m, mm.n, mm.k)


ROW_BLOCK = 16  # rows of a 2-D buffer that share one history entry (a gate block of W is H)


def _rate(level: CacheLevel) -> float:
    """Per miss in the cache, the decay rate of a line's survival (random replacement)."""
    return -math.log(1.0 - 1.0 / level.ways) / level.sets


def _survival(misses, before, now, rate):
    """Chance a line is still cached when this call reaches it.

    Misses between its last touch and now: those of the calls in between (``misses``), those
    of the call that last touched it after the touch (``before``, times 1 - u), and those of
    this call before it reaches the line (``now``, times u), for a touch time u uniform in both
    calls (the same position in the same loop). Scalars, or arrays of one set each.
    """
    if isinstance(now, float) and isinstance(before, float):
        a, b = before * rate, now * rate
        mean = math.exp(-a) if abs(a - b) < 1e-9 else (math.exp(-b) - math.exp(-a)) / (a - b)
        return math.exp(-misses * rate) * mean
    a, b = np.multiply(before, rate), np.multiply(now, rate)
    d = a - b
    close = np.abs(d) < 1e-9
    mean = np.where(close, np.exp(-a), (np.exp(-b) - np.exp(-a)) / np.where(close, 1.0, d))
    return np.exp(-np.multiply(misses, rate)) * mean


@lru_cache(maxsize=65536)
def _keys(t: Touch, sets: int) -> tuple[tuple[tuple[str, int, int, int], np.ndarray], ...]:
    """History entries (buffer, slot, block of rows, block of columns) a touch covers, and its
    lines in each set of the cache (spread evenly where the buffer's address is unknown)."""
    out = []
    r0, r1 = t.rows
    blocks = t.col_blocks or ((0, 0, t.row_bytes),)
    row = sum(nb for _, _, nb in blocks) or 1
    for b in range(r0 // ROW_BLOCK, (r1 - 1) // ROW_BLOCK + 1):
        lo, hi = max(r0, b * ROW_BLOCK), min(r1, (b + 1) * ROW_BLOCK)
        for s in range(t.slots[0], t.slots[1]):
            for cb, skip, nbytes in blocks:
                part = None if len(blocks) == 1 else (skip, nbytes)
                placed = t.set_lines(s, lo, hi, sets, part) if t.exact else None
                if placed is None:
                    share = t.set_shares(s, lo, hi, sets, part)
                    if share is None:
                        share = np.full(sets, 1.0 / sets)
                    placed = (hi - lo) * t.lines_per_row * nbytes / row * share
                out.append(((t.buffer, s, b, cb), placed))
    return tuple(out)


@lru_cache(maxsize=65536)
def _prepared(pattern: Pattern, hierarchy: Hierarchy) -> tuple:
    """A pattern's history entries, their lines per L1 set, all first-touch lines, and the
    misses of its re-touches in L1 (per set) and L2 (these depend on the pattern alone)."""
    sets = hierarchy.l1d.sets
    keyed = [kl for t in pattern.touches for kl in _keys(t, sets)]
    re1 = np.zeros(sets)
    for r in pattern.reuses:
        share = np.full(sets, 1.0 / sets) if r.sets is None else np.asarray(r.sets)
        re1 += r.l1_misses(hierarchy.l1d) * share
    re2 = sum(r.l2_misses(hierarchy.l2) for r in pattern.reuses)
    cached = re1
    if pattern.reuses_if_cached is not None:
        cached = np.zeros(sets)
        for r in pattern.reuses_if_cached:
            share = np.full(sets, 1.0 / sets) if r.sets is None else np.asarray(r.sets)
            cached += r.l1_misses(hierarchy.l1d) * share
    keys = tuple(k for k, _ in keyed)
    lines = tuple(n for _, n in keyed)
    return keys, lines, float(sum(n.sum() for n in lines)), re1, re2, cached


class Walker:
    """Miss history of one pass: hart 0's L1 D-cache, set by set, and the shared L2.

    History is kept per (buffer, slot, block of ROW_BLOCK rows): the miss counters at the end
    of the call that last touched it and that call's own misses. L1 misses are counted per set
    (a line survives the misses of its own set, 1 - 1/ways each): where the buffers' addresses
    are known, misses that crowd a few sets (conflicts between strided rows, streams 4 KiB
    apart) leave the lines of the other sets alone; unknown addresses spread everything evenly
    (the same as one counter for the cache).
    """

    def __init__(self, hierarchy: Hierarchy = ROCKET_CHIPYARD) -> None:
        self.h = hierarchy
        self.m1 = np.zeros(hierarchy.l1d.sets)
        self.m2 = 0.0
        self.r1 = -math.log(1.0 - 1.0 / hierarchy.l1d.ways)  # per miss in the line's set
        self.r2 = _rate(hierarchy.l2)
        self.history: dict[tuple[str, int, int, int], tuple] = {}

    def call(self, pattern: Pattern) -> tuple[float, float]:
        """L1 and L2 misses of one call; updates the history."""
        keys, lines, total, re_missed, re2, re_cached = _prepared(pattern, self.h)
        re1 = re_missed
        fresh = np.zeros_like(self.m1)
        groups: dict[tuple[int, int], list] = {}
        group_of: dict[tuple[str, int, int, int], tuple[int, int] | None] = {}
        get = self.history.get
        for key, n in zip(keys, lines, strict=True):
            hit = get(key)
            if hit is None:
                group_of[key] = None
                fresh = fresh + n
            else:
                gk = group_of[key] = (id(hit[0]), id(hit[1]))
                g = groups.setdefault(gk, [hit[0], hit[1], 0.0])
                g[2] = g[2] + n
        share = sum(lines) / total if total > 0 else np.full_like(self.m1, 1.0 / len(self.m1))
        l1m, l2m = re1 + total * share, re2 + total
        aging = 1.0 if pattern.aging is None else np.asarray(pattern.aging)
        own = {k: 0.0 for k in groups}
        for _ in range(3):  # this call's own misses age the lines it reaches late
            first1 = fresh.copy()
            first2 = float(fresh.sum())
            for k, (past, prev, n) in groups.items():
                # a line's own miss (in the call that last touched it, in this call) comes at
                # its touch: it ages the line's set-mates, not the line
                before = np.maximum(past[1] - prev, 0.0)
                now = l1m * aging if pattern.aging is not None else np.maximum(l1m - own[k], 0.0)
                p1 = 1.0 - _survival(self.m1 - past[0], before, now, self.r1)
                p2 = 1.0 - _survival(self.m2 - past[2], float(past[3]), float(l2m), self.r2)
                own[k] = p1
                first1 += n * p1
                first2 += float((n * p1).sum()) * p2
            if total > 0:  # re-touches between all first touches missing and all hitting
                f = float(first1.sum()) / total
                re1 = f * re_missed + (1.0 - f) * re_cached
            l1m, l2m = first1 + re1, first2 + re2
        self.m1 = self.m1 + l1m
        self.m2 += l2m
        entry = (self.m1, l1m, self.m2, l2m)
        history = self.history
        ones = np.ones_like(self.m1)
        for key in keys:  # with the miss chance of each of its lines in this call
            gk = group_of[key]
            history[key] = (entry, ones if gk is None else own[gk])
        return float(l1m.sum()), float(l2m)


def arena_addresses(workload: Workload, base: int = 0) -> dict[str, int]:
    """Byte offset of every buffer in the one arena export-c lays out (its lifetime plan,
    :func:`edgefptt.plan.memory.lifetime_plan`), plus the arena's address ``base`` (0: the
    arena taken to start a page): which lines of two buffers share a set follows from these
    offsets (set = address bits 6-11), and which lines a row covers from the arena's place
    within a line."""
    return {a.name: base + a.offset_bytes for a in lifetime_plan(workload).allocations}


@dataclass
class Traffic:
    """Per kernel group: L1 misses, L2 misses and issued instructions (matmuls; element-wise
    kernels of the generated code)."""

    l1_misses: dict[str, float] = field(default_factory=lambda: dict.fromkeys(GROUPS, 0.0))
    l2_misses: dict[str, float] = field(default_factory=lambda: dict.fromkeys(GROUPS, 0.0))
    instructions: dict[str, float] = field(default_factory=lambda: dict.fromkeys(GROUPS, 0.0))
    calls: dict[str, int] = field(default_factory=lambda: dict.fromkeys(GROUPS, 0))


def walk(
    workload: Workload,
    dtype: str,
    code: str,
    hierarchy: Hierarchy = ROCKET_CHIPYARD,
    matmuls_on_core: bool = True,
) -> Traffic:
    """Misses (and matmul instructions) per group of one pass, in program order.

    With ``matmuls_on_core`` false the matmuls run on Gemmini: its DMA reads and writes
    through the L2, not hart 0's L1, so they only age the L2 (counted as L2 traffic of
    the lines they move, not as core stalls).
    """
    e = DTYPE_BYTES[dtype]
    walker = Walker(hierarchy)
    out = Traffic()
    cache: dict = {}
    addresses = arena_addresses(workload) if code == "generated" else None
    for kernel in workload.kernels:
        if kernel.matmul is not None and not matmuls_on_core:
            continue
        key = (kernel.op, kernel.group, kernel.reads, kernel.writes, kernel.matmul)
        pattern = cache.get(key)
        if pattern is None:
            pattern = cache[key] = kernel_pattern(kernel, workload, e, code, addresses)
        l1m, l2m = walker.call(pattern)
        g = kernel.group
        out.l1_misses[g] += l1m
        out.l2_misses[g] += l2m
        out.calls[g] += 1
        if kernel.matmul is not None:
            out.instructions[g] += matmul_instructions(kernel, code, dtype)
    return out


@lru_cache(maxsize=64)
def pass_traffic(net: NetworkSpec, run: RunSpec, code: str, matmuls_on_core: bool) -> Traffic:
    """:func:`walk` of the pass ``(net, run)`` (cached per pass, code and matmul placement)."""
    return walk(build_workload(net, run), run.dtype, code, ROCKET_CHIPYARD, matmuls_on_core)
