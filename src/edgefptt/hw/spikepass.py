"""Check the miss model on a whole generated training pass: Spike against the model, per group.

The C that ``export-c`` writes is built for RISC-V Linux (``make riscv``: the one-pass program,
the export Makefile's cross flags, our scalar matmul for cores without a vector unit) and run
under Spike's proxy kernel with the Rocket hierarchy (``--ic/--dc/--l2``) and ``--time 1``
(a second pass after the first). The second pass is the one compared: every page of the arena
is mapped by then (pk zeroes a page on its first touch, inside whichever kernel touches it
first), and it is the steady state of a device that trains batch after batch.

Attribution. ``spike -l --log-cache-miss`` prints every instruction (its PC) and, after the
instruction that caused it, every L1 D miss. The generated program calls ``ef_sync(ctx,
group)`` after every kernel call (model.c), and ``ef_sync`` charges the counter ticks since
the previous one to that group: the program's own per-group accounting. Here the log is cut at
the entries of ``ef_sync`` (its address from the binary's symbol table): the n-th stretch of a
pass is the n-th kernel call of the workload (:func:`edgefptt.workload.build_workload`, whose
kernels model.c emits in order), so each stretch's misses and instructions belong to that
kernel and its group. The number of ``ef_sync`` calls must equal the workload's kernels, twice;
anything else stops the check. The first stretch starts at the last ``rdcycle``
(``ef_counter``) before the pass's first kernel, where ``start_pass`` starts the program's
count. L2 misses are not in Spike's miss log: they are compared for the pass as a whole (the
run with the extra pass minus the run without).

The model walks the same workload twice (:class:`edgefptt.hw.cpu.Walker`, the same code and
hierarchy; the first walk stands for the first pass) and reports the second walk's misses per
kernel, the buffers at their offsets in export-c's arena (:func:`edgefptt.hw.cpu.arena_addresses`),
as ``edgefptt estimate --code generated --no-accelerator`` does.
"""

from __future__ import annotations

import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edgefptt.config import DTYPE_BYTES, NetworkSpec, RunSpec, make_specs
from edgefptt.errors import UserInputError
from edgefptt.hw.access import kernel_pattern
from edgefptt.hw.cache import ROCKET_CHIPYARD, Hierarchy
from edgefptt.hw.cpu import Walker, arena_addresses, matmul_instructions
from edgefptt.hw.spikecheck import parse_spike
from edgefptt.workload import build_workload
from edgefptt.workload.kernels import GROUPS

NM = "riscv64-linux-gnu-nm"
CHUNK = 1 << 23  # bytes of Spike's log read at a time


@dataclass(frozen=True)
class PassCase:
    """One generated training pass: a small network so that Spike runs it in seconds."""

    name: str
    hidden: int = 16
    seq_len: int = 16
    batch: int = 4
    partitions: int = 1
    schedule: str = "exact"
    dtype: str = "fp32"

    def specs(self) -> tuple[NetworkSpec, RunSpec]:
        return make_specs(
            "paper-smnist",
            hidden_size=self.hidden,
            seq_len=self.seq_len,
            batch_size=self.batch,
            partitions=self.partitions,
            schedule=self.schedule,
            dtype=self.dtype,
        )


CASES = (
    PassCase("exact K=1", partitions=1),
    PassCase("exact K=4", partitions=4),
    PassCase("paper K=4", partitions=4, schedule="paper"),
    PassCase("exact K=4 H=32", hidden=32, seq_len=32, partitions=4),
)


@dataclass
class PassMisses:
    """Per kernel call of one pass: L1 D misses and instructions (Spike or the model)."""

    groups: list[str]
    l1: list[float]
    instructions: list[float]
    l2_total: float = 0.0
    # Spike: the second pass's run minus the one-pass run, less the kernels' misses: what runs
    # around the pass (main's timing and printing), not a kernel's
    other_l1: float = 0.0
    # Spike: the address of the program's arena (``edgefptt_arena``), for the model to place
    # the buffers where they are
    arena: int | None = None

    def by_group(self) -> dict[str, dict[str, float]]:
        out = {g: {"l1": 0.0, "instructions": 0.0, "calls": 0} for g in GROUPS}
        for g, m, n in zip(self.groups, self.l1, self.instructions, strict=True):
            out[g]["l1"] += m
            out[g]["instructions"] += n
            out[g]["calls"] += 1
        return {g: v for g, v in out.items() if v["calls"]}


