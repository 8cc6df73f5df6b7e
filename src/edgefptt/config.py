"""Validated specs of the on-device training pass: the network, the run, and named presets.

A later ``SoCSpec`` (the hardware) belongs here too; it is kept apart from these two so that the
workload stays independent of the hardware it runs on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgefptt.errors import ConfigError

Dtype = Literal["fp32", "bf16"]
Schedule = Literal["paper", "exact"]

DTYPE_BYTES: dict[str, int] = {"fp64": 8, "fp32": 4, "bf16": 2}


class NetworkSpec(BaseModel):
    """One LSTM layer (input I, hidden H) and a linear readout to C classes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_size: int = Field(ge=1, description="I, features per time step")
    hidden_size: int = Field(ge=1, description="H, LSTM units")
    num_classes: int = Field(ge=1, description="C, readout classes")

    @property
    def num_params(self) -> int:
        """P = 4H(I+H) + 4H + CH + C."""
        i, h, c = self.input_size, self.hidden_size, self.num_classes
        return 4 * h * (i + h) + 4 * h + c * h + c

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of the edge parameter layout {W, b, W_y, b_y}."""
        i, h, c = self.input_size, self.hidden_size, self.num_classes
        return {"W": (4 * h, i + h), "b": (4 * h,), "W_y": (c, h), "b_y": (c,)}


class RunSpec(BaseModel):
    """One training pass: a batch of B sequences of T steps in K partitions, SGD + FPTT."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_size: int = Field(ge=1, description="B")
    seq_len: int = Field(ge=1, description="T")
    partitions: int = Field(default=1, ge=1, description="K")
    dtype: Dtype = "fp32"
    schedule: Schedule = "paper"
    learning_rate: float = Field(default=0.01, gt=0, allow_inf_nan=False)
    alpha: float = Field(default=0.1, gt=0, allow_inf_nan=False)
    beta: float = Field(default=0.5, gt=0, le=1, allow_inf_nan=False)
    linear_coef: float = Field(
        default=1.0, allow_inf_nan=False, description="c in the FPTT regularizer"
    )

    @model_validator(mode="after")
    def _check_partitions(self) -> RunSpec:
        k, t = self.partitions, self.seq_len
        if k > t:
            raise ValueError(f"partitions K={k} exceeds the sequence length T={t}; use K <= {t}")
        if self.schedule == "paper" and t % k:
            raise ValueError(
                f"the paper schedule needs K to divide T (K={k}, T={t}); "
                "pick a divisor of T or use --schedule exact"
            )
        return self

    @property
    def element_bytes(self) -> int:
        return DTYPE_BYTES[self.dtype]

    @property
    def max_partition_len(self) -> int:
        """L of the longest partition (ceil(T/K)); every partition has this length if K | T."""
        return -(-self.seq_len // self.partitions)


@dataclass(frozen=True)
class Preset:
    """A named network and run."""

    network: NetworkSpec
    run: RunSpec
    description: str


PRESETS: dict[str, Preset] = {
    "paper-smnist": Preset(
        NetworkSpec(input_size=1, hidden_size=128, num_classes=10),
        RunSpec(
            batch_size=4,
            seq_len=784,
            partitions=1,
            dtype="fp32",
            schedule="paper",
            learning_rate=0.01,
            alpha=0.1,
            beta=0.5,
        ),
        "seed paper: pixel MNIST, LSTM 128, batch 4, SGD 0.01, alpha 0.1, beta 0.5",
    ),
    "gsc": Preset(
        NetworkSpec(input_size=40, hidden_size=128, num_classes=12),
        RunSpec(
            batch_size=8,
            seq_len=100,
            partitions=1,
            dtype="fp32",
            schedule="paper",
            learning_rate=0.01,
            alpha=0.1,
            beta=0.5,
        ),
        "keyword spotting: Speech Commands v2 12-class, 40 MFCCs x 100 frames (10 ms), "
        "LSTM 128, batch 8, SGD 0.01",
    ),
}

_NETWORK_FIELDS = set(NetworkSpec.model_fields)
_RUN_FIELDS = set(RunSpec.model_fields)


# The command-line option of each spec field, so that messages name what the user typed.
CLI_OPTIONS = {
    "input_size": "--input",
    "hidden_size": "--hidden",
    "num_classes": "--classes",
    "batch_size": "--batch",
    "seq_len": "--seq-len",
    "partitions": "--partitions",
    "learning_rate": "--lr",
    "clock_hz": "--clock-mhz",
}


def _message(exc: ValidationError) -> str:
    """The first validation error as one line: 'field (--option): what is wrong'."""
    err = exc.errors()[0]
    where = ".".join(str(part) for part in err.get("loc", ()))
    if where in CLI_OPTIONS:
        where = f"{where} ({CLI_OPTIONS[where]})"
    text = err.get("msg", str(exc)).removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        text = "unknown field"
    if err.get("type") == "missing":
        text = "is required (give it, or start from a preset such as --preset paper-smnist)"
    return f"{where}: {text}" if where else text


def make_specs(preset: str | None = None, **values: Any) -> tuple[NetworkSpec, RunSpec]:
    """Build (NetworkSpec, RunSpec) from a preset (optional) and field values.

    Values that are None are ignored, so CLI options can be passed straight through. Raises
    :class:`ConfigError` with a one-line message on any invalid value or combination.
    """
    given = {k: v for k, v in values.items() if v is not None}
    unknown = set(given) - _NETWORK_FIELDS - _RUN_FIELDS
    if unknown:
        raise ConfigError(f"unknown spec field(s): {', '.join(sorted(unknown))}")
    net_values: dict[str, Any] = {}
    run_values: dict[str, Any] = {}
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
        net_values = PRESETS[preset].network.model_dump()
        run_values = PRESETS[preset].run.model_dump()
    net_values.update({k: v for k, v in given.items() if k in _NETWORK_FIELDS})
    run_values.update({k: v for k, v in given.items() if k in _RUN_FIELDS})
    try:
        return NetworkSpec(**net_values), RunSpec(**run_values)
    except ValidationError as exc:
        raise ConfigError(_message(exc)) from None
