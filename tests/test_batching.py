"""lems.batching: fixed batch shapes (no recompilation), with results identical to unpadded batches."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from lems.batching import PaddedBatches, bucket_size, is_array_data, pad_to
from lems.data.synthetic import synthetic_market
from lems.data.windows import make_windows
from lems.data_formater import add_config_to_X
from lems.loss import lem_loss
from lems.models import LargeExecutionModel
from lems.utils import backend_name

pytestmark = pytest.mark.backend

TINY = dict(lookback=8, n_ahead=3, hidden_size=8, hidden_rnn_layer=1, num_heads=2, num_embedding=4,
            fused_mlp_hidden_dim=8)


@pytest.fixture(scope="module")
def data():
    windows = make_windows(synthetic_market(n_assets=1, n_days=6, calendar="24/7", seed=5), 8, 3)
    return add_config_to_X(windows.X[:45], 0.0, 1.0), windows.y[:45]


def _model(seed: int = 0) -> LargeExecutionModel:
    keras.utils.set_random_seed(seed)
    model = LargeExecutionModel(**TINY)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss=lem_loss)
    return model


class _TraceCounter:
    """Counts calls of a model's ``train_step`` / ``predict_step``; installed before the first call (Keras jits
    the bound method), on JAX it counts traces: one per compiled input shape."""

    def __init__(self, model, name: str) -> None:
        self.calls = 0
        original = getattr(model, name)

        def counted(*args, **kwargs):
            self.calls += 1
            return original(*args, **kwargs)

        setattr(model, name, counted)


def test_bucket_size():
    assert [bucket_size(n) for n in (1, 2, 3, 5, 8, 9)] == [1, 2, 4, 8, 8, 16]
    assert [bucket_size(n, 64) for n in (1, 7, 33, 64, 65, 130)] == [1, 8, 64, 64, 128, 192]
    with pytest.raises(ValueError):
        bucket_size(0)


def test_padded_batches_have_one_shape_and_the_unpadded_mean_loss(data):
    x, y = data
    batches = PaddedBatches(x, y, 16)
    assert len(batches) == 3
    last_x, last_y, last_w = batches[2]
    assert all(a.shape[0] == 16 for a in last_x) and last_y.shape[0] == 16
    assert np.count_nonzero(last_w) == 45 - 32
    model = _model()
    pred = np.asarray(model.predict_on_batch(last_x))
    per_row = np.asarray(lem_loss(last_y, pred))
    weighted_mean = float(np.sum(per_row * last_w) / 16)  # Keras' sum_over_batch_size reduction
    np.testing.assert_allclose(weighted_mean, per_row[:13].mean(), rtol=1e-5)
    with pytest.raises(IndexError):
        batches[3]
    small_x, small_y, small_w = PaddedBatches([a[:5] for a in x], y[:5], 16)[0]  # fewer rows than a batch
    assert small_y.shape[0] == 16 and np.count_nonzero(small_w) == 5
    full = PaddedBatches(x, y, 16, shuffle=True, seed=1, drop_remainder=True)
    assert len(full) == 2 and all(np.all(full[i][2] == 1.0) and full[i][1].shape[0] == 16 for i in range(2))
    assert PaddedBatches([a[:5] for a in x], y[:5], 16, drop_remainder=True)[0][1].shape[0] == 5


def test_pad_to_repeats_real_rows_and_detects_array_data(data):
    x, _ = data
    padded = pad_to(x, 50)
    assert is_array_data(x) and not is_array_data(None) and not is_array_data([x[0], x[1][:3]])
    np.testing.assert_array_equal(padded[0][45:], np.repeat(x[0][:1], 5, axis=0))


def test_predict_equals_the_unpadded_forward(data):
    x, _ = data
    model = _model()
    plain = np.asarray(keras.Model.predict(model, [a[:7] for a in x], batch_size=7, verbose=0))
    np.testing.assert_allclose(np.asarray(model.predict([a[:7] for a in x], batch_size=4, verbose=0)), plain,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(model.predict_on_batch([a[:7] for a in x])), plain, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(backend_name() != "jax", reason="counts JAX traces (other backends run steps eagerly)")
def test_no_recompilation_for_partial_batches_and_new_inference_sizes(data):
    x, y = data
    model = _model()
    train, predict = _TraceCounter(model, "train_step"), _TraceCounter(model, "predict_step")  # before jit
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # 45 rows: 16 + 16 + 13 (padded)
    traced = train.calls
    model.fit([a[:37] for a in x], y[:37], batch_size=16, epochs=2, verbose=0, validation_data=(x, y))
    model.fit([a[:9] for a in x], y[:9], batch_size=16, epochs=1, verbose=0)  # fewer rows than one batch
    assert traced >= 1 and train.calls == traced, "a partial training batch recompiled the train step"
    model.predict_on_batch([a[:5] for a in x])
    model.predict([a[:30] for a in x], batch_size=16, verbose=0)
    traced = predict.calls
    model.predict_on_batch([a[:7] for a in x])  # bucket 8, compiled by the batch of 5
    model.predict([a[:21] for a in x], batch_size=16, verbose=0)  # 16 + 5 -> 16 + 16
    assert traced >= 1 and predict.calls == traced, "a new inference batch size recompiled the forward pass"
