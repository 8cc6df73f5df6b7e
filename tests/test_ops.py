"""Operation counts against closed forms and the published update convention."""

import pytest

from edgefptt.config import make_specs
from edgefptt.plan import count_ops
from edgefptt.reference import paper_op_counts
from edgefptt.workload import build_workload


def _counts(schedule, k, **sizes):
    net, run = make_specs("paper-smnist", partitions=k, schedule=schedule, **sizes)
    return net, run, count_ops(build_workload(net, run))


@pytest.mark.parametrize("k", [1, 14])
def test_update_is_8_add_and_5_mul_per_parameter_and_partition(k):
    net, _, counts = _counts("paper", k)
    # fptt.md: the fused FPTT-SGD loop costs 8 add/sub and 5 mul per parameter.
    assert counts["update"].add_sub == 8 * net.num_params * k
    assert counts["update"].mul_div == 5 * net.num_params * k
    assert counts["update"].nonlinear == 0
    published = paper_op_counts()
    ratio = published["add_sub"]["parameter_update"] / published["mul_div"]["parameter_update"]
    assert ratio == pytest.approx(8 / 5)


def test_exact_forward_closed_form():
    i, h, c, b, t, k = 3, 8, 4, 2, 12, 3
    _, _, counts = _counts(
        "exact", k, input_size=i, hidden_size=h, num_classes=c, batch_size=b, seq_len=t
    )
    gate_macs = t * b * 4 * h * (i + h)  # one (4H x (I+H)) matmul per step
    readout_macs = k * b * c * h  # the readout only at each partition's last step
    fwd = counts["forward"]
    # Per unit and step: c = f*c + i*g (1 add, 2 mul), h = o*tanh(c) (1 mul);
    # nonlinear: three sigmoids, tanh(g), tanh(c).
    assert fwd.add_sub == gate_macs + readout_macs + t * b * h
    assert fwd.mul_div == gate_macs + readout_macs + 3 * t * b * h
    assert fwd.nonlinear == 5 * t * b * h
    # Backward: one log per sequence and one exp per class and sequence, per partition.
    assert counts["backward"].nonlinear == k * b * (c + 1)


def test_paper_forward_closed_form():
    i, h, c, b, t, k = 1, 8, 4, 2, 6, 2
    _, _, counts = _counts(
        "paper", k, input_size=i, hidden_size=h, num_classes=c, batch_size=b, seq_len=t
    )
    macs = t * b * (4 * h * (i + h) + c * h)  # gates and the readout at every step
    fwd = counts["forward"]
    # Elementwise: cell state (1 add, 2 mul) and h (1 mul) per unit; softmax per class:
    # a subtraction of the max, an exp, a division and C-1 adds per row.
    assert fwd.add_sub == macs + t * b * h + t * b * c + t * b * (c - 1)
    assert fwd.mul_div == macs + 3 * t * b * h + t * b * c
    assert fwd.nonlinear == t * b * (5 * h + c)
