"""The edge learner's state image and its two-slot region, as docs/learner.md fixes them; and
the conversion of a device state into a host checkpoint (``edgefptt import-c``).

A version-1 image (one trainable LSTM layer and readout) is a 136-byte header, then W, b, W_y,
b_y (edge layout, row-major), W_bar and lam of the same four tensors in the build's storage
type (fp32, or bf16 as the top 16 bits of the float32), then a CRC-32 of every byte before it.
A version-2 image (any other network, :mod:`edgefptt.learn.layout`) has the network's layer
list between the header and the tensors, every parameter, and W_bar and lam of the trainable
ones only. A state file is two slots of ``slot_bytes`` (the image size rounded up to 4096
bytes); a reader takes the valid image with the highest sequence number, so a write
interrupted in one slot never loses the other.
"""

from __future__ import annotations

import dataclasses
import math
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from edgefptt.codegen.export import network_label
from edgefptt.config import MAX_LAYERS, LayerSpec, NetworkSpec
from edgefptt.data.base import SequenceData
from edgefptt.edge.bf16 import from_bf16_bits, to_bf16_bits
from edgefptt.errors import CheckpointError, ConfigError, UserInputError
from edgefptt.learn.layout import (
    CRC_BYTES,
    ELEMENT_BYTES,
    HEADER_BYTES,
    SECTOR_BYTES,
    LayoutError,
    build_network,
    network_from_words,
    network_image_bytes,
    network_slot_bytes,
    network_words,
    state_version,
    words_length,
)
from edgefptt.models import SequenceClassifier, edge_to_model
from edgefptt.train.checkpoint import atomic_write
from edgefptt.train.config import make_config
from edgefptt.train.fptt import FPTT
from edgefptt.train.loop import (
    build_model,
    build_optimizer,
    build_scheduler,
    one_bias_per_gate,
    trainable,
)

StateDtype = Literal["fp32", "bf16"]

MAGIC = b"EFPTTSTA"
VERSION = 1  # the seed paper's network; 2 for any other (layer list after the header)
VERSIONS = (1, 2)
# magic, version, sequence, I, H, C, B, T, K, dtype, P, epochs completed, batches done, flags,
# epochs since best, PRNG state, epoch key, loss sum, correct, seen, best loss, lr0, step
# epochs, step factor, seed, patience, alpha, beta, c
HEADER = struct.Struct("<8s14IQQdIIffIfQIfff")
assert HEADER.size == HEADER_BYTES
SLOTS = 2
FLAG_STOPPED_EARLY = 1
TENSORS = ("W", "b", "W_y", "b_y")
DTYPE_CODES: dict[str, int] = {"fp32": 0, "bf16": 1}
DTYPE_NAMES: dict[int, StateDtype] = {0: "fp32", 1: "bf16"}

# Header fields in file order after magic and version, with the letters docs/learner.md uses.
_FIELDS = (
    "sequence",
    "input_size",
    "hidden",
    "num_classes",
    "batch_size",
    "seq_len",
    "partitions",
    "dtype",
    "param_count",
    "epochs_completed",
    "batches_done",
    "flags",
    "epochs_since_best",
    "prng_state",
    "epoch_key",
    "loss_sum",
    "correct",
    "seen",
    "best_loss",
    "lr0",
    "step_epochs",
    "step_factor",
    "seed",
    "patience",
    "alpha",
    "beta",
    "linear_coef",
)
LETTERS = {
    "input_size": "I",
    "hidden": "H",
    "num_classes": "C",
    "batch_size": "B",
    "seq_len": "T",
    "partitions": "K",
    "param_count": "P",
    "dtype": "dtype",
}
_ALIASES = {letter: name for name, letter in LETTERS.items()}


class StateError(UserInputError):
    """A state file is missing, truncated, damaged, or of another build."""


def param_count(input_size: int, hidden: int, num_classes: int) -> int:
    """P = 4H(I+H) + 4H + CH + C, the values in W, b, W_y and b_y (one LSTM layer)."""
    i, h, c = input_size, hidden, num_classes
    return 4 * h * (i + h) + 4 * h + c * h + c


