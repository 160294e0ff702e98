"""Training losses built on :mod:`lems.execution`: the seed's ``lem_loss`` (docs/execution.md §6, the default) and a
cost-aware variant that scores every order NET of execution costs (:func:`make_lem_loss`).

Targets ``y`` (docs/execution.md §5 and its extension for costs):

* compact ``(B, H, 2)`` = [volume share of the bar in the horizon, bar VWAP / reference price], or the seed's
  tiled ``(B, H, H+1, 4, 2)``: what ``lem_loss`` reads;
* extended ``(B, H, 5)`` = the compact two, then the per-window cost inputs :data:`TARGET_CHANNELS` (the same
  value on every step of a window, all estimated from the lookback except the realised horizon volume):

  ====  ================  ==============================================================================
  ch.   name              meaning
  ====  ================  ==============================================================================
  0     ``volume_share``  market volume of the bar / realised horizon volume
  1     ``price``         bar VWAP / reference price (VWAP of the last bar before the origin)
  2     ``sigma``         std of the lookback's bar-to-bar log VWAP returns [fraction per bar]
  3     ``half_spread``   lookback half bid-ask spread [fraction of price] (Corwin-Schultz, or a fixed value)
  4     ``volume_ratio``  expected horizon volume (lookback mean bar volume x H) / realised horizon volume
  ====  ================  ==============================================================================

  :func:`lems.data.targets.cost_targets` builds them from a :class:`~lems.data.windows.WindowSet`; ``lem_loss``
  accepts them too (it reads channels 0 and 1 only).

An order's size is NOT a model input: a cost-aware model is trained for one order size (its participation in
the expected horizon volume, ``order_participation``); for another size, train another model (or evaluate this
one there, knowing it was tuned for its own size).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any

import keras
from keras import ops

from lems.execution import (
    SMOOTH_WINDOW_SCALE,
    CompositeCost,
    CostModel,
    FeeCost,
    LinearPermanentImpact,
    NoCost,
    SpreadCost,
    SquareRootImpact,
    TransientImpact,
    array_namespace,
    check_participation_cap,
    column_weights,
    check_rates,
    seed_execution,
    seed_outcome,
)

#: Order-type indices on the seed layout's axis 3.
_BUY, _SELL = [0, 1], [2, 3]
#: Channels of extended targets ``(B, H, 5)``, in order (see the module docstring).
TARGET_CHANNELS = ("volume_share", "price", "sigma", "half_spread", "volume_ratio")
_N_COMPACT = 2
#: Default penalty of :class:`CostAwareLemLoss` per fraction of the order left unfilled by the participation cap
#: [loss units]: leaving 1 % of the order costs 1.0, about what a 2 % (200 bps) worse price costs in the seed terms.
UNFILLED_PENALTY = 100.0
#: Cost models :class:`CostAwareLemLoss` can serialize, by class name.
_COST_MODELS = {cls.__name__: cls for cls in (NoCost, SpreadCost, FeeCost, SquareRootImpact, TransientImpact,
                                               LinearPermanentImpact, CompositeCost)}


def compact_targets(y):
    """The compact ``(B, H, 2)`` part of extended targets ``(B, H, 5)``; other targets unchanged (same object).

    Raises:
        ValueError: a ``(B, H, k)`` target with ``k`` neither 2 nor ``len(TARGET_CHANNELS)``.
    """
    if len(y.shape) != 3 or y.shape[-1] == _N_COMPACT:
        return y
    if y.shape[-1] != len(TARGET_CHANNELS):
        raise ValueError(f"targets must be (batch, H, 2), (batch, H, {len(TARGET_CHANNELS)}) with channels "
                         f"{TARGET_CHANNELS}, or (batch, H, H+1, 4, 2); got shape {tuple(y.shape)}")
    return y[..., :_N_COMPACT]


def _objective_terms(diff, horizon: int):
    """``(flexible, tracking)`` of signed differences in percent ``(B, C, 4, 2)`` (see
    :func:`seed_objective_terms`; the fixed column is the last one, of the full or a compact layout)."""
    flexible = ops.take(diff[:, :-1], _BUY, axis=2) - ops.take(diff[:, :-1], _SELL, axis=2)
    tracking = ops.abs(diff[:, -1])
    return flexible, tracking


def _mean_softplus(flexible, tracking, batch, weights=None):
    """Per-sample mean of ``softplus`` over both families of terms ``(B,)``.

    With ``weights`` (``(C,)`` of a compact layout, :class:`lems.execution.SeedColumns`), each flexible column
    counts for its stratum: an unbiased estimate of the full layout's mean.
    """
    if weights is None:
        terms = ops.concatenate([ops.reshape(ops.softplus(flexible), (batch, -1)),
                                 ops.reshape(ops.softplus(tracking), (batch, -1))], axis=1)
        return ops.mean(terms, axis=1)
    per_column = ops.sum(ops.reshape(ops.softplus(flexible), (batch, flexible.shape[1], -1)), axis=2)
    flexible_sum = ops.sum(per_column * weights[None, :-1], axis=1)
    tracking_sum = ops.sum(ops.reshape(ops.softplus(tracking), (batch, -1)), axis=1)
    count = ops.sum(weights[:-1]) * (flexible.shape[2] * flexible.shape[3])  # 4 H terms in the full layout
    return (flexible_sum + tracking_sum) / (count + tracking.shape[1] * tracking.shape[2])


def _column_mean(values, weights, batch):
    """Per-sample mean ``(B,)`` of ``(B, C, ...)`` values over every order, columns weighted (None: plain)."""
    if weights is None:
        return ops.mean(ops.reshape(values, (batch, -1)), axis=1)
    per_column = ops.mean(ops.reshape(values, (batch, values.shape[1], -1)), axis=2)
    return ops.sum(per_column * weights[None], axis=1) / ops.sum(weights)


def seed_objective_terms(y_true, y_pred, *, smooth_scale: float = SMOOTH_WINDOW_SCALE):
    """The two families of terms of the seed loss, in percent, before the softplus.

    Args:
        y_true: compact ``(B, H, 2)``, extended ``(B, H, 5)`` (channels 0-1 read) or tiled ``(B, H, H+1, 4, 2)``
            targets.
        y_pred: allocations ``(B, H, H+1, 4, 2)``.
        smooth_scale: ramp of the smooth benchmark window (fraction of the order).

    Returns:
        ``(flexible, tracking)``: ``diff_buy - diff_sell`` of every flexible column ``(B, H, 2, 2)`` (benchmark ×
        target; negative is good) and ``|diff|`` of the fixed column ``(B, 4, 2)`` (order type × target).
    """
    horizon = y_pred.shape[1]
    diff = seed_outcome(y_pred, compact_targets(y_true), smooth=True, scale=smooth_scale).diff * 100.0  # percent
    return _objective_terms(diff, horizon)


@keras.saving.register_keras_serializable(package="lems")
def lem_loss(y_true, y_pred):
    """Seed loss: mean of ``softplus(diff_buy - diff_sell)`` over flexible columns and ``softplus(|diff|)`` over
    the fixed column's order types and targets (percent units; docs/execution.md §6).

    Rewards buying below and selling above the benchmark in the flexible columns, and tracking the benchmark
    in the fixed column (a perfect volume forecast scores strictly better than the uniform schedule there).
    Frictionless: every child order fills at its bar's VWAP (see :func:`make_lem_loss` for costs).

    Returns:
        Per-sample loss ``(B,)``. On a compact layout (sampled columns, :func:`lems.execution.seed_columns`): the
        column-weighted estimate of the same value.
    """
    flexible, tracking = seed_objective_terms(y_true, y_pred)
    weights = column_weights(ops, y_pred.shape[1], y_pred.shape[2], y_pred.dtype)
    return _mean_softplus(flexible, tracking, ops.shape(y_pred)[0], weights)


@keras.saving.register_keras_serializable(package="lems")
def balanced_lem_loss(y_true, y_pred):
    """``lem_loss`` with its two families weighed equally and tracking scored on the squared diff: a validation loss
    whose best epoch moves with the reported tracking spread (issue 25; measured as a selection signal only).

    ``0.5 * mean(softplus(diff_buy - diff_sell))`` over the flexible columns (benchmark × target × min duration,
    percent units) ``+ 0.5 * mean(diff ** 2)`` over the fixed column's 4 order types × 2 targets (percent²). In
    ``lem_loss`` the 4 H flexible terms outnumber the 8 tracking terms and ``softplus(|diff|)`` is L1-like, while the
    reported spread (std of the signed diff) is L2-like: on hourly crypto (benchmarks/results/plain_fit/) the epoch of
    best ``lem_loss`` on validation had a spread 7 % above the best epoch's, while the best epoch of this loss, scored
    on the same validation predictions, was among the epochs within 2 % of the best spread and flexible improvement.

    Returns:
        Per-sample loss ``(B,)`` (a compact layout: the flexible columns weighted by their strata, as ``lem_loss``).
    """
    flexible, tracking = seed_objective_terms(y_true, y_pred)
    batch = ops.shape(y_pred)[0]
    weights = column_weights(ops, y_pred.shape[1], y_pred.shape[2], y_pred.dtype)
    terms = ops.softplus(flexible)
    if weights is None:
        flexible_mean = ops.mean(ops.reshape(terms, (batch, -1)), axis=1)
    else:
        per_column = ops.mean(ops.reshape(terms, (batch, flexible.shape[1], -1)), axis=2)
        flexible_mean = ops.sum(per_column * weights[None, :-1], axis=1) / ops.sum(weights[:-1])
    tracking_mean = ops.mean(ops.reshape(ops.square(tracking), (batch, -1)), axis=1)
    return 0.5 * flexible_mean + 0.5 * tracking_mean


# --------------------------------------------------------------------------------------------------------
# Cost-aware loss
# --------------------------------------------------------------------------------------------------------
def _window_channel(y, name: str):
    """Per-window value ``(B,)`` of an extended target channel (read at the first step)."""
    return y[:, 0, TARGET_CHANNELS.index(name)]


def cost_execution(y_true, y_pred, *, cost_model: CostModel | None = None, order_participation: float = 0.0,
                   max_participation: float | None = None, max_rate: float = 1.0,
                   smooth_scale: float = SMOOTH_WINDOW_SCALE):
    """Every order of the seed layout executed net of costs, for a loss: :func:`lems.execution.seed_execution`
    on targets that carry the cost inputs (smooth benchmark window).

    Args:
        y_true: extended ``(B, H, 5)`` targets (:data:`TARGET_CHANNELS`); compact ``(B, H, 2)`` or tiled targets
            only for a cost model that needs neither ``sigma`` nor an estimated half-spread (then the order's
            participation is taken over the REALISED horizon volume: ``volume_ratio`` 1).
        y_pred: allocations ``(B, H, H+1, 4, 2)``.
        cost_model, order_participation, max_participation, max_rate: see :class:`CostAwareLemLoss`.
        smooth_scale: ramp of the smooth benchmark window (fraction of the order).

    Returns:
        The :class:`lems.execution.SeedExecution`.

    Raises:
        ValueError: compact targets with a cost model that needs the extended channels.
    """
    cost_model = NoCost() if cost_model is None else cost_model
    extended = len(y_true.shape) == 3 and y_true.shape[-1] == len(TARGET_CHANNELS)
    if not extended and (cost_model.needs_sigma or cost_model.needs_half_spread):
        raise ValueError(f"{type(cost_model).__name__} needs per-window sigma / half-spread: pass extended targets "
                         f"(batch, H, {len(TARGET_CHANNELS)}) with channels {TARGET_CHANNELS} "
                         "(lems.data.targets.cost_targets), got shape " + str(tuple(y_true.shape)))
    if array_namespace(y_true, y_pred) is ops:  # one namespace for every array (numpy stays float64 numpy)
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
    sigma = half_spread = None
    participation = order_participation
    if extended:
        sigma = _window_channel(y_true, "sigma") if cost_model.needs_sigma else None
        half_spread = _window_channel(y_true, "half_spread") if cost_model.needs_half_spread else None
        participation = order_participation * _window_channel(y_true, "volume_ratio")
    return seed_execution(y_pred, compact_targets(y_true), cost_model=cost_model,
                          order_participation=participation, sigma=sigma, half_spread=half_spread,
                          max_participation=max_participation, max_rate=max_rate, smooth=True, scale=smooth_scale)


def _non_negative(name: str, value: Any, allowed: str) -> float:
    """``value`` as a finite float >= 0, or ``ValueError`` naming ``name`` and its allowed range."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a number in {allowed}, got {value!r}")
    return float(value)


