"""lem_loss, the cost-aware loss (make_lem_loss) and the ten seed metrics (EXECUTION.md §6), per backend."""

from __future__ import annotations

from functools import cache

import keras
import numpy as np
import pytest

from lems.backtest import backtest, cost_targets, seed_targets
from lems.baselines import (
    TWAP,
    expected_bar_volume,
    lookback_half_spread,
    lookback_volatility,
)
from lems.data.synthetic import synthetic_market
from lems.data.windows import make_windows
from lems.data_formater import add_config_to_y
from lems.execution import (
    ExecutionConditions,
    LinearPermanentImpact,
    NoCost,
    OrderSize,
    SpreadCost,
    SquareRootImpact,
    seed_outcome,
    uniform_allocations,
)
from lems.loss import (
    TARGET_CHANNELS,
    CostAwareLemLoss,
    lem_loss,
    make_lem_loss,
    seed_objective_terms,
)
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


# ------------------------------------------------------------------------------------------------
# Cost-aware loss (issue 11, item 4)
# ------------------------------------------------------------------------------------------------
SQRT_SPREAD = SquareRootImpact(1.0) + SpreadCost()


def _tensor(x):
    return keras.ops.convert_to_tensor(np.asarray(x, dtype="float32"))


def _np(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def _extended(y, sigma=0.004, half_spread=2e-4, ratio=1.0):
    """Extended targets (B, H, 5) with the same cost inputs for every window."""
    extra = np.broadcast_to(np.array([sigma, half_spread, ratio], dtype=y.dtype), y.shape[:2] + (3,))
    return np.concatenate([y, extra], axis=-1)


def _random_allocations(batch, seed=1):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(H), size=(batch, H + 1, 4, 2)).transpose(0, 4, 1, 2, 3).astype("float32")


def _front_loaded(batch):
    """Everything in the first bar, for every order."""
    a = np.zeros((batch, H, H + 1, 4, 2), "float32")
    a[:, 0] = 1.0
    return a


def _seed_formula(y, a):
    """lem_loss as the seed defines it (EXECUTION.md §6), written out: the golden reference."""
    diff = seed_outcome(a, y, smooth=True).diff * 100.0
    flexible = keras.ops.take(diff[:, :H], [0, 1], axis=2) - keras.ops.take(diff[:, :H], [2, 3], axis=2)
    terms = [keras.ops.reshape(keras.ops.softplus(flexible), (len(y), -1)),
             keras.ops.reshape(keras.ops.softplus(keras.ops.abs(diff[:, H])), (len(y), -1))]
    return keras.ops.mean(keras.ops.concatenate(terms, axis=1), axis=1)


def test_lem_loss_is_unchanged_bit_for_bit_and_the_free_cost_loss_equals_it():
    y = _targets(16)
    a, ext = _tensor(_random_allocations(16)), _tensor(_extended(y))
    reference = _np(_seed_formula(_tensor(y), a))
    np.testing.assert_array_equal(_np(lem_loss(_tensor(y), a)), reference)
    np.testing.assert_array_equal(_np(lem_loss(ext, a)), reference)  # extended targets: channels 0-1 read
    for targets in (_tensor(y), ext):
        np.testing.assert_array_equal(_np(make_lem_loss().call(targets, a)), reference)


def test_spread_cost_shifts_every_net_diff_by_the_hand_computed_amount():
    y = _targets(8)
    a, bps = _tensor(_random_allocations(8)), 3.0
    free = _np(seed_outcome(a, _tensor(y), smooth=True).diff)
    net = _np(make_lem_loss(SpreadCost(bps), order_participation=0.05).execution(_tensor(_extended(y)), a)
              .outcome.diff)
    side = np.array([1.0, 1.0, -1.0, -1.0]).reshape(1, 1, 4, 1)
    np.testing.assert_allclose(net, (1 + free) * (1 + side * bps * 1e-4) - 1, atol=1e-6)  # float32; shift 3e-4


def test_impact_penalises_concentrated_schedules_more_as_the_order_grows():
    y = _extended(_targets(16))
    front, uniform = _tensor(_front_loaded(16)), _tensor(_uniform(16))

    def gap(rho):  # loss(all in one bar) - loss(uniform)
        loss = make_lem_loss(SquareRootImpact(1.0), order_participation=rho)
        return float(keras.ops.mean(loss.call(_tensor(y), front) - loss.call(_tensor(y), uniform)))

    gaps = [gap(rho) for rho in (0.0, 0.01, 0.05, 0.2)]
    free = float(keras.ops.mean(lem_loss(_tensor(y), front) - lem_loss(_tensor(y), uniform)))
    assert gaps[0] == pytest.approx(free, abs=1e-6)  # zero size: no impact
    assert gaps[1] < gaps[2] < gaps[3]


def test_volume_ratio_scales_the_participation():
    y, a = _targets(8), _tensor(_random_allocations(8))
    doubled = make_lem_loss(SQRT_SPREAD, order_participation=0.1).call(_tensor(_extended(y, ratio=2.0)), a)
    direct = make_lem_loss(SQRT_SPREAD, order_participation=0.2).call(_tensor(_extended(y, ratio=1.0)), a)
    np.testing.assert_allclose(_np(doubled), _np(direct), rtol=1e-5)


