"""Build and run an export: make host | riscv | sanitize, native or under qemu-riscv64; the
bare-metal builds (make baremetal-riscv, make cortex-m BOARD=...) under qemu-system; the
Gemmini build (make gemmini GEMMINI_CONFIG=...) under Spike with Gemmini's functional model.

These helpers run external tools (make, a C compiler, qemu); a failing tool raises BuildError
with the tool's last lines of output.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from edgefptt.codegen.boards import BOARDS, Board
from edgefptt.errors import EdgeFPTTError

# Bare-metal targets: the board each runs on (edgefptt.codegen.boards).
BAREMETAL = {"baremetal-riscv": "riscv", "cortex-m-an386": "an386", "cortex-m-an500": "an500"}
TARGETS = {"host": "train_host", "riscv": "train_riscv", "sanitize": "train_sanitize"}
TARGETS["riscv_rvv"] = "train_riscv_rvv"  # RVV 1.0 (clang -march=rv64gcv), qemu with QEMU_RVV_CPU
TARGETS |= {target: BOARDS[key].elf("train") for target, key in BAREMETAL.items()}
TARGETS["gemmini"] = "train_gemmini"
# The learner each target builds beside the one-pass program.
LEARNERS = {"host": "learn_host", "riscv": "learn_riscv", "sanitize": "learn_sanitize"}
LEARNERS["riscv_rvv"] = "learn_riscv_rvv"
LEARNERS |= {target: BOARDS[key].elf("learn") for target, key in BAREMETAL.items()}
LEARNERS["gemmini"] = "learn_gemmini"
# The Debian packages that provide each tool (what .ci/run installs). "picolibc.specs" is
# picolibc for the target's compiler (found with -print-file-name).
_CORTEX_M_TOOLS = {
    "make": "make",
    "arm-none-eabi-gcc": "gcc-arm-none-eabi",
    "picolibc.specs": "picolibc-arm-none-eabi",
    "qemu-system-arm": "qemu-system-arm",
}
TOOLS = {
    "host": {"make": "make", "cc": "gcc"},
    "sanitize": {"make": "make", "cc": "gcc"},
    "riscv": {"make": "make", "riscv64-linux-gnu-gcc": "gcc-riscv64-linux-gnu",
              "qemu-riscv64": "qemu-user"},
    # clang-16 compiles; the riscv64-linux-gnu C library, start files and libgcc come with gcc.
    "riscv_rvv": {"make": "make", "clang-16": "clang-16",
                  "riscv64-linux-gnu-gcc": "gcc-riscv64-linux-gnu", "qemu-riscv64": "qemu-user"},
    "baremetal-riscv": {"make": "make", "riscv64-unknown-elf-gcc": "gcc-riscv64-unknown-elf",
                        "picolibc.specs": "picolibc-riscv64-unknown-elf",
                        "qemu-system-riscv64": "qemu-system-misc"},
    "cortex-m-an386": _CORTEX_M_TOOLS,
    "cortex-m-an500": _CORTEX_M_TOOLS,
    # Spike, pk and libgemmini come from the environment's toolchain (GEMMINI_VARS), not apt;
    # Spike needs dtc to write its device tree.
    "gemmini": {"make": "make", "riscv64-linux-gnu-gcc": "gcc-riscv64-linux-gnu",
                "dtc": "device-tree-compiler"},
}  # fmt: skip
# The bare-metal compilers' nm, for arena_symbols.
NM = {"baremetal-riscv": "riscv64-unknown-elf-nm", "cortex-m-an386": "arm-none-eabi-nm",
      "cortex-m-an500": "arm-none-eabi-nm", "riscv": "riscv64-linux-gnu-nm",
      "riscv_rvv": "riscv64-linux-gnu-nm"}  # fmt: skip
# qemu-riscv64's CPU for the riscv_rvv builds: rv64gc with the V extension (RVV 1.0), 128-bit
# vector registers (the binaries are vector-length agnostic: any vlen runs them).
QEMU_RVV_CPU = "rv64,v=true,vlen=128,elen=64"


class BuildError(EdgeFPTTError):
    """A build or a run of generated code failed (the message ends with the tool's output)."""


@dataclass
class RunOutput:
    """What a generated binary printed (and dumped)."""

    losses: list[float]
    groups: dict[str, int]
    pass_s: float | None = None
    params: dict[str, np.ndarray] = field(default_factory=dict)
    logits: np.ndarray | None = None
    stdout: str = ""


def _have_picolibc(compiler: str) -> bool:
    """Does ``compiler`` find picolibc.specs (picolibc installed for it)?"""
    if shutil.which(compiler) is None:
        return False
    done = subprocess.run(
        [compiler, "-print-file-name=picolibc.specs"], capture_output=True, text=True, check=False
    )
    found = done.stdout.strip()
    return done.returncode == 0 and os.path.isabs(found) and os.path.isfile(found)


def tool_missing(target: str) -> str | None:
    """Why ``target`` cannot be built and run here, or None if it can."""
    tools = TOOLS[target]
    compiler = next((tool for tool in tools if tool.endswith("-gcc")), "cc")

    def absent(tool: str) -> bool:
        if tool == "picolibc.specs":
            return not _have_picolibc(compiler)
        return shutil.which(tool) is None

    missing = [f"{tool} (apt package {pkg})" for tool, pkg in tools.items() if absent(tool)]
    return f"missing {', '.join(missing)}" if missing else None


# What the generated Makefile's gemmini and spike targets read from the environment (the
# toolchain's env.sh sets them), each relative to the toolchain's folder.
GEMMINI_VARS = {
    "GEMMINI_ROCC_TESTS": "gemmini/rocc-tests",
    "GEMMINI_PARAMS_DIR": "gemmini/params",
    "LIBGEMMINI_DIR": "lib",
    "PK": "bin/pk",
}


def gemmini_env(home: Path | None = None) -> dict[str, str]:
    """The variables of a Spike + Gemmini toolchain: those set in the environment, the rest
    (and ``spike`` on PATH) from the toolchain folder ``home`` when it is given."""
    env = {name: os.environ[name] for name in GEMMINI_VARS if os.environ.get(name)}
    if home is not None:
        home = Path(home).resolve()
        for name, rel in GEMMINI_VARS.items():
            env.setdefault(name, str(home / rel))
        if shutil.which("spike") is None:
            env["PATH"] = f"{home / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    return env


def gemmini_missing(env: dict[str, str], config: str | None = None) -> str | None:
    """Why the Gemmini build (and, with ``config``, its Spike run) cannot happen here."""
    why = [f"{name} not set" for name in GEMMINI_VARS if name not in env]
    why += [f"{env[name]} absent ({name})" for name in GEMMINI_VARS
            if name in env and not os.path.exists(env[name])]  # fmt: skip
    if shutil.which("spike", path=env.get("PATH", os.environ.get("PATH"))) is None:
        why.append("spike not on PATH")
    if config is not None and "LIBGEMMINI_DIR" in env:
        lib = Path(env["LIBGEMMINI_DIR"]) / f"libgemmini-{config}.so"
        if not lib.exists():
            why.append(f"{lib} absent")
    tools = tool_missing("gemmini")
    if tools:
        why.append(tools)
    return f"Spike + Gemmini: {'; '.join(why)}" if why else None


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def make(
    out_dir: Path,
    target: str = "host",
    cflags: str | None = None,
    binary: str | None = None,
    *,
    portable: bool = False,
    flush_subnormals: bool = False,
    learner: bool = True,
    harts: int = 1,
    gemmini_config: str | None = None,
    env: dict[str, str] | None = None,
) -> Path:
    """Run ``make <target>`` in an export directory; returns the one-pass binary's path.

    ``make <target>`` builds the one-pass program and the learner (LEARNERS[target]);
    ``learner=False`` builds the one-pass program alone (half the compile time). ``portable``
    and ``flush_subnormals`` set the host build's PORTABLE=1 (the compiler's baseline ISA
    instead of -march=native, no FMA contraction) and FLUSH_SUBNORMALS=1 (x86 FTZ|DAZ)
    Makefile variables. Bare metal: ``baremetal-riscv`` builds for ``harts`` harts (HARTS=N,
    compiled in), ``cortex-m-an386`` / ``cortex-m-an500`` is make cortex-m BOARD=an386 / an500.
    ``gemmini`` is make gemmini GEMMINI_CONFIG=``gemmini_config``, with the toolchain's
    variables from ``env`` (see gemmini_env) over the process environment.
    """
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}")
    goal = target if learner else (binary if binary and target == "host" else TARGETS[target])
    if target.startswith("cortex-m-") and learner:
        goal = "cortex-m"
    args = ["make", "-s", "-C", str(out_dir), goal]
    if target == "baremetal-riscv":
        args.append(f"HARTS={harts}")
    elif target in BAREMETAL:
        args.append(f"BOARD={BAREMETAL[target]}")
    elif target == "gemmini" and gemmini_config is not None:
        args.append(f"GEMMINI_CONFIG={gemmini_config}")
    if cflags is not None:
        args.append(f"CFLAGS={cflags}")
    if portable:
        args.append("PORTABLE=1")
    if flush_subnormals:
        args.append("FLUSH_SUBNORMALS=1")
    name = TARGETS[target]
    if binary is not None and target == "host":
        args.append(f"HOST_BIN={binary}")
        name = binary
    done = subprocess.run(
        args, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )
    if done.returncode != 0:
        raise BuildError(f"make {target} failed in {out_dir}:\n{_tail(done.stdout + done.stderr)}")
    if done.stderr.strip():  # -Werror makes warnings errors; anything else is worth seeing
        raise BuildError(f"make {target} printed diagnostics:\n{_tail(done.stderr)}")
    return Path(out_dir) / name


