"""Hardware model: calibration against FireSim, monotonic sanity, closed forms, area, power."""

from __future__ import annotations

import math
import statistics

import pytest

from edgefptt.config import make_specs
from edgefptt.hw import calibration as cal
from edgefptt.hw import (
    choose_tiles,
    estimate,
    group_cycles,
    make_soc,
    naive_cycles,
    pareto_flags,
    workload_summary,
)
from edgefptt.hw.access import strip_miss_rate
from edgefptt.hw.cache import ROCKET_CHIPYARD
from edgefptt.hw.cpu import (
    GENERATED_CALL_INSN,
    GENERATED_INSN_PER_ELEMENT,
    MATMUL_CALL_INSN,
    MATMUL_INSN,
)
from edgefptt.hw.explain import partition_change
from edgefptt.hw.model import accelerator_of
from edgefptt.reference import firesim_calibration, fpga_power_w, fpga_resources
from edgefptt.workload.kernels import MatmulSpec

PARALLEL = ("Mat2Vec", "EWO-basic", "EWO-combo", "EWO-SGD(FPTT)", "Sigmoid", "tanh")


def _est(k=1, mesh=4, cores=1, dtype="bf16", schedule="paper", **soc):
    net, run = make_specs("paper-smnist", partitions=k, schedule=schedule)
    return estimate(net, run, make_soc(mesh=mesh, cores=cores, dtype=dtype, **soc), **{})


def test_calibration_points_within_reported_error():
    """Every FireSim calibration point's total within the fit's worst in-sample error."""
    errors = []
    for row in firesim_calibration():
        mesh = int(str(row["mesh"]).split("x")[0])
        est = _est(row["K"], mesh, row["cores"])
        errors.append(abs(est.total_cycles - row["total cycles"]) / row["total cycles"])
    worst_reported = max(abs(e) for e in cal.REPORT["in_sample_total_error"])
    assert max(errors) <= worst_reported + 1e-9
    assert max(errors) < 0.035
    assert statistics.median(errors) < 0.01


def test_calibration_groups_single_core_within_five_percent():
    """Per group, the 1-core 4x4 points (the bulk of the data) are reproduced closely."""
    for row in firesim_calibration():
        if row["mesh"] != "4x4" or row["cores"] != 1:
            continue
        est = _est(row["K"])
        for group in ("MatMul-2", "MatMul-3", "EWO-SGD(FPTT)", "Sigmoid", "tanh", "EWO-combo"):
            assert est.groups[group] == pytest.approx(row[group], rel=0.05), (row["K"], group)


@pytest.mark.parametrize("k", [1, 14, 784])
def test_more_cores_never_slower_for_parallel_groups(k):
    previous = None
    for cores in (1, 2, 3, 4, 6, 8, 10, 12, 16):
        groups = _est(k, cores=cores).groups
        if previous is not None:
            for g in PARALLEL:
                assert groups[g] <= previous[g] * (1 + 1e-12), (k, cores, g)
        previous = groups


@pytest.mark.parametrize("dtype", ["bf16", "fp32"])
def test_bigger_mesh_never_slower_for_matmuls(dtype):
    previous = None
    # Up to 16x16 with the preset memories; a 32x32 mesh on a 128 KiB scratchpad needs more
    # tiles for MatMul-1 and can be slightly slower, which the model keeps.
    for mesh in (4, 8, 16):
        groups = _est(1, mesh=mesh, dtype=dtype).groups
        if previous is not None:
            for g in ("MatMul-1", "MatMul-2", "MatMul-3"):
                assert groups[g] <= previous[g], (mesh, g)
        previous = groups


def test_more_partitions_never_less_optimizer_time():
    times = [_est(k).groups["EWO-SGD(FPTT)"] for k in (1, 2, 7, 14, 28, 56, 112, 392, 784)]
    assert times == sorted(times)


def test_naive_closed_forms():
    mm = MatmulSpec(m=4, n=128, k=129)
    # WS: ceil(129/4) * ceil(128/4) * (2*4 + 4 + 4 - 2) = 33 * 32 * 14
    assert naive_cycles(mm, 4, 4, "WS") == 33 * 32 * 14
    # OS: ceil(4/4) * ceil(128/4) * (4 + 4 + 129 - 2) = 32 * 135
    assert naive_cycles(mm, 4, 4, "OS") == 32 * 135
    assert naive_cycles(MatmulSpec(m=128, n=129, k=4), 8, 8, "WS") == 1 * 17 * (16 + 8 + 128 - 2)


def test_naive_model_group_equals_closed_form_sum():
    net, run = make_specs("paper-smnist", partitions=1)
    est = estimate(net, run, make_soc(mesh=4, dtype="bf16"), "naive")
    # MatMul-2 at K=1: 784 steps x (4 gate calls 4x129 @ 129x128 + 1 readout 4x128 @ 128x10)
    gate = math.ceil(129 / 4) * math.ceil(128 / 4) * (8 + 4 + 4 - 2)
    readout = math.ceil(128 / 4) * math.ceil(10 / 4) * (8 + 4 + 4 - 2)
    assert est.groups["MatMul-2"] == 784 * (4 * gate + readout)


