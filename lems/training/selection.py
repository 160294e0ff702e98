"""Selection on what is reported: Keras callbacks that score the validation windows as the backtest does
(:class:`ValidationScores`), keep the best weights (split tracking / flexible selection and the greedy weight soup,
:class:`BestWeights`), tune the rule prior before the first step (:class:`RulePriorTuning`), and stop at a budget
(:class:`TimeBudget`, :class:`StepBudget`)."""

from __future__ import annotations

import copy
import math
import sys
import time
import warnings
from typing import Any, NamedTuple

import keras
import numpy as np

from lems.data.targets import execution_inputs, seed_targets, windows_per_chunk
from lems.execution import IS_VWAP_ORDER, rate_columns, seed_execution, seed_outcome
from lems.layers.decoder import RULE_THRESHOLD

__all__ = ["FLEXIBLE_KEY", "RULE_THRESHOLD_GRID", "SCORE_KEY", "TRACKING_KEY", "BestWeights", "RulePriorTuning",
           "StepBudget", "StepProgress", "TimeBudget", "ValidationScores", "selection_scores"]

#: Keys the validation scores add to the training logs and history (units: bps).
TRACKING_KEY, FLEXIBLE_KEY, SCORE_KEY = "val_tracking_error_bps", "val_flexible_improvement_bps", "val_selection_score"
_SCORE_CHUNK = 2048  # windows per forward pass and outcome computation (bounds the float64 temporaries)
_SCORE_CELLS = 2**23  # and at most this many bar x order cells (64 MiB of float64): long horizons, fewer windows


def selection_scores(allocations: np.ndarray, y: np.ndarray, costs: _NetScoring | None = None) -> dict[str, float]:
    """Sums of the reported numbers over windows (:func:`lems.execution.seed_outcome`, as the backtest).

    Args:
        allocations: ``(N, H, H+1, 4, 2)`` allocations of one chunk of windows.
        y: ``(N, H, 2)`` float64 targets (:func:`lems.data.targets.seed_targets`).
        costs: score NET of costs instead (:func:`lems.execution.seed_execution`, as the costed backtest): the
            conditions with each window's inputs (rows of this chunk); ``None``: frictionless.

    Returns:
        ``tracking`` (sum over windows of the mean ``|diff|`` [bps] of the fixed column's VWAP orders, both
        sides and targets, as the report's headline), ``flexible`` (sum over windows of the mean improvement
        [bps] of the flexible columns, all min durations, sides, benchmarks and targets) and ``n`` (windows).
    """
    horizon = allocations.shape[1]
    allocations = np.asarray(allocations, dtype=np.float64)
    out = _outcome(allocations, y, costs)
    tracking = np.abs(out.diff[:, horizon][:, IS_VWAP_ORDER]).reshape(len(y), -1).mean(axis=1) * 1e4
    flexible = out.improvement_bps[:, :horizon].reshape(len(y), -1).mean(axis=1)
    return {"tracking": float(tracking.sum()), "flexible": float(flexible.sum()), "n": len(y)}


def _outcome(allocations: np.ndarray, y: np.ndarray, costs: _NetScoring | None):
    """The :class:`lems.execution.ExecutionOutcome` of a chunk: frictionless, or net of ``costs``."""
    return seed_outcome(allocations, y) if costs is None else costs.outcome(allocations, y)


class _NetScoring(NamedTuple):
    """Execution conditions with the per-window inputs of some windows (:func:`lems.data.targets.execution_inputs`)."""

    conditions: Any
    inputs: Any
    max_rate: float

    @classmethod
    def of(cls, windows, conditions, max_rate: float) -> _NetScoring:
        return cls(conditions, execution_inputs(windows, conditions), float(max_rate))

    def rows(self, rows: np.ndarray) -> _NetScoring:
        """The same conditions for a subset of the windows."""
        inputs = self.inputs._replace(**{k: (None if v is None else v[rows]) for k, v in self.inputs._asdict().items()})
        return self._replace(inputs=inputs)

    def outcome(self, allocations: np.ndarray, y: np.ndarray):
        """The :class:`lems.execution.ExecutionOutcome` net of costs (fields ``(N, H+1, 4, 2)``)."""
        c, i = self.conditions, self.inputs
        return seed_execution(allocations, y, cost_model=c.cost_model, order_participation=i.realised_participation,
                              sigma=i.sigma, half_spread=i.half_spread, max_participation=c.max_participation,
                              max_rate=self.max_rate, vwap_includes_order=c.vwap_includes_order).outcome


