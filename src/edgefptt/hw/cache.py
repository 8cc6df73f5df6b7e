"""The Rocket tile's memory hierarchy as Chipyard configures it, and a random-replacement model.

Parameters (docs/hardware.md gives the sources): L1 I and D caches of 64 sets x 4 ways x 64 B
(rocket-chip ``DCacheParams``/``ICacheParams`` defaults, kept by ``WithNBigCores``), random
replacement, a blocking D-cache (``nMSHRs = 0`` in ``WithNBigCores``: every miss stalls the
core); a shared inclusive L2 of 512 KiB, 8 ways, 64 B lines (``WithInclusiveCache`` defaults,
one bank, in Chipyard's ``AbstractConfig``). The miss latencies are not in those sources: see
``L2_HIT_CYCLES`` and ``DRAM_CYCLES``.

Miss model. With random replacement a line survives each miss in its set with probability
``1 - 1/ways``. A line touched again after ``m`` misses spread over ``sets`` sets is gone with
probability ``1 - (1 - 1/ways) ** (m / sets)`` (:meth:`CacheLevel.evict_probability`). A loop
that sweeps ``n`` lines again and again misses on a fraction ``p`` of them with
``p = evict(n p)``, the fixed point of :func:`sweep_miss_rate` (zero while the sweep fits).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

# Cycles the core stalls when an L1 miss hits in the L2, and in addition when the L2 misses
# too. Not fitted (no CPU-only measurement is in the package) and not read from a source:
# assumed from the structure (TileLink to the L2, its pipeline, 4 beats of 16 B back; FASED's
# DDR3 model behind the memory bus). docs/hardware.md explains them.
L2_HIT_CYCLES = 20.0
DRAM_CYCLES = 80.0


@dataclass(frozen=True, slots=True)
class CacheLevel:
    """One set-associative cache with random replacement."""

    name: str
    sets: int
    ways: int
    line_bytes: int = 64

    @property
    def lines(self) -> int:
        return self.sets * self.ways

    @property
    def capacity_bytes(self) -> int:
        return self.lines * self.line_bytes

    @property
    def spike_arg(self) -> str:
        """Spike's ``sets:ways:block`` form of this cache."""
        return f"{self.sets}:{self.ways}:{self.line_bytes}"

    def evict_probability(self, misses_between: float | np.ndarray) -> float | np.ndarray:
        """Chance that a line is gone after ``misses_between`` misses (random victims)."""
        keep = 1.0 - 1.0 / self.ways
        return 1.0 - np.power(keep, np.asarray(misses_between, dtype=float) / self.sets)


@dataclass(frozen=True, slots=True)
class Hierarchy:
    """L1 instruction and data caches per core, one shared L2, DRAM behind it."""

    l1i: CacheLevel
    l1d: CacheLevel
    l2: CacheLevel
    l2_hit_cycles: float = L2_HIT_CYCLES
    dram_cycles: float = DRAM_CYCLES

    def stall_cycles(self, l1_misses: float, l2_misses: float) -> float:
        """Cycles a blocking core waits for these misses (each L2 miss is also an L1 miss)."""
        return l1_misses * self.l2_hit_cycles + l2_misses * self.dram_cycles

    def spike_args(self) -> list[str]:
        """The same caches for Spike's cache simulator."""
        return [
            f"--ic={self.l1i.spike_arg}",
            f"--dc={self.l1d.spike_arg}",
            f"--l2={self.l2.spike_arg}",
        ]


ROCKET_CHIPYARD = Hierarchy(
    l1i=CacheLevel("L1I", sets=64, ways=4),
    l1d=CacheLevel("L1D", sets=64, ways=4),
    l2=CacheLevel("L2", sets=1024, ways=8),
)


def sweep_miss_rate(lines: float, level: CacheLevel, other_misses: float = 0.0) -> float:
    """Fraction of ``lines`` that miss when the same lines are swept again and again.

    Between two touches of a line the sweep misses ``lines * p`` times (plus ``other_misses``
    from other data); ``p = evict(lines * p + other)`` is solved by fixed-point iteration from
    p = 1, which converges to the largest root. A sweep that fits the cache and sees no other
    misses does not miss.
    """
    if lines <= 0:
        return 0.0
    if lines <= level.lines and other_misses <= 0:
        return 0.0
    p = 1.0
    for _ in range(200):
        new = float(level.evict_probability(lines * p + other_misses))
        if abs(new - p) < 1e-9:
            break
        p = new
    return p if p > 1e-6 else 0.0


