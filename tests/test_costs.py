"""Order size, cost models, participation cap and implementation shortfall (issue 11).

The cost arithmetic lives in lems.execution (numpy float64 and keras.ops); the backtest runs it through
seed_execution. Every test here can fail: exact equalities where the arithmetic is exact, hand recomputations
otherwise.
"""

from __future__ import annotations

from functools import lru_cache

import keras
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lems.backtest import FRAME_COLUMNS, TCA_COLUMNS, backtest, execution_inputs, summary
from lems.baselines import (
    TWAP,
    AlmgrenChriss,
    FlexibleRule,
    StaticVWAP,
    almgren_chriss_cost,
    almgren_chriss_trades,
    arrival_prices,
    expected_bar_volume,
    lookback_half_spread,
    lookback_volatility,
)
from lems.data.synthetic import synthetic_market
from lems.data.windows import make_windows
from lems.execution import (
    ORDER_TYPES,
    CompositeCost,
    CostInputs,
    ExecutionConditions,
    LinearPermanentImpact,
    NoCost,
    OrderSize,
    OrderSpec,
    SpreadCost,
    SquareRootImpact,
    capped_fills,
    check_participation_cap,
    corwin_schultz_half_spread,
    cost_adjusted_prices,
    implementation_shortfall,
    seed_execution,
    seed_outcome,
)

H = 6
FULL = SpreadCost(1.5) + SquareRootImpact(0.8) + LinearPermanentImpact(0.2)


@lru_cache(maxsize=None)
def _bars() -> pd.DataFrame:
    return synthetic_market(n_assets=2, n_days=15, seed=4)


@lru_cache(maxsize=None)
def _windows():
    return make_windows(_bars(), 8, H, stride=5)


def _policies() -> list:
    return [TWAP(), StaticVWAP(n_days=5), FlexibleRule(0.5, n_days=5)]


def _seed_case(seed: int = 0, batch: int = 4, horizon: int = 5, zero_volume: bool = True):
    rng = np.random.default_rng(seed)
    allocs = rng.dirichlet(np.ones(horizon), size=(batch, horizon + 1, 4, 2)).transpose(0, 4, 1, 2, 3)
    volume = rng.uniform(0.2, 2.0, (batch, horizon))
    if zero_volume:
        volume[0, 1] = 0.0
    prices = 1.0 + 0.01 * rng.standard_normal((batch, horizon))
    return allocs, np.stack([volume / volume.sum(1, keepdims=True), prices], axis=-1)


# ------------------------------------------------------------------------------------------------
# NoCost: today's numbers, bit for bit
# ------------------------------------------------------------------------------------------------
#: Rows of today's frictionless frame of _policies() on _windows(), computed before the cost code existed:
#: row -> (policy, window, side, target, benchmark, min_duration, achieved, benchmark price, improvement).
_GOLDEN = {
    0: ("twap", 0, "buy", "quantity", "vwap", 1, 109.63388303688394, 109.10997316247808, -48.01668071402698),
    13: ("twap", 0, "sell", "notional", "vwap", 2, 109.60852430035683, 109.10997316247808, 45.692536019263926),
    555: ("twap", 9, "buy", "notional", "twap", 6, 104.30332126984304, 104.3033960413407, 0.007168654184708245),
    9001: ("static_vwap", 20, "buy", "notional", "vwap", 6, 108.56160754959495, 108.54383398586702,
           -1.6374549410391737),
    15747: ("flexible_rule", 1, "buy", "notional", "twap", 2, 107.06029018343258, 107.21618877072761,
            14.54058282452153),
    23519: ("flexible_rule", 139, "sell", "notional", "twap", 6, 110.20079182196494, 110.20416984706115,
            -0.3065242541089308),
}


def test_nocost_reproduces_the_frictionless_frame_bit_for_bit():
    windows = _windows()
    plain = backtest(_policies(), windows)
    for size in (OrderSize(participation=0.1), OrderSize(quantity=1e6)):
        costed = backtest(_policies(), windows, conditions=ExecutionConditions(size, NoCost()))
        assert list(costed.columns) == list(FRAME_COLUMNS) + list(TCA_COLUMNS)
        pd.testing.assert_frame_equal(costed[list(FRAME_COLUMNS)], plain, check_exact=True)
        assert (costed["unfilled"] == 0).all() and (costed["impact_bps"] == 0).all()
    assert len(plain) == 23520
    for row, (policy, window, side, target, bench, d, achieved, benchmark, improvement) in _GOLDEN.items():
        r = costed.iloc[row]
        assert (r["policy"], r["window"], r["side"], r["target"], r["benchmark"], r["min_duration"]) == (
            policy, window, side, target, bench, d)
        assert r["achieved_price"] == pytest.approx(achieved, rel=1e-13)
        assert r["benchmark_price"] == pytest.approx(benchmark, rel=1e-13)
        assert r["improvement_bps"] == pytest.approx(improvement, rel=1e-10, abs=1e-10)