class ValidationScores(keras.callbacks.Callback):
    """Keras callback: at every epoch end, score the validation windows as the backtest reports them.

    Adds to the epoch's logs (hence to the history): ``val_tracking_error_bps`` (mean ``|diff|`` of the fixed
    column's VWAP orders [bps], lower is better), ``val_flexible_improvement_bps`` (mean improvement of the
    flexible columns [bps], higher is better) and ``val_selection_score`` (the first minus the second [bps],
    lower is better).

    When the model's output is not finite (training diverged), the scores are NaN, a ``RuntimeWarning`` says
    so and training stops (:class:`BestWeights` then restores the best earlier epoch, if any).

    Args:
        windows: Validation :class:`lems.data.windows.WindowSet`.
        min_rate, max_rate: Trading limits [fraction of the order per bar].
        batch_size: Windows per forward pass.
        conditions: :class:`lems.execution.ExecutionConditions` to score the orders NET of costs, as the costed
            backtest does (a cost-aware model is selected on what it was trained for); ``None``: frictionless.

    Attributes:
        diverged_epoch: The epoch (0-based) whose output was not finite, or None.
    """

    def __init__(self, windows, min_rate: float, max_rate: float, batch_size: int = 512, conditions=None) -> None:
        super().__init__()
        if len(windows) == 0:
            raise ValueError("ValidationScores needs at least one validation window")
        self.windows, self.min_rate, self.max_rate = windows, float(min_rate), float(max_rate)
        self.batch_size = int(batch_size)
        self._y = seed_targets(windows)
        self._costs = None if conditions is None else _NetScoring.of(windows, conditions, max_rate)
        self.diverged_epoch: int | None = None

    def _allocations(self, part) -> np.ndarray:
        """The model's ``(n, H, H+1, 4, 2)`` allocations on ``part`` (float64; NaN where training diverged)."""
        lo, hi = rate_columns(len(part), self.min_rate, self.max_rate, int(part.n_ahead))
        x = [np.asarray(part.X, dtype=np.float32), lo.astype(np.float32), hi.astype(np.float32)]
        return np.asarray(self.model.predict(x, batch_size=self.batch_size, verbose=0), dtype=np.float64)

    def subset(self, rows) -> ValidationScores:
        """The same scoring (limits, batch size, cost conditions) on some of the validation windows."""
        rows = np.asarray(rows)
        part = copy.copy(self)
        part.windows, part._y = self.windows.subset(rows), self._y[rows]
        part._costs = None if self._costs is None else self._costs.rows(rows)
        part.diverged_epoch = None
        return part

    def _chunks(self):
        """``(rows, allocations)`` per chunk of the validation windows (bounded memory)."""
        chunk = windows_per_chunk(int(self.windows.n_ahead), _SCORE_CELLS, cap=_SCORE_CHUNK)
        for lo in range(0, len(self.windows), chunk):
            rows = np.arange(lo, min(lo + chunk, len(self.windows)))
            part = self.windows if len(rows) == len(self.windows) else self.windows.subset(rows)
            yield rows, self._allocations(part)

    def _rows_costs(self, rows):
        return None if self._costs is None else self._costs.rows(rows)

    def scores(self) -> dict[str, float]:
        """The three numbers for the model's current weights (NaN when its output is not finite)."""
        total = {"tracking": 0.0, "flexible": 0.0, "n": 0}
        for rows, allocations in self._chunks():
            if not np.all(np.isfinite(allocations)):
                return dict.fromkeys((TRACKING_KEY, FLEXIBLE_KEY, SCORE_KEY), math.nan)
            for key, value in selection_scores(allocations, self._y[rows], self._rows_costs(rows)).items():
                total[key] += value
        tracking, flexible = total["tracking"] / total["n"], total["flexible"] / total["n"]
        return {TRACKING_KEY: tracking, FLEXIBLE_KEY: flexible, SCORE_KEY: tracking - flexible}

    def flexible_by_order(self) -> np.ndarray:
        """Mean validation improvement [bps] of each flexible order for the model's current weights.

        Returns:
            ``(M, H)`` float64: order model ``m`` (order type x target, in :data:`lems.execution.ORDER_TYPES` x
            :data:`lems.execution.TARGETS` order, as the decoder's models) and flexible column (min duration
            ``d = column + 1`` bars); all NaN when the model's output is not finite. Net of costs when the
            callback scores net of costs. Its mean over all entries is ``val_flexible_improvement_bps``.
        """
        horizon, total = int(self.windows.n_ahead), 0.0
        for rows, allocations in self._chunks():
            if not np.all(np.isfinite(allocations)):
                return np.full((allocations.shape[-2] * allocations.shape[-1], horizon), math.nan)
            out = _outcome(allocations, self._y[rows], self._rows_costs(rows))
            total = total + out.improvement_bps[:, :horizon].sum(axis=0)  # (H, types, targets)
        return (np.asarray(total) / len(self.windows)).reshape(horizon, -1).T

    def on_epoch_end(self, epoch, logs=None) -> None:
        scores = self.scores()
        if logs is not None:
            logs.update(scores)
        if math.isnan(scores[SCORE_KEY]):
            self.diverged_epoch = int(epoch)
            warnings.warn(f"epoch {epoch + 1}: the model's output on the validation windows is NaN or inf (training "
                          f"diverged): training stops; the best earlier epoch's weights are kept, if any",
                          RuntimeWarning, stacklevel=2)
            self.model.stop_training = True


