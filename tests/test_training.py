"""lems.training: the sectioned config (files, flat names, old files), selection on the reported numbers,
fixed-step determinism, budgets and the empty-validation warning."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from lems.training import (
    FLEXIBLE_KEY,
    SCORE_KEY,
    TRACKING_KEY,
    BestWeights,
    DataConfig,
    RulePriorTuning,
    Splits,
    TrainConfig,
    ValidationScores,
    WindowConfig,
    build_model,
    build_windows,
    load_bars,
    split_windows,
    train,
)


def _tiny_config(**changes) -> TrainConfig:
    values = dict(synthetic_assets=2, synthetic_days=8, lookback=8, n_ahead=4, stride=2, hidden_size=4,
                  num_heads=1, num_embedding=2, fused_mlp_hidden_dim=4, batch_size=32, fast_compile=True)
    return TrainConfig(**{**values, **changes})


class _Snapshots(keras.callbacks.Callback):
    """The model's weights after the built-in callbacks' start of training (index 0: untrained, after rule-prior
    tuning) and at the end of every epoch (index e: epoch e, 1-based, as the best epochs are reported)."""

    def on_train_begin(self, logs=None):
        self.weights = [self.model.get_weights()]

    def on_epoch_end(self, epoch, logs=None):
        self.weights.append(self.model.get_weights())


def _assert_split_selection(result, snapshots: _Snapshots) -> None:
    """The kept weights are the best tracking epoch's, except the flexible-only entries: the best flexible
    epoch's (whichever epochs these are, the same one or not)."""
    tracked, flexed = snapshots.weights[result.best_epoch], snapshots.weights[result.best_flexible_epoch]
    masks = result.model.flexible_weight_masks()
    assert any(mask is not None and mask.any() for mask in masks)
    for kept, t, f, mask in zip(result.model.get_weights(), tracked, flexed, masks):
        np.testing.assert_array_equal(kept, t if mask is None else np.where(mask, f, t))


# --------------------------------------------------------------------------------------------------------
# Config: sections, flat names, files
# --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".toml", ".yaml", ".json"])
def test_config_round_trip(tmp_path, suffix):
    config = TrainConfig(data=["a.csv", "b/"], tz="America/New_York", bar_minutes=30, n_ahead=8,
                         train_end="2021-03-01", val_end=0.9, time_budget_s=30.5, max_windows=None, metrics=True,
                         min_rate=0.01, max_rate=0.25, kan_basis="bspline", max_steps=100, selection="loss",
                         stream=True, sizes=[0.01, 0.05, 0.2], half_spread_bps="corwin-schultz", impact_coef=1.0,
                         max_participation=0.3, arrival="reference")
    path = config.save(tmp_path / f"config{suffix}")
    loaded = TrainConfig.load(path)
    assert loaded == config
    assert loaded.to_dict() == config.to_dict()
    assert set(loaded.to_dict()) == {"data", "windows", "model", "limits", "training", "execution"}
    assert loaded.execution.sizes == (0.01, 0.05, 0.2) and loaded.data.stream
    assert loaded.data.paths == ("a.csv", "b/") and loaded.data.bar_minutes == 30.0


def test_toml_is_written_by_tomli_w_in_sections(tmp_path):
    import tomllib

    text = TrainConfig(data=['quote"d.csv'], max_windows=None).to_toml()
    values = tomllib.loads(text)
    assert values["data"]["paths"] == ['quote"d.csv'] and values["windows"]["lookback"] == 48
    assert "max_windows" not in values["windows"] and "# max_windows = (unset)" in text
    assert "# bars of history before the origin [bars]" in text  # each setting documented


def test_sections_flat_names_and_aliases():
    nested = TrainConfig(windows=WindowConfig(lookback=24), training={"epochs": 3}, data=DataConfig(tz="Asia/Tokyo"))
    flat = TrainConfig(lookback=24, epochs=3, tz="Asia/Tokyo")
    assert nested == flat
    assert flat.lookback == flat.windows.lookback == 24 and flat.epochs == flat.training.epochs == 3
    with pytest.raises(AttributeError):
        flat.lookback = 5  # read-only: change with replace()
    changed = flat.replace(data=["x.csv"], hidden_size=16, model={"num_heads": 2})
    assert changed.data.paths == ("x.csv",) and changed.data.tz == "Asia/Tokyo"  # other data settings kept
    assert (changed.model.hidden_size, changed.model.num_heads, changed.lookback) == (16, 2, 24)
    assert flat.replace(training=changed.training).training == changed.training


