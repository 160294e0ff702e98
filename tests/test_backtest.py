"""lems.backtest: exact zero for TWAP vs TWAP, independent recomputation, summary statistics."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from lems.backtest import FRAME_COLUMNS, GROUP_COLUMNS, backtest, seed_targets, summary
from lems.baselines import FlexibleRule, StaticVWAP, TWAP
from lems.data.synthetic import synthetic_market
from lems.data.windows import make_windows
from lems.execution import ORDER_TYPES, TARGETS, execution_outcome

H = 6


@lru_cache(maxsize=None)
def _windows():
    return make_windows(synthetic_market(n_assets=2, n_days=15, seed=4), 8, H, stride=5)


@lru_cache(maxsize=None)
def _frame() -> pd.DataFrame:
    return backtest([TWAP(), StaticVWAP(n_days=5), FlexibleRule(0.5, n_days=5)], _windows())


def test_frame_layout():
    windows, frame = _windows(), _frame()
    n = len(windows)
    assert list(frame.columns) == list(FRAME_COLUMNS)
    assert len(frame) == 3 * n * (H + 1) * 8
    assert list(frame["policy"].cat.categories) == ["twap", "static_vwap", "flexible_rule"]
    assert frame["origin"].dt.tz is not None
    one = frame[frame["policy"] == "static_vwap"]
    assert np.array_equal(one["window"].to_numpy(), np.repeat(np.arange(n), (H + 1) * 8))
    assert np.array_equal(one["asset"].astype(str).to_numpy(), np.repeat(windows.asset, (H + 1) * 8).astype(str))
    assert np.array_equal(one["origin"].to_numpy(), np.repeat(windows.origin.to_numpy(), (H + 1) * 8))
    first = one[one["window"] == 0]
    assert list(first["min_duration"]) == [d for d in [*range(1, H + 1), H] for _ in range(8)]
    assert list(first["objective"].iloc[::8]) == ["beat"] * H + ["track"]
    assert [tuple(r) for r in first[["side", "benchmark"]].iloc[:8:2].astype(str).to_numpy()] == list(ORDER_TYPES)
    assert list(first["target"].iloc[:2]) == list(TARGETS)
    assert frame[list(FRAME_COLUMNS[9:])].notna().all().all()


def test_twap_vs_twap_is_exactly_zero():
    frame = _frame()
    rows = frame[(frame["policy"] == "twap") & (frame["benchmark"] == "twap") & (frame["target"] == "quantity")]
    assert len(rows) == len(_windows()) * (H + 1) * 2
    assert np.abs(rows["improvement_bps"]).max() < 1e-9
    fixed = rows[rows["objective"] == "track"]
    assert np.abs(fixed["tracking_error_bps"]).max() < 1e-9
    # notional target vs TWAP: the harmonic-mean effect, positive for buys with no skill (EXECUTION.md §4)
    notional = frame[(frame["policy"] == "twap") & (frame["benchmark"] == "twap") & (frame["target"] == "notional")
                     & (frame["side"] == "buy")]
    assert (notional["improvement_bps"] >= -1e-9).all() and notional["improvement_bps"].mean() > 0


def test_rows_match_an_independent_recomputation():
    windows, frame = _windows(), _frame()
    policies = {"static_vwap": StaticVWAP(n_days=5), "flexible_rule": FlexibleRule(0.5, n_days=5)}
    rng = np.random.default_rng(0)
    for name, policy in policies.items():
        alloc = policy.allocate(windows)
        sub = frame[frame["policy"] == name].reset_index(drop=True)
        for pos in rng.choice(len(sub), 40, replace=False):
            row = sub.iloc[pos]
            i, rest = divmod(pos, (H + 1) * 8)
            col, rest = divmod(rest, 8)
            otype, target = divmod(rest, 2)
            assert row["window"] == i and row["min_duration"] == (H if col == H else col + 1)
            a = alloc[i, :, col, otype, target][None]
            side, bench = ORDER_TYPES[otype]
            volumes = windows.volumes[i][None] if bench == "vwap" else np.ones((1, H))
            out = execution_outcome(a, windows.prices[i][None], volumes, row["min_duration"],
                                    notional=target, side=side)  # raw currency prices
            assert row["achieved_price"] == pytest.approx(out.achieved[0], rel=1e-12)
            assert row["benchmark_price"] == pytest.approx(out.benchmark[0], rel=1e-12)
            assert row["improvement_bps"] == pytest.approx(out.improvement_bps[0], abs=1e-8)
            assert row["tracking_error_bps"] == pytest.approx(abs(out.diff[0]) * 1e4, abs=1e-8)
            assert row["window_bars"] == out.window[0]
            assert row["realised_duration"] == 1 + np.flatnonzero(a[0] > 1e-6).max()
            assert row["max_participation"] == a.max()
            assert (row["side"], row["benchmark"], row["target"]) == (side, bench, TARGETS[target])


def test_summary_equals_direct_recomputation():
    frame = _frame()
    table = summary(frame)
    assert list(table.columns[: len(GROUP_COLUMNS)]) == list(GROUP_COLUMNS)
    assert len(table) == 3 * (H + 1) * 8
    assert table["count"].sum() == len(frame)
    direct = frame.groupby(list(GROUP_COLUMNS), observed=True)["improvement_bps"].agg(["mean", "std", "median"])
    merged = table.set_index(list(GROUP_COLUMNS)).join(direct)
    np.testing.assert_allclose(merged["improvement_bps_mean"], merged["mean"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(merged["improvement_bps_std"], merged["std"], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(merged["improvement_bps_median"], merged["median"], rtol=1e-12, atol=1e-12)
    for _, row in table.sample(12, random_state=0).iterrows():
        mask = np.ones(len(frame), dtype=bool)
        for col in GROUP_COLUMNS:
            mask &= (frame[col] == row[col]).to_numpy()
        for metric in ("improvement_bps", "tracking_error_bps"):
            x = frame.loc[mask, metric].to_numpy()
            assert row["count"] == x.size
            assert row[f"{metric}_mean"] == pytest.approx(x.mean(), rel=1e-9, abs=1e-12)
            assert row[f"{metric}_std"] == pytest.approx(x.std(ddof=1), rel=1e-9, abs=1e-12)
            for stat, q in (("p5", 5), ("p95", 95), ("q25", 25), ("q75", 75), ("median", 50)):
                assert row[f"{metric}_{stat}"] == pytest.approx(np.percentile(x, q), rel=1e-9, abs=1e-12)


def test_static_vwap_tracks_vwap_better_than_twap():
    bars = synthetic_market(n_assets=2, n_days=45, seed=7)  # 24/7 with a daily volume cycle
    windows = make_windows(bars, 24, 12, stride=3, start="2021-01-25")  # >= 20 days of slot history
    frame = backtest([TWAP(), StaticVWAP(n_days=20)], windows)
    fixed = frame[(frame["objective"] == "track") & (frame["benchmark"] == "vwap")]
    error = fixed.groupby("policy", observed=True)["tracking_error_bps"].mean()
    assert error["static_vwap"] < 0.8 * error["twap"]


def test_flexible_rule_in_the_frame():
    frame = _frame()
    rule = frame[(frame["policy"] == "flexible_rule") & (frame["objective"] == "beat")]
    assert (rule["window_bars"] >= rule["min_duration"]).all()
    assert (rule["realised_duration"] >= rule["min_duration"]).all()
    assert (rule["realised_duration"] < H).mean() > 0.1


def test_rates_names_and_errors():
    windows = _windows()
    n = len(windows)
    hi = np.full((n, 1), 0.25)
    frame = backtest({"a": TWAP(), "b": StaticVWAP(n_days=5)}, windows, min_rate=0.1, max_rate=hi)
    assert list(frame["policy"].cat.categories) == ["a", "b"]
    assert frame["max_participation"].max() <= 0.25 + 1e-12
    single = backtest(TWAP(), windows)
    assert len(single) == n * (H + 1) * 8 and list(single["policy"].cat.categories) == ["twap"]
    with pytest.raises(ValueError, match="named"):
        backtest([TWAP(), TWAP()], windows)
    with pytest.raises(ValueError):
        backtest(TWAP(), windows, max_rate=0.1)  # H * max_rate < 1
    with pytest.raises(ValueError):
        backtest([], windows)


def test_empty_windows_give_an_empty_frame():
    windows = _windows().subset(np.zeros(0, dtype=np.int64))
    frame = backtest([TWAP(), StaticVWAP()], windows)
    assert list(frame.columns) == list(FRAME_COLUMNS) and len(frame) == 0
    assert len(summary(frame)) == 0


def test_seed_targets_match_windows_y():
    windows = _windows()
    np.testing.assert_allclose(seed_targets(windows), windows.y, rtol=1e-6)
    with pytest.raises(ValueError, match="positive"):
        bad = windows.subset(np.arange(3))
        bad.prices[0, 0] = -1.0
        seed_targets(bad)


@pytest.mark.parametrize("costed", [False, True], ids=["frictionless", "costed"])
def test_long_horizons_stream_windows_through_the_policies_with_the_same_frame(monkeypatch, costed):
    """Allocations are asked for a few windows at a time when H is long: the frame is the same, per-window rates
    included."""
    import lems.backtest as bt
    from lems.execution import ExecutionConditions, OrderSize, SquareRootImpact

    win = _windows()
    rng = np.random.default_rng(0)
    max_rate = rng.uniform(0.3, 1.0, size=(len(win), 1))
    conditions = (ExecutionConditions(size=OrderSize(participation=0.05), cost_model=SquareRootImpact(coef=1.0))
                  if costed else None)
    policies = {"static": StaticVWAP(), "rule": FlexibleRule(), "twap": TWAP()}
    whole = backtest(policies, win, max_rate=max_rate, conditions=conditions)
    horizon = int(win.n_ahead)
    monkeypatch.setattr(bt, "_ALLOCATION_CELLS", 7 * horizon * (horizon + 1) * 8)  # 7 windows per call
    streamed = backtest(policies, win, max_rate=max_rate, conditions=conditions)
    pd.testing.assert_frame_equal(streamed, whole)