class BestWeights(keras.callbacks.Callback):
    """Keras callback: keep the weights of the best epoch by ``monitor`` (lower is better), stop after
    ``patience`` epochs without improvement, restore the best weights when training ends (however it ends:
    patience, epoch cap, step cap or time budget).

    With ``flexible`` (a :class:`ValidationScores` that runs before this callback) and a model that can name its
    flexible-only weights (``flexible_weight_masks()``, :class:`lems.models.LargeExecutionModel`), selection is
    split as it is reported: the weights are the best ``monitor`` epoch's, except the entries only the flexible
    columns read, which come from the epoch with the highest validation flexible improvement, the untrained
    weights included (scored before the first step: a model that starts from the classical rule keeps it unless
    training beats it on validation). Patience then counts epochs in which neither improved.

    With ``soup > 1`` (and ``flexible`` given, monitoring one of its scores), training ends with a greedy weight
    soup (Wortsman et al. 2022, "Model soups"): the ``soup`` best epochs by ``monitor`` are tried in that order
    and an epoch's weights join the uniform average of the kept ones only if the average then scores strictly
    better on validation; the soup replaces the best epoch's weights only when it beats them (at most
    ``soup - 1`` extra validation passes; ``soup`` copies of the weights are held while training).

    Args:
        monitor: Log key, e.g. ``"val_tracking_error_bps"``, ``"val_selection_score"`` or ``"val_loss"``.
        patience: Epochs without a strictly lower value before stopping; 0 = never stop early.
        flexible: The :class:`ValidationScores` whose flexible improvement selects the flexible weights, or None.
        soup: Epoch snapshots considered for the greedy soup; 1 = off (the best epoch's weights).

    Attributes:
        best: Best value seen.
        best_epoch: Its epoch (0-based); -1 before any.
        best_flexible: Best validation flexible improvement [bps] (split selection only, else None).
        untrained_flexible: Validation flexible improvement of the untrained weights [bps] (split selection only).
        best_flexible_epoch: Its epoch (0-based; -1: the untrained weights; None: no split selection).
        stopped_epoch: The epoch (0-based) at which patience ran out, or None.
        soup_epochs: Epochs (0-based, best first) whose weights were averaged into the kept weights:
            ``[best_epoch]`` when the soup did not beat the best epoch or is off; empty before training ends.
        soup_score: Validation ``monitor`` of the kept weights after the soup (``best`` when it did not help).
    """

    def __init__(self, monitor: str, patience: int = 0, flexible: ValidationScores | None = None,
                 soup: int = 1) -> None:
        super().__init__()
        if patience < 0:
            raise ValueError(f"patience must be >= 0 epochs, got {patience}")
        if int(soup) != soup or soup < 1:
            raise ValueError(f"soup must be an integer >= 1 (epoch snapshots; 1 = off), got {soup!r}")
        if soup > 1 and (flexible is None or monitor not in (TRACKING_KEY, SCORE_KEY)):
            raise ValueError(f"a weight soup (soup={soup}) scores its candidates with the ValidationScores passed "
                             f"as flexible=, on one of its keys ({TRACKING_KEY}, {SCORE_KEY}); got monitor "
                             f"{monitor!r}, flexible={flexible!r}")
        self.monitor, self.patience, self.flexible, self.soup = str(monitor), int(patience), flexible, int(soup)
        self._reset()

    def _reset(self) -> None:
        self.best, self.best_epoch, self.stopped_epoch = math.inf, -1, None
        self.best_flexible, self.best_flexible_epoch, self._flexible_weights, self._masks = None, None, None, None
        self.untrained_flexible = None
        self.wait, self._weights = 0, None
        self._snapshots: list[tuple[float, int, list]] = []  # (monitor value, epoch, weights), best first
        self.soup_epochs: list[int] = []
        self.soup_score: float | None = None

    def on_train_begin(self, logs=None) -> None:
        self._reset()
        masks = getattr(self.model, "flexible_weight_masks", None)
        if self.flexible is None or masks is None:
            return
        self._masks = masks()
        if not any(m is not None for m in self._masks):
            self._masks = None
            return
        score = self.untrained_flexible = self.flexible.scores()[FLEXIBLE_KEY]
        self.best_flexible, self.best_flexible_epoch = (score, -1) if math.isfinite(score) else (-math.inf, None)
        self._flexible_weights = self.model.get_weights()

    def on_epoch_end(self, epoch, logs=None) -> None:
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            raise ValueError(f"BestWeights: {self.monitor!r} is not in the epoch logs ({sorted(logs)})")
        improved = False
        if float(value) < self.best:  # NaN is never better
            self.best, self.best_epoch, improved = float(value), int(epoch), True
            self._weights = self.model.get_weights()
        if self.soup > 1 and math.isfinite(float(value)) and (len(self._snapshots) < self.soup
                                                              or float(value) < self._snapshots[-1][0]):
            weights = self._weights if self.best_epoch == int(epoch) else self.model.get_weights()
            self._snapshots.append((float(value), int(epoch), weights))
            self._snapshots = sorted(self._snapshots, key=lambda item: item[0])[:self.soup]
        flexible = logs.get(FLEXIBLE_KEY)
        if self._masks is not None and flexible is not None and float(flexible) > self.best_flexible:
            self.best_flexible, self.best_flexible_epoch, improved = float(flexible), int(epoch), True
            self._flexible_weights = self.model.get_weights()
        if improved:
            self.wait = 0
            return
        self.wait += 1
        if self.patience and self.wait >= self.patience:
            self.stopped_epoch = int(epoch)
            self.model.stop_training = True

    def on_train_end(self, logs=None) -> None:
        if self._weights is None:
            return
        self.soup_epochs, self.soup_score = [self.best_epoch], self.best
        weights = self._with_flexible(self._weights)
        if len(self._snapshots) > 1:
            weights = self._greedy_soup(weights)
        self._snapshots = []
        self.model.set_weights(weights)

    def _with_flexible(self, weights: list) -> list:
        """``weights`` with the flexible-only entries of the best flexible epoch (split selection)."""
        if self._masks is None or self._flexible_weights is None:
            return weights
        return [w if m is None else np.where(m, f, w) for w, f, m in zip(weights, self._flexible_weights, self._masks)]

    def _greedy_soup(self, best_weights: list) -> list:
        """Greedy uniform soup of the snapshots (best first), each kept only if validation improves."""
        kept, kept_weights = [self._snapshots[0][2]], best_weights
        for _, epoch, weights in self._snapshots[1:]:
            candidate = self._with_flexible(_mean_weights([*kept, weights]))
            self.model.set_weights(candidate)
            value = float(self.flexible.scores()[self.monitor])
            if value < self.soup_score:  # NaN is never better
                kept.append(weights)
                kept_weights, self.soup_score = candidate, value
                self.soup_epochs.append(epoch)
        return kept_weights


