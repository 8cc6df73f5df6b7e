"""Per-kernel memory access patterns: which lines a call touches first, and which it touches again.

A :class:`Pattern` has the operands' lines (:class:`Touch`: buffer, slots, rows, lines per row)
whose first touch in the call may miss, depending on what ran since (the pass walker in
:mod:`edgefptt.hw.cpu` keeps that history), and the re-touches inside the call
(:class:`Reuse`), whose misses follow from the loop order alone. Matmul loop orders:

- ``paper``: Gemmini's ``matmul_cpu`` (the CPU dataflow of gemmini.h, which the seed paper's C
  calls without an accelerator): a 4 x 4 register block of C over k when nothing is transposed
  and I, J are multiples of 4, else the plain i, j, k loop;
- ``generated``: our ``matmul_portable.c`` on a core without a vector unit (its scalar
  kernels): fp32 4 x 4 blocks of C over all k, B transposed as 16 dot products of 4 rows of A
  with 4 rows of B; bf16 the plain i, j, k loop.

Element-wise kernels, reductions, copies and the update stream their operands once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from edgefptt.hw.cache import CacheLevel, sweep_miss_rate
from edgefptt.workload.kernels import Kernel, MatmulSpec, View, Workload

LINE = 64
MR = 4  # rows of C per register block (both codes)


@dataclass(frozen=True, slots=True)
class Touch:
    """Rows ``rows`` of slots ``slots`` of a buffer, ``lines_per_row`` lines each."""

    buffer: str
    slots: tuple[int, int]
    rows: tuple[int, int]
    lines_per_row: float

    @property
    def lines(self) -> float:
        return (self.slots[1] - self.slots[0]) * (self.rows[1] - self.rows[0]) * self.lines_per_row


@dataclass(frozen=True, slots=True)
class Reuse:
    """``lines`` distinct lines, each touched ``times`` more times in the call, with ``between``
    other lines touched between two touches. ``cyclic``: those other lines are the same sweep
    coming round again (their miss rate is the sweep's fixed point); otherwise they are new
    lines of a stream that miss with rate ``stream_miss``."""

    lines: float
    times: float
    between: float
    cyclic: bool = True
    stream_miss: float = 1.0
    rate: float | None = None  # L1 miss rate of a re-touch when known from the set mapping

    def l1_misses(self, level: CacheLevel) -> float:
        return _reuse_l1(self, level)

    def l2_misses(self, level: CacheLevel) -> float:
        return _reuse_l2(self, level)


@lru_cache(maxsize=4096)
def _reuse_l1(r: Reuse, level: CacheLevel) -> float:
    if r.lines <= 0 or r.times <= 0:
        return 0.0
    if r.rate is not None:
        return r.lines * r.times * r.rate
    if r.cyclic:
        rate = sweep_miss_rate(r.between, level)
    else:
        rate = float(level.evict_probability(r.between * r.stream_miss))
    return r.lines * r.times * rate


@lru_cache(maxsize=4096)
def _reuse_l2(r: Reuse, level: CacheLevel) -> float:
    """Re-touches miss the L2 only when the cyclic sweep is bigger than the L2."""
    if r.lines <= 0 or r.times <= 0 or not r.cyclic:
        return 0.0
    return r.lines * r.times * sweep_miss_rate(r.between, level)


@dataclass(frozen=True, slots=True)
class Pattern:
    touches: tuple[Touch, ...]
    reuses: tuple[Reuse, ...] = ()


def segment_lines(elements: float, elem_bytes: int) -> float:
    """Expected lines covered by a run of ``elements`` starting at a random element offset."""
    if elements <= 0:
        return 0.0
    span = elements * elem_bytes
    return (span - elem_bytes) / LINE + 1.0


def _geometry(view: View, workload: Workload) -> tuple[int, int, int, int, int, int]:
    """(slot0, slot1, row0, row1, columns, row stride) of a view in its buffer's storage."""
    shape = workload.buffers[view.buffer].shape
    if len(shape) == 1:
        dims = (1, 1, shape[0])
    elif len(shape) == 2:
        dims = (1, shape[0], shape[1])
    else:
        dims = (shape[0], int(math.prod(shape[1:-1])), shape[-1])
    n_slots, n_rows, width = dims
    if view.index is None:
        s0, s1 = 0, n_slots
    elif isinstance(view.index, int):
        s0, s1 = view.index, view.index + 1
    else:
        s0, s1 = view.index
    r0, r1 = view.rows if view.rows is not None else (0, n_rows)
    c0, c1 = view.cols if view.cols is not None else (0, width)
    return s0, s1, r0, r1, c1 - c0, width


def touch_of(view: View, workload: Workload, elem_bytes: int) -> Touch:
    s0, s1, r0, r1, cols, width = _geometry(view, workload)
    rows = max(1, (s1 - s0) * (r1 - r0))
    if cols == width:  # whole rows: one contiguous run
        per_row = segment_lines(rows * width, elem_bytes) / rows if rows else 0.0
        per_row = max(per_row, cols * elem_bytes / LINE)
    else:
        per_row = segment_lines(cols, elem_bytes)
    return Touch(view.buffer, (s0, s1), (r0, r1), per_row)


def streaming_pattern(kernel: Kernel, workload: Workload, elem_bytes: int) -> Pattern:
    """Every distinct operand once (an in-place operand counts once)."""
    seen: dict[tuple, Touch] = {}
    for view in (*kernel.reads, *kernel.writes):
        if view.buffer in ("labels", "loss"):
            continue
        t = touch_of(view, workload, elem_bytes)
        seen.setdefault((t.buffer, t.slots, t.rows), t)
    return Pattern(tuple(seen.values()))


def _fits(lines: float, level_lines: int = 256) -> float:
    """Miss rate of lines swept again (L1 D of the Rocket tile: 256 lines)."""
    from edgefptt.hw.cache import ROCKET_CHIPYARD

    return sweep_miss_rate(lines, ROCKET_CHIPYARD.l1d)


def _naive(
    i: int, j: int, k: int, ta: bool, tb: bool, e: int, sa: int, sb: int, level: CacheLevel
) -> list[Reuse]:
    """The plain i, j, k loop: C[i][j] = sum_k A'[i][k] B'[k][j].

    With A transposed and B not, each (i, j) walks two strided columns (k lines of each); the
    miss rate of their re-touches follows from the set mapping (:func:`strip_miss_rate`).
    """
    per_line = LINE / e
    out: list[Reuse] = []
    strided = strip_miss_rate(k, sa * e, 0, 0, sb * e, level) if ta and not tb else None
    if tb:  # B' column j is row j of B: all of B swept for each i
        b_lines = j * segment_lines(k, e)
        out.append(Reuse(b_lines, i - 1, b_lines))
        between_a = segment_lines(k, e) * _fits(b_lines)
    else:  # column j of B walks k rows; the next L/e columns reuse those lines
        b_lines = k * segment_lines(j, e)
        events = k * min(j, per_line) * math.ceil(j / per_line)
        out.append(Reuse(b_lines, max(0.0, events / b_lines - 1) * i, k, rate=strided))
        out.append(Reuse(b_lines, i - 1, b_lines))
        between_a = k * _fits(b_lines) + 1.0 / per_line  # and one new line of C per L/e columns
    if ta:  # A' row i is column i of A: k lines, shared by L/e consecutive i
        a_lines = k * math.ceil(i / per_line)
        out.append(Reuse(a_lines, (j - 1) * min(i, per_line), between_a, False, 1.0, rate=strided))
    else:
        a_lines = i * segment_lines(k, e)
        out.append(Reuse(a_lines, j - 1, between_a, False, 1.0))
    return out


@lru_cache(maxsize=4096)
def strip_miss_rate(
    k: int, a_stride: int, a_rows: int, a_row_bytes: int, b_stride: int, level: CacheLevel
) -> float:
    """L1 miss rate of the lines a block of C sweeps over k, again for each block.

    The sweep holds one line of B per k (rows ``b_stride`` bytes apart) and the A' lines: one
    per k for a transposed A (``a_rows`` = 0, rows ``a_stride`` apart), else ``a_rows`` rows
    of ``a_row_bytes`` contiguous bytes. Strided rows fall into few sets when the stride is
    near a multiple of the cache's set span (a 2 KiB stride maps 16 rows to 2 of the 64 sets),
    so the sweep is costed set by set: a set holding L of its lines misses on a fraction p of
    them, p = 1 - (1 - 1/ways)^(L p) (the random-replacement fixed point of one set), zero
    when L fits its ways. Where A starts relative to B is not known (the arena decides): the
    rate is the mean over every offset (in lines) within the set span.
    """
    one = CacheLevel("set", 1, level.ways, level.line_bytes)
    b_lines = [(r * b_stride) // LINE for r in range(k)]
    if a_rows == 0:
        a_lines = [(r * a_stride) // LINE for r in range(k)]
    else:
        per_row = math.ceil(a_row_bytes / LINE) + 1
        a_lines = [(r * a_stride) // LINE + q for r in range(a_rows) for q in range(per_row)]
    b_lines, a_lines = sorted(set(b_lines)), sorted(set(a_lines))  # rows may share lines
    rates = []
    for shift in range(level.sets):
        lines = np.array(b_lines + [a + shift for a in a_lines])
        load = np.bincount(lines % level.sets, minlength=level.sets)
        missed = sum(n * sweep_miss_rate(float(n), one) for n in load if n > level.ways)
        rates.append(missed / len(lines))
    return float(np.mean(rates))


def _blocked4(
    i: int, j: int, k: int, ta: bool, e: int, sa: int, sb: int, level: CacheLevel
) -> list[Reuse]:
    """4 x 4 blocks of C over all k (gemmini.h's order and our scalar nn kernel), A plain or
    transposed (A' rows are then columns of A: the 4 values of one k share a line). For each
    block the sweep of k lines of B and the A' lines repeats; its miss rate follows from how
    those strided rows map onto the sets (:func:`strip_miss_rate`)."""
    blocks_i = math.ceil(i / MR)
    b_lines = k * segment_lines(j, e)
    events = k * (j / 4) * segment_lines(4, e)  # a window of 4 columns may straddle two lines
    a_lines = k * segment_lines(4, e) if ta else MR * segment_lines(k, e)
    rate = strip_miss_rate(k, sa * e, 0 if ta else MR, k * e, sb * e, level)
    return [
        Reuse(b_lines, (events / b_lines - 1) * blocks_i, k + a_lines, rate=rate),
        Reuse(b_lines, blocks_i - 1, b_lines),
        Reuse(a_lines * blocks_i, j / 4 - 1, k, False, 1.0, rate=rate),
    ]


def _ours_nt(i: int, j: int, k: int, e: int, b_miss: float) -> list[Reuse]:
    """Our scalar nt kernel: 4 rows of A against 4 rows of B (16 dot products in registers),
    B read once per block of 4 rows of A, the 4 rows of A re-read for every block of B."""
    b_lines = j * segment_lines(k, e)
    a_lines = MR * segment_lines(k, e)
    blocks_i = math.ceil(i / MR)
    return [
        Reuse(b_lines, blocks_i - 1, b_lines),
        Reuse(a_lines * blocks_i, j / 4 - 1, 4 * segment_lines(k, e), False, b_miss),
    ]


def matmul_pattern(
    kernel: Kernel, workload: Workload, elem_bytes: int, code: str, b_first_miss: float = 1.0
) -> Pattern:
    """Touches and re-touches of one matmul call under ``code``'s loop order."""
    mm = kernel.matmul
    assert mm is not None
    a, b = kernel.reads[0], kernel.reads[1]
    out = kernel.writes[0]
    touches = [touch_of(v, workload, elem_bytes) for v in (a, b, out)]
    if len(kernel.reads) > 2 and kernel.reads[2].buffer != out.buffer:
        touches.append(touch_of(kernel.reads[2], workload, elem_bytes))
    sa = _geometry(a, workload)[5]
    sb = _geometry(b, workload)[5]
    return Pattern(tuple(touches), _matmul_reuses(mm, elem_bytes, code, b_first_miss, sa, sb))


@lru_cache(maxsize=4096)
def _matmul_reuses(
    mm: MatmulSpec, e: int, code: str, b_first_miss: float, sa: int, sb: int
) -> tuple[Reuse, ...]:
    """The re-touches of one call: its shape, row strides (elements) and loop order."""
    from edgefptt.hw.cache import ROCKET_CHIPYARD

    i, j, k = mm.m, mm.n, mm.k
    ta, tb = mm.transpose_a, mm.transpose_b
    l1 = ROCKET_CHIPYARD.l1d
    if code == "paper":
        if not ta and not tb and i % 4 == 0 and j % 4 == 0:
            reuses = _blocked4(i, j, k, False, e, sa, sb, l1)
        else:
            reuses = _naive(i, j, k, ta, tb, e, sa, sb, l1)
    elif e == 2:  # our bf16 matmul: the plain loop
        reuses = _naive(i, j, k, ta, tb, e, sa, sb, l1)
    elif tb and not ta:
        reuses = _ours_nt(i, j, k, e, b_first_miss)
    else:
        reuses = _blocked4(i, j, k, ta, e, sa, sb, l1)
    return tuple(r for r in reuses if r.lines > 0 and r.times > 0)


def kernel_pattern(kernel: Kernel, workload: Workload, elem_bytes: int, code: str) -> Pattern:
    if kernel.matmul is not None:
        return matmul_pattern(kernel, workload, elem_bytes, code)
    return streaming_pattern(kernel, workload, elem_bytes)
