"""Device presets and emulated targets: does training fit, and how many instructions a pass takes.

Part 1 (no builds): for the paper network (preset paper-smnist) and the keyword-spotting network
(preset gsc), :func:`edgefptt.plan.devices.fit_device` on every device preset: the K, arena plan
and element type it chooses, the bytes left or the shortfall. Then the two explicit questions:
can the paper network be fine-tuned in 1 MB (the portenta-h7 preset, and a bare budget of
1,048,576 bytes) and in 580 KB (the gap8 preset, and a bare budget of 593,920 bytes)?

Part 2 (builds and qemu): guest instructions of one training pass of the embedded-batch program
(``train_*``) on RISC-V bare metal (qemu-system-riscv64 -M virt, 1/2/4/8 harts), on Cortex-M7
(qemu-system-arm -M mps2-an500) and, as a cross-check, the hosted RISC-V build under qemu-riscv64
(build.instructions_per_pass: a run with ``--time 1`` minus a plain run, the project's plugin).

Bare metal has no ``--time`` (main.c rejects it there), so a pass is measured as the program
minus a zero-pass copy of it: the same export with main.c's ``edgefptt_train`` call replaced by
zeroing the losses (in a temporary copy; the script writes nothing in the repository). Counting
uses a per-vCPU TCG plugin written here (the project's insn_count_plugin.c keeps one shared
counter; it is loaded once in qemu-system as a check). The plugin also counts, per vCPU, the
instructions in blocks that start inside ``ef_barrier`` (or GCC's ``ef_barrier.part.N``) and
``edgefptt_worker`` (the barrier's and the idle workers' spin loops), so that
``work = total - spin``: with several harts the spin depends on how qemu's threads are
scheduled on the host, the work does not.

Prints one JSON document on stdout, progress on stderr.

Run: python benchmarks/devices.py [--quick] [--count-preset gsc] [--seq-len 100] [--harts 1,2,4,8]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edgefptt.codegen import export_c, make
from edgefptt.codegen.boards import BOARDS
from edgefptt.codegen.build import (
    BAREMETAL,
    NM,
    BuildError,
    _plugin,
    compile_plugin,
    instructions_per_pass,
    qemu_system_command,
    tool_missing,
)
from edgefptt.config import NetworkSpec, RunSpec, make_specs
from edgefptt.plan.budget import BUDGET_DTYPES, BUDGET_PLANS, BudgetError, choose
from edgefptt.plan.devices import DEVICES, fit_device

FIT_PRESETS = ("paper-smnist", "gsc")
ONE_MB = 1_048_576
KB_580 = 593_920
SPIN_SYMBOLS = ("ef_barrier", "edgefptt_worker")
TRAIN_CALL = "    edgefptt_train(edgefptt_samples_x, edgefptt_samples_labels, losses, threads);\n"
NO_PASS = (
    "    (void)threads; /* zero-pass baseline (benchmarks/devices.py) */\n"
    "    for (int p = 0; p < EDGEFPTT_PARTITIONS; ++p)\n"
    "        losses[p] = 0.0f;\n"
)

# A TCG plugin (QEMU plugin API version 1, declared here as insn_count_plugin.c does): executed
# guest instructions per vCPU, and the part of them in blocks starting in the given address
# ranges (options spin=LO:HI, hexadecimal, end exclusive). Prints `vcpu I TOTAL SPIN` lines.
PLUGIN_SOURCE = r"""
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb,
                                          enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

#define MAX_VCPUS 64
#define MAX_RANGES 8
static uint64_t counts[MAX_VCPUS][2]; /* [vcpu][0]: all, [1]: in the spin ranges */
static uint64_t lo[MAX_RANGES], hi[MAX_RANGES];
static int ranges;

