"""The bare-metal targets of an export: memory maps, linker-script checks, qemu command lines.

Each board gets a linker script rendered at export time (``board.ld.j2``): its FLASH and RAM
from the board's memory map, one stack per hart, no heap, and ASSERTs whose messages carry the
numbers of this export (arena, batch, stacks) and what to do when they do not fit.
"""

from __future__ import annotations

from dataclasses import dataclass

from edgefptt.config import NetworkSpec, RunSpec

KIB = 1024
MIB = 1024 * KIB
# Room left in RAM for the C library's data and the program's bookkeeping when suggesting a
# memory budget (picolibc's .data/.bss and ours are a few hundred bytes to a few KiB).
LIBC_ALLOWANCE = 16 * KIB


@dataclass(frozen=True)
class Board:
    """A bare-metal target: where its memory is and how qemu runs it."""

    key: str  # the Makefile's name: "riscv" or the BOARD value an386 / an500
    title: str
    linker_script: str
    entry: str
    flash_origin: int
    flash_bytes: int
    ram_origin: int
    ram_bytes: int
    max_harts: int
    memory_note: str
    qemu: tuple[str, ...]  # qemu-system-* and its options, without -smp and -kernel

    def elf(self, program: str) -> str:
        """File name of ``program`` ("train" or "learn") built for this board."""
        if self.key == "riscv":
            return f"{program}_baremetal_riscv.elf"
        return f"{program}_cortex_m_{self.key}.elf"


# Semihosting on, its console (the program's stdout and stderr, in the order written) on qemu's
# stdout through a chardev (without one qemu writes it to its stderr); no serial port or monitor
# on the terminal.
CONSOLE = ("-nographic", "-serial", "none", "-monitor", "none", "-chardev", "stdio,id=semihost",
           "-semihosting-config", "enable=on,target=native,chardev=semihost")  # fmt: skip
# qemu's virt machine: DRAM at 0x80000000; we run it with 128 MiB and use the first 16 MiB for
# code and constants, the rest as RAM.
VIRT_MEMORY = 128 * MIB
VIRT_CODE = 16 * MIB

BOARDS: dict[str, Board] = {
    "riscv": Board(
        key="riscv",
        title="qemu virt (RISC-V rv64gc, machine mode)",
        linker_script="baremetal_riscv.ld",
        entry="_start",
        flash_origin=0x80000000,
        flash_bytes=VIRT_CODE,
        ram_origin=0x80000000 + VIRT_CODE,
        ram_bytes=VIRT_MEMORY - VIRT_CODE,
        max_harts=8,
        memory_note=(
            "qemu's virt machine: DRAM at 0x80000000, 128 MiB (-m 128M, as make "
            "run-baremetal-riscv\n * runs it); its first 16 MiB hold the code and constants "
            "(FLASH here),\n * the other 112 MiB are the RAM."
        ),
        qemu=("qemu-system-riscv64", "-machine", "virt", "-m", "128M", "-bios", "none", *CONSOLE),
    ),
    "an386": Board(
        key="an386",
        title="mps2-an386 (Cortex-M4F)",
        linker_script="cortex_m_an386.ld",
        entry="ef_reset",
        flash_origin=0x00000000,
        flash_bytes=4 * MIB,
        ram_origin=0x20000000,
        ram_bytes=4 * MIB,
        max_harts=1,
        memory_note=(
            "MPS2 with the AN386 FPGA image: ZBT SSRAM1, 4 MiB at 0x00000000, is the code "
            "memory\n * (FLASH here); ZBT SSRAM2&3, 4 MiB at 0x20000000, is the RAM (the 16 MiB "
            "PSRAM\n * at 0x21000000 is not used)."
        ),
        qemu=("qemu-system-arm", "-machine", "mps2-an386", *CONSOLE),
    ),
    "an500": Board(
        key="an500",
        title="mps2-an500 (Cortex-M7)",
        linker_script="cortex_m_an500.ld",
        entry="ef_reset",
        flash_origin=0x00000000,
        flash_bytes=4 * MIB,
        ram_origin=0x20000000,
        ram_bytes=4 * MIB,
        max_harts=1,
        memory_note=(
            "MPS2 with the AN500 FPGA image: ZBT SSRAM1, 4 MiB at 0x00000000, is the code "
            "memory\n * (FLASH here); ZBT SSRAM2&3, 4 MiB at 0x20000000, is the RAM (the 16 MiB "
            "PSRAM\n * at 0x60000000 is not used)."
        ),
        qemu=("qemu-system-arm", "-machine", "mps2-an500", *CONSOLE),
    ),
}
CORTEX_M_BOARDS = ("an386", "an500")


