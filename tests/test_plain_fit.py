"""The seed's own recipe, plain ``model.fit`` with ``lem_loss`` (issue 25): the gradient paths that keep the
flexible columns' terms from pulling the fixed-duration schedule (``flexible_trains_forecast``,
``loss_trains_tracking``), on a market with persistent volume shocks. Plain Keras calls only."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from lems.data.synthetic import synthetic_market
from lems.data.windows import make_windows
from lems.data_formater import add_config_to_X
from lems.loss import lem_loss
from lems.models import LargeExecutionModel

pytestmark = pytest.mark.backend

LOOKBACK, HORIZON = 16, 4


@pytest.fixture(scope="module")
def shocked():
    """Train / validation / test windows (time split 60 / 20 / 20) of a market with persistent volume shocks."""
    bars = synthetic_market(n_assets=2, n_days=45, calendar="24/7", seed=11, volume_shock_sigma=1.5,
                            volume_shock_decay=0.85)
    windows = make_windows(bars, LOOKBACK, HORIZON, stride=1)
    origins = windows.origin
    train, rest = windows.split(origins[int(len(windows) * 0.6)])
    val, test = rest.split(rest.origin[len(rest) // 2])
    return train, val, test


# ------------------------------------------------------------------------------------------------
# The gradient paths that keep the two families apart (one SGD step, every backend)
# ------------------------------------------------------------------------------------------------
def _step_changes(windows, loss, **switches) -> dict[str, bool]:
    """Which groups of variables one SGD step on ``loss`` moves (auxiliary training losses off)."""
    keras.utils.set_random_seed(3)
    model = LargeExecutionModel(lookback=LOOKBACK, n_ahead=HORIZON, hidden_size=8, hidden_rnn_layer=1, num_heads=2,
                                num_embedding=4, fused_mlp_hidden_dim=8, tracking_loss_weight=0.0,
                                forecast_loss_weight=0.0, **switches)
    model.compile(optimizer=keras.optimizers.SGD(1.0), loss=loss)
    x, y = add_config_to_X(windows.X[:64], 0.0, 1.0), windows.y[:64]
    model.build([(None,) + x[0].shape[1:], (None, 1), (None, 1)])
    groups = {"forecast": model.decoder.forecast.weights, "tracking_head": model.decoder.tracking_head.weights,
              "flexible_head": model.decoder.head.weights, "encoder": model.grn.weights}
    before = {k: [np.array(keras.ops.convert_to_numpy(v)) for v in vs] for k, vs in groups.items()}
    model.train_on_batch(x, y)
    return {k: any(not np.array_equal(b, keras.ops.convert_to_numpy(v)) for b, v in zip(before[k], vs))
            for k, vs in groups.items()}


def _flexible_terms_only(y_true, y_pred):
    from lems.loss import seed_objective_terms

    flexible, _ = seed_objective_terms(y_true, y_pred)
    return keras.ops.mean(keras.ops.reshape(keras.ops.softplus(flexible), (keras.ops.shape(y_pred)[0], -1)), axis=1)


def test_flexible_terms_train_the_forecast_only_when_allowed(shocked):
    train, _, _ = shocked
    shared = _step_changes(train, _flexible_terms_only, flexible_trains_forecast=True)
    apart = _step_changes(train, _flexible_terms_only, flexible_trains_forecast=False)
    assert shared["forecast"] and shared["flexible_head"]
    assert not apart["forecast"] and not apart["encoder"] and not apart["tracking_head"]
    assert apart["flexible_head"]


def test_the_compiled_loss_trains_the_fixed_column_only_when_allowed(shocked):
    train, _, _ = shocked
    shared = _step_changes(train, lem_loss, loss_trains_tracking=True)
    apart = _step_changes(train, lem_loss, loss_trains_tracking=False)
    assert shared["tracking_head"] and not apart["tracking_head"]
    assert apart["flexible_head"]