def edge_shapes(input_size: int, hidden: int, num_classes: int) -> dict[str, tuple[int, ...]]:
    """Shapes of W, b, W_y, b_y in the edge layout."""
    i, h, c = input_size, hidden, num_classes
    return {"W": (4 * h, i + h), "b": (4 * h,), "W_y": (c, h), "b_y": (c,)}


def image_bytes(param_count: int, dtype: str) -> int:
    """Size of one version-1 image (one LSTM layer): 140 + 3 * P * e."""
    return HEADER_BYTES + 3 * param_count * ELEMENT_BYTES[dtype] + CRC_BYTES


def slot_bytes(param_count: int, dtype: str) -> int:
    """One slot: the image size rounded up to a multiple of 4096 bytes."""
    return -(-image_bytes(param_count, dtype) // SECTOR_BYTES) * SECTOR_BYTES


def state_file_bytes(input_size: int, hidden: int, num_classes: int, dtype: str) -> int:
    """Size of a state file (two slots) of this build."""
    return SLOTS * slot_bytes(param_count(input_size, hidden, num_classes), dtype)


@dataclass
class LearnerState:
    """Every field of a state image; ``params`` holds float32 arrays of the network's edge
    layout ({W (4H, I+H), b (4H,), W_y (C, H), b_y (C,)} for one LSTM), ``w_bar`` and ``lam``
    those of its trainable tensors. ``layers`` and ``readout_trainable`` describe the network
    as :class:`edgefptt.config.NetworkSpec` does (``layers`` empty: one trainable LSTM layer of
    ``hidden`` units). Counts are in the current epoch unless said."""

    input_size: int  # I
    hidden: int  # H
    num_classes: int  # C
    batch_size: int  # B
    seq_len: int  # T
    partitions: int  # K
    dtype: StateDtype = "fp32"
    params: dict[str, np.ndarray] = field(default_factory=dict)
    w_bar: dict[str, np.ndarray] = field(default_factory=dict)
    lam: dict[str, np.ndarray] = field(default_factory=dict)
    sequence: int = 1
    epochs_completed: int = 0
    batches_done: int = 0
    flags: int = 0  # bit 0: stopped early
    epochs_since_best: int = 0
    prng_state: int = 0  # after the current epoch's key was drawn
    epoch_key: int = 0
    loss_sum: float = 0.0  # sum of this epoch's train losses so far (f64)
    correct: int = 0
    seen: int = 0
    best_loss: float = math.inf
    lr0: float = 0.0
    step_epochs: int = 0  # 0: constant learning rate
    step_factor: float = 1.0
    seed: int = 0
    patience: int = 0  # 0: off
    alpha: float = 0.1
    beta: float = 0.5
    linear_coef: float = 1.0  # c
    layers: tuple[LayerSpec, ...] = ()
    readout_trainable: bool = True
    version: int = VERSION  # set from the network

    def __post_init__(self) -> None:
        self.layers = tuple(self.layers)
        net = self.network
        if net.is_single_lstm:
            self.layers = ()  # one description of the seed paper's network
        self.version = state_version(net)
        shapes, trainable = net.param_shapes(), net.trainable_params()
        kept = {"params": shapes, "w_bar": trainable, "lam": trainable}
        for name, names in kept.items():
            if not getattr(self, name):
                setattr(self, name, {k: np.zeros(shapes[k], dtype=np.float32) for k in names})

    @property
    def network(self) -> NetworkSpec:
        """The network the image holds (raises ConfigError when the fields describe none)."""
        try:
            return build_network(
                input_size=self.input_size,
                hidden_size=self.hidden,
                num_classes=self.num_classes,
                layers=self.layers,
                readout_trainable=self.readout_trainable,
            )
        except LayoutError as exc:
            raise ConfigError(f"the state describes no network: {exc}") from None

    @property
    def param_count(self) -> int:
        return self.network.num_params

    @property
    def element_bytes(self) -> int:
        return ELEMENT_BYTES[self.dtype]

    @property
    def image_bytes(self) -> int:
        return network_image_bytes(self.network, self.dtype)

    @property
    def slot_bytes(self) -> int:
        return network_slot_bytes(self.network, self.dtype)

    @property
    def epoch(self) -> int:
        """Epochs completed (``L->epoch`` in learner.c)."""
        return self.epochs_completed

    @property
    def stopped_early(self) -> bool:
        return bool(self.flags & FLAG_STOPPED_EARLY)

    def build(self) -> dict[str, Any]:
        """The fields a build fixes (I, H, C, B, T, K, dtype), by their letters."""
        return {LETTERS[k]: getattr(self, k) for k in LETTERS if k != "param_count"}


# ---------------------------------------------------------------------------- encoding
def _image_names(net: NetworkSpec) -> dict[str, tuple[str, ...]]:
    """The tensors of each kind an image holds, in file order."""
    trainable = net.trainable_params()
    return {"params": tuple(net.param_shapes()), "w_bar": trainable, "lam": trainable}


def _pack_tensors(tensors: dict[str, np.ndarray], state: LearnerState, what: str) -> bytes:
    net = state.network
    shapes = net.param_shapes()
    names = _image_names(net)[what]
    parts = []
    for key in names:
        if key not in tensors:
            raise ConfigError(f"state {what} has no {key!r} (needs {', '.join(names)})")
        array = np.asarray(tensors[key], dtype=np.float32)
        if array.shape != shapes[key]:
            raise ConfigError(f"state {what}[{key!r}] has shape {array.shape}, needs {shapes[key]}")
        parts.append(array.reshape(-1))
    flat = np.concatenate(parts)
    if state.dtype == "bf16":
        return to_bf16_bits(flat, "rne").astype("<u2").tobytes()
    return flat.astype("<f4").tobytes()


def encode_state(state: LearnerState) -> bytes:
    """One image of ``state`` (image_bytes long), its CRC included."""
    if state.dtype not in DTYPE_CODES:
        raise ConfigError(f"unknown state dtype {state.dtype!r}; use 'fp32' or 'bf16'")
    values = {name: getattr(state, name) for name in _FIELDS if name not in ("dtype",)}
    values["dtype"] = DTYPE_CODES[state.dtype]
    try:
        header = HEADER.pack(MAGIC, state.version, *(values[name] for name in _FIELDS))
    except (struct.error, OverflowError) as exc:
        raise ConfigError(f"a state field is out of range for its type: {exc}") from None
    words = network_words(state.network)
    body = (
        header
        + struct.pack(f"<{len(words)}I", *words)
        + b"".join(
            _pack_tensors(getattr(state, name), state, name) for name in ("params", "w_bar", "lam")
        )
    )
    return body + struct.pack("<I", zlib.crc32(body))


def _region(images: tuple[bytes | None, bytes | None], size: int) -> bytes:
    out = bytearray(SLOTS * size)
    for k, image in enumerate(images):
        if image is not None:
            out[k * size : k * size + len(image)] = image
    return bytes(out)


def write_state_file(path: str | Path, state: LearnerState) -> int:
    """Write a fresh two-slot state file (slot 0 the image, slot 1 zeros) atomically; returns
    its size in bytes."""
    data = _region((encode_state(state), None), state.slot_bytes)
    atomic_write(Path(path), lambda handle: handle.write(data))
    return len(data)


def update_state_file(path: str | Path, state: LearnerState) -> int:
    """Write ``state`` as the next image, the way the device does: into the slot that does not
    hold the newest valid image, with sequence = newest + 1 (1 into slot 0 for a missing or
    empty file). The other slot is kept; a file of another size raises StateError. Sets
    ``state.sequence``; returns the slot written."""
    target = Path(path)
    size = state.slot_bytes
    current: list[bytes | None] = [None, None]
    newest, newest_slot = 0, 1
    if target.is_file():
        data = target.read_bytes()
        if len(data) != SLOTS * size:
            raise StateError(
                f"{target} is {len(data)} bytes, a state of this build is 2 x {size} = "
                f"{SLOTS * size} bytes; remove it or write a fresh one with write_state_file"
            )
        for k in range(SLOTS):
            image = data[k * size : (k + 1) * size]
            current[k] = image
            try:
                found = _decode_slot(image, size, {})
            except _InvalidSlot:
                continue
            if found.sequence >= newest:
                newest, newest_slot = found.sequence, k
    slot = 1 - newest_slot
    state.sequence = newest + 1
    current[slot] = encode_state(state)
    atomic_write(target, lambda handle: handle.write(_region((current[0], current[1]), size)))
    return slot


# ---------------------------------------------------------------------------- decoding
class _InvalidSlot(Exception):
    """Why one slot holds no usable image."""


def _normalize_expect(expect: dict[str, Any] | None) -> dict[str, Any]:
    wanted: dict[str, Any] = {}
    names = {f.name for f in dataclasses.fields(LearnerState)} | {"param_count"}
    for key, value in (expect or {}).items():
        name = _ALIASES.get(key, key)
        if name not in names or name in ("params", "w_bar", "lam"):
            raise ValueError(f"read_state: unknown expected field {key!r}")
        wanted[name] = value
    return wanted


def _describe(name: str) -> str:
    return LETTERS.get(name, name)


def _layer_words(image: bytes) -> list[int]:
    """A version-2 image's layer list (the words after the header)."""
    if len(image) < HEADER_BYTES + 4:
        raise _InvalidSlot("a version-2 image cut short before its layer list")
    (count,) = struct.unpack_from("<I", image, HEADER_BYTES)
    if not 1 <= count <= MAX_LAYERS:
        raise _InvalidSlot(f"a layer list of {count} layers (1 to {MAX_LAYERS})")
    length = words_length(count)
    if len(image) < HEADER_BYTES + 4 * length:
        raise _InvalidSlot("a version-2 image cut short inside its layer list")
    return list(struct.unpack_from(f"<{length}I", image, HEADER_BYTES))


def _parse_header(image: bytes) -> dict[str, Any]:
    """Header fields and the network of an image (``network``; ``prefix``: the bytes before
    the tensors); raises _InvalidSlot for a wrong magic, version, dtype or layer list."""
    if len(image) < HEADER_BYTES:
        raise _InvalidSlot(f"only {len(image)} bytes, shorter than the {HEADER_BYTES}-byte header")
    magic, version, *rest = HEADER.unpack_from(image, 0)
    if magic != MAGIC:
        if not any(image):
            raise _InvalidSlot("empty (all zero bytes, never written)")
        raise _InvalidSlot(f"wrong magic {magic!r} (expected {MAGIC.decode()})")
    if version not in VERSIONS:
        raise _InvalidSlot(f"image version {version}, this edgefptt reads versions 1 and 2")
    fields = dict(zip(_FIELDS, rest, strict=True))
    if fields["dtype"] not in DTYPE_NAMES:
        raise _InvalidSlot(f"unknown dtype code {fields['dtype']} (0 = fp32, 1 = bf16)")
    fields["dtype"] = DTYPE_NAMES[fields["dtype"]]
    words = _layer_words(image) if version == 2 else []
    try:
        net = network_from_words(
            fields["input_size"], fields["hidden"], fields["num_classes"], words
        )
    except LayoutError as exc:
        raise _InvalidSlot(f"its header describes no network ({exc})") from None
    if state_version(net) != version:
        raise _InvalidSlot(
            f"a version-{version} image of a network that version {3 - version} holds"
        )
    derived = net.num_params
    if fields["param_count"] != derived:
        raise _InvalidSlot(
            f"P is {fields['param_count']}, but I={fields['input_size']}, "
            f"H={fields['hidden']}, C={fields['num_classes']} and its layers give {derived}"
        )
    fields["network"] = net
    fields["prefix"] = HEADER_BYTES + 4 * len(words)
    return fields


def _unpack_tensors(
    image: bytes, offset: int, fields: dict[str, Any], what: str
) -> tuple[dict[str, np.ndarray], int]:
    net: NetworkSpec = fields["network"]
    shapes = net.param_shapes()
    names = _image_names(net)[what]
    count = sum(math.prod(shapes[key]) for key in names)
    if fields["dtype"] == "bf16":
        bits = np.frombuffer(image, dtype="<u2", count=count, offset=offset)
        flat = from_bf16_bits(bits)
    else:
        flat = np.frombuffer(image, dtype="<f4", count=count, offset=offset).astype(np.float32)
    tensors, start = {}, 0
    for key in names:
        size = math.prod(shapes[key])
        tensors[key] = flat[start : start + size].reshape(shapes[key]).copy()
        start += size
    return tensors, offset + count * ELEMENT_BYTES[fields["dtype"]]


def _decode_slot(image: bytes, size: int, wanted: dict[str, Any]) -> LearnerState:
    fields = _parse_header(image)
    net: NetworkSpec = fields["network"]
    length = network_image_bytes(net, fields["dtype"])
    if length > size:
        raise _InvalidSlot(
            f"its header (I={fields['input_size']}, H={fields['hidden']}, "
            f"C={fields['num_classes']}, {fields['dtype']}) needs a {length}-byte image, "
            f"larger than the {size}-byte slot"
        )
    (stored,) = struct.unpack_from("<I", image, length - CRC_BYTES)
    computed = zlib.crc32(image[: length - CRC_BYTES])
    if stored != computed:
        raise _InvalidSlot(
            f"CRC mismatch (stored {stored:#010x}, computed {computed:#010x}): "
            "damaged or partly written"
        )
    fields["layers"] = net.layers if not net.is_single_lstm else ()
    fields["readout_trainable"] = net.readout_trainable
    for name, want in wanted.items():
        have = fields.get(name, state_version(net))
        if have != want:
            kind = "other build: " if name in LETTERS else "not the expected state: "
            where = "this build has" if name in LETTERS else "expected"
            raise _InvalidSlot(f"{kind}{_describe(name)} is {have}, {where} {want}")
    params, offset = _unpack_tensors(image, fields["prefix"], fields, "params")
    w_bar, offset = _unpack_tensors(image, offset, fields, "w_bar")
    lam, _ = _unpack_tensors(image, offset, fields, "lam")
    for name in ("param_count", "network", "prefix"):
        fields.pop(name)
    return LearnerState(**fields, params=params, w_bar=w_bar, lam=lam)


def _slot_size_from(data: bytes, wanted: dict[str, Any]) -> tuple[int, str] | None:
    """The slot size the build (from ``wanted``) or a readable header implies, and whence."""
    if all(k in wanted for k in ("input_size", "hidden", "num_classes", "dtype")):
        try:
            net = build_network(
                input_size=wanted["input_size"],
                hidden_size=wanted["hidden"],
                num_classes=wanted["num_classes"],
                layers=tuple(wanted.get("layers", ())),
                readout_trainable=wanted.get("readout_trainable", True),
            )
        except LayoutError as exc:
            raise ConfigError(
                f"read_state: the expected fields describe no network: {exc}"
            ) from None
        return network_slot_bytes(net, wanted["dtype"]), "a state of this build"
    offsets = [0] + ([len(data) // 2] if len(data) % 2 == 0 and len(data) >= 2 else [])
    longest = HEADER_BYTES + 4 * words_length(MAX_LAYERS)
    for offset in offsets:
        try:
            fields = _parse_header(data[offset : offset + longest])
        except _InvalidSlot:
            continue
        i, h, c, dtype = (fields[k] for k in ("input_size", "hidden", "num_classes", "dtype"))
        return (
            network_slot_bytes(fields["network"], dtype),
            f"a state of I={i}, H={h}, C={c}, {dtype} (as its header says)",
        )
    return None


def read_state(path: str | Path, expect: dict[str, Any] | None = None) -> tuple[LearnerState, int]:
    """The newest valid image of a two-slot state file, and the slot (0 or 1) it came from.

    ``expect`` maps header fields (``hidden``, ``dtype``, ... or the letters I, H, C, B, T, K,
    P) to the values this build needs; a slot that differs is not valid. Raises
    :class:`StateError` for a missing or truncated file and when neither slot is valid (saying
    why for each).
    """
    source = Path(path)
    wanted = _normalize_expect(expect)
    if not source.is_file():
        raise StateError(
            f"no state file at {source}; give the file learn_host wrote (its --state option)"
        )
    try:
        data = source.read_bytes()
    except OSError as exc:
        raise StateError(f"cannot read {source}: {exc.strerror or exc}") from None
    implied = _slot_size_from(data, wanted)
    if implied is None:
        if len(data) == 0 or len(data) % (SLOTS * SECTOR_BYTES):
            raise StateError(
                f"{source} is {len(data)} bytes, not a two-slot state region (a multiple of "
                f"{SLOTS * SECTOR_BYTES} bytes) and no slot has a readable header"
            )
        size = len(data) // SLOTS
    else:
        size, what = implied
        if len(data) != SLOTS * size:
            raise StateError(
                f"{source} is {len(data)} bytes, {what} is 2 x {size} = {SLOTS * size} bytes: "
                "the file is truncated or of another build"
            )
    found: list[tuple[LearnerState, int]] = []
    reasons = []
    for k in range(SLOTS):
        try:
            found.append((_decode_slot(data[k * size : (k + 1) * size], size, wanted), k))
        except _InvalidSlot as exc:
            reasons.append(f"slot {k}: {exc}")
    if not found:
        raise StateError(f"{source} holds no valid state ({'; '.join(reasons)})")
    return max(found, key=lambda item: (item[0].sequence, -item[1]))


# ---------------------------------------------------------------------------- host checkpoints
def edge_to_torch_tensors(
    tensors: dict[str, np.ndarray], model: SequenceClassifier
) -> dict[str, torch.Tensor]:
    """Edge arrays {W, b, W_y, b_y} as float32 tensors keyed by ``model``'s parameter names,
    split the way :func:`edgefptt.models.edge_to_lstm_layer` splits them: W into the input and
    hidden weights, b into bias_ih with bias_hh zero."""
    inputs = model.rnn.input_size
    weight = torch.as_tensor(np.asarray(tensors["W"], dtype=np.float32))
    bias = torch.as_tensor(np.asarray(tensors["b"], dtype=np.float32))
    return {
        "rnn.weight_ih_l0": weight[:, :inputs].clone(),
        "rnn.weight_hh_l0": weight[:, inputs:].clone(),
        "rnn.bias_ih_l0": bias.clone(),
        "rnn.bias_hh_l0": torch.zeros_like(bias),
        "readout.weight": torch.as_tensor(np.asarray(tensors["W_y"], dtype=np.float32)).clone(),
        "readout.bias": torch.as_tensor(np.asarray(tensors["b_y"], dtype=np.float32)).clone(),
    }


def shape_only_data(entry: dict[str, Any]) -> SequenceData:
    """An empty dataset with the shapes of a checkpoint's ``data`` entry, for ``build_model``."""
    try:
        t, i, c = (int(entry[k]) for k in ("seq_len", "input_size", "num_outputs"))
        task = entry.get("task", "classification")
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(
            "the checkpoint's data entry lacks seq_len, input_size or num_outputs"
        ) from None
    return SequenceData(
        name=str(entry.get("name", "")),
        train_x=torch.zeros(0, t, i),
        train_y=torch.zeros(0, dtype=torch.long),
        test_x=torch.zeros(0, t, i),
        test_y=torch.zeros(0, dtype=torch.long),
        num_classes=c,
        task=task,
    )


def _f32_decimal(value: float) -> float:
    """A float32 setting as its shortest decimal (0.1, not 0.10000000149011612)."""
    return float(str(np.float32(value)))


def check_importable(like: dict[str, Any], like_name: str = "the checkpoint") -> None:
    """Raise CheckpointError unless ``like`` is a one-layer LSTM classifier, last readout."""
    config, data = like.get("config", {}), like.get("data", {})
    shape = (config.get("cell"), config.get("layers"), config.get("readout"), data.get("task"))
    if shape != ("lstm", 1, "last", "classification"):
        raise CheckpointError(
            f"{like_name} is not a one-layer LSTM classifier with a last-step readout (cell "
            f"{shape[0]}, {shape[1]} layer(s), readout {shape[2]}, {shape[3]}); import-c "
            "takes the state of a one-LSTM learner, the network train --recipe device "
            "reproduces (read other states with edgefptt.learn.state.read_state)"
        )


def checkpoint_from_state(
    state: LearnerState,
    like: dict[str, Any],
    *,
    source: str,
    like_name: str = "the checkpoint",
) -> dict[str, Any]:
    """A checkpoint payload in the layout ``Trainer.save`` writes, holding a device state.

    ``like`` is the loaded checkpoint the learner was exported from: its data entry and its
    config are kept, the config with algorithm fptt and the state's alpha, beta and c. The
    parameters come in through :func:`edge_to_model` (b to bias_ih, bias_hh zero) and W_bar and
    lam are split the same way (bias_hh's zero, or bias_hh not managed by FPTT under the device
    recipe, as the Trainer does). Optimizer and scheduler states are fresh for that config;
    ``epoch``, ``next_batch``, the epoch's running sums, the sample-order PRNG and the early
    stop are the device's. ``source`` names the state file.
    """
    check_importable(like, like_name)
    if state.version != 1:
        raise StateError(
            f"{source} is the state of a {network_label(state.network)} learner; import-c "
            "takes the state of a one-layer LSTM learner (read others with "
            "edgefptt.learn.state.read_state)"
        )
    data_entry = dict(like["data"])
    theirs = {
        "I": int(data_entry["input_size"]),
        "H": int(like["config"]["hidden"]),
        "C": int(data_entry["num_outputs"]),
    }
    mine = {"I": state.input_size, "H": state.hidden, "C": state.num_classes}
    differing = [
        f"{k} is {mine[k]} in {source}, {theirs[k]} in {like_name}"
        for k in mine
        if mine[k] != theirs[k]
    ]
    if differing:
        raise StateError(
            f"the device state does not fit the checkpoint: {', '.join(differing)}; pass with "
            "--like the checkpoint the learner was exported from"
        )
    settings = {
        **like["config"],
        "algorithm": "fptt",
        "alpha": _f32_decimal(state.alpha),
        "beta": _f32_decimal(state.beta),
        "linear_coef": _f32_decimal(state.linear_coef),
    }
    config = make_config(**settings)
    model = build_model(config, shape_only_data(data_entry))
    edge_to_model(state.params, model)
    if config.recipe == "device":
        one_bias_per_gate(model)  # b_hh is zero already; this freezes it, as the Trainer does
    managed = [name for name, p in model.named_parameters() if p.requires_grad]
    fptt = FPTT(
        trainable(model), alpha=config.alpha, beta=config.beta, linear_coef=config.linear_coef
    )
    w_bar = edge_to_torch_tensors(state.w_bar, model)
    lam = edge_to_torch_tensors(state.lam, model)
    document = fptt.state_dict()
    for index, name in enumerate(managed):
        document["state"][index] = {"w_bar": w_bar[name], "lam": lam[name]}
    fptt.load_state_dict(document)
    optimizer = build_optimizer(config, model)
    scheduler = build_scheduler(config, optimizer)
    in_epoch = state.batches_done > 0
    partial: dict[str, float] = {}
    if in_epoch:
        partial = {
            "loss_sum": state.loss_sum,
            "batches": float(state.batches_done),
            "correct": float(state.correct),
            "seen": float(state.seen),
            "wall_s": 0.0,
        }
    return {
        "config": config.model_dump(),
        "data": data_entry,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "fptt": fptt.state_dict(),
        "fptt_params": managed,
        "oracle": None,  # the device trains without the reference code's oracle loss
        # The device draws an epoch's key when its first batch starts: between epochs the
        # stored key is spent, and the next epoch draws from the PRNG state.
        "order": {
            "prng_state": state.prng_state,
            "key": state.epoch_key if in_epoch else None,
            "key_epoch": state.epochs_completed if in_epoch else -1,
        },
        "early_stop": {
            "patience": state.patience,
            "best": state.best_loss,
            "since_best": state.epochs_since_best,
            "stopped": state.stopped_early,
        },
        "epoch": state.epochs_completed,
        "next_batch": state.batches_done,
        "partial": partial,
        "history": [],
        "source": {
            "device_state": source,
            "sequence": state.sequence,
            "dtype": state.dtype,
            "epochs_completed": state.epochs_completed,
            "batches_done": state.batches_done,
            "stopped_early": state.stopped_early,
            "batch_size": state.batch_size,
            "seq_len": state.seq_len,
            "partitions": state.partitions,
            "lr0": state.lr0,
            "lr_step": [state.step_epochs, state.step_factor],
            "patience": state.patience,
            "seed": state.seed,
        },
    }