def _cpu(dtype="fp32", k=1, seq_len=28, code="paper", schedule="paper", accelerator=False):
    """A short pass (T = 28, the paper network) on a CPU-only (or Gemmini) SoC."""
    net, run = make_specs("paper-smnist", partitions=k, schedule=schedule, seq_len=seq_len)
    return estimate(net, run, make_soc(dtype=dtype, accelerator=accelerator), code=code)


def test_cpu_only_matmul_instructions_count_the_measured_loops():
    """MatMul-2 on the core: per step four gate matmuls 4x128x129 and the readout 4x10x128, all
    B-transposed, so gemmini.h's plain loop, at its measured per-MAC and per-output counts."""
    est = _cpu()
    plain = MATMUL_INSN[("paper", "plain", "fp32")]

    def call(m, n, k):
        return MATMUL_CALL_INSN + plain.per_mac * m * n * k + plain.per_output * m * n

    part = est.breakdown["MatMul-2"]
    assert part.instructions == pytest.approx(28 * (4 * call(4, 128, 129) + call(4, 10, 128)))
    assert part.fitted == 0 and 0 < part.stall < 0.5 * part.instructions
    assert est.groups["MatMul-2"] == pytest.approx(part.instructions + part.stall)
    # Spike's instruction count of gemmini.h's plain loop is ~8 per MAC, the 4 x 4 block ~2.2
    assert 7 < plain.per_mac < 9 and 2 < MATMUL_INSN[("paper", "block", "fp32")].per_mac < 2.5


def test_cpu_only_forward_misses_follow_the_sweep_of_w():
    """Each gate call walks its 128-row block of W (128 x 129 floats, contiguous: 1,032 lines,
    four times the 256-line L1) once per row of A: nearly every line misses on every one of the
    4 sweeps."""
    part = _cpu().breakdown["MatMul-2"]
    w_lines = 128 * 129 * 4 / 64
    sweeps = 28 * 4 * 4  # steps x gate calls x rows of A
    assert sweeps * w_lines * 0.95 < part.l1_misses < sweeps * w_lines * 1.2
    # W's 264 KiB stays in the 512 KiB L2: few L2 misses beside the L1 ones
    assert part.l2_misses < 0.1 * part.l1_misses


