"""Transient (propagator) impact, issue 24 item 1: impact with memory, calibrated so that the same order costs the
same whatever the bar length.

Stated tolerance of the bar-length invariance: 1e-9 relative for a constant participation rate (the bar averages
are exact integrals of the kernel, so only float64 rounding remains); per-bar volatility scales as
sqrt(bar length).
"""

from __future__ import annotations

import keras
import numpy as np
import pytest

from lems.evaluation.cost_parameters import almgren_chriss_parameters
from lems.execution import (
    CompositeCost,
    CostInputs,
    LinearPermanentImpact,
    NoCost,
    SpreadCost,
    SquareRootImpact,
    TransientImpact,
    cost_adjusted_prices,
    seed_execution,
    uniform_allocations,
)
from lems.loss import cost_model_from_config, cost_model_to_config
from lems.training.config import TrainConfig
from test_costs import _grad as backend_grad

#: Relative tolerance of the 1 / 12 / 60-bar invariance (constant participation rate).
INVARIANCE_RTOL = 1e-9
SIGMA_HOUR = 0.006  # 60 bps over the hour
RHO = 0.05  # 5 % of the hour's volume
KERNELS = [{"kernel": "power", "resilience_minutes": 1.0},
           {"kernel": "power", "resilience_minutes": 10.0, "beta": 0.3},
           {"kernel": "exponential", "resilience_minutes": 20.0},
           {"kernel": "exponential", "resilience_minutes": 2.0}]


def _hour_cost(model_of, bars: int, rho: float = RHO) -> float:
    """Mean impact cost [bps] of a uniform one-hour buy at participation ``rho`` executed as ``bars`` bars."""
    model = model_of(60.0 / bars)
    prices = np.ones((1, bars))
    costed = cost_adjusted_prices(prices, np.full((1, bars), rho), model, side=1, sigma=SIGMA_HOUR / np.sqrt(bars))
    return float((costed.fill.mean() - 1.0) * 1e4)


@pytest.mark.parametrize("params", KERNELS)
def test_same_hour_costs_the_same_as_1_12_or_60_bars(params):
    costs = [_hour_cost(lambda m: TransientImpact(bar_minutes=m, **params), n) for n in (1, 12, 60)]
    np.testing.assert_allclose(costs, costs[0], rtol=INVARIANCE_RTOL)
    model = TransientImpact(bar_minutes=1.0, **params)
    assert costs[0] == pytest.approx(model.uniform_cost(RHO, SIGMA_HOUR / np.sqrt(60), 60) * 1e4, rel=1e-9)
    peak = model.peak_impact(RHO, SIGMA_HOUR / np.sqrt(60), 60) * 1e4
    assert peak == pytest.approx(SIGMA_HOUR * np.sqrt(RHO) * 1e4)  # 13.4 bps: the square-root law at the horizon
    assert 0.5 * peak < costs[0] < peak  # the mean cost is below the peak, above half of it


def test_the_memoryless_law_depends_on_the_bar_length():
    costs = [_hour_cost(lambda m: SquareRootImpact(), n) for n in (1, 12, 60)]
    np.testing.assert_allclose(costs, [13.416, 3.873, 1.732], atol=1e-3)  # the numbers of issue 24


def test_peak_impact_at_the_horizon_is_the_square_root_law():
    """The price displacement at the end of a uniform order (the next bar's inherited impact, in the limit of a
    short bar) is ``coef sigma_T sqrt(rho)``: within 1 % with 10-second bars (the next bar averages some decay)."""
    bars, model = 360, TransientImpact(bar_minutes=60.0 / 360, coef=0.7)
    part = np.concatenate([np.full(bars, RHO), [0.0]])[None]  # one bar after the order
    costed = cost_adjusted_prices(np.ones((1, bars + 1)), part, model, sigma=SIGMA_HOUR / np.sqrt(bars))
    # the calibration uses the horizon of the array (bars + 1): rescale to the order's horizon of `bars`
    g_scale = model._propagator(bars + 1)[1] / model._propagator(bars)[1]
    inherited_after = (costed.market[0, -1] - 1.0) / g_scale
    assert inherited_after == pytest.approx(0.7 * SIGMA_HOUR * np.sqrt(RHO), rel=1e-2)


