"""lems.baselines: invariants on adversarial inputs, causality end to end, the flexible rule by hand."""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lems.baselines import (
    BASELINES,
    TWAP,
    AlmgrenChriss,
    FlexibleRule,
    ModelPolicy,
    Policy,
    ScheduleTable,
    StaticVWAP,
    almgren_chriss_cost,
    almgren_chriss_frontier,
    almgren_chriss_holdings,
    almgren_chriss_kappa,
    almgren_chriss_trades,
    lookback_volatility,
    static_volume_curve,
)
from lems.data.synthetic import synthetic_market
from lems.data.windows import make_windows
from lems.execution import check_allocations

LOOKBACK = 6


@lru_cache(maxsize=None)
def _bars(n_days: int = 12, zero_fraction: float = 0.002, seed: int = 0, n_assets: int = 2) -> pd.DataFrame:
    return synthetic_market(n_assets=n_assets, n_days=n_days, seed=seed, zero_volume_fraction=zero_fraction)


@lru_cache(maxsize=None)
def _windows(horizon: int, zero_fraction: float = 0.002, stride: int = 7):
    return make_windows(_bars(zero_fraction=zero_fraction), LOOKBACK, horizon, stride=stride)


def _policies(threshold: float = 0.0) -> list:
    return [TWAP(), StaticVWAP(n_days=5), FlexibleRule(threshold, "static", n_days=5),
            FlexibleRule(threshold, "twap"), AlmgrenChriss(5e2, eta=1e-3)]


def _perturb(bars: pd.DataFrame, rows: np.ndarray, seed: int, prices: bool = True) -> pd.DataFrame:
    """Scale the volumes (and, if asked, the prices) of the given rows by random positive factors."""
    rng = np.random.default_rng(seed)
    out = bars.copy()
    fv = rng.uniform(0.2, 5.0, rows.size)
    fp = rng.uniform(0.9, 1.1, rows.size) if prices else np.ones(rows.size)
    out.loc[rows, "volume"] *= fv
    out.loc[rows, "notional"] *= fv * fp
    for col in ("open", "high", "low", "close"):
        out.loc[rows, col] *= fp
    return out


# ------------------------------------------------------------------------------------------------
# Invariants
# ------------------------------------------------------------------------------------------------
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_invariants_on_random_rates(data):
    horizon = data.draw(st.sampled_from([2, 3, 5, 8]), label="horizon")
    windows = _windows(horizon, data.draw(st.sampled_from([0.002, 0.3]), label="zero_fraction"))
    n = len(windows)
    tight = 1.0 / horizon
    if data.draw(st.booleans(), label="per_window"):
        rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
        hi = rng.uniform(tight, 1.0, (n, 1))
        hi[rng.random((n, 1)) < 0.3] = tight
        lo = rng.uniform(0.0, 1.0, (n, 1)) * hi
        lo[rng.random((n, 1)) < 0.2] = 0.0
        lo = np.where(rng.random((n, 1)) < 0.2, hi, lo)
    else:
        hi = data.draw(st.one_of(st.just(tight), st.floats(tight, 1.0)), label="max_rate")
        lo = data.draw(st.one_of(st.just(0.0), st.just(hi), st.floats(0.0, hi)), label="min_rate")
    threshold = data.draw(st.sampled_from([0.0, 0.5, 3.0]), label="threshold")
    for policy in _policies(threshold):
        alloc = policy.allocate(windows, lo, hi)
        assert alloc.shape == (n, horizon, horizon + 1, 4, 2) and alloc.dtype == np.float64
        check_allocations(alloc, lo, hi)
        assert np.array_equal(alloc[..., 0], alloc[..., 1])  # both targets share the schedule


@pytest.mark.parametrize("lo, hi", [(0.0, 0.2), (0.5, 0.4), (-0.1, 0.5), (0.0, np.nan), (np.inf, 1.0),
                                    (0.0, np.full((3, 1), 0.5))])
