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

from edgefptt.config import MAX_LAYERS, NetworkSpec, RunSpec, layer_suffix
from edgefptt.errors import CheckpointError, ConfigError, DataError

if TYPE_CHECKING:  # torch is imported only when a checkpoint is read
    from edgefptt.models import SequenceClassifier


def seeded_params(net: NetworkSpec, seed: int = 0) -> dict[str, np.ndarray]:
    """torch's default initialisation in the edge layout: U(+-1/sqrt(H)) with each layer's H
    (the readout's: the top layer's), b = b_ih + b_hh (a GRU's n rows: b_in alone)."""
    rng = np.random.default_rng(seed)
    shapes = net.param_shapes()
    bounds = {"W_y": net.hidden_size, "b_y": net.hidden_size}
    for layer, spec in enumerate(net.stack):
        bounds.update(dict.fromkeys(net.layer_params(layer), spec.hidden_size))
    params = {
        name: rng.uniform(-1.0 / np.sqrt(bounds[name]), 1.0 / np.sqrt(bounds[name]), shape)
        for name, shape in shapes.items()
    }
    for layer, spec in enumerate(net.stack):
        name, bound = f"b{layer_suffix(layer)}", 1.0 / np.sqrt(spec.hidden_size)
        summed = 2 * spec.hidden_size if spec.cell == "gru" else 4 * spec.hidden_size
        params[name] = params[name].copy()
        params[name][:summed] += rng.uniform(-bound, bound, summed)
    return params


def checkpoint_params(path: Path) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Edge parameters of a trained one-layer LSTM checkpoint, and its sizes {input_size, ...}.

    The parameters are the ones the checkpoint is evaluated with: for a checkpoint with FPTT
    state that is the running average W_bar (of every parameter FPTT manages), otherwise W.
    ``train --init`` reads weights through this function (``export-c --weights`` through
    :func:`checkpoint_network_params`, the same numbers), so the device and the host start
    from the same numbers. Anything but one LSTM layer with a last-step readout is a
    ConfigError that says so.
    """
    params, sizes = checkpoint_network_params(path)
    cell, layers = sizes.pop("cell"), sizes.pop("num_layers")
    if cell != "lstm" or layers != 1:
        raise ConfigError(
            f"{path} holds a {layers}-layer {cell}; --init needs one LSTM layer with a "
            "last-step readout (train with --cell lstm --layers 1 --readout last)"
        )
    return params, sizes


def checkpoint_network_params(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Edge parameters of a trained checkpoint of any stack of LSTM or GRU layers with a
    last-step readout, and its sizes {input_size, hidden_size, num_classes, cell, num_layers}.

    Evaluated weights as :func:`checkpoint_params` says (W_bar where FPTT kept one); a 'mean'
    readout or a regression task is a ConfigError.
    """
    from edgefptt.models import SequenceClassifier
    from edgefptt.train.checkpoint import MODEL_ENTRIES, load_checkpoint

    document = load_checkpoint(Path(path), MODEL_ENTRIES)
    config, data = document.get("config"), document.get("data")
    if not isinstance(config, dict) or not isinstance(data, dict) or "model" not in document:
        raise CheckpointError(f"{path} lacks the model, config or data entries of a checkpoint")
    cell, layers = config.get("cell", "lstm"), config.get("layers", 1)
    readout = config.get("readout", "last")
    if not isinstance(layers, int) or not 1 <= layers <= MAX_LAYERS:
        raise CheckpointError(
            f"{path}: its config names {layers!r} layers; a checkpoint of edgefptt train has 1 "
            f"to {MAX_LAYERS}"
        )
    if cell not in ("lstm", "gru") or readout != "last":
        raise ConfigError(
            f"{path} holds a {layers}-layer {cell} with a '{readout}' readout; export-c needs "
            "LSTM or GRU layers with a last-step readout (train with --readout last)"
        )
    if data.get("task", "classification") != "classification":
        raise ConfigError(f"{path} was trained for {data.get('task')}; export-c needs a classifier")
    model = SequenceClassifier(
        int(data["input_size"]),
        int(config["hidden"]),
        int(data["num_outputs"]),
        layers,
        cell,
        "last",
    )
    try:
        model.load_state_dict(_evaluated_weights(document, model, path))
    except RuntimeError as exc:
        raise CheckpointError(f"{path}: the model weights do not fit its config ({exc})") from None
    sizes: dict[str, Any] = {
        "input_size": int(data["input_size"]),
        "hidden_size": int(config["hidden"]),
        "num_classes": int(data["num_outputs"]),
        "cell": cell,
        "num_layers": layers,
    }
    params = module_to_edge(model)
    for name, values in params.items():
        if not np.all(np.isfinite(values)):
            raise CheckpointError(
                f"{path} holds non-finite weights (NaN or infinity in {name}); export or start "
                "from an earlier checkpoint of the run"
            )
    return params, sizes


