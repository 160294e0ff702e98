"""Long horizons: training on sampled min-duration columns (compact layouts) and an H = 390 run end to end."""

from __future__ import annotations

import itertools

import keras
import numpy as np
import pytest

from lems.data.synthetic import synthetic_market
from lems.data.windows import make_windows
from lems.data_formater import add_config_to_X
from lems.execution import NoCost, check_allocations, seed_columns, seed_outcome
from lems.loss import lem_loss, make_lem_loss
from lems.metrics import ALL_METRICS
from lems.models import LargeExecutionModel

LOOKBACK = 16
SMALL = dict(lookback=LOOKBACK, hidden_size=8, hidden_rnn_layer=1, num_heads=2, num_embedding=4,
             fused_mlp_hidden_dim=8)


def small_model(n_ahead: int, seed: int = 0, **overrides) -> LargeExecutionModel:
    keras.utils.set_random_seed(seed)
    return LargeExecutionModel(n_ahead=n_ahead, **{**SMALL, **overrides})


def hourly_windows(n_ahead: int, n: int):
    market = synthetic_market(n_assets=1, n_days=20, calendar="24/7", seed=5)
    return make_windows(market, LOOKBACK, n_ahead).subset(np.arange(n))


def perturb_decoder(model: LargeExecutionModel, seed: int = 0) -> None:
    """Give every decoder weight a random value (untrained heads start at zero and would hide column mix-ups)."""
    rng = np.random.default_rng(seed)
    for weight in model.decoder.weights:
        if weight.name != "base_curve":
            weight.assign(rng.normal(0, 0.2, size=weight.shape).astype("float32"))


@pytest.mark.backend
def test_decoder_columns_equal_the_same_columns_of_the_full_output():
    win = hourly_windows(12, 6)
    model = small_model(12)
    rates = (np.full((6, 1), 0.02, np.float32), np.full((6, 1), 0.3, np.float32))
    model(add_config_to_X(win.X, *[r[0, 0] for r in rates]))
    perturb_decoder(model)
    context, returns, log_volumes, prior, volume = model.decoder_inputs(win.X.astype("float32"))
    inputs = [context, returns, log_volumes, *rates, prior, *volume]
    full = keras.ops.convert_to_numpy(model.decoder(inputs))
    columns = np.array([0, 3, 7, 11, 12], np.int32)
    compact = keras.ops.convert_to_numpy(model.decoder(inputs, columns=keras.ops.convert_to_tensor(columns)))
    assert compact.shape == (6, 12, 5, 4, 2)
    np.testing.assert_allclose(compact, full[:, :, columns], rtol=1e-5, atol=1e-6)
    check_allocations(full, 0.02, 0.3)


def _all_stratified_draws(horizon: int, k: int):
    bounds = (np.arange(k + 1) * horizon) // k
    strata = [range(bounds[i], bounds[i + 1]) for i in range(k)]
    sizes = np.diff(bounds).astype(np.float32)
    for draw in itertools.product(*strata):
        yield np.array([*draw, horizon], np.int32), np.concatenate([sizes, [1.0]]).astype(np.float32)


@pytest.mark.parametrize("loss", [lem_loss, make_lem_loss(NoCost(), risk_aversion=0.3)], ids=["lem", "risk"])
def test_column_weighted_loss_is_an_unbiased_estimate_of_the_full_loss(loss):
    """Averaged over every stratified draw (strata of unequal sizes), the compact loss equals the full one."""
    horizon, k = 7, 3
    rng = np.random.default_rng(0)
    allocations = rng.dirichlet(np.ones(horizon), size=(2, horizon + 1, 4, 2)).transpose(0, 4, 1, 2, 3)
    y = np.stack([rng.dirichlet(np.ones(horizon), size=2), 1 + rng.normal(0, 0.01, (2, horizon))], axis=-1)
    allocations, y = allocations.astype("float32"), y.astype("float32")
    full = keras.ops.convert_to_numpy(loss(y, allocations))
    estimates, probabilities = [], []
    for index, weight in _all_stratified_draws(horizon, k):
        with seed_columns(index, weight):
            estimates.append(keras.ops.convert_to_numpy(loss(y, allocations[:, :, index])))
        probabilities.append(np.prod(1.0 / weight[:-1]))  # one column per stratum, uniformly
    expected = np.tensordot(np.array(probabilities), np.array(estimates), axes=1)
    assert np.isclose(sum(probabilities), 1.0)
    np.testing.assert_allclose(expected, full, rtol=1e-5)
    assert not np.allclose(estimates[0], full, rtol=1e-3)  # a single draw is an estimate, not the value