def test_infeasible_rates_raise(lo, hi):
    windows = _windows(4)  # H = 4: max_rate 0.2 cannot complete; (3, 1) is the wrong shape
    for policy in _policies():
        with pytest.raises(ValueError):
            policy.allocate(windows, lo, hi)
    with pytest.raises(ValueError):
        ModelPolicy(model=None).allocate(windows, lo, hi)


def test_per_window_rates_bind_exactly():
    windows = _windows(5)
    n = len(windows)
    hi = np.where(np.arange(n)[:, None] % 2 == 0, 0.2, 1.0)  # every other window fully pinned at 1/H
    for policy in _policies():
        alloc = policy.allocate(windows, 0.0, hi)
        check_allocations(alloc, 0.0, hi)
        np.testing.assert_allclose(alloc[::2], 0.2, atol=1e-12)
    with pytest.raises(ValueError):
        TWAP().allocate(windows, 0.0, np.where(np.arange(n)[:, None] == 3, 0.1, 1.0))  # one infeasible row


def test_policy_protocol_and_registry():
    assert set(BASELINES) == {"twap", "static_vwap", "flexible_rule", "almgren_chriss"}
    for name, cls in BASELINES.items():
        policy = cls()
        assert isinstance(policy, Policy) and policy.name == name
    with pytest.raises(ValueError):
        FlexibleRule(base="vwap")
    with pytest.raises(ValueError):
        FlexibleRule(threshold=-1.0)
    with pytest.raises(ValueError):
        StaticVWAP(n_days=0)


def test_empty_windows():
    windows = _windows(4).subset(np.zeros(0, dtype=np.int64))
    for policy in _policies(1.0):
        assert policy.allocate(windows).shape == (0, 4, 5, 4, 2)


# ------------------------------------------------------------------------------------------------
# Schedules
# ------------------------------------------------------------------------------------------------
def test_twap_is_uniform_and_static_follows_the_curve():
    windows = _windows(6)
    np.testing.assert_allclose(TWAP().allocate(windows), 1 / 6, atol=1e-15)
    curve = static_volume_curve(windows, n_days=5)
    static = StaticVWAP(n_days=5).allocate(windows)
    expected = curve / curve.sum(axis=1, keepdims=True)
    for col in (0, 3, 6):
        np.testing.assert_allclose(static[:, :, col, 0, 0], expected, rtol=1e-12)  # buy VWAP
        np.testing.assert_allclose(static[:, :, col, 2, 1], expected, rtol=1e-12)  # sell VWAP
        np.testing.assert_allclose(static[:, :, col, 1, 0], 1 / 6, atol=1e-15)  # TWAP types uniform
    assert np.ptp(expected, axis=1).max() > 0.05  # the curve is not flat


def test_static_curve_is_the_slot_mean_by_hand():
    windows = _windows(3, stride=1)
    i = len(windows) - 1
    bars = windows.bars[windows.asset[i]]
    t0 = int(windows.origin_index[i])
    curve = static_volume_curve(windows, n_days=3)[i]
    for s in range(3):
        slot = bars["slot"].iloc[t0 + s]
        past = bars.iloc[:t0]
        expected = past.loc[past["slot"] == slot, "volume"].iloc[-3:].mean()
        assert curve[s] == pytest.approx(expected, rel=1e-12)


def _origins_match(a, b) -> None:
    assert np.array_equal(a.origin_index, b.origin_index) and np.array_equal(a.asset, b.asset)


def test_static_vwap_causal_end_to_end():
    bars = _bars(n_assets=1)
    cut = 200  # bar index (single symbol: row == bar index)
    policy = StaticVWAP(n_days=5)
    base = make_windows(bars, LOOKBACK, 4)
    alloc = policy.allocate(base)
    later = make_windows(_perturb(bars, np.arange(cut, len(bars)), seed=1), LOOKBACK, 4)
    _origins_match(base, later)
    moved = policy.allocate(later)
    known = base.origin_index <= cut
    assert np.array_equal(alloc[known], moved[known])  # bars >= t0 never change the curve of t0
    assert not np.allclose(alloc[~known], moved[~known])  # ... but they are used by later windows
    # one bar of the origin's slot a day before the origin does change the window at the origin
    earlier = make_windows(_perturb(bars, np.array([cut - 24]), seed=2), LOOKBACK, 4)
    row = np.flatnonzero(base.origin_index == cut)[0]
    assert not np.allclose(alloc[row], policy.allocate(earlier)[row])


