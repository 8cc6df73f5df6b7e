"""Recurrent sequence classifiers and their conversion to the edge parameter layout.

The models wrap torch's fused ``nn.LSTM`` / ``nn.GRU`` so host training runs at full speed. The
edge layout (shared by the workload, the golden executor and the generated C) is, per LSTM
layer, one weight W of shape (4H, I+H) over the concatenation [x_t, h_{t-1}] with gate order
i, f, g, o, one bias b = b_ih + b_hh of shape (4H), and the readout W_y (C, H), b_y (C).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

from edgefptt.errors import ConfigError

CellType = Literal["lstm", "gru"]
Readout = Literal["last", "mean"]

RecurrentState = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class SequenceClassifier(nn.Module):
    """A stacked LSTM or GRU over (B, T, I) inputs with a linear readout.

    ``readout="last"`` classifies from the top layer's output at the last step of the chunk it is
    given; ``"mean"`` from the average over that chunk's steps. ``num_outputs`` is the number of
    classes (or 1 for a regression target).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        num_outputs: int,
        num_layers: int = 1,
        cell: CellType = "lstm",
        readout: Readout = "last",
    ) -> None:
        super().__init__()
        for name, value in (
            ("input size", input_size),
            ("hidden size", hidden_size),
            ("number of outputs", num_outputs),
            ("number of layers", num_layers),
        ):
            if value < 1:
                raise ConfigError(f"{name} must be at least 1 (got {value})")
        if cell not in ("lstm", "gru"):
            raise ConfigError(f"unknown cell {cell!r}; choose 'lstm' or 'gru'")
        if readout not in ("last", "mean"):
            raise ConfigError(f"unknown readout {readout!r}; choose 'last' or 'mean'")
        rnn_type = nn.LSTM if cell == "lstm" else nn.GRU
        self.cell = cell
        self.readout_mode = readout
        self.rnn = rnn_type(input_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.readout = nn.Linear(hidden_size, num_outputs)

    @property
    def input_size(self) -> int:
        return self.rnn.input_size

    @property
    def hidden_size(self) -> int:
        return self.rnn.hidden_size

    def forward(
        self, x: torch.Tensor, state: RecurrentState | None = None
    ) -> tuple[torch.Tensor, RecurrentState]:
        """Run over a (B, L, I) chunk from ``state``; return (outputs (B, C), final state)."""
        hidden, new_state = self.rnn(x, state)
        features = hidden[:, -1] if self.readout_mode == "last" else hidden.mean(dim=1)
        return self.readout(features), new_state


def lstm_layer_to_edge(lstm: nn.LSTM, layer: int = 0) -> dict[str, np.ndarray]:
    """One layer of ``nn.LSTM`` as edge arrays {"W": (4H, I+H), "b": (4H,)} (float64 copies)."""
    if not isinstance(lstm, nn.LSTM):
        raise ConfigError("edge layout conversion needs a torch.nn.LSTM")
    if lstm.bidirectional or lstm.proj_size:
        raise ConfigError("edge layout supports unidirectional LSTMs without projections")
    if not 0 <= layer < lstm.num_layers:
        raise ConfigError(f"layer {layer} out of range for an LSTM with {lstm.num_layers} layers")
    w_ih = getattr(lstm, f"weight_ih_l{layer}").detach()
    w_hh = getattr(lstm, f"weight_hh_l{layer}").detach()
    bias = torch.zeros(w_ih.shape[0], dtype=w_ih.dtype)
    if lstm.bias:
        bias = getattr(lstm, f"bias_ih_l{layer}").detach() + getattr(lstm, f"bias_hh_l{layer}")
    weight = torch.cat([w_ih, w_hh], dim=1)
    return {
        "W": weight.to(torch.float64).numpy().copy(),
        "b": bias.detach().to(torch.float64).numpy().copy(),
    }


@torch.no_grad()
def edge_to_lstm_layer(params: dict[str, np.ndarray], lstm: nn.LSTM, layer: int = 0) -> None:
    """Write edge arrays W, b into one layer of ``nn.LSTM`` (b goes to b_ih, b_hh becomes 0)."""
    w_ih = getattr(lstm, f"weight_ih_l{layer}")
    w_hh = getattr(lstm, f"weight_hh_l{layer}")
    inputs = w_ih.shape[1]
    weight = np.asarray(params["W"])
    expected = (w_ih.shape[0], inputs + w_hh.shape[1])
    if weight.shape != expected:
        raise ConfigError(f"edge W has shape {weight.shape}, this LSTM layer needs {expected}")
    w_ih.copy_(torch.as_tensor(weight[:, :inputs]))
    w_hh.copy_(torch.as_tensor(weight[:, inputs:]))
    if lstm.bias:
        getattr(lstm, f"bias_ih_l{layer}").copy_(torch.as_tensor(np.asarray(params["b"])))
        getattr(lstm, f"bias_hh_l{layer}").zero_()


def model_to_edge(model: SequenceClassifier) -> dict[str, np.ndarray]:
    """A one-layer LSTM classifier as the edge parameter dict {W, b, W_y, b_y}."""
    if model.cell != "lstm" or model.rnn.num_layers != 1 or model.readout_mode != "last":
        raise ConfigError(
            "the edge layout covers one LSTM layer with a last-step readout "
            "(train with --cell lstm --layers 1 --readout last)"
        )
    params = lstm_layer_to_edge(model.rnn, 0)
    params["W_y"] = model.readout.weight.detach().to(torch.float64).numpy().copy()
    params["b_y"] = model.readout.bias.detach().to(torch.float64).numpy().copy()
    return params


@torch.no_grad()
def edge_to_model(params: dict[str, np.ndarray], model: SequenceClassifier) -> None:
    """Load an edge parameter dict {W, b, W_y, b_y} into a one-layer LSTM classifier."""
    edge_to_lstm_layer(params, model.rnn, 0)
    w_y = np.asarray(params["W_y"])
    if w_y.shape != tuple(model.readout.weight.shape):
        raise ConfigError(
            f"edge W_y has shape {w_y.shape}, the readout needs {tuple(model.readout.weight.shape)}"
        )
    model.readout.weight.copy_(torch.as_tensor(w_y))
    model.readout.bias.copy_(torch.as_tensor(np.asarray(params["b_y"])))
