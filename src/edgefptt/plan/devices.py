"""Devices as data: fit the generated C learner into a real device's RAM (and its flash).

Each preset (``DEVICES``, read from ``edgefptt/reference/devices.csv``, where every number has
its source) gives a device's cores, the SRAM the learner may use, its flash where known and
whether it has a single-precision FPU. Memory sizes published as KB and MB are read as powers of
1024, the way memory capacities are quoted (1 MB = 1,048,576 bytes); a fraction of a byte is
dropped.

:func:`fit_device` asks :func:`edgefptt.plan.budget.choose` for the fastest K, arena plan and
element type whose learner (arena + one batch + state image) fits the device's RAM less a
reserve for what the learner's static sizes do not include:

- a stack per core, ``STACK_BYTES_PER_CORE`` (8 KiB), since a learner thread may run on each;
- ``BOOKKEEPING_BYTES`` (4 KiB) for the learner's own variables, the C runtime and I/O buffers
  (the learner's bookkeeping is a few hundred bytes, docs/learner.md).

The state file (two slots of ``edgefptt.learn.state.slot_bytes``) lives in flash. Its size is
reported against the device's flash where the flash is known; it changes the answer only when
that flash is too small for the slots of an element type, which is then not chosen (and when no
element type's slots fit, the learner does not fit, and the reason says so).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, replace
from functools import cache
from importlib.resources import files
from typing import Any

from edgefptt.config import NetworkSpec, RunSpec
from edgefptt.errors import ConfigError
from edgefptt.plan.budget import (
    BUDGET_DTYPES,
    BUDGET_PLANS,
    BudgetChoice,
    BudgetError,
    Candidate,
    choose,
)

STACK_BYTES_PER_CORE = 8 * 1024
BOOKKEEPING_BYTES = 4 * 1024
DEVICES_CSV = "devices.csv"
LIST_NAME = "list"  # `--device list` lists the presets
_NO_LIMIT = 2**62  # a budget every learner fits, to see every candidate's size


class DeviceFitError(BudgetError):
    """The learner does not fit a device (the message gives the smallest need and shortfall)."""


@dataclass(frozen=True)
class Device:
    """A device preset: what the learner may use on it, and where each number comes from."""

    name: str
    description: str
    cores: str  # the cores as published, e.g. "6-core Arm Cortex-M4F (156 MHz)"
    core_count: int  # cores that may each run a learner thread (each needs a stack)
    ram_bytes: int  # the SRAM the learner may use
    flash_bytes: int | None  # None where the source gives no flash
    fpu_single: bool  # single-precision floating point in hardware
    ram_published: str = ""
    ram_source: str = ""
    flash_published: str = ""
    flash_source: str = ""
    fpu_source: str = ""
    notes: str = ""

    @property
    def reserve_bytes(self) -> int:
        """RAM kept back for stacks and bookkeeping: 8 KiB per core + 4 KiB."""
        return self.core_count * STACK_BYTES_PER_CORE + BOOKKEEPING_BYTES

    @property
    def budget_bytes(self) -> int:
        """RAM left for the learner's arena, batch and state image."""
        return self.ram_bytes - self.reserve_bytes

    @property
    def source(self) -> str:
        """The sources of the RAM, flash and FPU figures, in one line."""
        return f"RAM: {self.ram_source}; flash: {self.flash_source}; FPU: {self.fpu_source}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "cores": self.cores,
            "core_count": self.core_count,
            "ram_bytes": self.ram_bytes,
            "flash_bytes": self.flash_bytes,
            "fpu_single": self.fpu_single,
            "reserve_bytes": self.reserve_bytes,
            "budget_bytes": self.budget_bytes,
            "ram_published": self.ram_published,
            "ram_source": self.ram_source,
            "flash_published": self.flash_published,
            "flash_source": self.flash_source,
            "fpu_source": self.fpu_source,
            "notes": self.notes,
        }


def _flag(text: str, where: str) -> bool:
    value = text.strip().lower()
    if value not in ("true", "false"):
        raise ValueError(f"{where}: expected true or false, got {text!r}")
    return value == "true"


