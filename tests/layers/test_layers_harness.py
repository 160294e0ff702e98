"""Shared layer-test harness, parametrized over every lems layer and variant.

`run_layer_checks` checks, for one layer: build + call, output shape against the
expected shape and `compute_output_shape`, finite outputs, a get_config/from_config
round trip (same config, JSON-serializable), and a `.keras` save/load of a tiny
functional model giving identical outputs. Runs on whichever KERAS_BACKEND is active.
"""

from __future__ import annotations

import copy
import json
from typing import Callable, Sequence

import keras
import numpy as np
import pytest

from lems.layers import (
    GRN,
    AllocationDecoder,
    TKAN,
    AddAndNorm,
    EmbeddingLayer,
    FusedMLP,
    Gate,
    KANLinear,
    TKANCell,
    VariableSelectionNetwork,
)

# Backend-agnostic: run_tests.py runs `-m backend` tests on PyTorch and TensorFlow too.
pytestmark = pytest.mark.backend

Shape = tuple
Shapes = Shape | list


def _is_multi(shapes: Shapes) -> bool:
    return isinstance(shapes, list)


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) and not _is_shape(value) else [value]


def _is_shape(value) -> bool:
    return isinstance(value, tuple) and all(v is None or isinstance(v, int) for v in value)


def _make_inputs(shapes: Shapes, seed: int = 0):
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(size=s).astype("float32") for s in (shapes if _is_multi(shapes) else [shapes])]
    return arrays if _is_multi(shapes) else arrays[0]


def _strip_build_config(config):
    """Drops nested `build_config` entries (Keras adds them for built sub-layers, e.g. RNN cells)."""
    if isinstance(config, dict):
        return {k: _strip_build_config(v) for k, v in config.items() if k != "build_config"}
    if isinstance(config, (list, tuple)):
        return type(config)(_strip_build_config(v) for v in config)
    return config


def _numpy_outputs(outputs) -> list[np.ndarray]:
    return [keras.ops.convert_to_numpy(o) for o in _as_list(outputs)]


def run_layer_checks(
    layer_factory: Callable[[], keras.layers.Layer],
    input_shapes: Shapes,
    expected_output_shape: Shape | Sequence[Shape],
    tmp_path,
    atol: float = 1e-6,
) -> keras.layers.Layer:
    """Runs the common checks on a layer built by `layer_factory`.

    Args:
        layer_factory: Zero-argument callable returning a fresh, unbuilt layer.
        input_shapes: Full input shape (batch included), or a list of them for
            layers taking several inputs.
        expected_output_shape: Expected output shape, or a sequence of shapes for
            layers returning several tensors.
        tmp_path: Folder for the saved `.keras` file.
        atol: Tolerance of the save/load comparison.

    Returns:
        The eagerly called layer.
    """
    inputs = _make_inputs(input_shapes)
    layer = layer_factory()
    outputs = layer(inputs)
    assert layer.built
    got = [tuple(o.shape) for o in _as_list(outputs)]
    expected = [tuple(s) for s in _as_list(expected_output_shape)]
    assert got == expected
    computed = layer.compute_output_shape(input_shapes)
    assert [tuple(s) for s in _as_list(computed)] == expected
    for array in _numpy_outputs(outputs):
        assert np.all(np.isfinite(array))

    config = layer.get_config()
    json.dumps(keras.saving.serialize_keras_object(layer))
    clone = type(layer).from_config(copy.deepcopy(config))
    assert _strip_build_config(clone.get_config()) == _strip_build_config(config)

    shapes = input_shapes if _is_multi(input_shapes) else [input_shapes]
    model_inputs = [keras.Input(batch_shape=(None,) + tuple(s[1:])) for s in shapes]
    model_outputs = layer_factory()(model_inputs if _is_multi(input_shapes) else model_inputs[0])
    model = keras.Model(model_inputs if _is_multi(input_shapes) else model_inputs[0], model_outputs)
    before = _numpy_outputs(model(inputs))
    path = tmp_path / "layer_model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    after = _numpy_outputs(loaded(inputs))
    assert len(loaded.weights) == len(model.weights)
    for a, b in zip(before, after):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, atol=atol, rtol=0)
    return layer


