"""Instructions per function of a RISC-V program under qemu-riscv64 (a TCG plugin and nm).

The plugin (templates/insn_profile_plugin.c) reports every executed translation block's start
address, length and execution count; the binary's function symbols (``riscv64-linux-gnu-nm``,
static binaries: fixed addresses) name the function each block starts in. One training pass is
a run with ``--time 1`` (one extra pass) minus a plain run, function by function.
"""

from __future__ import annotations

import bisect
import re
import subprocess
import tempfile
from collections import Counter
from pathlib import Path

from edgefptt.codegen.build import QEMU_RVV_CPU, BuildError, plugin_library

_BLOCK = re.compile(r"^tb ([0-9a-f]+) (\d+) (\d+)$", re.MULTILINE)

# The runtime's kernels by the group of the seed paper's tables they are charged to (the
# generated program's calls, docs/deploy.md); functions not listed are "other" (the libm calls
# from inside kernels are charged to "libm").
KERNEL_GROUPS = {
    "ef_matmul_backend": "matmul",
    **dict.fromkeys(
        (
            "nn_plain",
            "nn_scaled",
            "nt_plain",
            "nt_scaled",
            "block_mr_nr",
            "block_mr_v",
            "block_edge",
            "column_rows",
            "matmul_nn",
            "matmul_nt",
            "matmul_nt_wide",
            "rv_row_block",
            "rv_bf16_block",
            *(f"rv_half_{v}{s}" for v in ("nn", "nt", "tn", "tt") for s in ("", "_scaled")),
        ),
        "matmul",
    ),
    "ef_lstm_cell_forward": "lstm_cell_forward",
    "ef_lstm_gates": "lstm_cell_forward",
    "ef_lstm_cell_backward": "lstm_cell_backward",
    "ef_gru_cell_forward": "gru_cell_forward",
    "ef_gru_gates": "gru_cell_forward",
    "ef_gru_cell_backward": "gru_cell_backward",
    "ef_add": "add",
    "ef_softmax_xent": "softmax_xent",
    "ef_softmax": "softmax_xent",
    "ef_xent_grad": "softmax_xent",
    "ef_bias_grad": "bias_grad",
    "ef_fptt_sgd": "fptt_sgd",
    "fptt_range": "fptt_sgd",
    "ef_copy": "copy_zero",
    "ef_zero": "copy_zero",
    "ef_sigmoid": "paper_elementwise",
    "ef_tanh": "paper_elementwise",
    "ef_mul": "paper_elementwise",
    "ef_cell_state": "paper_elementwise",
    "ef_lstm_grad_output": "paper_elementwise",
    "ef_lstm_grad_gates": "paper_elementwise",
    "ef_sync": "sync",
    "ef_barrier": "sync",
    "ef_counter": "sync",
}


def _plugin(build_dir: Path) -> Path:
    return plugin_library("insn_profile_plugin", build_dir)


def function_symbols(binary: Path, nm: str = "riscv64-linux-gnu-nm") -> list[tuple[int, str]]:
    """(address, name) of the binary's text symbols, sorted by address."""
    done = subprocess.run([nm, "-n", str(binary)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BuildError(f"{nm} failed on {binary}: {done.stderr.strip()[-300:]}")
    symbols = []
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] in "tTwW":
            symbols.append((int(parts[0], 16), parts[2]))
    return symbols


def qemu_command(binary: Path, target: str, args: tuple[str, ...], plugin: Path) -> list[str]:
    """The qemu command line that runs ``binary`` with ``plugin`` loaded.

    target: ``riscv`` (hosted, qemu-riscv64, one thread), ``riscv_rvv`` (the same with the V
    extension, QEMU_RVV_CPU) or ``cortex-m7`` (bare metal, qemu-system-arm's mps2-an500, argv
    through semihosting).
    """
    if target == "riscv":
        return ["qemu-riscv64", "-plugin", str(plugin), str(binary), "-t", "1", *args]
    if target == "riscv_rvv":
        return ["qemu-riscv64", "-cpu", QEMU_RVV_CPU, "-plugin", str(plugin), str(binary), "-t",
                "1", *args]  # fmt: skip
    if target == "cortex-m7":
        return [
            "qemu-system-arm", "-machine", "mps2-an500", "-nographic", "-serial", "none",
            "-monitor", "none", "-chardev", "stdio,id=semihost", "-semihosting-config",
            "enable=on,target=native,chardev=semihost", "-plugin", str(plugin),
            "-kernel", str(binary), "-append", " ".join(args),
        ]  # fmt: skip
    raise ValueError(f"unknown profiling target {target!r}")


NM = {"riscv": "riscv64-linux-gnu-nm", "riscv_rvv": "riscv64-linux-gnu-nm",
      "cortex-m7": "arm-none-eabi-nm"}  # fmt: skip


def instructions_by_function(
    binary: Path, *args: str, build_dir: Path | None = None, target: str = "riscv"
) -> Counter:
    """Executed instructions per function of one run of ``binary`` (one thread or hart)."""
    # Thumb function symbols carry the interworking bit: their code starts one byte lower.
    symbols = sorted((a & ~1, n) for a, n in function_symbols(binary, NM[target]))
    starts = [a for a, _ in symbols]
    with tempfile.TemporaryDirectory() as tmp:
        plugin = _plugin(Path(build_dir or tmp))
        done = subprocess.run(
            qemu_command(binary, target, args, plugin), capture_output=True, text=True,
            check=False, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    if done.returncode != 0:
        raise BuildError(f"profiling {binary.name} failed: {done.stderr.strip()[-300:]}")
    counts: Counter = Counter()
    for address, insns, execs in _BLOCK.findall(done.stderr):
        at = bisect.bisect_right(starts, int(address, 16)) - 1
        name = symbols[at][1] if at >= 0 else "?"
        counts[name] += int(insns) * int(execs)
    return counts


def pass_profile(binary: Path, build_dir: Path | None = None, target: str = "riscv") -> Counter:
    """Instructions per function of one training pass (a run with one extra pass minus a plain
    run; functions whose difference is zero are left out)."""
    plain = instructions_by_function(binary, build_dir=build_dir, target=target)
    extra = instructions_by_function(binary, "--time", "1", build_dir=build_dir, target=target)
    out: Counter = Counter()
    for name in set(plain) | set(extra):
        diff = extra[name] - plain[name]
        if diff:
            out[name] = diff
    return out


def by_group(profile: Counter) -> dict[str, int]:
    """A profile summed by KERNEL_GROUPS (libm's functions as "libm", the rest "other")."""
    groups: Counter = Counter()
    for name, count in profile.items():
        if name in KERNEL_GROUPS:
            groups[KERNEL_GROUPS[name]] += count
        elif name.rstrip("f") in ("exp", "log", "tanh", "__expf", "__logf") or "exp" in name:
            groups["libm"] += count
        else:
            groups["other"] += count
    return dict(groups)