def test_strided_sweep_is_costed_set_by_set():
    """16 rows 2 KiB apart (transposed A) fill 2 of the 64 sets with 8 lines each (4 ways),
    against B's 16 rows 516 B apart; averaged over where A starts, by hand."""
    from edgefptt.hw.cache import set_miss_rate

    l1 = ROCKET_CHIPYARD.l1d
    assert strip_miss_rate(16, 516, 4, 64, 516, l1) == 0.0  # spread rows: they fit
    rates = []
    for shift in range(64):
        load = [0] * 64
        for r in range(16):
            load[(r * 516 // 64) % 64] += 1
            load[(r * 2048 // 64 + shift) % 64] += 1
        missed = 0.0
        for n in load:
            if n > 4:  # each set's own rate (checked against a simulated set in test_hw_cache)
                missed += n * set_miss_rate(n, 0.0, 4)
        rates.append(missed / 32)
    assert strip_miss_rate(16, 2048, 0, 0, 516, l1) == pytest.approx(statistics.mean(rates))


def test_generated_code_costs_our_loops_and_kernels():
    """--code generated: the exact schedule's fused gate matmul 4x512x129 (our 4 x 4 dot
    products) and our element-wise kernels at their measured counts per element."""
    gen = _cpu(code="generated", schedule="exact")
    nt = MATMUL_INSN[("generated", "nt", "fp32")]
    per = GENERATED_INSN_PER_ELEMENT["fp32"]["exact"]

    def call(m, n, k):
        return MATMUL_CALL_INSN + nt.per_mac * m * n * k + nt.per_output * m * n

    # the readout runs once per partition (K = 1: once), the gates every step
    expected = 28 * call(4, 512, 129) + call(4, 10, 128)
    assert gen.breakdown["MatMul-2"].instructions == pytest.approx(expected)
    # one FPTT update of all 67,850 parameters per partition, split in four kernels
    sgd = gen.breakdown["EWO-SGD(FPTT)"].instructions
    assert sgd == pytest.approx(4 * GENERATED_CALL_INSN + 67850 * per["fptt_sgd"])
    # our blocked fp32 loops issue far fewer instructions per MAC than gemmini.h's plain loop
    paper = _cpu(code="paper", schedule="exact")
    assert gen.groups["MatMul-2"] < 0.5 * paper.groups["MatMul-2"]


def test_paper_code_on_gemmini_is_the_calibrated_model():
    net, run = make_specs("paper-smnist", partitions=14)
    soc = make_soc(mesh=4, dtype="bf16")
    est = estimate(net, run, soc, code="paper")
    assert est.breakdown is None
    assert est.groups == group_cycles(workload_summary(net, run), soc)


def test_partition_change_explains_the_ratio():
    """K = 28 against K = 1: the update runs once per partition (28 times the cycles on the
    calibrated model); the group shares of the change add up to the whole."""
    net, run = make_specs("paper-smnist", seq_len=28)
    low, high, rows = partition_change(net, run, make_soc(mesh=4, dtype="bf16"))
    assert (low.run.partitions, high.run.partitions) == (1, 28)
    sgd = next(r for r in rows if r.group == "EWO-SGD(FPTT)")
    assert sgd.ratio == pytest.approx(28, rel=1e-9) and sgd.cause == "more element work"
    assert sum(r.share for r in rows) == pytest.approx(1.0)
    assert sum(r.high for r in rows) == pytest.approx(high.total_cycles)
    cpu_low, cpu_high, cpu_rows = partition_change(
        net, run, make_soc(dtype="fp32", accelerator=False)
    )
    assert cpu_high.total_cycles > cpu_low.total_cycles
    assert sum(r.share for r in cpu_rows) == pytest.approx(1.0)


def test_tile_choice_by_hand():
    """MatMul-1 dh (4x512 @ 512x128) on the BF16 4x4 config: tiles (I, J, K) = (1, 32, 62).

    Scratchpad 128 KiB, BF16: 4 banks x 4096 rows, half usable = 8192 rows; accumulator 32 KiB
    -> 4096 rows, half = 2048. Start (1, min(32, 22), min(128, 46)); J grows to 32; K grows
    while (1*K + K*32) * 4 <= 8192, i.e. K <= 62. 128 K-blocks need 3 tiles.
    """
    tiling = choose_tiles(4, 128, 512, accelerator_of(make_soc(mesh=4, dtype="bf16")))
    assert (tiling.tile_i, tiling.tile_j, tiling.tile_k) == (1, 32, 62)
    assert tiling.tiles == 3


def test_area_matches_published_socs():
    published = {r["config"]: r for r in fpga_resources() if r["module"] == "soc"}
    for label, mesh in (("4x4-1", 4), ("8x8-1", 8)):
        res = _est(1, mesh=mesh).resources
        assert res["lut"] == pytest.approx(published[label]["LUT"], rel=0.005)
        assert res["ff"] == pytest.approx(published[label]["FF"], rel=0.05)
        assert res["bram"] == published[label]["BRAM"]
        assert res["dsp"] == published[label]["DSP"]


def test_power_close_to_vivado_totals():
    for label, watts in ((p, v["total"]) for p, v in fpga_power_w().items()):
        mesh, cores = int(label[0]), int(label.split("-")[1])
        assert _est(1, mesh=mesh, cores=cores).power_w == pytest.approx(watts, rel=0.02)


def test_energy_is_power_times_time():
    est = _est(14, cores=2)
    assert est.energy_j == pytest.approx(est.power_w * est.total_cycles / 500e6)
    assert est.seconds == pytest.approx(est.total_cycles / 500e6)


def test_memory_is_the_paper_layout():
    from edgefptt.reference import paper_memory

    table = {r["K"]: r["bf16_bytes"] for r in paper_memory()}
    for k in (1, 14, 784):
        assert _est(k).memory_bytes == table[k]


def test_fp32_elementwise_cheaper_than_emulated_bf16():
    bf16, fp32 = _est(1).groups, _est(1, dtype="fp32").groups
    assert fp32["Sigmoid"] < bf16["Sigmoid"]
    assert fp32["Sigmoid"] == pytest.approx(bf16["Sigmoid"] / 2, rel=0.01)


def test_exact_schedule_is_costed():
    exact, paper = _est(14, schedule="exact"), _est(14)
    assert exact.total_cycles > 0
    assert exact.groups["MatMul-3"] < paper.groups["MatMul-3"]  # one stacked dW per partition


def test_pareto_flags_by_hand():
    points = [(1, 5), (2, 2), (3, 3), (5, 1), (2, 2)]
    # (3, 3) is dominated by (2, 2); equal points do not dominate each other.
    assert pareto_flags(points) == [True, True, False, True, True]


def test_pareto_flags_match_brute_force():
    import random

    rng = random.Random(0)
    for _ in range(30):
        pts = [tuple(rng.randint(0, 4) for _ in range(3)) for _ in range(40)]
        brute = [
            not any(all(a <= b for a, b in zip(q, p, strict=True)) and q != p for q in pts)
            for p in pts
        ]
        assert pareto_flags(pts) == brute