def test_invariance_through_seed_execution():
    """The same through the backtest's arithmetic (seed layout, uniform allocations, equal bar volumes)."""
    impacts = []
    for bars in (1, 12, 60):
        alloc = np.broadcast_to(uniform_allocations(bars, "float64"), (1, bars, bars + 1, 4, 2)).copy()
        y = np.stack([np.full((1, bars), 1.0 / bars), np.ones((1, bars))], axis=-1)
        ex = seed_execution(alloc, y, cost_model=TransientImpact(bar_minutes=60.0 / bars), order_participation=RHO,
                            sigma=SIGMA_HOUR / np.sqrt(bars))
        impacts.append(float(ex.shortfall.impact_bps[0, -1, 0, 0]))  # fixed column, buy vs VWAP, quantity
    np.testing.assert_allclose(impacts, impacts[0], rtol=INVARIANCE_RTOL)
    assert impacts[0] == pytest.approx(TransientImpact(bar_minutes=60.0).uniform_cost(RHO, SIGMA_HOUR, 1) * 1e4)


@pytest.mark.parametrize("params", KERNELS)
@pytest.mark.parametrize("side", [1, -1])
def test_impact_never_moves_earlier_bars(params, side):
    rng = np.random.default_rng(3)
    model = TransientImpact(bar_minutes=5.0, **params) + LinearPermanentImpact(0.2) + SpreadCost(1.0)
    prices = 1.0 + 0.01 * rng.standard_normal((3, 12))
    part = rng.uniform(0.0, 0.3, (3, 12))
    base = cost_adjusted_prices(prices, part, model, side=side, sigma=0.002)
    for k in range(12):
        bumped = part.copy()
        bumped[:, k] += 0.1
        out = cost_adjusted_prices(prices, bumped, model, side=side, sigma=0.002)
        np.testing.assert_array_equal(out.fill[:, :k], base.fill[:, :k])
        np.testing.assert_array_equal(out.market[:, :k], base.market[:, :k])
        np.testing.assert_array_equal(out.market[:, k], base.market[:, k])  # its own bar's market: the earlier bars'
        assert np.all(side * (out.fill[:, k] - base.fill[:, k]) > 0)  # adverse for the trader on both sides
        if k + 1 < 12:
            assert np.all(side * (out.market[:, k + 1:] - base.market[:, k + 1:]) > 0)


@pytest.mark.parametrize("params", KERNELS)
def test_impact_decays_after_trading_stops(params):
    model = TransientImpact(bar_minutes=1.0, **params)
    part = np.zeros((1, 240))
    part[0, :10] = 0.2
    parts = model.transient(CostInputs(part, sigma=0.001), axis=1)
    tail = parts.inherited[0, 10:]
    assert np.all(np.diff(tail) < 0) and np.all(tail > 0)
    assert np.all(parts.own[0, 10:] == 0)
    peak = parts.inherited[0, 10]
    # toward zero: exponentially (230 minutes >= 11 resilience times), or as a power of the time since trading
    bound = 1e-4 if params["kernel"] == "exponential" else 0.5
    assert tail[-1] < bound * peak


def _exponential_g(tau, t):
    return tau * (1 - np.exp(-t / tau)), tau * t - tau**2 * (1 - np.exp(-t / tau))