def test_seed_execution_without_costs_is_seed_outcome():
    allocs, y = _seed_case()
    ref = seed_outcome(allocs, y)
    out = seed_execution(allocs, y, order_participation=0.2).outcome
    for field in ref._fields:
        np.testing.assert_array_equal(getattr(out, field), getattr(ref, field))
    free = seed_execution(allocs, y, cost_model=NoCost() + NoCost(), order_participation=0.2).outcome
    np.testing.assert_array_equal(free.diff, ref.diff)


# ------------------------------------------------------------------------------------------------
# Impact laws
# ------------------------------------------------------------------------------------------------
def _uniform_market(batch: int = 1, horizon: int = 4):
    y = np.stack([np.full((batch, horizon), 1.0 / horizon), np.ones((batch, horizon))], axis=-1)
    allocs = np.full((batch, horizon, horizon + 1, 4, 2), 1.0 / horizon)
    return allocs, y


@pytest.mark.parametrize("model", [SquareRootImpact(0.7), LinearPermanentImpact(0.3),
                                   SquareRootImpact(1.0, 0.6) + LinearPermanentImpact(0.1)])
def test_impact_is_zero_at_zero_size_and_monotone_in_size(model):
    allocs, y = _seed_case(zero_volume=False)
    zero = seed_execution(allocs, y, cost_model=model, order_participation=0.0, sigma=0.01)
    np.testing.assert_array_equal(zero.outcome.achieved, seed_outcome(allocs, y).achieved)
    assert np.all(zero.shortfall.impact_bps == 0.0)
    impacts = [seed_execution(allocs, y, cost_model=model, order_participation=rho, sigma=0.01).shortfall.impact_bps
               for rho in (0.001, 0.01, 0.05, 0.2, 0.5)]
    for small, large in zip(impacts[:-1], impacts[1:]):
        assert np.all(large > small)  # buys and sells alike: impact is a cost on both sides
    assert np.all(impacts[0] > 0)


def test_square_root_law_numerically():
    allocs, y = _uniform_market()
    sigma, coef = 0.004, 0.9
    for delta in (0.5, 0.6, 1.0):
        model = SquareRootImpact(coef, delta)
        impact = {rho: seed_execution(allocs, y, cost_model=model, order_participation=rho, sigma=sigma)
                  .shortfall.impact_bps for rho in (0.01, 0.04, 0.16)}
        # uniform schedule in uniform volume: participation = rho in every bar, cost coef * sigma * rho ** delta
        for rho, value in impact.items():
            np.testing.assert_allclose(value, coef * sigma * rho**delta * 1e4, rtol=1e-9)  # (P - P0) cancels
        np.testing.assert_allclose(impact[0.04] / impact[0.01], 4.0**delta, rtol=1e-9)


def test_spread_cost_given_and_estimated():
    allocs, y = _seed_case()
    base = seed_outcome(allocs, y)
    given_ = seed_execution(allocs, y, cost_model=SpreadCost(2.0), order_participation=0.1)
    side = np.array([1, 1, -1, -1])[None, None, :, None]
    # quantity target: the achieved price moves by exactly the half-spread; notional likewise (harmonic mean)
    np.testing.assert_allclose(given_.outcome.achieved / base.achieved, np.broadcast_to(1 + side * 2e-4, base.diff.shape),
                               rtol=1e-13)
    estimated = seed_execution(allocs, y, cost_model=SpreadCost(), order_participation=0.1,
                               half_spread=np.array([1e-4, 2e-4, 0.0, 5e-4]))
    ratio = estimated.outcome.achieved / base.achieved
    expected = 1 + side * np.array([1e-4, 2e-4, 0.0, 5e-4])[:, None, None, None]
    np.testing.assert_allclose(ratio, np.broadcast_to(expected, ratio.shape), rtol=1e-13)
    with pytest.raises(ValueError, match="half_spread"):
        seed_execution(allocs, y, cost_model=SpreadCost(), order_participation=0.1)
    with pytest.raises(ValueError, match="sigma"):
        seed_execution(allocs, y, cost_model=SquareRootImpact(), order_participation=0.1)


