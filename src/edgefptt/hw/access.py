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
  with 4 rows of B, an element-by-element pass over the edge columns after the blocks; bf16
  (rv_bf16_block) 4 x 4 blocks of C, each as two halves of 2 columns (a copy of the half per
  transpose and scale case) taking turns over blocks of RV_BF16_KB values of k, partial blocks
  (bf16_block) at the edges; the lines of their stack frame (RV_FRAME_*) take ways too, at a
  place the model does not know (the mean over every place).

Element-wise kernels, reductions, copies and the update stream their operands once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from edgefptt.hw.cache import (
    MAX_TRACKED as MAX_LIVE,
)
from edgefptt.hw.cache import (
    RESIDENT,
    CacheLevel,
    sequence_misses,
    set_miss_rate,
    spread_miss_rate,
    sweep_miss_rate,
)
from edgefptt.workload.kernels import Kernel, MatmulSpec, View, Workload

LINE = 64
MR = 4  # rows of C per register block (both codes)
RV_BF16_KB = 32  # values of k per turn of a bf16 block's halves (EF_RV_KB, matmul_portable.c)
# The stack words our bf16 blocks on RISC-V touch, in bytes from the block loop's stack pointer
# (ef_matmul_backend's 704-byte frame, with rv_bf16_block and the partial blocks' bf16_block
# inlined in it; words from 704 up are its stack arguments, one reused for a loop value; a
# half's frame lies just below it), as GCC 12.2 -O2 lays the frames out for rv64gc (read from
# riscv64-linux-gnu-objdump -d and a Spike address trace of the harness builds; stale after a
# change to matmul_portable.c until read again, like hw/cpu.py's MATMUL_INSN). The halves' k
# loops touch no stack. Each half call saves and restores callee-saved registers (its copy's
# own set: RV_FRAME_HALF, from that word up to -8) and moves its 8 accumulators between the
# block's acc[2][8] and registers; between a turn's two calls the loop reloads the address of
# the second half's accumulators; a full block reads its table entry (rv_halves, a line
# elsewhere), sets up its accumulators and saves the loop's values around the turns, then
# restores them, writes C and steps the loop; a partial block keeps its accumulators and loop
# values on the stack, every k; each row of blocks reloads and saves the loop's locals. Where
# the stack lies is not known to the model.
RV_FRAME_HALF = {  # per half call, by (A transposed, B transposed, A scaled): the lowest word
    (False, False, False): -88, (False, False, True): -104, (False, True, False): -88,
    (False, True, True): -104, (True, False, False): -80, (True, False, True): -96,
    (True, True, False): -72, (True, True, True): -88,
}  # fmt: skip
RV_FRAME_ACC = 512  # acc[2][8]: 32 B per half, at its half calls and at both ends of a block
RV_FRAME_TURN = (8,)  # per turn of the halves, between the two calls
# per full block: before its first half call, and after its last
RV_FRAME_START = (8, 16, 24, 32, 40, 48, 56, 72, 96, 176, 184, 216, 232, 264, 272, 280, 304, 320)
RV_FRAME_END = (16, 24, 32, 40, 48, 56, 72, 96, 160, 168, 184, 192, 200, 208, 224, 720)
# per partial block (4 x 1, the edge column of J = 129): before its k loop, each k, after it
RV_FRAME_EDGE_START = (
    8, 16, 24, 32, 40, 48, 56, 72, 96, 104, 112, 128, 136, 144, 184, 216, 240, 248, 256, 288,
    296, 312, 704,
)  # fmt: skip
RV_FRAME_EDGE_K = (8, 16, 32, 40, 64, 72, 80, 88, 120)
RV_FRAME_EDGE_END = (16, 32, 40, 120, 160, 168, 184, 192, 200, 208, 224, 240, 248, 256, 704)
RV_FRAME_ROW = (  # per row of blocks, between two rows
    160, 168, 184, 192, 200, 208, 232, 264, 288, 296, 312, 344, 360, *range(392, 512, 8),
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Touch:
    """Rows ``rows`` of slots ``slots`` of a buffer, ``lines_per_row`` lines each."""

    buffer: str
    slots: tuple[int, int]
    rows: tuple[int, int]
    lines_per_row: float
    # where the rows lie, when the buffer's address is known (bytes): the first element of
    # row 0 of slot 0 of the view's columns, a row's stride and its bytes, a slot's stride
    addr: int | None = None
    row_stride: int = 0
    row_bytes: int = 0
    slot_stride: int = 0
    # the column blocks of the buffer's rows the view covers: (block, first byte of the view's
    # row in it, bytes in it); one block (0, 0, row_bytes) where rows are not split
    col_blocks: tuple[tuple[int, int, int], ...] = ()
    # the address is the built program's own (its arena's real place): count the lines the
    # rows cover exactly, not the expectation for an unknown alignment
    exact: bool = False

    def set_shares(
        self, slot: int, r0: int, r1: int, sets: int, part: tuple[int, int] | None = None
    ) -> np.ndarray | None:
        """Share of the lines of rows r0..r1 of ``slot`` in each cache set (None: unknown);
        ``part``: (first byte, bytes) of each row only."""
        count = self.set_lines(slot, r0, r1, sets, part)
        return None if count is None else count / count.sum()

    def set_lines(
        self, slot: int, r0: int, r1: int, sets: int, part: tuple[int, int] | None = None
    ) -> np.ndarray | None:
        """Distinct lines of rows r0..r1 of ``slot`` (of ``part`` of each row) in each cache
        set, where the buffer's address is known (None: unknown)."""
        if self.addr is None:
            return None
        skip, nbytes = part if part is not None else (0, self.row_bytes)
        seen: set[int] = set()
        for r in range(r0, r1):
            start = self.addr + slot * self.slot_stride + r * self.row_stride + skip
            seen.update(range(start // LINE, (start + max(1, nbytes) - 1) // LINE + 1))
        count = np.zeros(sets)
        for line in seen:
            count[line % sets] += 1
        return count

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
    sets: tuple[float, ...] | None = None  # share of its misses in each set (None: even)

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
    # per set, the share of the call's misses in the set that come before one of its lines is
    # first touched, on average over u uniform in the call (None: 1 in every set, a loop whose
    # misses come evenly as it goes); operands walked in lock step reach a set in visits, its
    # co-set lines together, and a line sees only the misses of the visits before its own
    aging: tuple[float, ...] | None = None
    # the re-touches when every first touch hits (``reuses``: when every one misses); the
    # walker weighs the two by the share of first touches that miss (None: ``reuses`` alone)
    reuses_if_cached: tuple[Reuse, ...] | None = None


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


def touch_of(
    view: View,
    workload: Workload,
    elem_bytes: int,
    addresses: dict[str, int] | None = None,
    exact: bool = False,
) -> Touch:
    s0, s1, r0, r1, cols, width = _geometry(view, workload)
    where = {}
    if addresses is not None and view.buffer in addresses:
        shape = workload.buffers[view.buffer].shape
        per_slot = int(math.prod(shape[1:-1])) if len(shape) > 2 else 1
        c0 = view.cols[0] if view.cols is not None else 0
        where = {
            "addr": addresses[view.buffer] + c0 * elem_bytes,
            "row_stride": width * elem_bytes,
            "row_bytes": cols * elem_bytes,
            "slot_stride": per_slot * width * elem_bytes,
        }
    c0 = view.cols[0] if view.cols is not None else 0
    where["col_blocks"] = _col_blocks(c0, cols, width, elem_bytes)
    where["exact"] = exact and "addr" in where
    rows = max(1, (s1 - s0) * (r1 - r0))
    if cols == width:  # whole rows: one contiguous run
        per_row = segment_lines(rows * width, elem_bytes) / rows if rows else 0.0
        per_row = max(per_row, cols * elem_bytes / LINE)
    else:  # rows closer than their slice's lines share lines (W[:, 1:] of MatMul-1)
        per_row = rows_lines(rows, cols, width, elem_bytes) / rows
    return Touch(view.buffer, (s0, s1), (r0, r1), per_row, **where)


def _col_blocks(c0: int, cols: int, width: int, e: int) -> tuple[tuple[int, int, int], ...]:
    """The column blocks a view of columns c0..c0 + cols covers, as :attr:`Touch.col_blocks`.
    Rows of four gate blocks (a width that is a multiple of 4, each quarter a line or more: the
    LSTM's 4H columns) are split in their quarters: the paper schedule writes and reads one
    gate's columns at a time, the other gates' lines are other lines, with their own history."""
    if width % 4 or width // 4 * e < LINE:
        return ((0, 0, cols * e),)
    q = width // 4
    out = []
    for blk in range(c0 // q, (c0 + cols - 1) // q + 1):
        lo, hi = max(c0, blk * q), min(c0 + cols, (blk + 1) * q)
        out.append((blk, (lo - c0) * e, (hi - lo) * e))
    return tuple(out)


def streaming_pattern(
    kernel: Kernel,
    workload: Workload,
    elem_bytes: int,
    addresses: dict[str, int] | None = None,
    exact: bool = False,
) -> Pattern:
    """Every distinct operand once (an in-place operand counts once); where the buffers'
    addresses are known, the re-touches of lines that other operands' lines evict on the way
    (:func:`_lockstep_misses`)."""
    seen: dict[tuple, Touch] = {}
    for view in (*kernel.reads, *kernel.writes):
        if view.buffer in ("labels", "loss"):
            continue
        t = touch_of(view, workload, elem_bytes, addresses, exact)
        seen.setdefault((t.buffer, t.slots, t.rows), t)
    reuses: tuple[Reuse, ...] = ()
    if addresses is not None and kernel.kind in ("elementwise", "update", "copy"):
        views, regions = [], {}
        for v in (*kernel.reads, *kernel.writes):
            if v.buffer in ("labels", "loss"):
                continue
            if v.buffer not in addresses:
                views = None
                break
            shape = workload.buffers[v.buffer].shape
            per_slot = int(math.prod(shape[1:-1])) if len(shape) > 2 else shape[0]
            s0, s1, r0, r1, cols, width = _geometry(v, workload)
            c0 = v.cols[0] if v.cols is not None else 0
            start = addresses[v.buffer] + ((s0 * per_slot + r0) * width + c0) * elem_bytes
            # only where it lies within a page matters (the set), and which operands are one
            group = regions.setdefault(start, len(regions))
            views.append(
                (start % 4096 + (group << 32), r1 - r0, (s1 - s0) * (r1 - r0),
                 per_slot * width * elem_bytes, width * elem_bytes, cols)
            )  # fmt: skip
        missed, shares, aging = (
            (0.0, None, None)
            if views is None
            else _lockstep_misses(tuple(views), elem_bytes, _l1(), False)
        )
        if shares is not None:
            kept, kept_shares, _ = _lockstep_misses(tuple(views), elem_bytes, _l1(), True)
            return Pattern(
                tuple(seen.values()),
                (Reuse(missed, 1, 0, rate=1.0, sets=shares),),
                aging,
                (Reuse(kept, 1, 0, rate=1.0, sets=kept_shares),),
            )
    return Pattern(tuple(seen.values()), reuses)


LOCKSTEP_MAX_TOUCHES = 400_000  # longer element-wise calls keep the plain stream (no re-touches)


def _l1() -> CacheLevel:
    from edgefptt.hw.cache import ROCKET_CHIPYARD

    return ROCKET_CHIPYARD.l1d


@lru_cache(maxsize=4096)
def _lockstep_misses(
    views: tuple, e: int, level: CacheLevel, cached: bool
) -> tuple[float, tuple[float, ...] | None, tuple[float, ...] | None]:
    """Re-touch misses of an element-wise kernel of the generated runtime on a scalar core: it
    walks its rows element by element (EF_CHUNK = 1), each element reading its operands and then
    writing its results, an operand ``g`` times as wide as the narrowest one read as ``g``
    streams (the gate blocks of a pre-activation row). A line is touched 64 / e times, the other
    streams' lines between; where two streams' lines fall in one set (buffers a multiple of
    4 KiB apart: the partition buffers act and dpre of the exact plan are), each one's miss
    evicts the other's line with probability 1/ways. Costed exactly per set
    (:func:`edgefptt.hw.cache.sequence_misses`); first touches are the walker's. Zero where
    the operands' rows differ (not a lock-step walk) or an address is unknown.
    ``cached``: every first touch finds its line cached (else every one misses). Also the
    share of the misses in each set, and per set (V - 1) / V for the V elements at which the
    walk reaches new lines of the set (:attr:`Pattern.aging`). ``views``: per operand, its
    first element's byte address (its offset within a page and which region it is), rows per
    slot, rows, the slot and row strides (bytes) and columns."""
    none = (0.0, None, None)
    rows = {v[2] for v in views}
    units = min(v[5] for v in views)
    if len(rows) != 1 or units <= 0 or any(v[5] % units for v in views):
        return none
    n_rows = rows.pop()
    if n_rows * units * sum(v[5] // units for v in views) > LOCKSTEP_MAX_TOUCHES:
        return none
    streams = []
    for start, rows_here, _, slot_stride, row_stride, cols in views:
        starts = [
            start + (n // rows_here) * slot_stride + (n % rows_here) * row_stride
            for n in range(n_rows)
        ]
        streams += [(starts, q * units * e) for q in range(cols // units)]
    per_set: dict[int, list[tuple[object, int]]] = {}
    prev: dict[int, int] = {}
    seen: set[int] = set()
    visits: dict[int, set[int]] = {}  # the elements at which a set gets new lines
    first = RESIDENT if cached else -1
    for r in range(n_rows):
        for h in range(units):
            for starts, off in streams:
                line = (starts[r] + off + h * e) // LINE
                st = line % level.sets
                if prev.get(st) == line:
                    continue  # the same line again, nothing between in its set: a hit
                prev[st] = line
                if line in seen:
                    per_set.setdefault(st, []).append((line, 0))
                else:
                    per_set.setdefault(st, []).append((line, first))
                    visits.setdefault(st, set()).add(r * units + h)
                    seen.add(line)
    where = np.zeros(level.sets)
    aging = np.ones(level.sets)
    for st, touches in per_set.items():
        got = sequence_misses(touches, level.ways)
        if got is None:
            return none
        where[st] = got.get(0, 0.0)
        aging[st] = 1.0 - 1.0 / len(visits[st])
    total = float(where.sum())
    shares = where / total if total > 0 else where
    return total, tuple(float(x) for x in shares), tuple(float(x) for x in aging)


def rows_lines(rows: float, cols: int, stride: int, e: int) -> float:
    """Lines of ``rows`` rows of ``cols`` elements, ``stride`` elements apart: rows closer than
    a line share the lines between them (whole rows of a matrix are one contiguous run)."""
    if rows <= 0 or cols <= 0:
        return 0.0
    return rows * min(segment_lines(cols, e), max(stride, cols) * e / LINE) + (
        1.0 if stride * e < cols * e + LINE else 0.0
    )


def _page_offset(view: View, workload: Workload, e: int, addresses: dict | None) -> int | None:
    """Byte offset within a 4 KiB page of a view's first element when the buffer's address is
    known (the Spike harness places its buffers), else None. The L1 set of a line depends on
    these 12 bits only, whatever the page mapping."""
    if addresses is None or view.buffer not in addresses:
        return None
    s0, _, r0, _, _, width = _geometry(view, workload)
    c0 = view.cols[0] if view.cols is not None else 0
    shape = workload.buffers[view.buffer].shape
    rows_per_slot = int(math.prod(shape[:-1])) // max(1, shape[0]) if len(shape) > 2 else 0
    first = (s0 * rows_per_slot + r0) * width + c0 if len(shape) > 2 else r0 * width + c0
    return (addresses[view.buffer] + first * e) % 4096


@lru_cache(maxsize=8192)
def strip_rates(
    k: int,
    a_stride: int,
    a_rows: int,
    a_row_bytes: int,
    b_stride: int,
    level: CacheLevel,
    stream: float = 0.0,
    a_start: int | None = None,
    b_start: int | None = None,
) -> tuple[float, float, float, float]:
    """L1 miss rates of the lines one block of C touches over k, touched again for each block:
    of all of them, of A's and of B's, and the chance that a line elsewhere (C's block, read
    before the k loop and written after it, in a set chosen at random) is evicted by one round's
    misses (1 - keep^misses of its set).

    The working set holds one line of B per k (rows ``b_stride`` bytes apart) and the A' lines:
    one per k for a transposed A (``a_rows`` = 0, rows ``a_stride`` apart), else ``a_rows``
    rows of ``a_row_bytes`` contiguous bytes. ``stream``: other misses per round (the block's
    new lines of C), spread evenly over the sets. Strided rows fall into few sets when the stride
    is near a multiple of the cache's set span (a 2 KiB stride maps 16 rows to 2 of the 64
    sets), so the rate is costed set by set (:func:`edgefptt.hw.cache.set_miss_rate`), and each
    operand's rate is that of the sets its own lines are in (A's columns 1 KiB apart crowd 16
    sets that B's rows, spread over all 64, mostly avoid). Where A and B start within a page
    (``a_start``, ``b_start``, bytes) decides which sets they share; when not known (a pass
    whose arena is not laid out yet) the rates are the means over every offset in lines of A
    against B.
    """
    b0 = b_start or 0
    b_lines = sorted({(b0 + r * b_stride) // LINE for r in range(k)})
    a0 = a_start or 0
    if a_rows == 0:
        a_lines = sorted({(a0 + r * a_stride) // LINE for r in range(k)})
    else:
        a_lines = sorted(
            {
                x
                for r in range(a_rows)
                for x in range(
                    (a0 + r * a_stride) // LINE, (a0 + r * a_stride + a_row_bytes - 1) // LINE + 1
                )
            }
        )
    shifts = range(level.sets) if a_start is None or b_start is None else (0,)
    lam = stream / level.sets
    keep = 1.0 - 1.0 / level.ways
    b_sets = np.bincount(np.array(b_lines) % level.sets, minlength=level.sets)
    out = []
    for shift in shifts:
        a_sets = np.bincount((np.array(a_lines) + shift) % level.sets, minlength=level.sets)
        load = a_sets + b_sets
        rate = np.array([set_miss_rate(int(n), lam, level.ways) for n in load])
        out.append(
            (
                float(load @ rate) / load.sum(),
                float(a_sets @ rate) / max(1, a_sets.sum()),
                float(b_sets @ rate) / max(1, b_sets.sum()),
                float(np.mean(1.0 - keep ** (load * rate + lam))),
            )
        )
    return tuple(float(x) for x in np.mean(out, axis=0))


def strip_miss_rate(*args) -> float:
    """:func:`strip_rates`' miss rate of all the lines of the round."""
    return strip_rates(*args)[0]


def _strip_over_call(
    args: tuple, lay: Layout, steps_a: int, a_step: int, steps_b: int, b_step: int
) -> tuple[float, float, float]:
    """:func:`strip_rates` of A's lines, of B's, and the foreign eviction, averaged over the
    blocks of a call: A's lines move by ``a_step`` bytes per block row (of ``steps_a``), B's by
    ``b_step`` per block column (of ``steps_b``), so the sets they share change across the call
    (up to 8 positions of each are sampled evenly). Unknown starts: the offset mean already
    covers them."""
    if lay.a_start is None or lay.b_start is None:
        return strip_rates(*args, None, None)[1:]
    rates = []
    for ia in sorted({round(x) for x in np.linspace(0, max(0, steps_a - 1), 8)}):
        for jb in sorted({round(x) for x in np.linspace(0, max(0, steps_b - 1), 8)}):
            at = ((lay.a_start + ia * a_step) % 4096, (lay.b_start + jb * b_step) % 4096)
            rates.append(strip_rates(*args, *at)[1:])
    a, b, f = np.mean(rates, axis=0)
    return float(a), float(b), float(f)


def _edge_age(misses: float, level: CacheLevel) -> float:
    """Chance a line touched at a uniformly random point of a pass of ``misses`` misses is gone
    at its end (random replacement): the mean of 1 - keep^(u misses / sets) over u in [0, 1]."""
    x = misses / level.sets * -math.log(1.0 - 1.0 / level.ways)
    return 1.0 - (1.0 - math.exp(-x)) / x if x > 1e-9 else 0.0


@dataclass(frozen=True, slots=True)
class Layout:
    """What a loop needs to know about its operands: row strides (elements) and, when known,
    where A and B start within a page (bytes)."""

    sa: int
    sb: int
    sc: int
    a_start: int | None = None
    b_start: int | None = None
    c_start: int | None = None


ROW_SAMPLES = 4  # block rows (and placements, where the starts are unknown) a chain is run on
_A_RE, _A_FIRST, _B_RE, _B_FIRST, _C_RE, _C_FIRST, _S_RE, _S_FIRST = range(8)


def _chunk(start: int, nbytes: int) -> range:
    """Lines of ``nbytes`` bytes from byte ``start``."""
    return range(start // LINE, (start + nbytes - 1) // LINE + 1)


def _row_sequence(
    j: int,
    k: int,
    ta: bool,
    e: int,
    lay: Layout,
    a0: int,
    b0: int,
    c0: int,
    c_step: bool,
    halves: bool = False,
    events: list[tuple[int, str, int]] | None = None,
) -> list[tuple[int, object, int]]:
    """The line touches (line, line id, tag) of the row of 4 x 4 blocks of C before this one
    and of this one: per block C's 4 row pieces read, per k the A' line(s) then B's, C's pieces
    written. C moves down 4 rows a block row (``c_step``; else the call has one block row, and
    the one before is the same row of the call before); B stays; A's lines are taken as
    cached (those of the row before when transposed, else lines the kernel before wrote).
    Tags count this row's touches only: re-touches in the row, and first touches in it of lines
    the row before touched (B's always, A's when transposed and still in the same line, C's
    line shared by two rows); the other first touches are new lines, the walker's. With
    ``halves`` (our bf16 kernel on RISC-V, ``rv_bf16_block``) a full block is two halves of 2
    columns taking turns over RV_BF16_KB values of k: A's lines of those k twice, B's pieces
    of 2 columns; ``events`` (with ``halves``) gets where the kernel touches its stack frame
    (:func:`_frame_patterns`): (index in the sequence it comes before, event, 0 for the row
    before and 1 for this row), the event ``row`` at the start of each row, ``start`` and
    ``end`` before and after a full block, ``half0`` and ``half1`` at each end of a half's
    call, ``turn`` between the two calls of a turn, ``edge_start``, ``edge`` (each k) and
    ``edge_end`` in a partial block."""
    seq: list[tuple[int, object, int]] = []
    before: set = set()
    c_before = c0 - MR * lay.sc * e if c_step else c0  # a single row: the call before's
    for rnd, (a_at, c_at) in enumerate(((a0, c_before), (a0, c0))):
        seen: set = set()

        def touch(
            op: str, line: int, first: int, again: int, rnd=rnd, seen=seen, before=before
        ) -> None:
            lid = (op, line)
            if rnd == 0:
                tag = -1
            elif lid in seen:
                tag = again
            else:
                tag = first if lid in before else -1
            seen.add(lid)
            seq.append((line, lid, tag))

        def event(key: str, rnd=rnd) -> None:
            if events is not None and halves:
                events.append((len(seq), key, rnd))

        event("row")
        for jb in range(math.ceil(j / 4)):
            nb = min(4, j - 4 * jb) * e
            cl = [x for u in range(MR) for x in _chunk(c_at + u * lay.sc * e + jb * 4 * e, nb)]
            full = halves and nb == 4 * e
            event("start" if full else "edge_start")
            for x in cl:
                touch("C", x, _C_FIRST, _C_RE)
            if full:
                parts = [
                    (k0, min(k, k0 + RV_BF16_KB), off, 2 * e)
                    for k0 in range(0, k, RV_BF16_KB)
                    for off in (0, 2 * e)
                ]
            else:
                parts = [(0, k, 0, nb)]
            for k_lo, k_hi, off, width in parts:
                half = f"half{off // (2 * e)}"
                if full:
                    event(half)
                for kk in range(k_lo, k_hi):
                    if not full:
                        event("edge")
                    if ta:
                        for x in _chunk(a_at + kk * lay.sa * e, MR * e):
                            touch("A", x, _A_FIRST, _A_RE)
                    else:
                        for u in range(MR):
                            touch("A", (a_at + u * lay.sa * e + kk * e) // LINE, _A_FIRST, _A_RE)
                    for x in _chunk(b0 + kk * lay.sb * e + jb * 4 * e + off, width):
                        touch("B", x, _B_FIRST, _B_RE)
                if full:
                    event(half)
                    if off == 0:
                        event("turn")
            for x in cl:
                touch("C", x, _C_FIRST, _C_RE)
            event("end" if full else "edge_end")
        before = seen
    return seq


def frame_words(ta: bool, tb: bool, scaled: bool) -> dict[str, tuple[int, ...]]:
    """The stack words (bytes from the block loop's stack pointer, RV_FRAME_*) our bf16 kernel
    touches at each event of :func:`_row_sequence`, for A transposed (``ta``) or not, B
    transposed (``tb``) or not and A scaled or not (the half's copy)."""
    acc = tuple(range(RV_FRAME_ACC, RV_FRAME_ACC + 64, 8))
    half = tuple(range(RV_FRAME_HALF[(ta, tb, scaled)], 0, 8))
    return {
        "row": RV_FRAME_ROW,
        "start": RV_FRAME_START + acc,
        "end": RV_FRAME_END + acc,
        "half0": half + acc[:4],
        "half1": half + acc[4:],
        "turn": RV_FRAME_TURN,
        "edge_start": RV_FRAME_EDGE_START,
        "edge": RV_FRAME_EDGE_K,
        "edge_end": RV_FRAME_EDGE_END,
    }


@lru_cache(maxsize=8)
def _frame_patterns(
    ta: bool, scaled: bool, tb: bool = False
) -> tuple[tuple[frozenset[str], float], ...]:
    """The stack lines of our bf16 blocks (:func:`frame_words`), each as the events of
    :func:`_row_sequence` at which the kernel touches it, with how many lines have those
    events: the mean over the four places of the frame within a line (a stack pointer is
    16-byte aligned), and the table entry each full block reads (a line of its own,
    elsewhere)."""
    count: dict[frozenset[str], float] = {frozenset(("start",)): 1.0}  # rv_halves[...]
    for skew in range(0, LINE, 16):
        lines: dict[int, set[str]] = {}
        for key, ws in frame_words(ta, tb, scaled).items():
            for w in ws:
                lines.setdefault((skew + w) // LINE, set()).add(key)
        for keys in lines.values():
            count[frozenset(keys)] = count.get(frozenset(keys), 0.0) + 16 / LINE
    return tuple(sorted(count.items(), key=lambda x: sorted(x[0])))


FRAME_ROWS = 2  # block rows (with B and C placed as for unknown starts) of the frame's chain


@lru_cache(maxsize=256)
def _frame_misses(
    blocks_i: int,
    j: int,
    k: int,
    ta: bool,
    e: int,
    sa: int,
    sb: int,
    sc: int,
    a_skew: int,
    level: CacheLevel,
    scaled: bool,
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The misses per row of 4 x 4 blocks that our bf16 kernel's stack frame adds (by the tags
    of :func:`_row_chain`: the frame lines' own, and the operands' lines they evict), and
    where (per set, A's first line ``a_skew`` bytes into set 0): :func:`_frame_extra` of the
    rows' touches. The frame's misses follow A's lines (a line next to 4 lines of A that fill
    a set makes them miss again and again) and barely where B and C lie (their lines spread
    over the sets), so B and C are placed as for unknown starts (:func:`_row_chain`), on
    FRAME_ROWS block rows, and the result is shared by the calls of one shape wherever their
    operands lie."""
    lay = Layout(sa, sb, sc)
    a_step = MR * e if ta else MR * sa * e
    rows = sorted({round(x) for x in np.linspace(0, max(0, blocks_i - 1), FRAME_ROWS)})
    total = np.zeros(8)
    where = np.zeros(level.sets)
    for n, ia in enumerate(rows):
        b0, c0 = LINE * ((13 * n + 5) % 64), LINE * ((29 * n + 11) % 64)
        events: list[tuple[int, str, int]] = []
        seq = _row_sequence(
            j, k, ta, e, lay, a_skew + ia * a_step, b0, c0 + ia * MR * sc * e, blocks_i > 1,
            True, events,
        )  # fmt: skip
        got, at = _frame_extra(seq, events, _frame_patterns(ta, scaled), level)
        total += got
        where += at
    return tuple(float(x) for x in total / len(rows)), tuple(float(x) for x in where / len(rows))


def _frame_extra(
    seq: list[tuple[int, object, int]],
    events: list[tuple[int, str, int]],
    patterns: tuple[tuple[frozenset[str], float], ...],
    level: CacheLevel,
) -> tuple[np.ndarray, np.ndarray]:
    """Misses by tag (8 tags, :func:`_row_chain`'s) and per set that stack lines touched at
    ``events`` (:func:`_row_sequence`'s) add to the touches ``seq``, on average over every
    place of the stack: each line of the frame, with its ``patterns`` of events, lands in each
    set with chance 1/sets, and two never share one (the frame spans less than a page), so the
    mean is the sum over the sets and the patterns of (the exact chain of the set's touches
    with one more line touched at the pattern's events minus the set's own chain) / sets. A
    line touched several times between two touches of the set's other lines is one touch there
    (the rest hit). Its tags: none in the row before, in the row its first touch (counted when
    the row before touched it too) and its re-touches."""
    at_pattern = []
    for keys, weight in patterns:
        hits = sorted((at, rnd) for at, key, rnd in events if key in keys)
        if not hits:
            continue
        at = np.array([x[0] for x in hits])
        rnd = np.array([x[1] for x in hits])
        tags = np.where(rnd == 0, -1, _S_RE)
        if (rnd == 1).any():
            tags[int(np.argmax(rnd == 1))] = _S_FIRST if (rnd == 0).any() else -1
        at_pattern.append((at, tags, weight / level.sets))
    per_set: dict[int, list[tuple[int, object, int]]] = {}
    for at, (line, lid, tag) in enumerate(seq):
        per_set.setdefault(line % level.sets, []).append((at, lid, tag))
    total = np.zeros(8)
    where = np.zeros(level.sets)
    for st, touches in per_set.items():
        own = [(lid, tag) for _, lid, tag in touches]
        base = sequence_misses(own, level.ways)
        if base is None:
            continue
        places = np.array([at for at, _, _ in touches])
        done: dict[tuple, dict[int, float] | None] = {}  # patterns alike in this set: one chain
        for at, tags, weight in at_pattern:
            gaps, first = np.unique(np.searchsorted(places, at), return_index=True)
            insert = dict(zip(gaps.tolist(), tags[first].tolist(), strict=True))
            key = tuple(insert.items())
            if key not in done:
                merged: list[tuple[object, int]] = []
                for x, touch in enumerate(own):
                    if x in insert:
                        merged.append((("S", 0), insert[x]))
                    merged.append(touch)
                if len(own) in insert:
                    merged.append((("S", 0), insert[len(own)]))
                done[key] = sequence_misses(merged, level.ways)
            got = done[key]
            if got is None:
                continue
            for tag in set(got) | set(base):
                extra = weight * (got.get(tag, 0.0) - base.get(tag, 0.0))
                total[tag] += extra
                where[st] += extra
    return total, where


@lru_cache(maxsize=1024)
def _halves_retouch(k: int, ta: bool, e: int, lay: Layout, level: CacheLevel) -> float | None:
    """Expected misses per 4 x 4 block of the second half's touches of lines the first half
    touched in the same turn of RV_BF16_KB values of k (``rv_bf16_block``), from the exact chain
    of each set over one turn (the first half's touches, then the second's): a line the first
    half brought in is evicted before the second half comes back to it when later misses in its
    set pick its way. Mean over the block's column offsets within a line of B (and, where the
    starts are unknown, over placements of B against A). None when a turn overfills a set."""
    per_line = max(1, LINE // (4 * e))  # blocks whose 4 columns share one line of B
    known = lay.a_start is not None and lay.b_start is not None
    total, samples = 0.0, 0
    for jb in range(per_line):
        a0 = lay.a_start if known else 0
        b0 = lay.b_start if known else LINE * ((13 * jb + 5) % 64)
        for k_lo in range(0, k, RV_BF16_KB):
            per_set: dict[int, list[tuple[object, int]]] = {}
            for half in (0, 1):
                for kk in range(k_lo, min(k, k_lo + RV_BF16_KB)):
                    if ta:
                        a_lines = list(_chunk(a0 + kk * lay.sa * e, MR * e))
                    else:
                        a_lines = [(a0 + u * lay.sa * e + kk * e) // LINE for u in range(MR)]
                    b_at = b0 + kk * lay.sb * e + jb * 4 * e + half * 2 * e
                    lines = [("A", x) for x in a_lines] + [("B", x) for x in _chunk(b_at, 2 * e)]
                    for op, x in lines:
                        per_set.setdefault(x % level.sets, []).append(((op, x), half - 1))
            for touches in per_set.values():
                # a line first touched by the second half is a first touch: not counted here
                firsts = {lid for lid, tag in touches if tag < 0}
                seq = [(lid, tag if lid in firsts else -1) for lid, tag in touches]
                got = sequence_misses(seq, level.ways)
                if got is None:
                    return None
                total += got.get(0, 0.0)
        samples += 1
    return total / samples


def _row_chain_placed(
    blocks_i: int,
    j: int,
    k: int,
    ta: bool,
    e: int,
    lay: Layout,
    level: CacheLevel,
    halves: bool = False,
    scaled: bool = True,
) -> tuple | None:
    """:func:`_row_chain` with the operands moved together by whole lines so that A starts in
    set 0 (the same misses, their sets turned back): calls that differ only in where all three
    lie share one chain."""
    if lay.a_start is None or lay.b_start is None or lay.c_start is None:
        return _row_chain(blocks_i, j, k, ta, e, lay, level, halves, scaled)
    shift = lay.a_start // LINE * LINE
    moved = Layout(
        lay.sa, lay.sb, lay.sc, lay.a_start - shift, (lay.b_start - shift) % 4096,
        (lay.c_start - shift) % 4096,
    )  # fmt: skip
    got = _row_chain(blocks_i, j, k, ta, e, moved, level, halves, scaled)
    if got is None or got[-1] is None:
        return got
    turn = shift // LINE % level.sets
    return (*got[:-1], tuple(np.roll(got[-1], turn).tolist()))


@lru_cache(maxsize=4096)
def _row_chain(
    blocks_i: int,
    j: int,
    k: int,
    ta: bool,
    e: int,
    lay: Layout,
    level: CacheLevel,
    halves: bool = False,
    scaled: bool = True,
) -> tuple[float, ...] | None:
    """Misses per row of 4 x 4 blocks of C, by kind (A re-touched in the row, A's first touch
    in the row of a line the row before touched, the same for B, for C and for the kernel's
    stack lines: none but with ``halves``), and their share per set, from the exact
    chain of every set (:func:`edgefptt.hw.cache.sequence_misses`) over the line touches of
    the row before and of the row (:func:`_row_sequence`): the row starts from the sets the
    one before left, C's new lines of that row included (they sweep on through the sets, a
    few lines a row, and evict B's and A's lines as they go).

    The stationary strip rates (:func:`strip_rates`) hold a set's lines fixed round after round;
    here the lines of a set change from block to block (B's piece of a row moves 4 columns a
    block, a new line every 64 / (4 e) blocks; C's pieces too), and the lines that left stay in
    their ways until random victims clear them. Mean over ROW_SAMPLES block rows (A' and C move
    down by 4 rows each); where the starts within a page are unknown, each sample also places B
    and C elsewhere against A (offsets in lines not multiples of 8: A's columns 512 B or 2 KiB
    apart fall in every 8th or 32nd set). None when a set has too many lines to follow (a sweep
    far bigger than the cache: the stationary rates hold there).

    With ``halves`` (our bf16 blocks on RISC-V) the row also touches the kernel's stack frame
    (RV_FRAME_*: the half calls' saved registers and accumulators, the block loop's locals, a
    partial block's accumulators every k; ``scaled``: A is scaled, the half's copy saves more
    registers): its misses, and those it adds to the operands' lines, are
    :func:`_frame_misses`'."""
    a_step = MR * e if ta else MR * lay.sa * e
    a_lines = k if ta else MR * math.ceil(k * e / LINE)
    if (k + a_lines) / level.sets > MAX_LIVE / 2:  # a block round alone overfills the sets
        return None
    rows = sorted({round(x) for x in np.linspace(0, max(0, blocks_i - 1), ROW_SAMPLES)})
    known = lay.a_start is not None and lay.b_start is not None and lay.c_start is not None
    total = np.zeros(8)
    where = np.zeros(level.sets)
    for n, ia in enumerate(rows):
        if known:
            a0, b0, c0 = lay.a_start, lay.b_start, lay.c_start
        else:
            a0, b0, c0 = 0, LINE * ((13 * n + 5) % 64), LINE * ((29 * n + 11) % 64)
        seq = _row_sequence(
            j, k, ta, e, lay, a0 + ia * a_step, b0, c0 + ia * MR * lay.sc * e, blocks_i > 1,
            halves,
        )  # fmt: skip
        per_set: dict[int, list[tuple[object, int]]] = {}
        for line, lid, tag in seq:
            per_set.setdefault(line % level.sets, []).append((lid, tag))
        for st, touches in per_set.items():
            if len({lid for lid, _ in touches}) > 3 * MAX_LIVE:
                return None
            got = sequence_misses(touches, level.ways)
            if got is None:
                return None
            for tag, m in got.items():
                total[tag] += m
                where[st] += m
    total /= len(rows)
    where /= len(rows)
    if halves:
        a0 = lay.a_start or 0
        extra, extra_where = _frame_misses(
            blocks_i, j, k, ta, e, lay.sa, lay.sb, lay.sc, a0 % LINE, level, scaled
        )
        total += extra
        where = np.maximum(where + np.roll(extra_where, a0 // LINE), 0.0)
    shares = tuple(float(x) for x in where / where.sum()) if known and where.sum() > 0 else None
    return (*(float(x) for x in total), shares)


def _naive(
    i: int, j: int, k: int, ta: bool, tb: bool, e: int, lay: Layout, level: CacheLevel
) -> list[Reuse]:
    """The plain i, j, k loop: C[i][j] = sum_k A'[i][k] B'[k][j] (gemmini.h's matmul_cpu when
    an operand is transposed or I, J are not multiples of 4).

    Each (i, j) reads C[i][j] (D == C) or the bias, k values of A' and k of B', and writes
    C[i][j]. The lines of A' and B' one (i, j) touches are touched again at the next j (a line
    of B holds 64 / e columns, one of a transposed A 64 / e values of i), with C's new line
    every 64 / e values of j streamed past (:func:`strip_miss_rate`, set by set); all of B is
    swept again for each i, with C's row streamed past.
    """
    per_line = LINE / e
    out: list[Reuse] = []
    a_all = rows_lines(k, i, lay.sa, e) if ta else rows_lines(i, k, lay.sa, e)
    b_all = rows_lines(j, k, lay.sb, e) if tb else rows_lines(k, j, lay.sb, e)
    c_miss = spread_miss_rate(a_all + b_all + rows_lines(i, j, lay.sc, e), level)
    c_row = rows_lines(1, j, lay.sc, e) * c_miss  # C lines streamed past per i
    if tb:  # B' column j is row j of B: all of B swept for each i, A's row i per j
        b_lines = rows_lines(j, k, lay.sb, e)
        p_b = spread_miss_rate(b_lines, level, c_row)
        out.append(Reuse(b_lines, i - 1, b_lines, rate=p_b))
        a_lines = i * segment_lines(k, e)
        per_j = segment_lines(k, e) * p_b + c_miss / per_line  # B's row and C's share per j
        out.append(Reuse(a_lines, j - 1, per_j, False, 1.0))
        return out
    # column j of B walks k rows; the next L/e columns reuse those lines
    a_stride = lay.sa * e if ta else 0
    strip = (k, a_stride, 0 if ta else 1, k * e, lay.sb * e, level, c_miss / per_line)
    rate_a, rate_b, _ = _strip_over_call(strip, lay, i, e if ta else lay.sa * e, j, e)
    b_lines = k * segment_lines(j, e)
    events = k * min(j, per_line) * math.ceil(j / per_line)
    out.append(Reuse(b_lines, max(0.0, events / b_lines - 1) * i, k, rate=rate_b))
    # the next i touches B's lines again: after the strip's own round when all of J fits one
    # line of B (our fp32 edge column: A's column between two touches), else after all of B
    per_i = rate_b if j <= per_line else spread_miss_rate(b_lines, level, c_row)
    out.append(Reuse(b_lines, i - 1, b_lines, rate=per_i))
    if ta:  # A' row i is column i of A: k lines, shared by L/e consecutive i
        a_lines = k * math.ceil(i / per_line)
        out.append(Reuse(a_lines, j * min(i, per_line) - 1, k, rate=rate_a))
    else:
        a_lines = i * segment_lines(k, e)
        out.append(Reuse(a_lines, j - 1, k, rate=rate_a))
    return out


def _blocked4(
    i: int,
    j: int,
    k: int,
    ta: bool,
    e: int,
    lay: Layout,
    level: CacheLevel,
    edge: bool,
    c_cached: bool = False,
    halves: bool = False,
    scaled: bool = True,
) -> list[Reuse]:
    """4 x 4 blocks of C over all k (gemmini.h's order, our scalar fp32 nn kernel and our bf16
    blocks), A plain or transposed (A' rows are then columns of A: the 4 values of one k share
    a line). Each block touches k lines of B (strided) and the A' lines, reads its 4 x 4 of C
    and writes it back: per block a line of C's new lines streams past (one per 64 / (4 e)
    blocks per row). The B lines are touched again by the next blocks of the same row (a line
    holds 64 / (4 e) blocks), and all of B again for each block row of C, with that row of C
    streamed past; the A' lines again for each block of the row. With ``edge`` (our fp32
    code) the columns beyond the last multiple of 4 are a second pass, element by element, after
    all blocks: it touches C's edge lines and A again, long after the blocks did: after the
    blocks' misses, C's lines among them unless ``c_cached`` (C's lines cached already, as
    when a call accumulates into a C it touched a few calls before: they hit, evicting none).
    With ``halves`` (our bf16 blocks on RISC-V; ``scaled``: A is scaled) the row chain follows
    the halves and the kernel's stack frame (:func:`_row_chain`); where the chain is not used
    (a block's round overfills the sets: k large) the halves' re-touches are added
    (:func:`_halves_retouch`) and the frame's lines as touches among a stream of misses
    (:func:`_frame_stream`)."""
    blocks_i = math.ceil(i / MR) if not edge else i // MR
    blocks_j = math.ceil(j / 4) if not edge else j // 4
    cols = min(j, 4 * blocks_j)
    b_lines = rows_lines(k, cols, lay.sb, e)
    events = k * blocks_j * segment_lines(4, e)  # a window of 4 columns may straddle two lines
    a_lines = k * segment_lines(4, e) if ta else MR * segment_lines(k, e)
    c_lines = rows_lines(i, j, lay.sc, e)
    c_miss = spread_miss_rate(c_lines + b_lines + a_lines * blocks_i, level)
    c_block = MR * 4 * e / LINE * c_miss  # new lines of C per block that miss
    c_rows = rows_lines(MR, j, lay.sc, e) * c_miss
    strip = (k, lay.sa * e, 0 if ta else MR, k * e, lay.sb * e, level, c_block)
    a_step = MR * e if ta else MR * lay.sa * e
    # c_again: C's block read before the k loop, written back after it
    rate_a, rate_b, c_again = _strip_over_call(strip, lay, blocks_i, a_step, blocks_j, 4 * e)
    chain = (
        _row_chain_placed(blocks_i, cols, k, ta, e, lay, level, halves, scaled)
        if blocks_i and blocks_j
        else None
    )
    if chain is not None:  # misses per row of blocks, the sets followed line by line
        a_re, a_first, b_re, b_first, c_re, c_first, s_re, s_first, shares = chain
        out = [  # the first block row has no row before it
            Reuse(blocks_i * c_re + (blocks_i - 1) * c_first, 1, 0, rate=1.0, sets=shares),
            Reuse(blocks_i * b_re + (blocks_i - 1) * b_first, 1, 0, rate=1.0, sets=shares),
            Reuse(blocks_i * a_re + (blocks_i - 1) * a_first, 1, 0, rate=1.0, sets=shares),
            Reuse(blocks_i * s_re + (blocks_i - 1) * s_first, 1, 0, rate=1.0, sets=shares),
        ]
        block_misses = sum(r.lines for r in out)
    else:
        out = [
            Reuse(blocks_i * blocks_j * MR * segment_lines(4, e), 1, 0, rate=c_again),
            Reuse(b_lines, max(0.0, events / b_lines - 1) * blocks_i, k + a_lines, rate=rate_b),
            Reuse(b_lines, blocks_i - 1, b_lines, rate=spread_miss_rate(b_lines, level, c_rows)),
            Reuse(a_lines * blocks_i, blocks_j - 1, k, False, 1.0, rate=rate_a),
        ]
        block_misses = blocks_i * blocks_j * a_lines * rate_a
        again = _halves_retouch(k, ta, e, lay, level) if halves and blocks_i and blocks_j else None
        if again:  # the chain above follows the halves; here they are added
            out.append(Reuse(blocks_i * blocks_j * again, 1, 0, rate=1.0))
        if halves and blocks_i and blocks_j:  # and the stack frame's own lines
            first = b_lines + a_lines * blocks_i + c_lines  # the operands' lines, once
            per_block = (sum(r.l1_misses(level) for r in out) + first) / (blocks_i * blocks_j)
            own = _frame_stream(k, per_block, level, ta, scaled)
            out.append(Reuse(blocks_i * blocks_j * own, 1, 0, rate=1.0))
    if edge and cols < j:
        gone = _edge_age((0.0 if c_cached else c_lines) + block_misses, level)
        a_all = k * math.ceil(i / (LINE / e)) if ta else i * segment_lines(k, e)
        out.append(Reuse(i * segment_lines(j - cols, e), 1, 0, rate=gone))
        out.append(Reuse(a_all, 1, 0, rate=gone))
        b_edge = None if lay.b_start is None else (lay.b_start + cols * e) % 4096
        edge_lay = Layout(lay.sa, lay.sb, lay.sc, lay.a_start, b_edge, lay.c_start)
        out += _naive(i, j - cols, k, ta, False, e, edge_lay, level)
    if edge and blocks_i * MR < i:  # the last rows: all of B again, once per row
        again = spread_miss_rate(b_lines, level)
        out.append(Reuse(b_lines, i - blocks_i * MR, b_lines, rate=again))
    return out


def _frame_stream(
    k: int, per_block: float, level: CacheLevel, ta: bool, scaled: bool, tb: bool = False
) -> float:
    """Misses per 4 x 4 block of our bf16 kernel's stack lines (:func:`_frame_patterns`) where
    the row chain is not used: ``per_block`` other misses a block, spread over the sets, and a
    line touched n times a block, evenly, is gone at a touch with the chance that the misses
    since its last touch (per_block / n) evicted it. n: the places in a full block's events
    (:func:`_row_sequence`: its start, each end of a half call, the end; the end of one call
    and the start of the next are one place) where one of the line's events comes. Lines of
    the rows' and partial blocks' events alone are not counted, nor the misses of the
    operands' lines that the frame's misses evict."""
    turns = math.ceil(k / RV_BF16_KB)
    places = [{"start"}, {"half0"}, *[{"half0", "turn", "half1"}, {"half1", "half0"}] * turns]
    places[-1] = {"half1"}
    places.append({"end"})
    total = 0.0
    for keys, weight in _frame_patterns(ta, scaled, tb):
        n = sum(1 for at in places if at & keys)
        if n:
            total += weight * n * float(level.evict_probability(per_block / n))
    return total


def _ours_nt(
    i: int, j: int, k: int, e: int, lay: Layout, level: CacheLevel, scaled: bool = False
) -> list[Reuse]:
    """Our nt kernel (B transposed): 4 rows of A against 4 rows of B (16 dot products in
    registers; in bf16 the two halves of rv_bf16_block, the same lines), B swept once per
    block of 4 rows of A (with those rows of C streamed past), the 4 rows of A re-read for
    every block of B (4 rows of B new each time). In bf16 (our RISC-V blocks) the stack
    frame's lines are touches among those misses too (:func:`_frame_stream`; ``scaled``: A is
    scaled), and their misses come between two reads of A's rows."""
    b_lines = rows_lines(j, k, lay.sb, e)
    a_lines = MR * segment_lines(k, e)
    blocks_i = math.ceil(i / MR)
    c_miss = spread_miss_rate(b_lines + a_lines * blocks_i + rows_lines(i, j, lay.sc, e), level)
    c_rows = rows_lines(MR, j, lay.sc, e) * c_miss
    p_b = spread_miss_rate(b_lines, level, c_rows)
    per_block = 4 * segment_lines(k, e) * p_b + MR * 4 * e / LINE * c_miss
    blocks = blocks_i * math.ceil(j / 4)
    own = _frame_stream(k, per_block, level, False, scaled, True) if e == 2 and blocks else 0.0
    return [
        Reuse(b_lines, blocks_i - 1, b_lines, rate=p_b),
        Reuse(a_lines * blocks_i, math.ceil(j / 4) - 1, per_block + own, False, 1.0),
        Reuse(blocks * own, 1, 0, rate=1.0),
    ]


def matmul_pattern(
    kernel: Kernel,
    workload: Workload,
    elem_bytes: int,
    code: str,
    addresses: dict[str, int] | None = None,
    exact: bool = False,
) -> Pattern:
    """Touches and re-touches of one matmul call under ``code``'s loop order; ``addresses``
    (buffer -> byte address), where known, place the operands in the sets (``exact``: the
    built program's own addresses)."""
    mm = kernel.matmul
    assert mm is not None
    a, b = kernel.reads[0], kernel.reads[1]
    out = kernel.writes[0]
    touches = [touch_of(v, workload, elem_bytes, addresses, exact) for v in (a, b, out)]
    if len(kernel.reads) > 2 and kernel.reads[2].buffer != out.buffer:
        touches.append(touch_of(kernel.reads[2], workload, elem_bytes, addresses, exact))
    lay = Layout(
        _geometry(a, workload)[5],
        _geometry(b, workload)[5],
        _geometry(out, workload)[5],
        _page_offset(a, workload, elem_bytes, addresses),
        _page_offset(b, workload, elem_bytes, addresses),
        _page_offset(out, workload, elem_bytes, addresses),
    )
    init = not (len(kernel.reads) > 2 and kernel.reads[2].buffer == out.buffer)
    chained = (
        _nt_call_chain(mm.m, mm.n, mm.k, elem_bytes, lay, init, _l1())
        if code == "generated" and elem_bytes == 4 and mm.transpose_b and not mm.transpose_a
        else None
    )
    if chained is not None:  # the call's re-touches, set by set, line by line
        missed, missed_sets, kept, kept_sets = chained
        return Pattern(
            tuple(touches),
            (Reuse(missed, 1, 0, rate=1.0, sets=missed_sets),),
            None,
            (Reuse(kept, 1, 0, rate=1.0, sets=kept_sets),),
        )
    reuses = _matmul_reuses(mm, elem_bytes, code, lay)
    cached = _matmul_reuses(mm, elem_bytes, code, lay, True)
    return Pattern(tuple(touches), reuses, None, None if cached == reuses else cached)


NT_CHAIN_MAX_TOUCHES = 200_000  # bigger calls keep the sweep rates of _ours_nt


@lru_cache(maxsize=1024)
def _nt_call_chain(
    i: int, j: int, k: int, e: int, lay: Layout, init: bool, level: CacheLevel
) -> tuple[float, tuple[float, ...], float, tuple[float, ...]] | None:
    """Re-touch misses of one call of our fp32 nt kernel (matmul_portable.c: C set from its
    start value first unless it accumulates, then 4 x 4 blocks of C, each reading its 16
    values of C, per k 4 values of A and 4 of B's rows, and writing C back; then the edge
    columns element by element), from the exact chain of every set over the call's line
    touches, where the three operands' places in a page are known: once with every first
    touch missing and once with every one cached. C's lines, set first and touched again
    block after block while B's rows stream through the sets, are what the sweep rates of
    :func:`_ours_nt` miss. None where the places are unknown or the call is long."""
    if lay.a_start is None or lay.b_start is None or lay.c_start is None:
        return None
    i_main, j_main = i - i % MR, j - j % 4
    edge = (i - i_main) * j + i_main * (j - j_main)
    n = (i * j if init else 0) + i_main * j_main // 4 * (8 + 8 * k) + edge * (2 + 2 * k)
    if n > NT_CHAIN_MAX_TOUCHES:
        return None
    a0, b0, c0 = lay.a_start, lay.b_start, lay.c_start
    sa, sb, sc = lay.sa * e, lay.sb * e, lay.sc * e
    # line numbers within a page, operands apart (two may lie at the same page offset)
    a0, b0, c0 = a0 + (1 << 32), b0 + (2 << 32), c0 + (3 << 32)
    seq: list[int] = []
    if init:
        seq += [(c0 + r * sc + q * e) // LINE for r in range(i) for q in range(j)]
    for r in range(0, i_main, MR):
        for q in range(0, j_main, 4):
            cl = [(c0 + (r + u) * sc + (q + v) * e) // LINE for u in range(MR) for v in range(4)]
            seq += cl
            for kk in range(k):
                seq += [(a0 + (r + u) * sa + kk * e) // LINE for u in range(MR)]
                seq += [(b0 + (q + v) * sb + kk * e) // LINE for v in range(4)]
            seq += cl
    for r in range(i):
        for q in range(j_main if r < i_main else 0, j):
            seq.append((c0 + r * sc + q * e) // LINE)
            for kk in range(k):
                seq += [(a0 + r * sa + kk * e) // LINE, (b0 + q * sb + kk * e) // LINE]
            seq.append((c0 + r * sc + q * e) // LINE)
    out = []
    for first in (-1, RESIDENT):
        per_set: dict[int, list[tuple[object, int]]] = {}
        seen: set[int] = set()
        for x in seq:
            per_set.setdefault(x % level.sets, []).append((x, 0 if x in seen else first))
            seen.add(x)
        where = np.zeros(level.sets)
        for st, touches in per_set.items():
            got = sequence_misses(touches, level.ways)
            if got is None:
                return None
            where[st] = got.get(0, 0.0)
        total = float(where.sum())
        shares = where / total if total > 0 else np.full(level.sets, 1.0 / level.sets)
        out += [total, tuple(float(x) for x in shares)]
    return out[0], out[1], out[2], out[3]


@lru_cache(maxsize=4096)
def _matmul_reuses(
    mm: MatmulSpec, e: int, code: str, lay: Layout, cached: bool = False
) -> tuple[Reuse, ...]:
    """The re-touches of one call: its shape, layout and loop order (``cached``: when its
    first touches all hit)."""
    from edgefptt.hw.cache import ROCKET_CHIPYARD

    i, j, k = mm.m, mm.n, mm.k
    ta, tb = mm.transpose_a, mm.transpose_b
    l1 = ROCKET_CHIPYARD.l1d
    if code == "paper":
        if not ta and not tb and i % 4 == 0 and j % 4 == 0:
            reuses = _blocked4(i, j, k, False, e, lay, l1, edge=False)
        else:
            reuses = _naive(i, j, k, ta, tb, e, lay, l1)
    elif tb and not ta:  # fp32 dot products, bf16 blocks over 4 rows of B: the same lines
        reuses = _ours_nt(i, j, k, e, lay, l1, mm.a_scale != 1.0)
    else:  # fp32: an edge pass after the blocks; bf16: partial blocks at the edges
        reuses = _blocked4(
            i, j, k, ta, e, lay, l1, edge=e == 4, c_cached=cached, halves=e == 2,
            scaled=mm.a_scale != 1.0,
        )  # fmt: skip
    return tuple(r for r in reuses if r.lines > 0 and r.times > 0)


def kernel_pattern(
    kernel: Kernel,
    workload: Workload,
    elem_bytes: int,
    code: str,
    addresses: dict[str, int] | None = None,
    exact: bool = False,
) -> Pattern:
    if kernel.matmul is not None:
        return matmul_pattern(kernel, workload, elem_bytes, code, addresses, exact)
    return streaming_pattern(
        kernel, workload, elem_bytes, addresses if code == "generated" else None, exact
    )
