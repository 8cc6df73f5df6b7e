"""The generated C's own fp32 math and matmul backend, compiled alone and checked against NumPy.

ef_expf / ef_tanhf (runtime.h) are measured in ulp against float64 over random bit patterns (the
whole float line) and dense ranges; the portable matmul backend against a float64 product for
shapes that reach every code path (register blocks, vector-wide and element edges, k blocks and
tails, transposed A and B, a_scale, zero rows of A) at every vector width it can be built with.
"""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from edgefptt.codegen import tool_missing

pytestmark = pytest.mark.skipif(tool_missing("host") is not None, reason=str(tool_missing("host")))

TEMPLATES = Path(str(resources.files("edgefptt.codegen") / "templates"))
WARNINGS = ["-std=c99", "-Wall", "-Wextra", "-Werror"]
NATIVE = ["-O2", "-march=native", "-ffp-contract=fast"]
PORTABLE = ["-O2"]

MATH_DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "runtime.h"
/* in.bin: n floats x; out.bin: n floats ef_expf(x), then n floats ef_tanhf(x). */
int main(void)
{
    FILE *f = fopen("in.bin", "rb");
    fseek(f, 0, SEEK_END);
    size_t n = (size_t)ftell(f) / sizeof(float);
    rewind(f);
    float *x = malloc(n * sizeof *x), *y = malloc(2 * n * sizeof *y);
    if (fread(x, sizeof *x, n, f) != n)
        return 1;
    fclose(f);
    for (size_t i = 0; i < n; ++i)
        y[i] = ef_expf(x[i]);
    for (size_t i = 0; i < n; ++i)
        y[n + i] = ef_tanhf(x[i]);
    f = fopen("out.bin", "wb");
    fwrite(y, sizeof *y, 2 * n, f);
    fclose(f);
    return 0;
}
"""

MATMUL_DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "matmul.h"
/* argv: I J K transpose_a transpose_b a_scale; in.bin: A, B, C (row-major as stored);
 * out.bin: C after C = A' B' + C (D == C: accumulate). */
int main(int argc, char **argv)
{
    if (argc != 7)
        return 2;
    size_t I = (size_t)atoi(argv[1]), J = (size_t)atoi(argv[2]), K = (size_t)atoi(argv[3]);
    int ta = atoi(argv[4]), tb = atoi(argv[5]);
    float scale = (float)atof(argv[6]);
    size_t na = I * K, nb = K * J, nc = I * J;
    float *a = malloc(na * 4), *b = malloc(nb * 4), *c = malloc(nc * 4);
    FILE *f = fopen("in.bin", "rb");
    if (fread(a, 4, na, f) != na || fread(b, 4, nb, f) != nb || fread(c, 4, nc, f) != nc)
        return 1;
    fclose(f);
    ef_matmul_backend(I, J, K, a, b, c, c, ta ? I : K, tb ? K : J, J, J, scale, false, ta, tb);
    f = fopen("out.bin", "wb");
    fwrite(c, 4, nc, f);
    fclose(f);
    return 0;
}
"""