def test_permanent_impact_moves_only_later_bars():
    rng = np.random.default_rng(3)
    horizon = 6
    prices = 1.0 + 0.01 * rng.standard_normal((5, horizon))
    participation = rng.uniform(0.0, 0.3, (5, horizon))
    for model in (LinearPermanentImpact(0.4), FULL):
        base = cost_adjusted_prices(prices, participation, model, side=1, sigma=0.01, half_spread=None)
        for s in range(horizon):
            bumped = participation.copy()
            bumped[:, s] *= 3.0
            out = cost_adjusted_prices(prices, bumped, model, side=1, sigma=0.01)
            np.testing.assert_array_equal(out.market[:, :s + 1], base.market[:, :s + 1])  # never this bar or earlier
            np.testing.assert_array_equal(out.fill[:, :s], base.fill[:, :s])
            if s < horizon - 1:
                assert np.all(out.market[:, s + 1:] > base.market[:, s + 1:])  # every later bar, adversely
    temporary = cost_adjusted_prices(prices, participation, SquareRootImpact(), side=-1, sigma=0.01)
    np.testing.assert_array_equal(temporary.market, prices)  # temporary impact never moves the market
    assert np.all(temporary.fill < prices)  # a sell receives less


def test_sell_costs_above_the_price_are_rejected():
    with pytest.raises(ValueError, match="exceed the price"):
        cost_adjusted_prices(np.ones((1, 3)), np.full((1, 3), 1e6), SquareRootImpact(1.0), side=-1, sigma=0.5)


# ------------------------------------------------------------------------------------------------
# Participation cap
# ------------------------------------------------------------------------------------------------
def test_capped_fills_by_hand():
    plan = np.array([[0.5, 0.3, 0.2, 0.0]])
    limits = np.array([[0.2, 0.5, 0.1, 0.15]])
    fills, unfilled = capped_fills(plan, limits, max_rate=0.45)
    # bar 0: 0.2 (cap); bar 1: 0.3 + 0.3 backlog = 0.6 -> min(0.5, max(0.45, 0.3)) = 0.45; bar 2: 0.1; bar 3: 0.15
    np.testing.assert_allclose(fills, [[0.2, 0.45, 0.1, 0.15]], atol=1e-15)
    np.testing.assert_allclose(unfilled, [0.1], atol=1e-15)
    fills, unfilled = capped_fills(plan, np.full((1, 4), 2.0))
    np.testing.assert_array_equal(fills, plan)
    assert unfilled[0] == 0.0


@lru_cache(maxsize=None)
def _small_windows():
    return _windows().subset(np.arange(0, 140, 4))


@settings(max_examples=20, deadline=None)
@given(cap=st.floats(0.02, 1.0), rho=st.floats(0.005, 0.5), rates=st.sampled_from([(0.0, 1.0), (0.1, 0.3),
                                                                                     (0.0, 1 / H)]),
       quantity=st.booleans(), model=st.sampled_from([NoCost(), FULL, SpreadCost(), SquareRootImpact(1.0, 1.0)]),
       own=st.booleans())
def test_participation_cap_is_never_exceeded_in_the_backtest(cap, rho, rates, quantity, model, own):
    windows = _small_windows()
    size = OrderSize(quantity=rho * 2e5) if quantity else OrderSize(participation=rho)
    conditions = ExecutionConditions(size, model, max_participation=cap, vwap_includes_order=own)
    frame = backtest(_policies(), windows, min_rate=rates[0], max_rate=rates[1], conditions=conditions)
    assert frame[list(FRAME_COLUMNS[9:]) + list(TCA_COLUMNS)].notna().all().all()
    assert np.isfinite(frame.select_dtypes("number").to_numpy()).all()
    assert frame["peak_bar_participation"].max() <= cap * (1 + 1e-9)
    np.testing.assert_allclose(frame["filled"] + frame["unfilled"], 1.0, atol=1e-12)
    assert frame["unfilled"].min() >= -1e-12 and frame["filled"].min() >= 0
    assert frame["max_participation"].max() <= rates[1] + 1e-12  # the catch-up never breaks max_rate
    parts = frame[["delay_bps", "timing_bps", "impact_bps", "opportunity_bps"]].sum(axis=1)
    np.testing.assert_allclose(parts, frame["shortfall_bps"], rtol=1e-9, atol=1e-9)
    nothing = frame["filled"] <= 0
    assert (frame.loc[nothing, "improvement_bps"] == 0).all()


