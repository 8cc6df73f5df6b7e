"""Gemmini matmul semantics, flag by flag, against plain NumPy."""

import numpy as np
import pytest

from edgefptt.edge import round_bf16, tiled_matmul
from edgefptt.errors import ConfigError

rng = np.random.default_rng(7)
A = rng.normal(size=(5, 7))
B = rng.normal(size=(7, 6))
D = rng.normal(size=(5, 6))
ROW = rng.normal(size=6)


def _close(got, want):
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_plain_and_transposes():
    f64 = {"input_type": "fp64", "acc_type": "fp64"}
    _close(tiled_matmul(A, B, **f64), A @ B)
    _close(tiled_matmul(A.T.copy(), B, transpose_a=True, **f64), A @ B)
    _close(tiled_matmul(A, B.T.copy(), transpose_b=True, **f64), A @ B)
    _close(
        tiled_matmul(
            A.T.copy(), B.T.copy(), transpose_a=True, transpose_b=True, dataflow="CPU", **f64
        ),
        A @ B,
    )


def test_bias_scales_activation_and_full_c():
    f64 = {"input_type": "fp64", "acc_type": "fp64"}
    _close(tiled_matmul(A, B, D, **f64), A @ B + D)
    _close(tiled_matmul(A, B, ROW, repeating_bias=True, **f64), A @ B + ROW[None, :])
    _close(
        tiled_matmul(A, B, D, a_scale=0.5, b_scale=3.0, d_scale=-2.0, **f64),
        (0.5 * A) @ (3.0 * B) - 2.0 * D,
    )
    _close(tiled_matmul(A, B, D, scale=0.25, **f64), 0.25 * (A @ B + D))
    _close(
        tiled_matmul(A, B, D, scale=0.25, activation="relu", **f64),
        np.maximum(0.25 * (A @ B + D), 0),
    )
    # full_C: the raw accumulator, no scale and no activation.
    _close(tiled_matmul(A, B, D, scale=0.25, activation="relu", full_c=True, **f64), A @ B + D)


def test_float32_accumulation_is_close_to_exact():
    got = tiled_matmul(A, B, D)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, A @ B + D, rtol=1e-5, atol=1e-5)


def test_bf16_inputs_round_on_the_way_in_and_low_d():
    a = np.array([[1.0 + 2.0**-10]])  # rounds to 1.0 in bf16
    b = np.array([[3.0]])
    d = np.array([[2.0**-12]])
    # fp32 accumulator: D kept in the accumulator type adds 2^-12 exactly.
    full = tiled_matmul(a, b, d, input_type="bf16", acc_type="fp32", full_c=True)
    assert full[0, 0] == 3.0 + 2.0**-12
    # low_D: D is rounded to the input type first (2^-12 is a bf16 number: unchanged) ...
    assert (
        tiled_matmul(a, b, d, low_d=True, input_type="bf16", acc_type="fp32", full_c=True)[0, 0]
        == 3.0 + 2.0**-12
    )
    d2 = np.array([[1.0 + 2.0**-10]])
    # ... while 1 + 2^-10 is not: it becomes 1.0 with low_D.
    assert (
        tiled_matmul(a, b, d2, low_d=True, input_type="bf16", acc_type="fp32", full_c=True)[0, 0]
        == 4.0
    )
    # The written output is rounded to the input type.
    assert tiled_matmul(a, b, d, input_type="bf16", acc_type="fp32")[0, 0] == 3.0


def test_bf16_accumulator_rounds_every_multiply_accumulate():
    # 1 + four times 2^-9: each partial sum is below half a bf16 step (2^-8) above 1 and
    # rounds back to 1, while a float32 accumulator keeps 1 + 2^-7.
    a = np.full((1, 4), 2.0**-9)
    b = np.ones((4, 1))
    d = np.ones((1, 1))
    assert tiled_matmul(a, b, d, input_type="bf16", acc_type="bf16")[0, 0] == 1.0
    assert tiled_matmul(a, b, d, input_type="bf16", acc_type="fp32", full_c=True)[0, 0] == (
        1.0 + 2.0**-7
    )


def test_bf16_result_matches_rounded_numpy_for_exact_products():
    # Small integers: every product and partial sum is exact in bf16.
    a = rng.integers(-4, 5, size=(4, 9)).astype(float)
    b = rng.integers(-4, 5, size=(9, 3)).astype(float)
    got = tiled_matmul(a, b, input_type="bf16", acc_type="bf16")
    np.testing.assert_array_equal(got, round_bf16((a @ b).astype(np.float32)))


@pytest.mark.parametrize(
    ("flags", "fragment"),
    [
        ({"transpose_a": True, "transpose_b": True, "dataflow": "WS"}, "WS"),
        ({"transpose_a": True, "dataflow": "OS"}, "OS"),
        ({"transpose_b": True, "dataflow": "OS"}, "OS"),
        ({"low_d": True, "dataflow": "OS"}, "low_D"),
        ({"activation": "sigmoid"}, "activation"),
        ({"dataflow": "XY"}, "dataflow"),
    ],
)
def test_restricted_calls_are_rejected(flags, fragment):
    with pytest.raises(ConfigError, match=fragment):
        tiled_matmul(np.eye(4), np.eye(4), np.eye(4), **flags)


def test_shape_errors():
    with pytest.raises(ConfigError, match="inner"):
        tiled_matmul(A, A)
    with pytest.raises(ConfigError, match="bias"):
        tiled_matmul(A, B, np.ones((2, 6)))
