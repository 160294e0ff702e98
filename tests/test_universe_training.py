"""Universe training (issue 23): held-out symbols, symbol weighting, bounded validation, the time budget inside a
streamed epoch, progress lines and bar aggregation on the training side."""

from __future__ import annotations

import inspect
import io

import keras
import numpy as np
import pandas as pd
import pytest

from lems.data.loaders import read_bars
from lems.data.synthetic import synthetic_market
from lems.data.universe import SymbolUniverse
from lems.training import TrainConfig, train
from lems.training.feed import holdout_request, load_bars, reading_progress, stream_parts, validation_part
from lems.training.selection import StepProgress
from lems.training.trainer import _selection_callbacks


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A folder of one CSV per symbol: 6 hourly 24/7 synthetic symbols of 12 days."""
    bars = synthetic_market(n_assets=6, n_days=12, calendar="24/7", seed=11)
    root = tmp_path_factory.mktemp("universe")
    for symbol, group in bars.groupby("symbol"):
        group.to_csv(root / f"{symbol}.csv", index=False)
    return root, bars


def _config(root, **changes) -> TrainConfig:
    first = pd.Timestamp("2021-01-04")  # synthetic_market's first day
    values = dict(data=[str(root)], stream=True, cache_dir="none", lookback=8, n_ahead=4, stride=2,
                  train_end=str((first + pd.Timedelta(days=7)).date()),
                  val_end=str((first + pd.Timedelta(days=9)).date()), hidden_size=4, num_heads=1,
                  num_embedding=2, fused_mlp_hidden_dim=4, batch_size=16, fast_compile=True, bar_minutes=60)
    return TrainConfig(**{**values, **changes})


def test_synthetic_dates_fit_the_fixture(folder):
    _, bars = folder
    assert bars["timestamp"].min().normalize().tz_localize(None) == pd.Timestamp("2021-01-04")


def test_holdout_request_parses_fractions_and_lists(folder):
    root, _ = folder
    assert holdout_request(_config(root)) is None
    assert holdout_request(_config(root, holdout_symbols="0.2")) == pytest.approx(0.2)
    assert holdout_request(_config(root, holdout_symbols="0")) is None
    assert holdout_request(_config(root, holdout_symbols=" SYN1, SYN3 ")) == ["SYN1", "SYN3"]
    for bad in ("1.5", "-0.1", " , "):
        with pytest.raises(ValueError, match="holdout_symbols"):
            holdout_request(_config(root, holdout_symbols=bad))


def test_stream_parts_hold_symbols_out_of_train_and_validation(folder):
    root, _ = folder
    parts = stream_parts(_config(root, holdout_symbols="0.34", holdout_seed=3))
    held = set(parts.holdout)
    assert len(held) == 2
    assert set(parts.unseen.symbols) == held and len(parts.unseen) > 0
    for part in parts.splits:
        assert held.isdisjoint(part.symbols) and len(part) > 0
    assert set(parts.liquidity) == {f"SYN{i}" for i in range(6)}
    listed = stream_parts(_config(root, holdout_symbols="SYN1,SYN4"))
    assert listed.holdout == ("SYN1", "SYN4")
    with pytest.raises(ValueError):
        stream_parts(_config(root, holdout_symbols="SYN1,NOPE"))


def test_reading_progress_prints_first_last_and_throttled_lines():
    out = io.StringIO()
    progress = reading_progress(every_s=3600, stream=out)
    for done in range(1, 6):
        progress(done, 5, float(done))
    assert out.getvalue().splitlines() == ["reading symbols 1/5 (1 s)", "reading symbols 5/5 (5 s)"]


def test_validation_is_thinned_to_max_val_windows(folder):
    root, _ = folder
    config = _config(root, max_val_windows=40)
    parts = stream_parts(config)
    assert len(parts.splits.val) > 40
    thinned = validation_part(config, parts.splits.val)
    assert 6 <= len(thinned) <= 40 and set(thinned.symbols) == set(parts.splits.val.symbols)
    callbacks, _ = _selection_callbacks(config, parts.splits.val)
    assert len(callbacks[0].windows) == len(thinned)  # ValidationScores never sees the whole part
    assert validation_part(config.replace(max_val_windows=10**6), parts.splits.val) is parts.splits.val


class _Served(keras.callbacks.Callback):
    """Optimizer steps taken, and the steps of an epoch."""

    def on_train_begin(self, logs=None):
        self.steps, self.per_epoch = 0, self.params.get("steps")

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1


@pytest.mark.slow
def test_train_with_holdout_saves_the_list_and_never_sees_it(folder, tmp_path):
    root, _ = folder
    config = _config(root, holdout_symbols="0.34", epochs=1, max_steps=2, patience=0, symbol_weighting="symbol")
    result = train(config, verbose=0)
    held = tuple(result.config.windows.holdout_symbols.split(","))
    assert len(held) == 2 and set(result.unseen.symbols) == set(held)
    assert set(held).isdisjoint(result.windows.train.symbols)
    assert set(held).isdisjoint(result.windows.val.symbols)
    saved = result.config.save(tmp_path / "config.toml")
    again = stream_parts(TrainConfig.load(saved))
    assert again.holdout == held  # lems evaluate reads the same symbols back
    assert np.isfinite(result.history["loss"]).all()


@pytest.mark.slow
def test_time_budget_stops_a_streamed_epoch_after_its_first_step(folder):
    root, _ = folder
    served = _Served()
    config = _config(root, epochs=3, time_budget_s=1e-3, patience=0, tune_rule_prior=False)
    result = train(config, verbose=0, callbacks=[served])
    assert served.per_epoch >= 5
    assert result.stopped_by == "time_budget"
    assert served.steps == 1 and result.epochs_run == 1  # stopped inside the first epoch, after one step


def test_step_progress_line():
    progress = StepProgress(batch_size=64, every_s=1.0, budget_s=600.0, stream=io.StringIO())
    progress.set_params({"steps": 1000, "epochs": 1})
    progress.on_train_begin()
    progress.on_epoch_begin(0)
    start = progress._epoch_start
    line = progress.line(100, start + 10.0)
    assert line.startswith("epoch 1: step 100/1000, 640 windows/s, epoch ETA 1.5 min, budget ")
    with pytest.raises(ValueError, match="every_s"):
        StepProgress(64, every_s=0)


@pytest.mark.slow
def test_step_progress_prints_while_an_epoch_runs(folder):
    root, _ = folder
    out = io.StringIO()
    progress = StepProgress(batch_size=16, every_s=1e-6, stream=out)
    train(_config(root, epochs=1, max_steps=3, patience=0, tune_rule_prior=False), verbose=0, callbacks=[progress])
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch 1: step 1/") and "windows/s" in lines[0]


def test_resample_minutes_reaches_read_bars(tmp_path):
    bars = synthetic_market(n_assets=2, n_days=3, calendar="24/7", bar_minutes=5, seed=2)
    for symbol, group in bars.groupby("symbol"):
        group.to_csv(tmp_path / f"{symbol}.csv", index=False)
    config = TrainConfig(data=[str(tmp_path)], resample_minutes=15, bar_minutes=15)
    expected = read_bars([str(tmp_path)], tz=None, bar_minutes=15)
    pd.testing.assert_frame_equal(load_bars(config), expected)
    assert len(expected) < len(bars)
    with pytest.raises(ValueError, match="whole number"):
        load_bars(config.replace(resample_minutes=7.5))
    with pytest.raises(ValueError, match="resample_minutes"):
        TrainConfig(resample_minutes=-5)
    with pytest.raises(ValueError, match="synthetic"):
        load_bars(TrainConfig(resample_minutes=15))


def test_resample_minutes_on_a_stream_needs_a_universe_that_aggregates(tmp_path):
    bars = synthetic_market(n_assets=2, n_days=3, calendar="24/7", bar_minutes=5, seed=2)
    for symbol, group in bars.groupby("symbol"):
        group.to_csv(tmp_path / f"{symbol}.csv", index=False)
    config = TrainConfig(data=[str(tmp_path)], stream=True, cache_dir="none", resample_minutes=15, bar_minutes=15,
                         lookback=8, n_ahead=4, train_end=0.5, val_end=0.75)
    if "resample_minutes" in inspect.signature(SymbolUniverse).parameters:
        assert len(stream_parts(config).splits.train) > 0
    else:
        with pytest.raises(ValueError, match="stream = false"):
            stream_parts(config)


def test_new_settings_are_checked(folder):
    root, _ = folder
    with pytest.raises(ValueError, match="symbol_weighting"):
        _config(root, symbol_weighting="volume")
    with pytest.raises(ValueError, match="max_val_windows"):
        _config(root, max_val_windows=0)
