"""Training a :class:`~lems.models.LargeExecutionModel` from a :class:`~lems.training.config.TrainConfig`.

:func:`train` is open: a caller (a benchmark, an experiment) can pass its own windows or splits, its own loss with
its own targets, its own validation cost conditions, extra model arguments and callbacks, and keeps the library's
batches, selection on the reported numbers and budgets.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import pandas as pd

from lems.loss import compact_targets
from lems.metrics import ALL_METRICS
from lems.models import LargeExecutionModel
from lems.runtime import fast_compile
from lems.training.config import TrainConfig
from lems.training.feed import (
    Splits,
    _check_splits,
    _streamed,
    _training_batches,
    build_windows,
    reading_progress,
    split_windows,
    stream_parts,
    validation_part,
)
from lems.training.selection import (
    TRACKING_KEY,
    BestWeights,
    RulePriorTuning,
    StepBudget,
    TimeBudget,
    ValidationScores,
    StepProgress,
    _EpochClock,
)
from lems.utils import set_random_seed

__all__ = ["TrainResult", "build_model", "train"]

#: ``conditions=`` default of :func:`train`: the config's training conditions.
_FROM_CONFIG: Any = object()


def build_model(config: TrainConfig, n_features: int | None = None, steps_per_epoch: int | None = None, *,
                loss: Any = None, model_args: Mapping[str, Any] | None = None, extended_targets: bool | None = None):
    """A compiled :class:`~lems.models.LargeExecutionModel` (Adam; :func:`lems.loss.lem_loss`, or the cost-aware
    loss of ``config.execution``: :meth:`ExecutionConfig.training_loss`).

    Args:
        config: Hyperparameters.
        n_features: Channels of ``X``; when given, the model is built for that input shape.
        steps_per_epoch: Batches per epoch: with ``weight_averaging``, the averaged weights replace the model's
            every that many steps (default: only at the end of ``fit``).
        loss: A Keras loss of one's own instead of the config's (e.g. :func:`lems.loss.make_lem_loss` of a size).
        model_args: :class:`~lems.models.LargeExecutionModel` arguments that replace the config's ``[model]``
            values (e.g. an ablation's); unknown names raise ``ValueError``.
        extended_targets: The targets have the cost channels of :func:`lems.data.targets.cost_targets` (the
            metrics then read the compact two); default: when the config trains cost-aware.
    """
    w, t = config.windows, config.training
    arguments = config.model.to_dict()
    unknown = sorted(set(model_args or {}) - set(arguments))
    if unknown:
        raise ValueError(f"model_args: unknown LargeExecutionModel argument(s) {unknown}; the [model] settings are "
                         f"{sorted(arguments)} (lookback and n_ahead come from [windows])")
    model = LargeExecutionModel(lookback=w.lookback, n_ahead=w.n_ahead, **{**arguments, **(model_args or {})})
    if extended_targets is None:
        extended_targets = config.execution.training_conditions() is not None
    metrics = None
    if t.metrics:
        metrics = list(ALL_METRICS)
        if extended_targets:  # extended targets: the metrics read channels 0-1
            metrics = [_on_compact_targets(m) for m in metrics]
    averaging = t.weight_averaging
    optimizer = keras.optimizers.Adam(learning_rate=t.learning_rate, use_ema=averaging is not None,
                                      ema_momentum=averaging or 0.99,
                                      ema_overwrite_frequency=steps_per_epoch if averaging else None)
    if loss is None:
        loss = config.execution.training_loss(config.limits.max_rate)
    model.compile(optimizer=optimizer, loss=loss, metrics=metrics)
    if n_features is not None:
        model.build([(None, w.lookback + w.n_ahead - 1, n_features), (None, 1), (None, 1)])
    return model


def _on_compact_targets(metric):
    """``metric`` reading the compact part of extended targets (:func:`lems.loss.compact_targets`)."""
    def wrapped(y_true, y_pred):
        return metric(compact_targets(y_true), y_pred)

    wrapped.__name__ = getattr(metric, "__name__", "metric")
    return wrapped


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: The trained model (the best validation epoch's weights when there is a validation set).
        history: Per-epoch logs: ``loss``, ``val_loss``, ``val_tracking_error_bps``,
            ``val_flexible_improvement_bps``, ``val_selection_score`` (when there is a validation set), metrics,
            and ``wall_time_s`` (seconds since the start of training at each epoch end).
        config: The config used.
        windows: The :class:`Splits` (train, val, test).
        wall_time_s: Wall-clock time of ``fit`` [seconds].
        epochs_run: Epochs started.
        stopped_by: ``"epochs"``, ``"early_stopping"``, ``"max_steps"``, ``"time_budget"`` or ``"diverged"`` (the
            validation output became NaN or inf).
        best_epoch: Epoch (from 1) whose weights were kept; None without validation (last weights kept).
        monitor: History key that chose ``best_epoch`` (``"val_tracking_error_bps"`` or ``"val_loss"``), or None.
        best_flexible_epoch: Epoch (from 1; 0 = the untrained weights) whose flexible-only weights were kept
            (split selection, :class:`BestWeights`), or None.
        untrained_flexible_bps: Validation flexible improvement of the untrained model [bps] (split selection;
            with ``tune_rule_prior``, of the tuned rule prior), or None.
        rule_prior_thresholds: The rule prior's ``(n_flexible_models, H)`` thresholds chosen on validation before
            training [lookback volatility units] (:class:`RulePriorTuning`), or None when not tuned.
        soup_epochs: Epochs (from 1, best first) averaged into the kept tracking weights (``weight_soup``;
            ``[best_epoch]`` when the soup did not beat it), or None without validation.
        unseen: Test-period windows of the held-out symbols of a streamed universe
            (``windows.holdout_symbols``), or None; ``config.windows.holdout_symbols`` then names them.
    """

    model: Any
    history: dict[str, list[float]]
    config: TrainConfig
    windows: Splits
    wall_time_s: float
    epochs_run: int
    stopped_by: str
    best_epoch: int | None = None
    monitor: str | None = None
    best_flexible_epoch: int | None = None
    untrained_flexible_bps: float | None = None
    rule_prior_thresholds: np.ndarray | None = None
    soup_epochs: list[int] | None = None
    unseen: Any = None

    def history_frame(self):
        """The history as a DataFrame, one row per epoch (``epoch`` from 1)."""
        frame = pd.DataFrame(self.history)
        frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
        return frame


def _selection_callbacks(config: TrainConfig, val, conditions: Any = _FROM_CONFIG,
                         verbose: int = 0) -> tuple[list, BestWeights | None]:
    """Validation scoring (net of costs for a cost-aware model) and best-weights selection, or a warning when
    there is no validation window."""
    t = config.training
    if len(val) == 0:
        warnings.warn("no validation window (train_end..val_end is empty): early stopping and best-weights "
                      "selection are off, the last epoch's weights are kept", UserWarning, stacklevel=3)
        return [], None
    val = validation_part(config, val)  # at most max_val_windows: a bounded pass on a large universe
    if _streamed(val):
        if verbose:
            print(f"validation: building {len(val)} windows of {len(val.symbols)} symbols (max_val_windows "
                  f"{t.max_val_windows})", flush=True)
        val = val.to_window_set()
    scores = ValidationScores(val, config.limits.min_rate, config.limits.max_rate,
                              batch_size=max(t.batch_size, 256),
                              conditions=config.execution.training_conditions() if conditions is _FROM_CONFIG
                              else conditions)
    tuning = [RulePriorTuning(scores)] if t.tune_rule_prior else []  # runs before BestWeights scores the start
    if t.selection == "tracking":  # tracking weights on tracking, flexible weights on flexible improvement
        best = BestWeights(TRACKING_KEY, patience=t.patience, flexible=scores, soup=t.weight_soup)
    else:
        best = BestWeights("val_loss", patience=t.patience)
    return [scores, *tuning, best], best


def _stopped_by(budgets: dict[str, Any], selection: list) -> str:
    if any(getattr(cb, "diverged_epoch", None) is not None for cb in selection):
        return "diverged"
    best = next((cb for cb in selection if isinstance(cb, BestWeights)), None)
    for name, budget in budgets.items():
        if budget is not None and budget.triggered:
            return name
    return "early_stopping" if best is not None and best.stopped_epoch is not None else "epochs"


def train(config: TrainConfig | None = None, windows=None, verbose: int = 1, callbacks=(), *, loss: Any = None,
          targets: tuple[Any, Any] | None = None, conditions: Any = _FROM_CONFIG,
          model_args: Mapping[str, Any] | None = None, steps_per_epoch: int | None = None) -> TrainResult:
    """Train a model on the config's data (or on ``windows``), keeping the best validation epoch's weights.

    Training stops at the first of: the epoch cap, ``max_steps``, the time budget, or ``patience`` epochs
    without a better validation score (``training.selection``). Without validation windows a warning says that
    selection and early stopping are off.

    Args:
        config: Settings (default :class:`TrainConfig`: synthetic market, small model).
        windows: Prebuilt windows (a :class:`lems.data.windows.WindowSet`, split here by the config, or a
            :class:`Splits` of window sets or of :class:`lems.data.universe.UniverseWindows`, streamed); default:
            built from ``config.data`` (streamed with ``data.stream``, :func:`stream_splits`). With
            ``config.execution`` sizes and a cost model, the loss is the cost-aware one on extended targets and the
            validation scores are net of costs (:meth:`ExecutionConfig.training_conditions`).
        verbose: Keras verbosity (1: progress bar per epoch, 2: one line per epoch, 0: silent).
        callbacks: Extra Keras callbacks, run after the built-in ones (scores, selection, budgets, clock).
        loss: A Keras loss of one's own (e.g. :func:`lems.loss.make_lem_loss` for one order size) instead of the
            config's; give ``targets`` when it needs other targets than the config's.
        targets: ``(train, validation)`` targets of one's own, one row per window of the materialised train and
            validation splits (e.g. :func:`lems.data.targets.cost_targets` for ``loss``); default: the config's
            (``windows.y``, or the extended targets of a cost-aware config).
        conditions: :class:`lems.execution.ExecutionConditions` the validation windows are scored under (net of
            costs), or ``None`` for frictionless scores; default: the config's training conditions.
        model_args: :class:`~lems.models.LargeExecutionModel` arguments that replace the config's ``[model]`` values
            (:func:`build_model`).
        steps_per_epoch: Optimizer steps per epoch (``model.fit``'s); default: one pass over the training batches.

    Returns:
        A :class:`TrainResult`.

    Raises:
        ValueError: bad config, unreadable data, no training window, several sizes without ``train_size``,
            cost-aware training on streamed windows, targets that do not match the windows.
    """
    config = TrainConfig() if config is None else config
    config.validate()
    t = config.training
    config.execution.training_size()  # several sizes and no train_size: say so before any data work
    unseen = None
    if windows is None:  # data errors surface before any model work
        if config.data.stream:
            parts = stream_parts(config, reading_progress() if verbose else None)
            windows, unseen = parts.splits, parts.unseen
            if parts.holdout:  # the saved config names the held-out symbols, for lems evaluate
                config = config.replace(holdout_symbols=",".join(parts.holdout))
                t = config.training
        else:
            windows = build_windows(config)
    set_random_seed(t.seed)
    splits = windows if isinstance(windows, Splits) else split_windows(config, windows)
    _check_splits(config, splits)
    costed = config.execution.training_conditions() is not None
    data, val, n_features = _training_batches(config, splits, costed and targets is None, targets)
    extended = costed if targets is None else np.asarray(targets[0]).shape[-1] > 2
    model = build_model(config, n_features=n_features, steps_per_epoch=steps_per_epoch or len(data), loss=loss,
                        model_args=model_args, extended_targets=extended)
    selection, best = _selection_callbacks(config, splits.val, conditions, verbose)
    budgets = {"time_budget": TimeBudget(t.time_budget_s) if t.time_budget_s is not None else None,
               "max_steps": StepBudget(t.max_steps) if t.max_steps is not None else None}
    clock = _EpochClock()
    progress = [StepProgress(t.batch_size, budget_s=t.time_budget_s)] if verbose and _streamed(splits.train) else []
    # the budgets' clock starts after the set-up scoring (rule prior, untrained flexible: bounded by
    # max_val_windows), so that extra callbacks see the tuned start and a clock that starts with the budget's
    all_callbacks = [*selection, *filter(None, budgets.values()), clock, *progress, *callbacks]
    start = time.perf_counter()
    with fast_compile(t.fast_compile):
        fitted = model.fit(data, validation_data=val, epochs=t.epochs, callbacks=all_callbacks,
                           verbose=2 if progress else verbose, steps_per_epoch=steps_per_epoch)
    wall = time.perf_counter() - start
    history = {k: [float(v) for v in values] for k, values in fitted.history.items()}
    history["wall_time_s"] = [float(x) for x in clock.times]
    result = _result(model, history, config, splits, wall, clock, budgets, selection, best)
    result.unseen = unseen
    return result


def _result(model, history: dict, config: TrainConfig, splits: Splits, wall: float, clock: _EpochClock,
            budgets: dict[str, Any], selection: list, best: BestWeights | None) -> TrainResult:
    kept = best is not None and best.best_epoch >= 0
    return TrainResult(model=model, history=history, config=config, windows=splits, wall_time_s=wall,
                       epochs_run=len(clock.times), stopped_by=_stopped_by(budgets, selection),
                       best_epoch=best.best_epoch + 1 if kept else None, monitor=best.monitor if kept else None,
                       best_flexible_epoch=(best.best_flexible_epoch + 1 if kept and best.best_flexible_epoch is not None
                                            else None),
                       untrained_flexible_bps=best.untrained_flexible if best is not None else None,
                       rule_prior_thresholds=next((cb.thresholds for cb in selection
                                                   if isinstance(cb, RulePriorTuning)), None),
                       soup_epochs=[e + 1 for e in best.soup_epochs] if kept else None)