static void on_exec(unsigned int vcpu, void *udata)
{
    uintptr_t word = (uintptr_t)udata;
    if (vcpu < MAX_VCPUS) {
        counts[vcpu][0] += word >> 1; /* each vCPU writes only its own slot */
        counts[vcpu][1] += (word & 1) ? word >> 1 : 0;
    }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    uint64_t pc = qemu_plugin_tb_vaddr(tb);
    uintptr_t spin = 0;
    for (int r = 0; r < ranges; ++r)
        spin |= pc >= lo[r] && pc < hi[r];
    uintptr_t word = ((uintptr_t)qemu_plugin_tb_n_insns(tb) << 1) | spin;
    qemu_plugin_register_vcpu_tb_exec_cb(tb, on_exec, QEMU_PLUGIN_CB_NO_REGS, (void *)word);
}

static void at_quit(qemu_plugin_id_t id, void *userdata)
{
    (void)id;
    (void)userdata;
    for (int v = 0; v < MAX_VCPUS; ++v)
        if (counts[v][0])
            fprintf(stderr, "vcpu %d %" PRIu64 " %" PRIu64 "\n", v, counts[v][0], counts[v][1]);
}

__attribute__((visibility("default"))) int qemu_plugin_install(qemu_plugin_id_t id,
                                                               const qemu_info_t *info,
                                                               int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc && ranges < MAX_RANGES; ++i) {
        if (strncmp(argv[i], "spin=", 5) == 0) {
            char *end;
            lo[ranges] = strtoull(argv[i] + 5, &end, 16);
            hi[ranges] = strtoull(end + 1, NULL, 16);
            ++ranges;
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, at_quit, NULL);
    return 0;
}
"""

_VCPU = re.compile(r"^vcpu (\d+) (\d+) (\d+)$", re.MULTILINE)
_INSNS = re.compile(r"^insns (\d+)$", re.MULTILINE)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Part 1: fits


def _choice_row(choice: Any) -> dict[str, Any]:
    return {
        "partitions": choice.partitions,
        "plan": choice.plan,
        "dtype": choice.dtype,
        "total_bytes": choice.total_bytes,
        "arena_bytes": choice.arena_bytes,
        "batch_bytes": choice.batch_bytes,
        "state_bytes": choice.state_bytes,
        "budget_bytes": choice.budget_bytes,
        "bytes_left": choice.bytes_left,
        "latency_seconds": choice.latency_seconds,
    }


def fit_row(net: NetworkSpec, run: RunSpec, device: str) -> dict[str, Any]:
    fit = fit_device(net, run, device)
    least = fit.least
    return {
        "device": device,
        "ram_bytes": fit.device.ram_bytes,
        "reserve_bytes": fit.reserve_bytes,
        "budget_bytes": fit.budget_bytes,
        "fits": fit.fits,
        "partitions": fit.choice.partitions if fit.choice else None,
        "plan": fit.choice.plan if fit.choice else None,
        "dtype": fit.choice.dtype if fit.choice else None,
        "total_bytes": fit.choice.total_bytes if fit.choice else None,
        "bytes_left": fit.bytes_left,
        "least_bytes": least.total_bytes,
        "least": {"partitions": least.partitions, "plan": least.plan, "dtype": least.dtype},
        "shortfall_bytes": fit.shortfall_bytes,
        "flash_bytes": fit.device.flash_bytes,
        "flash_needed_bytes": fit.flash_needed_bytes,
        "flash_fits": fit.flash_fits,
        "reason": fit.reason(),
    }


def budget_answer(net: NetworkSpec, run: RunSpec, budget: int) -> dict[str, Any]:
    """budget.choose on a bare budget (no stack/bookkeeping reserve), every dtype and plan."""
    try:
        choice = choose(net, run, budget, dtypes=BUDGET_DTYPES, plans=BUDGET_PLANS)
        return {"budget_bytes": budget, "fits": True, **_choice_row(choice)}
    except BudgetError as exc:
        return {"budget_bytes": budget, "fits": False, "reason": str(exc)}


def fits_part() -> dict[str, Any]:
    table: dict[str, Any] = {}
    for preset in FIT_PRESETS:
        net, run = make_specs(preset)
        table[preset] = {
            "network": net.model_dump(),
            "run": run.model_dump(),
            "devices": [fit_row(net, run, name) for name in DEVICES],
        }
    net, run = make_specs("paper-smnist")
    questions = {
        "paper_network_within_1MB": {
            "portenta-h7_preset": fit_row(net, run, "portenta-h7"),
            "bare_budget": budget_answer(net, run, ONE_MB),
        },
        "paper_network_within_580KB": {
            "gap8_preset": fit_row(net, run, "gap8"),
            "bare_budget": budget_answer(net, run, KB_580),
        },
    }
    return {"table": table, "questions": questions}


# ---------------------------------------------------------------------------------------------
# Part 2: instruction counts


def build_plugin(folder: Path) -> Path:
    source = folder / "vcpu_count_plugin.c"
    source.write_text(PLUGIN_SOURCE, encoding="utf-8")
    return compile_plugin(source, folder / "libvcpu_count.so")


def spin_ranges(elf: Path, target: str) -> list[tuple[int, int]]:
    """Address ranges [lo, hi) of the spin-loop functions (Thumb bit cleared)."""
    done = subprocess.run([NM[target], "-S", str(elf)], capture_output=True, text=True, check=True)
    ranges = []
    for line in done.stdout.splitlines():
        parts = line.split()
        name = parts[3].split(".")[0] if len(parts) == 4 else ""  # GCC's ef_barrier.part.0
        if name in SPIN_SYMBOLS and parts[2] in "tT":
            start = int(parts[0], 16) & ~1
            ranges.append((start, start + int(parts[1], 16)))
    return ranges


def count_system(
    elf: Path, target: str, harts: int, plugin: Path, timeout_s: float
) -> dict[str, Any]:
    """Run a bare-metal ELF under qemu-system with the per-vCPU plugin."""
    option = ",".join(
        [str(plugin)] + [f"spin={lo:x}:{hi:x}" for lo, hi in spin_ranges(elf, target)]
    )
    command = qemu_system_command(target, elf, harts=harts)
    command[1:1] = ["-plugin", option]
    start = time.perf_counter()
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout_s, check=False,
        stdin=subprocess.DEVNULL, cwd=elf.parent,
    )  # fmt: skip
    wall = time.perf_counter() - start
    found = _VCPU.findall(done.stderr)
    if done.returncode != 0 or not found:
        raise BuildError(f"{elf.name} on {harts} hart(s): exit {done.returncode}\n{done.stderr}")
    per = {int(v): (int(t), int(s)) for v, t, s in found}
    return {"per_vcpu": per, "wall_s": wall, "stdout": done.stdout}


def project_plugin_check(elf: Path, target: str, folder: Path, timeout_s: float) -> dict:
    """Does the project's insn_count_plugin.c load in qemu-system, and what does it print?"""
    command = qemu_system_command(target, elf, harts=1)
    command[1:1] = ["-plugin", str(_plugin(folder))]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout_s, check=False,
        stdin=subprocess.DEVNULL, cwd=elf.parent,
    )  # fmt: skip
    found = _INSNS.findall(done.stderr)
    return {
        "loads": done.returncode == 0 and bool(found),
        "insns": int(found[-1]) if found else None,
        "returncode": done.returncode,
    }


