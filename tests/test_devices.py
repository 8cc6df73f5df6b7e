"""Device presets: the CSV, the fit against the budget module, the CLI (`--device`)."""

from __future__ import annotations

import csv
import json
import re
from dataclasses import replace
from importlib.resources import files

import pytest

from edgefptt.cli import main
from edgefptt.config import NetworkSpec, RunSpec, make_specs
from edgefptt.errors import ConfigError
from edgefptt.learn.state import slot_bytes
from edgefptt.plan.budget import BudgetError, choose
from edgefptt.plan.devices import (
    BOOKKEEPING_BYTES,
    DEVICES,
    STACK_BYTES_PER_CORE,
    DeviceFitError,
    fit_device,
    get_device,
)

SMALL = NetworkSpec(input_size=2, hidden_size=4, num_classes=3)
SMALL_RUN = RunSpec(batch_size=2, seq_len=9)
SIZES = ["--input", "2", "--hidden", "4", "--classes", "3", "--batch", "2", "--seq-len", "9"]
BOTH = ("fp32", "bf16")
NAMES = {
    "spresense",
    "portenta-h7",
    "gap8",
    "gap9",
    "maix",
    "imx8ulp",
    "mps2-an386",
    "mps2-an500",
    "qemu-virt",
}


def _csv_rows() -> list[dict[str, str]]:
    text = files("edgefptt.reference").joinpath("devices.csv").read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


def _budget(name: str) -> int:
    """RAM less the stated reserve, computed here from the CSV row."""
    row = next(r for r in _csv_rows() if r["name"] == name)
    return int(row["ram_bytes"]) - (int(row["core_count"]) * 8 * 1024 + 4 * 1024)


# ---------------------------------------------------------------------------- the presets


def test_presets_load_and_equal_the_csv():
    rows = _csv_rows()
    assert {r["name"] for r in rows} == NAMES == set(DEVICES)
    for row in rows:
        dev = DEVICES[row["name"]]
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", dev.name)
        assert dev.ram_bytes == int(row["ram_bytes"])
        assert dev.flash_bytes == (int(row["flash_bytes"]) if row["flash_bytes"] else None)
        assert dev.core_count == int(row["core_count"]) >= 1
        assert dev.fpu_single is (row["fpu_single"] == "true")
        assert (dev.description, dev.cores) == (row["description"], row["cores"])
        assert dev.ram_source == row["ram_source"] and dev.ram_source
        assert dev.flash_source == row["flash_source"] and dev.flash_source
        assert dev.fpu_source == row["fpu_source"] and dev.fpu_source
        assert dev.reserve_bytes == dev.core_count * STACK_BYTES_PER_CORE + BOOKKEEPING_BYTES
        assert dev.budget_bytes == dev.ram_bytes - dev.reserve_bytes == _budget(dev.name)
        assert dev.to_dict()["ram_bytes"] == dev.ram_bytes and row["ram_source"] in dev.source


@pytest.mark.parametrize(
    ("name", "published", "flash"),
    [
        ("spresense", "1.5 MB", "8 MB"),
        ("portenta-h7", "1 MB", "16 MB"),
        ("gap8", "580 KB", "64 MB"),
        ("gap9", "1.6 MB", "-"),
        ("maix", "8 MB", "16 MB"),
        ("imx8ulp", "896 KB", "-"),
    ],
)
def test_the_seed_papers_figures_read_as_powers_of_1024(name, published, flash):
    dev = DEVICES[name]
    assert "seed paper" in dev.ram_source
    assert (dev.ram_published, dev.flash_published) == (published, flash)

    def size(text: str) -> int | None:
        if text == "-":
            return None
        number, unit = text.split()
        return int(float(number) * {"KB": 1024, "MB": 1024**2}[unit])

    assert dev.ram_bytes == size(published) and dev.flash_bytes == size(flash)


def test_the_emulated_boards_as_qemu_models_them():
    for name in ("mps2-an386", "mps2-an500"):
        dev = DEVICES[name]
        assert dev.ram_bytes == 4 * 1024**2 and dev.flash_bytes is None
        assert dev.core_count == 1 and dev.fpu_single and "hw/arm/mps2.c" in dev.ram_source
    virt = DEVICES["qemu-virt"]
    assert virt.ram_bytes == 128 * 1024**2 and virt.flash_bytes == 32 * 1024**2
    assert "-m" in virt.ram_published and "hw/riscv/virt.c" in virt.flash_source
    assert not DEVICES["gap8"].fpu_single