def _device(row: dict[str, str]) -> Device:
    where = f"{DEVICES_CSV}, device {row.get('name')!r}"
    flash = row["flash_bytes"].strip()
    device = Device(
        name=row["name"].strip(),
        description=row["description"].strip(),
        cores=row["cores"].strip(),
        core_count=int(row["core_count"]),
        ram_bytes=int(row["ram_bytes"]),
        flash_bytes=int(flash) if flash else None,
        fpu_single=_flag(row["fpu_single"], where),
        ram_published=row["ram_published"].strip(),
        ram_source=row["ram_source"].strip(),
        flash_published=row["flash_published"].strip(),
        flash_source=row["flash_source"].strip(),
        fpu_source=row["fpu_source"].strip(),
        notes=row["notes"].strip(),
    )
    if device.core_count < 1 or device.budget_bytes < 1:
        raise ValueError(f"{where}: needs at least one core and more RAM than the reserve")
    return device


@cache
def _load() -> dict[str, Device]:
    text = files("edgefptt.reference").joinpath(DEVICES_CSV).read_text(encoding="utf-8")
    devices = [_device(row) for row in csv.DictReader(io.StringIO(text))]
    return {d.name: d for d in devices}


DEVICES: dict[str, Device] = _load()


def get_device(name: str | Device) -> Device:
    """The preset called ``name`` (a Device passes through); ConfigError naming the presets."""
    if isinstance(name, Device):
        return name
    if name not in DEVICES:
        raise ConfigError(
            f"unknown device {name!r}; choose from {', '.join(DEVICES)} "
            f"(edgefptt memory --device {LIST_NAME} describes them)"
        )
    return DEVICES[name]


@dataclass
class DeviceFit:
    """The answer for one device: does the learner fit, with which K, plan and dtype.

    ``choice`` is the budget module's choice (None when nothing fits). ``least`` is the
    candidate that needs the fewest bytes among those allowed (by RAM, and by flash where the
    flash is known); ``shortfall_bytes`` is how far it is over the budget (0 when it fits).
    ``flash_needed_bytes`` is the state file (two slots) of the chosen dtype, or of the least
    candidate's when nothing fits.
    """

    device: Device
    network: NetworkSpec
    reserve_bytes: int
    budget_bytes: int
    choice: BudgetChoice | None
    least: Candidate
    flash_needed_bytes: int
    flash_slots_bytes: dict[str, int]  # dtype -> two slots of that dtype
    flash_excluded: tuple[str, ...]  # dtypes whose two slots do not fit the known flash

    @property
    def fits(self) -> bool:
        return self.choice is not None

    @property
    def ram_fits(self) -> bool:
        return self.least.total_bytes <= self.budget_bytes

    @property
    def flash_fits(self) -> bool | None:
        """Whether the state file fits the flash; None where the flash is not known."""
        if self.device.flash_bytes is None:
            return None
        return self.flash_needed_bytes <= self.device.flash_bytes

    @property
    def least_bytes(self) -> int:
        return self.least.total_bytes

    @property
    def shortfall_bytes(self) -> int:
        return max(0, self.least.total_bytes - self.budget_bytes)

    @property
    def bytes_left(self) -> int | None:
        """Budget left after the chosen learner (None when nothing fits)."""
        return None if self.choice is None else self.choice.bytes_left

    @property
    def flash_left(self) -> int | None:
        if self.device.flash_bytes is None:
            return None
        return self.device.flash_bytes - self.flash_needed_bytes

    def reason(self) -> str:
        """Why the learner does not fit, in one line ('' when it fits)."""
        if self.fits:
            return ""
        dev = self.device
        if self.flash_excluded and len(self.flash_excluded) == len(self.flash_slots_bytes):
            return (
                f"the state file needs {min(self.flash_slots_bytes.values()):,} bytes of flash "
                f"(two slots) and device {dev.name} has {dev.flash_bytes:,}"
            )
        least = self.least
        text = (
            f"it needs at least {least.total_bytes:,} bytes (K={least.partitions}, {least.plan}, "
            f"{least.dtype}) and device {dev.name} leaves it {self.budget_bytes:,} "
            f"({dev.ram_bytes:,} bytes of RAM less a {self.reserve_bytes:,}-byte reserve for "
            f"stacks and bookkeeping): {self.shortfall_bytes:,} bytes short"
        )
        if self.flash_excluded:
            text += f" ({', '.join(self.flash_excluded)} excluded: its state file exceeds flash)"
        return text

    def require(self) -> BudgetChoice:
        """The choice; DeviceFitError (a ConfigError) with :meth:`reason` when nothing fits."""
        if self.choice is None:
            raise DeviceFitError(
                f"the learner does not fit device {self.device.name}: {self.reason()}; shrink "
                "--hidden/--batch or pick a larger device"
            )
        return self.choice

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device.to_dict(),
            "fits": self.fits,
            "ram_fits": self.ram_fits,
            "flash_fits": self.flash_fits,
            "reason": self.reason(),
            "ram_bytes": self.device.ram_bytes,
            "reserve_bytes": self.reserve_bytes,
            "budget_bytes": self.budget_bytes,
            "bytes_left": self.bytes_left,
            "least": self.least.to_dict(),
            "least_bytes": self.least_bytes,
            "shortfall_bytes": self.shortfall_bytes,
            "flash_bytes": self.device.flash_bytes,
            "flash_needed_bytes": self.flash_needed_bytes,
            "flash_left": self.flash_left,
            "flash_slots_bytes": self.flash_slots_bytes,
            "flash_excluded": list(self.flash_excluded),
            "choice": None if self.choice is None else self.choice.to_dict(candidates=False),
        }