def parse_output(text: str) -> RunOutput:
    """The `loss`, `group` and `pass_s` lines of a run."""
    losses: dict[int, float] = {}
    groups: dict[str, int] = {}
    pass_s = None
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "loss":
            losses[int(parts[1])] = float(parts[2])
        elif len(parts) == 3 and parts[0] == "group":
            groups[parts[1]] = int(parts[2])
        elif len(parts) == 2 and parts[0] == "pass_s":
            pass_s = float(parts[1])
    ordered = [losses[p] for p in sorted(losses)]
    return RunOutput(ordered, groups, pass_s, stdout=text)


def read_dump(path: Path, shapes: dict[str, tuple[int, ...]], logits_shape: tuple[int, int]):
    """Parameters and logits from a --dump file (float32, W, b, W_y, b_y, logits)."""
    data = np.fromfile(path, dtype="<f4")
    params = {}
    at = 0
    for name, shape in shapes.items():
        n = int(np.prod(shape))
        params[name] = data[at : at + n].reshape(shape)
        at += n
    logits = data[at : at + logits_shape[0] * logits_shape[1]].reshape(logits_shape)
    return params, logits


def run_binary(
    binary: Path,
    *,
    threads: int = 1,
    qemu: bool = False,
    dump_shapes: tuple[dict[str, tuple[int, ...]], tuple[int, int]] | None = None,
    time_passes: int = 0,
    timeout_s: float = 600,
    env: dict[str, str] | None = None,
    qemu_cpu: str | None = None,
) -> RunOutput:
    """Run a generated binary (under qemu-riscv64 if ``qemu``, with -cpu ``qemu_cpu`` if given:
    QEMU_RVV_CPU for the riscv_rvv builds) and parse what it printed."""
    args = [str(binary), "-t", str(threads)]
    if qemu:
        args = ["qemu-riscv64", *(["-cpu", qemu_cpu] if qemu_cpu else []), *args]
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "dump.bin"
        if dump_shapes is not None:
            args += ["--dump", str(dump)]
        if time_passes:
            args += ["--time", str(time_passes)]
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=timeout_s, check=False,
            env={**os.environ, **(env or {})},
        )  # fmt: skip
        if done.returncode != 0:
            raise BuildError(
                f"{binary.name} exited with {done.returncode}:\n{_tail(done.stdout + done.stderr)}"
            )
        out = parse_output(done.stdout)
        if dump_shapes is not None:
            out.params, out.logits = read_dump(dump, *dump_shapes)
    return out


