"""Which tensors a learner state image holds, for any network (docs/learner.md).

Version 1 is the image of the seed paper's network (one trainable LSTM layer and a trainable
readout): W, b, W_y, b_y, then their W_bar, then their lambda. Version 2 serves every other
network (GRU, stacked, frozen layers): the header is followed by the network's layer list as
32-bit words, then every parameter in the edge layout order, then W_bar and lambda of the
trainable ones only (a frozen tensor has no FPTT state; it is stored once so that an image
alone describes the model the device holds).
"""

from __future__ import annotations

import math

from pydantic import ValidationError

from edgefptt.config import LayerSpec, NetworkSpec

CELL_CODES: dict[str, int] = {"lstm": 0, "gru": 1}
CELL_NAMES: dict[int, str] = {code: name for name, code in CELL_CODES.items()}


class LayoutError(ValueError):
    """A layer list in an image that describes no valid network."""


def state_version(net: NetworkSpec) -> int:
    """1 for the seed paper's network, 2 for every other."""
    return 1 if net.is_single_lstm else 2


def network_words(net: NetworkSpec) -> list[int]:
    """The layer list a version-2 image carries after its header (none for version 1):
    count, then (cell code, hidden size, trainable) per layer from the input up, then whether
    the readout is trainable."""
    if state_version(net) == 1:
        return []
    words = [len(net.stack)]
    for layer in net.stack:
        words += [CELL_CODES[layer.cell], layer.hidden_size, int(layer.trainable)]
    return [*words, int(net.readout_trainable)]


def words_length(count: int) -> int:
    """Words of the layer list of a ``count``-layer network."""
    return 2 + 3 * count


def build_network(**fields: object) -> NetworkSpec:
    """A NetworkSpec, or LayoutError with the first validation problem on one line."""
    try:
        return NetworkSpec(**fields)  # type: ignore[arg-type]
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(part) for part in err.get("loc", ()))
        text = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        raise LayoutError(f"{where}: {text}" if where else text) from None


def network_from_words(
    input_size: int, hidden: int, num_classes: int, words: list[int]
) -> NetworkSpec:
    """The network an image describes: I, H, C from its header and its layer list (empty for
    version 1). Raises LayoutError (one line) when they describe no valid network."""
    sizes = {"input_size": input_size, "hidden_size": hidden, "num_classes": num_classes}
    if not words:
        return build_network(**sizes)
    count = words[0]
    if len(words) != words_length(count):
        raise LayoutError(f"a layer list of {count} layers has {len(words)} words")
    layers = []
    for k in range(count):
        cell, size, flag = words[1 + 3 * k : 4 + 3 * k]
        if cell not in CELL_NAMES or flag not in (0, 1):
            raise LayoutError(f"layer {k} has cell code {cell} and trainable flag {flag}")
        layer = {"cell": CELL_NAMES[cell], "hidden_size": size, "trainable": bool(flag)}
        try:
            layers.append(LayerSpec(**layer))  # type: ignore[arg-type]
        except ValidationError as exc:
            raise LayoutError(f"layer {k}: {exc.errors()[0].get('msg', 'invalid')}") from None
    if words[-1] not in (0, 1):
        raise LayoutError(f"the readout's trainable flag is {words[-1]}")
    return build_network(**sizes, layers=tuple(layers), readout_trainable=bool(words[-1]))


HEADER_BYTES = 136
CRC_BYTES = 4
SECTOR_BYTES = 4096
ELEMENT_BYTES: dict[str, int] = {"fp32": 4, "bf16": 2}


def network_image_bytes(net: NetworkSpec, dtype: str) -> int:
    """One image of ``net``'s learner: header, layer list, tensors and CRC (140 + 3 P e for
    the seed paper's network)."""
    words = len(network_words(net))
    return HEADER_BYTES + 4 * words + image_elements(net) * ELEMENT_BYTES[dtype] + CRC_BYTES


def network_slot_bytes(net: NetworkSpec, dtype: str) -> int:
    """One slot of ``net``'s state region: the image rounded up to a multiple of 4096 bytes."""
    return -(-network_image_bytes(net, dtype) // SECTOR_BYTES) * SECTOR_BYTES


def state_tensors(net: NetworkSpec) -> tuple[dict[str, tuple[int, ...]], tuple[str, ...]]:
    """Every parameter's shape (layout order) and the names with W_bar and lambda."""
    return net.param_shapes(), net.trainable_params()


def image_elements(net: NetworkSpec) -> int:
    """Values in an image's tensors: every parameter once, the trainable ones twice more."""
    shapes, trainable = state_tensors(net)
    return net.num_params + 2 * sum(math.prod(shapes[name]) for name in trainable)


__all__ = [
    "CELL_CODES",
    "LayoutError",
    "build_network",
    "image_elements",
    "network_from_words",
    "network_image_bytes",
    "network_slot_bytes",
    "network_words",
    "state_tensors",
    "state_version",
    "words_length",
]