def _build(tmp: Path, name: str, driver: str, sources: list[str], flags: list[str]) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    for header in ("runtime.h", "matmul.h"):
        shutil.copy(TEMPLATES / header, tmp / header)
    (tmp / "config.h").write_text("#define EDGEFPTT_BF16 0\n")
    (tmp / "driver.c").write_text(driver)
    binary = tmp / name
    args = ["cc", *WARNINGS, *flags, "-I", str(tmp), "-o", str(binary), str(tmp / "driver.c")]
    args += [str(TEMPLATES / s) for s in sources]
    done = subprocess.run([*args, "-lm"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return binary


def _ulp_error(got: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """|got - exact| in units of the float32 spacing at the exact value (subnormal floor)."""
    spacing = np.maximum(np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64), 2.0**-149)
    return np.abs(got.astype(np.float64) - exact) / spacing


def _math_inputs() -> np.ndarray:
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, 1_000_000, dtype=np.uint64).astype(np.uint32)
    specials = [0.0, -0.0, np.inf, -np.inf, np.nan, 88.72, 88.73, -87.33, -103.9, -104.0, 1e-30]
    return np.concatenate(
        [
            bits.view(np.float32),  # the whole float line, subnormals and NaNs included
            np.linspace(-110, 100, 1_000_001, dtype=np.float32),
            np.linspace(-1, 1, 1_000_001, dtype=np.float32),  # tanh's two branches meet at 0.625
            np.array(specials, np.float32),
        ]
    )


@pytest.mark.parametrize("flags", [NATIVE, PORTABLE], ids=["native", "portable"])
def test_exp_and_tanh_within_two_ulp(tmp_path, flags):
    binary = _build(tmp_path, "math", MATH_DRIVER, [], flags)
    x = _math_inputs()
    x.tofile(tmp_path / "in.bin")
    subprocess.run([str(binary)], cwd=tmp_path, check=True)
    out = np.fromfile(tmp_path / "out.bin", np.float32)
    got_exp, got_tanh = out[: x.size], out[x.size :]
    with np.errstate(over="ignore", invalid="ignore"):
        for got, exact in ((got_exp, np.exp(x.astype(np.float64))),
                           (got_tanh, np.tanh(x.astype(np.float64)))):  # fmt: skip
            rounded = exact.astype(np.float32)
            finite = np.isfinite(rounded)
            assert _ulp_error(got[finite], exact[finite]).max() <= 2.0
            # overflow to inf, inf and NaN as IEEE: exactly the rounded value (NaN for NaN)
            same = (got[~finite] == rounded[~finite]) | (np.isnan(got) & np.isnan(rounded))[~finite]
            assert same.all()
    assert np.signbit(got_tanh[(x == 0) & np.signbit(x)]).all()  # tanh(-0) = -0
    assert got_exp[x == -np.inf][0] == 0.0


def _matmul_cases():
    # (I, J, K, transpose_a, transpose_b): forward (B transposed), dh (plain), weight gradient
    # (A transposed), the readout's, and odd sizes for every edge, k tail and k block (64).
    return [
        (4, 512, 129, 0, 1), (4, 128, 512, 0, 0), (512, 129, 224, 1, 0), (10, 128, 4, 1, 0),
        (4, 128, 10, 0, 0), (4, 10, 128, 0, 1), (7, 131, 70, 1, 0), (7, 131, 70, 0, 0),
        (9, 13, 35, 0, 1), (8, 8, 15, 0, 1), (8, 12, 33, 0, 1), (5, 7, 3, 0, 1),
        (3, 200, 65, 0, 0), (37, 83, 130, 1, 0),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "flags",
    [
        NATIVE,
        PORTABLE,
        [*PORTABLE, "-DEF_VEC=8", "-Wno-psabi"],
        [*PORTABLE, "-DEF_VEC=16", "-Wno-psabi"],
        [*PORTABLE, "-DEDGEFPTT_SCALAR_MATMUL"],
    ],
    ids=["native", "portable", "vec8", "vec16", "scalar"],
)
def test_matmul_backend_matches_numpy(tmp_path, flags):
    binary = _build(tmp_path, "matmul", MATMUL_DRIVER, ["matmul_portable.c"], flags)
    rng = np.random.default_rng(1)
    for n, (rows, cols, depth, ta, tb) in enumerate(_matmul_cases()):
        scale = 0.25 if n % 2 else 1.0
        a = rng.standard_normal((depth, rows) if ta else (rows, depth)).astype(np.float32)
        a[..., :: max(2, rows // 3)] = 0.0  # zero entries of A are skipped: still exact
        b = rng.standard_normal((cols, depth) if tb else (depth, cols)).astype(np.float32)
        c = rng.standard_normal((rows, cols)).astype(np.float32)
        np.concatenate([a.ravel(), b.ravel(), c.ravel()]).tofile(tmp_path / "in.bin")
        args = [str(binary), str(rows), str(cols), str(depth), str(ta), str(tb), str(scale)]
        subprocess.run(args, cwd=tmp_path, check=True)
        got = np.fromfile(tmp_path / "out.bin", np.float32).reshape(rows, cols)
        a64 = (a.T if ta else a).astype(np.float64) * scale
        b64 = (b.T if tb else b).astype(np.float64)
        exact = c + a64 @ b64
        # float32 sums of `depth` products: a few ulp of the sum of magnitudes
        bound = 4 * depth * 2.0**-24 * (np.abs(c) + np.abs(a64) @ np.abs(b64))
        assert (np.abs(got - exact) <= bound).all(), (rows, cols, depth, ta, tb)