def spike_command(binary: Path, config: str, env: dict[str, str], *args: str) -> list[str]:
    """The command line that runs a Gemmini build on Spike with libgemmini-``config``
    (Gemmini's functional model) under pk; the same as the Makefile's ``spike`` target."""
    spike = shutil.which("spike", path=env.get("PATH", os.environ.get("PATH"))) or "spike"
    lib = Path(env["LIBGEMMINI_DIR"]) / f"libgemmini-{config}.so"
    return [spike, f"--extlib={lib}", "--extension=gemmini", env["PK"], str(binary), *args]


def run_spike(
    binary: Path,
    config: str,
    env: dict[str, str],
    *,
    dump_shapes: tuple[dict[str, tuple[int, ...]], tuple[int, int]] | None = None,
    timeout_s: float = 600,
) -> RunOutput:
    """Run train_gemmini on Spike (one thread: pk has none) and parse what it printed.

    Functional only: Gemmini's instructions take no modelled cycles on Spike.
    """
    with tempfile.TemporaryDirectory() as tmp:
        dump = Path(tmp) / "dump.bin"
        args = ["-t", "1"] + (["--dump", str(dump)] if dump_shapes is not None else [])
        done = subprocess.run(
            spike_command(binary, config, env, *args), capture_output=True, text=True,
            timeout=timeout_s, check=False, stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
        )  # fmt: skip
        if done.returncode != 0:
            raise BuildError(
                f"{Path(binary).name} on Spike ({config}) exited with {done.returncode}:\n"
                f"{_tail(done.stdout + done.stderr)}"
            )
        out = parse_output(done.stdout)
        if dump_shapes is not None:
            out.params, out.logits = read_dump(dump, *dump_shapes)
    return out


