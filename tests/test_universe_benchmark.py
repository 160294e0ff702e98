"""benchmarks/universe.py's own arithmetic on hand-made frames (no training, no real data): the paired ratio of
two variants on the orders both scored, and the table it writes."""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

from benchmarks import universe


def _evaluation(folder, diffs: np.ndarray, origins: pd.DatetimeIndex, assets: list[str]) -> None:
    """A variant's evaluation folder holding the model's fixed VWAP buy orders (one per window) of 'unseen'."""
    (folder / "eval").mkdir(parents=True)
    rows = pd.DataFrame({"policy": "model", "symbols": "unseen", "window": np.arange(len(diffs)),
                         "asset": assets, "origin": origins, "side": "buy", "target": "quantity",
                         "benchmark": "vwap", "objective": "track", "min_duration": 6, "diff": diffs,
                         "improvement_bps": -np.abs(diffs) * 1e4, "tracking_error_bps": np.abs(diffs) * 1e4})
    flexible = rows.assign(objective="beat", min_duration=3)  # not part of the spread
    pd.concat([rows, flexible]).to_parquet(folder / "eval" / "backtest.parquet", index=False)


def test_paired_ratio_is_the_std_ratio_on_common_orders(tmp_path):
    rng = np.random.default_rng(0)
    origins = pd.date_range("2024-08-01", periods=120, freq="6h", tz="UTC")
    assets = ["AAA", "BBB"] * 60
    base_diffs = rng.normal(0, 2e-3, 120)
    other_diffs = 0.8 * base_diffs + rng.normal(0, 2e-4, 120)
    _evaluation(tmp_path / "base", base_diffs, origins, assets)
    _evaluation(tmp_path / "other", other_diffs[5:], origins[5:], assets[5:])  # a longer lookback: fewer windows
    paired = universe.paired_to_base(tmp_path / "base", tmp_path / "other", "other", "unseen")
    expected = np.std(other_diffs[5:], ddof=1) / np.std(base_diffs[5:], ddof=1)
    assert paired["orders"] == 115
    assert paired["ratio"] == pytest.approx(expected, rel=1e-9)
    assert paired["ci_low"] < paired["ratio"] < paired["ci_high"] < 1.0


def test_report_renders_each_variant():
    table = {"spread": [{"baseline": "static_vwap", "ratio": 0.9, "ci_low": 0.85, "ci_high": 0.95}],
             "best": {"baseline": "twap", "ratio": 0.88, "ci_low": 0.8, "ci_high": 0.9, "model_spread_bps": 20.0},
             "flexible": [{"benchmark": "vwap", "side": "buy", "mean_diff": 0.5, "ci_low": 0.1, "ci_high": 0.9}]}
    record = {"variant": "base", "flags": "", "steps": 10, "headline": {"unseen": table, "seen": table},
              "train": {"cpu_s": 1.0, "wall_s": 2.0, "peak_rss_gb": 1.0, "first_progress_s": None},
              "evaluate": {"cpu_s": 1.0, "wall_s": 1.0, "peak_rss_gb": 1.0},
              "validation": {"val_tracking_error_bps": 9.0, "val_flexible_improvement_bps": 5.0}}
    args = argparse.Namespace(data="d", steps=10, seed=0, max_val_windows=8, max_test_windows=16)
    text = "\n".join(universe.report([record], {}, args))
    assert "| base | 0.900 [0.850, 0.950] | 0.880 [0.800, 0.900] | twap | 20.00 | +0.50 [+0.10, +0.90] | n/a | - |" \
        in text
    assert "## unseen symbols, test period" in text and "| base | `` | 10 |" in text