def _mean_weights(snapshots: list[list]) -> list:
    """Entry-wise mean of several ``get_weights()`` lists (non-float entries, e.g. counters, from the first)."""
    return [np.mean(np.stack(entries), axis=0).astype(entries[0].dtype)
            if np.issubdtype(entries[0].dtype, np.floating) else entries[0]
            for entries in zip(*snapshots)]


#: Thresholds of the flexible rule prior tried on validation before training [lookback volatility units]
#: (:class:`RulePriorTuning`): from "finish on any favourable price" to "only on a 3-sigma move" (at the
#: horizon's start; the model's ``rule_decay`` shrinks them as time runs out).
RULE_THRESHOLD_GRID = (0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0)


class RulePriorTuning(keras.callbacks.Callback):
    """Keras callback: before the first step, tune the thresholds of the flexible columns' rule prior.

    A model whose flexible columns start from the classical rule (``flexible_prior="rule"``) starts from one
    threshold for every order and min duration. This callback scores the untrained model on the validation
    windows at each threshold of ``grid`` and keeps, per flexible policy and min duration, the grid value with the
    highest mean validation flexible improvement (averaged over the policy's orders, i.e. buy and sell for a
    symmetric decoder, and over ``smooth`` neighbouring min durations on each side, so that one noisy column
    does not pick its own). The tuned rule is then the untrained start that :class:`BestWeights` scores as a
    candidate: training must beat it on validation to replace it. It reads validation windows only (no test
    data) and changes nothing when the model has no rule prior.

    Args:
        scores: The :class:`ValidationScores` of the run (its windows, limits and cost conditions).
        grid: Thresholds tried [lookback volatility units], each finite.
        smooth: Neighbouring min durations averaged on each side of a column (0 = each column alone).
        max_windows: Score at most this many validation windows (evenly spaced over the split, so every asset
            and period keeps its share): the grid costs ``len(grid)`` validation passes before the first step.

    Attributes:
        table: ``(len(grid), n_flexible_models, H)`` mean validation improvement [bps] per threshold, policy and
            column, after the run (None before or without a rule prior).
        thresholds: The chosen ``(n_flexible_models, H)`` thresholds, or None.
    """

    def __init__(self, scores: ValidationScores, grid=RULE_THRESHOLD_GRID, smooth: int = 1,
                 max_windows: int = 8192) -> None:
        super().__init__()
        if int(max_windows) != max_windows or max_windows < 1:
            raise ValueError(f"max_windows must be an integer >= 1, got {max_windows!r}")
        n = len(scores.windows)
        if n > max_windows:  # evenly spaced rows
            scores = scores.subset(np.unique(np.linspace(0, n - 1, int(max_windows)).round().astype(int)))
        grid = tuple(float(g) for g in grid)
        if not grid or not all(math.isfinite(g) for g in grid):
            raise ValueError(f"grid must be a non-empty sequence of finite thresholds, got {grid!r}")
        if int(smooth) != smooth or smooth < 0:
            raise ValueError(f"smooth must be an integer >= 0 (min durations), got {smooth!r}")
        self.scores, self.grid, self.smooth = scores, grid, int(smooth)
        self.table, self.thresholds = None, None

    def on_train_begin(self, logs=None) -> None:
        decoder = getattr(self.model, "decoder", None)
        if getattr(decoder, "flexible_prior", None) != "rule":
            return
        self.scores.set_model(self.model)  # a subset's copy of the run's scores may not be wired yet
        policy = decoder.flexible_policy_of_order()
        n_policies = decoder.n_flexible_models
        table = []
        for threshold in self.grid:
            decoder.rule_thresholds = threshold
            by_order = self.scores.flexible_by_order()  # (M, H)
            by_policy = np.stack([by_order[policy == f].mean(axis=0) for f in range(n_policies)])
            table.append(_smooth_columns(by_policy, self.smooth))
        self.table = np.stack(table)
        if not np.all(np.isfinite(self.table)):
            decoder.rule_thresholds = RULE_THRESHOLD
            warnings.warn("RulePriorTuning: the untrained model's validation output is not finite; the rule "
                          "prior keeps its initial thresholds", RuntimeWarning, stacklevel=2)
            self.table = None
            return
        self.thresholds = np.asarray(self.grid)[np.argmax(self.table, axis=0)]
        decoder.rule_thresholds = self.thresholds