def cost_model_to_config(cost_model: CostModel) -> dict[str, Any]:
    """A JSON-able description of a built-in cost model (``{"class_name": ..., "config": {...}}``).

    Raises:
        ValueError: a cost model that is not one of :class:`~lems.execution.NoCost`,
            :class:`~lems.execution.SpreadCost`, :class:`~lems.execution.SquareRootImpact`,
            :class:`~lems.execution.TransientImpact`, :class:`~lems.execution.LinearPermanentImpact`,
            :class:`~lems.execution.CompositeCost`.
    """
    name = type(cost_model).__name__
    if _COST_MODELS.get(name) is not type(cost_model):
        raise ValueError(f"cannot serialize cost model {name}: built-ins are {sorted(_COST_MODELS)}")
    if isinstance(cost_model, CompositeCost):
        return {"class_name": name, "config": {"models": [cost_model_to_config(m) for m in cost_model.models]}}
    return {"class_name": name, "config": {f.name: getattr(cost_model, f.name)
                                           for f in dataclasses.fields(cost_model)}}


def cost_model_from_config(config: dict[str, Any]) -> CostModel:
    """The cost model of :func:`cost_model_to_config`.

    Raises:
        ValueError: an unknown class name or a malformed description.
    """
    if not isinstance(config, dict) or config.get("class_name") not in _COST_MODELS:
        raise ValueError(f"unknown cost model description {config!r}: class_name must be one of "
                         f"{sorted(_COST_MODELS)}")
    fields = dict(config.get("config") or {})
    if config["class_name"] == CompositeCost.__name__:
        return CompositeCost(tuple(cost_model_from_config(m) for m in fields.get("models", ())))
    return _COST_MODELS[config["class_name"]](**fields)