def zero_pass_copy(src: Path, dst: Path) -> Path:
    """The export with main.c's one training pass replaced by zeroed losses."""
    shutil.copytree(src, dst)
    main = dst / "main.c"
    text = main.read_text(encoding="utf-8")
    if text.count(TRAIN_CALL) != 1:
        raise BuildError("main.c's edgefptt_train call not found; cannot build a 0-pass baseline")
    main.write_text(text.replace(TRAIN_CALL, NO_PASS), encoding="utf-8")
    for stale in dst.glob("*.elf"):
        stale.unlink()
    return dst


def measure_target(
    export_dir: Path, zero_dir: Path, target: str, harts: int, plugin: Path, timeout_s: float
) -> dict[str, Any]:
    start = time.perf_counter()
    elf = make(export_dir, target, learner=False, harts=harts)
    elf0 = make(zero_dir, target, learner=False, harts=harts)
    build_s = time.perf_counter() - start
    one = count_system(elf, target, harts, plugin, timeout_s)
    zero = count_system(elf0, target, harts, plugin, timeout_s)
    per_hart = []
    for v in range(harts):
        t1, s1 = one["per_vcpu"].get(v, (0, 0))
        t0, s0 = zero["per_vcpu"].get(v, (0, 0))
        per_hart.append(
            {"hart": v, "pass_total": t1 - t0, "pass_spin": s1 - s0,
             "pass_work": (t1 - s1) - (t0 - s0), "program_total": t1, "setup_total": t0}
        )  # fmt: skip
    total = sum(h["pass_total"] for h in per_hart)
    spin = sum(h["pass_spin"] for h in per_hart)
    losses = [line.split()[2] for line in one["stdout"].splitlines() if line.startswith("loss ")]
    return {
        "target": target,
        "harts": harts,
        "pass_instructions_total": total,
        "pass_instructions_spin": spin,
        "pass_instructions_work": total - spin,
        "pass_instructions_hart0": per_hart[0]["pass_total"],
        "program_instructions_total": sum(h["program_total"] for h in per_hart),
        "setup_instructions_total": sum(h["setup_total"] for h in per_hart),
        "per_hart": per_hart,
        "last_loss": losses[-1] if losses else None,
        "build_s": round(build_s, 2),
        "count_wall_s": {
            "one_pass": round(one["wall_s"], 2),
            "zero_pass": round(zero["wall_s"], 2),
        },
    }


