"""AllocationDecoder: the leak-free, step-wise allocation recursion of the Large Execution Model.

At the open of bar ``s`` of the horizon the decoder reads, for every order of the seed layout
(min-duration column × order type × target):

* the bar's context: the encoder state at the previous bar (it has seen bars ``<= t0+s-1`` only) and the
  known-ahead features of bar ``s`` (calendar), through one shared projection computed once per step;
* the order's own state: remaining fraction, lag against its base curve, bars left before its minimum
  duration, and prices in units of lookback volatility: last traded price and own achieved price, both
  relative to the market's running VWAP / TWAP over the bars already closed (signed by the side, so that
  "positive" is always "unfavourable to trade now");

and proposes a fraction of what remains, ``sigmoid(logit(base share) + head)``. A learnable base curve per
order (positive, summing to one over steps) is the starting point; the fused heads scale it. The flexible
("beat") columns may also start from the classical flexible rule (``flexible_prior="rule"``: a soft trigger on the
last price against the running benchmark, with learnable thresholds), and may share one policy between buy and
sell (``symmetric_flexible``). The proposal
is then mapped into the exact feasible interval of docs/execution.md §2 by :func:`lems.execution.allocate_step`,
so every output obeys the trading limits by construction.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import keras
import numpy as np
from keras import ops

from lems.execution import ORDER_TYPES, TARGETS, allocate_step, seed_min_durations
from lems.layers.constraints import (
    EqualInitializer,
    FusedGlorotUniform,
    PositiveSumToOneConstraint,
)
from lems.layers.fused import FusedMLP
from lems.layers.registry import check_positive_int, register


class DecoderState(NamedTuple):
    """The decoder's recurrent state at the open of a bar (per-step API, see :class:`AllocationDecoder`).

    Attributes:
        remaining: ``(B, M, C)`` fraction of each order still to trade.
        traded_price: ``(B, M, C)`` ``sum_u a_u z_u`` over the closed bars (own fills times cumulative log price).
        market_vz, market_v, market_z: ``(B, 1)`` running sums over the closed horizon bars of ``v z``, ``v``
            and ``z`` (``v`` relative volume, ``z`` cumulative log price, lookback volatility units).
        last: ``(B, 1)`` cumulative log price of the last closed bar (0 before the first bar closes).
    """

    remaining: Any
    traded_price: Any
    market_vz: Any
    market_v: Any
    market_z: Any
    last: Any


#: From this horizon [bars] on, the recursion's per-step activations are recomputed in the backward pass
#: (``keras.remat``, JAX and PyTorch) instead of stored: memory linear in H at the cost of one more forward per step.
REMAT_MIN_HORIZON = 48
#: Number of per-order state features fed to the heads at each step.
N_STATE = 8
_SHARE_EPS = 1e-6
_PRICE_EPS = 1e-9
#: Bound of the volume forecast's level surprise [log units]: it scales the seasonal expectation by e^{+-4}.
LEVEL_CLIP = 4.0
#: Learning-rate multiplier of the forecast's scalar parameters (stored divided by it): starting silent, its gains
#: and half-lives must move by O(1) within a few hundred steps of an optimiser tuned for the network's weights.
FORECAST_RATE = 10.0
#: Flexible prior "rule": logit added to a flexible order's share once its trigger fires (it then completes as fast as
#: the limits allow, as :class:`lems.baselines.FlexibleRule` does) ...
RULE_GAIN = 24.0
#: ... its trigger's sharpness [1 / lookback volatility]: the soft trigger goes from 0.7 % to 99.3 % of the gain
#: within +-0.1 volatility units of the threshold (a gradient for the threshold, nearly the rule's step) ...
RULE_SHARPNESS = 50.0
#: ... the thresholds' initial value [lookback volatility units]: the price must be favourable by more than this
#: (the classical rule's strict inequality; at 0 a flat price would half-trigger) ...
RULE_THRESHOLD = 0.1
#: ... and their learning-rate multiplier (stored divided by it, like the forecast's scalars).
RULE_RATE = 10.0
#: Default decay of the rule's threshold with the time left in the horizon (``LargeExecutionModel``): at the open of
#: bar ``s`` the threshold is ``threshold * ((H - s) / H) ** decay``. 0.5: the favourable move still to come before
#: the deadline scales like the square root of the bars left (a random walk), so waiting is worth less as they run
#: out (benchmarks/rule_thresholds.py compares the shapes on validation-tuned rules).
RULE_DECAY = 0.5
FLEXIBLE_PRIORS = ("none", "rule")
_LN2 = float(np.log(2.0))


def relative_volume(channel):
    """``V / m`` from a volume channel ``log((V + d) / (m + d))`` of ``X`` (lems.data.features.VOLUME_DELTA)."""
    from lems.data.features import VOLUME_DELTA

    return ops.maximum(ops.exp(ops.clip(channel, -30.0, 30.0)) * (1.0 + VOLUME_DELTA) - VOLUME_DELTA, 0.0)


def _mean_decay(y):
    """``(1 - exp(-y)) / y`` for ``y >= 0`` (1 at 0): the mean of ``exp(-t)`` over ``t`` in ``[0, y]``."""
    small = y < 1e-4
    safe = ops.where(small, ops.ones_like(y), y)
    return ops.where(small, 1.0 - 0.5 * y, -ops.expm1(-safe) / safe)


@register
class VolumeForecast(keras.layers.Layer):
    """Dynamic forecast of the horizon's remaining volume shares, updated at every bar (dynamic VWAP).

    As in the dynamic VWAP literature (Bialkowski, Darolles & Le Fol 2008; Satish, Saxena & Palmer 2014;
    Busseti & Boyd 2015), the expected volume of horizon bar ``u`` as of the open of bar ``s`` is the seasonal
    expectation ``S_u`` (the causal static curve, ``seasonal_volume`` channel) times a level that is updated from
    the volume already seen and relaxes towards the seasonal one: in volume time ``tau`` (the static curve's
    cumulative expected volume from the open of bar ``s``, in units of the lookback mean volume ``m``) the
    multiplier is ``1 + g_s exp(-lam tau)``, ``g_s = exp(l_s) - 1``, so bar ``u`` expects
    ``S_u (1 + g_s exp(-lam C_su) phi(lam x_u))`` with ``x_u = S_u / m``, ``C_su = sum_{s <= v < u} x_v`` and
    ``phi(y) = (1 - e^-y) / y``. The share of bar ``s`` in what remains, in log-odds, is then

        ``logit p_s = logit q_s + log(1 + g_s phi(lam x_s)) - log(1 + g_s exp(-lam x_s) phi(lam (T_s - x_s)))``

    with ``q_s = S_s / T_s`` the static curve's share (the ``seasonal_share`` prior), ``T_s - x_s = x_s / odds(q_s)``:
    the forecast needs only what ``X`` carries at position ``lookback + s``. With ``g_s = 0`` it is the static
    curve exactly.

    The level ``l_s = LEVEL_CLIP * tanh(r_s / LEVEL_CLIP)``, ``r_s = sum_k a_k EWMA_k(e) + b + w . context_s``:
    exponentially weighted means (per-bar decay ``kappa_k = 2^(-1/h_k)``, half-lives ``h_k`` [bars] learnable,
    initially 1 and H) of the volume surprises ``e_j = log_volume_j - seasonal_volume_j`` of the bars CLOSED at
    the open of bar ``s`` (window positions ``<= lookback + s - 1``), plus a learned read of the context row ``s``.
    Gains ``a``, ``b`` and ``w`` start at zero (the untrained forecast is the static curve); the persistence
    ``lam = ln 2 / h_lam`` (``h_lam`` learnable, in units of ``m``, initially H / 4) as well.

    Args:
        n_ahead: horizon H [bars].
        n_filters: number of exponentially weighted means of the surprises (half-lives spread from 1 to H bars).
        use_context: add a learned linear read of the context row to the level.
    """

    def __init__(self, n_ahead: int, n_filters: int = 2, use_context: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_ahead = check_positive_int("n_ahead", n_ahead)
        self.n_filters = check_positive_int("n_filters", n_filters)
        self.use_context = bool(use_context)
        self.context_level = (keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros", name="context_level")
                              if self.use_context else None)

    def build(self, context_shape):
        horizon, k = self.n_ahead, self.n_filters
        halflives = np.geomspace(1.0, max(float(horizon), 1.0), k) if k > 1 else np.ones(1)
        # Scalars stored divided by FORECAST_RATE (read through _scaled).
        self.filter_log_halflife = self.add_weight(
            name="filter_log_halflife", shape=(k,),
            initializer=keras.initializers.Constant((np.log(halflives) / FORECAST_RATE).astype(np.float32)))
        self.filter_gain = self.add_weight(name="filter_gain", shape=(k,), initializer="zeros")
        self.level_bias = self.add_weight(name="level_bias", shape=(), initializer="zeros")
        self.decay_log_halflife = self.add_weight(
            name="decay_log_halflife", shape=(),
            initializer=keras.initializers.Constant(float(np.log(max(horizon / 4.0, 0.5)) / FORECAST_RATE)))
        if self.context_level is not None:
            self.context_level.build(context_shape)
        self.built = True

    @staticmethod
    def _scaled(variable, dtype):
        return ops.cast(variable, dtype) * FORECAST_RATE

    def parameters(self) -> dict[str, np.ndarray]:
        """The forecast's scalar parameters in their units: filter half-lives [bars], gains, bias [log units] and
        the persistence half-life [mean bar volumes]."""
        value = lambda v: np.asarray(keras.ops.convert_to_numpy(v), np.float64) * FORECAST_RATE  # noqa: E731
        return {"filter_halflife_bars": np.exp(value(self.filter_log_halflife)),
                "filter_gain": value(self.filter_gain), "level_bias": value(self.level_bias),
                "decay_halflife": np.exp(value(self.decay_log_halflife))}

    def level(self, surprise, context=None):
        """Log level ``l_s`` ``(B, H - 1)`` of the decisions ``s = 0 .. H-2``, from the bars closed before each.

        Args:
            surprise: ``(B, W)`` volume surprise of every window position (``W = lookback + H - 1``); the level of
                decision ``s`` reads positions ``<= lookback + s - 1`` only (other weights are exactly zero).
            context: ``(B, H, Dc)`` context rows (row ``s`` known at the open of bar ``s``), or None.
        """
        dtype = surprise.dtype
        width, steps = surprise.shape[1], self.n_ahead - 1
        last = np.arange(steps) + width - steps - 1  # position of the last closed bar at decision s
        age = last[:, None] - np.arange(width)[None, :]  # (H-1, W)
        closed = ops.convert_to_tensor(age >= 0)
        age = ops.convert_to_tensor(np.maximum(age, 0).astype(np.float32), dtype)
        log_kappa = -_LN2 * ops.exp(-self._scaled(self.filter_log_halflife, dtype))  # (K,)
        weights = ops.where(closed[None], -ops.expm1(log_kappa)[:, None, None]
                            * ops.exp(age[None] * log_kappa[:, None, None]), 0.0)  # (K, H-1, W)
        means = ops.einsum("bw,ksw->bks", surprise, weights)
        raw = (ops.einsum("bks,k->bs", means, self._scaled(self.filter_gain, dtype))
               + self._scaled(self.level_bias, dtype))
        if self.context_level is not None and context is not None:
            raw = raw + self.context_level(context[:, :steps])[..., 0]
        return LEVEL_CLIP * ops.tanh(raw / LEVEL_CLIP)

    def _persistence(self, dtype):
        """``lam`` [1 / m]: the excess level halves every ``exp(decay_log_halflife)`` mean bar volumes."""
        return _LN2 * ops.exp(-self._scaled(self.decay_log_halflife, dtype))

    def share_logits(self, prior, seasonal, level):
        """Log-odds ``(B, H - 1)`` of the dynamic share of what remains, at decisions ``0 .. H-2``.

        Args:
            prior: ``(B, H - 1)`` the static curve's log-odds (``seasonal_share``).
            seasonal: ``(B, H - 1)`` ``x_s = S_s / m`` of the same bars.
            level: ``(B, H - 1)`` from :meth:`level`.
        """
        lam = self._persistence(prior.dtype)
        x = ops.maximum(seasonal, 1e-9)
        rest = x * ops.exp(-prior)  # T_s - x_s
        gain = ops.expm1(level)
        own = ops.log1p(gain * _mean_decay(lam * x))
        later = ops.log1p(gain * ops.exp(-lam * x) * _mean_decay(lam * rest))
        return prior + own - later

    def bar_forecast(self, seasonal, level):
        """Expected volumes ``(B, S, U)`` [units of ``m``] of bars ``u = 0 .. H-2`` as of the open of bar ``s``
        (``s = 0 .. H-2``; zero for ``u < s``)."""
        lam = self._persistence(seasonal.dtype)
        x = ops.maximum(seasonal, 1e-9)
        start = ops.cumsum(x, axis=1) - x  # static volume before bar u, from the horizon's open
        distance = ops.maximum(start[:, None, :] - start[:, :, None], 0.0)  # C_su
        ahead = ops.convert_to_tensor(np.triu(np.ones((self.n_ahead - 1,) * 2, dtype=np.float32)), x.dtype)
        factor = 1.0 + ops.expm1(level)[:, :, None] * ops.exp(-lam * distance) * _mean_decay(lam * x)[:, None, :]
        return x[:, None, :] * factor * ahead

    def divergence(self, seasonal, level, realised):
        """Mean Kullback-Leibler divergence [nats] of the realised from the forecast distribution of what remains.

        For every decision ``s = 0 .. H-3`` the realised volumes of bars ``s .. H-2`` (the horizon bars whose
        volume ``X`` carries) against :meth:`bar_forecast`, both normalised over those bars: a proper scoring rule
        of the remaining-share forecast (the training target only; decisions never read ``realised``).

        Args:
            seasonal, level: as in :meth:`share_logits`.
            realised: ``(B, H - 1)`` realised volumes ``V_u / m`` of bars ``0 .. H-2``.
        """
        steps = self.n_ahead - 1
        ahead = ops.convert_to_tensor(np.triu(np.ones((steps, steps), dtype=np.float32)), realised.dtype)
        forecast = self.bar_forecast(seasonal, level)
        actual = realised[:, None, :] * ahead
        total = ops.sum(actual, axis=-1, keepdims=True)
        p = actual / ops.maximum(total, 1e-12)
        q = forecast / ops.maximum(ops.sum(forecast, axis=-1, keepdims=True), 1e-12)
        terms = ops.where(p > 0, p * (ops.log(ops.maximum(p, 1e-12)) - ops.log(ops.maximum(q, 1e-12))), 0.0)
        valid = ops.cast(total[..., 0] > 0, realised.dtype)[:, : max(steps - 1, 1)]
        kl = ops.sum(terms, axis=-1)[:, : max(steps - 1, 1)] * valid
        return ops.sum(kl) / ops.maximum(ops.sum(valid), 1.0)

    def compute_output_shape(self, context_shape):  # noqa: D102
        return (context_shape[0], self.n_ahead - 1)

    def get_config(self):
        config = super().get_config()
        config.update({"n_ahead": self.n_ahead, "n_filters": self.n_filters, "use_context": self.use_context})
        return config


@register
class AllocationDecoder(keras.layers.Layer):
    """Step-wise allocation over the horizon for all ``(H + 1) * 4 * 2`` orders of the seed layout.

    Args:
        n_ahead: horizon H in bars.
        hidden_dim: width of the heads' first layer (shared context projection + per-order state).
        head_hidden_dims: hidden widths of the per-order fused MLP after the first layer.
        max_scale_factor: bound on the tracking (fixed-duration) heads: they move the base curve's
            per-step log-odds by at most ``± max_scale_factor``. Flexible heads are unbounded (they may
            complete the order at once).
        activation: activation of the heads (default relu: exact gelu made the decoder 2.8x slower on CPU,
            benchmarks/PROFILE.md).
        flexible_context: let the flexible ("beat") heads read the market context too (default: they read only
            the order's state, which is what a stopping rule needs and cannot memorise price paths).
        volume_forecast: start the VWAP order types from a :class:`VolumeForecast` of the remaining volume shares,
            updated at every bar from the volume already seen, instead of the static prior (needs the prior and
            the two volume inputs below).
        forecast_loss_weight: weight of the forecast's auxiliary loss (:meth:`VolumeForecast.divergence` of the
            realised horizon volumes, nats), added with ``add_loss`` in training only (evaluation losses stay
            the allocation loss alone); 0 trains the forecast through the allocation loss only.
        forecast_context: let the forecast's level read the context row (encoder state and calendar) too.
        flexible_prior: what the flexible ("beat") columns start from. "none": their base curve (the heads learn
            the stopping rule from scratch). "rule": the classical :class:`lems.baselines.FlexibleRule`, as a soft
            trigger added to the heads' log-odds: from the open of bar ``s >= max(d - 1, 1)``, when the last closed
            bar's price is favourable against the running benchmark of the closed bars by more than a learnable
            threshold [lookback volatility units, one per order and column, initially ``RULE_THRESHOLD``], the
            share of what remains rises by ``RULE_GAIN`` log-odds (the order completes as fast as the limits
            allow). The untrained columns are then the rule, up to its soft edge and its log-price benchmark;
            training moves the thresholds and the heads correct the rule. Without a latched state, a triggered
            order that a ``max_rate`` kept from completing re-checks the trigger at the next bar.
        rule_decay: the rule prior's threshold at the open of bar ``s`` is its threshold times
            ``((H - s) / H) ** rule_decay`` (>= 0; 0: constant, as the textbook rule;
            :class:`lems.baselines.FlexibleRule` ``decay``).
        symmetric_flexible: one flexible policy per benchmark and target, shared by buy and sell: their state
            features are signed by the side, so a sell order reacts to a price rise exactly as the buy order to the
            mirror fall. The flexible columns cannot then bet on the training period's drift (buy early and sell
            late in a bull market), which does not carry to other periods. The tracking column is not tied (its
            objective does not depend on the side).

    Call args:
        inputs: list ``[context, returns, log_volumes, min_rate, max_rate]``:
            ``context`` ``(B, H, Dc)``: row ``s`` may only depend on what is known at the open of bar ``s``;
            ``returns`` ``(B, H - 1)``: realised VWAP-to-VWAP returns of bars ``0 .. H-2`` of the horizon in
            units of lookback volatility (read at step ``s`` only for bars ``< s``);
            ``log_volumes`` ``(B, H - 1)``: their log volumes relative to the lookback mean;
            ``min_rate``, ``max_rate`` ``(B, 1)``: limits in fractions of the order per bar;
            optional ``prior`` ``(B, H - 1)``: log-odds of a prior share of what remains for the VWAP order
            types at steps ``0 .. H-2`` (known at the origin, e.g. the static volume curve's): it replaces the
            uniform starting point of their base curves (the learned base curve then acts as a correction);
            with ``volume_forecast``, then ``surprise`` ``(B, W)``: the volume surprise (log volume minus seasonal
            expectation) of every window position ``W = lookback + H - 1`` (decision ``s`` reads positions
            ``<= lookback + s - 1``), and ``seasonal`` ``(B, H - 1)``: the seasonal expected volume of bars
            ``0 .. H-2`` in units of the lookback mean volume (known at the origin).

        columns: optional ``(K + 1,)`` int tensor of column indices into ``0 .. H`` (the fixed column ``H``
            last): compute only those columns, a compact layout ``(B, H, K + 1, 4, 2)`` equal to the same columns of
            the full output (every column's recursion is independent of the others). Training at long horizons
            scores sampled columns this way (:class:`lems.execution.SeedColumns`).

    Returns:
        Allocations ``(B, H, H + 1, 4, 2)`` (step × column × order type × target).
    """

    def __init__(self, n_ahead: int, hidden_dim: int = 64, head_hidden_dims=(32,), max_scale_factor: float = 1.5,
                 activation: str = "relu", flexible_context: bool = False, volume_forecast: bool = False,
                 forecast_loss_weight: float = 1.0, forecast_context: bool = True, flexible_prior: str = "none",
                 symmetric_flexible: bool = False, rule_decay: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        if flexible_prior not in FLEXIBLE_PRIORS:
            raise ValueError(f"`flexible_prior` must be one of {FLEXIBLE_PRIORS}, got {flexible_prior!r}.")
        if not (np.isfinite(rule_decay) and rule_decay >= 0):
            raise ValueError(f"`rule_decay` must be a finite number >= 0, got {rule_decay!r}.")
        self.flexible_prior = flexible_prior
        self.rule_decay = float(rule_decay)
        self.symmetric_flexible = bool(symmetric_flexible)
        self.flexible_context = bool(flexible_context)
        self.volume_forecast = bool(volume_forecast)
        if not (np.isfinite(forecast_loss_weight) and forecast_loss_weight >= 0):
            raise ValueError(f"`forecast_loss_weight` must be a finite number >= 0, got {forecast_loss_weight!r}.")
        self.forecast_loss_weight = float(forecast_loss_weight)
        self.forecast_context = bool(forecast_context)
        self.n_ahead = check_positive_int("n_ahead", n_ahead)
        self.hidden_dim = check_positive_int("hidden_dim", hidden_dim)
        self.head_hidden_dims = tuple(int(h) for h in head_hidden_dims)
        if not max_scale_factor > 0:
            raise ValueError(f"`max_scale_factor` must be > 0, got {max_scale_factor!r}.")
        self.max_scale_factor = float(max_scale_factor)
        self.activation = activation
        self.n_models = len(ORDER_TYPES) * len(TARGETS)
        self.n_columns = self.n_ahead + 1
        # Flexible policies: one per order type x target, or one per benchmark x target shared by the two sides
        # (the models are ordered buy first, so model m of a side pairs with m mod n_flexible_models).
        self.n_flexible_models = self.n_models // 2 if self.symmetric_flexible else self.n_models
        self.context_projection = keras.layers.Dense(self.hidden_dim, name="context_projection")
        # One flexible ("beat") head per order type x target, shared by the H flexible columns (which differ by
        # their state features, bias and base curve), and one tracking head per order type x target for the
        # fixed column, so that the noisy flexible objective cannot pull the tracking schedule: 2 * 8 weight
        # sets instead of 8 * (H + 1), evaluated as large batched matmuls.
        self.head = FusedMLP(hidden_dims=list(self.head_hidden_dims), output_dim=1, n_models=self.n_flexible_models,
                             n_fused=1, activation=activation, output_kernel_initializer="zeros", name="head")
        self.tracking_head = FusedMLP(hidden_dims=list(self.head_hidden_dims), output_dim=1, n_models=self.n_models,
                                      n_fused=1, activation=activation, output_kernel_initializer="zeros",
                                      name="tracking_head")
        self.forecast = (VolumeForecast(self.n_ahead, use_context=self.forecast_context, name="volume_forecast")
                         if self.volume_forecast else None)

    def build(self, input_shape):
        context_shape = input_shape[0]
        horizon, m, c = self.n_ahead, self.n_models, self.n_columns
        self.context_projection.build(context_shape)
        self.step_embedding = self.add_weight(name="step_embedding", shape=(horizon, self.hidden_dim),
                                              initializer="zeros")
        self.state_kernel = self.add_weight(name="state_kernel", shape=(m, N_STATE, self.hidden_dim),
                                            initializer=FusedGlorotUniform())
        if self.symmetric_flexible:  # the flexible policies' own first layer (one per benchmark x target)
            self.flexible_state_kernel = self.add_weight(
                name="flexible_state_kernel", shape=(self.n_flexible_models, N_STATE, self.hidden_dim),
                initializer=FusedGlorotUniform())
        self.state_bias = self.add_weight(name="state_bias", shape=(m, c, self.hidden_dim), initializer="zeros")
        self.base_curve = self.add_weight(name="base_curve", shape=(m, c, horizon),
                                          initializer=EqualInitializer(axis=-1),
                                          constraint=PositiveSumToOneConstraint(axis=-1))
        if self.flexible_prior == "rule":
            self.rule_threshold = self.add_weight(
                name="rule_threshold", shape=(self.n_flexible_models, horizon),
                initializer=keras.initializers.Constant(RULE_THRESHOLD / RULE_RATE))
        # output layers start at zero: an untrained decoder follows its prior
        self.head.build((None, self.n_flexible_models, 1, self.hidden_dim))
        self.tracking_head.build((None, m, 1, self.hidden_dim))
        if self.forecast is not None:
            if len(input_shape) < 8:
                raise ValueError("volume_forecast needs the inputs [context, returns, log_volumes, min_rate, "
                                 "max_rate, prior, surprise, seasonal]")
            self.forecast.build(context_shape)
        self.built = True  # follows its prior (the base curve, the given prior, or the silent forecast)

    def _constants(self, dtype, columns=None):
        """Per-order / per-column constants of the recursion (and the columns' ``state_bias``), for all ``H + 1``
        columns or the ``columns`` (``(K + 1,)`` int indices, the fixed column last) of a compact layout."""
        k = self._all_constants(dtype)
        if columns is None:
            return k
        take = lambda a, axis: ops.take(a, columns, axis=axis)  # noqa: E731
        flexible = columns[:-1]
        if "rule_threshold" in k:
            k = {**k, "rule_threshold": ops.take(k["rule_threshold"], flexible, axis=1),
                 "rule_first": ops.take(k["rule_first"], flexible, axis=2)}
        return {**k, "tracking": take(k["tracking"], 2), "duration": take(k["duration"], 2),
                "context_gate": take(k["context_gate"], 2),
                "min_duration": take(ops.convert_to_tensor(k["min_duration"].astype(np.float32), dtype), 2),
                "state_bias": take(self.state_bias, 1)}

    def _all_constants(self, dtype):
        horizon, c = self.n_ahead, self.n_columns
        side = np.array([1.0 if side == "buy" else -1.0 for side, _ in ORDER_TYPES for _ in TARGETS])
        is_vwap = np.array([1.0 if bench == "vwap" else 0.0 for _, bench in ORDER_TYPES for _ in TARGETS])
        tracking = np.zeros(c)
        tracking[-1] = 1.0
        as_tensor = lambda a: ops.convert_to_tensor(np.asarray(a, np.float32), dtype)  # noqa: E731
        rule = {}
        if self.flexible_prior == "rule":
            # per order (M, H) thresholds of the flexible columns, and the first step each may trigger: max(d - 1, 1)
            rule = {"rule_threshold": self._flexible_weights(ops.cast(self.rule_threshold, dtype) * RULE_RATE),
                    "rule_first": as_tensor(np.maximum(np.arange(horizon), 1).reshape(1, 1, horizon))}
        return {**rule,
            "side": as_tensor(side.reshape(1, -1, 1)),
            "is_vwap": as_tensor(is_vwap.reshape(1, -1, 1)),
            "tracking": as_tensor(tracking.reshape(1, 1, c)),
            "duration": as_tensor(seed_min_durations(horizon).reshape(1, 1, c) / horizon),
            # Flexible heads read only the order's state (prices relative to the running benchmark, fills, time),
            # unless flexible_context: the market context mostly lets them memorise price paths.
            "context_gate": as_tensor((tracking if not self.flexible_context else np.ones(c)).reshape(1, 1, c, 1)),
            "min_duration": seed_min_durations(horizon).reshape(1, 1, c),
            "state_bias": self.state_bias,
        }

    def flexible_masks(self) -> dict[str, np.ndarray]:
        """The entries of the decoder's weights that only the flexible columns read, per variable path.

        Whole variables (the flexible heads, the rule's thresholds, the flexible first layer of a symmetric
        decoder) and the flexible columns' rows of ``state_bias`` and ``base_curve``. Selection keeps these from the
        epoch with the best validation flexible improvement, the rest from the best tracking epoch
        (:class:`lems.training.BestWeights`). Without ``symmetric_flexible`` the first layer (``state_kernel``) is
        shared with the tracking column and not listed; the VWAP order types' starting log-odds (the prior and
        the volume forecast) are always shared.
        """
        masks = {v.path: np.ones(v.shape, bool) for v in self.head.weights}
        for name in ("rule_threshold", "flexible_state_kernel"):
            if hasattr(self, name):
                variable = getattr(self, name)
                masks[variable.path] = np.ones(variable.shape, bool)
        for variable in (self.state_bias, self.base_curve):  # (M, C, ...): the flexible columns are 0 .. H-1
            mask = np.zeros(variable.shape, bool)
            mask[:, :-1] = True
            masks[variable.path] = mask
        return masks

    def flexible_policy_of_order(self) -> np.ndarray:
        """``(M,)`` int: the flexible policy (row of the flexible heads and of ``rule_threshold``) each order model
        uses: itself, or with ``symmetric_flexible`` the buy model of its benchmark x target (``m mod M / 2``)."""
        return np.arange(self.n_models) % self.n_flexible_models

    @property
    def rule_thresholds(self) -> np.ndarray:
        """``(n_flexible_models, H)`` thresholds of the rule prior [lookback volatility units] (``flexible_prior=
        "rule"`` only): the flexible column of min duration ``d`` (index ``d - 1``) of policy ``f`` finishes early
        once the last closed bar is favourable against the running benchmark by more than entry ``[f, d - 1]``."""
        if self.flexible_prior != "rule":
            raise ValueError(f"rule_thresholds: the decoder has no rule prior (flexible_prior={self.flexible_prior!r})")
        return np.asarray(ops.convert_to_numpy(self.rule_threshold), dtype=np.float64) * RULE_RATE

    @rule_thresholds.setter
    def rule_thresholds(self, values) -> None:
        current = self.rule_thresholds
        values = np.broadcast_to(np.asarray(values, dtype=np.float64), current.shape)
        if not np.all(np.isfinite(values)):
            raise ValueError("rule_thresholds must be finite [lookback volatility units]")
        self.rule_threshold.assign((values / RULE_RATE).astype(self.rule_threshold.dtype))

    def _flexible_weights(self, weights):
        """Per-order rows ``(M, ...)`` of a flexible policy's weights: the rows themselves, or with
        ``symmetric_flexible`` the buy rows for both sides (weights shaped ``(M / 2, ...)`` are tiled, ``(M, ...)``
        read their buy half)."""
        if not self.symmetric_flexible:
            return weights
        pairs = self.n_flexible_models
        return ops.take(weights, np.arange(self.n_models) % pairs, axis=0)

    def _base_logits(self, columns=None):
        """Log-odds of the base curve's share of what remains, per order and step: ``(M, C, H)`` (the ``columns``
        of a compact layout only, when given)."""
        base = self.base_curve if columns is None else ops.take(self.base_curve, columns, axis=1)
        if self.symmetric_flexible:  # the flexible columns' base curves are the buy side's for both sides
            base = ops.concatenate([self._flexible_weights(base[:, :-1]), base[:, -1:]], axis=1)
        base = ops.maximum(base, _SHARE_EPS)
        tail = ops.flip(ops.cumsum(ops.flip(base, axis=-1), axis=-1), axis=-1)
        share = ops.clip(base / tail, _SHARE_EPS, 1.0 - _SHARE_EPS)
        base_remaining = tail - base  # base curve's remaining fraction after each step
        return ops.log(share) - ops.log(1.0 - share), base_remaining

    # ----------------------------------------------------------------------------------------------------
    # Per-step API (shared by ``call`` and the live session, lems.live)
    # ----------------------------------------------------------------------------------------------------
    def initial_state(self, batch, dtype, n_columns: int | None = None) -> DecoderState:
        """State at the open of the first bar: nothing traded, no bar of the horizon closed (``n_columns``: of a
        compact layout; default all ``H + 1``)."""
        zeros = ops.zeros((batch, 1), dtype)
        remaining = ops.ones((batch, self.n_models, n_columns or self.n_columns), dtype)
        return DecoderState(remaining, ops.zeros_like(remaining), zeros, zeros, zeros, zeros)

    @staticmethod
    def advance(state: DecoderState, allocation, log_price, volume) -> DecoderState:
        """State after a bar closes.

        Args:
            state: the state at the open of the bar.
            allocation: ``(B, M, C)`` fraction of the order traded in the bar (the actual fill).
            log_price: ``(B, 1)`` the bar's cumulative log price relative to the reference (lookback volatility
                units, the cumulative sum of the return channel over the horizon).
            volume: ``(B, 1)`` the bar's volume relative to the lookback mean.
        """
        z, v = log_price, volume
        return DecoderState(state.remaining - allocation, state.traded_price + allocation * z[:, :, None],
                            state.market_vz + v * z, state.market_v + v, state.market_z + z, z)

    def forecast_level(self, context, volume):
        """The forecast's log level ``(B, H - 1)`` at decisions ``0 .. H-2`` (:meth:`VolumeForecast.level`)."""
        if self.forecast is None or volume is None:
            raise ValueError("this decoder has no volume forecast (volume_forecast=False or no volume inputs)")
        surprise, _ = volume
        return self.forecast.level(ops.cast(surprise, context.dtype), context)

    def start_logits(self, context, prior, volume=None):
        """Log-odds ``(B, H - 1)`` the VWAP order types start from: the dynamic forecast's share of what remains
        (:meth:`VolumeForecast.share_logits`) when the decoder has one, else the prior."""
        prior = ops.cast(prior, context.dtype)
        if self.forecast is None:
            return prior
        level = self.forecast_level(context, volume)
        return self.forecast.share_logits(prior, ops.cast(volume[1], context.dtype), level)

    def prepare(self, context, prior=None, volume=None, columns=None):
        """Step-independent tensors of the recursion, time-major (the ``xs`` of the scan).

        Args:
            context: ``(B, H, Dc)`` context rows (row ``s`` known at the open of bar ``s``).
            prior: optional ``(B, H - 1)`` prior log-odds of the VWAP order types (see ``call``).
            volume: ``(surprise (B, W), seasonal (B, H - 1))`` for the volume forecast (see ``call``), or None.
            columns: ``(K + 1,)`` column indices of a compact layout (see ``call``), or None (all ``H + 1``).

        Returns:
            ``(projected (H, B, hidden), logits (H, 1, M, C), shift (H, B or 1, M, 1), base_remaining (H, 1, M,
            C))``: the projected context, the starting log-odds of each order's share of what remains (the base
            curve's ``logits`` plus the prior's ``shift`` of the VWAP order types: kept apart, so that the
            ``(H, B, M, C)`` sum is never materialised, a step at a time), and the base curve's remaining fraction
            after each step.
        """
        dtype = context.dtype
        projected = self.context_projection(context) + self.step_embedding[None]
        base_logits, base_remaining = self._base_logits(columns)
        logits = ops.transpose(base_logits, (2, 0, 1))[:, None]  # (H, 1, M, C)
        if prior is not None:
            shift = ops.transpose(self.prior_shift(self.start_logits(context, prior, volume), dtype))  # (H, B)
            shift = self._constants(dtype)["is_vwap"][None] * shift[:, :, None, None]  # (H, B, M, 1)
        else:
            shift = ops.zeros((self.n_ahead, 1, 1, 1), dtype)
        return (ops.transpose(projected, (1, 0, 2)), logits, shift,
                ops.transpose(base_remaining, (2, 0, 1))[:, None])

    def decide(self, projected_s, logit_s, base_remaining_s, step, state: DecoderState, constants, min_rate,
               max_rate):
        """One step of the recursion: every order's allocation for bar ``step``, within the exact limits.

        Args:
            projected_s, logit_s, base_remaining_s: the step's rows of :meth:`prepare`'s outputs.
            step: ``(B, 1)`` the step ``s`` of each row.
            state: the :class:`DecoderState` at the open of bar ``s``.
            constants: ``self._constants(dtype)``.
            min_rate, max_rate: ``(B, 1, 1)`` limits [fraction of the order per bar].

        Returns:
            ``(share, allocation)``, both ``(B, M, C)``: the proposed share of what remains, and the fraction of
            the order traded in the bar (:func:`lems.execution.allocate_step`).
        """
        share = self.step_share(projected_s, logit_s, base_remaining_s, step, state, constants)
        bars_left = float(self.n_ahead) - ops.cast(step, share.dtype)[:, :, None]
        return share, allocate_step(share * state.remaining, state.remaining, bars_left, min_rate, max_rate)

    def replay(self, fills, log_price, volume, step, dtype) -> DecoderState:
        """The state at the open of bar ``step`` after the closed bars traded ``fills`` (the actual fills).

        The same :meth:`advance` as the batch recursion, run over the closed bars only (a scan, so the compiled
        graph does not grow with H).

        Args:
            fills: ``(B, H - 1)`` fractions of the order traded in bars ``0 .. H-2`` (read for bars ``< step``).
            log_price, volume: ``(B, H - 1)`` from :meth:`market_path`.
            step: ``(B, 1)`` bars closed.
            dtype: compute dtype.
        """
        state = self.initial_state(ops.shape(fills)[0], dtype)
        bars = ops.cast(ops.arange(self.n_ahead - 1), dtype)
        xs = (ops.transpose(ops.cast(fills, dtype)), ops.transpose(log_price), ops.transpose(volume), bars)

        def closed_bar(carry, x):
            old = DecoderState(*carry)
            fill, z, v, u = x
            new = self.advance(old, ops.zeros_like(old.remaining) + fill[:, None, None], z[:, None], v[:, None])
            closed = step > u  # (B, 1)
            merged = tuple(ops.where(closed if len(n.shape) == 2 else closed[:, :, None], n, o)
                           for n, o in zip(new, old))
            return merged, merged

        final, _ = ops.scan(closed_bar, tuple(state), xs)
        return DecoderState(*final)

    def next_share(self, context, returns, log_volumes, prior, step, fills, volume=None):
        """Proposed shares of what remains at the open of bar ``step``, after the actual ``fills``: the live step.

        Args:
            context, returns, log_volumes, prior: as in ``call`` (from the window known at the decision).
            step: ``(B, 1)`` the decision's bar of the horizon.
            fills: ``(B, H - 1)`` actual fills of the closed bars (ignored from ``step`` on).
            volume: ``(surprise, seasonal)`` as in ``call``, when the decoder has a volume forecast.

        Returns:
            ``(B, M, C)`` shares in ``(0, 1)``, before the limits: with ``fills`` equal to the batch allocations,
            exactly the shares ``call`` computes at that step.
        """
        dtype = context.dtype
        step = ops.cast(step, dtype)
        projected, logits, shift, base_remaining = self.prepare(context, prior, volume)
        onehot = ops.one_hot(ops.cast(step[:, 0], "int32"), self.n_ahead, dtype=dtype)  # (B, H)
        shift = shift[..., 0] + ops.zeros_like(projected[:, :, :1])  # (H, B, M)
        logit_s = (ops.einsum("bh,hmc->bmc", onehot, logits[:, 0])
                   + ops.einsum("bh,hbm->bm", onehot, shift)[:, :, None])
        log_price, volume = self.market_path(returns, log_volumes, dtype)
        state = self.replay(fills, log_price, volume, step, dtype)
        return self.step_share(ops.einsum("bh,hbd->bd", onehot, projected), logit_s,
                               ops.einsum("bh,hmc->bmc", onehot, base_remaining[:, 0]), step, state,
                               self._constants(dtype))

    def step_share(self, projected_s, base_logit_s, base_remaining_s, step, state: DecoderState, constants):
        """Proposed share of what remains for one step, for every order: ``(B, M, C)`` in ``(0, 1)``.

        Args:
            projected_s: ``(B, hidden)`` projected context of the step.
            base_logit_s: ``(1 or B, M, C)`` base curve log-odds of the step.
            base_remaining_s: ``(1 or B, M, C)`` base curve's remaining fraction after the step.
            step: the step ``s`` (bars since the origin): a Python int, or a ``(B, 1)`` tensor (one step per row).
            state: the :class:`DecoderState` at the open of bar ``s`` (bars ``< s`` closed).
            constants: ``self._constants(dtype)``.
        """
        k, horizon, remaining = constants, self.n_ahead, state.remaining
        dtype = remaining.dtype
        if isinstance(step, (int, np.integer)):
            s = int(step)
            count = float(max(s, 1))
            to_min = np.maximum(k["min_duration"] - s, 0.0) / horizon
            to_min = ops.convert_to_tensor(to_min.astype(np.float32), dtype)
            left = float(horizon - s) / horizon
        else:
            step = ops.cast(step, dtype)  # (B, 1)
            count = ops.maximum(step, 1.0)
            min_duration = ops.cast(k["min_duration"], dtype)
            to_min = ops.maximum(min_duration - step[:, :, None], 0.0) / horizon
            left = (float(horizon) - step[:, :, None]) / horizon
        vwap = state.market_vz / ops.maximum(state.market_v, _PRICE_EPS)
        twap = state.market_z / count
        running = k["is_vwap"] * vwap[:, :, None] + (1.0 - k["is_vwap"]) * twap[:, :, None]  # (B, M, 1)
        last = state.last[:, :, None]
        traded = 1.0 - remaining
        own_price = ops.where(traded > _PRICE_EPS, state.traded_price / ops.maximum(traded, _PRICE_EPS),
                              ops.zeros_like(traded) + last)
        features = ops.stack([
            remaining,
            remaining - base_remaining_s,
            ops.zeros_like(remaining) + to_min,
            k["side"] * (last - running) + ops.zeros_like(remaining),
            k["side"] * (own_price - running),
            ops.zeros_like(remaining) + left,
            ops.zeros_like(remaining) + k["duration"],
            ops.zeros_like(remaining) + k["tracking"],
        ], axis=-1)  # (B, M, C, N_STATE)
        hidden = self._state_layer(features, k) + projected_s[:, None, None, :] * k["context_gate"]
        hidden = keras.activations.get(self.activation)(hidden)
        rule = None
        if self.flexible_prior == "rule":
            now = float(step) if isinstance(step, (int, np.integer)) else step[:, :, None]
            eligible = ops.cast(k["rule_first"] <= now, dtype)  # (1 or B, 1, F): from bar max(d - 1, 1) on
            favourable = -k["side"] * (last - running)  # (B, M, 1) [lookback volatility units]
            threshold = k["rule_threshold"][None]  # (1, M, F)
            if self.rule_decay:  # ((H - s) / H) ** decay, s < H: > 0
                threshold = threshold * (left ** self.rule_decay if isinstance(left, float)
                                         else ops.power(left, self.rule_decay))
            rule = RULE_GAIN * eligible * ops.sigmoid(RULE_SHARPNESS * (favourable - threshold))
        return self._share(hidden, base_logit_s, k, rule)

    def _state_layer(self, features, k):
        """First layer of the heads on the per-order state ``(B, M, C, N_STATE)``: ``(B, M, C, hidden)`` (the
        flexible columns through their policy's weights, see ``symmetric_flexible``)."""
        if not self.symmetric_flexible:
            return ops.einsum("bmcn,mnh->bmch", features, self.state_kernel) + k["state_bias"][None]
        kernel = self._flexible_weights(self.flexible_state_kernel)
        flexible = (ops.einsum("bmcn,mnh->bmch", features[:, :, :-1], kernel)
                    + self._flexible_weights(k["state_bias"][:, :-1])[None])
        tracking = ops.einsum("bmcn,mnh->bmch", features[:, :, -1:], self.state_kernel) + k["state_bias"][None, :, -1:]
        return ops.concatenate([flexible, tracking], axis=2)

    def _share(self, hidden, base_logit_s, k, rule=None):
        """Apply the shared heads to ``(B, M, C, hidden)`` and turn them into shares of what remains (``rule``:
        ``(B, M, C - 1)`` log-odds of the flexible prior, added to the flexible heads)."""
        m, flexible = self.n_models, hidden.shape[2] - 1  # the flexible columns, then the fixed one
        rows = ops.reshape(ops.transpose(hidden[:, :, :flexible], (0, 2, 1, 3)),
                           (-1, self.n_flexible_models, 1, self.hidden_dim))  # symmetric: buy and sell rows apart
        raw = ops.transpose(ops.reshape(self.head(rows), (-1, flexible, m)), (0, 2, 1))  # (B, M, H): unbounded
        if rule is not None:
            raw = raw + rule
        tracking = ops.reshape(self.tracking_head(hidden[:, :, flexible][:, :, None]), (-1, m, 1))
        bounded = self.max_scale_factor * ops.tanh(tracking / self.max_scale_factor)  # (B, M, 1)
        adjust = ops.concatenate([raw, bounded], axis=2)  # (B, M, C)
        return ops.sigmoid(base_logit_s + adjust)

    def market_path(self, returns, log_volumes, dtype):
        """Cumulative log prices and relative volumes ``(B, H - 1)`` of the horizon bars (see ``call``)."""
        log_price = ops.cumsum(ops.cast(returns, dtype), axis=1)
        volume = ops.exp(ops.clip(ops.cast(log_volumes, dtype), -20.0, 20.0))
        return log_price, volume

    def uniform_logits(self) -> np.ndarray:
        """Log-odds of the uniform schedule's share of what remains, per step: ``(H,)``."""
        left = self.n_ahead - np.arange(self.n_ahead, dtype=np.float64)
        share = np.clip(1.0 / left, _SHARE_EPS, 1.0 - _SHARE_EPS)
        return (np.log(share) - np.log(1.0 - share)).astype(np.float32)

    def prior_shift(self, prior, dtype):
        """Shift ``(B, H)`` of the VWAP order types' log-odds: the prior minus the uniform log-odds (0 at the
        last step, where the order takes what is left)."""
        uniform = ops.convert_to_tensor(self.uniform_logits(), dtype)
        prior = ops.cast(prior, dtype)
        shift = prior - uniform[None, :-1]
        return ops.concatenate([shift, ops.zeros_like(shift[:, :1])], axis=1)

    def call(self, inputs, training=None, columns=None):
        context, returns, log_volumes, min_rate, max_rate = inputs[:5]
        prior = inputs[5] if len(inputs) > 5 else None
        volume = tuple(inputs[6:8]) if len(inputs) > 7 else None
        if self.forecast is not None and (prior is None or volume is None):
            raise ValueError("volume_forecast needs the inputs [context, returns, log_volumes, min_rate, max_rate, "
                             "prior, surprise, seasonal]")
        horizon, dtype = self.n_ahead, context.dtype
        k = self._constants(dtype, columns)
        n_columns = self.n_columns if columns is None else int(columns.shape[0])
        batch = ops.shape(context)[0]
        projected, logits, shift, base_remaining = self.prepare(context, prior, volume, columns)
        if training and self.forecast is not None and self.forecast_loss_weight > 0:
            self.add_loss(self.forecast_loss_weight * self.forecast_divergence(context, log_volumes, volume))
        min_rate = ops.reshape(ops.cast(min_rate, dtype), (-1, 1, 1))
        max_rate = ops.reshape(ops.cast(max_rate, dtype), (-1, 1, 1))
        log_price, volume = self.market_path(returns, log_volumes, dtype)  # (B, H - 1): bars 0 .. H-2
        pad = ops.zeros_like(log_price[:, :1])  # bar H-1 never closes inside the recursion
        steps = ops.cast(ops.arange(horizon), dtype)
        xs = (projected, logits, shift, base_remaining, ops.transpose(ops.concatenate([log_price, pad], 1)),
              ops.transpose(ops.concatenate([volume, pad], 1)), steps)
        state = self.initial_state(batch, dtype, n_columns)

        # Keras's TensorFlow scan wants outputs shaped like the carry; elsewhere only the allocations are stacked.
        full_outputs = keras.backend.backend() == "tensorflow"

        def step(carry, x):
            state = DecoderState(*carry[full_outputs:])
            projected_s, logit_s, shift_s, remaining_s, z, v, s = x
            _, a = self.decide(projected_s, logit_s + shift_s, remaining_s, ops.zeros_like(state.last) + s, state, k,
                               min_rate, max_rate)
            new_state = tuple(self.advance(state, a, z[:, None], v[:, None]))
            if full_outputs:
                return (a,) + new_state, (a,) + new_state
            return new_state, a

        # Long horizons: recompute each step's activations in the backward pass (not on TensorFlow, whose gradient
        # of a rematerialised while-loop body fails to capture the variables).
        if self.n_ahead >= REMAT_MIN_HORIZON and not full_outputs:
            step = keras.remat(step)
        init = ((ops.zeros_like(state.remaining),) if full_outputs else ()) + tuple(state)
        _, outputs = ops.scan(step, init, xs)
        out = ops.transpose(outputs[0] if full_outputs else outputs, (1, 0, 2, 3))  # (B, H, M, C)
        out = ops.reshape(out, (-1, horizon, len(ORDER_TYPES), len(TARGETS), n_columns))
        return ops.transpose(out, (0, 1, 4, 2, 3))

    def forecast_divergence(self, context, log_volumes, volume):
        """The forecast's auxiliary loss [nats]: :meth:`VolumeForecast.divergence` on the realised volumes of the
        horizon bars ``0 .. H-2`` (``log_volumes``, relative to the lookback mean). Training target only."""
        dtype = context.dtype
        level = self.forecast_level(context, volume)
        realised = relative_volume(ops.cast(log_volumes, dtype))
        return self.forecast.divergence(ops.cast(volume[1], dtype), level, realised)

    def compute_output_shape(self, input_shape):  # noqa: D102
        return (input_shape[0][0], self.n_ahead, self.n_columns, len(ORDER_TYPES), len(TARGETS))

    def get_config(self):
        config = super().get_config()
        config.update({"n_ahead": self.n_ahead, "hidden_dim": self.hidden_dim,
                       "head_hidden_dims": list(self.head_hidden_dims), "max_scale_factor": self.max_scale_factor,
                       "activation": self.activation, "flexible_context": self.flexible_context,
                       "volume_forecast": self.volume_forecast, "forecast_loss_weight": self.forecast_loss_weight,
                       "forecast_context": self.forecast_context, "flexible_prior": self.flexible_prior,
                       "symmetric_flexible": self.symmetric_flexible, "rule_decay": self.rule_decay})
        return config
