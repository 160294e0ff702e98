"""``lems train --stream --holdout-symbols`` then ``lems evaluate``: held-out symbols scored apart as unseen, test
windows scored chunk by chunk (equal to one materialised pass), the headline per symbol group."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lems.cli import _evaluate, main
from lems.data.synthetic import synthetic_market
from lems.models import LargeExecutionModel
from lems.training import TrainConfig
from lems.training.feed import stream_parts
from lems.evaluation.backtest import backtest
from lems.evaluation.stats import headline_table, paired_comparison
from lems.policies import DynamicVWAP, FlexibleRule, classical_schedules
from lems.training.universe_evaluation import (
    LIQUIDITY_TERCILES,
    _bounded,
    liquidity_terciles,
    score_in_chunks,
    slim_frame,
)

ORDER_KEYS = ["policy", "asset", "origin", "side", "target", "benchmark", "min_duration"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A folder of one CSV per symbol: 6 hourly 24/7 synthetic symbols of 12 days (from 2021-01-04)."""
    bars = synthetic_market(n_assets=6, n_days=12, calendar="24/7", seed=11)
    root = tmp_path_factory.mktemp("universe")
    for symbol, group in bars.groupby("symbol"):
        group.to_csv(root / f"{symbol}.csv", index=False)
    return root


def _flags() -> list[str]:
    return ["--stream", "--no-cache", "--train-end", "2021-01-11", "--val-end", "2021-01-13", "--bar-minutes", "60",
            "--lookback", "8", "--n-ahead", "4", "--stride", "2", "--hidden-size", "4", "--num-heads", "1",
            "--num-embedding", "2", "--fused-mlp-hidden-dim", "4", "--batch-size", "16", "--epochs", "1",
            "--max-steps", "2", "--fast-compile"]


def test_liquidity_terciles_split_by_rank():
    terciles = liquidity_terciles({"A": 5.0, "B": 1.0, "C": 3.0, "D": 0.0, "E": 9.0, "F": 7.0})
    assert terciles == {"D": "liquidity_low", "B": "liquidity_low", "C": "liquidity_mid", "A": "liquidity_mid",
                        "F": "liquidity_high", "E": "liquidity_high"}
    assert liquidity_terciles({}) == {}


@pytest.mark.slow
def test_chunked_scoring_equals_one_materialised_pass(folder):
    config = TrainConfig(data=[str(folder)], stream=True, cache_dir="none", lookback=8, n_ahead=4, stride=2,
                         train_end="2021-01-11", val_end="2021-01-13", bar_minutes=60)
    part = stream_parts(config).splits.test
    model = LargeExecutionModel(lookback=8, n_ahead=4, hidden_size=4, num_heads=1, num_embedding=2,
                                fused_mlp_hidden_dim=4)

    def score(windows):
        return _evaluate(model, windows, 0.0, 1.0)[0]

    chunked = score_in_chunks(score, part, chunk_windows=37)  # chunks split symbols
    whole = score(part.to_window_set())
    assert len(chunked) == len(whole) and chunked["window"].nunique() == len(part)

    def ordered(frame):
        frame = frame.assign(asset=frame["asset"].astype(str), policy=frame["policy"].astype(str))
        return frame.drop(columns=["window"]).sort_values(ORDER_KEYS).reset_index(drop=True)

    pd.testing.assert_frame_equal(ordered(chunked), ordered(whole), check_dtype=False, check_categorical=False,
                                  rtol=1e-5, atol=1e-9)