@keras.saving.register_keras_serializable(package="lems")
class CostAwareLemLoss(keras.losses.Loss):
    """The seed loss scored NET of execution costs, plus a risk term and a penalty on what the cap leaves unfilled.

    Per window, with ``diff`` the signed difference in percent of every order of the seed layout computed by
    :func:`lems.execution.seed_execution` (achieved price including the costs over the filled part, benchmark over
    the market prices after the order's permanent impact, smooth benchmark window):

    ``loss = mean(softplus(diff_buy - diff_sell) [flexible], softplus(|diff|) [fixed])``
    ``+ risk_aversion * mean(diff ** 2)  [all orders]``
    ``+ unfilled_penalty * mean(unfilled)  [all orders; only with a participation cap]``

    Units: the seed terms are in percent; ``risk_aversion`` is in loss units per percent² of ``diff`` (1.0 makes a
    1 % = 100 bps deviation from the benchmark cost 1.0, twice the seed terms' slope of ~0.5 per percent);
    ``mean(diff ** 2)`` is the mean square of the net outcome (its variance plus its squared mean cost), the
    dispersion a desk calls risk. ``unfilled_penalty`` is in loss units per fraction of the order.

    The model sees no order size: it is trained for ONE size, ``order_participation``, a fraction of the EXPECTED
    horizon volume (as :class:`lems.execution.OrderSize`); the loss turns it into the participation of each
    window's realised volume with the ``volume_ratio`` channel of the extended targets. With :class:`NoCost`, no
    cap and ``risk_aversion == 0`` the value is :func:`lem_loss`'s, bit for bit.

    Args:
        cost_model: a :class:`lems.execution.CostModel` (default :class:`~lems.execution.NoCost`).
        order_participation: the order's size, fraction of the expected horizon volume, >= 0 (e.g. 0.05).
        risk_aversion: weight of the risk term (loss units per percent²), >= 0.
        max_participation: cap per bar (fraction of the bar's market volume, ``(0, 1]``) or ``None``.
        max_rate: the per-bar limit (fraction of the order) the cap's carried backlog may not exceed; use the
            ``max_rate`` the model is trained with.
        unfilled_penalty: loss units per fraction of the order left unfilled by the cap, >= 0.
        name, reduction, dtype: as :class:`keras.losses.Loss`.

    Raises:
        ValueError: a value outside its range, or not a :class:`~lems.execution.CostModel`.
    """

    def __init__(self, cost_model: CostModel | None = None, order_participation: float = 0.0,
                 risk_aversion: float = 0.0, max_participation: float | None = None, max_rate: float = 1.0,
                 unfilled_penalty: float = UNFILLED_PENALTY, name: str = "cost_aware_lem_loss",
                 reduction: str = "sum_over_batch_size", dtype=None) -> None:
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        cost_model = NoCost() if cost_model is None else cost_model
        if not isinstance(cost_model, CostModel):
            raise ValueError(f"cost_model must be a lems.execution.CostModel, got {type(cost_model).__name__}")
        self.cost_model = cost_model
        self.order_participation = _non_negative("order_participation", order_participation,
                                                   "[0, inf) (fraction of the expected horizon volume)")
        self.risk_aversion = _non_negative("risk_aversion", risk_aversion, "[0, inf) (loss units per percent²)")
        self.max_participation = check_participation_cap(max_participation)
        check_rates(None, 0.0, max_rate)
        self.max_rate = float(max_rate)
        self.unfilled_penalty = _non_negative("unfilled_penalty", unfilled_penalty,
                                                "[0, inf) (loss units per fraction of the order)")

    def execution(self, y_true, y_pred):
        """The :class:`lems.execution.SeedExecution` this loss scores (see :func:`cost_execution`)."""
        return cost_execution(y_true, y_pred, cost_model=self.cost_model,
                              order_participation=self.order_participation,
                              max_participation=self.max_participation, max_rate=self.max_rate)

    def call(self, y_true, y_pred):
        """Per-sample loss ``(B,)``."""
        horizon, batch = y_pred.shape[1], ops.shape(y_pred)[0]
        executed = self.execution(y_true, y_pred)
        diff = executed.outcome.diff * 100.0  # percent, (B, H+1, 4, 2) (or a compact layout's (B, K+1, 4, 2))
        weights = column_weights(ops, horizon, y_pred.shape[2], diff.dtype)
        loss = _mean_softplus(*_objective_terms(diff, horizon), batch, weights)
        if self.risk_aversion > 0:
            loss = loss + self.risk_aversion * _column_mean(ops.square(diff), weights, batch)
        if self.max_participation is not None and self.unfilled_penalty > 0:
            loss = loss + self.unfilled_penalty * _column_mean(executed.unfilled, weights, batch)
        return loss

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(cost_model=cost_model_to_config(self.cost_model),
                      order_participation=self.order_participation, risk_aversion=self.risk_aversion,
                      max_participation=self.max_participation, max_rate=self.max_rate,
                      unfilled_penalty=self.unfilled_penalty)
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> CostAwareLemLoss:
        config = dict(config)
        if isinstance(config.get("cost_model"), dict):
            config["cost_model"] = cost_model_from_config(config["cost_model"])
        return cls(**config)

    def __repr__(self) -> str:
        return (f"CostAwareLemLoss(cost_model={self.cost_model!r}, order_participation={self.order_participation}, "
                f"risk_aversion={self.risk_aversion}, max_participation={self.max_participation}, "
                f"max_rate={self.max_rate}, unfilled_penalty={self.unfilled_penalty})")


