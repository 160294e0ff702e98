"""LargeExecutionModel: the seed's model, leak-free (docs/execution.md §3, §5, §7).

Encoder (causal at every position ``j`` of ``X``: it sees positions ``<= j`` only): per-feature embedding →
variable selection → stacked TKAN → gated skip + norm → GRN → causal multi-head self-attention.
Decoder (:class:`lems.layers.decoder.AllocationDecoder`): at the open of horizon bar ``s`` it reads the
encoder at position ``lookback + s - 1`` (bars up to ``t0 + s - 1``) and the known-ahead features of bar
``s`` (position ``lookback + s``), plus each order's own fills and the market's running VWAP/TWAP over the
bars already closed, and allocates within the exact trading limits.

Volume forecast (``volume_forecast=True``, the default): the VWAP order types start from a dynamic forecast of
the remaining volume shares (:class:`lems.layers.decoder.VolumeForecast`: the static curve times a level updated
at every bar from the volume surprises of the closed bars), trained by an auxiliary loss on the realised horizon
volumes (``forecast_loss_weight``, added in training only) beside ``lem_loss``; the encoder also reads the volume
surprise (log volume relative to the causal seasonal profile) as an extra observed channel.

Input layout (the seed's, built by :func:`lems.data_formater.add_config_to_X`): ``[X, min_rate, max_rate]``
with ``X`` ``(B, lookback + n_ahead - 1, F)``: observed features first (channel 0: bar return in units of
lookback volatility; channel 1: log volume relative to the lookback mean), the ``n_known_features``
known-ahead (calendar) features last (the pipeline's: :data:`lems.data.features.KNOWN_AHEAD_FEATURES`, whose
last two are the seasonal expected volume and the static curve's share of what remains).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

from lems.batching import FixedBatchShapes, is_array_data, num_rows
from lems.layers.decoder import RULE_DECAY, AllocationDecoder, relative_volume
from lems.layers.embedding import EmbeddingLayer
from lems.layers.grn import GRN, AddAndNorm, Gate
from lems.layers.registry import check_positive_int, register
from lems.layers.tkan import TKAN
from lems.layers.vsn import VariableSelectionNetwork

#: Observed channel holding the bar return in units of lookback volatility (see lems.data.features).
RETURN_CHANNEL = 0
#: Observed channel holding the log volume relative to the lookback mean.
VOLUME_CHANNEL = 1
#: From this horizon [bars] on, training scores a stratified sample of the flexible columns by default.
SAMPLE_COLUMNS_MIN_HORIZON = 64
#: Flexible (min-duration) columns scored per training step by default at long horizons.
DEFAULT_TRAIN_COLUMNS = 32
#: Default span of the weight average kept during ``fit`` [fraction of an epoch] (``weight_average_span``).
WEIGHT_AVERAGE_SPAN = 0.25
#: EMA momentum of the weight average when ``fit`` cannot tell the number of steps per epoch.
FALLBACK_EMA_MOMENTUM = 0.99


def expected_squared_tracking_error(y_true, y_pred):
    """Price-free estimate of the squared fixed-duration tracking error of each order [percent^2]: ``(B, 8)``.

    With fills at the bar VWAPs, ``diff * B = -sum_s e_s (p_{s+1} - p_s)`` where ``e_s`` is the schedule's
    cumulative allocation minus the benchmark's cumulative volume share after bar ``s`` (docs/execution.md §4, summation
    by parts). Dropping the cross terms, which have mean zero when prices are a martingale, leaves
    ``sum_s e_s^2 r_s^2`` (``r_s = p_{s+1} / p_s - 1``): an unbiased estimate of the squared tracking error whose
    noise no longer carries the SIGN of the price moves, for the fixed column's 4 order types x 2 targets (VWAP
    orders against the realised volume shares, TWAP orders against ``1 / H``).

    Args:
        y_true: compact ``(B, H, 2)`` or tiled ``(B, H, H + 1, 4, 2)`` targets (volume share, price / reference).
        y_pred: allocations ``(B, H, H + 1, 4, 2)`` (or a compact layout: its last column is the fixed one).
    """
    from lems.execution import ORDER_TYPES

    y_pred = ops.convert_to_tensor(y_pred)
    horizon = y_pred.shape[1]
    y_true = ops.cast(y_true, y_pred.dtype)
    if len(y_true.shape) == 5:  # tiled: the buy-VWAP quantity order's targets carry the market's
        y_true = y_true[:, :, -1, 0]
    volume, price = y_true[:, :, 0], y_true[:, :, 1]
    is_vwap = ops.convert_to_tensor(
        np.array([bench == "vwap" for _, bench in ORDER_TYPES], np.float32)[None, None, :, None], y_pred.dtype)
    benchmark = is_vwap * volume[:, :, None, None] + (1.0 - is_vwap) / horizon  # (B, H, 4, 1)
    error = ops.cumsum(y_pred[:, :, -1] - benchmark, axis=1)[:, :-1]  # (B, H - 1, 4, 2): the fixed column
    moves = price[:, 1:] / ops.maximum(price[:, :-1], 1e-12) - 1.0  # (B, H - 1)
    squared = ops.sum(ops.square(error * moves[:, :, None, None]), axis=1) * 1e4  # percent^2
    return ops.reshape(squared, (ops.shape(y_pred)[0], -1))


def expected_tracking_error(y_true, y_pred):
    """Per window ``(B,)`` [percent]: the mean over the fixed column's orders of the RMS tracking error each order's
    schedule implies (the square root of :func:`expected_squared_tracking_error`)."""
    return ops.mean(ops.sqrt(expected_squared_tracking_error(y_true, y_pred) + 1e-12), axis=1)


def _default_known_features() -> int:
    from lems.data.features import N_KNOWN_AHEAD

    return N_KNOWN_AHEAD


def _seasonal_volume_offset() -> int:
    """Position of the ``seasonal_volume`` channel counted from the end of ``X`` (the pipeline's layout)."""
    from lems.data.features import KNOWN_AHEAD_FEATURES

    return len(KNOWN_AHEAD_FEATURES) - KNOWN_AHEAD_FEATURES.index("seasonal_volume")


@register
class LargeExecutionModel(FixedBatchShapes, keras.Model):
    """Allocates a parent order over ``n_ahead`` bars for every order type, target and min duration.

    Args:
        lookback: bars of history before the origin in ``X``.
        n_ahead: horizon H in bars.
        hidden_size: width of the encoder (variable selection, TKAN, GRN, attention).
        hidden_rnn_layer: number of stacked TKAN layers.
        num_heads: attention heads.
        num_embedding: embedding width per input feature.
        max_scale_factor: bound on how far the tracking heads move the base curve (log-odds per step).
        fused_mlp_hidden_dim: width of the heads' shared first layer (default 64); the fused per-order MLP
            after it has half that width.
        n_known_features: number of known-ahead channels at the end of ``X`` (default: the pipeline's).
        kan_basis: "rbf" (fast, default) or "bspline" for the TKAN's KAN sub-layers.
        dropout: dropout rate in the GRNs.
        use_prior: start the VWAP order types from the static volume curve carried by the last known-ahead
            channel (``seasonal_share`` in lems.data.features) instead of a uniform curve.
        volume_forecast: start them from the dynamic volume forecast instead (needs ``use_prior`` and the
            pipeline's known-ahead channels; silently off otherwise), and give the encoder the volume surprise.
            Untrained, the forecast is the static curve.
        forecast_loss_weight: weight of the forecast's auxiliary loss (mean Kullback-Leibler divergence of the
            realised remaining-volume distribution from the forecast one, nats per decision), added to the
            training loss only (default 1.0: the same order as ``lem_loss``'s ~0.6-0.7).
        forecast_context: let the forecast's level read the encoder state and calendar of the bar, not only the
            exponentially weighted volume surprises.
        tracking_loss_weight: weight of :func:`expected_tracking_error` (percent, the units of ``lem_loss``'s
            tracking terms), added to the compiled loss in training only (evaluation losses stay the compiled loss).
            A low-noise target for the fixed-duration schedule: the realised cumulative volume shares, weighted
            by the squared price moves. 0 turns it off.
        tracking_loss_pooling: "batch" (default): the RMS over the batch (an estimate of the spread, the std of the
            tracking error: weighs the windows with the largest errors most; chosen on the validation spread of
            hourly and minute crypto, benchmarks/results/real_data/real_data_*.md); "window": the mean over windows of
            each window's RMS estimate (a mean absolute tracking error).
        train_columns: number of flexible (min-duration) columns scored per training step. ``None`` (default):
            all ``H`` below ``SAMPLE_COLUMNS_MIN_HORIZON`` (64) bars, ``DEFAULT_TRAIN_COLUMNS`` (32) from there on.
            With ``K < H`` a training step computes and scores a stratified sample of ``K`` flexible columns (one
            per stratum of ``H / K`` consecutive columns, chosen from the batch's lookback) plus the fixed column,
            weighted by stratum size: an unbiased estimate of the full loss whose memory and time no longer grow
            with ``H * H`` (:meth:`sample_columns`). Only in training steps whose compiled loss is ``lem_loss`` or a
            :class:`lems.loss.CostAwareLemLoss` (with no metrics or lems' metrics only); evaluation, prediction and
            the live session always compute all ``H + 1`` columns.
        flexible_prior: "rule" (default): the flexible columns start from the classical
            :class:`lems.baselines.FlexibleRule` (a soft trigger with learnable thresholds, see
            :class:`lems.layers.AllocationDecoder`), which training corrects; "none": from their base curve.
        symmetric_flexible: one flexible policy shared by buy and sell (mirrored state features), so that the
            flexible columns cannot bet on the training period's price drift (default True).
        rule_decay: the rule prior's threshold shrinks with the time left as ``((H - s) / H) ** rule_decay``
            (default ``RULE_DECAY`` = 0.5: square root of the time left; 0: constant).
        weight_average_span: Polyak averaging of the weights in :meth:`fit`, as a span [fraction of an epoch]
            (default ``WEIGHT_AVERAGE_SPAN`` = 0.25). The optimizer keeps an exponential moving average of the
            trainable weights (Keras' ``use_ema``) with momentum ``1 - 1 / (weight_average_span * steps per epoch)``
            and writes it into the model at every epoch end, so validation, ``EarlyStopping(restore_best_weights=
            True)`` and the last weights all see the averaged model, whose fixed-duration schedule wanders much
            less from epoch to epoch than the raw weights' (benchmarks/results/plain_fit). Applied when ``fit``
            first builds an optimizer that has no moving average of its own (an optimizer compiled with
            ``use_ema=True`` keeps its own settings); ``None`` turns it off.

    Call args:
        inputs: ``[X, min_rate, max_rate]`` (or ``X`` alone: no limits) with rates shaped ``(B, 1)``.

    Returns:
        Allocations ``(B, n_ahead, n_ahead + 1, 4, 2)``: non-negative, summing to one over steps, within the
        limits (docs/execution.md §2, §5).
    """

    def __init__(self, lookback: int, n_ahead: int, hidden_size: int = 200, hidden_rnn_layer: int = 2,
                 num_heads: int = 8, num_embedding: int = 20, max_scale_factor: float = 1.5,
                 fused_mlp_hidden_dim: int | None = None, n_known_features: int | None = None,
                 kan_basis: str = "rbf", dropout: float = 0.0, use_prior: bool = True, volume_forecast: bool = True,
                 forecast_loss_weight: float = 1.0, forecast_context: bool = True, tracking_loss_weight: float = 1.0,
                 tracking_loss_pooling: str = "batch", train_columns: int | None = None, flexible_prior: str = "rule",
                 symmetric_flexible: bool = True, rule_decay: float = RULE_DECAY,
                 weight_average_span: float | None = WEIGHT_AVERAGE_SPAN, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lookback = check_positive_int("lookback", lookback)
        self.n_ahead = check_positive_int("n_ahead", n_ahead)
        if self.n_ahead < 2:
            raise ValueError("n_ahead must be at least 2 bars")
        self.hidden_size = check_positive_int("hidden_size", hidden_size)
        self.hidden_rnn_layer = check_positive_int("hidden_rnn_layer", hidden_rnn_layer)
        self.num_heads = check_positive_int("num_heads", num_heads)
        self.num_embedding = check_positive_int("num_embedding", num_embedding)
        self.max_scale_factor = float(max_scale_factor)
        self.fused_mlp_hidden_dim = fused_mlp_hidden_dim
        self.n_known_features = _default_known_features() if n_known_features is None else int(n_known_features)
        self.kan_basis = kan_basis
        self.dropout = float(dropout)
        self.use_prior = bool(use_prior) and self.n_known_features > 0
        self.volume_forecast = (bool(volume_forecast) and self.use_prior
                                and self.n_known_features == _default_known_features())
        self.forecast_loss_weight = float(forecast_loss_weight)
        self.forecast_context = bool(forecast_context)
        if not (np.isfinite(tracking_loss_weight) and tracking_loss_weight >= 0):
            raise ValueError(f"tracking_loss_weight must be a finite number >= 0, got {tracking_loss_weight!r}")
        self.tracking_loss_weight = float(tracking_loss_weight)
        if tracking_loss_pooling not in ("window", "batch"):
            raise ValueError(f"tracking_loss_pooling must be 'window' or 'batch', got {tracking_loss_pooling!r}")
        self.tracking_loss_pooling = tracking_loss_pooling
        self.train_columns = None if train_columns is None else check_positive_int("train_columns", train_columns)
        head_dim = check_positive_int("fused_mlp_hidden_dim", fused_mlp_hidden_dim or 64)
        self.flexible_prior = flexible_prior
        self.symmetric_flexible = bool(symmetric_flexible)
        self.rule_decay = float(rule_decay)
        span = weight_average_span
        if span is not None and not (np.isfinite(span) and 0 < span <= 1):
            raise ValueError(f"weight_average_span must be in (0, 1] epochs (or None), got {span!r}")
        self.weight_average_span = None if span is None else float(span)

        self.embedding = EmbeddingLayer(self.num_embedding, name="embedding")
        self.variable_selection = VariableSelectionNetwork(self.hidden_size, name="variable_selection")
        if kan_basis not in ("rbf", "bspline"):
            raise ValueError(f"kan_basis must be 'rbf' or 'bspline', got {kan_basis!r}")
        sub_kans = [{"basis": kan_basis}, {"basis": kan_basis}]
        self.rnn_layers = [TKAN(self.hidden_size, sub_kan_configs=sub_kans, return_sequences=True, name=f"tkan_{i}")
                           for i in range(self.hidden_rnn_layer)]
        self.rnn_gate = Gate(self.hidden_size, name="rnn_gate")
        self.rnn_norm = AddAndNorm(name="rnn_norm")
        self.grn = GRN(self.hidden_size, dropout=self.dropout, name="grn")
        self.attention = keras.layers.MultiHeadAttention(
            self.num_heads, key_dim=max(self.hidden_size // self.num_heads, 1), name="attention")
        self.attention_gate = Gate(self.hidden_size, name="attention_gate")
        self.attention_norm = AddAndNorm(name="attention_norm")
        self.decoder = AllocationDecoder(self.n_ahead, hidden_dim=head_dim, head_hidden_dims=(max(head_dim // 2, 1),),
                                         max_scale_factor=self.max_scale_factor, volume_forecast=self.volume_forecast,
                                         forecast_loss_weight=self.forecast_loss_weight,
                                         forecast_context=self.forecast_context,
                                         flexible_prior=self.flexible_prior,
                                         symmetric_flexible=self.symmetric_flexible, rule_decay=self.rule_decay,
                                         name="decoder")

    @property
    def window_length(self) -> int:
        """Length of ``X``: ``lookback + n_ahead - 1`` bars."""
        return self.lookback + self.n_ahead - 1

    def _split_inputs(self, inputs):
        if isinstance(inputs, (list, tuple)):
            if len(inputs) != 3:
                raise ValueError("inputs must be [X, min_rate, max_rate]")
            x, min_rate, max_rate = inputs
        else:
            x = inputs
            min_rate = ops.zeros((ops.shape(x)[0], 1), x.dtype)
            max_rate = ops.ones((ops.shape(x)[0], 1), x.dtype)
        if x.shape[1] is not None and x.shape[1] != self.window_length:
            raise ValueError(f"X must have lookback + n_ahead - 1 = {self.window_length} positions, got {x.shape[1]}")
        return x, min_rate, max_rate

    def volume_surprise(self, x):
        """``(B, W)`` log volume relative to the causal seasonal expectation of each position (an observed value:
        ``log((V + d) / (S + d))`` from the ``log_volume`` and ``seasonal_volume`` channels)."""
        return x[..., VOLUME_CHANNEL] - x[..., x.shape[-1] - _seasonal_volume_offset()]

    def encode(self, x, training=None):
        """Causal encoder states at the H decision positions ``lookback - 1 .. lookback + H - 2``."""
        horizon, length = self.n_ahead, self.window_length
        if self.volume_forecast:
            x = ops.concatenate([x, self.volume_surprise(x)[..., None]], axis=-1)
        h = self.variable_selection(self.embedding(x))
        selected = h
        for rnn in self.rnn_layers:
            h = rnn(h)
        h = self.rnn_norm([self.rnn_gate(h), selected])
        h = self.grn(h, training=training)
        query = h[:, length - horizon:]
        mask = np.tril(np.ones((length, length), dtype=bool))[length - horizon:]
        mask = ops.broadcast_to(ops.convert_to_tensor(mask), (ops.shape(x)[0], horizon, length))
        attended = self.attention(query, h, h, attention_mask=mask, training=training)
        return self.attention_norm([self.attention_gate(attended), query])

    def decoder_inputs(self, x, training=None):
        """What the decoder reads, from a window ``X``: ``(context, returns, log_volumes, prior, volume)``.

        ``context`` ``(B, H, D + K)``: encoder row ``s`` (bars ``<= t0 + s - 1``) and the known-ahead features of
        bar ``s``; ``returns`` / ``log_volumes`` ``(B, H - 1)``: observed channels of the horizon bars (read by
        the recursion only once closed); ``prior`` ``(B, H - 1)`` the static curve's log-odds, or None;
        ``volume``: ``(surprise (B, W), seasonal (B, H - 1))`` for the volume forecast (surprise of every
        position, read by decision ``s`` up to position ``lookback + s - 1``; the seasonal expected volume of
        bars ``0 .. H-2`` relative to the lookback mean), or None.
        """
        x = ops.cast(x, self.compute_dtype)
        lookback, k = self.lookback, self.n_known_features
        encoded = self.encode(x, training=training)  # (B, H, D), row s: bars <= t0 + s - 1
        known_next = x[:, lookback:, x.shape[-1] - k:] if k else x[:, lookback:, :0]  # bars t0 .. t0+H-2
        known_next = ops.concatenate([known_next, ops.zeros_like(known_next[:, :1])], axis=1)
        context = ops.concatenate([encoded, known_next], axis=-1)
        realised = x[:, lookback:]
        prior = realised[..., x.shape[-1] - 1] if self.use_prior else None  # last, known-ahead channel
        volume = None
        if self.volume_forecast:
            seasonal = relative_volume(realised[..., x.shape[-1] - _seasonal_volume_offset()])
            volume = (self.volume_surprise(x), seasonal)
        return context, realised[..., RETURN_CHANNEL], realised[..., VOLUME_CHANNEL], prior, volume

    @property
    def n_sampled_columns(self) -> int | None:
        """Flexible columns a training step scores when it samples them (``K < H``), else None (all of them)."""
        k = self.train_columns
        if k is None:
            k = DEFAULT_TRAIN_COLUMNS if self.n_ahead >= SAMPLE_COLUMNS_MIN_HORIZON else self.n_ahead
        return k if k < self.n_ahead else None

    def sample_columns(self, x):
        """The flexible columns a training step on the windows ``X`` scores: a :class:`lems.execution.SeedColumns`.

        Stratified: the ``H`` flexible columns are cut into ``K`` strata of consecutive min durations and one column
        is drawn in each, plus the fixed column ``H`` (weight 1); each drawn column weighs its stratum's size, so the
        column-weighted loss is an unbiased estimate of the full one. The draw is a deterministic function of the
        batch's lookback (fractional parts of fixed random projections of ``X[:, :lookback]``): the same batch
        always gets the same columns, on every backend and inside compiled steps, with no random state.

        Args:
            x: ``(B, W, F)`` windows, or ``[X, min_rate, max_rate]``.

        Returns:
            ``SeedColumns(index (K + 1,) int32 tensor, weight (K + 1,) float32 numpy)``; None when all columns are
            scored (:attr:`n_sampled_columns`).
        """
        from lems.execution import SeedColumns

        k = self.n_sampled_columns
        if k is None:
            return None
        x = self._split_inputs(x)[0] if isinstance(x, (list, tuple)) else x
        horizon = self.n_ahead
        bounds = (np.arange(k + 1) * horizon) // k
        sizes = np.diff(bounds)
        seen = ops.cast(x[:, : self.lookback], "float32")
        projection = np.random.default_rng(horizon).standard_normal((k,) + tuple(seen.shape[1:])).astype(np.float32)
        z = ops.einsum("blf,klf->k", seen, projection)
        offset = ops.minimum(ops.cast(ops.floor((z - ops.floor(z)) * sizes.astype(np.float32)), "int32"),
                             (sizes - 1).astype(np.int32))
        index = ops.concatenate([offset + bounds[:-1].astype(np.int32), np.array([horizon], np.int32)])
        return SeedColumns(index, np.concatenate([sizes, [1]]).astype(np.float32))

    def _scores_sampled_columns(self) -> bool:
        """Whether a training step may compute a compact layout: columns to sample, and a compiled loss (and
        metrics) that read compact layouts."""
        from lems.loss import CostAwareLemLoss, lem_loss

        if self.n_sampled_columns is None:
            return False
        loss = getattr(self, "loss", None)
        if not (loss is lem_loss or loss == "lem_loss" or isinstance(loss, CostAwareLemLoss)):
            return False
        metrics = getattr(getattr(self, "_compile_metrics", None), "_user_metrics", None) or []
        return all(getattr(m, "__module__", None) == "lems.metrics" for m in metrics)

    def call(self, inputs, training=None):
        x, min_rate, max_rate = self._split_inputs(inputs)
        columns = self.sample_columns(x) if training and self._scores_sampled_columns() else None
        context, returns, log_volumes, prior, volume = self.decoder_inputs(x, training=training)
        decoder_inputs = [context, returns, log_volumes, min_rate, max_rate]
        extra = ([prior] if prior is not None else []) + (list(volume) if volume is not None else [])
        return self.decoder(decoder_inputs + extra, training=training,
                            columns=None if columns is None else columns.index)

    def _compact_columns(self, x, y_pred):
        """The :func:`lems.execution.seed_columns` scope of a training step's output (a no-op on the full layout)."""
        import contextlib

        from lems.execution import seed_columns

        if y_pred is None or y_pred.shape[2] == self.n_ahead + 1:
            return contextlib.nullcontext()
        return seed_columns(*self.sample_columns(x))

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Keras' compiled metrics, on sampled columns when the training step computed a compact layout."""
        with self._compact_columns(x, y_pred):
            return super().compute_metrics(x, y, y_pred, sample_weight)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """The compiled loss (and ``add_loss`` terms), plus ``tracking_loss_weight`` times
        :func:`expected_tracking_error` in training; on the sampled columns' compact layout when the step computed
        one (:meth:`sample_columns`)."""
        with self._compact_columns(x, y_pred):
            loss = super().compute_loss(x, y, y_pred, sample_weight, training=training)
        if not training or self.tracking_loss_weight <= 0 or y is None or y_pred is None:
            return loss
        batch = self.tracking_loss_pooling == "batch"
        per_window = (ops.mean(expected_squared_tracking_error(y, y_pred), axis=1) if batch
                      else expected_tracking_error(y, y_pred))
        if sample_weight is None:
            extra = ops.mean(per_window)
        else:
            weight = ops.reshape(ops.cast(sample_weight, per_window.dtype), (-1,))
            extra = ops.sum(per_window * weight) / ops.maximum(ops.sum(weight), 1e-12)
        extra = self.tracking_loss_weight * (ops.sqrt(extra + 1e-12) if batch else extra)
        return extra if loss is None else loss + extra

    def forecast_shares(self, x):
        """The VWAP order types' starting point at decisions ``0 .. H-2``: the share of what remains ``(B, H - 1)``
        that the volume forecast (or, without one, the static curve; without a prior, the uniform schedule)
        assigns to the bar, from the window ``X`` (decision ``s`` reads what is known at the open of bar ``s``).
        Used alone as a schedule it is the dynamic VWAP (the last bar takes what is left)."""
        x = ops.cast(x, self.compute_dtype)
        context, _, _, prior, volume = self.decoder_inputs(x)
        if prior is None:
            left = self.n_ahead - np.arange(self.n_ahead - 1, dtype=np.float32)
            return ops.zeros_like(x[:, : self.n_ahead - 1, 0]) + ops.convert_to_tensor(1.0 / left, x.dtype)
        return ops.sigmoid(self.decoder.start_logits(context, prior, volume))

    def forecast_divergence(self, x):
        """The forecast's auxiliary loss [nats] on windows ``X`` (realised horizon volumes read from ``X``)."""
        x = ops.cast(x, self.compute_dtype)
        context, _, log_volumes, _, volume = self.decoder_inputs(x)
        return self.decoder.forecast_divergence(context, log_volumes, volume)

    def next_share(self, inputs):
        """The live step: proposed shares of what remains at one decision, after the actual fills.

        Args:
            inputs: ``[X (B, W, F), step (B, 1), fills (B, H - 1)]``: the window as known at the open of bar
                ``step`` (later positions are never read), the decision's bar of the horizon, and the actual fills
                (fractions of the order) of the closed bars.

        Returns:
            ``(B, 4 * 2, H + 1)`` shares in ``(0, 1)`` per order (order type x target, min-duration column), before
            the limits (:meth:`lems.layers.decoder.AllocationDecoder.next_share`).
        """
        x, step, fills = inputs
        context, returns, log_volumes, prior, volume = self.decoder_inputs(x)  # exactly what call() reads
        return self.decoder.next_share(context, returns, log_volumes, prior, step, fills, volume)

    def compute_output_shape(self, input_shape):
        batch = input_shape[0][0] if isinstance(input_shape, (list, tuple)) and isinstance(
            input_shape[0], (list, tuple)) else input_shape[0]
        return (batch, self.n_ahead, self.n_ahead + 1, 4, 2)

    def build(self, input_shape):
        """Build every sub-layer from shapes (no eager forward pass: fast, and the same on all backends)."""
        x_shape = input_shape[0] if isinstance(input_shape[0], (list, tuple)) else input_shape
        self.input_channels = int(x_shape[-1])  # channels of X (with the market channels of a cross-asset model)
        n_features = x_shape[-1] + int(self.volume_forecast)  # + the volume surprise channel
        length, horizon, hidden = self.window_length, self.n_ahead, self.hidden_size
        sequence = (None, length, hidden)
        query = (None, horizon, hidden)
        self.embedding.build((None, length, n_features))
        self.variable_selection.build((None, length, n_features, self.num_embedding))
        for rnn in self.rnn_layers:
            rnn.build(sequence)
        self.rnn_gate.build(sequence)
        self.rnn_norm.build([sequence, sequence])
        self.grn.build(sequence)
        self.attention.build(query, sequence, sequence)
        self.attention_gate.build(query)
        self.attention_norm.build([query, query])
        self.decoder.build([(None, horizon, hidden + self.n_known_features), (None, horizon - 1),
                            (None, horizon - 1), (None, 1), (None, 1)] + [(None, horizon - 1)] * self.use_prior
                           + [(None, length), (None, horizon - 1)] * self.volume_forecast)
        self.built = True

    def get_config(self):
        config = super().get_config()
        config.update({
            "lookback": self.lookback, "n_ahead": self.n_ahead, "hidden_size": self.hidden_size,
            "hidden_rnn_layer": self.hidden_rnn_layer, "num_heads": self.num_heads,
            "num_embedding": self.num_embedding, "max_scale_factor": self.max_scale_factor,
            "fused_mlp_hidden_dim": self.fused_mlp_hidden_dim, "n_known_features": self.n_known_features,
            "kan_basis": self.kan_basis, "dropout": self.dropout, "use_prior": self.use_prior,
            "volume_forecast": self.volume_forecast, "forecast_loss_weight": self.forecast_loss_weight,
            "forecast_context": self.forecast_context, "tracking_loss_weight": self.tracking_loss_weight,
            "tracking_loss_pooling": self.tracking_loss_pooling, "train_columns": self.train_columns,
            "flexible_prior": self.flexible_prior, "symmetric_flexible": self.symmetric_flexible,
            "rule_decay": self.rule_decay, "weight_average_span": self.weight_average_span,
        })
        return config

    def fit(self, x=None, y=None, batch_size=None, **kwargs):
        """``keras.Model.fit`` (numpy data in fixed-shape batches), with the model's weight averaging
        (``weight_average_span``) switched on in an optimizer that has none."""
        steps = epoch_steps(x, batch_size, kwargs.get("steps_per_epoch"), kwargs.get("validation_split"))
        self._start_weight_averaging(steps)
        try:
            return super().fit(x, y, batch_size=batch_size, **kwargs)
        finally:
            self._unshare_averaged_weights()

    def _unshare_averaged_weights(self) -> None:
        """Give each weight its own buffer after Keras wrote the optimizer's averages into the model at the end of
        ``fit``: on JAX the weight and its average then share one array, which the next ``predict`` donates, so a
        later ``fit`` would fail on a deleted buffer."""
        optimizer = getattr(self, "optimizer", None)
        if isinstance(optimizer, keras.optimizers.Optimizer) and optimizer.use_ema and optimizer.built:
            for variable in self.trainable_variables:
                variable.assign(ops.copy(variable.value))

    def _start_weight_averaging(self, steps_per_epoch: int | None) -> None:
        """Give a not yet built optimizer without EMA the model's moving average of the weights, written into the
        model every ``steps_per_epoch`` steps (at the end of ``fit`` only when unknown)."""
        optimizer = getattr(self, "optimizer", None)
        if (self.weight_average_span is None or not isinstance(optimizer, keras.optimizers.Optimizer)
                or optimizer.use_ema or optimizer.built):
            return
        optimizer.use_ema = True
        optimizer.ema_momentum = averaging_momentum(self.weight_average_span, steps_per_epoch)
        optimizer.ema_overwrite_frequency = steps_per_epoch

    def flexible_weight_masks(self) -> list[np.ndarray | None]:
        """Per entry of :meth:`get_weights`: a boolean mask of the entries only the flexible columns read
        (:meth:`lems.layers.AllocationDecoder.flexible_masks`), or None where none does."""
        masks = self.decoder.flexible_masks()
        return [masks.get(variable.path) for variable in self.weights]

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Rebuild from :meth:`get_config`; a config saved without ``flexible_prior`` /
        ``symmetric_flexible`` (lems 0.2.0.dev0 before they existed) gets the decoder it was trained with (no prior, one flexible policy per side)."""
        config = dict(config)
        config.setdefault("flexible_prior", "none")
        config.setdefault("symmetric_flexible", False)
        config.setdefault("rule_decay", 0.0)
        return cls(**config)

    def compile_from_config(self, config):
        """Recompile a loaded model, with the loading backend's own ``jit_compile`` default.

        Keras saves the *resolved* ``jit_compile``: a model compiled on JAX with the default ``"auto"`` is saved
        with ``True``, which on PyTorch means ``torch.compile`` (about two minutes before the first prediction of
        even a tiny model, then recompilations). Compilation is a property of the backend that runs the model, not
        of the model, so loading resets it to ``"auto"``; call :meth:`compile` again to choose otherwise.
        """
        config = dict(config or {})
        if "jit_compile" in config:
            config["jit_compile"] = "auto"
        super().compile_from_config(config)


def epoch_steps(x: Any, batch_size: int | None, steps_per_epoch: int | None = None,
                validation_split: float | None = None) -> int | None:
    """Optimizer steps per epoch of ``fit(x, batch_size=..., ...)``, or None when the data does not say.

    Args:
        x: What ``fit`` trains on: numpy data (then ``batch_size``, default 32, and ``validation_split`` apply) or
            a dataset with a length (``keras.utils.PyDataset``, a finite ``tf.data`` dataset, a torch loader).
        batch_size: Rows per step for numpy data.
        steps_per_epoch: ``fit``'s own argument: wins when given.
        validation_split: Fraction of numpy rows Keras holds out for validation.
    """
    if steps_per_epoch:
        return int(steps_per_epoch)
    if is_array_data(x):
        rows = int(num_rows(x) * (1.0 - float(validation_split or 0.0)))
        return max(1, -(-rows // int(batch_size or 32)))
    try:
        return max(1, len(x))
    except (TypeError, ValueError):  # a generator, or a tf.data dataset of unknown length
        return None


def averaging_momentum(span: float, steps_per_epoch: int | None) -> float:
    """EMA momentum of a weight average spanning ``span`` of an epoch of ``steps_per_epoch`` steps (in
    ``[0, 0.999]``; :data:`FALLBACK_EMA_MOMENTUM` when the steps are unknown)."""
    if not steps_per_epoch:
        return FALLBACK_EMA_MOMENTUM
    return float(min(max(1.0 - 1.0 / (span * steps_per_epoch), 0.0), 0.999))


__all__ = ["DEFAULT_TRAIN_COLUMNS", "RETURN_CHANNEL", "SAMPLE_COLUMNS_MIN_HORIZON", "VOLUME_CHANNEL",
           "WEIGHT_AVERAGE_SPAN", "LargeExecutionModel", "averaging_momentum", "epoch_steps",
           "expected_squared_tracking_error", "expected_tracking_error"]