def test_flexible_rule_causal_end_to_end():
    bars = _bars(n_assets=1)
    cut, horizon = 200, 6
    base = make_windows(bars, LOOKBACK, horizon)
    later = make_windows(_perturb(bars, np.arange(cut, len(bars)), seed=3), LOOKBACK, horizon)
    _origins_match(base, later)
    steps_known = cut - base.origin_index  # decisions 0 .. cut - t0 are taken before bar `cut` closes
    changed = False
    for policy in (FlexibleRule(0.0, "static", n_days=5), FlexibleRule(0.5, "twap")):
        a, b = policy.allocate(base), policy.allocate(later)
        for row in np.flatnonzero((steps_known >= 0) & (steps_known < horizon)):
            s = steps_known[row]
            assert np.array_equal(a[row, : s + 1], b[row, : s + 1]), (row, s)
            changed |= not np.allclose(a[row, s + 1 :], b[row, s + 1 :])
    assert changed  # the perturbation does reach the later decisions


def test_flexible_rule_causal_on_horizon_bars():
    windows = _windows(6)
    rng = np.random.default_rng(0)
    policy = FlexibleRule(0.3, "static", n_days=5)
    alloc = policy.allocate(windows)
    changed = False
    for s in range(6):
        prices, volumes = windows.prices.copy(), windows.volumes.copy()
        prices[:, s:] *= rng.uniform(0.95, 1.05, prices[:, s:].shape)
        volumes[:, s:] *= rng.uniform(0.0, 3.0, volumes[:, s:].shape)
        moved = policy.allocate(dataclasses.replace(windows, prices=prices, volumes=volumes))
        assert np.array_equal(alloc[:, : s + 1], moved[:, : s + 1]), s
        changed |= not np.allclose(alloc, moved)
    assert changed


def test_flexible_rule_by_hand():
    windows = _windows(4).subset(np.arange(2))
    prices = np.tile([100.0, 99.0, 101.0, 102.0], (2, 1))
    windows = dataclasses.replace(windows, prices=prices, volumes=np.ones((2, 4)))
    alloc = FlexibleRule(0.0, "twap").allocate(windows)[0, :, :, :, 0]  # (H, H+1, 4)
    uniform = np.full(4, 0.25)
    early = np.array([0.25, 0.25, 0.5, 0.0])  # buy: at s = 2, p_1 = 99 < (100 + 99) / 2
    for col, expected in ((0, early), (1, early), (2, early), (3, uniform), (4, uniform)):
        np.testing.assert_allclose(alloc[:, col, 0], expected, atol=1e-15)  # buy VWAP
        np.testing.assert_allclose(alloc[:, col, 1], expected, atol=1e-15)  # buy TWAP
    for col in range(5):  # sell: first favourable at s = 3 (p_2 = 101 > 100): same as uniform
        np.testing.assert_allclose(alloc[:, col, 2], uniform, atol=1e-15)
    # a max rate of 0.3 spreads the completion over the following bars
    capped = FlexibleRule(0.0, "twap").allocate(windows, 0.0, 0.3)[0, :, 0, 0, 0]
    np.testing.assert_allclose(capped, [0.25, 0.25, 0.3, 0.2], atol=1e-15)


