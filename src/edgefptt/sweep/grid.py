"""What a sweep runs: base options plus lists of values, expanded into named runs.

A grid file is TOML with two tables, both optional::

    [base]                      # options every run shares (any `edgefptt train` option)
    dataset = "digits"
    epochs = 5

    [grid]                      # one list per varied option; every combination runs
    algorithm = ["bptt", "fptt"]
    partitions = [2, 8]
    alpha = [0.1, 0.5]
    seed = [0, 1]

Options that do not change a run are dropped from it, so that it runs once: ``partitions``
and ``alpha`` under BPTT, ``alpha`` under truncated BPTT.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgefptt.errors import ConfigError
from edgefptt.train.config import TrainConfig

# Short names of the usual axes in run names; other options appear under their own name.
_SHORT = {"partitions": "K", "alpha": "a", "seed": "s"}
# Options that do not change what an algorithm computes.
_UNUSED = {"bptt": ("partitions", "alpha"), "tbptt": ("alpha",)}
# Options that only say where the run's output goes or how it is launched.
_NOT_OPTIONS = {"out", "resume"}


@dataclass(frozen=True)
class RunSpec:
    """One configuration of a sweep: its directory name, train options and varied values."""

    name: str
    options: dict[str, Any] = field(hash=False)
    axes: dict[str, Any] = field(hash=False)


def check_option_names(names: Sequence[str], where: str) -> None:
    """ConfigError naming the first key that is not a train option."""
    for name in names:
        if name in _NOT_OPTIONS or name not in TrainConfig.model_fields:
            raise ConfigError(
                f"{where}: {name!r} is not an option of edgefptt train (see edgefptt train "
                "--help; write options with underscores, e.g. batch_size)"
            )


def load_grid_file(path: Path) -> tuple[dict[str, Any], dict[str, list[Any]]]:
    """The [base] options and [grid] lists of a TOML grid file."""
    if not path.is_file():
        raise ConfigError(f"--grid {path}: no such file; write a TOML file with [base] and [grid]")
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--grid {path} is not valid TOML: {exc}") from None
    unknown = sorted(set(document) - {"base", "grid"})
    if unknown:
        raise ConfigError(f"--grid {path}: unknown table {unknown[0]!r}; use [base] and [grid]")
    base, grid = document.get("base", {}), document.get("grid", {})
    if not isinstance(base, dict) or not isinstance(grid, dict):
        raise ConfigError(f"--grid {path}: [base] and [grid] must be tables")
    check_option_names(list(base), f"--grid {path} [base]")
    check_option_names(list(grid), f"--grid {path} [grid]")
    lists: dict[str, list[Any]] = {}
    for key, values in grid.items():
        values = values if isinstance(values, list) else [values]
        if not values:
            raise ConfigError(f"--grid {path} [grid]: {key} is an empty list; give it values")
        lists[key] = values
    return dict(base), lists


def _value_text(value: Any) -> str:
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"[^A-Za-z0-9.+-]+", "_", text)


def run_name(options: Mapping[str, Any], axes: Sequence[str]) -> str:
    """A directory name from the varied options: e.g. fptt-K8-a0.1-s0."""
    parts = []
    if "algorithm" in axes:
        parts.append(_value_text(options["algorithm"]))
    for key in axes:
        if key == "algorithm" or key not in options:
            continue
        parts.append(f"{_SHORT.get(key, key)}{_value_text(options[key])}")
    return "-".join(parts) or "run"


def expand_grid(base: Mapping[str, Any], grid: Mapping[str, Sequence[Any]]) -> list[RunSpec]:
    """Every combination of the grid's values over ``base``, without duplicate runs."""
    keys = list(grid)
    specs: dict[str, RunSpec] = {}
    for combo in itertools.product(*(grid[k] for k in keys)):
        options = {**base, **dict(zip(keys, combo, strict=True))}
        algorithm = options.get("algorithm", TrainConfig.model_fields["algorithm"].default)
        for unused in _UNUSED.get(str(algorithm), ()):
            if unused in grid:
                options.pop(unused, None)
        axes = {k: options[k] for k in keys if k in options}
        name = run_name(options, keys)
        specs.setdefault(name, RunSpec(name, options, axes))
    return list(specs.values())
