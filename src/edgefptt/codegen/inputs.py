"""What an export embeds: parameters (a checkpoint or seeded) and a batch (a file or seeded).

Sample file format (``--data FILE``): a NumPy ``.npz`` archive with
    x  float array (N, T, I)  (or (N, T) when I = 1), N >= B
    y  integer array (N,)     class indices in [0, C)
The first B samples are embedded.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgefptt.config import NetworkSpec, RunSpec
from edgefptt.errors import CheckpointError, ConfigError, DataError

if TYPE_CHECKING:  # torch is imported only when a checkpoint is read
    from edgefptt.models import SequenceClassifier


def seeded_params(net: NetworkSpec, seed: int = 0) -> dict[str, np.ndarray]:
    """torch's default LSTM initialisation in the edge layout: U(+-1/sqrt(H)), b = b_ih + b_hh."""
    rng = np.random.default_rng(seed)
    shapes = net.param_shapes()
    bound = 1.0 / np.sqrt(net.hidden_size)
    params = {name: rng.uniform(-bound, bound, shape) for name, shape in shapes.items()}
    params["b"] = params["b"] + rng.uniform(-bound, bound, shapes["b"])
    return params


def checkpoint_params(path: Path) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Edge parameters of a trained edgefptt checkpoint, and its sizes {input_size, ...}.

    The parameters are the ones the checkpoint is evaluated with: for a checkpoint with FPTT
    state that is the running average W_bar (of every parameter FPTT manages), otherwise W.
    ``export-c --weights`` and ``train --init`` both read weights through this function, so
    the device and the host start from the same numbers. Only a one-layer LSTM with a
    last-step readout has the edge layout; anything else is a ConfigError that says so.
    """
    from edgefptt.models import SequenceClassifier, model_to_edge
    from edgefptt.train.checkpoint import MODEL_ENTRIES, load_checkpoint

    document = load_checkpoint(Path(path), MODEL_ENTRIES)
    config, data = document.get("config"), document.get("data")
    if not isinstance(config, dict) or not isinstance(data, dict) or "model" not in document:
        raise CheckpointError(f"{path} lacks the model, config or data entries of a checkpoint")
    cell, layers = config.get("cell", "lstm"), int(config.get("layers", 1))
    readout = config.get("readout", "last")
    if cell != "lstm" or layers != 1 or readout != "last":
        raise ConfigError(
            f"{path} holds a {layers}-layer {cell} with a '{readout}' readout; export-c needs one "
            "LSTM layer with a last-step readout (train with --cell lstm --layers 1 --readout last)"
        )
    if data.get("task", "classification") != "classification":
        raise ConfigError(f"{path} was trained for {data.get('task')}; export-c needs a classifier")
    model = SequenceClassifier(
        int(data["input_size"]), int(config["hidden"]), int(data["num_outputs"]), 1, "lstm", "last"
    )
    try:
        model.load_state_dict(_evaluated_weights(document, model, path))
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: the model weights do not fit its config ({exc})") from None
    sizes = {
        "input_size": int(data["input_size"]),
        "hidden_size": int(config["hidden"]),
        "num_classes": int(data["num_outputs"]),
    }
    params = model_to_edge(model)
    for name, values in params.items():
        if not np.all(np.isfinite(values)):
            raise CheckpointError(
                f"{path} holds non-finite weights (NaN or infinity in {name}); export or start "
                "from an earlier checkpoint of the run"
            )
    return params, sizes


def checkpoint_seq_len(path: Path) -> int | None:
    """The sequence length T a checkpoint was trained on (None when its data entry has none)."""
    from edgefptt.train.checkpoint import load_checkpoint

    seq_len = load_checkpoint(Path(path)).get("data", {}).get("seq_len")
    return None if seq_len is None else int(seq_len)


def _evaluated_weights(
    document: dict[str, Any], model: SequenceClassifier, path: Path
) -> dict[str, Any]:
    """The checkpoint's model state with W_bar in place of each FPTT-managed parameter.

    ``fptt_params`` names the managed parameters in the FPTT state's order; checkpoints
    without it managed every parameter, in ``named_parameters`` order.
    """
    weights = dict(document["model"])
    fptt = document.get("fptt")
    if not isinstance(fptt, dict):
        return weights
    names = document.get("fptt_params")
    if names is None:
        names = [name for name, _ in model.named_parameters()]
    try:
        order = [index for group in fptt["param_groups"] for index in group["params"]]
        averages = [fptt["state"][index]["w_bar"] for index in order]
    except (KeyError, TypeError, IndexError):
        raise CheckpointError(f"{path}: its FPTT state is not readable") from None
    if len(averages) != len(names):
        raise CheckpointError(
            f"{path}: its FPTT state holds {len(averages)} tensors for {len(names)} parameters"
        )
    for name, w_bar in zip(names, averages, strict=True):
        weights[name] = w_bar
    return weights


def synthetic_batch(net: NetworkSpec, run: RunSpec, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded batch: x ~ N(0, 1) of shape (B, T, I), labels uniform in [0, C)."""
    rng = np.random.default_rng(seed + 1)
    x = rng.standard_normal((run.batch_size, run.seq_len, net.input_size))
    y = rng.integers(0, net.num_classes, run.batch_size)
    return x, y