def test_old_flat_and_old_sectioned_files_still_read(tmp_path):
    flat = {"data": ["bars/"], "tz": "UTC", "lookback": 30, "n_ahead": 6, "epochs": 20, "patience": 5,
            "time_budget_s": None, "hidden_size": 16, "max_rate": 0.5}
    (tmp_path / "flat.json").write_text(json.dumps(flat))
    old_toml = ('# lems training configuration\n\n[data]\ndata = ["bars/"]  # bar files\ntz = "UTC"\n\n'
                '[windows]\nlookback = 30  # bars\nn_ahead = 6\n# max_windows = (unset)  # cap\n\n'
                '[model]\nhidden_size = 16\n\n[limits]\nmax_rate = 0.5\n\n[training]\nepochs = 20\npatience = 5\n')
    (tmp_path / "old.toml").write_text(old_toml)
    expected = TrainConfig(data=["bars/"], lookback=30, n_ahead=6, epochs=20, patience=5, hidden_size=16,
                           max_rate=0.5)
    assert TrainConfig.load(tmp_path / "flat.json") == expected
    assert TrainConfig.load(tmp_path / "old.toml") == expected


def test_config_validation_and_overrides():
    config = TrainConfig()
    assert config.replace(n_ahead="6", learning_rate="1e-3", patience=None).n_ahead == 6
    assert config.replace(time_budget_s="none").time_budget_s is None
    assert config.replace(weight_averaging="0.99").weight_averaging == 0.99
    assert TrainConfig.from_dict({"model": {"hidden-size": 16}, "seed": 4}).hidden_size == 16
    for bad, match in (({"n_ahead": 1}, "n_ahead"), ({"lookback": 2.5}, "lookback"), ({"train_end": 1.5}, "train_end"),
                       ({"train_end": 0.8, "val_end": 0.5}, "not be after"), ({"kan_basis": "cheb"}, "kan_basis"),
                       ({"min_rate": 0.5, "max_rate": 0.2}, "min_rate"), ({"epochs": True}, "epochs"),
                       ({"time_budget_s": -1}, "time_budget_s"), ({"train_end": "not a date"}, "train_end"),
                       ({"weight_averaging": 1.0}, "weight_averaging"), ({"selection": "val"}, "selection"),
                       ({"max_steps": 0}, "max_steps"), ({"bar_minutes": -5}, "bar_minutes"),
                       ({"n_ahead": 4, "max_rate": 0.2}, "infeasible"),
                       ({"model": {"lookback": 8}}, r"belongs in \[windows\]"), ({"epoch": 3}, "unknown setting"),
                       ({"data": ["a"], "paths": ["b"]}, "set twice"), ({"windows": 3}, "table of settings")):
        with pytest.raises(ValueError, match=match):
            TrainConfig.from_dict(bad)


def test_defaults_train_to_convergence():
    training = TrainConfig().training
    assert training.epochs >= 1000 and training.patience > 0 and training.selection == "tracking"
    assert training.time_budget_s is None and training.max_steps is None


