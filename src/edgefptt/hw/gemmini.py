"""Matmuls on the Gemmini accelerator: tile choice, a calibrated cost, and the naive model.

Both models take one call of the tiled matmul (a :class:`MatmulSpec`) and an accelerator
description, and return cycles as the core sees them (``rdcycle`` around the call).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from edgefptt.workload.kernels import MatmulSpec

BANK_NUM = 4  # scratchpad banks (gemmini.md)


@dataclass(frozen=True, slots=True)
class Accelerator:
    """The accelerator parameters a matmul cost depends on (derived from a SoCSpec)."""

    dim: int
    input_bytes: int
    acc_bytes: int
    scratchpad_bytes: int
    accumulator_bytes: int
    hop_cycles: int
    dma_bytes_per_cycle: int
    dataflow: str = "WS"


@dataclass(frozen=True, slots=True)
class Tiling:
    """Blocks of the padded problem and the tile sizes (in blocks) the library picks."""

    blocks_i: int
    blocks_j: int
    blocks_k: int
    tile_i: int
    tile_j: int
    tile_k: int

    @property
    def tiles(self) -> int:
        return (
            math.ceil(self.blocks_i / self.tile_i)
            * math.ceil(self.blocks_j / self.tile_j)
            * math.ceil(self.blocks_k / self.tile_k)
        )

    @property
    def block_products(self) -> int:
        return self.blocks_i * self.blocks_j * self.blocks_k


def choose_tiles(m: int, n: int, k: int, acc: Accelerator) -> Tiling:
    """Tile sizes as Gemmini's tiled_matmul_auto picks them (gemmini.md).

    Half the scratchpad and half the accumulator are usable (double buffering). Start from a
    square-ish tile bounded by those halves, then grow J, I, K greedily while the A and B tiles
    fit the scratchpad budget and the C tile fits the accumulator budget.
    """
    dim = acc.dim
    bi, bj, bk = -(-m // dim), -(-n // dim), -(-k // dim)
    bank_rows = acc.scratchpad_bytes // (BANK_NUM * dim * acc.input_bytes)
    acc_rows = acc.accumulator_bytes // (dim * acc.acc_bytes)
    max_spad_rows = BANK_NUM * bank_rows // 2
    max_acc_rows = acc_rows // 2
    db_mats_in_partition = (max_spad_rows // 2) // dim
    db_mats_in_acc = max_acc_rows // dim
    max_tile_ij = max(1, math.isqrt(max(db_mats_in_acc, 1)))
    max_tile_k = max(1, db_mats_in_partition // max_tile_ij)
    ti, tj, tk = min(bi, max_tile_ij), min(bj, max_tile_ij), min(bk, max_tile_k)

    def fits(i: int, j: int, kk: int) -> bool:
        return (i * kk + kk * j) * dim <= max_spad_rows and i * j * dim <= max_acc_rows

    while True:
        grew = False
        if tj < bj and fits(ti, tj + 1, tk):
            tj, grew = tj + 1, True
        if ti < bi and fits(ti + 1, tj, tk):
            ti, grew = ti + 1, True
        if tk < bk and fits(ti, tj, tk + 1):
            tk, grew = tk + 1, True
        if not grew:
            break
    return Tiling(bi, bj, bk, ti, tj, tk)


def _move_cycles(rows: int, cols: int, elem_bytes: int, acc: Accelerator) -> int:
    """Cycles to move a rows x cols matrix: one request per row chunk of at most DIM elements.

    Only real rows and columns move (the mesh pads in the scratchpad, not on the bus); a
    request moves at most the bus width per cycle.
    """
    bus, dim = acc.dma_bytes_per_cycle, acc.dim
    full, rest = divmod(cols, dim)
    per_row = full * math.ceil(dim * elem_bytes / bus)
    if rest:
        per_row += math.ceil(rest * elem_bytes / bus)
    return rows * per_row


def dma_cycles(mm: MatmulSpec, tiling: Tiling, acc: Accelerator) -> int:
    """Cycles the DMA needs to move A, B, D in and C out.

    A is re-read for every column tile and B for every row tile (loop order i0, j0, k0).
    Transposed operands move as stored (A: K x M, B: N x K).
    """
    tiles_i = math.ceil(tiling.blocks_i / tiling.tile_i)
    tiles_j = math.ceil(tiling.blocks_j / tiling.tile_j)
    m, n, k, s_in, s_acc = mm.m, mm.n, mm.k, acc.input_bytes, acc.acc_bytes
    a = _move_cycles(k, m, s_in, acc) if mm.transpose_a else _move_cycles(m, k, s_in, acc)
    b = _move_cycles(n, k, s_in, acc) if mm.transpose_b else _move_cycles(k, n, s_in, acc)
    c = _move_cycles(m, n, s_acc, acc)
    d = 0
    if mm.bias == "repeating":
        d = _move_cycles(1, n, s_acc, acc) * tiles_i
    elif mm.bias == "matrix":
        d = c
    return a * tiles_j + b * tiles_i + c + d


@dataclass(frozen=True, slots=True)
class MatmulConstants:
    """Fitted constants of the calibrated accelerator model (see hw/calibration.py)."""

    call_cycles: float  # configuration, loop set-up and fence on the core, per call
    tile_cycles: float  # per tile: the core issues the tile's mvin/preload/compute/mvout
    block_cycles: float  # per ideal cycle (one DIM x DIM x DIM block product = DIM cycles)
    transpose_cycles: float  # extra per ideal cycle when A or B is read transposed


def calibrated_cycles(mm: MatmulSpec, acc: Accelerator, c: MatmulConstants) -> float:
    """Cycles of one tiled matmul call: fixed cost + per tile + compute overlapped with DMA.

    compute = ideal cycles x (block cost [+ transpose cost]) + fill and drain of each tile
    (2 DIM hops of ``hop_cycles``); the DMA runs under the compute, so a tile costs the larger
    of the two.
    """
    tiling = choose_tiles(mm.m, mm.n, mm.k, acc)
    ideal = tiling.block_products * acc.dim
    per_ideal = c.block_cycles + (c.transpose_cycles if (mm.transpose_a or mm.transpose_b) else 0)
    compute = ideal * per_ideal + tiling.tiles * 2 * acc.dim * acc.hop_cycles
    return c.call_cycles + tiling.tiles * c.tile_cycles + max(compute, dma_cycles(mm, tiling, acc))


def naive_cycles(mm: MatmulSpec, rows: int, cols: int, dataflow: str = "WS") -> int:
    """SCALE-Sim compute cycles of an M x K by K x N matmul on an R x C array (no overlap).

    WS: ceil(K/R) ceil(N/C) (2R + C + M - 2); OS: ceil(M/R) ceil(N/C) (R + C + K - 2).
    """
    m, n, k = mm.m, mm.n, mm.k
    if dataflow == "OS":
        return math.ceil(m / rows) * math.ceil(n / cols) * (rows + cols + k - 2)
    return math.ceil(k / rows) * math.ceil(n / cols) * (2 * rows + cols + m - 2)
