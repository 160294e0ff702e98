"""The dynamic volume forecast as schedules: DynamicVWAP (model-free) and ForecastSchedule (a model's forecast alone).

DynamicVWAP: rho = 0 is StaticVWAP bit for bit, the formula by hand, no look-ahead (on the window's horizon bars and
end to end on the raw bars), the limits, the fit (reads only its windows, finds persistence where there is some).
"""

from __future__ import annotations

import ast
import dataclasses
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lems.data.estimates import previous_bar_volume, static_volume_curve
from lems.data.synthetic import synthetic_market
from lems.data.windows import make_windows
from lems.execution import IS_VWAP_ORDER, check_allocations, fixed_duration_diffs
from lems.policies import BASELINES, DynamicVWAP, ForecastSchedule, Policy, StaticVWAP

ROOT = Path(__file__).resolve().parents[1]
LOOKBACK = 8


@cache
def _bars(seed: int = 0, shock: float = 0.0, n_days: int = 16, n_assets: int = 2) -> pd.DataFrame:
    return synthetic_market(n_assets=n_assets, n_days=n_days, seed=seed, volume_shock_sigma=shock)


@cache
def _windows(horizon: int = 6, stride: int = 5, shock: float = 0.0):
    return make_windows(_bars(shock=shock), LOOKBACK, horizon, stride=stride)


def _perturb_volumes(bars: pd.DataFrame, rows: np.ndarray, seed: int) -> pd.DataFrame:
    """Scale the volumes and the prices of the given rows by random positive factors."""
    rng = np.random.default_rng(seed)
    out = bars.copy()
    fv, fp = rng.uniform(0.2, 5.0, rows.size), rng.uniform(0.9, 1.1, rows.size)
    out.loc[rows, "volume"] *= fv
    out.loc[rows, "notional"] *= fv * fp
    for col in ("open", "high", "low", "close"):
        out.loc[rows, col] *= fp
    return out


def _vwap_spread(allocations: np.ndarray, windows) -> float:
    """Fixed-duration VWAP tracking spread [bps]: std of the signed diffs of both sides and targets."""
    diffs = fixed_duration_diffs(allocations, windows.prices, windows.volumes)[:, IS_VWAP_ORDER]
    return float(np.std(diffs.ravel() * 1e4, ddof=1))


# ------------------------------------------------------------------------------------------------
# The formula
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("horizon", [2, 5, 8])
@pytest.mark.parametrize("rates", [(0.0, 1.0), (0.05, 0.6), "per_window"])
def test_rho_zero_is_static_vwap_bit_for_bit(horizon, rates):
    windows = _windows(horizon)
    if rates == "per_window":
        rng = np.random.default_rng(horizon)
        hi = rng.uniform(1.0 / horizon, 1.0, (len(windows), 1))
        rates = (rng.uniform(0.0, 1.0, (len(windows), 1)) * hi, hi)
    static = StaticVWAP(n_days=5).allocate(windows, *rates)
    for level in (0.0, 0.5, 1.0):
        assert np.array_equal(DynamicVWAP(0.0, level, n_days=5).allocate(windows, *rates), static)