def _smooth_columns(values: np.ndarray, width: int) -> np.ndarray:
    """Mean over the ``width`` neighbouring columns on each side (last axis; fewer at the edges)."""
    if width == 0:
        return values
    cumulative = np.concatenate([np.zeros(values.shape[:-1] + (1,)), np.cumsum(values, axis=-1)], axis=-1)
    n = values.shape[-1]
    lo, hi = np.maximum(np.arange(n) - width, 0), np.minimum(np.arange(n) + width + 1, n)
    return (cumulative[..., hi] - cumulative[..., lo]) / (hi - lo)


class TimeBudget(keras.callbacks.Callback):
    """Keras callback: stop training once ``budget_s`` seconds of wall-clock time have passed.

    The clock starts at ``on_train_begin`` (so compilation counts) and is checked after every batch; the
    epoch's validation pass still runs after a stop, so the best weights can be chosen and restored.

    Args:
        budget_s: Budget [seconds], > 0.

    Attributes:
        triggered: True once the budget stopped training.
        elapsed_s: Seconds since the start of training at the last check.
    """

    def __init__(self, budget_s: float) -> None:
        super().__init__()
        if not budget_s > 0:
            raise ValueError(f"time budget must be > 0 seconds, got {budget_s}")
        self.budget_s = float(budget_s)
        self.triggered = False
        self.elapsed_s = 0.0
        self._start = time.perf_counter()

    def on_train_begin(self, logs=None) -> None:
        self._start = time.perf_counter()
        self.triggered = False

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.elapsed_s = time.perf_counter() - self._start
        if self.elapsed_s >= self.budget_s:
            self.triggered = True
            self.model.stop_training = True