def test_slim_frame_keeps_the_headline_and_bounds_the_groups(folder):
    config = TrainConfig(data=[str(folder)], stream=True, cache_dir="none", lookback=8, n_ahead=4, stride=2,
                         train_end="2021-01-11", val_end="2021-01-13", bar_minutes=60)
    part = stream_parts(config).splits.test
    schedules = classical_schedules(None)  # no model to build: a schedule stands in for it (all its rows kept)
    frame = backtest({"model": DynamicVWAP(rho=0.5), **schedules, "flexible_rule": FlexibleRule()},
                     part.to_window_set())
    slim = slim_frame(frame)
    classical = ["twap", "static_vwap"]
    assert set(slim.loc[slim["policy"].isin(classical), "objective"]) == {"track"}  # their flexible rows dropped
    for policy in ("model", "flexible_rule"):  # every row of the model and the rule kept
        assert (slim["policy"] == policy).sum() == (frame["policy"] == policy).sum()
    assert slim["window"].dtype == np.int32 and slim["min_duration"].dtype == np.int16
    assert slim.memory_usage(deep=True).sum() < 0.6 * frame.memory_usage(deep=True).sum()
    full, kept = headline_table(frame), headline_table(slim)
    pd.testing.assert_frame_equal(full["spread"], kept["spread"])
    pd.testing.assert_frame_equal(full["flexible"], kept["flexible"])
    paired = paired_comparison(slim, "model", "twap")  # compared on the orders TWAP kept: its fixed ones
    assert set(paired["objective"]) == {"track"}
    with pytest.raises(ValueError, match="same orders"):  # a partial objective still refuses
        paired_comparison(slim.drop(index=slim.index[(slim["policy"] == "twap").to_numpy()][:1]), "model", "twap")

    small = _bounded(part, 30)
    assert len(small) <= 30 and set(small.symbols) == set(part.symbols)
    assert _bounded(part, None) is part and _bounded(part, len(part)) is part


@pytest.mark.slow
def test_train_holdout_then_evaluate_reports_unseen_symbols(folder, tmp_path, capsys):
    train_dir, eval_dir = tmp_path / "train", tmp_path / "eval"
    assert main(["train", str(folder), "--out", str(train_dir), "--holdout-symbols", "0.34", *_flags()]) == 0
    out = capsys.readouterr().out
    assert "reading symbols 6/6" in out
    saved = TrainConfig.load(train_dir / "config.toml")
    held = saved.windows.holdout_symbols.split(",")
    assert len(held) == 2 and all(s.startswith("SYN") for s in held)
    info = json.loads((train_dir / "history.json").read_text())
    assert info["stopped_by"] == "max_steps"

    assert main(["evaluate", str(train_dir / "model.keras"), str(folder), "--out", str(eval_dir),
                 "--frame-format", "csv"]) == 0
    frame = pd.read_csv(eval_dir / "backtest.csv")
    unseen = frame[frame["symbols"] == "unseen"]
    assert set(unseen["asset"]) == set(held)
    assert set(held).isdisjoint(frame.loc[frame["symbols"] == "seen", "asset"])
    classical = ["twap", "static_vwap", "static_tilt", "dynamic_vwap"]  # the last two fitted on validation windows
    assert set(frame["policy"]) == {"model", "flexible_rule", *classical}
    assert set(pd.read_csv(eval_dir / "backtest_validation.csv")["policy"]) == set(classical)
    record = json.loads((eval_dir / "universe_headline.json").read_text())
    decomposition = record.pop("decomposition")
    assert {"seen", "unseen"} <= set(record) and set(record) <= {"seen", "unseen", *LIQUIDITY_TERCILES}
    assert sorted(record["unseen"]["symbols"]) == sorted(held)
    assert all(np.isfinite(r["best"]["ratio"]) for r in record.values())
    assert all(sorted(r["best"]["selection_spreads_bps"]) == sorted(classical) for r in record.values())
    assert all([row["baseline"] for row in r["spread"]] == classical for r in record.values())
    assert [row["policy"] for row in decomposition] == ["model", *classical]
    assert all(row["spread_bps"] > 0 and -1 <= row["mean_correlation"] <= 1 for row in decomposition)
    text = (eval_dir / "universe_headline.md").read_text()
    assert "## unseen (2 symbols)" in text and "Tracking decomposition" in text
    assert "static tilt, dynamic VWAP; chosen on validation)" in text and "| dynamic_vwap |" in text
    assert (eval_dir / "report.md").is_file()