def test_unfilled_remainder_is_reported():
    windows = _small_windows()
    conditions = ExecutionConditions(OrderSize(participation=0.3), max_participation=0.05)
    frame = backtest(TWAP(), windows, conditions=conditions)
    assert frame["unfilled"].min() > 0.2  # 5 % of each bar cannot fill 30 % of the horizon's volume
    quantity = frame[frame["target"] == "quantity"]
    # at most the cap times the realised horizon volume fills: phi * Q <= 0.05 * sum V
    assert (quantity["filled"] <= 0.05 / quantity["realised_participation"] + 1e-12).all()
    assert (frame["opportunity_bps"] != 0).any()
    with pytest.raises(ValueError, match="max_participation"):
        ExecutionConditions(OrderSize(participation=0.3), max_participation=0.05, require_completion=True)
    big = ExecutionConditions(OrderSize(quantity=1e12), max_participation=0.5, require_completion=True)
    with pytest.raises(ValueError, match="infeasible order"):
        backtest(TWAP(), windows, conditions=big)


# ------------------------------------------------------------------------------------------------
# Implementation shortfall, exact
# ------------------------------------------------------------------------------------------------
def _reference_order(plan, volume, price, quantity, reference, side, notional, sigma, half, cap, max_rate,
                     temp_coef, perm_coef):
    """One order by hand, bar by bar (spread + square-root temporary + linear permanent impact)."""
    horizon = len(plan)
    mean_v = volume.mean()
    backlog, shift = 0.0, 0.0
    fills, fill_px, market_px = [], [], []
    for s in range(horizon):
        units_per_fraction = quantity * (reference / price[s] if notional else 1.0)
        limit = cap * volume[s] / units_per_fraction
        want = plan[s] + backlog
        f = max(min(want, limit, max(max_rate, plan[s])), 0.0)
        backlog = want - f
        pi = f * units_per_fraction / max(volume[s], 1e-3 * mean_v)
        temp = half + temp_coef * sigma * np.sqrt(pi)
        market_px.append(price[s] * (1 + side * shift))
        fill_px.append(price[s] * (1 + side * (shift + temp)))
        fills.append(f)
        shift += perm_coef * sigma * pi
    fills, fill_px, market_px = map(np.array, (fills, fill_px, market_px))
    phi = fills.sum()

    def avg(px):
        return phi / (fills / px).sum() if notional else (fills * px).sum() / phi

    return dict(fills=fills, fill_px=fill_px, market_px=market_px, achieved=avg(fill_px), frictionless=avg(price),
                phi=phi, backlog=backlog)