CHAIN_MAX_LINES = 10  # sets holding more lines take the closed form (state space grows fast)


@lru_cache(maxsize=4096)
def set_miss_rate(lines: int, other: float, ways: int) -> float:
    """Miss rate of ``lines`` lines of one set touched in turn, round after round, with
    ``other`` further misses in the set per round (Poisson, from data streamed past), random
    replacement over ``ways`` ways.

    Up to :data:`CHAIN_MAX_LINES` lines it is the stationary miss rate of the exact Markov
    chain: the state is which of the lines are resident, counted from the line touched next;
    a miss (of a line or of the stream) evicts a random way, so a resident line goes with
    probability 1/ways. Beyond, the closed form p = 1 - exp(-other/ways) (1 - p/ways)^(lines-1):
    between two touches of a line the other lines miss independently with rate p and the stream
    ``other`` times, each miss keeping it with probability 1 - 1/ways (the two agree within 1 %
    from 10 lines up). Lines that fit the ways with nothing streamed past never miss.
    """
    if lines <= 0 or (lines <= ways and other <= 0):
        return 0.0
    if lines > CHAIN_MAX_LINES:
        p = 1.0
        for _ in range(2000):
            new = 1.0 - math.exp(-other / ways) * (1.0 - p / ways) ** (lines - 1)
            if abs(new - p) < 1e-12:
                break
            p = new
        return p
    return _chain_rate(lines, round(other, 4), ways)


def _evict(dist: dict[frozenset, float], ways: int) -> dict[frozenset, float]:
    """One miss in the set: a random way, a resident line with probability 1/ways each."""
    out: dict[frozenset, float] = {}
    for s, pr in dist.items():
        f = len(s) / ways
        if f < 1:
            out[s] = out.get(s, 0.0) + pr * (1 - f)
        for x in s:
            t = s - {x}
            out[t] = out.get(t, 0.0) + pr * f / len(s)
    return out


def _chain_rate(n: int, other: float, ways: int) -> float:
    states = [
        frozenset(c) for r in range(min(n, ways) + 1) for c in itertools.combinations(range(n), r)
    ]
    index = {s: i for i, s in enumerate(states)}
    mu = other / n  # stream misses between two touches
    counts = [(0, math.exp(-mu))] + [
        (k, math.exp(-mu) * mu**k / math.factorial(k)) for k in range(1, 10) if mu > 0
    ]
    step = np.zeros((len(states), len(states)))
    miss = np.zeros(len(states))
    for s in states:
        after: dict[frozenset, float] = {}
        cur = {s: 1.0}
        for k, pk in counts:
            if k:
                cur = _evict(cur, ways)
            for t, pr in cur.items():
                after[t] = after.get(t, 0.0) + pk * pr
        for t, pr in after.items():
            if 0 in t:  # the next line is resident: a hit
                nxt = {t: pr}
            else:
                miss[index[s]] += pr
                nxt = {u | {0}: q for u, q in _evict({t: pr}, ways).items()}
            for u, q in nxt.items():  # count from the line after it
                step[index[s], index[frozenset((x - 1) % n for x in u)]] += q
    pi = np.full(len(states), 1.0 / len(states))
    for _ in range(20000):
        new = pi @ step
        if np.abs(new - pi).max() < 1e-13:
            break
        pi = new
    return float(new @ miss / new.sum())


def spread_miss_rate(lines: float, level: CacheLevel, other: float = 0.0) -> float:
    """Miss rate of ``lines`` lines spread evenly over the sets, touched round after round,
    with ``other`` further misses per round spread evenly too (:func:`set_miss_rate` per set:
    some sets hold one line more than others)."""
    if lines <= 0:
        return 0.0
    per = lines / level.sets
    lo = math.floor(per)
    frac = per - lo
    lam = other / level.sets
    missed = (1 - frac) * lo * set_miss_rate(lo, lam, level.ways) + frac * (lo + 1) * set_miss_rate(
        lo + 1, lam, level.ways
    )
    return missed / per