def fit_device(
    net: NetworkSpec,
    run: RunSpec,
    device: str | Device,
    dtypes: Sequence[str] = BUDGET_DTYPES,
    plans: Sequence[str] = BUDGET_PLANS,
    partitions: Sequence[int] | None = None,
    reserve_bytes: int | None = None,
) -> DeviceFit:
    """Whether (and how) the learner of ``net``/``run`` fits ``device``.

    The choice is ``budget.choose(net, run, ram - reserve, dtypes, plans, partitions)``, with
    the device's reserve (8 KiB per core + 4 KiB) unless ``reserve_bytes`` is given. Nothing
    fitting is an answer, not an error: ``fits`` is False and the fit names the smallest need.
    Raises ConfigError on an unknown device or invalid restrictions, or a reserve that leaves
    no RAM.
    """
    from edgefptt.learn.layout import network_slot_bytes
    from edgefptt.learn.state import SLOTS

    dev = get_device(device)
    reserve = dev.reserve_bytes if reserve_bytes is None else reserve_bytes
    if isinstance(reserve, bool) or not isinstance(reserve, int) or reserve < 0:
        raise ConfigError(f"a reserve must be a number of bytes >= 0 (got {reserve!r})")
    budget = dev.ram_bytes - reserve
    if budget < 1:
        raise ConfigError(
            f"a reserve of {reserve:,} bytes leaves nothing of device {dev.name}'s "
            f"{dev.ram_bytes:,} bytes of RAM"
        )
    dtypes = tuple(dict.fromkeys(dtypes))
    slots = {d: SLOTS * network_slot_bytes(net, d) for d in dtypes if d in BUDGET_DTYPES}
    excluded = tuple(
        d for d, size in slots.items() if dev.flash_bytes is not None and size > dev.flash_bytes
    )
    allowed = tuple(d for d in dtypes if d not in excluded) or dtypes
    plans = tuple(plans)
    ks = None if partitions is None else list(partitions)
    choice: BudgetChoice | None = None
    if len(excluded) < len(dtypes):
        try:
            choice = choose(net, run, budget, dtypes=allowed, plans=plans, partitions=ks)
        except BudgetError:
            choice = None
    every = choice or choose(net, run, _NO_LIMIT, dtypes=allowed, plans=plans, partitions=ks)
    # From the unlimited search every candidate "fits"; say whether it fits this budget.
    smallest = min(every.candidates, key=_need_order)
    least = replace(smallest, fits=smallest.total_bytes <= budget)
    dtype = choice.dtype if choice is not None else least.dtype
    return DeviceFit(
        device=dev,
        network=net,
        reserve_bytes=reserve,
        budget_bytes=budget,
        choice=choice,
        least=least,
        flash_needed_bytes=SLOTS * network_slot_bytes(net, dtype),
        flash_slots_bytes=slots,
        flash_excluded=excluded,
    )


def _need_order(c: Candidate) -> tuple[int, float, int, int, int]:
    """Fewest bytes first; ties as the budget module breaks them (latency, fp32, lifetime, K)."""
    return (
        c.total_bytes,
        c.latency,
        BUDGET_DTYPES.index(c.dtype),
        BUDGET_PLANS.index(c.plan),
        c.partitions,
    )