def test_one_child_order_closed_form_exponential():
    """One child order in bar 0 of H bars: own part ``K G2(dt) / dt pi^delta``, then ``K tau^2 (1 - e^{-dt/tau})^2
    e^{-(s-1) dt / tau} / dt pi^delta`` in bar s (K = coef sigma sqrt(H) / G1(H dt)), written out by hand."""
    tau, dt, horizon, pi, sigma, coef, delta = 7.0, 5.0, 6, 0.3, 0.002, 0.8, 0.6
    model = TransientImpact(bar_minutes=dt, coef=coef, delta=delta, kernel="exponential", resilience_minutes=tau)
    part = np.zeros((1, horizon))
    part[0, 0] = pi
    costed = cost_adjusted_prices(np.full((1, horizon), 50.0), part, model, side=1, sigma=sigma)
    g1_h, _ = _exponential_g(tau, horizon * dt)
    k = coef * sigma * np.sqrt(horizon) / g1_h * pi**delta
    _, g2_dt = _exponential_g(tau, dt)
    assert costed.fill[0, 0] == pytest.approx(50.0 * (1 + k * g2_dt / dt), rel=1e-12)
    assert costed.market[0, 0] == 50.0
    s = np.arange(1, horizon)
    expected = k * tau**2 * (1 - np.exp(-dt / tau)) ** 2 * np.exp(-(s - 1) * dt / tau) / dt
    np.testing.assert_allclose(costed.market[0, 1:], 50.0 * (1 + expected), rtol=1e-12)
    np.testing.assert_allclose(costed.fill[0, 1:], costed.market[0, 1:], rtol=0)  # no own trade, no own cost


def test_one_child_order_matches_quadrature_power_law():
    """Power-law kernel: the bar averages against a direct numerical double integral of G."""
    tau, beta, dt, horizon, pi, sigma = 3.0, 0.4, 10.0, 4, 0.1, 0.003
    model = TransientImpact(bar_minutes=dt, resilience_minutes=tau, beta=beta)
    part = np.zeros((1, horizon))
    part[0, 0] = pi
    parts = model.transient(CostInputs(part, sigma=sigma), axis=1)
    grid = (np.arange(4000) + 0.5) * dt / 4000  # midpoints inside a bar

    def kernel(t):
        return np.where(t >= 0, (1 + np.maximum(t, 0) / tau) ** -beta, 0.0)

    g1_h = tau / (1 - beta) * ((1 + horizon * dt / tau) ** (1 - beta) - 1)
    k = sigma * np.sqrt(horizon) / g1_h * np.sqrt(pi)
    # bar s's average price: (1/dt) int_{bar s} int_{bar 0} G(t - x) dx dt, on midpoint grids
    for s in range(horizon):
        t = s * dt + (np.arange(200) + 0.5) * dt / 200
        inner = np.array([kernel(ti - grid).mean() * dt for ti in t])
        expected = k * inner.mean()
        got = parts.own[0, 0] if s == 0 else parts.inherited[0, s]
        assert got == pytest.approx(expected, rel=2e-3)


def test_zero_participation_costs_nothing():
    model = TransientImpact(bar_minutes=15.0, kernel="exponential", resilience_minutes=30.0)
    prices = np.array([[100.0, 101.0, 99.5, 100.2]])
    out = cost_adjusted_prices(prices, np.zeros_like(prices), model, side=-1, sigma=0.01)
    np.testing.assert_array_equal(out.fill, prices)
    np.testing.assert_array_equal(out.market, prices)
    assert not model.is_free and model.needs_sigma