def load_batch(path: Path, net: NetworkSpec, run: RunSpec) -> tuple[np.ndarray, np.ndarray]:
    """The first B samples of a ``.npz`` file with ``x`` (N, T, I) and ``y`` (N,)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no sample file at {path}; give an .npz with x (N, T, I) and y (N,)")
    x, y = _read_npz(path)
    t, i, b = run.seq_len, net.input_size, run.batch_size
    if x.ndim == 2 and i == 1:
        x = x[..., None]
    if x.ndim != 3 or x.shape[1:] != (t, i):
        raise DataError(f"{path}: x has shape {x.shape}, the run needs (N, {t}, {i})")
    if y.shape != (x.shape[0],) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(
            f"{path}: y must be N = {x.shape[0]} integer labels (got {y.dtype} {y.shape})"
        )
    if x.shape[0] < b:
        raise DataError(f"{path} has {x.shape[0]} samples; the batch needs B = {b}")
    if not np.issubdtype(x.dtype, np.floating) or not np.all(np.isfinite(x[:b])):
        raise DataError(f"{path}: x must hold finite floats")
    y = y[:b]
    if y.min() < 0 or y.max() >= net.num_classes:
        raise DataError(f"{path}: labels must lie in [0, {net.num_classes})")
    return x[:b].astype(np.float64), y.astype(np.int64)


_NPZ_HINT = "save one with numpy.savez(FILE, x=x, y=y)"


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Arrays ``x`` and ``y`` of an .npz archive; any malformed file is a one-line DataError.

    Each array's header is checked against the bytes its archive member holds before the
    array is read, so a damaged header cannot make numpy allocate what the file does not hold.
    """
    unreadable = f"{path} is not a readable .npz archive"
    try:
        archive = np.load(path, mmap_mode="r", allow_pickle=False)
    except EOFError:
        raise DataError(f"{path} is empty; {_NPZ_HINT}") from None
    except Exception:  # numpy's and zipfile's many errors for damaged bytes; no pickle is loaded
        raise DataError(f"{unreadable}; {_NPZ_HINT}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path} holds one .npy array, not an .npz archive of x and y; {_NPZ_HINT}")
    try:
        with archive:
            if "x" not in archive.files or "y" not in archive.files:
                raise DataError(f"{path} needs arrays 'x' (N, T, I) and 'y' (N,); {_NPZ_HINT}")
            for key in ("x", "y"):
                info = archive.zip.getinfo(f"{key}.npy")
                with archive.zip.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    if version not in ((1, 0), (2, 0)):
                        continue  # numpy checks what it reads below
                    read_header = (
                        np.lib.format.read_array_header_1_0
                        if version == (1, 0)
                        else np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read_header(member)
                if dtype.hasobject or math.prod(shape) * dtype.itemsize > info.file_size:
                    raise DataError(f"{unreadable}: its array {key!r} is damaged; {_NPZ_HINT}")
            return np.asarray(archive["x"]), np.asarray(archive["y"])
    except DataError:
        raise
    except Exception:  # zip, zlib, header syntax, encryption, memory: all damaged bytes
        raise DataError(f"{unreadable} (damaged or truncated); {_NPZ_HINT}") from None