class StepBudget(keras.callbacks.Callback):
    """Keras callback: stop training after exactly ``max_steps`` optimizer steps (the same on every machine).

    The epoch's validation pass still runs after the stop.

    Args:
        max_steps: Steps [batches], >= 1.

    Attributes:
        triggered: True once the budget stopped training.
        steps: Optimizer steps taken.
    """

    def __init__(self, max_steps: int) -> None:
        super().__init__()
        if int(max_steps) != max_steps or max_steps < 1:
            raise ValueError(f"max_steps must be an integer >= 1, got {max_steps}")
        self.max_steps, self.steps, self.triggered = int(max_steps), 0, False

    def on_train_begin(self, logs=None) -> None:
        self.steps, self.triggered = 0, False

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.steps += 1
        if self.steps >= self.max_steps:
            self.triggered = True
            self.model.stop_training = True


class StepProgress(keras.callbacks.Callback):
    """Keras callback: one compact line at most every ``every_s`` seconds while an epoch runs.

    ``epoch 1: step 1200/38288, 950 windows/s, epoch ETA 11.5 min, budget 2.1 min left`` (the last part with a
    time budget): a long streamed epoch shows that it is running and when it will end.

    Args:
        batch_size: Windows per step (for the throughput) [windows].
        every_s: Seconds between lines [seconds], > 0.
        budget_s: The run's time budget [seconds], or None.
        stream: Where the lines go (default ``sys.stdout``).

    Attributes:
        lines: Number of lines printed.
    """

    def __init__(self, batch_size: int, every_s: float = 30.0, budget_s: float | None = None, stream=None) -> None:
        super().__init__()
        if not every_s > 0:
            raise ValueError(f"every_s must be > 0 seconds, got {every_s}")
        self.batch_size, self.every_s, self.budget_s = int(batch_size), float(every_s), budget_s
        self.stream, self.lines = stream, 0
        self._start = self._epoch_start = self._last = time.perf_counter()
        self._epoch = 0

    def on_train_begin(self, logs=None) -> None:
        self._start = time.perf_counter()

    def on_epoch_begin(self, epoch, logs=None) -> None:
        self._epoch, self._epoch_start = int(epoch), time.perf_counter()
        self._last = self._epoch_start

    def on_train_batch_end(self, batch, logs=None) -> None:
        now = time.perf_counter()
        if now - self._last < self.every_s:
            return
        self._last = now
        print(self.line(int(batch) + 1, now), file=self.stream or sys.stdout, flush=True)
        self.lines += 1

    def line(self, steps: int, now: float) -> str:
        """The progress line after ``steps`` steps of the current epoch at time ``now`` (``perf_counter``)."""
        elapsed = max(now - self._epoch_start, 1e-9)
        total = (self.params or {}).get("steps")
        rate = steps / elapsed
        text = f"epoch {self._epoch + 1}: step {steps}" + (f"/{total}" if total else "")
        text += f", {rate * self.batch_size:.0f} windows/s"
        if total:
            text += f", epoch ETA {(total - steps) / rate / 60:.1f} min"
        if self.budget_s is not None:
            text += f", budget {max(self.budget_s - (now - self._start), 0.0) / 60:.1f} min left"
        return text


class _EpochClock(keras.callbacks.Callback):
    """Records the wall-clock time [s] since the start of training at each epoch end."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []
        self._start = time.perf_counter()

    def on_train_begin(self, logs=None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.times.append(time.perf_counter() - self._start)