@dataclass
class LearnOutput:
    """What a learner run printed with --json: one record per epoch, and its exit status."""

    epochs: list[dict[str, Any]]
    returncode: int
    stdout: str
    stderr: str


def run_learner(
    binary: Path,
    *args: str,
    qemu: bool = False,
    env: dict[str, str] | None = None,
    timeout_s: float = 600,
    check: bool = True,
    qemu_cpu: str | None = None,
) -> LearnOutput:
    """Run a learner (learn_host, or learn_riscv under qemu-riscv64, with -cpu ``qemu_cpu`` if
    given) with --json.

    With ``check`` a non-zero exit raises BuildError; without, the caller reads ``returncode``
    (2 for bad input, -9 or 137 for a killed run).
    """
    argv = [str(binary), *args, "--json"]
    if qemu:
        argv = ["qemu-riscv64", *(["-cpu", qemu_cpu] if qemu_cpu else []), *argv]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=timeout_s, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    if check and done.returncode != 0:
        raise BuildError(
            f"{binary.name} exited with {done.returncode}:\n{_tail(done.stdout + done.stderr)}"
        )
    epochs = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return LearnOutput(epochs, done.returncode, done.stdout, done.stderr)


def qemu_system_command(target: str, elf: Path, *args: str, harts: int = 1) -> list[str]:
    """The qemu-system command line that runs a bare-metal program of ``target``.

    The program's argv is semihosting's command line: qemu's -append string after the ELF's
    name, split at spaces by the start-up code (so no argument may hold a space). ``harts``
    is qemu's -smp on the RISC-V virt machine (the build's HARTS must be the same).
    """
    board: Board = BOARDS[BAREMETAL[target]]
    for arg in args:
        if not arg or any(c.isspace() for c in arg):
            raise ValueError(f"semihosting's command line is split at spaces: cannot pass {arg!r}")
    command = list(board.qemu)
    if board.max_harts > 1:
        command += ["-smp", str(harts)]
    command += ["-kernel", str(elf)]
    if args:
        command += ["-append", " ".join(args)]
    return command


def _run_qemu_system(
    target: str, elf: Path, args: tuple[str, ...], harts: int, timeout_s: float, check: bool
) -> subprocess.CompletedProcess[str]:
    command = qemu_system_command(target, elf, *args, harts=harts)
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False,
            stdin=subprocess.DEVNULL, cwd=Path(elf).parent,
        )  # fmt: skip
    except subprocess.TimeoutExpired as exc:
        printed = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        raise BuildError(
            f"{Path(elf).name} under {command[0]} did not finish within {timeout_s} s:\n"
            f"{_tail(printed)}"
        ) from exc
    if check and done.returncode != 0:
        raise BuildError(
            f"{Path(elf).name} exited with {done.returncode} (its status through semihosting):"
            f"\n{_tail(done.stdout + done.stderr)}"
        )
    return done


