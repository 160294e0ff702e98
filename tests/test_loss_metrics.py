"""lem_loss and the ten seed metrics (EXECUTION.md §6), on the active backend."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from lems.data_formater import add_config_to_y
from lems.execution import seed_outcome, uniform_allocations
from lems.loss import lem_loss, seed_objective_terms
from lems.metrics import ALL_METRICS

pytestmark = pytest.mark.backend

H = 6


def _targets(batch=32, seed=0):
    """Targets with a strong intraday volume pattern and random prices."""
    rng = np.random.default_rng(seed)
    pattern = np.array([3.0, 1.0, 0.5, 0.5, 1.0, 3.0])
    volume = pattern * rng.lognormal(0, 0.3, size=(batch, H))
    price = np.exp(np.cumsum(0.002 * rng.standard_normal((batch, H)), axis=1))
    return np.stack([volume / volume.sum(1, keepdims=True), price], -1).astype("float32")


def _uniform(batch):
    return np.broadcast_to(uniform_allocations(H), (batch, H, H + 1, 4, 2)).astype("float32")


def _perfect_forecast(y):
    """Allocate each VWAP order by the realised volume shares (TWAP orders uniform)."""
    a = np.repeat(np.repeat(np.repeat(y[:, :, None, None, None, 0], H + 1, 2), 4, 3), 2, 4).copy()
    a[:, :, :, [1, 3]] = 1.0 / H
    return a


def _value(fn, y, a):
    return float(keras.ops.convert_to_numpy(keras.ops.mean(fn(keras.ops.convert_to_tensor(y),
                                                              keras.ops.convert_to_tensor(a)))))


def test_perfect_volume_forecast_beats_uniform_in_tracking_column():
    y = _targets()
    uniform, perfect = _uniform(len(y)), _perfect_forecast(y)
    _, tracking_uniform = seed_objective_terms(keras.ops.convert_to_tensor(y), keras.ops.convert_to_tensor(uniform))
    _, tracking_perfect = seed_objective_terms(keras.ops.convert_to_tensor(y), keras.ops.convert_to_tensor(perfect))
    vwap_types = [0, 2]
    u = keras.ops.convert_to_numpy(tracking_uniform)[:, vwap_types].mean()
    p = keras.ops.convert_to_numpy(tracking_perfect)[:, vwap_types].mean()
    assert p < 0.01 * u
    assert _value(lem_loss, y, perfect) < _value(lem_loss, y, uniform)


def test_loss_accepts_compact_and_tiled_targets():
    y = _targets()
    a = _perfect_forecast(y)
    assert _value(lem_loss, y, a) == pytest.approx(_value(lem_loss, add_config_to_y(y), a), rel=1e-5)


def test_loss_has_gradients_everywhere_it_should():
    if keras.backend.backend() != "jax":
        pytest.skip("gradient check written with jax.grad")
    import jax

    y = _targets(8)
    logits = np.zeros((8, H, H + 1, 4, 2), "float32")

    def loss_of(z):
        return lem_loss(y, jax.nn.softmax(z, axis=1)).mean()

    grad = np.asarray(jax.grad(loss_of)(logits))
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0


def test_metric_values_have_the_documented_meaning():
    y = _targets()
    uniform = _uniform(len(y))
    values = {m.__name__: _value(m, y, uniform) for m in ALL_METRICS}
    # The naive schedule is its own reference: relative risks are ~0 %.
    for name in ("buy_vwap_avg_risk", "sell_vwap_avg_risk", "unsigned_vwap_avg_risk"):
        assert abs(values[name]) < 1e-2
    diff = seed_outcome(uniform.astype(np.float64), y.astype(np.float64)).diff * 100  # percent
    assert values["buy_vwap_avg_imp"] == pytest.approx(-diff[:, :H, 0].mean(), abs=1e-4)
    assert values["sell_twap_avg_imp"] == pytest.approx(diff[:, :H, 3].mean(), abs=1e-4)
    assert values["buy_twap_avg_risk"] == pytest.approx(np.abs(diff[:, :H, 1]).mean(), abs=1e-4)
    assert values["unsigned_twap_avg_risk"] == pytest.approx(np.abs(diff[:, H][:, [1, 3]]).mean(), abs=1e-4)
    # A perfect volume forecast removes almost all VWAP tracking risk: close to -100 %.
    assert _value(ALL_METRICS[8], y, _perfect_forecast(y)) < -90


def test_metrics_are_registered_by_name():
    for metric in ALL_METRICS + [lem_loss]:
        name = keras.saving.get_registered_name(metric)
        assert name == f"lems>{metric.__name__}"
        assert keras.saving.get_registered_object(name) is metric
