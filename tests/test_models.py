"""Models and the edge parameter layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgefptt import ConfigError
from edgefptt.models import (
    SequenceClassifier,
    edge_to_model,
    lstm_layer_to_edge,
    model_to_edge,
)


def _edge_forward(params: dict[str, np.ndarray], x: np.ndarray) -> np.ndarray:
    """The edge layout's LSTM written out in NumPy (float64), gate order i, f, g, o."""
    hidden = params["W"].shape[0] // 4
    batch, steps, _ = x.shape
    h = np.zeros((batch, hidden))
    c = np.zeros((batch, hidden))
    sigmoid = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    for t in range(steps):
        z = np.concatenate([x[:, t], h], axis=1) @ params["W"].T + params["b"]
        i, f, g, o = np.split(z, 4, axis=1)
        c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
        h = sigmoid(o) * np.tanh(c)
    return h @ params["W_y"].T + params["b_y"]


def test_edge_layout_shapes_and_bias_sum() -> None:
    torch.manual_seed(0)
    model = SequenceClassifier(3, 5, 4)
    params = model_to_edge(model)
    assert params["W"].shape == (20, 8) and params["b"].shape == (20,)
    assert params["W_y"].shape == (4, 5) and params["b_y"].shape == (4,)
    expected_bias = (model.rnn.bias_ih_l0 + model.rnn.bias_hh_l0).detach().double().numpy()
    np.testing.assert_allclose(params["b"], expected_bias)
    np.testing.assert_array_equal(params["W"][:, :3], model.rnn.weight_ih_l0.detach().double())


def test_edge_layout_gives_the_torch_outputs() -> None:
    torch.manual_seed(1)
    model = SequenceClassifier(2, 6, 3).double()
    x = torch.randn(4, 9, 2, dtype=torch.float64)
    expected, _ = model(x)
    got = _edge_forward(model_to_edge(model), x.numpy())
    np.testing.assert_allclose(got, expected.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_round_trip_through_the_edge_layout() -> None:
    torch.manual_seed(2)
    source = SequenceClassifier(2, 6, 3).double()
    target = SequenceClassifier(2, 6, 3).double()
    edge_to_model(model_to_edge(source), target)
    x = torch.randn(3, 7, 2, dtype=torch.float64)
    torch.testing.assert_close(target(x)[0], source(x)[0], rtol=1e-12, atol=1e-12)
    again = model_to_edge(target)
    for key, value in model_to_edge(source).items():
        np.testing.assert_allclose(again[key], value, rtol=0, atol=1e-15)
    assert not target.rnn.bias_hh_l0.any()


def test_multi_layer_lstm_layers_convert() -> None:
    lstm = torch.nn.LSTM(3, 4, num_layers=2)
    assert lstm_layer_to_edge(lstm, 1)["W"].shape == (16, 8)
    with pytest.raises(ConfigError):
        lstm_layer_to_edge(lstm, 2)


def test_edge_layout_refuses_what_it_cannot_hold() -> None:
    with pytest.raises(ConfigError):
        model_to_edge(SequenceClassifier(1, 4, 2, cell="gru"))
    with pytest.raises(ConfigError):
        edge_to_model({"W": np.zeros((4, 4)), "b": np.zeros(4)}, SequenceClassifier(1, 4, 2))


def test_gru_classifier_runs() -> None:
    model = SequenceClassifier(2, 5, 3, num_layers=2, cell="gru", readout="mean")
    outputs, state = model(torch.randn(4, 6, 2))
    assert outputs.shape == (4, 3) and state.shape == (2, 4, 5)
