"""lems.report: tables equal direct recomputation, paired comparisons with clustered intervals, rendering."""

from __future__ import annotations

from functools import lru_cache

import matplotlib
import numpy as np
import pandas as pd
import pytest

from lems.baselines import TWAP, FlexibleRule, StaticVWAP
from lems.data.synthetic import synthetic_market
from lems.data.windows import make_windows
from lems.report import (
    FIGURES,
    allocate_and_backtest,
    clustered_mean_ci,
    headline,
    paired_comparison,
    read_frames,
    summary_table,
    write_report,
)

H = 6
_QUANTILES = {"p5": 0.05, "p95": 0.95, "q25": 0.25, "q75": 0.75}


@lru_cache(maxsize=None)
def _run():
    windows = make_windows(synthetic_market(n_assets=2, n_days=16, seed=3), 8, H, stride=3)
    # a "model" that is not TWAP: the static VWAP curve with a short memory
    policies = [StaticVWAP(n_days=3, name="model"), TWAP(), StaticVWAP(n_days=5), FlexibleRule(0.5, n_days=5)]
    frame, allocations = allocate_and_backtest(policies, windows)
    return windows, frame, allocations


def _frame() -> pd.DataFrame:
    return _run()[1].copy()


# --------------------------------------------------------------------------------------------------------
# Tables: equal to a direct groupby of the frame
# --------------------------------------------------------------------------------------------------------
def test_summary_table_equals_groupby():
    frame = _frame()
    table = summary_table(frame)
    keys = ["side", "benchmark", "target", "objective", "min_duration", "policy"]
    assert len(table) == 4 * 2 * 2 * 2 * (H + 1)
    assert set(table.loc[table["objective"] == "track", "metric"]) == {"tracking_error_bps"}
    assert set(table.loc[table["objective"] == "beat", "metric"]) == {"improvement_bps"}
    # policies are rows beside each other, in frame order, within every group
    assert list(table["policy"].iloc[:4].astype(str)) == ["model", "twap", "static_vwap", "flexible_rule"]
    grouped = frame.groupby(keys, observed=True)
    for row in table.sample(40, random_state=0).itertuples(index=False):
        values = grouped.get_group(tuple(getattr(row, k) for k in keys))[row.metric].to_numpy()
        assert row.count == values.size
        assert row.mean == pytest.approx(values.mean(), abs=1e-9)
        assert row.std == pytest.approx(values.std(ddof=1), abs=1e-9)
        assert row.median == pytest.approx(np.median(values), abs=1e-9)
        for stat, q in _QUANTILES.items():
            assert getattr(row, stat) == pytest.approx(np.quantile(values, q), abs=1e-9)


def test_summary_table_forced_metric_and_bad_metric():
    frame = _frame()
    table = summary_table(frame, metric="tracking_error_bps")
    assert set(table["metric"]) == {"tracking_error_bps"}
    assert (table["mean"] >= 0).all()
    with pytest.raises(ValueError, match="metric"):
        summary_table(frame, metric="pnl")


def test_headline_equals_groupby():
    frame = _frame()
    tables = headline(frame)
    fixed = tables["fixed"].set_index("policy")
    te = frame[(frame["objective"] == "track") & (frame["benchmark"] == "vwap")].groupby(
        "policy", observed=True)["tracking_error_bps"].mean()
    for policy, value in te.items():
        assert fixed.loc[policy, "vwap_tracking_error_bps"] == pytest.approx(value, abs=1e-12)
        assert fixed.loc[policy, "model_improvement_pct"] == pytest.approx((1 - te["model"] / value) * 100)
    flexible = tables["flexible"].set_index(["benchmark", "policy"])
    imp = frame[frame["objective"] == "beat"].groupby(["benchmark", "policy"], observed=True)["improvement_bps"]
    for (bench, policy), value in imp.mean().items():
        assert flexible.loc[(bench, policy), "mean_improvement_bps"] == pytest.approx(value, abs=1e-12)
    # the paired difference of the headline is the difference of the two means (same orders)
    twap = flexible.loc[("vwap", "twap")]
    assert twap["mean_diff"] == pytest.approx(flexible.loc[("vwap", "model"), "mean_improvement_bps"]
                                              - twap["mean_improvement_bps"], abs=1e-9)


# --------------------------------------------------------------------------------------------------------
# Paired comparison
# --------------------------------------------------------------------------------------------------------
def test_clustered_se_reduces_to_iid_with_singleton_clusters():
    x = np.random.default_rng(0).normal(size=200)
    ci = clustered_mean_ci(x, np.arange(200))
    assert ci["se"] == pytest.approx(x.std(ddof=1) / np.sqrt(200))
    assert ci["ci_high"] - ci["mean"] == pytest.approx(1.959964 * ci["se"], rel=1e-5)
    one = clustered_mean_ci(x, np.zeros(200))
    assert one["n_clusters"] == 1 and np.isinf(one["ci_high"]) and np.isinf(one["ci_low"])