# --------------------------------------------------------------------------------------------------------
# bar_minutes
# --------------------------------------------------------------------------------------------------------
def test_bar_minutes_reaches_the_synthetic_market_and_the_windows(monkeypatch):
    config = _tiny_config(bar_minutes=30, synthetic_days=4)
    bars = load_bars(config)
    spacing = bars.groupby("symbol")["timestamp"].diff().dropna().unique()
    assert list(spacing) == [np.timedelta64(30, "m")]
    import lems.data.windows as windows_module

    seen = {}
    original = windows_module.make_windows

    def spy(*args, **kwargs):
        seen.update(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(windows_module, "make_windows", spy)
    build_windows(config, bars)
    assert seen["bar_minutes"] == 30.0
    with pytest.raises(ValueError, match="whole number"):
        load_bars(_tiny_config(bar_minutes=7.5))


# --------------------------------------------------------------------------------------------------------
# Selection on what is reported
# --------------------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.backend
def test_selection_scores_match_the_report_and_best_weights_are_kept():
    from lems.backtest import backtest
    from lems.baselines import ModelPolicy
    from lems.report import headline

    snapshots = _Snapshots()
    result = train(_tiny_config(max_steps=12, patience=0, seed=2, learning_rate=2e-2), verbose=0,
                   callbacks=[snapshots])
    history = result.history
    for key in (TRACKING_KEY, FLEXIBLE_KEY, SCORE_KEY, "val_loss"):
        assert len(history[key]) == result.epochs_run, key
    np.testing.assert_allclose(history[SCORE_KEY], np.subtract(history[TRACKING_KEY], history[FLEXIBLE_KEY]))
    best = int(np.argmin(history[TRACKING_KEY]))
    assert result.best_epoch == best + 1 and result.monitor == TRACKING_KEY
    flexible_scores = [result.untrained_flexible_bps, *history[FLEXIBLE_KEY]]  # the untrained start is a candidate
    assert result.best_flexible_epoch == int(np.argmax(flexible_scores))
    # the returned model carries the best epoch's tracking weights (its flexible-only weights never touch the fixed
    # column), and the scores are the backtest report's numbers
    tables = headline(backtest({"model": ModelPolicy(result.model)}, result.windows.val))
    tracking = tables["fixed"].set_index("policy").loc["model", "vwap_tracking_error_bps"]
    assert tracking == pytest.approx(history[TRACKING_KEY][best], rel=1e-6, abs=1e-9)
    _assert_split_selection(result, snapshots)
    # the flexible score that chose the flexible-only weights is the report's number for that epoch's weights
    result.model.set_weights(snapshots.weights[result.best_flexible_epoch])
    tables = headline(backtest({"model": ModelPolicy(result.model)}, result.windows.val))
    flexible = tables["flexible"].groupby("policy")["mean_improvement_bps"].mean().loc["model"]  # both benchmarks
    assert flexible == pytest.approx(flexible_scores[result.best_flexible_epoch], rel=1e-6, abs=1e-9)


def _two_steps(**execution):
    """``(result, snapshots)`` of two optimizer steps of the tiny model (``execution``: cost settings)."""
    snapshots = _Snapshots()
    config = _tiny_config(max_steps=2, patience=0, seed=2, learning_rate=2e-2, **execution)
    return train(config, verbose=0, callbacks=[snapshots]), snapshots


@pytest.fixture(scope="module")
def two_steps():
    """Two frictionless steps, shared by the tests that only read a trained result (none changes its model)."""
    return _two_steps()


@pytest.mark.backend
@pytest.mark.parametrize("costed", [False, pytest.param(True, marks=pytest.mark.slow)], ids=["frictionless", "costed"])
def test_train_takes_steps_scores_validation_and_keeps_the_selected_weights(costed, request):
    """The training loop on the active backend, small enough for every backend run: two steps, the validation
    scores (net of costs with a cost model), split selection and the kept weights' scores. The costed loop differs
    from the frictionless one in its targets and loss only (no backend code of its own): it runs on JAX only."""
    if costed:
        result, snapshots = _two_steps(sizes=[0.2], impact_coef=1.0, half_spread_bps=2.0)
    else:
        result, snapshots = request.getfixturevalue("two_steps")
    config = result.config
    assert result.stopped_by == "max_steps" and result.epochs_run == 1 and result.best_epoch == 1
    assert np.isfinite(result.history["loss"]).all() and np.isfinite(result.history["val_loss"]).all()
    _assert_split_selection(result, snapshots)
    scores = ValidationScores(result.windows.val, config.limits.min_rate, config.limits.max_rate,
                              conditions=config.execution.training_conditions())
    scores.set_model(result.model)
    assert scores.scores()[TRACKING_KEY] == pytest.approx(result.history[TRACKING_KEY][0], rel=1e-5, abs=1e-6)


@pytest.mark.slow
def test_selection_by_loss_keeps_the_lowest_val_loss():
    result = train(_tiny_config(max_steps=8, patience=0, seed=4, selection="loss", learning_rate=2e-2), verbose=0)
    assert result.monitor == "val_loss"
    assert result.best_epoch == int(np.argmin(result.history["val_loss"])) + 1
    assert TRACKING_KEY in result.history  # the reported numbers are recorded either way


def test_validation_scores_in_chunks_equal_one_pass(monkeypatch, two_steps):
    import lems.training as training

    result, _ = two_steps
    scores = ValidationScores(result.windows.val, 0.0, 1.0, batch_size=64)
    scores.set_model(result.model)
    whole = scores.scores()
    monkeypatch.setattr(training, "_SCORE_CHUNK", 7)
    assert scores.scores() == pytest.approx(whole, rel=1e-6, abs=1e-6)  # float32 forward passes of other shapes


@pytest.mark.slow
def test_empty_validation_split_warns():
    windows = build_windows(_tiny_config())
    cut = str(windows.origin[len(windows) // 2])
    config = _tiny_config(train_end=cut, val_end=cut, max_steps=2, patience=3)
    with pytest.warns(UserWarning, match="no validation window.*early stopping"):
        result = train(config, verbose=0)
    assert len(result.windows.val) == 0 and result.best_epoch is None and result.monitor is None


# --------------------------------------------------------------------------------------------------------
# Budgets and determinism
# --------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_max_steps_is_exact_and_reproducible():
    """The same seed and step count give the same losses and weights (the demo's reproducibility)."""
    import keras

    class Steps(keras.callbacks.Callback):
        count = 0

        def on_train_batch_end(self, batch, logs=None):
            Steps.count += 1

    config = _tiny_config(max_steps=11, patience=0, seed=7, learning_rate=1e-2)
    first = train(config, verbose=0, callbacks=[Steps()])
    assert Steps.count == 11 and first.stopped_by == "max_steps"
    second = train(config, verbose=0)
    drop = ("wall_time_s",)
    assert {k: v for k, v in first.history.items() if k not in drop} == \
        {k: v for k, v in second.history.items() if k not in drop}
    for a, b in zip(first.model.get_weights(), second.model.get_weights()):
        np.testing.assert_array_equal(a, b)


class _BatchClock(keras.callbacks.Callback):
    """Seconds since the start of training at the end of every batch (started just after the budget's clock)."""

    def on_train_begin(self, logs=None):
        self.start, self.batch_ends = time.perf_counter(), []

    def on_train_batch_end(self, batch, logs=None):
        self.batch_ends.append(time.perf_counter() - self.start)


@pytest.mark.slow
def test_train_stops_within_time_budget():
    config = _tiny_config(epochs=10_000, time_budget_s=2.0, patience=0, seed=5)
    clock = _BatchClock()
    start = time.perf_counter()
    result = train(config, verbose=0, callbacks=[clock])
    elapsed = time.perf_counter() - start
    assert result.stopped_by == "time_budget"
    assert 1 <= result.epochs_run < 10_000
    assert len(result.history["loss"]) == result.epochs_run == len(result.history["wall_time_s"])
    # the budget is checked after every batch: the first batch to end past it is the last one trained (only the
    # epoch's validation pass follows); compilation counts (it is inside the first batch)
    *before, last = clock.batch_ends
    assert last >= config.time_budget_s - 0.01  # (this clock starts a moment after the budget's)
    assert all(end < config.time_budget_s for end in before), f"batches ran past the budget: {clock.batch_ends}"
    assert result.history["wall_time_s"][-1] >= last
    assert result.wall_time_s <= elapsed
    assert isinstance(result.windows, Splits) and len(result.windows.test) > 0
    assert np.isfinite(result.history["loss"]).all()


@pytest.mark.slow
def test_early_stopping_when_neither_score_improves():
    result = train(_tiny_config(epochs=60, patience=1, seed=1, learning_rate=5e-2), verbose=0)
    tracking, flexible = result.history[TRACKING_KEY], [result.untrained_flexible_bps, *result.history[FLEXIBLE_KEY]]
    assert result.stopped_by == "early_stopping" and result.epochs_run < 60
    # the last epoch improved neither the tracking error nor the flexible improvement: patience 1 ran out
    assert tracking[-1] >= min(tracking[:-1]) and flexible[-1] <= max(flexible[:-1])
    assert result.best_epoch == int(np.argmin(tracking)) + 1
    assert result.best_flexible_epoch == int(np.argmax(flexible))


class _Scores:
    """Stands in for ValidationScores before training: the untrained flexible improvement."""

    def __init__(self, untrained: float) -> None:
        self.untrained = untrained

    def scores(self):
        return {TRACKING_KEY: 1.0, FLEXIBLE_KEY: self.untrained, SCORE_KEY: 1.0 - self.untrained}


class _TwoPartModel(keras.Model):
    """Two layers; the second's kernel plays the flexible-only weights."""

    def __init__(self):
        super().__init__()
        self.shared, self.flexible = keras.layers.Dense(2), keras.layers.Dense(1)

    def call(self, x):
        return self.flexible(self.shared(x))

    def flexible_weight_masks(self):
        return [np.ones(v.shape, bool) if v.path == self.flexible.kernel.path else None for v in self.weights]


@pytest.mark.parametrize("untrained, flexible_best, stop", [(-10.0, 2, 4), (10.0, -1, 3)])
def test_best_weights_split_selection_overlays_the_flexible_epoch(untrained, flexible_best, stop):
    """Tracking weights from the lowest tracking epoch, flexible-only entries from the highest flexible epoch (the
    untrained weights when they score best); patience counts epochs in which neither improved."""
    model = _TwoPartModel()
    model(np.zeros((1, 3), "float32"))  # builds both layers
    model.stop_training = False  # as fit() sets it
    callback = BestWeights(TRACKING_KEY, patience=2, flexible=_Scores(untrained))
    callback.set_model(model)
    snapshots = [model.get_weights()]
    callback.on_train_begin()
    logs = [(5.0, 1.0), (3.0, 0.0), (4.0, 2.0), (4.5, 1.5), (4.6, 1.9)]  # (tracking, flexible) per epoch
    for epoch, (tracking, flexible) in enumerate(logs):
        model.set_weights([w + epoch + 1 for w in snapshots[0]])
        snapshots.append(model.get_weights())
        callback.on_epoch_end(epoch, {TRACKING_KEY: tracking, FLEXIBLE_KEY: flexible})
        if model.stop_training:
            break
    assert epoch == stop and callback.stopped_epoch == stop  # the last two epochs improved neither
    assert callback.best_epoch == 1 and callback.best_flexible_epoch == flexible_best
    callback.on_train_end()
    kept = model.get_weights()
    masks = model.flexible_weight_masks()
    for got, tracked, flexed, mask in zip(kept, snapshots[2], snapshots[flexible_best + 1], masks):
        np.testing.assert_array_equal(got, flexed if mask is not None else tracked)


class _WeightScores(_Scores):
    """Scores the model's CURRENT weights: tracking = 2 + 2 |mean of the shared kernel - centre|."""

    def __init__(self, model, centre: float, untrained: float = -10.0) -> None:
        super().__init__(untrained)
        self.model, self.centre = model, centre

    def tracking(self) -> float:
        return 2.0 + 2.0 * abs(float(np.mean(self.model.get_weights()[0])) - self.centre)

    def scores(self):
        tracking = self.tracking()
        return {TRACKING_KEY: tracking, FLEXIBLE_KEY: self.untrained, SCORE_KEY: tracking - self.untrained}


def _run_soup(soup: int, flexible_logs=(0.0, 1.0, 0.5, 0.2), centre: float = 2.4):
    """Four epochs whose weights are all ``epoch + 1`` (centre 2.4: tracking 4.8, 2.8, 3.2, 5.2 as scored)."""
    model = _TwoPartModel()
    model(np.zeros((1, 3), "float32"))
    model.stop_training = False
    zeros = [np.zeros_like(w) for w in model.get_weights()]
    scores = _WeightScores(model, centre)
    callback = BestWeights(TRACKING_KEY, patience=0, flexible=scores, soup=soup)
    callback.set_model(model)
    model.set_weights(zeros)
    callback.on_train_begin()
    for epoch, flexible in enumerate(flexible_logs):
        model.set_weights([w + epoch + 1 for w in zeros])
        callback.on_epoch_end(epoch, {TRACKING_KEY: scores.tracking(), FLEXIBLE_KEY: flexible})
    callback.on_train_end()
    return model, callback, scores


@pytest.mark.parametrize("soup, epochs, value", [(1, [1], 2.8), (2, [1, 2], 2.2), (4, [1, 2], 2.2)])
def test_greedy_weight_soup_keeps_an_epoch_only_when_validation_improves(soup, epochs, value):
    """Best epoch 1 (weights 2); averaging in epoch 2 (weights 3) scores 2.2 < 2.8: kept; then epochs 0 or 3 would
    move the mean away from 2.4: left out. The flexible-only entries stay those of the best flexible epoch (1)."""
    model, callback, scores = _run_soup(soup)
    assert callback.soup_epochs == epochs and callback.soup_score == pytest.approx(value)
    assert scores.tracking() == pytest.approx(value) and callback.best_epoch == 1
    for got, mask in zip(model.get_weights(), model.flexible_weight_masks()):
        np.testing.assert_allclose(got, 2.0 if mask is not None else np.mean([e + 1 for e in epochs]))


def test_weight_soup_that_never_beats_the_best_epoch_keeps_it():
    """Centre 2 = the best epoch's weights: every average scores worse, the best epoch is kept as it is."""
    model, callback, scores = _run_soup(4, flexible_logs=(0.0, 0.0, 0.0, 3.0), centre=2.0)
    assert callback.soup_epochs == [1] and callback.soup_score == pytest.approx(2.0) == scores.tracking()
    for got, mask in zip(model.get_weights(), model.flexible_weight_masks()):
        np.testing.assert_allclose(got, 4.0 if mask is not None else 2.0)  # flexible-only entries: epoch 3


def test_weight_soup_arguments():
    with pytest.raises(ValueError, match="soup"):
        BestWeights(TRACKING_KEY, soup=0)
    with pytest.raises(ValueError, match="ValidationScores"):
        BestWeights(TRACKING_KEY, soup=3)  # nothing to score the candidates with
    with pytest.raises(ValueError, match="ValidationScores"):
        BestWeights("val_loss", soup=3, flexible=_Scores(0.0))
    with pytest.raises(ValueError, match="weight_soup"):
        TrainConfig(weight_soup=3, selection="loss").validate()
    with pytest.raises(ValueError, match="weight_soup"):
        TrainConfig(weight_soup=0).validate()


@pytest.mark.slow
def test_train_with_a_weight_soup_keeps_weights_at_least_as_good_on_validation():
    config = _tiny_config(epochs=4, patience=0, seed=2, learning_rate=2e-2, weight_soup=4)
    result = train(config, verbose=0)
    tracking = result.history[TRACKING_KEY]
    assert result.soup_epochs[0] == result.best_epoch == int(np.argmin(tracking)) + 1
    assert set(result.soup_epochs) <= set(range(1, 5)) and len(set(result.soup_epochs)) == len(result.soup_epochs)
    scores = ValidationScores(result.windows.val, config.limits.min_rate, config.limits.max_rate)
    scores.set_model(result.model)
    kept = scores.scores()[TRACKING_KEY]
    assert kept <= min(tracking) + 1e-6
    assert (kept < min(tracking)) == (len(result.soup_epochs) > 1)


def _untrained_scored(config):
    """An untrained model of ``config`` and a :class:`ValidationScores` on its validation windows, wired."""
    splits = split_windows(config, build_windows(config))
    model = build_model(config, n_features=splits.train.X.shape[-1])
    scores = ValidationScores(splits.val, config.limits.min_rate, config.limits.max_rate)
    scores.set_model(model)
    return model, scores


def test_rule_prior_tuning_keeps_the_best_validation_threshold_per_policy_and_column():
    """Per policy and min duration the argmax of the grid: the tuned model's validation flexible improvement is
    at least that of every single threshold, its per-order table averages to the logged score, and the chosen
    thresholds are grid values written into the decoder."""
    model, scores = _untrained_scored(_tiny_config(n_ahead=6))
    grid = (0.1, 0.4, 1.5)
    tuner = RulePriorTuning(scores, grid=grid, smooth=0, max_windows=len(scores.windows))
    tuner.set_model(model)
    tuner.on_train_begin()
    tuned = scores.scores()[FLEXIBLE_KEY]
    np.testing.assert_allclose(scores.flexible_by_order().mean(), tuned, rtol=1e-9, atol=1e-9)
    chosen = tuner.thresholds
    assert chosen.shape == (model.decoder.n_flexible_models, 6) and set(np.unique(chosen)) <= set(grid)
    np.testing.assert_allclose(model.decoder.rule_thresholds, chosen, rtol=1e-6)
    np.testing.assert_allclose(tuner.table.max(axis=0).mean(), tuned, rtol=1e-6, atol=1e-6)
    for threshold in grid:
        model.decoder.rule_thresholds = threshold
        assert scores.scores()[FLEXIBLE_KEY] <= tuned + 1e-9
    half = RulePriorTuning(scores, grid=grid, max_windows=len(scores.windows) // 2)  # a subset, wired at train begin
    half.set_model(model)
    half.on_train_begin()
    assert half.table.shape == (len(grid), model.decoder.n_flexible_models, 6)


def test_rule_prior_tuning_checks_its_arguments_and_skips_models_without_the_prior():
    model, scores = _untrained_scored(_tiny_config(flexible_prior="none"))
    for bad in ({"grid": ()}, {"grid": (0.1, float("nan"))}, {"smooth": -1}, {"max_windows": 0}):
        with pytest.raises(ValueError):
            RulePriorTuning(scores, **bad)
    tuner = RulePriorTuning(scores)
    tuner.set_model(model)
    tuner.on_train_begin()
    assert tuner.thresholds is None and tuner.table is None
    few = RulePriorTuning(scores, max_windows=5)
    assert len(few.scores.windows) == 5 and len(scores.windows) > 5
    evenly = np.linspace(0, len(scores.windows) - 1, 5).round().astype(int)
    np.testing.assert_array_equal(few.scores._y, scores._y[evenly])
    with pytest.raises(ValueError, match="no rule prior"):
        model.decoder.rule_thresholds = 0.5


@pytest.mark.slow
def test_train_tunes_the_rule_prior_unless_told_not_to(two_steps):
    from lems.training import RULE_THRESHOLD_GRID

    tuned, _ = two_steps
    assert set(np.unique(tuned.rule_prior_thresholds)) <= set(RULE_THRESHOLD_GRID)
    assert tuned.untrained_flexible_bps is not None
    plain = train(_tiny_config(max_steps=1, patience=0, tune_rule_prior=False), verbose=0)
    assert plain.rule_prior_thresholds is None
    with pytest.raises(ValueError, match="finite"):
        plain.model.decoder.rule_thresholds = np.inf


def test_split_windows_fractions_and_dates():
    from lems.data.synthetic import synthetic_market
    from lems.data.windows import make_windows

    windows = make_windows(synthetic_market(n_assets=2, n_days=10, seed=0), 8, 4, stride=3)
    splits = split_windows(_tiny_config(train_end=0.5, val_end=0.75), windows)
    assert splits.train.horizon_end.max() < splits.val.origin.min()
    assert splits.val.horizon_end.max() < splits.test.origin.min()
    n_origins = len(np.unique(windows.origin))
    assert abs(len(np.unique(splits.test.origin)) - 0.25 * n_origins) <= 2
    cut = windows.origin[len(windows) // 2]
    dated = split_windows(_tiny_config(train_end=str(cut), val_end=str(cut)), windows)
    assert len(dated.val) == 0 and dated.test.origin.min() >= cut
    with pytest.raises(ValueError, match="no training window"):
        split_windows(_tiny_config(train_end="2000-01-01", val_end="2000-01-02"), windows)


@pytest.mark.slow
def test_train_runs_extra_callbacks_and_weight_averaging():
    import keras

    class Count(keras.callbacks.Callback):
        epochs = 0

        def on_epoch_end(self, epoch, logs=None):
            Count.epochs += 1

    result = train(_tiny_config(epochs=2, patience=0, seed=1, weight_averaging=0.9), verbose=0,
                   callbacks=[Count()])
    assert Count.epochs == result.epochs_run == 2
    assert result.model.optimizer.use_ema and np.isfinite(result.history["loss"]).all()


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "jax") != "jax", reason="JAX compilation cache")
def test_compilation_cache_is_opt_in_and_set_process_wide(tmp_path):
    code = ("import lems, jax; from lems.training import enable_compilation_cache; "
            "assert not jax.config.jax_compilation_cache_dir; "
            f"p = enable_compilation_cache({str(tmp_path / 'cache')!r}); "
            "assert jax.config.jax_compilation_cache_dir == str(p) and p.is_dir(); print('ok')")
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    for name in ("LEMS_COMPILATION_CACHE", "JAX_COMPILATION_CACHE_DIR"):  # run_tests.py sets the latter
        env.pop(name, None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_diverged_output_stops_training_with_a_warning():
    config = _tiny_config(max_steps=2, patience=0)
    windows = split_windows(config, build_windows(config)).val

    class NaNModel:
        stop_training = False

        def predict(self, x, batch_size=None, verbose=0):
            return np.full((len(x[0]), 4, 5, 4, 2), np.nan, dtype=np.float32)

    scores = ValidationScores(windows, 0.0, 1.0)
    model = NaNModel()
    scores.set_model(model)
    logs = {}
    with pytest.warns(RuntimeWarning, match="epoch 3: .* NaN or inf .*training stops"):
        scores.on_epoch_end(2, logs)
    assert model.stop_training and scores.diverged_epoch == 2
    assert np.isnan(logs[SCORE_KEY]) and np.isnan(logs[TRACKING_KEY])


# --------------------------------------------------------------------------------------------------------
# [execution]: order sizes, cost model, participation cap
# --------------------------------------------------------------------------------------------------------
def test_execution_defaults_are_frictionless_and_old_files_read(tmp_path):
    from lems.execution import NoCost
    from lems.loss import lem_loss

    execution = TrainConfig().execution
    assert not execution.costed and execution.cost_model() == NoCost() and execution.conditions() == []
    assert execution.training_conditions() is None and execution.training_loss() is lem_loss
    (tmp_path / "old.toml").write_text("[windows]\nlookback = 30\n")  # a file without [execution]
    assert TrainConfig.load(tmp_path / "old.toml").execution == execution
    # sizes without any cost, cap or risk term: still the frictionless loss
    assert TrainConfig(sizes=[0.05]).execution.training_loss() is lem_loss


def test_execution_settings_map_to_conditions_per_size():
    from lems.execution import (
        CompositeCost,
        LinearPermanentImpact,
        SpreadCost,
        SquareRootImpact,
    )
    from lems.training import conditions_from_settings, cost_model_from_settings

    settings = {"spread_bps": 2.0, "impact": "sqrt", "impact_coef": 1.0, "impact_delta": 0.5, "permanent_coef": 0.0,
                "max_participation": 0.1, "sizes": [0.01, 0.05, 0.2], "arrival": "close"}
    conditions = conditions_from_settings(settings)
    assert [c.size.participation for c in conditions] == [0.01, 0.05, 0.2]
    expected = CompositeCost((SpreadCost(half_spread_bps=2.0), SquareRootImpact(coef=1.0, delta=0.5)))
    assert all(c.cost_model == expected and c.max_participation == 0.1 and c.arrival == "close" for c in conditions)
    estimated = cost_model_from_settings({"spread": "corwin_schultz", "permanent_coef": 0.2})
    assert estimated == CompositeCost((SpreadCost(half_spread_bps=None), LinearPermanentImpact(coef=0.2)))
    assert cost_model_from_settings({"impact": "none", "impact_coef": 3.0}).is_free
    from_cli = TrainConfig().replace(sizes=["0.02", "0.1"], half_spread_bps="1.5")  # CLI strings
    assert from_cli.execution.sizes == (0.02, 0.1) and from_cli.execution.half_spread_bps == 1.5


@pytest.mark.parametrize("bad, match", [
    ({"half_spread_bps": -1}, r"half_spread_bps must be in \[0, inf\) bps"),
    ({"spread_bps": "wide"}, "half_spread_bps must be a number"),
    ({"sizes": [0.05, 0.0]}, r"sizes must be .* in \(0, inf\)"),
    ({"sizes": -0.1}, r"sizes must be .* in \(0, inf\)"),
    ({"train_size": 0}, r"train_size must be in \(0, inf\)"),
    ({"max_participation": 0.0}, r"max_participation must be in \(0, 1\]"),
    ({"max_participation": 1.5}, r"max_participation must be in \(0, 1\]"),
    ({"impact_coef": -0.5}, r"impact_coef must be in \[0, inf\)"),
    ({"permanent_coef": -1}, r"permanent_coef must be in \[0, inf\)"),
    ({"impact_delta": 1.5}, r"impact_delta must be in \(0, 1\]"),
    ({"impact": "linear"}, "impact must be one of"),
    ({"arrival": "open"}, "arrival must be one of"),
    ({"sizes": [0.05, 0.2], "max_participation": 0.1, "require_completion": True}, "infeasible order"),
])
def test_execution_bad_values_name_the_setting_and_its_range(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(execution=bad)


def test_several_sizes_need_a_train_size():
    config = _tiny_config(sizes=[0.01, 0.2], impact_coef=1.0)
    with pytest.raises(ValueError, match="train_size"):
        train(config, verbose=0)
    conditions = config.replace(train_size=0.2).execution.training_conditions()
    assert conditions.size.participation == 0.2


@pytest.mark.slow
@pytest.mark.backend
def test_cost_aware_training_scores_validation_net_of_costs():
    """Sizes and a cost model: the cost-aware loss on extended targets; the validation scores are the costed
    backtest's numbers of the kept weights."""
    import keras

    from lems.backtest import backtest, cost_targets
    from lems.baselines import ModelPolicy
    from lems.loss import CostAwareLemLoss
    from lems.report import headline

    config = _tiny_config(max_steps=3, patience=0, sizes=[0.2], impact_coef=1.0, half_spread_bps=2.0, seed=3)
    snapshots = _Snapshots()
    result = train(config, verbose=0, callbacks=[snapshots])
    loss = result.model.loss
    assert isinstance(loss, CostAwareLemLoss) and loss.order_participation == 0.2
    assert loss.cost_model == config.execution.cost_model()
    val = result.windows.val
    y = cost_targets(val, half_spread=2e-4)
    x = [val.X, np.zeros((len(val), 1)), np.ones((len(val), 1))]
    best = result.best_epoch - 1
    _assert_split_selection(result, snapshots)
    kept = result.model.get_weights()
    result.model.set_weights(snapshots.weights[result.best_epoch])  # all of the best epoch's weights: its val_loss
    value = keras.ops.convert_to_numpy(loss(y, result.model.predict(x, verbose=0)))  # reduced over the windows
    assert np.isfinite(value) and float(value) == pytest.approx(result.history["val_loss"][best], rel=1e-4)
    result.model.set_weights(kept)
    conditions = config.execution.conditions()[0]
    net = headline(backtest({"model": ModelPolicy(result.model)}, val, conditions=conditions))
    free = headline(backtest({"model": ModelPolicy(result.model)}, val))
    tracking = net["fixed"].set_index("policy").loc["model", "vwap_tracking_error_bps"]
    assert tracking == pytest.approx(result.history[TRACKING_KEY][best], rel=1e-6, abs=1e-9)
    assert free["fixed"]["vwap_tracking_error_bps"].iloc[0] != pytest.approx(tracking, rel=1e-3)  # costs matter


# --------------------------------------------------------------------------------------------------------
# Streaming many symbols (lems.data.universe)
# --------------------------------------------------------------------------------------------------------
def _partitioned_market(tmp_path):
    """``(dataset folder, bars)``: a small synthetic market written as a Parquet dataset partitioned by symbol."""
    from lems.data.synthetic import synthetic_market
    from lems.data.universe import write_partitioned

    bars = synthetic_market(n_assets=3, n_days=8, seed=5)
    return str(write_partitioned(bars, tmp_path / "universe")), bars


@pytest.mark.slow
def test_stream_trains_on_universe_batches(tmp_path):
    import keras

    from lems.data.universe import UniverseWindows

    class Batches(keras.callbacks.Callback):
        seen = 0

        def on_train_batch_end(self, batch, logs=None):
            Batches.seen += 1

    data, bars = _partitioned_market(tmp_path)
    config = _tiny_config(data=[data], stream=True, max_windows=70, epochs=1, patience=0, bar_minutes=60)
    materialised = split_windows(config, build_windows(config, bars))
    streamed = train(config, verbose=0, callbacks=[Batches()])
    assert all(isinstance(part, UniverseWindows) for part in streamed.windows)
    assert [len(p) for p in streamed.windows] == [len(p) for p in materialised]  # the same purged split
    assert Batches.seen == 70 // config.batch_size  # max_windows caps the batches of an epoch
    assert np.isfinite(streamed.history["loss"]).all()
    assert np.isfinite(streamed.history[TRACKING_KEY]).all()  # selection scores on the materialised validation
    with pytest.raises(ValueError, match="stream = false"):
        train(config.replace(sizes=[0.05], impact_coef=1.0), verbose=0)


def test_evaluation_windows_of_a_streamed_dataset(tmp_path):
    from lems.training import evaluation_windows

    data, bars = _partitioned_market(tmp_path)
    config = _tiny_config(data=[data], stream=True, bar_minutes=60)
    test = evaluation_windows(config, "test")
    expected = split_windows(config, build_windows(config, bars)).test
    assert len(test) == len(expected) > 0
    order = np.lexsort((np.asarray(expected.asset), expected.origin.asi8))
    mine = np.lexsort((np.asarray(test.asset), test.origin.asi8))
    np.testing.assert_array_equal(test.X[mine], expected.X[order])
    assert len(evaluation_windows(config, "all")) == len(build_windows(config, bars))
    with pytest.raises(ValueError, match="split"):
        evaluation_windows(config, "val")
