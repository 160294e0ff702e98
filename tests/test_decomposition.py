"""lems.evaluation.decomposition: exact identities, agreement with the backtest, share R², the ladder."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from lems.backtest import backtest
from lems.baselines import TWAP, FlexibleRule, StaticVWAP
from lems.data.synthetic import synthetic_market
from lems.data.windows import make_windows
from lems.evaluation.decomposition import (
    ladder,
    ladder_schedule,
    market_shares,
    remaining_shares,
    share_r2,
    static_shares,
    tracking_decomposition,
    tracking_inputs,
)

H = 6


@lru_cache(maxsize=None)
def _windows():
    return make_windows(synthetic_market(n_assets=2, n_days=15, seed=4), 8, H, stride=5)


def random_case(n: int = 200, horizon: int = 8, seed: int = 0):
    """Random schedules, realised shares and prices; ``d`` from the w-VWAP."""
    rng = np.random.default_rng(seed)
    x = rng.dirichlet(np.ones(horizon), n)
    w = rng.dirichlet(np.ones(horizon) * 2, n)
    p = 100 * np.exp(np.cumsum(rng.normal(0, 2e-3, (n, horizon)), axis=1))
    vwap = np.sum(w * p, axis=1, keepdims=True)
    return x, w, p, vwap


def test_identities_hold_exactly_on_random_schedules():
    x, w, p, vwap = random_case()
    dec = tracking_decomposition(x, w, p / vwap - 1)
    achieved = np.sum(x * p, axis=1)  # quantity order: P = sum x p
    np.testing.assert_allclose(dec.diff, achieved / vwap[:, 0] - 1, rtol=0, atol=1e-13)
    np.testing.assert_allclose(dec.contribution.sum(axis=1), dec.diff, rtol=0, atol=1e-15)
    horizon = x.shape[1]
    recomposed = horizon * dec.window_share_error * dec.window_price_dispersion * dec.window_correlation
    np.testing.assert_allclose(recomposed, dec.diff, rtol=1e-10, atol=1e-15)
    assert np.all(np.abs(dec.window_correlation) <= 1 + 1e-12)
    assert dec.step_mean.sum() == pytest.approx(dec.bias, rel=1e-10, abs=1e-15)
    assert dec.step_covariance.sum() == pytest.approx(dec.spread**2, rel=1e-10)
    assert dec.step_second_moment.sum() == pytest.approx(np.mean(dec.diff**2), rel=1e-10)
    assert dec.rms_diff == pytest.approx(
        horizon * dec.share_rms * dec.price_dispersion * dec.effective_correlation, rel=1e-12)
    np.testing.assert_allclose(dec.step_variance, np.var(dec.contribution, axis=0, ddof=1), rtol=1e-12)
    assert dec.share_rms == pytest.approx(np.sqrt(np.mean((x - w) ** 2)), rel=1e-12)
    np.testing.assert_allclose(dec.step_share_rms, np.sqrt(np.mean((x - w) ** 2, axis=0)), rtol=1e-12)
    steps = dec.per_step()
    assert steps["variance_fraction"].sum() == pytest.approx(1.0, rel=1e-10)
    assert steps["mean_bps"].sum() == pytest.approx(dec.bias * 1e4, rel=1e-10, abs=1e-12)
    summary = dec.summary()
    assert summary["spread_bps"] == pytest.approx(np.std(dec.diff, ddof=1) * 1e4, rel=1e-12)
    assert summary["mean_abs_diff_bps"] == pytest.approx(np.mean(np.abs(dec.diff)) * 1e4, rel=1e-12)


def test_an_error_made_in_one_step_is_found_there():
    x, w, p, vwap = random_case(seed=1)
    d = p / vwap - 1
    moved = w.copy()  # the schedule follows w except for a swap between steps 5 and 6
    moved[:, 5] += 0.5 * w[:, 6]
    moved[:, 6] -= 0.5 * w[:, 6]
    dec = tracking_decomposition(moved, w, d)
    others = np.delete(np.arange(x.shape[1]), [5, 6])
    assert np.all(dec.step_covariance[others] == 0) and np.all(dec.step_mean[others] == 0)
    assert dec.step_covariance[5:7].sum() == pytest.approx(dec.spread**2, rel=1e-10)


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_inputs_match_the_backtest_frame(side):
    windows = _windows()
    policies = {"twap": TWAP(), "static_vwap": StaticVWAP(n_days=5), "flexible_rule": FlexibleRule(0.5, n_days=5)}
    frame = backtest(policies, windows)
    rows = frame[(frame["side"] == side) & (frame["benchmark"] == "vwap") & (frame["target"] == "quantity")
                 & (frame["objective"] == "track")]
    for name, policy in policies.items():
        inputs = tracking_inputs(policy, windows, side=side)
        dec = tracking_decomposition(*inputs)
        want = rows[rows["policy"] == name].sort_values("window")["diff"].to_numpy()
        assert want.shape == dec.diff.shape
        np.testing.assert_allclose(dec.diff, want, rtol=0, atol=1e-10)
        # allocations given directly give the same inputs
        again = tracking_inputs(policy.allocate(windows), windows, side=side)
        np.testing.assert_array_equal(again.x, inputs.x)


def test_static_shares_are_the_static_policy_schedule():
    windows = _windows()
    x = tracking_inputs(StaticVWAP(n_days=5), windows).x
    np.testing.assert_allclose(static_shares(windows, n_days=5), x, rtol=0, atol=1e-12)
    w, d = market_shares(windows)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(np.sum(w * d, axis=1), 0.0, atol=1e-14)


def test_bad_inputs_are_errors():
    x, w, p, vwap = random_case(n=5)
    d = p / vwap - 1
    with pytest.raises(ValueError, match="shape"):
        tracking_decomposition(x, w[:, :-1], d)
    with pytest.raises(ValueError, match="sum to 1"):
        tracking_decomposition(x * 1.1, w, d)
    with pytest.raises(ValueError, match="w-weighted VWAP"):
        tracking_decomposition(x, w, p / 100 - 1)
    with pytest.raises(ValueError, match="at least 2 windows"):
        tracking_decomposition(x[:1], w[:1], d[:1])
    holed = x.copy()
    holed[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        tracking_decomposition(holed, w, d)
    with pytest.raises(ValueError, match="side"):
        tracking_inputs(TWAP(), _windows(), side="short")
    with pytest.raises(ValueError, match="seed layout"):
        tracking_inputs(np.ones((2, H)), _windows())


# ----------------------------------------------------------------------------------------------------------------
# Share R²
# ----------------------------------------------------------------------------------------------------------------
def loop_r2(x, w, reference=None):
    """R² per step by explicit loops (independent of the vectorised code)."""
    n, horizon = w.shape
    out = []
    for s in range(horizon - 1):
        pairs = []
        for i in range(n):
            left = w[i, s:].sum()
            if left <= 0:
                continue
            xl = x[i, s:].sum()
            f = x[i, s] / xl if xl > 0 else 1 / (horizon - s)
            g = None
            if reference is not None:
                rl = reference[i, s:].sum()
                g = reference[i, s] / rl if rl > 0 else 1 / (horizon - s)
            pairs.append((w[i, s] / left, f, g))
        r = np.array([a for a, _, _ in pairs])
        f = np.array([b for _, b, _ in pairs])
        g = np.full_like(r, r.mean()) if reference is None else np.array([c for _, _, c in pairs])
        out.append(1 - np.sum((r - f) ** 2) / np.sum((r - g) ** 2))
    return np.array(out)


def test_share_r2_against_loops_and_its_fixed_points():
    x, w, _, _ = random_case(n=50, horizon=5, seed=2)
    w[3, 2:] = 0.0  # a window whose volume ends early: skipped where nothing is left
    w[3] /= w[3].sum()
    g = np.linspace(1.5, 0.5, 5) / 5
    np.testing.assert_allclose(share_r2(x, w), loop_r2(x, w), rtol=1e-12)
    ref = np.broadcast_to(g / g.sum(), w.shape)
    np.testing.assert_allclose(share_r2(x, w, reference=g / g.sum()), loop_r2(x, w, ref), rtol=1e-12)
    np.testing.assert_allclose(share_r2(w, w), 1.0, atol=1e-15)  # the realised shares forecast themselves
    np.testing.assert_allclose(share_r2(ref, w, reference=ref), 0.0, atol=1e-15)
    assert share_r2(x, w).shape == (4,)
    np.testing.assert_allclose(remaining_shares(w)[:, -1], 1.0)


def test_share_r2_errors():
    x, w, _, _ = random_case(n=4, horizon=3)
    with pytest.raises(ValueError, match="exact"):
        share_r2(x, w, reference=w)
    with pytest.raises(ValueError, match="at least 2"):
        share_r2(x[:, :1], w[:, :1])
    with pytest.raises(ValueError, match="non-negative"):
        share_r2(-x, w)


# ----------------------------------------------------------------------------------------------------------------
# Ladder
# ----------------------------------------------------------------------------------------------------------------
def loop_rung(g, w, k, mass="realised"):
    """Rung k by explicit sequential decisions (the docstring's definitions)."""
    n, horizon = w.shape
    x = np.zeros_like(w)
    for i in range(n):
        remaining = 1.0
        for s in range(horizon):
            known, rest = list(range(s, min(s + k, horizon))), list(range(s, horizon))
            wk, gk, gr = w[i, known].sum(), g[i, known].sum(), g[i, rest].sum()
            gu = gr - gk
            if s == horizon - 1:
                q = 1.0
            elif k == 0:
                q = g[i, s] / gr if gr > 0 else 1 / (horizon - s)
            elif mass == "realised":
                q = w[i, s] / (wk + gu) if wk + gu > 0 else 1 / (horizon - s)
            else:
                split = w[i, s] / wk if wk > 0 else (g[i, s] / gk if gk > 0 else 1 / len(known))
                q = split * (gk / gr if gr > 0 else len(known) / (horizon - s))
            x[i, s] = remaining * q
            remaining -= x[i, s]
    return x


def seasonal_case(n: int = 3000, horizon: int = 12, seed: int = 3):
    """Realised shares around a static curve with persistent volume surprises, and random-walk prices."""
    rng = np.random.default_rng(seed)
    g = np.linspace(2.0, 1.0, horizon)
    g /= g.sum()
    surprise = 0.25 * np.cumsum(rng.normal(0, 1, (n, horizon)), axis=1) + rng.normal(0, 0.3, (n, horizon))
    v = g * np.exp(surprise)
    w = v / v.sum(axis=1, keepdims=True)
    p = np.exp(np.cumsum(rng.normal(0, 1e-3, (n, horizon)), axis=1))
    d = p / np.sum(w * p, axis=1, keepdims=True) - 1
    return g, w, d


@pytest.mark.parametrize("mass", ["realised", "static"])
def test_rung_zero_is_the_static_curve_and_rung_h_is_exact(mass):
    g, w, d = seasonal_case(n=300)
    horizon = w.shape[1]
    np.testing.assert_allclose(ladder_schedule(g, w, 0, mass=mass), np.broadcast_to(g, w.shape), rtol=0, atol=1e-15)
    per_window = np.random.default_rng(0).dirichlet(np.ones(horizon), w.shape[0])
    np.testing.assert_allclose(ladder_schedule(per_window, w, 0, mass=mass), per_window, rtol=0, atol=1e-15)
    exact = ladder_schedule(g, w, horizon, mass=mass)
    np.testing.assert_allclose(exact, w, rtol=0, atol=1e-15)
    assert np.abs(tracking_decomposition(exact, w, d).diff).max() < 1e-15


def test_static_mass_rung_one_is_rung_zero():
    g, w, _ = seasonal_case(n=300)
    np.testing.assert_allclose(ladder_schedule(g, w, 1, mass="static"), ladder_schedule(g, w, 0, mass="static"),
                               rtol=0, atol=1e-15)
    assert np.abs(ladder_schedule(g, w, 1) - ladder_schedule(g, w, 0)).max() > 1e-3  # the realised mass differs


@pytest.mark.parametrize("mass", ["realised", "static"])
@pytest.mark.parametrize("k", [0, 1, 2, 5, 11, 12])
def test_rungs_follow_their_definition(k, mass):
    g, w, _ = seasonal_case(n=40)
    w[0, 6:] = 0.0  # volume that stops early
    w[0] /= w[0].sum()
    g_rows = np.broadcast_to(g, w.shape).copy()
    g_rows[1, 3:5] = 0.0  # a static curve with silent bars
    g_rows[1] /= g_rows[1].sum()
    x = ladder_schedule(g_rows, w, k, mass=mass)
    np.testing.assert_allclose(x, loop_rung(g_rows, w, k, mass), rtol=0, atol=1e-14)
    assert np.all(x >= 0)
    np.testing.assert_allclose(x.sum(axis=1), 1.0, atol=1e-14)
    if k:  # the last k bars are traded in proportion to the realised shares
        tail = slice(w.shape[1] - k, None)
        ratio = x[1:, tail] / w[1:, tail]
        np.testing.assert_allclose(ratio, np.broadcast_to(ratio[:, :1], ratio.shape), rtol=1e-12)


@pytest.mark.parametrize("mass", ["realised", "static"])
def test_ladder_spread_falls_with_k_on_a_seasonal_market(mass):
    """Not a theorem for every sample: checked on a fixed-seed market with persistent volume surprises, where
    knowing more realised bars must help on average; the margins between rungs are far above sampling noise."""
    g, w, d = seasonal_case()
    table = ladder(g, w, d, mass=mass)
    assert table["k"].tolist() == list(range(13))
    assert table["spread_vs_static"].iloc[0] == 1.0 and table["spread_vs_static"].iloc[-1] < 1e-10
    first = 2 if mass == "static" else 1  # with the static mass, rung 1 is rung 0
    for column in ("spread_bps", "share_rms"):
        values = table[column].to_numpy()
        assert np.all(np.diff(values[first - 1:]) < 0), column


def test_ladder_errors():
    g, w, d = seasonal_case(n=10)
    with pytest.raises(ValueError, match="k must be"):
        ladder_schedule(g, w, 13)
    with pytest.raises(ValueError, match="k must be"):
        ladder_schedule(g, w, -1)
    with pytest.raises(ValueError, match="sum to 1"):
        ladder_schedule(g * 2, w, 1)
    with pytest.raises(ValueError, match="mass"):
        ladder_schedule(g, w, 1, mass="level")
    with pytest.raises(ValueError, match="spread is 0"):
        ladder(w, w, d)
