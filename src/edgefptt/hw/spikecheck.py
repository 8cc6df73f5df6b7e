"""Check the miss model against Spike's cache simulator, and measure instructions per MAC.

Each scenario is one kernel of the pass (the paper's loop orders: Gemmini's own ``matmul_cpu``
from gemmini.h in fp32, the same loop orders in emulated bf16; ours, linked from an
``export-c`` export's ``matmul_portable.c``), called ``repeat`` times on the same buffers after
they were written once. Spike runs the RISC-V build with the Rocket hierarchy
(``--ic/--dc/--l2``); the misses of the calls are the run's minus those of the same run with
no call, and its instruction count is read with ``rdcycle`` around the calls (Spike retires
one instruction per cycle). The model walks the same sequence
(:class:`edgefptt.hw.cpu.Walker`): the buffers written once, then the calls.
"""

from __future__ import annotations

import math
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from edgefptt.config import DTYPE_BYTES, make_specs
from edgefptt.errors import UserInputError
from edgefptt.hw.access import kernel_pattern, streaming_pattern
from edgefptt.hw.cache import ROCKET_CHIPYARD, Hierarchy
from edgefptt.hw.cpu import LoopCost, Walker, loop_of
from edgefptt.workload.kernels import Buffer, Kernel, MatmulSpec, View, Workload

H, X = 128, 129  # hidden units, [x, h] width of the paper network
UPDATE_PARAMS = 67850
# How gemmini-rocc-tests compiles programs that include gemmini.h (bareMetalC/Makefile), and
# how an export's Makefile cross-compiles our C (CFLAGS -O2, -std=c99, CROSS_FLAGS: fused
# multiply-add contracted).
PAPER_FLAGS = ["-std=gnu99", "-O2", "-ffast-math", "-march=rv64gc"]
GENERATED_FLAGS = ["-std=c99", "-O2", "-ffp-contract=fast"]