def make_lem_loss(cost_model: CostModel | None = None, order_participation: float = 0.0, risk_aversion: float = 0.0,
                  max_participation: float | None = None, **kwargs: Any) -> CostAwareLemLoss:
    """The seed loss net of costs, for a model trained for one order size (see :class:`CostAwareLemLoss`).

    Example::

        from lems.data.targets import cost_targets
        from lems.execution import SpreadCost, SquareRootImpact
        loss = make_lem_loss(SquareRootImpact(coef=1.0) + SpreadCost(2.0), order_participation=0.05)
        model.compile(optimizer="adam", loss=loss)
        model.fit([X, min_rate, max_rate], cost_targets(train_windows), ...)  # (N, H, 5) targets

    Args:
        cost_model: the cost model (default :class:`~lems.execution.NoCost`: then, without cap and risk term,
            the value equals :func:`lem_loss`).
        order_participation: the order's size, fraction of the EXPECTED horizon volume (>= 0).
        risk_aversion: weight of the risk term, loss units per percent² of the net ``diff`` (>= 0).
        max_participation: cap per bar, fraction of the bar's market volume in ``(0, 1]``, or ``None``.
        **kwargs: ``max_rate``, ``unfilled_penalty``, ``name`` (see :class:`CostAwareLemLoss`).

    Returns:
        A registered, serializable :class:`CostAwareLemLoss` (a saved model compiled with it reloads with it).
    """
    return CostAwareLemLoss(cost_model=cost_model, order_participation=order_participation,
                            risk_aversion=risk_aversion, max_participation=max_participation, **kwargs)


__all__ = ["TARGET_CHANNELS", "UNFILLED_PENALTY", "CostAwareLemLoss", "balanced_lem_loss", "compact_targets",
           "cost_execution", "cost_model_from_config", "cost_model_to_config", "lem_loss", "make_lem_loss",
           "seed_objective_terms"]