def module_to_edge(model: SequenceClassifier) -> dict[str, np.ndarray]:
    """A classifier of stacked LSTM or GRU layers (last-step readout) in the edge layout
    (docs/workload.md), float64 copies: layer k's W{_lk} over [x, h] and b{_lk}; a GRU's b folds
    b_hr and b_hz into b_ir and b_iz (the n rows: b_in alone) and keeps b_hn{_lk} apart; then
    W_y, b_y."""
    import torch

    from edgefptt.models import lstm_layer_to_edge

    rnn = model.rnn
    if model.readout_mode != "last" or rnn.bidirectional or getattr(rnn, "proj_size", 0):
        raise ConfigError(
            "the edge layout covers unidirectional LSTM or GRU layers with a last-step readout"
        )
    params: dict[str, np.ndarray] = {}
    for layer in range(rnn.num_layers):
        suffix = layer_suffix(layer)
        if model.cell == "lstm":
            edge = lstm_layer_to_edge(rnn, layer)
            params[f"W{suffix}"], params[f"b{suffix}"] = edge["W"], edge["b"]
            continue
        w_ih, w_hh = (getattr(rnn, f"weight_{k}_l{layer}").detach().double() for k in ("ih", "hh"))
        h = w_hh.shape[1]
        b_ih = _bias(rnn, "ih", layer, 3 * h)
        b_hh = _bias(rnn, "hh", layer, 3 * h)
        b = b_ih.clone()
        b[: 2 * h] += b_hh[: 2 * h]
        params[f"W{suffix}"] = torch_numpy(torch.cat([w_ih, w_hh], dim=1))
        params[f"b{suffix}"] = torch_numpy(b)
        params[f"b_hn{suffix}"] = torch_numpy(b_hh[2 * h :])
    params["W_y"] = torch_numpy(model.readout.weight.detach().double())
    params["b_y"] = torch_numpy(model.readout.bias.detach().double())
    return params


def edge_to_module(params: dict[str, np.ndarray], model: SequenceClassifier) -> None:
    """Load edge parameters into a classifier of stacked LSTM or GRU layers (the reverse of
    :func:`module_to_edge`): b goes to b_ih; b_hh becomes 0 but for a GRU's n rows, b_hn."""
    import torch

    from edgefptt.models import edge_to_lstm_layer

    rnn = model.rnn
    with torch.no_grad():
        for layer in range(rnn.num_layers):
            suffix = layer_suffix(layer)
            if model.cell == "lstm":
                edge = {"W": params[f"W{suffix}"], "b": params[f"b{suffix}"]}
                edge_to_lstm_layer(edge, rnn, layer)
                continue
            w_ih, w_hh = (getattr(rnn, f"weight_{k}_l{layer}") for k in ("ih", "hh"))
            inputs, h = w_ih.shape[1], w_hh.shape[1]
            weight = np.asarray(params[f"W{suffix}"])
            if weight.shape != (3 * h, inputs + h):
                raise ConfigError(
                    f"edge W{suffix} has shape {weight.shape}, this GRU layer needs "
                    f"{(3 * h, inputs + h)}"
                )
            w_ih.copy_(torch.as_tensor(weight[:, :inputs]))
            w_hh.copy_(torch.as_tensor(weight[:, inputs:]))
            if rnn.bias:
                getattr(rnn, f"bias_ih_l{layer}").copy_(torch.as_tensor(params[f"b{suffix}"]))
                b_hh = getattr(rnn, f"bias_hh_l{layer}")
                b_hh.zero_()
                b_hh[2 * h :] = torch.as_tensor(np.asarray(params[f"b_hn{suffix}"]))
        model.readout.weight.copy_(torch.as_tensor(np.asarray(params["W_y"])))
        model.readout.bias.copy_(torch.as_tensor(np.asarray(params["b_y"])))


def _bias(rnn: Any, kind: str, layer: int, size: int) -> Any:
    """One of a layer's torch biases as float64 (zeros for a layer built without biases)."""
    import torch

    if not rnn.bias:
        return torch.zeros(size, dtype=torch.float64)
    return getattr(rnn, f"bias_{kind}_l{layer}").detach().double()


def torch_numpy(tensor: Any) -> np.ndarray:
    """A float64 NumPy copy of a tensor."""
    return tensor.detach().double().numpy().copy()


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