@dataclass(frozen=True)
class Scenario:
    name: str
    group: str
    code: str
    buffers: tuple[tuple[str, tuple[int, ...]], ...]
    kernel: Kernel
    call: str  # the C statement of one call
    repeat: int = 3
    dtype: str = "fp32"

    @property
    def loop(self) -> str | None:
        """The matmul loop (a key of :data:`edgefptt.hw.cpu.MATMUL_INSN`), None otherwise."""
        if self.kernel.matmul is None:
            return None
        return loop_of(self.kernel, self.code, self.dtype)

    def addresses(self) -> dict[str, int]:
        """Byte offsets of the buffers in the harness's page-aligned arena: in order, each
        padded by 81 elements and aligned to a line (no power-of-two aliasing between them)."""
        e = DTYPE_BYTES[self.dtype]
        out, at = {}, 0
        for name, shape in self.buffers:
            out[name] = at
            at += -(-(math.prod(shape) + 81) * e // 64) * 64
        return out

    @property
    def macs(self) -> int:
        mm = self.kernel.matmul
        return 0 if mm is None else mm.m * mm.n * mm.k


def _mm(group, a, b, c, spec, bias=None, dtype="fp32") -> Kernel:
    reads = (a, b) if bias is None else (a, b, bias)
    return Kernel("matmul", "matmul", group, "forward", 0, reads, (c,), spec.m * spec.n, dtype,
                  matmul=spec)  # fmt: skip


def scenarios(partition_steps: int = 4, dtype: str = "fp32") -> list[Scenario]:
    """The kernels checked: MatMul-1/2/3 in both codes, an element-wise kernel, the update
    (the last two in fp32 only: their loops are not the matmul's)."""
    rows = 4 * partition_steps
    v = View
    gate = MatmulSpec(4, H, X, transpose_b=True, bias="repeating")
    fused = MatmulSpec(4, 4 * H, X, transpose_b=True, bias="repeating")
    dh = MatmulSpec(4, H, 4 * H)
    dw = MatmulSpec(H, X, 4, transpose_a=True, a_scale=0.25, accumulate=True)
    dw_exact = MatmulSpec(4 * H, X, rows, transpose_a=True, a_scale=0.25, accumulate=True)
    bufs_fwd = (("A", (4, X)), ("W", (4 * H, X)), ("C", (4, 4 * H)), ("b", (4 * H,)))
    bufs_bwd = (("A", (4, 4 * H)), ("W", (4 * H, X)), ("C", (4, H)))
    bufs_dw = (("A", (4, 4 * H)), ("B", (4, X)), ("C", (H, X)))
    bufs_dwx = (("A", (rows, 4 * H)), ("B", (rows, X)), ("C", (4 * H, X)))
    hc = (1, X)
    tag = "" if dtype == "fp32" else f" {dtype}"
    out = []
    for code in ("paper", "generated"):
        fn = "paper_mm" if code == "paper" else "ef_matmul_backend"
        out += [
            Scenario(f"{code} MatMul-2{tag}", "MatMul-2", code, bufs_fwd,
                     _mm("MatMul-2", v("A", (4, X)), v("W", (H, X), rows=(0, H)),
                         v("C", (4, H), cols=(0, H)), gate, v("b", (H,), cols=(0, H)), dtype),
                     f"{fn}(4, {H}, {X}, A, W, b, C, {X}, {X}, 0, {4 * H}, 1.0f, 1, 0, 1)",
                     dtype=dtype)
            if code == "paper" else
            Scenario(f"{code} MatMul-2{tag}", "MatMul-2", code, bufs_fwd,
                     _mm("MatMul-2", v("A", (4, X)), v("W", (4 * H, X)), v("C", (4, 4 * H)),
                         fused, v("b", (4 * H,)), dtype),
                     f"{fn}(4, {4 * H}, {X}, A, W, b, C, {X}, {X}, 0, {4 * H}, 1.0f, 1, 0, 1)",
                     dtype=dtype),
            Scenario(f"{code} MatMul-1{tag}", "MatMul-1", code, bufs_bwd,
                     _mm("MatMul-1", v("A", (4, 4 * H)), v("W", (4 * H, H), cols=hc),
                         v("C", (4, H)), dh, dtype=dtype),
                     f"{fn}(4, {H}, {4 * H}, A, W + 1, NULL, C, {4 * H}, {X}, 0, {H}, 1.0f, 0, 0, "
                     "0)", dtype=dtype),
            Scenario(f"{code} MatMul-3{tag}", "MatMul-3", code, bufs_dw,
                     _mm("MatMul-3", v("A", (4, H), cols=(0, H)), v("B", (4, X)),
                         v("C", (H, X)), dw, dtype=dtype),
                     f"{fn}({H}, {X}, 4, A, B, C, C, {4 * H}, {X}, {X}, {X}, 0.25f, 0, 1, 0)",
                     dtype=dtype),
            Scenario(f"{code} MatMul-1 readout{tag}", "MatMul-1", code,
                     (("A", (4, 10)), ("W", (10, H)), ("C", (4, H))),
                     _mm("MatMul-1", v("A", (4, 10)), v("W", (10, H)), v("C", (4, H)),
                         MatmulSpec(4, H, 10), dtype=dtype),
                     f"{fn}(4, {H}, 10, A, W, NULL, C, 10, {H}, 0, {H}, 1.0f, 0, 0, 0)",
                     repeat=20, dtype=dtype),
            Scenario(f"{code} MatMul-2 readout{tag}", "MatMul-2", code,
                     (("A", (4, H)), ("W", (10, H)), ("C", (4, 10)), ("b", (10,))),
                     _mm("MatMul-2", v("A", (4, H)), v("W", (10, H)), v("C", (4, 10)),
                         MatmulSpec(4, 10, H, transpose_b=True, bias="repeating"), v("b", (10,)),
                         dtype),
                     f"{fn}(4, 10, {H}, A, W, b, C, {H}, {H}, 0, 10, 1.0f, 1, 0, 1)",
                     repeat=20, dtype=dtype),
        ]  # fmt: skip
    out.append(
        Scenario(f"generated MatMul-3 (exact, L={partition_steps}){tag}", "MatMul-3", "generated",
                 bufs_dwx, _mm("MatMul-3", v("A", (rows, 4 * H)), v("B", (rows, X)),
                               v("C", (4 * H, X)), dw_exact, dtype=dtype),
                 f"ef_matmul_backend({4 * H}, {X}, {rows}, A, B, C, C, {4 * H}, {X}, {X}, {X}, "
                 "0.25f, 0, 1, 0)", repeat=2, dtype=dtype)
    )  # fmt: skip
    if dtype != "fp32":
        return out
    n = 4 * 4 * H
    out.append(
        Scenario("element-wise (4 in, 1 out)", "EWO-basic", "paper",
                 tuple((nm, (n,)) for nm in ("A", "B", "C", "D", "E")),
                 Kernel("ew", "elementwise", "EWO-basic", "forward", 0,
                        tuple(v(nm, (n,)) for nm in "ABCD"), (v("E", (n,)),), n, "fp32"),
                 f"ew({n}, A, B, C, D, E)")
    )  # fmt: skip
    p = UPDATE_PARAMS
    out.append(
        Scenario("FPTT update (4 arrays in place, 1 in)", "EWO-SGD(FPTT)", "paper",
                 tuple((nm, (p,)) for nm in ("A", "B", "C", "D", "E")),
                 Kernel("fptt_sgd", "update", "EWO-SGD(FPTT)", "update", 0,
                        tuple(v(nm, (p,)) for nm in "ABCDE"),
                        tuple(v(nm, (p,)) for nm in "ABCD"), p, "fp32"),
                 f"upd({p}, A, B, C, D, E)", repeat=2)
    )  # fmt: skip
    return out


HARNESS = r"""
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdbool.h>
#include <stddef.h>
%(include)s
%(paper)s
%(decls)s
static unsigned long counter(void)
{
    unsigned long c;
    __asm__ volatile("rdcycle %%0" : "=r"(c));
    return c;
}
__attribute__((noinline)) void ew(size_t n, const float *a, const float *b, const float *c,
    const float *d, float *e)
{
    for (size_t i = 0; i < n; ++i) e[i] = a[i] * b[i] + c[i] * d[i];
}
__attribute__((noinline)) void upd(size_t n, float *w, float *wb, float *lam, float *g,
    const float *x)
{
    for (size_t i = 0; i < n; ++i) {
        float gi = g[i] + x[i];
        lam[i] -= 0.5f * (w[i] - wb[i]);
        w[i] -= 0.01f * (gi - lam[i]);
        wb[i] = 0.5f * (wb[i] + w[i]);
        g[i] = 0.0f;
    }
}
/* Map the program's code pages and a deep stack before anything is measured, in both runs
 * (pk maps pages on first touch, and its handler's misses would count against the first call
 * of whatever code or stack only the calls reach). */
extern char __executable_start[], etext[];
__attribute__((noinline)) static void map_pages(void)
{
    volatile char stack[32768];
    for (const volatile char *p = __executable_start; p < etext; p += 4096)
        (void)*p;
    for (size_t i = 0; i < sizeof stack; i += 4096)
        stack[i] = 0;
}
int main(int argc, char **argv)
{
    int repeat = atoi(argv[1]);
    map_pages();
%(init)s
    unsigned long t0 = counter();
    for (int q = 0; q < repeat; ++q)
        %(call)s;
    printf("insn %%lu\n", counter() - t0);
    return 0;
}
"""

# The seed paper's CPU matmul in fp32: Gemmini's own matmul_cpu (gemmini.h, reached through
# tiled_matmul_auto(..., CPU)), compiled as gemmini-rocc-tests builds it. D == C accumulates.
PAPER_FP32 = r"""
typedef float elem;
__attribute__((noinline)) void paper_mm(size_t I, size_t J, size_t K, const elem *a,
    const elem *b, const elem *d, elem *c, size_t sa, size_t sb, size_t sd, size_t sc,
    float scale, int rep, int ta, int tb)
{
    matmul_cpu(ta, tb, I, J, K, a, b, d, c, sa, sb, sd, sc, scale, MVIN_SCALE_IDENTITY,
               MVIN_SCALE_IDENTITY, NO_ACTIVATION, ACC_SCALE_IDENTITY, 0, rep);
}
"""

# The same loop orders in emulated bf16, as the seed paper's BF16 build computes on the core
# (paper_workload.md): 16-bit patterns widened to fp32 for every operation and rounded back
# after it (ties away from zero: add 0x8000, keep the top 16 bits). gemmini.h's matmul_cpu
# multiplies both operands by their scale factors; here each product is rounded, as is the sum.
PAPER_BF16 = r"""
typedef uint16_t elem;
static inline float wid(elem x) { union { uint32_t u; float f; } v; v.u = (uint32_t)x << 16;
    return v.f; }
static inline float rnd(float f) { union { uint32_t u; float f; } v; v.f = f;
    v.u = (v.u + 0x8000u) & 0xffff0000u; return v.f; }
static inline elem nar(float f) { union { uint32_t u; float f; } v; v.f = f;
    return (elem)((v.u + 0x8000u) >> 16); }
#define SC(x, s) rnd(wid(x) * (s))
__attribute__((noinline)) void paper_mm(size_t I, size_t J, size_t K, const elem *a,
    const elem *b, const elem *d, elem *c, size_t sa, size_t sb, size_t sd, size_t sc,
    float scale, int rep, int ta, int tb)
{
    const float one = 1.0f;
    if (!ta && !tb && I % 4 == 0 && J % 4 == 0) {
        for (size_t i = 0; i < I; i += 4)
            for (size_t j = 0; j < J; j += 4) {
                float r[4][4];
                for (int u = 0; u < 4; ++u)
                    for (int w = 0; w < 4; ++w)
                        r[u][w] = d ? wid(d[(rep ? 0 : (i + u) * sd) + j + w]) : 0.0f;
                for (size_t k = 0; k < K; ++k) {
#define M(u, w) r[u][w] = rnd(r[u][w] + rnd(SC(a[(i + u) * sa + k], scale) * \
                                            SC(b[k * sb + j + w], one)))
                    M(0, 0); M(0, 1); M(0, 2); M(0, 3); M(1, 0); M(1, 1); M(1, 2); M(1, 3);
                    M(2, 0); M(2, 1); M(2, 2); M(2, 3); M(3, 0); M(3, 1); M(3, 2); M(3, 3);
#undef M
                }
                for (int u = 0; u < 4; ++u)
                    for (int w = 0; w < 4; ++w)
                        c[(i + u) * sc + j + w] = nar(r[u][w]);
            }
        return;
    }
    size_t ai = ta ? 1 : sa, ak = ta ? sa : 1, bj = tb ? sb : 1, bk = tb ? 1 : sb;
    for (size_t i = 0; i < I; ++i)
        for (size_t j = 0; j < J; ++j) {
            float s = d ? wid(d[(rep ? 0 : i * sd) + j]) : 0.0f;
            for (size_t k = 0; k < K; ++k)
                s = rnd(s + rnd(SC(a[i * ai + k * ak], scale) * SC(b[j * bj + k * bk], one)));
            c[i * sc + j] = nar(s);
        }
}
"""


def harness_source(s: Scenario) -> str:
    decls, init = [], []
    ctype = "ef_elem" if s.code == "generated" else ("elem" if s.kernel.matmul else "float")
    one = "0x3f00u" if s.dtype == "bf16" else "0.5f"
    step = "1u" if s.dtype == "bf16" else "0.001f"
    offsets = s.addresses()
    e = DTYPE_BYTES[s.dtype]
    last, shape = s.buffers[-1]
    total = offsets[last] + (math.prod(shape) + 81) * e
    decls.append(f"static unsigned char arena[{total}] __attribute__((aligned(4096)));")
    for name, shape in s.buffers:
        n = math.prod(shape)
        # one arena at known offsets: the model places the operands in the L1 sets as here
        decls.append(f"static {ctype} *const {name} = ({ctype} *)(arena + {offsets[name]});")
        init.append(
            f"    for (int i = 0; i < {n}; ++i) {name}[i] = ({ctype})({step} * (i % 97) + {one});"
        )
    include, paper = "", ""
    if s.code == "generated":
        include = '#include "matmul.h"'
    elif s.kernel.matmul is not None:
        include = '#include "include/gemmini.h"' if s.dtype == "fp32" else ""
        paper = PAPER_FP32 if s.dtype == "fp32" else PAPER_BF16
    return HARNESS % {"include": include, "decls": "\n".join(decls), "init": "\n".join(init),
                      "paper": paper, "call": s.call}  # fmt: skip


def predict(s: Scenario, hierarchy: Hierarchy = ROCKET_CHIPYARD) -> tuple[float, float]:
    """The model's L1 D and L2 misses of the scenario's calls (after the buffers were written)."""
    net, run = make_specs("paper-smnist")
    e = DTYPE_BYTES[s.dtype]
    buffers = {nm: Buffer(nm, shape, s.dtype, "scratch", "persistent") for nm, shape in s.buffers}
    wl = Workload(net, run, "paper", buffers)
    walker = Walker(hierarchy)
    for nm, shape in s.buffers:  # the initialisation writes every buffer once
        init = Kernel("init", "copy", "dataMovement", "forward", 0, (), (View(nm, shape),), 0,
                      s.dtype)  # fmt: skip
        walker.call(streaming_pattern(init, wl, e))
    pattern = kernel_pattern(s.kernel, wl, e, s.code, s.addresses())
    l1 = l2 = 0.0
    for _ in range(s.repeat):
        a, b = walker.call(pattern)
        l1, l2 = l1 + a, l2 + b
    return l1, l2


_FIELDS = {"D$ Read Misses": "d_read", "D$ Write Misses": "d_write", "L2$ Read Misses": "l2_read",
           "L2$ Write Misses": "l2_write", "I$ Read Misses": "i_read"}  # fmt: skip


def parse_spike(text: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in text.splitlines():
        for label, key in _FIELDS.items():
            if line.startswith(label):
                out[key] = int(line.split(":")[1])
        m = re.match(r"insn (\d+)", line)
        if m:
            out["insn"] = int(m.group(1))
    return out


def measure(
    s: Scenario, export_dir: Path, env: dict[str, str], hierarchy: Hierarchy = ROCKET_CHIPYARD
) -> dict[str, float]:
    """Spike's misses of the scenario's calls (run with ``repeat`` calls minus with none)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "h.c"
        src.write_text(harness_source(s), encoding="utf-8")
        binary = Path(tmp) / "h"
        cmd = ["riscv64-linux-gnu-gcc", "-static", "-o", str(binary), str(src)]
        if s.code == "generated":
            cmd += [*GENERATED_FLAGS, "-I", str(export_dir), str(export_dir / "matmul_portable.c"),
                    str(export_dir / "runtime.c")]  # fmt: skip
        else:
            params = Path(env["GEMMINI_PARAMS_DIR"]) / "fp32_dim4"
            cmd += [*PAPER_FLAGS, "-isystem", str(params), "-isystem", env["GEMMINI_ROCC_TESTS"]]
        done = subprocess.run([*cmd, "-lm"], capture_output=True, text=True, check=False)
        if done.returncode:
            raise UserInputError(
                f"building the {s.name} harness failed: {done.stderr.strip()[:300]}"
            )
        runs = []
        for repeat in (0, s.repeat):
            spike = subprocess.run(
                ["spike", *hierarchy.spike_args(), env["PK"], str(binary), str(repeat)],
                capture_output=True, text=True, env=env, check=False, timeout=300,
            )  # fmt: skip
            runs.append(parse_spike(spike.stdout + spike.stderr))
    base, full = runs
    l1 = (full["d_read"] + full["d_write"]) - (base["d_read"] + base["d_write"])
    l2 = (full["l2_read"] + full["l2_write"]) - (base["l2_read"] + base["l2_write"])
    return {"l1_misses": l1, "l2_misses": l2, "instructions": full.get("insn", 0)}


def loop_costs(rows: list[tuple[Scenario, float]]) -> dict[tuple[str, str, str], LoopCost]:
    """Per matmul loop, instructions = per_mac x MACs + per_output x outputs, fitted to the
    measured instructions per call of that loop's scenarios by non-negative least squares on
    absolute counts (the big calls that dominate a pass weigh most)."""
    import numpy as np
    from scipy.optimize import nnls

    by_loop: dict[tuple[str, str, str], list[tuple[Scenario, float]]] = {}
    for s, per_call in rows:
        if s.loop is not None:
            by_loop.setdefault((s.code, s.loop, s.dtype), []).append((s, per_call))
    out = {}
    for key, items in by_loop.items():
        x = np.array(
            [[s.macs, s.kernel.matmul.m * s.kernel.matmul.n] for s, _ in items], dtype=float
        )
        y = np.array([v for _, v in items])
        ratio = x[:, 0] / x[:, 1]
        if ratio.max() < 2 * ratio.min():  # one depth of k: per output cannot be told apart
            out[key] = LoopCost(float(y.sum() / x[:, 0].sum()), 0.0)
            continue
        coef, _ = nnls(x, y)
        out[key] = LoopCost(float(coef[0]), float(coef[1]))
    return out


def element_costs(
    net_preset: str = "paper-smnist", dtype: str = "fp32", schedule: str = "exact", **sizes: int
) -> dict[str, object]:
    """Instructions per work element of our generated kernels (not matmuls), measured.

    Exports ``schedule`` for ``(net_preset, sizes)``, builds it for RISC-V Linux, counts one
    training pass's instructions per function under qemu-riscv64 (codegen.profile), and divides
    each kernel function ``ef_<op>``'s count by the work elements of the workload's kernels of
    that op. Library calls are charged to the kernels that make them: libm's (expf, tanhf, ...)
    to the LSTM cell's forward kernel or, in the paper schedule, to sigmoid and tanh by their
    elements (the softmax's few calls are left in them); memcpy's to copies, memset's to zeroing.
    """
    from collections import Counter

    from edgefptt.codegen import export_c, make
    from edgefptt.codegen.profile import pass_profile
    from edgefptt.hw.summary import workload_summary

    net, run = make_specs(net_preset, schedule=schedule, dtype=dtype, **sizes)
    work: Counter = Counter()
    for shape, calls in workload_summary(net, run).shapes:
        if shape.matmul is None:
            work[shape.op] += calls * shape.work
    plan = "lifetime"
    with tempfile.TemporaryDirectory() as tmp:
        export = export_c(net, run, Path(tmp) / "exp", seed=1, plan=plan)
        binary = make(export.out_dir, "riscv", learner=False)
        profile = pass_profile(binary, build_dir=Path(tmp))

    def library(*parts: str) -> int:
        return sum(
            n
            for name, n in profile.items()
            if not name.startswith("ef_") and any(f in name for f in parts)
        )

    charged: Counter = Counter({f"ef_{op}": profile.get(f"ef_{op}", 0) for op in work})
    libm = library("exp", "tanh", "log")
    users = [op for op in ("lstm_cell_forward", "sigmoid", "tanh") if op in work]
    for op in users:
        charged[f"ef_{op}"] += libm * work[op] / sum(work[u] for u in users)
    charged["ef_copy"] += library("memcpy", "wordcopy", "memmove")
    charged["ef_zero"] += library("memset")
    per_op = {op: charged[f"ef_{op}"] / n for op, n in work.items() if charged[f"ef_{op}"]}
    return {"per_element": per_op, "libm": libm, "profile": dict(profile.most_common(25))}