def test_backtest_rows_match_a_hand_computation():
    windows = _small_windows()
    model = SpreadCost() + SquareRootImpact(0.8) + LinearPermanentImpact(0.2)
    conditions = ExecutionConditions(OrderSize(participation=0.12), model, max_participation=0.2,
                                     vwap_includes_order=True)
    policy = FlexibleRule(0.5, n_days=5)
    frame = backtest(policy, windows, max_rate=0.5, conditions=conditions)
    inputs = execution_inputs(windows, conditions)
    sigma, half = lookback_volatility(windows), lookback_half_spread(windows)
    arrival = arrival_prices(windows, "close")
    plan = policy.allocate(windows, max_rate=0.5)
    rng = np.random.default_rng(1)
    per_window = (H + 1) * 8
    for pos in rng.choice(len(frame), 60, replace=False):
        row = frame.iloc[pos]
        i, rest = divmod(pos, per_window)
        col, rest = divmod(rest, 8)
        otype, target = divmod(rest, 2)
        side = 1 if ORDER_TYPES[otype][0] == "buy" else -1
        vwap = ORDER_TYPES[otype][1] == "vwap"
        volume, price = windows.volumes[i], windows.prices[i]
        ref = hand = _reference_order(plan[i, :, col, otype, target], volume, price, inputs.quantity[i],
                                      windows.reference_price[i], side, target == 1, sigma[i], half[i], 0.2, 0.5,
                                      0.8, 0.2)
        d = H if col == H else col + 1
        end = max(d, 1 + max([s for s in range(H) if hand["fills"][s] > 1e-6], default=-1))
        w = np.arange(H) < end
        if vwap:
            own_units = hand["fills"] * inputs.quantity[i] * (
                windows.reference_price[i] / price if target == 1 else 1.0)
            bench = ((w * volume * hand["market_px"]).sum() + (w * own_units * hand["fill_px"]).sum()) / (
                (w * volume).sum() + (w * own_units).sum())
        else:
            bench = hand["market_px"][w].mean()
        assert row["achieved_price"] == pytest.approx(ref["achieved"], rel=1e-11)
        assert row["benchmark_price"] == pytest.approx(bench, rel=1e-11)
        assert row["improvement_bps"] == pytest.approx(-side * (ref["achieved"] / bench - 1) * 1e4, abs=1e-7)
        assert row["unfilled"] == pytest.approx(hand["backlog"], abs=1e-12)
        a, phi, u = arrival[i], hand["phi"], hand["backlog"]
        p0, pend = hand["market_px"][0], hand["market_px"][-1]
        total = side * (phi * (ref["achieved"] - a) + u * (pend - a)) / a * 1e4
        assert row["shortfall_bps"] == pytest.approx(total, abs=1e-7)
        assert row["delay_bps"] == pytest.approx(side * (p0 - a) / a * 1e4, abs=1e-7)
        assert row["timing_bps"] == pytest.approx(side * phi * (ref["frictionless"] - p0) / a * 1e4, abs=1e-7)
        assert row["impact_bps"] == pytest.approx(side * phi * (ref["achieved"] - ref["frictionless"]) / a * 1e4,
                                                  abs=1e-7)
        assert row["opportunity_bps"] == pytest.approx(side * u * (pend - p0) / a * 1e4, abs=1e-7)


def test_perold_parts_sum_to_the_total():
    allocs, y = _seed_case(seed=5)
    ex = seed_execution(allocs, y, cost_model=FULL, order_participation=0.3, sigma=0.02, half_spread=None,
                        max_participation=0.25, arrival=np.array([1.01, 0.99, 1.0, 1.002]))
    sf = ex.shortfall
    assert np.abs(ex.unfilled).max() > 0.01  # the decomposition is exercised with an unfilled part
    np.testing.assert_allclose(sf.delay_bps + sf.timing_bps + sf.impact_bps + sf.opportunity_bps, sf.total_bps,
                               rtol=1e-12, atol=1e-9)
    # directly on arrays: a sell, half unfilled
    fills = np.array([[0.3, 0.2, 0.0]])
    prices = np.array([[100.0, 101.0, 103.0]])
    costed = cost_adjusted_prices(prices, np.array([[0.1, 0.1, 0.0]]), FULL, side=-1, sigma=0.01)
    out = implementation_shortfall(fills, prices, costed.fill, costed.market, 99.0, side="sell")
    achieved = (0.3 * costed.fill[0, 0] + 0.2 * costed.fill[0, 1]) / 0.5
    total = -(0.5 * (achieved - 99.0) + 0.5 * (costed.market[0, 2] - 99.0)) / 99.0 * 1e4
    assert out.total_bps[0] == pytest.approx(total, rel=1e-12)
    assert out.delay_bps + out.timing_bps + out.impact_bps + out.opportunity_bps == pytest.approx(out.total_bps,
                                                                                                  rel=1e-12)


def test_vwap_including_the_order_moves_the_benchmark_toward_the_fills():
    allocs, y = _seed_case(zero_volume=False)
    kwargs = dict(cost_model=SquareRootImpact(1.0), order_participation=0.3, sigma=0.01)
    without = seed_execution(allocs, y, **kwargs).outcome
    within = seed_execution(allocs, y, vwap_includes_order=True, **kwargs).outcome
    vwap_types = [0, 2]
    assert np.all(np.abs(within.diff[:, :, vwap_types]) < np.abs(without.diff[:, :, vwap_types]))
    np.testing.assert_array_equal(within.diff[:, :, [1, 3]], without.diff[:, :, [1, 3]])  # TWAP unchanged


