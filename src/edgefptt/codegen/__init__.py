"""C code generation: the workload's kernel list as a dependency-free C99 training routine.

``export_c`` writes a directory (sources, Makefile, linker scripts, golden.json); ``build``
compiles it for the host, RISC-V Linux or bare metal (RISC-V virt, Cortex-M mps2) and runs it
(natively, under qemu-riscv64 or under qemu-system with semihosting).
"""

from edgefptt.codegen.build import (
    BAREMETAL,
    LEARNERS,
    BuildError,
    LearnOutput,
    RunOutput,
    arena_symbols,
    count_instructions,
    make,
    qemu_system_command,
    run_baremetal,
    run_baremetal_learner,
    run_binary,
    run_learner,
    tool_missing,
)
from edgefptt.codegen.export import EXPORT_PLANS, Export, export_c, export_workload
from edgefptt.codegen.inputs import checkpoint_params, load_batch, seeded_params, synthetic_batch
from edgefptt.codegen.program import lower

__all__ = [
    "BAREMETAL",
    "EXPORT_PLANS",
    "LEARNERS",
    "BuildError",
    "Export",
    "LearnOutput",
    "RunOutput",
    "arena_symbols",
    "checkpoint_params",
    "count_instructions",
    "export_c",
    "export_workload",
    "load_batch",
    "lower",
    "make",
    "qemu_system_command",
    "run_baremetal",
    "run_baremetal_learner",
    "run_binary",
    "run_learner",
    "seeded_params",
    "synthetic_batch",
    "tool_missing",
]