def test_get_device_names_the_presets_on_a_typo():
    assert get_device("gap8") is DEVICES["gap8"]
    assert get_device(DEVICES["maix"]) is DEVICES["maix"]
    with pytest.raises(ConfigError) as info:
        get_device("portenta")
    message = str(info.value)
    assert "\n" not in message and all(name in message for name in NAMES)


# ------------------------------------------------------------------------------ the fit


@pytest.mark.parametrize("name", sorted(NAMES))
def test_the_choice_is_budget_choose_with_ram_less_the_reserve(name):
    fit = fit_device(SMALL, SMALL_RUN, name)
    expected = choose(SMALL, SMALL_RUN, _budget(name), dtypes=BOTH)
    assert fit.fits and fit.choice is not None
    got = fit.choice
    assert (got.partitions, got.plan, got.dtype) == (
        expected.partitions,
        expected.plan,
        expected.dtype,
    )
    assert got.total_bytes == expected.total_bytes and fit.bytes_left == expected.bytes_left
    assert fit.budget_bytes == _budget(name) and fit.shortfall_bytes == 0
    assert fit.flash_needed_bytes == 2 * slot_bytes(SMALL.num_params, got.dtype)
    assert fit.least_bytes == min(c.total_bytes for c in expected.candidates)
    assert fit.reason() == "" and fit.require() is got


def test_restrictions_pass_through():
    fit = fit_device(SMALL, SMALL_RUN, "gap8", dtypes=("bf16",), plans=("recompute",))
    assert fit.choice is not None and (fit.choice.plan, fit.choice.dtype) == ("recompute", "bf16")
    fit = fit_device(SMALL, SMALL_RUN, "gap8", partitions=[3])
    assert fit.choice is not None and fit.choice.partitions == 3
    with pytest.raises(ConfigError):
        fit_device(SMALL, SMALL_RUN, "gap8", plans=("paper",))


def test_paper_network_on_a_1mb_device_fits_as_the_budget_module_says():
    net, run = make_specs("paper-smnist")
    fit = fit_device(net, run, "portenta-h7")
    expected = choose(net, run, _budget("portenta-h7"), dtypes=BOTH)
    assert fit.fits and fit.choice is not None
    assert (fit.choice.partitions, fit.choice.plan, fit.choice.dtype) == (
        expected.partitions,
        expected.plan,
        expected.dtype,
    )
    assert fit.bytes_left == expected.bytes_left >= 0
    assert fit.flash_fits and fit.flash_needed_bytes == 2 * slot_bytes(net.num_params, "bf16")
    # fp32's parameter state alone (4 P e) is over 1 MiB: only bf16 can fit.
    assert fit.choice.dtype == "bf16"


def test_paper_network_on_gap8_does_not_fit_and_names_the_budget_modules_minimum():
    net, run = make_specs("paper-smnist")
    budget = _budget("gap8")
    with pytest.raises(BudgetError) as info:
        choose(net, run, budget, dtypes=BOTH)
    fit = fit_device(net, run, "gap8")
    assert not fit.fits and fit.choice is None and not fit.ram_fits
    least = fit.least
    assert f"at least {least.total_bytes:,} bytes" in str(info.value)
    assert f"(K={least.partitions}, {least.plan}, {least.dtype})" in str(info.value)
    assert fit.shortfall_bytes == least.total_bytes - budget > 0 and not least.fits
    assert f"{fit.shortfall_bytes:,} bytes short" in fit.reason()
    assert fit.to_dict()["fits"] is False and fit.to_dict()["choice"] is None
    with pytest.raises(DeviceFitError) as error:
        fit.require()
    assert isinstance(error.value, ConfigError) and "\n" not in str(error.value)
    assert "does not fit device gap8" in str(error.value)


def test_flash_too_small_for_fp32_leaves_bf16():
    net = NetworkSpec(input_size=2, hidden_size=32, num_classes=3)
    fp32_slots = 2 * slot_bytes(net.num_params, "fp32")
    bf16_slots = 2 * slot_bytes(net.num_params, "bf16")
    assert bf16_slots < fp32_slots  # 56 KiB < 112 KiB for this network
    assert choose(net, SMALL_RUN, _budget("qemu-virt"), dtypes=BOTH).dtype == "fp32"
    small_flash = replace(DEVICES["qemu-virt"], flash_bytes=bf16_slots)
    fit = fit_device(net, SMALL_RUN, small_flash)
    assert fit.fits and fit.choice is not None and fit.choice.dtype == "bf16"
    assert fit.flash_excluded == ("fp32",) and fit.flash_fits and fit.flash_left == 0
    no_flash = replace(small_flash, flash_bytes=bf16_slots - 1)
    fit = fit_device(net, SMALL_RUN, no_flash)
    assert not fit.fits and fit.flash_fits is False and fit.ram_fits
    assert "state file" in fit.reason() and "flash" in fit.reason()