# ------------------------------------------------------------------------------------------------
# Estimates from the lookback: causal
# ------------------------------------------------------------------------------------------------
def test_corwin_schultz_recovers_a_pure_bounce_spread():
    spread = 0.004
    mid = np.full((3, 10), 100.0)
    high, low = mid * (1 + spread / 2), mid * (1 - spread / 2)
    np.testing.assert_allclose(corwin_schultz_half_spread(high, low, axis=1), spread / 2, rtol=1e-12)
    trending = np.linspace(100, 120, 10)  # large ranges between bars -> negative estimates clipped to 0
    assert corwin_schultz_half_spread(trending * 1.0001, trending * 0.9999) == 0.0
    with pytest.raises(ValueError, match="high must be >= low"):
        corwin_schultz_half_spread(low, high)
    with pytest.raises(ValueError):
        corwin_schultz_half_spread(high[:, :1], low[:, :1])


def test_estimates_read_the_lookback_only():
    bars = _bars()
    windows = _windows()
    i = 20
    asset, t0 = windows.asset[i], int(windows.origin_index[i])
    rows = np.flatnonzero((bars["symbol"] == asset).to_numpy())[t0:]  # the origin bar and everything after
    altered = bars.copy()
    rng = np.random.default_rng(0)
    factor = rng.uniform(0.5, 2.0, rows.size)
    for col in ("volume", "notional"):
        altered.loc[altered.index[rows], col] *= factor
    for col in ("open", "high", "low", "close", "notional"):
        altered.loc[altered.index[rows], col] *= rng.uniform(0.95, 1.05, rows.size) if col != "notional" else 1.0
    altered["high"] = altered[["open", "high", "low", "close"]].max(axis=1)
    altered["low"] = altered[["open", "high", "low", "close"]].min(axis=1)
    other = make_windows(altered, 8, H, stride=5)
    j = int(np.flatnonzero((other.asset == asset) & (other.origin_index == t0))[0])
    for estimate in (expected_bar_volume, lookback_half_spread, lookback_volatility, arrival_prices):
        assert estimate(other)[j] == estimate(windows)[i], estimate.__name__
    assert not np.array_equal(other.prices[j], windows.prices[i])  # the horizon did change


# ------------------------------------------------------------------------------------------------
# Almgren-Chriss against the costed arithmetic
# ------------------------------------------------------------------------------------------------
def test_almgren_chriss_expected_cost_equals_the_costed_shortfall():
    """Linear temporary (delta = 1) + linear permanent impact, constant prices and volumes: the shortfall of any
    schedule is the Almgren-Chriss expected cost with eta = k sigma Q / V and gamma = g sigma Q / V."""
    horizon, sigma, rho, k, g = 5, 0.01, 0.2, 0.7, 0.3
    y = np.stack([np.full((1, horizon), 1.0 / horizon), np.ones((1, horizon))], axis=-1)
    model = SquareRootImpact(k, 1.0) + LinearPermanentImpact(g)
    q_over_v = rho * horizon  # the order over one bar's volume
    eta, gamma = k * sigma * q_over_v, g * sigma * q_over_v
    for lam in (0.0, 1e3, 1e5):
        trades = almgren_chriss_trades(horizon, lam, sigma, eta, gamma)
        allocs = np.broadcast_to(trades[None, :, None, None, None], (1, horizon, horizon + 1, 4, 2)).copy()
        ex = seed_execution(allocs, y, cost_model=model, order_participation=rho, sigma=sigma)
        expected, _ = almgren_chriss_cost(trades, sigma, eta, gamma)
        np.testing.assert_allclose(ex.shortfall.total_bps[..., 0], expected * 1e4, rtol=1e-12)


# ------------------------------------------------------------------------------------------------
# Differentiable on every backend
# ------------------------------------------------------------------------------------------------
def _grad(fn, x: np.ndarray) -> np.ndarray:
    backend = keras.backend.backend()
    tensor = keras.ops.convert_to_tensor(x, "float32")
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(fn)(tensor))
    if backend == "tensorflow":
        import tensorflow as tf

        var = tf.Variable(tensor)
        with tf.GradientTape() as tape:
            out = fn(var)
        return tape.gradient(out, var).numpy()
    if backend == "torch":
        leaf = tensor.detach().clone().requires_grad_(True)
        fn(leaf).backward()
        return leaf.grad.detach().cpu().numpy()
    pytest.skip(f"no gradient helper for backend {backend}")


