"""The generated C's bf16 matmul backend, compiled alone, bit for bit against the Gemmini model.

bf16 inputs, a bf16 accumulator rounded (to nearest even) after every multiply-accumulate in K
order, A scaled and rounded on the way in: `edgefptt.edge.gemmini.tiled_matmul` with bf16 input
and accumulator types. Built for the host (the generic 4 x 4 blocks) and for rv64gc under
qemu-riscv64 (RISC-V's own kernel: 4 x 2 halves with the accumulators as bit patterns in integer
registers and no NaN test per multiply-add), so both kernels meet the same reference.
"""

from __future__ import annotations

import shutil
import subprocess
from importlib import resources
from pathlib import Path

import numpy as np
import pytest

from edgefptt.codegen import tool_missing
from edgefptt.edge.bf16 import from_bf16_bits, to_bf16_bits
from edgefptt.edge.gemmini import tiled_matmul

TEMPLATES = Path(str(resources.files("edgefptt.codegen") / "templates"))
FLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-O2", "-ffp-contract=fast"]

DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include "matmul.h"
/* argv: I J K transpose_a transpose_b a_scale bias (0 none, 1 a matrix, 2 one repeated row);
 * in.bin: A, B, D as bf16 bit patterns (row-major as stored); out.bin: C. */
int main(int argc, char **argv)
{
    if (argc != 8)
        return 2;
    size_t I = (size_t)atoi(argv[1]), J = (size_t)atoi(argv[2]), K = (size_t)atoi(argv[3]);
    int ta = atoi(argv[4]), tb = atoi(argv[5]), bias = atoi(argv[7]);
    float scale = (float)atof(argv[6]);
    size_t na = I * K, nb = K * J, nd = bias == 2 ? J : I * J;
    ef_elem *a = malloc(na * 2), *b = malloc(nb * 2), *d = malloc(nd * 2), *c = malloc(I * J * 2);
    FILE *f = fopen("in.bin", "rb");
    if (fread(a, 2, na, f) != na || fread(b, 2, nb, f) != nb || fread(d, 2, nd, f) != nd)
        return 1;
    fclose(f);
    ef_matmul_backend(I, J, K, a, b, bias ? d : NULL, c, ta ? I : K, tb ? K : J, J, J, scale,
                      bias == 2, ta, tb);
    f = fopen("out.bin", "wb");
    fwrite(c, 2, I * J, f);
    fclose(f);
    return 0;
}
"""

# (I, J, K, transpose_a, transpose_b, a_scale, bias): the pass's shapes (B transposed forward,
# A transposed weight gradients, the readout's), full 4 x 4 blocks and every edge.
CASES = [
    (4, 64, 33, 0, 1, 1.0, 1), (4, 32, 64, 0, 0, 1.0, 0), (24, 33, 16, 1, 0, 0.25, 0),
    (10, 32, 4, 1, 0, 1.0, 2), (7, 13, 9, 0, 0, 0.3, 1), (9, 6, 20, 1, 1, 1.0, 2),
    (8, 8, 1, 0, 1, 1.0, 1), (5, 3, 7, 0, 0, 1.0, 0), (16, 18, 5, 0, 1, 0.125, 2),
]  # fmt: skip

TARGETS = {
    "host": (["cc"], []),
    "rv64gc": (["riscv64-linux-gnu-gcc", "-static"], ["qemu-riscv64"]),
}


def _bf16(rng: np.random.Generator, shape: tuple[int, ...], spread: float) -> np.ndarray:
    return to_bf16_bits(rng.standard_normal(shape).astype(np.float32) * np.float32(spread))


@pytest.mark.parametrize("target", list(TARGETS))
def test_bf16_matmul_equals_the_gemmini_model(tmp_path, target):
    missing = tool_missing("host" if target == "host" else "riscv")
    if missing is not None:
        pytest.skip(missing)
    compiler, runner = TARGETS[target]
    for header in ("runtime.h", "matmul.h"):
        shutil.copy(TEMPLATES / header, tmp_path / header)
    (tmp_path / "config.h").write_text("#define EDGEFPTT_BF16 1\n#define EDGEFPTT_ROUND_AWAY 0\n")
    (tmp_path / "driver.c").write_text(DRIVER)
    binary = tmp_path / "matmul"
    build = [*compiler, *FLAGS, "-I", str(tmp_path), "-o", str(binary), str(tmp_path / "driver.c"),
             str(TEMPLATES / "matmul_portable.c"), "-lm"]  # fmt: skip
    done = subprocess.run(build, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    rng = np.random.default_rng(5)
    for rows, cols, depth, ta, tb, scale, bias in CASES:
        a = _bf16(rng, (depth, rows) if ta else (rows, depth), 1.0)
        b = _bf16(rng, (cols, depth) if tb else (depth, cols), 0.5)
        d = _bf16(rng, (cols,) if bias == 2 else (rows, cols), 2.0)
        np.concatenate([a.ravel(), b.ravel(), d.ravel()]).astype(np.uint16).tofile(
            tmp_path / "in.bin"
        )
        args = [*runner, str(binary), *map(str, (rows, cols, depth, ta, tb, scale, bias))]
        subprocess.run(args, cwd=tmp_path, check=True)
        got = np.fromfile(tmp_path / "out.bin", np.uint16).reshape(rows, cols)
        want = tiled_matmul(
            from_bf16_bits(a), from_bf16_bits(b), from_bf16_bits(d) if bias else None,
            transpose_a=bool(ta), transpose_b=bool(tb), repeating_bias=bias == 2,
            a_scale=scale, input_type="bf16", acc_type="bf16", dataflow="CPU",
        )  # fmt: skip
        assert np.array_equal(got, to_bf16_bits(want)), (rows, cols, depth, ta, tb, scale, bias)
