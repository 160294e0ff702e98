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
order (positive, summing to one over steps) is the starting point; the fused heads scale it. The proposal
is then mapped into the exact feasible interval of EXECUTION.md §2 by :func:`lems.execution.allocate_step`,
so every output obeys the trading limits by construction.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from lems.execution import ORDER_TYPES, TARGETS, allocate_step, seed_min_durations
from lems.layers.constraints import EqualInitializer, FusedGlorotUniform, PositiveSumToOneConstraint
from lems.layers.fused import FusedMLP
from lems.layers.registry import check_positive_int, register

#: Number of per-order state features fed to the heads at each step.
N_STATE = 6
_SHARE_EPS = 1e-6
_PRICE_EPS = 1e-9


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
        activation: activation of the heads.

    Call args:
        inputs: list ``[context, returns, log_volumes, min_rate, max_rate]``:
            ``context`` ``(B, H, Dc)``: row ``s`` may only depend on what is known at the open of bar ``s``;
            ``returns`` ``(B, H - 1)``: realised VWAP-to-VWAP returns of bars ``0 .. H-2`` of the horizon in
            units of lookback volatility (read at step ``s`` only for bars ``< s``);
            ``log_volumes`` ``(B, H - 1)``: their log volumes relative to the lookback mean;
            ``min_rate``, ``max_rate`` ``(B, 1)``: limits in fractions of the order per bar.

    Returns:
        Allocations ``(B, H, H + 1, 4, 2)`` (step × column × order type × target).
    """

    def __init__(self, n_ahead: int, hidden_dim: int = 64, head_hidden_dims=(32,), max_scale_factor: float = 1.5,
                 activation: str = "gelu", **kwargs) -> None:
        super().__init__(**kwargs)
        self.n_ahead = check_positive_int("n_ahead", n_ahead)
        self.hidden_dim = check_positive_int("hidden_dim", hidden_dim)
        self.head_hidden_dims = tuple(int(h) for h in head_hidden_dims)
        if not max_scale_factor > 0:
            raise ValueError(f"`max_scale_factor` must be > 0, got {max_scale_factor!r}.")
        self.max_scale_factor = float(max_scale_factor)
        self.activation = activation
        self.n_models = len(ORDER_TYPES) * len(TARGETS)
        self.n_columns = self.n_ahead + 1
        self.context_projection = keras.layers.Dense(self.hidden_dim, name="context_projection")
        self.head = FusedMLP(hidden_dims=list(self.head_hidden_dims), output_dim=1, n_models=self.n_models,
                             n_fused=self.n_columns, activation=activation, name="head")

    def build(self, input_shape):
        context_shape = input_shape[0]
        horizon, m, c = self.n_ahead, self.n_models, self.n_columns
        self.context_projection.build(context_shape)
        self.step_embedding = self.add_weight(name="step_embedding", shape=(horizon, self.hidden_dim),
                                              initializer="zeros")
        self.state_kernel = self.add_weight(name="state_kernel", shape=(m, c, N_STATE, self.hidden_dim),
                                            initializer=FusedGlorotUniform())
        self.state_bias = self.add_weight(name="state_bias", shape=(m, c, self.hidden_dim), initializer="zeros")
        self.base_curve = self.add_weight(name="base_curve", shape=(m, c, horizon),
                                          initializer=EqualInitializer(axis=-1),
                                          constraint=PositiveSumToOneConstraint(axis=-1))
        self.head.build((None, m, c, self.hidden_dim))
        self.built = True

    def _constants(self, dtype):
        horizon, c = self.n_ahead, self.n_columns
        side = np.array([1.0 if side == "buy" else -1.0 for side, _ in ORDER_TYPES for _ in TARGETS])
        is_vwap = np.array([1.0 if bench == "vwap" else 0.0 for _, bench in ORDER_TYPES for _ in TARGETS])
        tracking = np.zeros(c)
        tracking[-1] = 1.0
        as_tensor = lambda a: ops.convert_to_tensor(np.asarray(a, np.float32), dtype)  # noqa: E731
        return {
            "side": as_tensor(side.reshape(1, -1, 1)),
            "is_vwap": as_tensor(is_vwap.reshape(1, -1, 1)),
            "tracking": as_tensor(tracking.reshape(1, 1, c)),
            "min_duration": seed_min_durations(horizon).reshape(1, 1, c),
        }

    def _base_logits(self):
        """Log-odds of the base curve's share of what remains, per order and step: ``(M, C, H)``."""
        base = ops.maximum(self.base_curve, _SHARE_EPS)
        tail = ops.flip(ops.cumsum(ops.flip(base, axis=-1), axis=-1), axis=-1)
        share = ops.clip(base / tail, _SHARE_EPS, 1.0 - _SHARE_EPS)
        base_remaining = tail - base  # base curve's remaining fraction after each step
        return ops.log(share) - ops.log(1.0 - share), base_remaining

    def call(self, inputs):
        context, returns, log_volumes, min_rate, max_rate = inputs
        horizon = self.n_ahead
        dtype = context.dtype
        k = self._constants(dtype)
        batch = ops.shape(context)[0]
        projected = self.context_projection(context) + self.step_embedding[None]  # (B, H, hidden)
        base_logits, base_remaining = self._base_logits()
        min_rate = ops.reshape(ops.cast(min_rate, dtype), (-1, 1, 1))
        max_rate = ops.reshape(ops.cast(max_rate, dtype), (-1, 1, 1))
        # Cumulative log price of each horizon bar relative to the reference (units of lookback volatility).
        zeros = ops.zeros((batch, 1), dtype)
        log_price = ops.cumsum(ops.cast(returns, dtype), axis=1)
        volume = ops.exp(ops.clip(ops.cast(log_volumes, dtype), -20.0, 20.0))

        remaining = ops.ones((batch, self.n_models, self.n_columns), dtype)
        traded_price = ops.zeros_like(remaining)  # sum_u a_u z_u
        market_vz, market_v, market_z = zeros, zeros, zeros
        last = zeros
        allocations = []
        for s in range(horizon):
            bars_left = float(horizon - s)
            count = float(max(s, 1))
            vwap = market_vz / ops.maximum(market_v, _PRICE_EPS)
            twap = market_z / count
            running = k["is_vwap"] * vwap[:, :, None] + (1.0 - k["is_vwap"]) * twap[:, :, None]  # (B, M, 1)
            traded = 1.0 - remaining
            own_price = ops.where(traded > _PRICE_EPS, traded_price / ops.maximum(traded, _PRICE_EPS),
                                  ops.zeros_like(traded) + last[:, :, None])
            to_min = np.maximum(k["min_duration"] - s, 0.0) / horizon
            state = ops.stack([
                remaining,
                remaining - base_remaining[None, :, :, s],
                ops.zeros_like(remaining) + ops.convert_to_tensor(to_min.astype(np.float32), dtype),
                k["side"] * (last[:, :, None] - running) + ops.zeros_like(remaining),
                k["side"] * (own_price - running),
                ops.zeros_like(remaining) + bars_left / horizon,
            ], axis=-1)  # (B, M, C, N_STATE)
            hidden = (ops.einsum("bmcn,mcnh->bmch", state, self.state_kernel) + self.state_bias[None]
                      + projected[:, s][:, None, None, :])
            hidden = keras.activations.get(self.activation)(hidden)
            raw = ops.squeeze(self.head(hidden), axis=-1)  # (B, M, C)
            bounded = self.max_scale_factor * ops.tanh(raw / self.max_scale_factor)
            adjust = k["tracking"] * bounded + (1.0 - k["tracking"]) * raw
            share = ops.sigmoid(base_logits[None, :, :, s] + adjust)
            a = allocate_step(share * remaining, remaining, bars_left, min_rate, max_rate)
            allocations.append(a)
            remaining = remaining - a
            if s < horizon - 1:  # bar s closes: its price and volume become known for step s + 1
                z = log_price[:, s:s + 1]
                v = volume[:, s:s + 1]
                traded_price = traded_price + a * z[:, :, None]
                market_vz, market_v, market_z, last = market_vz + v * z, market_v + v, market_z + z, z
        out = ops.stack(allocations, axis=1)  # (B, H, M, C)
        out = ops.reshape(out, (-1, horizon, len(ORDER_TYPES), len(TARGETS), self.n_columns))
        return ops.transpose(out, (0, 1, 4, 2, 3))

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.n_ahead, self.n_columns, len(ORDER_TYPES), len(TARGETS))

    def get_config(self):
        config = super().get_config()
        config.update({"n_ahead": self.n_ahead, "hidden_dim": self.hidden_dim,
                       "head_hidden_dims": list(self.head_hidden_dims), "max_scale_factor": self.max_scale_factor,
                       "activation": self.activation})
        return config