def stack_bytes(net: NetworkSpec, run: RunSpec) -> int:
    """Stack of one hart: 12 KiB for the kernels' chunks, printf and the learner's bookkeeping,
    plus the arrays of size K, B*C and C*C that main and the learner keep on the stack."""
    b, c, k = run.batch_size, net.num_classes, run.partitions
    need = 12 * KIB + 4 * (2 * k + 3 * b * c + c * c + 2 * b)
    return -(-need // KIB) * KIB


def batch_bytes(net: NetworkSpec, run: RunSpec) -> int:
    """The learner's batch in RAM: B*T*I inputs in the storage type and B int32 labels."""
    return run.batch_size * run.seq_len * net.input_size * run.element_bytes + 4 * run.batch_size


def const_bytes(net: NetworkSpec, run: RunSpec) -> int:
    """Read-only data of size: the initial parameters and the embedded batch."""
    return (net.num_params + run.batch_size * run.seq_len * net.input_size) * run.element_bytes + (
        4 * run.batch_size
    )


def memory_budget_hint(board: Board, harts: int, stack: int) -> int:
    """The --memory-budget that leaves room for the stacks and the C library on ``board``."""
    return max(board.ram_bytes - harts * stack - LIBC_ALLOWANCE, 0)


def fitting_choice(net: NetworkSpec, run: RunSpec, budget: int) -> str:
    """A concrete K, plan and dtype that fit ``budget`` (budget.choose), as text for a message."""
    from edgefptt.plan.budget import BudgetError, choose

    try:
        choice = choose(net, run, budget, dtypes=("fp32", "bf16"))
    except BudgetError:
        return "nothing fits: export a smaller network"
    return (
        f"e.g. --partitions {choice.partitions} --plan {choice.plan} --dtype {choice.dtype} "
        f"({choice.total_bytes} bytes with the state image)"
    )


def linker_context(
    board: Board, net: NetworkSpec, run: RunSpec, arena_bytes: int, description: str
) -> dict[str, object]:
    """What board.ld.j2 needs for ``board``: sizes and the ASSERT conditions and messages."""
    stack = stack_bytes(net, run)
    batch = batch_bytes(net, run)
    consts = const_bytes(net, run)
    checks = []
    suggestion = ""
    if arena_bytes + batch + board.max_harts * stack > board.ram_bytes:  # a K that would fit
        worst = memory_budget_hint(board, board.max_harts, stack)
        suggestion = f" ({fitting_choice(net, run, worst)})"
    learner_linked = "DEFINED(ef_learner_init)"  # learn_* links the learner library, train_* not
    for program, extra in (("train", 0), ("learn", batch)):
        for harts in range(1, board.max_harts + 1):
            need = arena_bytes + extra + harts * stack
            what = f"the arena ({arena_bytes} bytes)"
            if extra:
                what += f", the batch ({extra} bytes)"
            stacks = f"{harts} stack{'s' if harts > 1 else ''} of {stack} bytes"
            if need > board.ram_bytes:
                why = (
                    f"{what} and {stacks} need {need} bytes: {need - board.ram_bytes} bytes short "
                    "(ld's count of the overflow adds the C library's data)"
                )
            else:
                why = (
                    f"{what} and {stacks} need {need} bytes, which leaves too little for the C "
                    "library's data and the bookkeeping (ld's count of the overflow says how much)"
                )
            budget = memory_budget_hint(board, harts, stack)
            message = (
                f"edgefptt: {board.elf(program)} does not fit the {board.ram_bytes} bytes of "
                f"RAM of {board.title}: {why}; choose a smaller K, the recompute plan or bf16: "
                f"edgefptt export-c --memory-budget {budget} --dtype auto (the RAM less the "
                f"stacks and {LIBC_ALLOWANCE // KIB} KiB for the C library){suggestion}"
            )
            other = learner_linked if program == "train" else f"!{learner_linked}"
            checks.append({"condition": f"__ef_harts != {harts} || {other}", "message": message})
    flash_message = (
        f"edgefptt: the program does not fit the {board.flash_bytes} bytes of FLASH of "
        f"{board.title}: the parameters and the embedded batch alone take {consts} bytes, "
        "besides the code. Export a smaller network, or bf16"
    )
    return {
        "board": board,
        "description": description,
        "arena_bytes": arena_bytes,
        "batch_bytes": batch,
        "const_bytes": consts,
        "stack_bytes": stack,
        "ram_checks": checks,
        "flash_message": flash_message,
    }


__all__ = [
    "BOARDS",
    "CORTEX_M_BOARDS",
    "Board",
    "batch_bytes",
    "const_bytes",
    "linker_context",
    "memory_budget_hint",
    "stack_bytes",
]