def test_reserve_override():
    fit = fit_device(SMALL, SMALL_RUN, "gap8", reserve_bytes=0)
    assert fit.budget_bytes == DEVICES["gap8"].ram_bytes
    with pytest.raises(ConfigError):
        fit_device(SMALL, SMALL_RUN, "gap8", reserve_bytes=DEVICES["gap8"].ram_bytes)
    with pytest.raises(ConfigError):
        fit_device(SMALL, SMALL_RUN, "gap8", reserve_bytes=-1)


# ------------------------------------------------------------------------------ CLI


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), captured.err
    return lines[0]


def test_memory_device_json(capsys):
    assert main(["memory", *SIZES, "--device", "portenta-h7", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    expected = choose(SMALL, SMALL_RUN, _budget("portenta-h7"), dtypes=BOTH)
    assert doc["fits"] is True and doc["device"]["name"] == "portenta-h7"
    assert doc["budget_bytes"] == _budget("portenta-h7")
    assert doc["choice"]["partitions"] == expected.partitions
    assert doc["choice"]["dtype"] == expected.dtype and doc["run"]["dtype"] == expected.dtype
    assert doc["bytes_left"] == expected.bytes_left and doc["shortfall_bytes"] == 0


def test_memory_device_table_fits(capsys):
    assert main(["memory", *SIZES, "--device", "maix", "--dtype", "fp32"]) == 0
    out = capsys.readouterr().out
    assert "fits: K=" in out and "fp32" in out and "state file" in out and "left" in out


def test_memory_device_that_does_not_fit_answers_with_exit_0(capsys):
    assert main(["memory", "--device", "gap8"]) == 0
    out = capsys.readouterr().out
    assert "does NOT fit" in out and "does not fit gap8" in out and "bytes short" in out


def test_memory_device_list(capsys):
    assert main(["memory", "--device", "list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in NAMES)
    assert main(["memory", "--device", "list", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in doc] == list(DEVICES)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--device", "portenta"], "unknown device 'portenta'"),
        (["--device", "gap8", "--budget", "1MB"], "not both"),
        (["--device", "gap8", "--schedule", "paper"], "exact schedule"),
        (["--device", "gap8", "--dtype", "fp16"], "dtype"),
        (["--device", "gap8", "--plan", "paper"], "plan"),
    ],
)
def test_memory_device_errors(capsys, extra, message):
    assert main(["memory", *SIZES, *extra]) == 2
    assert message in _one_error_line(capsys)


def test_export_with_a_device(tmp_path, capsys):
    argv = ["export-c", *SIZES, "--device", "gap8", "--json", "-o", str(tmp_path / "gen")]
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    expected = choose(SMALL, SMALL_RUN, _budget("gap8"), dtypes=BOTH)
    assert doc["run"]["partitions"] == expected.partitions and doc["plan"] == expected.plan
    assert doc["run"]["dtype"] == expected.dtype
    assert doc["budget"]["budget_bytes"] == _budget("gap8")
    assert doc["device"]["device"]["name"] == "gap8"


def test_export_device_table(tmp_path, capsys):
    argv = ["export-c", *SIZES, "--device", "gap8", "-o", str(tmp_path / "t")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "gap8" in out and "no FPU" in out and "memory budget" in out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--device", "gap8", "--memory-budget", "1MB"], "not both"),
        (["--device", "nope"], "unknown device"),
        (["--device", "gap8", "--schedule", "paper"], "--device sizes"),
        (["--hidden", "400", "--device", "gap8"], "does not fit device gap8"),
    ],
)
def test_export_device_errors(tmp_path, capsys, extra, message):
    assert main(["export-c", *SIZES, *extra, "-o", str(tmp_path / "x")]) == 2
    line = _one_error_line(capsys)
    assert message in line
    if "does not fit" in line:
        assert "at least" in line and "bytes short" in line
