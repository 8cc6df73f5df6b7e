"""The lowering to C calls and the loop rerolling, checked without a C compiler."""

from __future__ import annotations

import numpy as np
import pytest

from edgefptt.codegen.inputs import load_batch
from edgefptt.codegen.program import count_calls, expand, lower, lower_kernel, view_matrix
from edgefptt.config import make_specs
from edgefptt.errors import DataError
from edgefptt.workload import build_exact


def _specs(t: int, k: int, **kw):
    base = dict(input_size=2, hidden_size=5, num_classes=3, batch_size=3, schedule="exact")
    return make_specs(None, seq_len=t, partitions=k, **{**base, **kw})


@pytest.mark.parametrize(
    ("t", "k", "recompute"),
    [(10, 1, False), (10, 4, False), (10, 10, False), (11, 3, True), (28, 14, False)],
)
def test_rerolled_program_makes_exactly_the_kernel_calls(t, k, recompute):
    net, run = _specs(t, k)
    workload = build_exact(net, run, recompute=recompute)
    program = lower(workload)
    one_per_kernel = [c for kernel in workload.kernels for c in lower_kernel(workload, kernel)]
    assert list(expand(program)) == one_per_kernel


def test_long_sequences_stay_short_in_c():
    # T = 784 with K = 1 is thousands of kernels; the C has a few dozen statements.
    for k in (1, 14, 784):
        net, run = make_specs("paper-smnist", partitions=k, schedule="exact")
        workload = build_exact(net, run)
        assert len(workload.kernels) > 3000
        assert count_calls(lower(workload)) < 40


def test_view_matrix_matches_numpy_slicing():
    net, run = _specs(10, 4)
    workload = build_exact(net, run)
    arrays = {n: np.arange(np.prod(b.shape)).reshape(b.shape) for n, b in workload.buffers.items()}
    for kernel in workload.kernels:
        for view in (*kernel.reads, *kernel.writes):
            a = arrays[view.buffer]
            if isinstance(view.index, int):
                a = a[view.index]
            elif view.index is not None:
                a = a[view.index[0] : view.index[1]]
            if view.rows is not None:
                a = a[..., view.rows[0] : view.rows[1], :]
            if view.cols is not None:
                a = a[..., view.cols[0] : view.cols[1]]
            m = view_matrix(workload, view)
            flat = arrays[view.buffer].reshape(-1)
            rebuilt = np.stack([flat[m.offset + r * m.ld : m.offset + r * m.ld + m.cols]
                                for r in range(m.rows)])  # fmt: skip
            np.testing.assert_array_equal(rebuilt, a.reshape(m.rows, m.cols))


def test_sample_file_format(tmp_path):
    net, run = _specs(6, 2)
    good = tmp_path / "good.npz"
    rng = np.random.default_rng(0)
    np.savez(good, x=rng.standard_normal((5, 6, 2)), y=np.array([0, 2, 1, 1, 0]))
    x, y = load_batch(good, net, run)
    assert x.shape == (3, 6, 2)
    assert y.tolist() == [0, 2, 1]
    for name, arrays, message in [
        ("short.npz", {"x": np.zeros((2, 6, 2)), "y": np.zeros(2, int)}, "batch needs B = 3"),
        ("shape.npz", {"x": np.zeros((5, 7, 2)), "y": np.zeros(5, int)}, "(N, 6, 2)"),
        ("label.npz", {"x": np.zeros((5, 6, 2)), "y": np.full(5, 3)}, "labels must lie"),
        ("nox.npz", {"y": np.zeros(5, int)}, "needs arrays"),
    ]:
        path = tmp_path / name
        np.savez(path, **arrays)
        with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
            load_batch(path, net, run)
    with pytest.raises(DataError, match="no sample file"):
        load_batch(tmp_path / "missing.npz", net, run)