def test_the_schedule_by_hand():
    windows = _windows(6)
    rho, level_weight, n_days = 0.7, 0.5, 5
    policy = DynamicVWAP(rho, level_weight, n_days=n_days)
    shares = policy.shares(windows)
    curve = static_volume_curve(windows, n_days)
    prev_volume, prev_curve = previous_bar_volume(windows, n_days)
    floor = DynamicVWAP.SHARE_FLOOR / 6
    for i in (len(windows) // 2, len(windows) * 3 // 4, len(windows) - 1):  # a history for every slot
        bars = windows.bars[windows.asset[i]]
        t0 = int(windows.origin_index[i])
        # bar t0 - 1 and its curve value by hand: the mean of the last n_days bars of its slot before it
        past = bars.iloc[: t0 - 1]
        expected_prev = past.loc[past["slot"] == bars["slot"].iloc[t0 - 1], "volume"].iloc[-n_days:].mean()
        assert prev_volume[i] == bars["volume"].iloc[t0 - 1]
        assert prev_curve[i] == pytest.approx(expected_prev, rel=1e-12)
        c, total = curve[i], curve[i].sum()
        volumes = np.r_[prev_volume[i], windows.volumes[i]]
        curves = np.r_[prev_curve[i], c]
        for s in range(6):
            closed_v, closed_c = volumes[: s + 1], curves[: s + 1]  # bars t0 - 1 .. t0 + s - 1
            surprise = np.log(max(closed_v[-1] / total, floor)) - np.log(max(closed_c[-1] / total, floor))
            level = np.log(max(closed_v.sum() / total, floor)) - np.log(max(closed_c.sum() / total, floor))
            z = surprise - level_weight * level
            weights = c[s:] * np.exp(rho ** np.arange(1, 7 - s) * z)
            assert shares[i, s] == pytest.approx(weights[0] / weights.sum(), rel=1e-12)
    alloc = policy.allocate(windows)
    remaining = 1.0 - np.cumsum(alloc[:, :, -1, 0, 0], axis=1) + alloc[:, :, -1, 0, 0]
    np.testing.assert_allclose(alloc[:, :, -1, 0, 0], remaining * shares, atol=1e-13)  # no limits: a = R * share
    np.testing.assert_allclose(alloc[:, :, :, 1], 1 / 6, atol=1e-15)  # TWAP order types stay uniform
    assert np.array_equal(alloc[..., 0], alloc[..., 1])  # both targets the same
    assert not np.allclose(alloc, StaticVWAP(n_days=n_days).allocate(windows))  # the deviation does move it


def test_full_level_weight_cancels_the_level():
    """lambda = 1: scaling every closed volume (bar t0 - 1 and the horizon) by a constant changes nothing."""
    windows = _windows(6)
    policy = DynamicVWAP(0.8, 1.0, n_days=5)
    # no floor binds, and every slot has a history (no fallback curve, which would read bar t0 - 1 too)
    traded = np.flatnonzero((windows.volumes > 0).all(axis=1) & (np.arange(len(windows)) > len(windows) // 2))
    for i in traded[[0, -1]]:
        one = windows.subset(np.array([i]))
        asset, t0 = str(one.asset[0]), int(one.origin_index[0])
        bars = one.bars[asset].copy()
        bars.loc[t0 - 1, "volume"] *= 3.0  # bar t0 - 1 is not in the curve of t0 - 1 nor of the horizon bars
        scaled = dataclasses.replace(one, volumes=one.volumes * 3.0, bars={**one.bars, asset: bars})
        np.testing.assert_allclose(policy.allocate(scaled), policy.allocate(one), rtol=0, atol=1e-12)
        assert not np.allclose(DynamicVWAP(0.8, 0.0, n_days=5).allocate(scaled),
                               DynamicVWAP(0.8, 0.0, n_days=5).allocate(one))  # lambda = 0 does see the level


# ------------------------------------------------------------------------------------------------
# No look-ahead
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("level_weight", [0.0, 0.5, 1.0])
def test_causal_on_horizon_bars(level_weight):
    """Decision k (taken at the open of bar k) reads bars < k: changing bars k.. leaves a_0 .. a_k unchanged."""
    windows = _windows(6)
    rng = np.random.default_rng(1)
    policy = DynamicVWAP(0.7, level_weight, n_days=5)
    alloc, shares = policy.allocate(windows, 0.02, 0.5), policy.shares(windows)
    changed = False
    for k in range(6):
        prices, volumes = windows.prices.copy(), windows.volumes.copy()
        prices[:, k:] *= rng.uniform(0.95, 1.05, prices[:, k:].shape)
        volumes[:, k:] *= rng.uniform(0.0, 3.0, volumes[:, k:].shape)
        moved = dataclasses.replace(windows, prices=prices, volumes=volumes)
        assert np.array_equal(policy.shares(moved)[:, : k + 1], shares[:, : k + 1]), k  # the share at bar k too
        assert np.array_equal(policy.allocate(moved, 0.02, 0.5)[:, : k + 1], alloc[:, : k + 1]), k
        changed |= not np.allclose(policy.shares(moved), shares)
    assert changed  # the horizon's volumes are read (by the later decisions)


def test_causal_end_to_end():
    bars = _bars(n_assets=1)
    cut, horizon = 200, 6  # single symbol: row == bar index
    base = make_windows(bars, LOOKBACK, horizon)
    later = make_windows(_perturb_volumes(bars, np.arange(cut, len(bars)), seed=3), LOOKBACK, horizon)
    assert np.array_equal(base.origin_index, later.origin_index)
    steps_known = cut - base.origin_index  # decisions 0 .. cut - t0 are taken before bar `cut` closes
    changed = False
    for policy in (DynamicVWAP(0.8, 0.0, n_days=5), DynamicVWAP(0.5, 1.0, n_days=5)):
        a, b = policy.allocate(base), policy.allocate(later)
        rows = np.flatnonzero(steps_known >= 0)
        assert rows.size > horizon
        for row in rows:
            s = min(int(steps_known[row]), horizon - 1)
            assert np.array_equal(a[row, : s + 1], b[row, : s + 1]), (row, s)
            changed |= not np.allclose(a[row], b[row])
    assert changed


# ------------------------------------------------------------------------------------------------
# Limits
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("horizon", [2, 4, 7])
def test_invariants_on_random_rates(horizon):
    windows = make_windows(_bars(shock=1.0), LOOKBACK, horizon, stride=7)
    n, tight = len(windows), 1.0 / horizon
    rng = np.random.default_rng(horizon)
    policies = [DynamicVWAP(r, x, n_days=5) for r, x in ((0.3, 0.0), (0.9, 1.0), (1.0, 0.5))]
    for _ in range(4):
        hi = rng.uniform(tight, 1.0, (n, 1))
        hi[rng.random((n, 1)) < 0.3] = tight
        lo = np.where(rng.random((n, 1)) < 0.2, hi, rng.uniform(0.0, 1.0, (n, 1)) * hi)
        for policy in policies:
            alloc = policy.allocate(windows, lo, hi)
            assert alloc.shape == (n, horizon, horizon + 1, 4, 2) and alloc.dtype == np.float64
            check_allocations(alloc, lo, hi)
    # zero-volume horizon bars (a floored surprise, never -inf) and an extreme spike stay valid
    volumes = windows.volumes.copy()
    volumes[:, 0] = 0.0
    volumes[::2, -1] *= 1e12
    extreme = dataclasses.replace(windows, volumes=volumes)
    for policy in policies:
        check_allocations(policy.allocate(extreme, 0.0, 1.0))


@pytest.mark.parametrize("lo, hi", [(0.0, 0.2), (0.5, 0.4), (-0.1, 0.5), (0.0, np.nan), (np.inf, 1.0),
                                    (0.0, np.full((3, 1), 0.5))])
def test_infeasible_rates_raise(lo, hi):
    windows = _windows(4)  # H = 4: max_rate 0.2 cannot complete; (3, 1) is the wrong shape
    with pytest.raises(ValueError):
        DynamicVWAP(0.5).allocate(windows, lo, hi)


def test_bad_parameters_and_empty_windows():
    for bad in ({"rho": -0.1}, {"rho": 1.5}, {"rho": np.nan}, {"rho": 0.5, "level_weight": 2.0},
                {"rho": 0.5, "n_days": 0}):
        with pytest.raises(ValueError):
            DynamicVWAP(**bad)
    empty = _windows(4).subset(np.zeros(0, dtype=np.int64))
    assert DynamicVWAP(0.5).allocate(empty).shape == (0, 4, 5, 4, 2)
    with pytest.raises(ValueError):
        DynamicVWAP.fit(empty)
    with pytest.raises(ValueError):
        DynamicVWAP.fit(_windows(4), rhos=(0.5, 1.2))
    policy = DynamicVWAP(0.5)
    assert isinstance(policy, Policy) and policy.name == "dynamic_vwap" and "rho=0.5" in repr(policy)
    assert "dynamic_vwap" not in BASELINES and DynamicVWAP not in BASELINES.values()  # it must be fitted first


# ------------------------------------------------------------------------------------------------
# The fit
# ------------------------------------------------------------------------------------------------
@cache
def _shock_windows():
    """Hourly 24/7 windows of a market with day-level volume shocks that decay by 0.8 per bar (persistent)."""
    bars = synthetic_market(n_assets=2, n_days=40, seed=5, volume_shock_sigma=1.0, volume_shock_decay=0.8)
    return bars, make_windows(bars, 24, 12, stride=2)


def test_fit_reads_only_the_windows_it_is_given():
    bars, windows = _shock_windows()
    val_end = windows.origin[len(windows) // 2]
    val, test = windows.split(val_end)
    fitted = DynamicVWAP.fit(val, n_days=5)
    # every bar from the validation split's end on changes: the test windows' horizons, their lookbacks, ...
    later = _perturb_volumes(bars, np.flatnonzero(bars["timestamp"] >= val_end), seed=4)
    val2, test2 = make_windows(later, 24, 12, stride=2).split(val_end)
    assert np.array_equal(val2.origin_index, val.origin_index) and not np.allclose(test2.volumes, test.volumes)
    refit = DynamicVWAP.fit(val2, n_days=5)
    assert (refit.rho, refit.level_weight) == (fitted.rho, fitted.level_weight)
    assert refit.fit_spreads == fitted.fit_spreads


def test_fit_finds_persistence_and_beats_the_static_curve():
    _, windows = _shock_windows()
    fitted = DynamicVWAP.fit(windows)
    assert fitted.rho > 0 and fitted.name == "dynamic_vwap"
    assert set(fitted.fit_spreads) == {(r, x) for r in (0.0, 0.2, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95)
                                       for x in (0.0, 0.5, 1.0)}
    static = _vwap_spread(StaticVWAP().allocate(windows), windows)
    dynamic = _vwap_spread(fitted.allocate(windows), windows)
    assert fitted.fit_spreads[(0.0, 0.0)] == pytest.approx(static, rel=1e-9)  # rho = 0: the static curve's
    assert dynamic == pytest.approx(min(fitted.fit_spreads.values()), rel=1e-9)
    assert dynamic < static


# ------------------------------------------------------------------------------------------------
# ForecastSchedule: a model's volume forecast alone
# ------------------------------------------------------------------------------------------------
def test_forecast_schedule_lives_in_the_library():
    tree = ast.parse((ROOT / "benchmarks" / "real_data.py").read_text(encoding="utf-8"))
    classes = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
    assert "ForecastSchedule" not in classes  # the benchmark imports it from lems.policies
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and node.module == "lems.policies" for alias in node.names}
    assert "ForecastSchedule" in imported


@pytest.mark.backend
def test_forecast_schedule_from_a_tiny_model():
    import keras

    from lems.models import LargeExecutionModel

    horizon, lookback = 4, 16
    keras.utils.set_random_seed(0)
    model = LargeExecutionModel(lookback=lookback, n_ahead=horizon, hidden_size=8, hidden_rnn_layer=1, num_heads=2,
                                num_embedding=4, fused_mlp_hidden_dim=8, volume_forecast=True)
    windows = make_windows(_bars(), lookback, horizon, stride=9)
    model.build([(None, *windows.X.shape[1:]), (None, 1), (None, 1)])
    policy = ForecastSchedule(model, batch_size=len(windows) // 2 + 1)  # two batches
    assert isinstance(policy, Policy) and policy.name == "dynamic_forecast"
    shares = policy.shares(windows)
    assert shares.shape == (len(windows), horizon) and np.all(shares[:, -1] == 1.0)
    assert np.all((shares >= 0) & (shares <= 1))
    for lo, hi in ((0.0, 1.0), (0.1, 0.4)):
        alloc = policy.allocate(windows, lo, hi)
        assert alloc.shape == (len(windows), horizon, horizon + 1, 4, 2)
        check_allocations(alloc, lo, hi)
        np.testing.assert_allclose(alloc[:, :, :, 1], 1 / horizon, atol=1e-12)  # TWAP types uniform
    with pytest.raises(ValueError):
        policy.allocate(windows, 0.0, 0.2)  # H * max_rate < 1