def symbol(binary: Path, name: str) -> int:
    """Address of a text symbol of a static binary (fixed addresses)."""
    done = subprocess.run([NM, str(binary)], capture_output=True, text=True, check=False)
    if done.returncode:
        raise UserInputError(f"{NM} failed on {binary}: {done.stderr.strip()[:200]}")
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[2] == name:
            return int(parts[0], 16)
    raise UserInputError(f"{binary} has no symbol {name}: is it an export-c one-pass program?")


def _lines(stream) -> Iterator[bytes]:
    """Complete lines of the stream, a chunk of whole lines at a time."""
    rest = b""
    while True:
        block = stream.read(CHUNK)
        if not block:
            if rest:
                yield rest
            return
        block = rest + block
        cut = block.rfind(b"\n") + 1
        rest = block[cut:]
        if cut:
            yield block[:cut]


def attribute(
    stream, sync_pc: int, counter_pc: int, kernels: int
) -> tuple[list[float], list[float]]:
    """Per kernel call of the second pass in Spike's ``-l --log-cache-miss`` log ``stream``:
    L1 D misses and instructions, and the misses of that pass outside any call."""
    sync = f"core   0: 0x{sync_pc:016x} (".encode()
    counter = f"core   0: 0x{counter_pc:016x} (".encode()
    miss = b"D$ "
    l1 = [0.0] * kernels
    insn = [0.0] * kernels
    syncs = 0
    cur: int | None = None
    for chunk in _lines(stream):
        events = []
        for tag, needle in ((0, sync), (1, counter), (2, miss)):
            at = chunk.find(needle)
            while at >= 0:
                if at == 0 or chunk[at - 1] == 10:  # at a line start
                    events.append((at, tag))
                at = chunk.find(needle, at + 1)
        events.sort()
        last = 0
        for at, tag in events:
            if cur is not None:  # from the last event's instruction to this one's, excluded
                insn[cur] += chunk.count(b"\ncore", max(0, last - 1), max(0, at - 1))
            last = at
            if tag == 0:
                syncs += 1
                cur = syncs - kernels if kernels < syncs < 2 * kernels else None
            elif tag == 1 and syncs == kernels:  # start_pass: the program's count starts
                cur = 0
                l1[0] = insn[0] = 0.0
            elif tag == 2 and cur is not None:
                l1[cur] += 1
        if cur is not None:
            insn[cur] += chunk.count(b"\ncore", max(0, last - 1))
    if syncs != 2 * kernels:
        raise UserInputError(
            f"the program synchronised {syncs} times in two passes, the workload has {kernels} "
            "kernels per pass: the export and the workload disagree"
        )
    return l1, insn


def build(case: PassCase, out_dir: Path) -> Path:
    """Export the case and build its one-pass RISC-V Linux program (``make riscv``)."""
    from edgefptt.codegen import export_c, make

    net, run = case.specs()
    export = export_c(net, run, out_dir, seed=1)
    return make(export.out_dir, "riscv", learner=False)