CASES = {
    "embedding": (lambda: EmbeddingLayer(4), (2, 5, 3), (2, 5, 3, 4)),
    "embedding_relu": (lambda: EmbeddingLayer(4, activation="relu"), (2, 5, 3), (2, 5, 3, 4)),
    "gate": (lambda: Gate(5), (2, 4, 3), (2, 4, 5)),
    "add_and_norm": (lambda: AddAndNorm(), [(2, 4, 5), (2, 4, 5)], (2, 4, 5)),
    "grn_projected_skip": (lambda: GRN(8, dropout=0.1), (2, 5, 6), (2, 5, 8)),
    "grn_identity_skip": (lambda: GRN(6), (2, 5, 6), (2, 5, 6)),
    "grn_output_units": (lambda: GRN(8, output_units=3), (2, 5, 6), (2, 5, 3)),
    "grn_context_static": (lambda: GRN(8, use_context=True), [(2, 5, 6), (2, 3)], (2, 5, 8)),
    "vsn": (lambda: VariableSelectionNetwork(8), (2, 5, 3, 4), (2, 5, 8)),
    "vsn_per_variable_grn": (
        lambda: VariableSelectionNetwork(8, per_variable_grn=True, per_variable_units=4, dropout=0.1),
        (2, 5, 3, 4),
        (2, 5, 8),
    ),
    "vsn_return_weights": (
        lambda: VariableSelectionNetwork(8, return_weights=True),
        (2, 5, 3, 4),
        [(2, 5, 8), (2, 5, 3)],
    ),
    "kan_rbf": (lambda: KANLinear(6, basis="rbf"), (2, 5, 4), (2, 5, 6)),
    "kan_bspline": (lambda: KANLinear(6, basis="bspline", grid_size=4, spline_order=3), (3, 4), (3, 6)),
    "tkan_sequences": (lambda: TKAN(6, return_sequences=True), (2, 7, 3), (2, 7, 6)),
    "tkan_last": (lambda: TKAN(6), (2, 7, 3), (2, 6)),
    "tkan_custom_subkans": (
        lambda: TKAN(5, sub_kan_configs=[3, {"units": 4, "basis": "bspline", "grid_size": 3}, None]),
        (2, 6, 3),
        (2, 5),
    ),
    "rnn_of_tkan_cell": (lambda: keras.layers.RNN(TKANCell(5), return_sequences=True), (2, 6, 3), (2, 6, 5)),
    "fused_mlp_branched": (lambda: FusedMLP([8, 8], 3, n_models=2, n_fused=4), (2, 2, 4, 5), (2, 2, 4, 3)),
    "fused_mlp_shared": (
        lambda: FusedMLP([8], 3, n_models=2, n_fused=4, output_activation="softplus"),
        (2, 5),
        (2, 2, 4, 3),
    ),
    "fused_mlp_no_hidden": (lambda: FusedMLP([], 2, n_models=1, n_fused=3), (2, 5), (2, 1, 3, 2)),
    "allocation_decoder": (
        lambda: AllocationDecoder(4, hidden_dim=6, head_hidden_dims=(5,)),
        [(2, 4, 7), (2, 3), (2, 3), (2, 1), (2, 1)],
        (2, 4, 5, 4, 2),
    ),
    "allocation_decoder_rule_symmetric": (
        lambda: AllocationDecoder(4, hidden_dim=6, head_hidden_dims=(5,), flexible_prior="rule", symmetric_flexible=True),
        [(2, 4, 7), (2, 3), (2, 3), (2, 1), (2, 1)],
        (2, 4, 5, 4, 2),
    ),
    "allocation_decoder_volume_forecast": (
        lambda: AllocationDecoder(4, hidden_dim=6, head_hidden_dims=(5,), volume_forecast=True),
        [(2, 4, 7), (2, 3), (2, 3), (2, 1), (2, 1), (2, 3), (2, 9), (2, 3)],
        (2, 4, 5, 4, 2),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_layer_harness(case, tmp_path):
    factory, input_shapes, expected = CASES[case]
    run_layer_checks(factory, input_shapes, expected, tmp_path)