def test_flexible_rule_completes_early_but_not_below_min_duration():
    windows = _windows(8, stride=2)
    for policy in (FlexibleRule(0.0, "static", n_days=5), FlexibleRule(1.0, "twap")):
        alloc = policy.allocate(windows)
        last = np.where(alloc > 1e-6, np.arange(1, 9)[None, :, None, None, None], 0).max(axis=1)  # (N, H+1, 4, 2)
        d = np.r_[np.arange(1, 9), 8][None, :, None, None]
        assert np.all(last >= d)  # never finishes before its min duration
        assert np.mean(last[:, :8] < 8) > 0.1  # ... but often completes early
    static = StaticVWAP(n_days=5).allocate(windows)
    rule = FlexibleRule(0.0, "static", n_days=5).allocate(windows)
    assert np.array_equal(rule[:, :, 8], static[:, :, 8])  # fixed column = base schedule
    assert np.array_equal(FlexibleRule(0.0, "twap").allocate(windows)[:, :, 8], TWAP().allocate(windows)[:, :, 8])


def test_threshold_makes_the_rule_more_patient():
    windows = _windows(8, stride=2)
    durations = []
    for threshold in (0.0, 1.0, 5.0):
        alloc = FlexibleRule(threshold, "twap").allocate(windows)
        durations.append(np.where(alloc > 1e-6, np.arange(1, 9)[None, :, None, None, None], 0).max(axis=1).mean())
    assert durations[0] < durations[1] < durations[2]
    assert np.all(lookback_volatility(windows) > 0)


# ------------------------------------------------------------------------------------------------
# Model policy
# ------------------------------------------------------------------------------------------------
def test_model_policy_returns_valid_allocations():
    from lems.models import LargeExecutionModel

    windows = make_windows(_bars(n_days=4, n_assets=1), 16, 4, stride=5).subset(np.arange(12))
    model = LargeExecutionModel(lookback=16, n_ahead=4, hidden_size=8, hidden_rnn_layer=1, num_heads=2,
                                num_embedding=4, fused_mlp_hidden_dim=8)
    hi = np.linspace(0.25, 1.0, 12).reshape(12, 1)
    lo = 0.5 * hi
    alloc = ModelPolicy(model, batch_size=16).allocate(windows, lo, hi)  # one batch: one trace
    assert alloc.shape == (12, 4, 5, 4, 2) and alloc.dtype == np.float64
    check_allocations(alloc, lo, hi)


# ------------------------------------------------------------------------------------------------
# ScheduleTable (external schedules)
# ------------------------------------------------------------------------------------------------
def _table_of(policy, windows, name: str = "table") -> ScheduleTable:
    return ScheduleTable(policy.allocate(windows), windows.asset, windows.origin, name=name)