def lines_of(elements: float, elem_bytes: int, line_bytes: int = 64) -> float:
    """Lines a contiguous run of ``elements`` occupies (whole lines, at least one)."""
    if elements <= 0:
        return 0.0
    return float(max(1, math.ceil(elements * elem_bytes / line_bytes)))


# Lines of one set a sequence may keep track of at once (2 ** MAX_TRACKED states of residency).
MAX_TRACKED = 10


@lru_cache(maxsize=16)
def _tables(n: int, ways: int) -> tuple:
    """Index tables of the residency states of ``n`` tracked lines (bit masks of at most
    ``ways`` bits): per bit, the states without it and with it, the ways a miss keeps free of
    tracked lines, and per pair of bits the states without the first and with the second."""
    masks = np.arange(1 << n)
    pop = np.array([bin(m).count("1") for m in range(1 << n)])
    without = [masks[(masks >> b) & 1 == 0] for b in range(n)]
    with_ = [masks[(masks >> b) & 1 == 1] for b in range(n)]
    keep = [(ways - pop[w]).clip(min=0) / ways for w in without]
    room = [pop[w] < ways for w in without]
    pairs = [
        [w[(w >> y) & 1 == 1] if y != b else None for y in range(n)] for b, w in enumerate(without)
    ]
    return without, with_, keep, room, pairs


RESIDENT = -2  # tag of a first touch of a line that is cached already (where it can be)


def sequence_misses(seq: list[tuple[object, int]], ways: int) -> dict[int, float] | None:
    """Expected misses, per tag, of the touches ``seq`` (line, tag) of one cache set, in
    program order, under random replacement from an empty set; tags below zero are not
    counted (:data:`RESIDENT`: the line is in a way no tracked line holds, where one is).
    None when more than :data:`MAX_TRACKED` lines are live at once.

    Exact: the state is which of the live lines are resident (a distribution over those
    subsets). A miss fills one of the ``ways`` ways at random, so it evicts each resident line
    with probability 1/ways and otherwise a way that holds a line touched no more (or nothing).
    A line is live from its first touch to its last; after that its way counts as such a way.
    This is what a stationary rate misses when the lines of a set change from round to round
    (a 4 x 4 block of C moving along B): a line that leaves stays until a miss happens to pick
    its way, 1/ways of the set's misses, so the lines that stay miss again meanwhile.
    """
    if all(tag < 0 for _, tag in seq):
        return {}
    last: dict[object, int] = {}
    for n, (x, _) in enumerate(seq):
        last[x] = n
    size = min(MAX_TRACKED, len(last))
    without_, with_, keep_, room_, pairs_ = _tables(size, ways)
    dist = np.zeros(1 << size)
    dist[0] = 1.0
    free = list(range(size - 1, -1, -1))
    bit: dict[object, int] = {}
    out: dict[int, float] = {}
    prev = None
    for n, (x, tag) in enumerate(seq):
        b = bit.get(x)
        if x != prev:  # the same line again, nothing between in this set: a hit
            if b is None:
                if not free:
                    return None
                b = bit[x] = free.pop()
            without = without_[b]
            src = dist[without]
            if tag == RESIDENT:  # cached already where a way is not one of the tracked lines'
                room = room_[b]
                dist = dist.copy()
                dist[without[room] | (1 << b)] += src[room]
                dist[without[room]] = 0.0
                src = dist[without]
            pm = float(src.sum())
            if tag >= 0:
                out[tag] = out.get(tag, 0.0) + pm
            if pm > 0.0:
                new = dist.copy()
                new[without] = 0.0
                new[without | (1 << b)] += src * keep_[b]
                for y in bit.values():
                    if y == b:
                        continue
                    sel = pairs_[b][y]
                    new[(sel & ~(1 << y)) | (1 << b)] += dist[sel] / ways
                dist = new
        prev = x
        if last[x] == n:  # no more touches: its way holds a dead line
            w = with_[b]
            dist[w & ~(1 << b)] += dist[w]
            dist[w] = 0.0
            del bit[x]
            free.append(b)
            if prev == x:
                prev = None
    return out
