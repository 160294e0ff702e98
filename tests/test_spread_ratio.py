"""lems.evaluation.stats: THE fixed-duration spread ratio (hand-computed on a tiny frame, the same numbers as the
benchmarks' copies), the fixed-VWAP diff extraction and the headline table (best classical schedule chosen on
validation)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lems.baselines import TWAP, FlexibleRule, StaticVWAP
from lems.data.synthetic import synthetic_market
from lems.data.windows import make_windows
from lems.evaluation.backtest import allocate_and_backtest
from lems.evaluation.page import spread_lines
from lems.evaluation.stats import (
    CLASSICAL_SCHEDULES,
    SPREAD_BOOTSTRAP_DRAWS,
    TUNED_SCHEDULES,
    day_bootstrap_spreads,
    fixed_vwap_diff_table,
    fixed_vwap_diffs,
    headline_table,
    origin_days,
    spread_ratio,
    spread_ratios,
    with_fixed_column,
)

ROOT = Path(__file__).resolve().parents[1]
H = 4


def _tiny_frame(model_diffs, twap_diffs, days=("2024-01-01", "2024-01-01", "2024-01-02")) -> pd.DataFrame:
    """Fixed VWAP orders only: one window per entry of ``days``, 4 orders (buy/sell x quantity/notional) each."""
    return _fixed_frame({"model": model_diffs, "twap": twap_diffs}, days)


def _fixed_frame(diffs_by_policy, days=("2024-01-01", "2024-01-01", "2024-01-02")) -> pd.DataFrame:
    """:func:`_tiny_frame` of any policies: ``{policy: signed diffs [bps], 4 per entry of days}``."""
    rows = []
    for policy, diffs in diffs_by_policy.items():
        diffs = np.asarray(diffs, float).reshape(len(days), 2, 2)
        for w, day in enumerate(days):
            for s, side in enumerate(("buy", "sell")):
                for t, target in enumerate(("quantity", "notional")):
                    d = diffs[w, s, t] * 1e-4
                    rows.append({"policy": policy, "window": w, "asset": "X", "origin": pd.Timestamp(day, tz="UTC"),
                                 "side": side, "target": target, "benchmark": "vwap", "min_duration": H,
                                 "objective": "track", "diff": d, "improvement_bps": 0.0,
                                 "tracking_error_bps": abs(d) * 1e4})
    return pd.DataFrame(rows)


def test_spread_ratio_by_hand():
    model = [1, -1, 2, 0, 3, 1, -2, 0, 0, 1, 1, -2]
    twap = [2, -2, 4, 0, 5, 3, -4, 2, 1, 2, 0, -4]
    table = spread_ratios(_tiny_frame(model, twap), n_boot=200, seed=1).set_index("baseline")
    # by hand: std (ddof=1) of the 12 signed diffs [bps] of each policy
    expected = np.std(model, ddof=1) / np.std(twap, ddof=1)
    assert np.std(model, ddof=1) == pytest.approx(np.sqrt(np.sum((np.array(model) - 1 / 3) ** 2) / 11))
    assert table.loc["twap", "ratio"] == pytest.approx(expected, rel=1e-12)
    assert table.loc["twap", "model_spread_bps"] == pytest.approx(np.std(model, ddof=1), rel=1e-12)
    assert table.loc["twap", "days"] == 2 and table.loc["twap", "n_boot"] == 200
    # two days: a draw holds day 1 twice, day 2 twice, or one of each; the interval spans those ratios
    day1, day2 = slice(0, 8), slice(8, 12)
    m, t = np.array(model, float), np.array(twap, float)
    candidates = [np.std(m[d], ddof=1) / np.std(t[d], ddof=1) for d in (day1, day2)] + [expected]
    assert min(candidates) - 1e-12 <= table.loc["twap", "ci_low"] <= table.loc["twap", "ci_high"]
    assert table.loc["twap", "ci_high"] <= max(candidates) + 1e-12
    assert table.loc["twap", "ci_low"] < table.loc["twap", "ci_high"]  # the draws differ: the interval is not a point


def test_bootstrap_resamples_whole_days_with_the_seed():
    values = np.arange(12, dtype=float).reshape(6, 2) ** 2
    days = np.array(["b", "a", "b", "c", "a", "c"])
    draws = day_bootstrap_spreads(values, days, n_boot=5, seed=3)
    rng = np.random.default_rng(3)  # the documented procedure, written out: days numbered in sorted order
    members = {0: [1, 4], 1: [0, 2], 2: [3, 5]}
    for k in range(5):
        rows = np.concatenate([members[i] for i in rng.integers(0, 3, 3)])
        np.testing.assert_allclose(draws[k], values[rows].std(axis=0, ddof=1))
    assert not np.allclose(draws, day_bootstrap_spreads(values, days, n_boot=5, seed=4))
    with pytest.raises(ValueError, match="days must label"):
        day_bootstrap_spreads(values, days[:3])
    with pytest.raises(ValueError, match="n_boot"):
        day_bootstrap_spreads(values, days, n_boot=0)
    assert SPREAD_BOOTSTRAP_DRAWS == 500


@pytest.fixture(scope="module")
def run():
    windows = make_windows(synthetic_market(n_assets=1, n_days=20, seed=5), 8, H, stride=2)
    policies = [StaticVWAP(n_days=2, name="model"), TWAP(), StaticVWAP(n_days=5), FlexibleRule(0.5, n_days=5)]
    frame, allocations = allocate_and_backtest(policies, windows)
    return windows, frame, allocations


def test_fixed_vwap_diffs_equal_the_frame(run):
    windows, frame, allocations = run
    wide, days = fixed_vwap_diff_table(frame)
    diffs = fixed_vwap_diffs(allocations["model"], windows)
    assert diffs.shape == (len(windows), 4)
    np.testing.assert_allclose(diffs.ravel(), wide["model"].to_numpy(), rtol=1e-12, atol=1e-12)
    fixed_only = with_fixed_column(np.asarray(allocations["twap"])[:, :, -1])
    np.testing.assert_allclose(fixed_vwap_diffs(fixed_only, windows).ravel(), wide["twap"].to_numpy(), atol=1e-12)
    np.testing.assert_array_equal(np.repeat(origin_days(windows.origin), 4), days)


def _benchmark(name: str):
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_same_numbers_as_the_benchmarks(run):
    windows, frame, allocations = run
    ours = spread_ratios(frame, n_boot=100, seed=7).set_index("baseline")
    theirs = _benchmark("real_data").spread_ratio_ci(frame, n_boot=100, seed=7)
    for baseline in ours.index:
        assert ours.loc[baseline, "ratio"] == pytest.approx(theirs.loc[baseline, "model_spread_ratio"], rel=1e-12)
        assert ours.loc[baseline, "ci_low"] == pytest.approx(theirs.loc[baseline, "ratio_ci_low"], rel=1e-12)
        assert ours.loc[baseline, "ci_high"] == pytest.approx(theirs.loc[baseline, "ratio_ci_high"], rel=1e-12)
    # benchmarks/tracking_anatomy.py: arrays of (N, 4) diffs per window and origin days
    diffs = {k: fixed_vwap_diffs(allocations[k], windows) for k in ("model", "twap", "static_vwap")}
    days = origin_days(windows.origin)
    anatomy = _benchmark("tracking_anatomy").spread_ratios(diffs, days, n_boot=100, seed=7)
    best = min(("twap", "static_vwap"), key=lambda k: np.std(diffs[k], ddof=1))
    one = spread_ratio(diffs["model"], diffs[best], days, n_boot=100, seed=7)
    assert one["ratio"] == pytest.approx(anatomy.loc["model", "ratio_to_best_classical"], rel=1e-12)
    assert one["ci_low"] == pytest.approx(anatomy.loc["model", "ci_low"], rel=1e-12)
    assert one["ci_high"] == pytest.approx(anatomy.loc["model", "ci_high"], rel=1e-12)


def test_headline_table_chooses_the_best_on_validation(run):
    windows, frame, allocations = run
    scored = headline_table(frame, n_boot=50)
    spread = scored["spread"].set_index("baseline")
    assert set(spread.index) == {"twap", "static_vwap"}
    assert scored["best"]["chosen_on"] == "scored set"
    assert scored["best"]["baseline"] == spread["spread_bps"].idxmin()
    # a validation frame where the other schedule is tighter decides the choice
    other = spread["spread_bps"].idxmax()
    validation = frame[frame["policy"].isin(["twap", "static_vwap"])].copy()
    scale = np.where(validation["policy"] == other, 0.01, 1.0)
    validation["diff"] = validation["diff"] * scale
    chosen = headline_table(frame, validation=validation, n_boot=50)
    assert chosen["best"]["chosen_on"] == "validation" and chosen["best"]["baseline"] == other
    assert chosen["best"]["ratio"] == pytest.approx(spread.loc[other, "ratio"])
    flexible = scored["flexible"]
    assert set(zip(flexible["benchmark"], flexible["side"])) == {(b, s) for b in ("vwap", "twap")
                                                                for s in ("buy", "sell")}
    flex = frame[(frame["objective"] == "beat") & (frame["side"] == "buy") & (frame["benchmark"] == "vwap")]
    means = flex.groupby("policy", observed=True)["improvement_bps"].mean()
    row = flexible[(flexible["benchmark"] == "vwap") & (flexible["side"] == "buy")].iloc[0]
    assert row["mean_diff"] == pytest.approx(means["model"] - means["flexible_rule"], rel=1e-9, abs=1e-12)
    with pytest.raises(ValueError, match="classical"):
        headline_table(frame[frame["policy"] == "model"])


def test_headline_table_includes_the_tuned_schedules_and_chooses_on_validation():
    """A hand-made frame: on the scored orders the static tilt has the lowest spread, on validation the dynamic VWAP
    schedule; the best is the one of validation, and the ratio to every classical schedule is listed."""
    days = ("2024-01-01", "2024-01-01", "2024-01-02", "2024-01-03")
    base = np.array([1, -2, 3, 0, -1, 2, -3, 1, 2, 0, -2, 1, -1, 3, 0, -2], float)  # spread of a schedule: scale
    model = np.array([0, 1, -1, 2, 1, -1, 0, -2, 1, 1, -1, 0, 2, -1, 0, 1], float)
    test_scales = {"twap": 3.0, "static_vwap": 2.5, "static_tilt": 1.5, "dynamic_vwap": 2.0}
    val_scales = {"twap": 3.0, "static_vwap": 2.5, "static_tilt": 2.0, "dynamic_vwap": 1.2}
    scored = _fixed_frame({"model": model, **{k: v * base for k, v in test_scales.items()}}, days)
    validation = _fixed_frame({k: v * base for k, v in val_scales.items()}, days)
    assert (*CLASSICAL_SCHEDULES, *TUNED_SCHEDULES) == tuple(test_scales)

    on_test = headline_table(scored, n_boot=20)
    assert on_test["best"]["baseline"] == "static_tilt" and on_test["best"]["chosen_on"] == "scored set"
    chosen = headline_table(scored, validation=validation, n_boot=20)
    spread = chosen["spread"].set_index("baseline")
    assert list(spread.index) == list(test_scales)  # every classical schedule of the frame, tuned ones too
    assert chosen["best"]["baseline"] == "dynamic_vwap" and chosen["best"]["chosen_on"] == "validation"
    assert spread["best"].to_dict() == {k: k == "dynamic_vwap" for k in test_scales}
    assert set(chosen["best"]["selection_spreads_bps"]) == set(val_scales)
    model_std = np.std(model, ddof=1)
    for name, scale in test_scales.items():
        assert spread.loc[name, "ratio"] == pytest.approx(model_std / (scale * np.std(base, ddof=1)), rel=1e-12)
    assert chosen["best"]["ratio"] == pytest.approx(spread.loc["dynamic_vwap", "ratio"])
    line = spread_lines(chosen)[0]
    assert "best classical schedule (TWAP, static curve, static tilt, dynamic VWAP; chosen on validation)" in line
    assert "dynamic_vwap: **" in line
    # the always-present pair alone, when asked; a validation frame without the tuned ones chooses among the pair
    pair = headline_table(scored, validation=validation, classical=CLASSICAL_SCHEDULES, n_boot=20)
    assert list(pair["spread"]["baseline"]) == list(CLASSICAL_SCHEDULES) and pair["best"]["baseline"] == "static_vwap"
    old = validation[validation["policy"].isin(CLASSICAL_SCHEDULES)]
    assert headline_table(scored, validation=old, n_boot=20)["best"]["baseline"] == "static_vwap"
