"""Workload structure: kernel groups per the paper's description, shapes, partitions."""

from collections import Counter

import pytest

from edgefptt.config import RunSpec, make_specs
from edgefptt.errors import ConfigError
from edgefptt.train.partition import partition_bounds
from edgefptt.workload import GROUPS, build_exact, build_paper, build_workload

SIZES = {"input_size": 2, "hidden_size": 4, "num_classes": 3, "batch_size": 2, "seq_len": 12}


def _groups(workload):
    return Counter(k.group for k in workload.kernels)


@pytest.mark.parametrize("k", [1, 3, 12])
def test_paper_kernel_counts_follow_the_description(k):
    net, run = make_specs(**SIZES, partitions=k)
    workload = build_paper(net, run)
    t, length = run.seq_len, run.seq_len // k
    # Per partition: backward steps hs = L..1, each with ss in {hs, hs-1} (one step at hs = 1).
    inner = 2 * length - 1
    groups = _groups(workload)
    assert groups["MatMul-2"] == 5 * t  # four gates and the readout, every step
    assert groups["Sigmoid"] == 3 * t
    assert groups["tanh"] == 2 * t  # g and c
    assert groups["softmax"] == t
    assert groups["MatMul-3"] == k * (1 + length + 3 * inner)
    assert groups["Mat2Vec"] == k * (1 + length + 3 * inner)
    assert groups["MatMul-1"] == k * (1 + length)
    assert groups["EWO-combo"] == k * (length + inner)
    assert groups["EWO-SGD(FPTT)"] == 4 * k
    assert set(groups) <= set(GROUPS)


@pytest.mark.parametrize("k", [1, 5, 12])
def test_exact_structure(k):
    net, run = make_specs(**SIZES, partitions=k, schedule="exact")
    workload = build_exact(net, run)
    assert workload.bounds == partition_bounds(run.seq_len, k)
    mm = [kern for kern in workload.kernels if kern.matmul is not None]
    gates = [kern for kern in mm if kern.matmul.n == 4 * net.hidden_size]
    assert len(gates) == run.seq_len  # one (4H x (I+H)) matmul per step
    assert all(g.matmul.k == net.input_size + net.hidden_size for g in gates)
    readouts = [kern for kern in mm if kern.group == "MatMul-2" and kern.matmul.n == 3]
    assert len(readouts) == k  # readout only at each partition's last step
    stacked = [kern for kern in mm if kern.group == "MatMul-3" and kern.matmul.m == 16]
    lengths = [stop - start for start, stop in workload.bounds]
    assert [s.matmul.k for s in stacked] == [run.batch_size * n for n in lengths]
    assert all(s.matmul.transpose_a and s.matmul.accumulate for s in stacked)


def test_recompute_adds_one_gate_matmul_per_step_but_the_last():
    net, run = make_specs(**SIZES, partitions=3, schedule="exact")
    plain = _groups(build_exact(net, run))
    again = _groups(build_exact(net, run, recompute=True))
    assert again["MatMul-2"] - plain["MatMul-2"] == run.seq_len - 3


@pytest.mark.parametrize("schedule", ["paper", "exact"])
def test_every_view_fits_its_buffer_and_kernels_are_tagged(schedule):
    net, run = make_specs(**SIZES, partitions=3, schedule=schedule)
    workload = build_workload(net, run)
    for kern in workload.kernels:
        assert kern.group in GROUPS and kern.phase in ("forward", "backward", "update")
        assert kern.dtype == run.dtype and 0 <= kern.partition < 3
        for v in (*kern.reads, *kern.writes):
            buf = workload.buffers[v.buffer]
            lead = buf.shape[0]
            if isinstance(v.index, int):
                assert 0 <= v.index < lead
            elif v.index is not None:
                assert 0 <= v.index[0] < v.index[1] <= lead
            if v.cols is not None:
                assert v.cols[1] <= buf.shape[-1]
            if v.rows is not None:
                assert v.rows[1] <= buf.shape[-2]
        if kern.matmul is not None:
            assert kern.elements == kern.matmul.m * kern.matmul.n


def test_paper_builder_rejects_k_not_dividing_t():
    net, _ = make_specs(**SIZES)
    run = RunSpec(batch_size=2, seq_len=12, partitions=5, schedule="exact")
    with pytest.raises(ConfigError, match="divide"):
        build_paper(net, run)


def test_building_the_paper_preset_is_quick():
    import time

    net, run = make_specs("paper-smnist")
    start = time.perf_counter()
    workload = build_workload(net, run)
    assert time.perf_counter() - start < 5
    assert _groups(workload)["MatMul-2"] == 5 * 784