def run_baremetal(
    elf: Path, target: str, *args: str, harts: int = 1, timeout_s: float = 300
) -> RunOutput:
    """Run a bare-metal one-pass program under qemu-system and parse its `loss` and `group`
    lines (semihosting's console, on qemu's stdout). A non-zero exit status (the program's,
    through semihosting) raises BuildError."""
    done = _run_qemu_system(target, Path(elf), args, harts, timeout_s, check=True)
    return parse_output(done.stdout)


def run_baremetal_learner(
    elf: Path,
    target: str,
    *args: str,
    harts: int = 1,
    timeout_s: float = 600,
    check: bool = True,
) -> LearnOutput:
    """Run a bare-metal learner under qemu-system with --json (files through semihosting,
    relative to the ELF's folder). Its stdout and stderr both come in ``stdout`` (semihosting
    has one console); ``stderr`` is qemu's own."""
    done = _run_qemu_system(target, Path(elf), (*args, "--json"), harts, timeout_s, check)
    epochs = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return LearnOutput(epochs, done.returncode, done.stdout, done.stderr)


def arena_symbols(binary: Path, nm: str = "nm") -> dict[str, int]:
    """Sizes (bytes) of the binary's own objects in writable memory (.data, .bss).

    Objects from the C library (names starting with ``_`` or from libc's own files) are kept:
    callers filter by size.
    """
    done = subprocess.run(
        [nm, "-S", "--size-sort", str(binary)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise BuildError(f"{nm} failed on {binary}:\n{_tail(done.stderr)}")
    sizes: dict[str, int] = {}
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[2] in "bBdD":
            sizes[parts[3]] = int(parts[1], 16)
    return sizes


def compile_plugin(source: Path, library: Path) -> Path:
    """Build a qemu TCG plugin (a shared library) from one C file with the host compiler."""
    done = subprocess.run(
        ["cc", "-O2", "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror", "-o", str(library),
         str(source)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise BuildError(f"building the qemu plugin {source.name} failed:\n{_tail(done.stderr)}")
    return library


def plugin_library(name: str, build_dir: Path) -> Path:
    """The qemu plugin templates/<name>.c built as <build_dir>/lib<name>.so (once)."""
    source = Path(str(resources.files("edgefptt.codegen") / "templates" / f"{name}.c"))
    library = build_dir / f"lib{name}.so"
    return library if library.exists() else compile_plugin(source, library)


def _plugin(build_dir: Path) -> Path:
    return plugin_library("insn_count_plugin", build_dir)


_INSNS = re.compile(r"^insns (\d+)$", re.MULTILINE)


def count_instructions(
    binary: Path, *args: str, build_dir: Path | None = None, qemu_cpu: str | None = None
) -> int:
    """Guest instructions a RISC-V binary executes under qemu-riscv64 (one thread; a vector
    instruction counts as one)."""
    cpu = ["-cpu", qemu_cpu] if qemu_cpu else []
    with tempfile.TemporaryDirectory() as tmp:
        plugin = _plugin(Path(build_dir or tmp))
        done = subprocess.run(
            ["qemu-riscv64", *cpu, "-plugin", str(plugin), str(binary), "-t", "1", *args],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    found = _INSNS.findall(done.stderr)
    if done.returncode != 0 or not found:
        raise BuildError(f"counting instructions failed:\n{_tail(done.stdout + done.stderr)}")
    return int(found[-1])


def instructions_per_pass(
    binary: Path, build_dir: Path | None = None, qemu_cpu: str | None = None
) -> int:
    """Instructions of one training pass: a run with one extra timed pass minus a plain run."""
    plain = count_instructions(binary, build_dir=build_dir, qemu_cpu=qemu_cpu)
    extra = count_instructions(binary, "--time", "1", build_dir=build_dir, qemu_cpu=qemu_cpu)
    return extra - plain