@pytest.mark.parametrize("build, match", [
    (lambda: TransientImpact(bar_minutes=0.0), "bar_minutes"),
    (lambda: TransientImpact(bar_minutes=float("nan")), "bar_minutes"),
    (lambda: TransientImpact(bar_minutes=5.0, coef=-1.0), "coef"),
    (lambda: TransientImpact(bar_minutes=5.0, delta=0.0), "delta"),
    (lambda: TransientImpact(bar_minutes=5.0, delta=1.2), "delta"),
    (lambda: TransientImpact(bar_minutes=5.0, kernel="gaussian"), "kernel"),
    (lambda: TransientImpact(bar_minutes=5.0, resilience_minutes=0.0), "resilience_minutes"),
    (lambda: TransientImpact(bar_minutes=5.0, resilience_minutes=float("inf")), "resilience_minutes"),
    (lambda: TransientImpact(bar_minutes=5.0, beta=1.0), "beta"),
    (lambda: TransientImpact(bar_minutes=5.0, beta=-0.5), "beta"),
    (lambda: TransientImpact(bar_minutes="5"), "bar_minutes"),
    (lambda: cost_adjusted_prices(np.ones((1, 3)), np.ones((1, 3)), TransientImpact(bar_minutes=5.0)), "sigma"),
    (lambda: TrainConfig(impact="transient", impact_coef=1.0, data=["bars.csv"]), "bar length"),
    (lambda: TrainConfig(impact="transient", impact_kernel="gauss"), "impact_kernel"),
    (lambda: TrainConfig(resilience_minutes=-1.0), "resilience_minutes"),
    (lambda: TrainConfig(impact_beta=1.5), "impact_beta"),
    (lambda: TrainConfig(impact_bar_minutes=0.0), "impact_bar_minutes"),
])
def test_bad_parameters_raise(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_plugs_into_composite_loss_config_and_almgren_chriss():
    model = TransientImpact(bar_minutes=5.0, kernel="exponential", resilience_minutes=15.0)
    composite = SpreadCost(1.0) + model + LinearPermanentImpact(0.1)
    assert isinstance(composite, CompositeCost) and composite.needs_sigma
    rng = np.random.default_rng(0)
    prices, part = 1.0 + 0.01 * rng.standard_normal((2, 12)), rng.uniform(0, 0.2, (2, 12))
    both = cost_adjusted_prices(prices, part, composite, sigma=0.002)
    alone = cost_adjusted_prices(prices, part, model, sigma=0.002)
    rest = cost_adjusted_prices(prices, part, SpreadCost(1.0) + LinearPermanentImpact(0.1), sigma=0.002)
    np.testing.assert_allclose(both.fill - prices, (alone.fill - prices) + (rest.fill - prices), atol=1e-15)
    assert cost_model_from_config(cost_model_to_config(composite)) == composite
    config = TrainConfig(impact="transient", impact_coef=0.8, bar_minutes=5, impact_kernel="exponential",
                         resilience_minutes=15.0)
    assert config.execution.cost_model() == TransientImpact(bar_minutes=5.0, coef=0.8, kernel="exponential",
                                                            resilience_minutes=15.0)
    assert TrainConfig(impact="transient", impact_coef=1.0).execution.cost_model().bar_minutes == 60.0  # synthetic
    assert TrainConfig(impact="transient", impact_coef=1.0, data=["bars.csv"], impact_bar_minutes=1.0) \
        .execution.cost_model().bar_minutes == 1.0
    params = almgren_chriss_parameters(model, 0.05, 0.002, 12)
    assert params["eta"] == pytest.approx(model.uniform_cost(0.05, 0.002, 12) * 12)


def test_costed_backtest_with_transient_impact():
    from lems.backtest import backtest
    from lems.baselines import TWAP
    from lems.data.synthetic import synthetic_market
    from lems.data.windows import make_windows
    from lems.execution import ExecutionConditions, OrderSize

    windows = make_windows(synthetic_market(n_assets=1, n_days=6, seed=2), 8, 6, stride=7)
    conditions = ExecutionConditions(OrderSize(participation=0.05), TransientImpact(bar_minutes=60.0),
                                     max_participation=0.5)
    frame = backtest([TWAP()], windows, conditions=conditions)
    assert frame["impact_bps"].min() > 0
    parts = frame[["delay_bps", "timing_bps", "impact_bps", "opportunity_bps"]].sum(axis=1)
    np.testing.assert_allclose(parts, frame["shortfall_bps"], rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------------------------------------
# Differentiable on every backend
# ------------------------------------------------------------------------------------------------
_grad = backend_grad  # the cost tests' one gradient helper (tests/test_costs.py)


@pytest.mark.backend
@pytest.mark.parametrize("kernel", ["power", "exponential"])
def test_gradients_flow_through_transient_impact(kernel):
    model = TransientImpact(bar_minutes=5.0, kernel=kernel, resilience_minutes=10.0)
    rng = np.random.default_rng(2)
    horizon, batch = 5, 3
    allocs = rng.dirichlet(np.ones(horizon), size=(batch, horizon + 1, 4, 2)).transpose(0, 4, 1, 2, 3)
    volume = rng.uniform(0.2, 2.0, (batch, horizon))
    prices = 1.0 + 0.01 * rng.standard_normal((batch, horizon))
    y = np.stack([volume / volume.sum(1, keepdims=True), prices], axis=-1)
    y_t = keras.ops.convert_to_tensor(y, "float32")
    logits = np.log(allocs)

    def objective(cost_model):
        def fn(z):
            a = keras.ops.softmax(z, axis=1)
            ex = seed_execution(a, y_t, cost_model=cost_model, order_participation=0.2, sigma=0.01, smooth=True)
            return keras.ops.sum(ex.outcome.improvement_bps) + keras.ops.sum(ex.shortfall.total_bps)
        return fn

    grad = _grad(objective(model), logits)
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0
    assert np.abs(grad - _grad(objective(NoCost()), logits)).max() > 1e-3  # the impact shapes the gradient
    zero = np.zeros((2, 4))  # zero participation: gradient finite (0), never NaN
    zero_grad = _grad(lambda p: keras.ops.sum(model.transient(CostInputs(p, sigma=0.01), axis=1).own
                                              + model.transient(CostInputs(p, sigma=0.01), axis=1).inherited), zero)
    assert np.all(np.isfinite(zero_grad))
    numpy_value = seed_execution(allocs, y, cost_model=model, order_participation=0.2, sigma=0.01)
    tensor_value = seed_execution(keras.ops.convert_to_tensor(allocs, "float32"), y_t, cost_model=model,
                                  order_participation=0.2, sigma=0.01)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tensor_value.shortfall.total_bps),
                               numpy_value.shortfall.total_bps, atol=0.05)


