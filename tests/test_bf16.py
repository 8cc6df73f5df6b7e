"""bf16 rounding, both modes, against hand-picked bit patterns."""

import numpy as np
import pytest

from edgefptt.edge import Numerics, from_bf16_bits, round_bf16, to_bf16, to_bf16_bits

# (float32 bits, round-to-nearest-even, ties-away-from-zero)
CASES = [
    (0x3F800000, 0x3F80, 0x3F80),  # 1.0: exact
    (0x3F808000, 0x3F80, 0x3F81),  # tie between 0x3F80 (even) and 0x3F81
    (0x3F818000, 0x3F82, 0x3F82),  # tie between 0x3F81 and 0x3F82 (even): both go up
    (0x3F807FFF, 0x3F80, 0x3F80),  # just below a tie
    (0x3F808001, 0x3F81, 0x3F81),  # just above a tie
    (0xBF808000, 0xBF80, 0xBF81),  # negative tie: away goes to larger magnitude
    (0xBF818000, 0xBF82, 0xBF82),
    (0x7F7F7FFF, 0x7F7F, 0x7F7F),  # largest value that stays finite
    (0x7F7F8000, 0x7F80, 0x7F80),  # tie above the largest bf16: overflow to +inf
    (0xFF7FFFFF, 0xFF80, 0xFF80),  # overflow to -inf
    (0x7F800000, 0x7F80, 0x7F80),  # +inf stays inf
    (0xFF800000, 0xFF80, 0xFF80),  # -inf
    (0x80000000, 0x8000, 0x8000),  # -0.0 keeps its sign
    (0x00008000, 0x0000, 0x0001),  # subnormal tie
]


@pytest.mark.parametrize(("bits", "rne", "away"), CASES, ids=[hex(c[0]) for c in CASES])
def test_rounding_modes(bits, rne, away):
    x = np.array([bits], dtype=np.uint32).view(np.float32)
    assert int(to_bf16_bits(x, "rne")[0]) == rne
    assert int(to_bf16_bits(x, "away")[0]) == away


@pytest.mark.parametrize("bits", [0x7FC00000, 0x7F800001, 0xFFFFFFFF, 0x7FFFFFFF, 0xFF800001])
@pytest.mark.parametrize("mode", ["rne", "away"])
def test_nan_stays_nan(bits, mode):
    # 0x7F800001 + 0x8000 would read as inf and 0x7FFFFFFF + 0x8000 would carry into the sign.
    x = np.array([bits], dtype=np.uint32).view(np.float32)
    assert np.isnan(from_bf16_bits(to_bf16_bits(x, mode))[0])


def test_helpers_agree_with_ml_dtypes():
    x = np.random.default_rng(0).normal(size=1000).astype(np.float32)
    import ml_dtypes

    np.testing.assert_array_equal(to_bf16(x), x.astype(ml_dtypes.bfloat16))
    np.testing.assert_array_equal(round_bf16(x), x.astype(ml_dtypes.bfloat16).astype(np.float32))
    with pytest.raises(ValueError, match="rounding"):
        to_bf16_bits(x, "down")  # type: ignore[arg-type]


def test_numerics_round_after_every_operation():
    one = np.float32(1.0)
    tie = np.float32(2.0**-8)  # 1 + 2^-8 is halfway between bf16 neighbours 1 and 1 + 2^-7
    assert Numerics("bf16", "rne").add(one, tie) == 1.0
    assert Numerics("bf16", "away").add(one, tie) == 1.0 + 2.0**-7
    assert Numerics("fp32").add(one, tie) == 1.0 + 2.0**-8
    # Two rounded steps differ from one fused step: (1 + t) + t rounds twice.
    n = Numerics("bf16", "rne")
    assert n.add(n.add(one, tie), tie) == 1.0
