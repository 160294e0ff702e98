"""Behavioural tests of the lems layers: causality, arithmetic, constraints, initializers."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from lems.layers import (
    GRN,
    TKAN,
    ClipConstraint,
    EmbeddingLayer,
    EqualInitializer,
    FusedGlorotUniform,
    FusedMLP,
    KANLinear,
    PositiveSumToOneConstraint,
    TKANCell,
    VariableSelectionNetwork,
)
from lems.layers.tkan import normalize_sub_kan_configs

# Backend-agnostic: run_tests.py runs `-m backend` tests on PyTorch and TensorFlow too.
pytestmark = pytest.mark.backend

ops = keras.ops

# Shapes mirror tests/layers/test_layers_harness.py: JAX compiles every op (and every
# random draw) once per new shape, so reusing shapes keeps the suite fast.
SUB_KANS = [3, {"units": 4, "basis": "bspline", "grid_size": 3}, None]


def _np(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------- TKAN


def test_tkan_is_causal():
    layer = TKAN(5, return_sequences=True, sub_kan_configs=SUB_KANS)
    x = _rng().normal(size=(2, 6, 3)).astype("float32")
    base = _np(layer(x))
    for k in (1, 4):  # each eager JAX scan recompiles: keep the number of calls small
        perturbed = x.copy()
        perturbed[:, k:] += _rng(k + 1).normal(scale=5.0, size=perturbed[:, k:].shape).astype("float32")
        out = _np(layer(perturbed))
        np.testing.assert_array_equal(out[:, :k], base[:, :k])
        assert not np.allclose(out[:, k], base[:, k])


def test_tkan_last_output_equals_last_step_of_sequence():
    seq = TKAN(6, return_sequences=True)
    x = _rng(1).normal(size=(2, 7, 3)).astype("float32")
    full = _np(seq(x))
    last = TKAN(6, return_sequences=False)
    last.build(x.shape)
    last.set_weights(seq.get_weights())
    np.testing.assert_allclose(_np(last(x)), full[:, -1], atol=1e-6)


def test_tkan_precomputed_projection_matches_per_step_cell():
    layer = TKAN(5, return_sequences=True, sub_kan_configs=SUB_KANS)
    rnn = keras.layers.RNN(TKANCell(5, sub_kan_configs=SUB_KANS), return_sequences=True)
    x = _rng(2).normal(size=(2, 6, 3)).astype("float32")
    layer.build(x.shape)
    rnn.build(x.shape)
    rnn.cell.set_weights(layer.cell.get_weights())
    np.testing.assert_allclose(_np(layer(x)), _np(rnn(x)), atol=1e-5)


def test_tkan_step_matches_numpy_reference():
    """One step of TKANCell against a direct numpy transcription of EXECUTION.md §7."""
    cell = TKANCell(5, sub_kan_configs=SUB_KANS)
    x = _rng(3).normal(size=(2, 3)).astype("float32")
    states = [_rng(10 + i).normal(size=(2, s)).astype("float32") for i, s in enumerate(cell.state_size)]
    cell.build((None, 3))
    for w in (*cell.betas, cell.output_bias):  # non-trivial alpha/beta/biases
        w.assign(_rng(20).normal(size=w.shape).astype("float32"))
    h_new, new_states = cell(x, states)

    def sig(v):
        return 1.0 / (1.0 + np.exp(-v))

    u = 5
    proj = x @ _np(cell.kernel) + _np(cell.bias)
    gates = proj[:, : 3 * u] + states[0] @ _np(cell.recurrent_kernel)
    c = sig(gates[:, :u]) * states[1] + sig(gates[:, u : 2 * u]) * np.tanh(gates[:, 2 * u :])
    phis, offset = [], 3 * u
    for k, kan in enumerate(cell.sub_kans):
        width = cell.sub_units[k]
        z = proj[:, offset : offset + width] + states[2 + k] @ _np(cell.sub_recurrent_kernels[k])
        offset += width
        phi = _np(kan(z))
        phis.append(phi)
        s_new = _np(cell.alphas[k]) * phi + _np(cell.betas[k]) * states[2 + k]
        np.testing.assert_allclose(_np(new_states[2 + k]), s_new, atol=1e-5)
    o = sig(np.concatenate(phis, -1) @ _np(cell.output_kernel) + _np(cell.output_bias))
    np.testing.assert_allclose(_np(new_states[1]), c, atol=1e-5)
    np.testing.assert_allclose(_np(h_new), o * np.tanh(c), atol=1e-5)


def test_tkan_trains_compiled_and_matches_eager():
    """fit() runs jit-compiled (JAX jit / tf.function; eager torch) and predict() matches the eager call."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((7, 3))
    outputs = keras.layers.Dense(1)(TKAN(6)(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    x = _rng(4).normal(size=(16, 7, 3)).astype("float32")
    y = x[:, -1, :1]
    before = [w.copy() for w in model.get_weights()]
    history = model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert any(not np.allclose(a, b) for a, b in zip(before, model.get_weights()))
    np.testing.assert_allclose(model.predict(x, verbose=0), _np(model(x)), atol=1e-5)


def test_sub_kan_config_resolution():
    assert normalize_sub_kan_configs(7, None) == [{"units": 4}, {"units": 4}]
    assert normalize_sub_kan_configs(6, [2, None, {"basis": "bspline"}]) == [
        {"units": 2},
        {"units": 2},
        {"basis": "bspline", "units": 2},
    ]
    cell = TKANCell(6, sub_kan_configs=[2, {"units": 3}])
    assert cell.state_size == [6, 6, 2, 3]
    assert cell.projection_dim == 3 * 6 + 5


@pytest.mark.parametrize("bad", [[], ["x"], [0], 3])
def test_tkan_rejects_bad_sub_kan_configs(bad):
    with pytest.raises(ValueError):
        TKAN(4, sub_kan_configs=bad)


# --------------------------------------------------------------------------- KAN


def test_bspline_basis_is_a_partition_of_unity():
    layer = KANLinear(2, basis="bspline", grid_size=5, spline_order=3, grid_range=(-2, 2))
    x = np.linspace(-1.999, 1.999, 101, dtype="float32")[:, None]
    basis = _np(layer.basis_functions(ops.convert_to_tensor(x)))
    assert basis.shape == (101, 1, 8)
    assert np.all(basis >= -1e-7)
    np.testing.assert_allclose(basis.sum(-1), 1.0, atol=1e-5)


def test_rbf_basis_peaks_at_centres():
    layer = KANLinear(2, basis="rbf", grid_size=5, grid_range=(-2, 2))
    centres = np.linspace(-2, 2, 5, dtype="float32")[:, None]
    basis = _np(layer.basis_functions(ops.convert_to_tensor(centres)))[:, 0, :]
    np.testing.assert_allclose(np.diag(basis), 1.0, atol=1e-6)
    np.testing.assert_allclose(basis[0, 1], np.exp(-1.0), atol=1e-6)


@pytest.mark.parametrize("basis", ["rbf", "bspline"])
def test_kan_linear_matches_numpy_reference(basis):
    layer = KANLinear(3, basis=basis, grid_size=4, spline_order=2, grid_range=(-1.5, 1.5))
    x = _rng(5).normal(size=(4, 2)).astype("float32")
    y = _np(layer(x))
    bias = _rng(6).normal(size=(3,)).astype("float32")
    layer.bias.assign(bias)
    y = _np(layer(x))
    silu = x / (1.0 + np.exp(-x))
    if basis == "rbf":
        centres = np.linspace(-1.5, 1.5, 4)
        expanded = np.exp(-(((x[..., None] - centres) / 1.0) ** 2))
    else:
        expanded = _numpy_bspline(x, np.arange(-2, 7) * 0.75 - 1.5, order=2)
    ref = silu @ _np(layer.base_kernel) + expanded.reshape(4, -1) @ _np(layer.spline_kernel) + bias
    np.testing.assert_allclose(y, ref, atol=1e-5)


def _numpy_bspline(x: np.ndarray, knots: np.ndarray, order: int) -> np.ndarray:
    """Textbook Cox–de Boor with general denominators (reference for the uniform fast path)."""
    x = x[..., None]
    b = ((x >= knots[:-1]) & (x < knots[1:])).astype("float64")
    for p in range(1, order + 1):
        left = (x - knots[: -(p + 1)]) / (knots[p:-1] - knots[: -(p + 1)])
        right = (knots[p + 1 :] - x) / (knots[p + 1 :] - knots[1:-p])
        b = left * b[..., :-1] + right * b[..., 1:]
    return b


@pytest.mark.parametrize(
    "kwargs",
    [
        {"basis": "chebyshev"},
        {"grid_range": (2, -2)},
        {"grid_size": 0},
        {"basis": "rbf", "grid_size": 1},
        {"spline_order": -1},
        {"units": 0},
    ],
)
def test_kan_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        KANLinear(**{"units": 2, **kwargs})


# --------------------------------------------------------------------------- per-bar layers


def test_embedding_is_a_per_feature_affine_map():
    layer = EmbeddingLayer(4)
    x = _rng(7).normal(size=(2, 5, 3)).astype("float32")
    layer(x)
    layer.bias.assign(_rng(8).normal(size=(3, 4)).astype("float32"))
    ref = x[..., None] * _np(layer.kernel) + _np(layer.bias)
    np.testing.assert_allclose(_np(layer(x)), ref, atol=1e-6)


def test_vsn_weights_are_a_softmax_over_variables():
    layer = VariableSelectionNetwork(8, return_weights=True)
    x = _rng(9).normal(size=(2, 5, 3, 4)).astype("float32")
    out, weights = (_np(v) for v in layer(x))
    np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
    transformed = np.einsum("btfe,feh->btfh", x, _np(layer.kernel)) + _np(layer.bias)
    np.testing.assert_allclose(out, np.einsum("btf,btfh->bth", weights, transformed), atol=1e-5)


@pytest.mark.parametrize(
    "factory, shape",
    [
        (lambda: EmbeddingLayer(4, activation="relu"), (2, 5, 3)),
        (lambda: GRN(8), (2, 5, 6)),
        (lambda: VariableSelectionNetwork(8, per_variable_grn=True, per_variable_units=4), (2, 5, 3, 4)),
    ],
)
def test_per_bar_layers_do_not_mix_bars(factory, shape):
    layer = factory()
    x = _rng(10).normal(size=shape).astype("float32")
    base = _np(layer(x))
    perturbed = x.copy()
    perturbed[:, 3] += 3.0
    out = _np(layer(perturbed))
    keep = [t for t in range(shape[1]) if t != 3]
    np.testing.assert_array_equal(out[:, keep], base[:, keep])
    assert not np.allclose(out[:, 3], base[:, 3])


def test_grn_identity_skip_has_no_projection():
    layer = GRN(6)
    layer(np.zeros((2, 5, 6), "float32"))
    assert layer.skip_dense is None
    projected = GRN(8)
    projected(np.zeros((2, 5, 6), "float32"))
    assert projected.skip_dense is not None


# --------------------------------------------------------------------------- FusedMLP


def test_fused_mlp_branches_and_layers_are_independent_draws():
    layer = FusedMLP([8, 8, 8], 3, n_models=2, n_fused=4)
    layer.build((None, 2, 4, 5))
    kernels = [_np(k) for k in layer.kernels]
    for kernel in kernels:  # every (model, head) branch is its own draw
        flat = kernel.reshape(8, -1)
        assert all(not np.allclose(flat[i], flat[j]) for i in range(8) for j in range(i + 1, 8))
    assert kernels[1].shape == kernels[2].shape == (2, 4, 8, 8)
    assert not np.allclose(kernels[1], kernels[2])  # same-shaped layers are not copies


def test_fused_mlp_shared_input_equals_tiled_input():
    layer = FusedMLP([8], 3, n_models=2, n_fused=4)
    x = _rng(11).normal(size=(2, 5)).astype("float32")
    shared = _np(layer(x))
    tiled = np.broadcast_to(x[:, None, None, :], (2, 2, 4, 5)).copy()
    np.testing.assert_allclose(_np(layer(tiled)), shared, atol=1e-5)


def test_fused_mlp_branch_matches_a_plain_mlp():
    layer = FusedMLP([8, 8], 3, n_models=2, n_fused=4, activation="tanh")
    x = _rng(12).normal(size=(2, 2, 4, 5)).astype("float32")
    layer.build(x.shape)
    for bias in layer.biases:
        bias.assign(_rng(13).normal(size=bias.shape).astype("float32"))
    out = _np(layer(x))
    ref = x[:, 1, 2]
    for index, (kernel, bias) in enumerate(zip(layer.kernels, layer.biases)):
        ref = ref @ _np(kernel)[1, 2] + _np(bias)[1, 2]
        ref = ref if index == 2 else np.tanh(ref)
    np.testing.assert_allclose(out[:, 1, 2], ref, atol=1e-5)


def test_fused_mlp_rejects_wrong_branch_shape():
    layer = FusedMLP([4], 2, n_models=2, n_fused=3)
    with pytest.raises(ValueError):
        layer(np.zeros((1, 3, 2, 5), "float32"))
    with pytest.raises(ValueError):
        FusedMLP(4, 2, n_models=2, n_fused=3)


# --------------------------------------------------------------------------- constraints / initializers


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_positive_sum_to_one_constraint(axis):
    constraint = PositiveSumToOneConstraint(axis=axis)
    w = _rng(13).normal(size=(4, 5, 3)).astype("float32")
    out = _np(constraint(ops.convert_to_tensor(w)))
    assert np.all(out > 0)
    np.testing.assert_allclose(out.sum(axis=axis), 1.0, atol=1e-5)
    restored = keras.constraints.deserialize(keras.constraints.serialize(constraint))
    assert isinstance(restored, PositiveSumToOneConstraint)
    assert restored.axis == axis
    np.testing.assert_allclose(_np(restored(ops.convert_to_tensor(w))), out, atol=1e-7)


def test_constraint_survives_layer_save(tmp_path):
    inputs = keras.Input((3,))
    dense = keras.layers.Dense(4, kernel_constraint=PositiveSumToOneConstraint(axis=0))
    model = keras.Model(inputs, dense(inputs))
    model.save(tmp_path / "c.keras")
    loaded = keras.models.load_model(tmp_path / "c.keras")
    restored = loaded.layers[-1].kernel_constraint
    assert isinstance(restored, PositiveSumToOneConstraint) and restored.axis == 0


def test_clip_constraint():
    constraint = ClipConstraint(-0.5, 0.25)
    out = _np(constraint(ops.convert_to_tensor(np.array([-2.0, 0.0, 1.0], "float32"))))
    np.testing.assert_allclose(out, [-0.5, 0.0, 0.25])
    restored = keras.constraints.deserialize(keras.constraints.serialize(constraint))
    assert (restored.min_value, restored.max_value) == (-0.5, 0.25)
    with pytest.raises(ValueError):
        ClipConstraint(1.0, 0.0)
    with pytest.raises(ValueError):
        PositiveSumToOneConstraint(epsilon=0.0)


@pytest.mark.parametrize("axis", [0, -1])
def test_equal_initializer(axis):
    init = EqualInitializer(axis=axis)
    values = _np(init((4, 5)))
    np.testing.assert_allclose(values, 1.0 / (4, 5)[axis])
    np.testing.assert_allclose(values.sum(axis=axis), 1.0, atol=1e-6)
    restored = keras.initializers.get(keras.initializers.serialize(init))
    assert isinstance(restored, EqualInitializer) and restored.axis == axis


def test_fused_glorot_uniform_independent_branches_and_scale():
    init = FusedGlorotUniform(seed=3)
    values = _np(init((2, 4, 5, 8)))
    limit = np.sqrt(6.0 / (5 + 8))
    assert np.all(np.abs(values) <= limit)
    assert values.std() > 0.8 * limit / np.sqrt(3.0)  # per-branch Dense scale, not shrunk by the branch count
    flat = values.reshape(8, -1)
    assert all(not np.allclose(flat[i], flat[j]) for i in range(8) for j in range(i + 1, 8))
    np.testing.assert_array_equal(_np(FusedGlorotUniform(seed=3)((2, 4, 5, 8))), values)
    restored = keras.initializers.get(keras.initializers.serialize(init))
    assert isinstance(restored, FusedGlorotUniform) and restored.seed == 3


@pytest.mark.parametrize("seed", [None, 7])
def test_seeded_or_not_weights_are_never_copies(seed):
    """Keras initializers repeat their values per instance; every lems weight must still be its own draw."""
    init = keras.initializers.GlorotUniform(seed=seed)
    vsn = VariableSelectionNetwork(8, kernel_initializer=init)
    vsn.build((2, 5, 3, 4))
    kernel = _np(vsn.kernel)
    assert not np.allclose(kernel[0], kernel[1])
    grn = GRN(8, kernel_initializer=init)
    grn.build((2, 5, 8))
    assert not np.allclose(_np(grn.hidden_dense.kernel), _np(grn.intermediate_dense.kernel))
    fused = FusedMLP([8, 8, 8], 3, n_models=2, n_fused=4, kernel_initializer=FusedGlorotUniform(seed=seed))
    fused.build((2, 5))
    assert not np.allclose(_np(fused.kernels[1]), _np(fused.kernels[2]))