def test_cost_aware_loss_trains_through_transient_impact():
    """The cost-aware loss charges the transient impact: the larger the order, the larger the loss; all in one bar
    costs more than a uniform schedule; the loss serializes with its cost model."""
    from lems.loss import CostAwareLemLoss, make_lem_loss

    horizon, batch = 6, 8
    rng = np.random.default_rng(4)
    y = np.stack([np.full((batch, horizon), 1.0 / horizon), 1.0 + 0.002 * rng.standard_normal((batch, horizon))],
                 axis=-1)
    extended = np.concatenate([y, np.broadcast_to([0.004, 2e-4, 1.0], (batch, horizon, 3))], axis=-1)
    y_t = keras.ops.convert_to_tensor(extended.astype("float32"))
    uniform = np.full((batch, horizon, horizon + 1, 4, 2), 1.0 / horizon, dtype="float32")
    front = np.zeros_like(uniform)
    front[:, 0] = 1.0
    model = TransientImpact(bar_minutes=5.0)

    def mean_loss(rho, allocations):
        value = keras.ops.convert_to_numpy(make_lem_loss(model, order_participation=rho).call(
            y_t, keras.ops.convert_to_tensor(allocations)))
        assert np.all(np.isfinite(value))
        return float(np.mean(value))

    for allocations in (front, uniform):
        losses = [mean_loss(rho, allocations) for rho in (0.0, 0.01, 0.05, 0.2)]
        assert losses == sorted(losses) and losses[0] < losses[-1]  # the larger the order, the more it costs
    assert mean_loss(0.2, front) > mean_loss(0.2, uniform)  # all in one bar pays more impact than spread evenly
    loss = make_lem_loss(model + SpreadCost(1.0), order_participation=0.05)
    assert CostAwareLemLoss.from_config(loss.get_config()).cost_model == loss.cost_model