def test_schedule_table_reproduces_the_stored_policy_in_any_row_order():
    from lems.backtest import backtest

    windows = _windows(5)
    rows = np.random.default_rng(0).permutation(len(windows))
    shuffled = windows.subset(rows)
    table = _table_of(StaticVWAP(n_days=5), shuffled)
    assert isinstance(table, Policy)
    np.testing.assert_array_equal(table.allocate(windows), StaticVWAP(n_days=5).allocate(windows))
    frame = backtest({"static": StaticVWAP(n_days=5), "table": table}, windows)
    per_policy = frame.pivot_table(index=frame.index % (len(frame) // 2), columns="policy",
                                   values="improvement_bps", observed=True)
    np.testing.assert_allclose(per_policy["static"], per_policy["table"])


def test_schedule_table_rejects_missing_windows_and_broken_limits():
    windows = _windows(5)
    table = _table_of(TWAP(), windows.subset(np.arange(len(windows) - 1)))
    with pytest.raises(ValueError, match="no allocations for 1 window"):
        table.allocate(windows)
    full = _table_of(TWAP(), windows)
    full.allocate(windows, max_rate=0.2)  # uniform over 5 bars: exactly at the limit
    with pytest.raises(ValueError, match="above max_rate"):
        _table_of(FlexibleRule(n_days=5), windows).allocate(windows, max_rate=0.5)
    with pytest.raises(ValueError, match="duplicate"):
        ScheduleTable(np.concatenate([full.allocations] * 2), np.concatenate([windows.asset] * 2),
                      windows.origin.append(windows.origin))
    with pytest.raises(ValueError, match="horizon"):
        full.allocate(_windows(4))


# ------------------------------------------------------------------------------------------------
# Almgren-Chriss
# ------------------------------------------------------------------------------------------------
def _ac_objective(holdings: np.ndarray, lam: float, sigma: float, eta: float, gamma: float) -> float:
    trades = -np.diff(np.r_[1.0, holdings, 0.0])
    expected, variance = almgren_chriss_cost(trades, sigma, eta, gamma)
    return float(expected + lam * variance)


@pytest.mark.parametrize("lam, sigma, eta, gamma", [(1e2, 0.01, 2e-3, 0.0), (5e3, 0.004, 1e-3, 1e-3),
                                                    (1.0, 0.02, 5e-4, 4e-4)])
def test_almgren_chriss_is_the_minimiser_of_e_plus_lambda_v(lam, sigma, eta, gamma):
    """Closed form against a brute-force numerical minimisation (finite-difference Newton on the holdings)."""
    horizon = 6
    closed = almgren_chriss_holdings(horizon, lam, sigma, eta, gamma)
    assert closed[0] == 1.0 and closed[-1] == 0.0 and np.all(np.diff(closed) <= 0)
    f = lambda x: _ac_objective(x, lam, sigma, eta, gamma)  # noqa: E731
    x0, h, k = np.linspace(1, 0, horizon + 1)[1:-1], 1e-3, horizon - 1
    eye = np.eye(k) * h
    grad = np.array([(f(x0 + e) - f(x0 - e)) / (2 * h) for e in eye])
    hess = np.array([[(f(x0 + a + b) - f(x0 + a - b) - f(x0 - a + b) + f(x0 - a - b)) / (4 * h * h) for b in eye]
                     for a in eye])
    numeric = x0 - np.linalg.solve(hess, grad)  # exact for a quadratic objective, up to rounding
    np.testing.assert_allclose(closed[1:-1], numeric, atol=1e-8)
    rng = np.random.default_rng(0)
    best = f(closed[1:-1])
    assert all(best <= f(closed[1:-1] + 1e-3 * rng.standard_normal(k)) for _ in range(20))
    # the discrete Euler-Lagrange equation of Almgren & Chriss: x_{j-1} - 2 x_j + x_{j+1} = kappa_tilde^2 x_j
    kappa_tilde2 = lam * sigma**2 / (eta - gamma / 2)
    np.testing.assert_allclose(closed[:-2] - 2 * closed[1:-1] + closed[2:], kappa_tilde2 * closed[1:-1], atol=1e-12)
    kappa = almgren_chriss_kappa(lam, sigma, eta, gamma)
    np.testing.assert_allclose(2 * (np.cosh(kappa) - 1), kappa_tilde2, rtol=1e-12)
    np.testing.assert_allclose(closed, np.sinh(kappa * (horizon - np.arange(horizon + 1))) / np.sinh(kappa * horizon),
                               rtol=1e-12, atol=1e-15)


def test_almgren_chriss_limits_twap_and_stability():
    np.testing.assert_allclose(almgren_chriss_trades(5, 0.0, 0.01, 1e-3), 0.2, atol=1e-15)  # lambda = 0: TWAP
    np.testing.assert_allclose(almgren_chriss_trades(5, 1e-12, 0.01, 1e-3), 0.2, atol=1e-9)  # continuous at 0
    np.testing.assert_allclose(almgren_chriss_trades(5, 1e3, 0.0, 1e-3), 0.2, atol=1e-15)  # no risk: TWAP
    steep = almgren_chriss_trades(5, 1e12, 0.05, 1e-6)  # kappa * T ~ 1e3: no overflow, everything at once
    assert np.all(np.isfinite(steep)) and steep[0] == pytest.approx(1.0)
    grid = almgren_chriss_trades(8, np.array([0.0, 10.0, 1e3]), 0.01, 1e-3)
    assert grid.shape == (3, 8) and np.all(np.diff(grid[2]) < 0)  # front-loaded as risk aversion grows
    np.testing.assert_allclose(grid.sum(axis=1), 1.0, atol=1e-12)


def test_almgren_chriss_frontier_trades_cost_for_risk():
    frontier = almgren_chriss_frontier(10, np.geomspace(1e-1, 1e5, 12), 0.01, 1e-3, 1e-4)
    assert list(frontier.columns) == ["risk_aversion", "kappa", "expected_cost_bps", "std_bps"]
    assert np.all(np.diff(frontier["expected_cost_bps"]) > 0) and np.all(np.diff(frontier["std_bps"]) < 0)
    twap = almgren_chriss_cost(np.full(10, 0.1), 0.01, 1e-3, 1e-4)
    zero = almgren_chriss_frontier(10, [0.0], 0.01, 1e-3, 1e-4)
    assert zero["expected_cost_bps"][0] == pytest.approx(twap[0] * 1e4) and zero["std_bps"][0] == pytest.approx(
        np.sqrt(twap[1]) * 1e4)


def test_almgren_chriss_policy():
    windows = _windows(6)
    sigma = lookback_volatility(windows)
    policy = AlmgrenChriss(5e2, eta=1e-3)
    alloc = policy.allocate(windows)
    expected = almgren_chriss_trades(6, 5e2, sigma, 1e-3)
    for col in (0, 3, 6):
        for otype in range(4):
            np.testing.assert_allclose(alloc[:, :, col, otype, 1], expected, atol=1e-12)
    limited = policy.allocate(windows, min_rate=0.1, max_rate=0.25)
    check_allocations(limited, 0.1, 0.25)
    assert np.abs(limited - alloc).max() > 0.01  # the limits bind on the front-loaded schedule
    fixed = AlmgrenChriss(0.0, eta=1e-3, sigma=0.01).allocate(windows)
    np.testing.assert_allclose(fixed, TWAP().allocate(windows), atol=1e-15)
    for bad, match in ((dict(risk_aversion=-1.0), "risk_aversion"), (dict(eta=0.0), "eta"),
                       (dict(eta=1e-3, gamma=3e-3), "eta must exceed"), (dict(sigma=-0.1), "sigma"),
                       (dict(gamma=-1e-4), "gamma")):
        with pytest.raises(ValueError, match=match):
            AlmgrenChriss(**bad)


def test_almgren_chriss_causal_end_to_end():
    bars = _bars(n_assets=1)
    cut = 200
    base = make_windows(bars, LOOKBACK, 4)
    later = make_windows(_perturb(bars, np.arange(cut, len(bars)), seed=4), LOOKBACK, 4)
    _origins_match(base, later)
    policy = AlmgrenChriss(5e2, eta=1e-3)
    a, b = policy.allocate(base), policy.allocate(later)
    known = base.origin_index <= cut  # lookback bars < t0 <= cut are untouched
    assert np.array_equal(a[known], b[known])
    assert not np.allclose(a[~known], b[~known])


def test_flexible_rule_decay_lowers_the_threshold_as_time_runs_out():
    """decay > 0: the threshold at bar s is threshold * ((H - s) / H) ** decay <= threshold, so the rule triggers
    on a superset of bars: every flexible order finishes no later than with the constant threshold, some earlier."""
    windows = _windows(8)

    def last_bars(policy):
        traded = policy.allocate(windows)[:, :, :-1] > 1e-9
        return traded.shape[1] - 1 - np.argmax(traded[:, ::-1], axis=1)

    constant, decayed = last_bars(FlexibleRule(0.5)), last_bars(FlexibleRule(0.5, decay=1.0))
    assert np.all(decayed <= constant) and np.any(decayed < constant)
    np.testing.assert_array_equal(last_bars(FlexibleRule(0.5, decay=0.0)), constant)
    for bad in (-0.5, np.nan):
        with pytest.raises(ValueError, match="decay"):
            FlexibleRule(0.5, decay=bad)