def export_for(
    net: NetworkSpec, run: RunSpec, device: str | None, folder: Path
) -> tuple[Any, dict[str, Any]]:
    """Export (net, run) as the device preset chooses it (K, plan, dtype), or as given."""
    plan = "lifetime"
    how: dict[str, Any] = {"device": device}
    if device is not None:
        fit = fit_device(net, run, device)
        if fit.choice is None:
            raise BuildError(f"{device}: {fit.reason()}")
        run, plan = fit.choice.run, fit.choice.plan
    how |= {"partitions": run.partitions, "plan": plan, "dtype": run.dtype,
            "schedule": run.schedule}  # fmt: skip
    return export_c(net, run, folder, plan=plan), how


def counts_part(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    if args.quick:
        net, run = make_specs(
            "gsc",
            input_size=4,
            hidden_size=16,
            seq_len=12,
            batch_size=2,
            partitions=2,
            schedule="exact",
        )
        what = "quick: gsc preset shrunk to I=4, H=16, T=12, B=2, K=2"
    else:
        values = {"seq_len": args.seq_len} if args.seq_len else {}
        net, run = make_specs(args.count_preset, schedule="exact", **values)
        what = f"preset {args.count_preset}" + (f" with T={args.seq_len}" if values else "")
    harts_list = [int(h) for h in args.harts.split(",")]
    plugin = build_plugin(folder)
    out: dict[str, Any] = {
        "network": net.model_dump(),
        "run": run.model_dump(),
        "what": what,
        "method": (
            "one pass = (instructions of train_*.elf) - (instructions of a zero-pass copy: the "
            "same export with main.c's edgefptt_train call replaced by zeroing the losses, so "
            "start-up, edgefptt_init and the K loss/group prints remain; printing K zeros instead "
            "of K losses differs by a few thousand instructions at most). Counted per vCPU with a "
            "TCG plugin (tb exec callbacks, one counter per vCPU); spin = blocks starting in "
            "ef_barrier or edgefptt_worker, work = total - spin. Hosted RISC-V: "
            "build.instructions_per_pass (--time 1 minus a plain run, project plugin)."
        ),
        "targets": {},
    }
    errors: dict[str, str] = {}
    # Bare-metal RISC-V on the network qemu-virt chooses (any K fits in 112 MiB).
    riscv_device = None if args.quick else "qemu-virt"
    export, how = export_for(net, run, riscv_device, folder / "riscv")
    zero = zero_pass_copy(export.out_dir, folder / "riscv0")
    out["targets"]["baremetal-riscv"] = {"export": how, "arena_bytes": export.arena_bytes,
                                         "by_harts": {}}  # fmt: skip
    for harts in harts_list:
        log(f"baremetal-riscv, {harts} hart(s) ...")
        try:
            row = measure_target(export.out_dir, zero, "baremetal-riscv", harts, plugin,
                                 args.timeout)  # fmt: skip
            out["targets"]["baremetal-riscv"]["by_harts"][str(harts)] = row
            log(f"  {row['pass_instructions_total']:,} insns/pass, {row['count_wall_s']}")
        except (BuildError, subprocess.TimeoutExpired) as exc:
            errors[f"baremetal-riscv-{harts}"] = str(exc)[-2000:]
            log(f"  failed: {str(exc)[-300:]}")
    # The project's plugin in qemu-system (one shared counter: total over vCPUs).
    elf1 = make(export.out_dir, "baremetal-riscv", learner=False, harts=1)
    out["project_plugin_in_qemu_system"] = project_plugin_check(
        elf1, "baremetal-riscv", folder, args.timeout
    )
    # Hosted RISC-V: the same export, qemu-riscv64, --time 1 minus a plain run.
    if tool_missing("riscv") is None:
        log("hosted riscv (qemu-riscv64) ...")
        start = time.perf_counter()
        binary = make(export.out_dir, "riscv", learner=False)
        n = instructions_per_pass(binary, build_dir=folder)
        out["targets"]["hosted-riscv"] = {
            "export": how,
            "pass_instructions": n,
            "wall_s": round(time.perf_counter() - start, 2),
        }
        log(f"  {n:,} insns/pass")
    else:
        errors["hosted-riscv"] = str(tool_missing("riscv"))
    # Cortex-M7 (mps2-an500) on the network the mps2-an500 preset chooses.
    log("cortex-m-an500 ...")
    try:
        m7_device = None if args.quick else "mps2-an500"
        export7, how7 = export_for(net, run, m7_device, folder / "an500")
        zero7 = zero_pass_copy(export7.out_dir, folder / "an5000")
        row = measure_target(export7.out_dir, zero7, "cortex-m-an500", 1, plugin, args.timeout)
        out["targets"]["cortex-m-an500"] = {"export": how7, "arena_bytes": export7.arena_bytes,
                                            "board": BOARDS[BAREMETAL["cortex-m-an500"]].title,
                                            **row}  # fmt: skip
        log(f"  {row['pass_instructions_total']:,} insns/pass")
    except (BuildError, subprocess.TimeoutExpired) as exc:
        errors["cortex-m-an500"] = str(exc)[-2000:]
        log(f"  failed: {str(exc)[-300:]}")
    by_harts = out["targets"]["baremetal-riscv"]["by_harts"]
    hosted = out["targets"].get("hosted-riscv", {}).get("pass_instructions")
    if "1" in by_harts and hosted:
        bare = by_harts["1"]["pass_instructions_total"]
        out["baremetal_over_hosted_riscv_1_hart"] = bare / hosted
    out["errors"] = errors
    return out


def main() -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small network (under 2 minutes)")
    parser.add_argument("--count-preset", default="gsc", help="network to count (default gsc)")
    parser.add_argument("--seq-len", type=int, default=None, help="override T of that network")
    parser.add_argument("--harts", default="1,2,4,8", help="RISC-V harts, comma-separated")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per qemu run")
    parser.add_argument("--no-counts", action="store_true", help="part 1 only")
    args = parser.parse_args()
    start = time.perf_counter()
    result: dict[str, Any] = {"settings": vars(args).copy()}
    log("fits ...")
    result["fits"] = fits_part()
    result["fits_wall_s"] = round(time.perf_counter() - start, 2)
    if not args.no_counts:
        missing = {t: tool_missing(t) for t in ("baremetal-riscv", "cortex-m-an500")}
        if any(missing.values()):
            result["counts"] = {"skipped": missing}
        else:
            with tempfile.TemporaryDirectory() as tmp:
                result["counts"] = counts_part(args, Path(tmp))
    result["host_cpus"] = len(os.sched_getaffinity(0))
    result["wall_s"] = round(time.perf_counter() - start, 2)
    return result


if __name__ == "__main__":
    json.dump(main(), sys.stdout, indent=2)
    sys.stdout.write("\n")
