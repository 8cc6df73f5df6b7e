"""Validated specs of the on-device training pass: the network, the run, and named presets.

A later ``SoCSpec`` (the hardware) belongs here too; it is kept apart from these two so that the
workload stays independent of the hardware it runs on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)

from edgefptt.errors import ConfigError

Dtype = Literal["fp32", "bf16"]
Schedule = Literal["paper", "exact", "checkpoint"]

DTYPE_BYTES: dict[str, int] = {"fp64": 8, "fp32": 4, "bf16": 2}

# Upper bounds of the sizes (far above any edge network) and of the sequence length: the
# workload holds a few kernels per time step, so memory, ops and estimate take time and memory
# in proportion to T (about 2 ms and 30 KB per step); T = 100,000 takes minutes.
MAX_SIZE = 65_536
MAX_SEQ_LEN = 100_000
MAX_RATE = 100.0  # learning rate, alpha, |c|: larger values only diverge (or overflow float32)
MAX_SEED = 2**32 - 1


Cell = Literal["lstm", "gru"]
MAX_LAYERS = 16


class LayerSpec(BaseModel):
    """One recurrent layer: its cell, its hidden size and whether the device trains it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cell: Cell = "lstm"
    hidden_size: int = Field(ge=1, le=MAX_SIZE, description="H of this layer")
    trainable: bool = True


def layer_suffix(layer: int) -> str:
    """Name suffix of a layer's buffers and parameters: none for layer 0, ``_l1`` for layer 1."""
    return f"_l{layer}" if layer else ""


def cell_param_shapes(cell: str, inputs: int, hidden: int) -> dict[str, tuple[int, ...]]:
    """Edge parameters of one layer (docs/workload.md): LSTM W (4H, I+H) over [x, h] with gates
    i, f, g, o and b (4H); GRU W (3H, I+H) with gates r, z, n, b (3H) and b_hn (H)."""
    if cell == "gru":
        return {"W": (3 * hidden, inputs + hidden), "b": (3 * hidden,), "b_hn": (hidden,)}
    return {"W": (4 * hidden, inputs + hidden), "b": (4 * hidden,)}


class NetworkSpec(BaseModel):
    """Recurrent layers (input I, hidden H) and a linear readout to C classes.

    ``layers`` empty (the default) is one trainable LSTM layer of ``hidden_size``, the seed
    paper's network; otherwise it lists the layers from the input up, and ``hidden_size`` is
    the top layer's (what the readout reads). ``readout_trainable`` False freezes W_y and b_y.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    input_size: int = Field(ge=1, le=MAX_SIZE, description="I, features per time step")
    hidden_size: int = Field(ge=1, le=MAX_SIZE, description="H, units of the top layer")
    num_classes: int = Field(ge=1, le=MAX_SIZE, description="C, readout classes")
    layers: tuple[LayerSpec, ...] = Field(
        default=(), max_length=MAX_LAYERS, description="the recurrent layers, input first"
    )
    readout_trainable: bool = True

    @model_validator(mode="after")
    def _check_layers(self) -> NetworkSpec:
        if self.layers and self.layers[-1].hidden_size != self.hidden_size:
            raise ValueError(
                f"the top layer has {self.layers[-1].hidden_size} units but hidden_size is "
                f"{self.hidden_size}; give the same --hidden"
            )
        if not self.readout_trainable and not any(la.trainable for la in self.stack):
            raise ValueError(
                "nothing is trainable (every layer and the readout frozen); "
                "use --trainable all, top, readout or a list that names at least one"
            )
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # The one-LSTM network dumps as before (golden.json, JSON reports): new fields only
        # when they differ from the default.
        data = handler(self)
        if not self.layers:
            data.pop("layers", None)
        if self.readout_trainable:
            data.pop("readout_trainable", None)
        return data

    @property
    def stack(self) -> tuple[LayerSpec, ...]:
        """The recurrent layers, input first (the default: one trainable LSTM layer)."""
        return self.layers or (LayerSpec(cell="lstm", hidden_size=self.hidden_size),)

    @property
    def is_single_lstm(self) -> bool:
        """One trainable LSTM layer and a trainable readout: the seed paper's network."""
        stack = self.stack
        return (
            len(stack) == 1 and stack[0].cell == "lstm" and stack[0].trainable
        ) and self.readout_trainable

    def layer_input_size(self, layer: int) -> int:
        """Inputs of ``layer``: I for layer 0, the hidden size of the layer below otherwise."""
        return self.input_size if layer == 0 else self.stack[layer - 1].hidden_size

    @property
    def num_params(self) -> int:
        """P: every layer's parameters and the readout's (one LSTM: 4H(I+H) + 4H + CH + C)."""
        total = 0
        for shape in self.param_shapes().values():
            n = 1
            for d in shape:
                n *= d
            total += n
        return total

    def layer_params(self, layer: int) -> dict[str, tuple[int, ...]]:
        """Edge parameter names and shapes of one layer (names carry the layer's suffix)."""
        spec = self.stack[layer]
        shapes = cell_param_shapes(spec.cell, self.layer_input_size(layer), spec.hidden_size)
        return {f"{name}{layer_suffix(layer)}": shape for name, shape in shapes.items()}

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        """Shapes of the edge parameter layout: each layer's (W, b[, b_hn]), then W_y, b_y."""
        shapes: dict[str, tuple[int, ...]] = {}
        for layer in range(len(self.stack)):
            shapes.update(self.layer_params(layer))
        h, c = self.hidden_size, self.num_classes
        return {**shapes, "W_y": (c, h), "b_y": (c,)}

    def trainable_params(self) -> tuple[str, ...]:
        """The parameters the device updates (with gradients and FPTT state), layout order."""
        names: list[str] = []
        for layer, spec in enumerate(self.stack):
            if spec.trainable:
                names += list(self.layer_params(layer))
        if self.readout_trainable:
            names += ["W_y", "b_y"]
        return tuple(names)