def measure_pass(
    case: PassCase, env: dict[str, str], hierarchy: Hierarchy = ROCKET_CHIPYARD
) -> PassMisses:
    """Spike's L1 D misses and instructions per kernel call of the case's second pass."""
    net, run = case.specs()
    kernels = build_workload(net, run).kernels
    with tempfile.TemporaryDirectory() as tmp:
        binary = build(case, Path(tmp) / "export")
        sync_pc, counter_pc = symbol(binary, "ef_sync"), symbol(binary, "ef_counter")
        arena = symbol(binary, "edgefptt_arena")
        base = [str(binary), "-t", "1"]
        spike = ["spike", *hierarchy.spike_args(), env["PK"]]
        runs = [
            subprocess.run(
                [*spike, *base, *extra],
                capture_output=True,
                text=True,
                env=env,
                check=False,
                timeout=600,
            )
            for extra in ((), ("--time", "1"))
        ]
        logged = [spike[0], "-l", "--log-cache-miss", *spike[1:], *base, "--time", "1"]
        with subprocess.Popen(
            logged, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env
        ) as proc:
            try:
                l1, insn = attribute(proc.stdout, sync_pc, counter_pc, len(kernels))
            finally:  # a log that does not parse: stop Spike rather than wait for it
                proc.kill()
    one, two = runs
    a, b = parse_spike(one.stdout + one.stderr), parse_spike(two.stdout + two.stderr)
    if not a or not b:
        raise UserInputError(f"Spike printed no cache statistics: {two.stderr.strip()[:300]}")
    l2 = (b["l2_read"] + b["l2_write"]) - (a["l2_read"] + a["l2_write"])
    d1 = (b["d_read"] + b["d_write"]) - (a["d_read"] + a["d_write"])
    return PassMisses(
        [k.group for k in kernels],
        l1,
        insn,
        l2_total=l2,
        other_l1=d1 - sum(l1),
        arena=arena,
    )


def predict_pass(
    case: PassCase,
    hierarchy: Hierarchy = ROCKET_CHIPYARD,
    code: str = "generated",
    arena: int | None = None,
) -> PassMisses:
    """The model's L1 D misses per kernel call of the case's second pass (walked twice);
    ``arena``: the built program's arena address (:attr:`PassMisses.arena`), else the arena is
    taken to start a page (as ``estimate`` does)."""
    net, run = case.specs()
    wl = build_workload(net, run)
    e = DTYPE_BYTES[run.dtype]
    walker = Walker(hierarchy)
    addresses = arena_addresses(wl, arena or 0) if code == "generated" else None
    exact = arena is not None
    patterns = [kernel_pattern(k, wl, e, code, addresses, exact) for k in wl.kernels]
    for p in patterns:
        walker.call(p)
    l1, insn, l2 = [], [], 0.0
    for k, p in zip(wl.kernels, patterns, strict=True):
        a, b = walker.call(p)
        l1.append(a)
        l2 += b
        insn.append(matmul_instructions(k, code, run.dtype) if k.matmul is not None else 0.0)
    return PassMisses([k.group for k in wl.kernels], l1, insn, l2_total=l2)


# Groups with at least LARGE misses in Spike's pass are compared in per cent; smaller ones in
# misses (SMALL_ABS): a group of a few hundred misses over tens of calls is within a few misses
# per call of the lines the model does not walk (stack frames, the kernel context, the counters
# ef_sync updates, libm's tables).
LARGE = 500
SMALL_ABS = 150


def compare(spike: PassMisses, model: PassMisses) -> list[dict[str, object]]:
    """Per group and for the pass: Spike's L1 D misses beside the model's, and the error (per
    cent where Spike counts at least LARGE misses, else in misses)."""
    sg, mg = spike.by_group(), model.by_group()
    rows = []
    for g in sg:
        s, m = sg[g]["l1"], mg[g]["l1"]
        rows.append(
            {
                "group": g,
                "calls": int(sg[g]["calls"]),
                "spike_l1_misses": round(s),
                "model_l1_misses": round(m),
                "error_pct": 100 * (m / s - 1) if s else None,
                "error_misses": round(m - s),
                "large": s >= LARGE,
                "spike_instructions": round(sg[g]["instructions"]),
            }
        )
    s, m = sum(spike.l1), sum(model.l1)
    rows.append(
        {
            "group": "total",
            "calls": len(spike.l1),
            "spike_l1_misses": round(s),
            "model_l1_misses": round(m),
            "error_pct": 100 * (m / s - 1) if s else None,
            "error_misses": round(m - s),
            "large": s >= LARGE,
            "spike_instructions": round(sum(spike.instructions)),
            "spike_l2_misses": round(spike.l2_total),
            "model_l2_misses": round(model.l2_total),
            "spike_other_l1": round(spike.other_l1),
        }
    )
    return rows