@pytest.mark.backend
@pytest.mark.parametrize("name", ["none", "spread", "spread_estimated", "sqrt", "permanent", "composite"])
def test_gradients_flow_through_every_cost_model(name):
    models = {"none": NoCost(), "spread": SpreadCost(3.0), "spread_estimated": SpreadCost(),
              "sqrt": SquareRootImpact(1.0), "permanent": LinearPermanentImpact(0.5), "composite": FULL}
    allocs, y = _seed_case(seed=2)
    logits = np.log(allocs)
    y_t = keras.ops.convert_to_tensor(y, "float32")
    half = keras.ops.convert_to_tensor(np.array([1e-4, 2e-4, 3e-4, 4e-4]), "float32")

    def objective(model):
        def fn(z):
            a = keras.ops.softmax(z, axis=1)
            ex = seed_execution(a, y_t, cost_model=model, order_participation=0.2, sigma=0.01, half_spread=half,
                                max_participation=0.5, smooth=True)
            return keras.ops.sum(ex.outcome.improvement_bps) + keras.ops.sum(ex.shortfall.total_bps)
        return fn

    grad = _grad(objective(models[name]), logits)
    assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0
    if name != "none":
        assert np.abs(grad - _grad(objective(NoCost()), logits)).max() > 1e-3  # the costs shape the gradient
    numpy_value = seed_execution(allocs, y, cost_model=models[name], order_participation=0.2, sigma=0.01,
                                 half_spread=np.array([1e-4, 2e-4, 3e-4, 4e-4]), max_participation=0.5)
    tensor_value = seed_execution(keras.ops.convert_to_tensor(allocs, "float32"), y_t, cost_model=models[name],
                                  order_participation=0.2, sigma=0.01, half_spread=half, max_participation=0.5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(tensor_value.shortfall.total_bps),
                               numpy_value.shortfall.total_bps, atol=0.05)


# ------------------------------------------------------------------------------------------------
# Bad input
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("build, match", [
    (lambda: SquareRootImpact(-0.1), "coef"),
    (lambda: SquareRootImpact(1.0, 0.0), "delta"),
    (lambda: SquareRootImpact(1.0, 1.5), "delta"),
    (lambda: LinearPermanentImpact(-1.0), "coef"),
    (lambda: LinearPermanentImpact(float("nan")), "coef"),
    (lambda: SpreadCost(-2.0), "half_spread_bps"),
    (lambda: OrderSize(participation=0.0), "participation"),
    (lambda: OrderSize(participation=-0.1), "participation"),
    (lambda: OrderSize(quantity=float("inf")), "quantity"),
    (lambda: OrderSize(participation=0.1, quantity=5.0), "exactly one"),
    (lambda: OrderSize(), "exactly one"),
    (lambda: check_participation_cap(0.0), "max_participation"),
    (lambda: check_participation_cap(1.2), "max_participation"),
    (lambda: check_participation_cap(-0.5), "max_participation"),
    (lambda: ExecutionConditions(OrderSize(participation=0.1), max_participation=1.01), r"\(0, 1\]"),
    (lambda: ExecutionConditions(OrderSize(participation=0.1), arrival="open"), "arrival"),
    (lambda: ExecutionConditions(0.1), "OrderSize"),
    (lambda: ExecutionConditions(OrderSize(participation=0.1), cost_model="sqrt"), "CostModel"),
    (lambda: CompositeCost((NoCost(), 3)), "CostModel"),
    (lambda: OrderSpec("buy", 4, benchmark="arrival").order_type_index, "arrival"),
])
def test_bad_input_names_the_parameter(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_arrival_orders_and_summary_of_tca_columns():
    spec = OrderSpec("sell", 5, benchmark="arrival")
    assert spec.benchmark == "arrival" and spec.objective == "track"
    frame = backtest([TWAP(), AlmgrenChriss(1e2, eta=1e-3)], _small_windows(),
                     conditions=ExecutionConditions(OrderSize(participation=0.05), SquareRootImpact()))
    table = summary(frame, metrics=("shortfall_bps", "impact_bps"))
    assert {"shortfall_bps_mean", "impact_bps_p95", "count"} <= set(table.columns)
    assert table["impact_bps_mean"].min() > 0
    composite = SpreadCost(1.0) + (SquareRootImpact() + LinearPermanentImpact())
    assert isinstance(composite, CompositeCost) and len(composite.models) == 3
    assert composite.needs_sigma and not composite.needs_half_spread and not composite.is_free
    inputs = CostInputs(np.zeros((2, 3)), sigma=0.01)
    np.testing.assert_array_equal(composite.temporary(inputs), 1e-4)