class RunSpec(BaseModel):
    """One training pass: a batch of B sequences of T steps in K partitions, SGD + FPTT."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_size: int = Field(ge=1, le=MAX_SIZE, description="B")
    seq_len: int = Field(ge=1, le=MAX_SEQ_LEN, description="T")
    partitions: int = Field(default=1, ge=1, description="K")
    dtype: Dtype = "fp32"
    schedule: Schedule = "paper"
    learning_rate: float = Field(default=0.01, gt=0, le=MAX_RATE, allow_inf_nan=False)
    alpha: float = Field(default=0.1, gt=0, le=MAX_RATE, allow_inf_nan=False)
    beta: float = Field(default=0.5, gt=0, le=1, allow_inf_nan=False)
    linear_coef: float = Field(
        default=1.0,
        ge=-MAX_RATE,
        le=MAX_RATE,
        allow_inf_nan=False,
        description="c in the FPTT regularizer",
    )
    segments: int | None = Field(
        default=None,
        ge=1,
        description="S, checkpointed segments (checkpoint schedule only; None: round(sqrt T))",
    )

    @model_validator(mode="after")
    def _check_partitions(self) -> RunSpec:
        k, t = self.partitions, self.seq_len
        if self.segments is not None and self.schedule != "checkpoint":
            raise ValueError(
                "segments S belongs to the checkpoint schedule; add --schedule checkpoint "
                "or drop --segments"
            )
        if self.schedule == "checkpoint":
            if k != 1:
                raise ValueError(
                    f"the checkpoint schedule is BPTT over the whole sequence, one update per "
                    f"pass (K = 1); drop --partitions {k} (or set --segments instead)"
                )
            if self.num_segments > t:
                raise ValueError(
                    f"segments S={self.num_segments} exceeds the sequence length T={t}; "
                    f"use S <= {t}"
                )
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

    @property
    def num_segments(self) -> int:
        """S of the checkpoint schedule: ``segments``, or round(sqrt T) when it is None."""
        return self.segments if self.segments is not None else default_segments(self.seq_len)

    @property
    def max_segment_len(self) -> int:
        """L of the checkpoint schedule's longest segment, ceil(T/S)."""
        return -(-self.seq_len // self.num_segments)


def default_segments(seq_len: int) -> int:
    """About sqrt(T) checkpointed segments: round(sqrt T), at least 1 and at most T."""
    return min(seq_len, max(1, round(seq_len**0.5)))


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
    "segments": "--segments",
    "learning_rate": "--lr",
    "clock_hz": "--clock-mhz",
    "layers": "--cell/--layers/--trainable",
    "readout_trainable": "--trainable",
}

# Options of make_specs that describe the layers rather than set a spec field.
LAYER_OPTIONS = ("cell", "num_layers", "trainable")