def test_clustered_ci_coverage_with_cluster_effects():
    """Strong within-cluster correlation: the clustered interval covers ~95 %, the iid one far less."""
    rng = np.random.default_rng(1)
    n_sims, n_clusters, per = 400, 40, 25
    clusters = np.repeat(np.arange(n_clusters), per)
    covered, covered_iid = 0, 0
    for _ in range(n_sims):
        x = 2.0 + np.repeat(rng.normal(size=n_clusters), per) + 0.5 * rng.normal(size=n_clusters * per)
        ci = clustered_mean_ci(x, clusters)
        iid = clustered_mean_ci(x, np.arange(x.size))
        covered += ci["ci_low"] <= 2.0 <= ci["ci_high"]
        covered_iid += iid["ci_low"] <= 2.0 <= iid["ci_high"]
    assert 0.89 <= covered / n_sims <= 0.99
    assert covered_iid / n_sims < 0.6


def _constructed_frame(true_diff: float, seed: int = 0, n_days: int = 30, per_day: int = 8) -> pd.DataFrame:
    """Model and baseline on the same orders; model improvement = baseline + true_diff + day effect + noise."""
    rng = np.random.default_rng(seed)
    origins = pd.date_range("2022-01-01", periods=n_days * 24, freq="h", tz="UTC")[:: 24 // per_day]
    n = len(origins)
    day = (origins - origins[0]).days.to_numpy()
    base = rng.normal(0, 5, size=n)
    model = base + true_diff + rng.normal(0, 1.5, size=n_days)[day] + rng.normal(0, 1.0, size=n)
    te_base = np.abs(rng.normal(0, 8, size=n))
    te_model = np.maximum(te_base - true_diff + rng.normal(0, 1.0, size=n), 0.0)
    rows = []
    for name, imp, te in (("model", model, te_model), ("twap", base, te_base)):
        for objective, d, values in (("beat", 1, imp), ("track", 4, te)):
            rows.append(pd.DataFrame({
                "policy": name, "window": np.arange(n), "asset": "A", "origin": origins, "side": "buy",
                "target": "quantity", "benchmark": "vwap", "min_duration": d, "objective": objective,
                "improvement_bps": values if objective == "beat" else -values,
                "tracking_error_bps": np.abs(values) if objective == "track" else np.abs(values),
            }))
    return pd.concat(rows, ignore_index=True)


def test_paired_comparison_ci_contains_true_mean():
    frame = _constructed_frame(true_diff=2.0)
    paired = paired_comparison(frame, "model", "twap").set_index("objective")
    beat = paired.loc["beat"]
    assert beat["metric"] == "improvement_bps"
    assert beat["ci_low"] <= 2.0 <= beat["ci_high"]
    assert beat["significant"] and beat["n_clusters"] == 30 and beat["n_orders"] == 240
    assert beat["mean_diff"] == pytest.approx(beat["model_mean"] - beat["baseline_mean"])
    track = paired.loc["track"]  # baseline minus model tracking error: positive = model better
    assert track["metric"] == "tracking_error_bps"
    assert track["mean_diff"] == pytest.approx(track["baseline_mean"] - track["model_mean"])
    assert track["mean_diff"] > 0
    null = paired_comparison(_constructed_frame(true_diff=0.0, seed=5), "model", "twap")
    assert null.loc[null["objective"] == "beat", "ci_low"].iloc[0] <= 0.0


def test_paired_comparison_day_clusters_widen_the_interval():
    frame = _constructed_frame(true_diff=0.5, seed=2)
    by_day = paired_comparison(frame, "model", "twap", cluster="day").set_index("objective")
    by_window = paired_comparison(frame, "model", "twap", cluster="window").set_index("objective")
    assert by_day.loc["beat", "n_clusters"] == 30 and by_window.loc["beat", "n_clusters"] == 240
    assert by_day.loc["beat", "se"] > by_window.loc["beat", "se"]
    assert by_day.loc["beat", "mean_diff"] == pytest.approx(by_window.loc["beat", "mean_diff"])


def test_paired_comparison_on_backtest_frame():
    frame = _frame()
    paired = paired_comparison(frame)
    assert set(paired["baseline"]) == {"twap", "static_vwap", "flexible_rule"}
    assert len(paired) == 3 * 2 * 2 * 2 * (H + 1)
    assert np.isfinite(paired[["mean_diff", "se", "ci_low", "ci_high"]].to_numpy()).all()
    # fixed orders vs the TWAP benchmark: the "model" (a static curve of equal TWAP volumes) and the TWAP
    # baseline both trade 1/H per bar -> identical orders, an identical zero difference with a zero interval
    fixed = paired[(paired["baseline"] == "twap") & (paired["objective"] == "track") & (paired["benchmark"] == "twap")]
    assert len(fixed) == 2 * 2  # side x target
    for col in ("mean_diff", "se", "ci_low", "ci_high"):
        assert (fixed[col] == 0.0).all(), col
    assert not fixed["significant"].any()
    assert (fixed["model_mean"] == fixed["baseline_mean"]).all()
    assert (fixed.loc[fixed["target"] == "quantity", "model_mean"] < 1e-9).all()  # both ARE the benchmark
    pooled = paired_comparison(frame, baseline="twap", by=("benchmark",))
    assert len(pooled) == 4  # objective x benchmark
    beat_vwap = pooled[(pooled["objective"] == "beat") & (pooled["benchmark"] == "vwap")].iloc[0]
    rows = frame[(frame["objective"] == "beat") & (frame["benchmark"] == "vwap")]
    means = rows.groupby("policy", observed=True)["improvement_bps"].mean()
    assert beat_vwap["mean_diff"] == pytest.approx(means["model"] - means["twap"], abs=1e-9)


def test_paired_comparison_errors():
    frame = _frame()
    with pytest.raises(ValueError, match="not in the frame"):
        paired_comparison(frame, model="lem")
    with pytest.raises(ValueError, match="not in the frame"):
        paired_comparison(frame, baseline="vwap_curve")
    with pytest.raises(ValueError, match="cluster"):
        paired_comparison(frame, cluster="month")
    partial = frame[~((frame["policy"] == "twap") & (frame["window"] == 0))]
    with pytest.raises(ValueError, match="same orders"):
        paired_comparison(partial, baseline="twap")
    bad = frame.copy()
    bad.loc[3, "improvement_bps"] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        summary_table(bad)
    with pytest.raises(ValueError, match="missing column"):
        summary_table(frame.drop(columns=["objective"]))


# --------------------------------------------------------------------------------------------------------
# Rendering (Agg backend, no display)
# --------------------------------------------------------------------------------------------------------
def _is_png(path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_write_report_markdown(tmp_path):
    windows, frame, allocations = _run()
    page = write_report(frame, tmp_path / "rep", allocations=allocations, windows=windows,
                        meta={"data": "synthetic"})
    assert page == tmp_path / "rep" / "report.md"
    assert matplotlib.get_backend().lower() == "agg"
    for name in FIGURES.values():
        assert _is_png(tmp_path / "rep" / name), name
    text = page.read_text()
    assert text.index("## Headline") < text.index("## What was measured") < text.index("## Distribution tables")
    assert "no skill" in text and "bps" in text
    for name in FIGURES.values():
        assert f"]({name})" in text
    # the page's headline number is the groupby mean of the frame
    te = frame[(frame["objective"] == "track") & (frame["benchmark"] == "vwap")].groupby(
        "policy", observed=True)["tracking_error_bps"].mean()
    assert f"model {te['model']:,.2f} bps" in text
    assert f"twap {te['twap']:,.2f} bps" in text
    # CSV files equal the functions' tables
    summary = pd.read_csv(tmp_path / "rep" / "summary.csv")
    expected = summary_table(frame)
    assert len(summary) == len(expected)
    np.testing.assert_allclose(summary["mean"].to_numpy(), expected["mean"].to_numpy(), atol=1e-9)
    paired = pd.read_csv(tmp_path / "rep" / "paired.csv")
    np.testing.assert_allclose(paired["mean_diff"].to_numpy(), paired_comparison(frame)["mean_diff"].to_numpy(),
                               atol=1e-9)
    assert (tmp_path / "rep" / "headline.csv").is_file()


def test_write_report_html_from_saved_frames(tmp_path):
    frame = _frame()
    frame.to_csv(tmp_path / "a.csv", index=False)
    frame.to_parquet(tmp_path / "b.parquet", index=False)
    from_csv = read_frames([tmp_path / "a.csv"])
    from_parquet = read_frames([tmp_path / "b.parquet"])
    for loaded in (from_csv, from_parquet):
        assert list(loaded["policy"].cat.categories) == ["model", "twap", "static_vwap", "flexible_rule"]
        pd.testing.assert_frame_equal(summary_table(loaded), summary_table(frame), check_dtype=False,
                                      check_categorical=False)
    page = write_report(from_csv, tmp_path / "html", format="html")
    text = page.read_text()
    assert page.suffix == ".html" and text.startswith("<!DOCTYPE html>") and "<table>" in text
    assert _is_png(tmp_path / "html" / FIGURES["duration"])
    assert not (tmp_path / "html" / FIGURES["orders"]).exists()  # no allocations given: no schedule figures


def test_write_report_without_model_and_errors(tmp_path):
    frame = _frame()
    baselines_only = frame[frame["policy"] != "model"]
    page = write_report(baselines_only, tmp_path / "base")
    assert "No policy named 'model'" in page.read_text()
    with pytest.raises(ValueError, match="format"):
        write_report(frame, tmp_path / "x", format="pdf")
    with pytest.raises(ValueError, match="not found"):
        read_frames([tmp_path / "missing.parquet"])
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(ValueError, match="unreadable"):
        read_frames([tmp_path / "junk.parquet"])
    with pytest.raises(ValueError, match="no rows"):
        summary_table(frame.iloc[:0])


# --------------------------------------------------------------------------------------------------------
# Transaction-cost analysis (order sizes, costs, cap)
# --------------------------------------------------------------------------------------------------------
SIZES = (0.02, 0.2)


@lru_cache(maxsize=None)
def _costed_run():
    from lems.report import PrecomputedPolicy, costed_backtest
    from lems.training import conditions_from_settings

    windows, _, allocations = _run()
    conditions = conditions_from_settings({"sizes": list(SIZES), "half_spread_bps": 1.0, "impact_coef": 1.0,
                                           "permanent_coef": 0.1, "max_participation": 0.5})
    policies = [PrecomputedPolicy(k, v) for k, v in allocations.items()]
    return conditions, costed_backtest(policies, windows, conditions, ac_risk_aversion=10.0)


def test_costed_backtest_is_the_backtest_per_size_plus_almgren_chriss():
    from lems.backtest import TCA_COLUMNS, backtest
    from lems.baselines import AlmgrenChriss, lookback_volatility
    from lems.report import (
        ALMGREN_CHRISS,
        COSTED_COLUMNS,
        PrecomputedPolicy,
        almgren_chriss_parameters,
    )

    windows, _, allocations = _run()
    conditions, costs = _costed_run()
    assert set(TCA_COLUMNS) | set(COSTED_COLUMNS) <= set(costs.columns)
    assert sorted(costs["order_size"].unique()) == list(SIZES)
    sigma = lookback_volatility(windows)
    for size, c in zip(SIZES, conditions):
        part = costs[costs["order_size"] == size].reset_index(drop=True)
        assert set(part["policy"]) == {*allocations, ALMGREN_CHRISS}
        params = almgren_chriss_parameters(c.cost_model, size, sigma.mean(), H, 1e-4)
        ac = AlmgrenChriss(risk_aversion=10.0, eta=params["eta"], gamma=params["gamma"], name=ALMGREN_CHRISS)
        direct = backtest([*(PrecomputedPolicy(k, v) for k, v in allocations.items()), ac], windows, conditions=c)
        pd.testing.assert_frame_equal(part[direct.columns], direct, check_categorical=False)
        np.testing.assert_allclose(part["sigma"], sigma[part["window"]])
        np.testing.assert_allclose(part["half_spread"], 1e-4)


def test_almgren_chriss_parameters_match_the_cost_model():
    from lems.execution import (
        LinearPermanentImpact,
        NoCost,
        SpreadCost,
        SquareRootImpact,
    )
    from lems.report import almgren_chriss_parameters

    model = SquareRootImpact(coef=0.8, delta=0.6) + LinearPermanentImpact(coef=0.1) + SpreadCost(half_spread_bps=2.0)
    params = almgren_chriss_parameters(model, 0.05, 0.003, 12, risk_sigma=0.004)
    # a uniform schedule (1/H per bar at participation 0.05) pays coef sigma size^delta per unit = eta / H
    assert params["eta"] / 12 == pytest.approx(0.8 * 0.003 * 0.05**0.6)
    assert params["gamma"] == pytest.approx(0.1 * 0.003 * 0.05 * 12)
    assert params["epsilon"] == pytest.approx(2e-4) and params["sigma"] == 0.004
    estimated = almgren_chriss_parameters(SquareRootImpact() + SpreadCost(), 0.05, 0.003, 12, half_spread=3e-4)
    assert estimated["epsilon"] == pytest.approx(3e-4)
    assert almgren_chriss_parameters(NoCost(), 0.05, 0.003, 12) is None
    assert almgren_chriss_parameters(SpreadCost(1.0) + LinearPermanentImpact(1.0), 0.05, 0.003, 12) is None


def test_tca_tables_equal_direct_recomputation():
    from lems.report import frontier_table, net_of_cost_table, tca_table

    frame = _frame()
    conditions, costs = _costed_run()
    table = tca_table(costs).set_index(["order_size", "policy"])
    fixed = costs[(costs["objective"] == "track") & (costs["benchmark"] == "vwap")]
    group = fixed.groupby(["order_size", "policy"], observed=True)
    np.testing.assert_allclose(table["is_bps"], group["shortfall_bps"].mean().loc[table.index], atol=1e-9)
    parts = table[["delay_bps", "timing_bps", "impact_bps", "opportunity_bps"]].sum(axis=1)
    np.testing.assert_allclose(parts, table["is_bps"], atol=1e-9)  # Perold: the parts sum to the total
    np.testing.assert_allclose(table["vs_vwap_bps"], -group["improvement_bps"].mean().loc[table.index], atol=1e-9)
    twap = costs[(costs["objective"] == "track") & (costs["benchmark"] == "twap")]
    expected_twap = -twap.groupby(["order_size", "policy"], observed=True)["improvement_bps"].mean()
    np.testing.assert_allclose(table["vs_twap_bps"], expected_twap.loc[table.index], atol=1e-9)
    assert (table["is_bps"].xs(0.2, level="order_size") > table["is_bps"].xs(0.02, level="order_size")).all()
    assert table.loc[(0.2, "twap"), "unfilled_pct"] > 0  # the cap binds at 20 %
    net = net_of_cost_table(frame, costs).set_index(["order_size", "policy"])
    free = headline(frame)["fixed"].set_index("policy")["vwap_tracking_error_bps"]
    np.testing.assert_allclose(net.loc[0.02]["te_free_bps"].loc[free.index], free, atol=1e-9)
    assert np.isnan(net.loc[(0.02, "almgren_chriss"), "te_free_bps"])  # not in the frictionless frame
    frontier = frontier_table(costs, conditions[0].cost_model, ac_risk_aversion=10.0)
    curve = frontier[(frontier["order_size"] == 0.2) & ~frontier["stated"]]
    assert np.all(np.diff(curve["std_bps"]) < 0) and np.all(np.diff(curve["expected_cost_bps"]) > 0)
    assert frontier["stated"].sum() == len(SIZES)


def test_write_report_with_costs_keeps_the_frictionless_page(tmp_path):
    from lems.report import TCA_FIGURES

    frame = _frame()
    conditions, costs = _costed_run()
    plain = write_report(frame, tmp_path / "plain").read_text()
    page = write_report(frame, tmp_path / "costs", costs=costs, conditions=conditions[0], ac_risk_aversion=10.0)
    text = page.read_text()
    start, end = text.index("## Net of costs"), text.index("## Improvement vs min duration")
    assert text[:start] + text[end:] == plain  # frictionless tables as before
    section = text[start:end]
    for fragment in ("2 %, 20 % of the EXPECTED market volume", "half-spread of 1.00 bps", "participation cap: 50.0 %",
                     "IS vs arrival", "VWAP TE frictionless", "flex vs VWAP net", "Flexible gain over TWAP"):
        assert fragment in section, fragment
    for name in ("tca.csv", "net_of_costs.csv", "frontier.csv"):
        assert (tmp_path / "costs" / name).is_file(), name
    for name in TCA_FIGURES.values():
        assert _is_png(tmp_path / "costs" / name) and f"]({name})" in section, name


def test_costed_frames_read_back_split_and_select(tmp_path):
    from lems.report import select_sizes, split_costed

    frame = _frame()
    _, costs = _costed_run()
    frame.to_parquet(tmp_path / "backtest.parquet", index=False)
    costs.to_csv(tmp_path / "backtest_costs.csv", index=False)
    both = read_frames([tmp_path / "backtest.parquet", tmp_path / "backtest_costs.csv"])
    free, costed = split_costed(both)
    assert len(free) == len(frame) and len(costed) == len(costs)
    page = write_report(both, tmp_path / "rep")
    assert "## Net of costs" in page.read_text() and "No Almgren-Chriss frontier" in page.read_text()
    assert sorted(select_sizes(costed, [0.2])["order_size"].unique()) == [0.2]
    with pytest.raises(ValueError, match="no costed orders of size 0.05"):
        select_sizes(costed, [0.05])
    with pytest.raises(ValueError, match="pass the frictionless frame too"):
        write_report(read_frames([tmp_path / "backtest_costs.csv"]), tmp_path / "only")