def test_risk_term_and_unfilled_penalty_add_what_they_document():
    y, a = _tensor(_extended(_targets(8))), _tensor(_random_allocations(8))
    base = make_lem_loss(SQRT_SPREAD, order_participation=0.05)
    risky = make_lem_loss(SQRT_SPREAD, order_participation=0.05, risk_aversion=2.5)
    diff = _np(base.execution(y, a).outcome.diff) * 100.0
    np.testing.assert_allclose(_np(risky.call(y, a)) - _np(base.call(y, a)),
                               2.5 * (diff**2).reshape(8, -1).mean(axis=1), rtol=1e-4)
    capped = make_lem_loss(SQRT_SPREAD, order_participation=0.5, max_participation=0.2, unfilled_penalty=7.0)
    free_of_penalty = make_lem_loss(SQRT_SPREAD, order_participation=0.5, max_participation=0.2,
                                    unfilled_penalty=0.0)
    front = _tensor(_front_loaded(8))
    unfilled = _np(capped.execution(y, front).unfilled).reshape(8, -1).mean(axis=1)
    assert unfilled.min() > 0.1  # the cap leaves part of a one-bar order unfilled
    np.testing.assert_allclose(_np(capped.call(y, front)) - _np(free_of_penalty.call(y, front)), 7.0 * unfilled,
                               rtol=1e-4)


@pytest.mark.parametrize("kwargs", [{"order_participation": -0.1}, {"risk_aversion": float("nan")},
                                    {"max_participation": 1.5}, {"max_participation": 0.0},
                                    {"cost_model": "sqrt"}, {"unfilled_penalty": -1.0}, {"max_rate": 0.0}])
def test_cost_loss_rejects_bad_settings(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs)).split("_")[0]):
        make_lem_loss(**kwargs)


def test_cost_loss_needs_extended_targets_when_the_model_reads_sigma():
    y, a = _tensor(_targets(4)), _tensor(_uniform(4))
    with pytest.raises(ValueError, match="extended targets"):
        make_lem_loss(SquareRootImpact(1.0), order_participation=0.05).call(y, a)
    make_lem_loss(SpreadCost(2.0), order_participation=0.05).call(y, a)  # a fixed spread needs nothing more
    with pytest.raises(ValueError, match="channels"):
        lem_loss(_tensor(np.zeros((4, H, 3), "float32")), a)


def _toy_model():
    """A tiny Keras model with the seed layout's output (softmax over the step axis)."""
    inputs = keras.Input((H,))
    logits = keras.layers.Reshape((H, H + 1, 4, 2))(keras.layers.Dense(H * (H + 1) * 8)(inputs))
    return keras.Model(inputs, keras.layers.Softmax(axis=1)(logits))


def test_cost_loss_is_serializable_and_a_saved_model_reloads_with_it(tmp_path):
    loss = make_lem_loss(SQRT_SPREAD + LinearPermanentImpact(0.1), order_participation=0.05, risk_aversion=0.5,
                         max_participation=0.3, max_rate=0.5)
    assert keras.saving.get_registered_name(CostAwareLemLoss) == "lems>CostAwareLemLoss"
    rebuilt = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(loss))
    assert rebuilt.get_config() == loss.get_config() and rebuilt.cost_model == loss.cost_model
    model = _toy_model()
    model.compile(optimizer="adam", loss=loss)
    model.optimizer.build(model.trainable_variables)  # saved as if trained (no optimizer-mismatch warning)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.loss, CostAwareLemLoss) and loaded.loss.get_config() == loss.get_config()
    y, a = _tensor(_extended(_targets(4))), _tensor(_random_allocations(4))
    np.testing.assert_array_equal(_np(loaded.loss.call(y, a)), _np(loss.call(y, a)))


def test_gradients_flow_through_the_cost_loss():
    from test_costs import _grad

    y = _tensor(_extended(_targets(8)))
    logits = np.log(_random_allocations(8))

    def objective(loss):
        return lambda z: keras.ops.mean(loss.call(y, keras.ops.softmax(z, axis=1)))

    costly = make_lem_loss(SQRT_SPREAD + LinearPermanentImpact(0.2), order_participation=0.1, risk_aversion=1.0,
                           max_participation=0.5)
    grad = _grad(objective(costly), logits)
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0
    assert np.abs(grad - _grad(objective(make_lem_loss()), logits)).max() > 1e-4  # the costs shape the gradient


@cache
def _windows():
    return make_windows(synthetic_market(n_assets=2, n_days=12, seed=3), 8, H, stride=7)


def test_cost_targets_carry_the_backtests_causal_inputs():
    win = _windows()
    ext = cost_targets(win)
    assert ext.shape == (len(win), H, len(TARGET_CHANNELS))
    np.testing.assert_array_equal(ext[..., :2], seed_targets(win))
    expected = np.stack([lookback_volatility(win), lookback_half_spread(win),
                         expected_bar_volume(win) * H / win.volumes.sum(axis=1)], axis=-1)
    np.testing.assert_allclose(ext[:, 0, 2:], expected, rtol=1e-12)
    assert np.all(ext[:, :, 2:] == ext[:, :1, 2:])  # one value per window
    np.testing.assert_array_equal(cost_targets(win, half_spread=1e-4)[..., 3], 1e-4)
    with pytest.raises(ValueError, match="half_spread"):
        cost_targets(win, half_spread=-1.0)


def test_the_loss_costs_a_window_as_the_costed_backtest_does():
    win = _windows()
    conditions = ExecutionConditions(OrderSize(participation=0.05), SQRT_SPREAD)
    frame = backtest(TWAP(), win, conditions=conditions)
    allocations = TWAP().allocate(win)
    loss = make_lem_loss(SQRT_SPREAD, order_participation=0.05)
    diff = loss.execution(cost_targets(win), allocations).outcome.diff  # numpy float64 in, numpy out
    np.testing.assert_allclose(diff.ravel(), frame["diff"].to_numpy(), rtol=0, atol=1e-12)
    assert np.abs(frame["diff"].to_numpy() - backtest(TWAP(), win)["diff"].to_numpy()).min() > 0  # costs counted
    assert isinstance(loss.cost_model, type(SQRT_SPREAD)) and not isinstance(loss.cost_model, NoCost)