def parse_trainable(text: str, num_layers: int) -> tuple[list[bool], bool]:
    """Which layers (input first) and whether the readout the device trains, from
    ``all`` | ``top`` (the top layer and the readout) | ``readout`` | a comma list of layer
    indices and ``readout`` (``0,1,readout``)."""
    word = text.strip().lower()
    if word == "all":
        return [True] * num_layers, True
    if word == "top":
        return [i == num_layers - 1 for i in range(num_layers)], True
    if word == "readout":
        return [False] * num_layers, True
    layers, readout = [False] * num_layers, False
    for item in (part.strip().lower() for part in word.split(",")):
        if item == "readout":
            readout = True
        elif item.isdigit() and int(item) < num_layers:
            layers[int(item)] = True
        else:
            raise ConfigError(
                f"--trainable: {item!r} is neither a layer index (0..{num_layers - 1}) nor "
                "'readout'; give all, top, readout or a list such as 0,readout"
            )
    return layers, readout


def _apply_layer_options(net_values: dict[str, Any], options: dict[str, Any]) -> None:
    """Rebuild ``layers`` (uniform cell and hidden size) from --cell, --layers, --trainable."""
    layers = [dict(la) for la in net_values.get("layers") or ()]
    hidden = net_values.get("hidden_size")
    if not options and (not layers or all(la["hidden_size"] == hidden for la in layers)):
        return
    if hidden is None:
        raise ConfigError("hidden_size (--hidden): is required with --cell, --layers, --trainable")
    old = layers or [{"cell": "lstm", "hidden_size": hidden, "trainable": True}]
    count = options.get("num_layers", len(old))
    if not isinstance(count, int) or not 1 <= count <= MAX_LAYERS:
        raise ConfigError(f"--layers must be between 1 and {MAX_LAYERS} (got {count})")
    cell = options.get("cell")
    if cell is not None and cell not in ("lstm", "gru"):
        raise ConfigError(f"--cell: unknown cell {cell!r}; choose lstm or gru")
    cells = [cell or old[min(i, len(old) - 1)]["cell"] for i in range(count)]
    flags = [bool(old[i]["trainable"]) if i < len(old) else True for i in range(count)]
    readout = bool(net_values.get("readout_trainable", True))
    if "trainable" in options:
        flags, readout = parse_trainable(str(options["trainable"]), count)
    new = [
        {"cell": c, "hidden_size": hidden, "trainable": t}
        for c, t in zip(cells, flags, strict=True)
    ]
    default = count == 1 and cells[0] == "lstm" and flags[0] and readout
    net_values["layers"] = () if default else tuple(new)
    net_values["readout_trainable"] = readout


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
    layer_options = {k: given.pop(k) for k in LAYER_OPTIONS if k in given}
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
    _apply_layer_options(net_values, layer_options)
    try:
        net = NetworkSpec(**net_values)
        if not net.is_single_lstm and run_values.get("schedule", "paper") != "exact":
            # The paper and checkpoint schedules describe the seed paper's one LSTM layer.
            if "schedule" in given:
                raise ConfigError(
                    f"the {given['schedule']} schedule describes one trainable LSTM layer and "
                    "readout; use --schedule exact for GRU, stacked or frozen layers"
                )
            run_values["schedule"] = "exact"
        return net, RunSpec(**run_values)
    except ValidationError as exc:
        raise ConfigError(_message(exc)) from None


def available_memory_bytes() -> int | None:
    """Memory a new allocation can get now: MemAvailable of /proc/meminfo on Linux, else the
    physical memory; None when neither is known."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def require_memory(needed: int, what: str, shrink: str, available: int | None = None) -> None:
    """Raise ConfigError, before any work, when ``what`` needs more than the memory available
    (``available`` bytes, or :func:`available_memory_bytes`); ``shrink`` says how to fit."""
    available = available_memory_bytes() if available is None else available
    if available is not None and needed > available:
        raise ConfigError(
            f"{what} needs at least {needed:,} bytes ({needed / 2**30:,.1f} GiB) of memory, "
            f"this machine has {available:,} bytes ({available / 2**30:,.1f} GiB) available; "
            f"{shrink}"
        )


def golden_min_bytes(net: NetworkSpec, run: RunSpec) -> int:
    """A lower bound of the host memory of one pass's golden model (``export-c``): float32
    parameters, gradients, W_bar and lambda (4P values), the inputs (T*B*I), and h and c of
    every sample at every stored step of the longest partition (2*B*H*(L+1))."""
    steps = run.max_segment_len if run.schedule == "checkpoint" else run.max_partition_len
    b, h = run.batch_size, sum(layer.hidden_size for layer in net.stack)
    values = 4 * net.num_params + run.seq_len * b * net.input_size + 2 * b * h * (steps + 1)
    return 4 * values