def test_compact_layout_outside_its_scope_is_rejected():
    allocations = np.full((1, 4, 3, 4, 2), 0.25)
    with pytest.raises(ValueError, match="compact layout"):
        seed_outcome(allocations, np.ones((1, 4, 2)))


def test_sample_columns_are_stratified_deterministic_and_vary_with_the_batch():
    model = small_model(100, train_columns=8)
    assert model.n_sampled_columns == 8 and small_model(40).n_sampled_columns is None
    assert small_model(390).n_sampled_columns == 32 and small_model(12, train_columns=50).n_sampled_columns is None
    rng = np.random.default_rng(1)
    draws = []
    for _ in range(20):
        x = rng.normal(size=(4, LOOKBACK + 99, 12)).astype("float32")
        index, weight = model.sample_columns(x)
        index = keras.ops.convert_to_numpy(index)
        again = keras.ops.convert_to_numpy(model.sample_columns(x).index)
        np.testing.assert_array_equal(index, again)
        bounds = (np.arange(9) * 100) // 8
        assert np.all((index[:-1] >= bounds[:-1]) & (index[:-1] < bounds[1:])) and index[-1] == 100
        np.testing.assert_array_equal(weight, np.concatenate([np.diff(bounds), [1]]))
        draws.append(index)
    assert len({tuple(d) for d in draws}) > 10
    assert np.unique(np.concatenate([d[:-1] for d in draws])).size > 60  # the draws cover most columns


@pytest.mark.backend
def test_training_step_scores_sampled_columns_and_evaluation_all_of_them():
    win = hourly_windows(24, 8)
    model = small_model(24, train_columns=5)
    model.compile(optimizer="adam", loss=lem_loss, metrics=ALL_METRICS)
    x = add_config_to_X(win.X, 0.0, 1.0)
    assert model(x, training=True).shape == (8, 24, 6, 4, 2)
    assert model(x).shape == (8, 24, 25, 4, 2)
    history = model.fit(x, win.y, batch_size=4, epochs=1, verbose=0, shuffle=False)
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    custom = small_model(24, train_columns=5)
    custom.compile(optimizer="adam", loss=lambda y, p: lem_loss(y, p))  # unknown loss: full layout
    assert not custom._scores_sampled_columns()


@pytest.mark.slow
def test_h390_on_minute_bars_trains_a_step_and_backtests():
    """The issue's long horizon, small: a session of 1-minute bars, one training step, a backtest within limits."""
    from lems.backtest import backtest
    from lems.baselines import TWAP, ModelPolicy, StaticVWAP

    horizon = 390
    market = synthetic_market(n_assets=1, n_days=4, calendar="24/7", bar_minutes=1, seed=0)
    win = make_windows(market, LOOKBACK, horizon, stride=97, n_days_profile=1)
    assert len(win) >= 8
    model = small_model(horizon)
    model.compile(optimizer="adam", loss=lem_loss)
    history = model.fit(add_config_to_X(win.X[:4], 0.0, 1.0), win.y[:4], batch_size=4, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    test = win.subset(np.arange(4, 8))
    frame = backtest({"model": ModelPolicy(model), "static_vwap": StaticVWAP(), "twap": TWAP()}, test)
    assert set(frame["policy"].astype(str)) == {"model", "static_vwap", "twap"}
    assert np.isfinite(frame["diff"]).all()
    allocations = ModelPolicy(model).allocate(test, 0.0, 0.01)
    check_allocations(allocations, 0.0, 0.01)
