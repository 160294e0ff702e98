"""The seed's training loss, ``lem_loss`` (EXECUTION.md §6), built on :mod:`lems.execution`."""

from __future__ import annotations

import keras
from keras import ops

from lems.execution import SMOOTH_WINDOW_SCALE, seed_outcome

#: Order-type indices on the seed layout's axis 3.
_BUY, _SELL = [0, 1], [2, 3]


def seed_objective_terms(y_true, y_pred, *, smooth_scale: float = SMOOTH_WINDOW_SCALE):
    """The two families of terms of the seed loss, in percent, before the softplus.

    Args:
        y_true: compact ``(B, H, 2)`` or tiled ``(B, H, H+1, 4, 2)`` targets.
        y_pred: allocations ``(B, H, H+1, 4, 2)``.
        smooth_scale: ramp of the smooth benchmark window (fraction of the order).

    Returns:
        ``(flexible, tracking)``: ``diff_buy - diff_sell`` of every flexible column ``(B, H, 2, 2)`` (benchmark ×
        target; negative is good) and ``|diff|`` of the fixed column ``(B, 4, 2)`` (order type × target).
    """
    horizon = y_pred.shape[1]
    diff = seed_outcome(y_pred, y_true, smooth=True, scale=smooth_scale).diff * 100.0  # (B, H+1, 4, 2) percent
    flexible = ops.take(diff[:, :horizon], _BUY, axis=2) - ops.take(diff[:, :horizon], _SELL, axis=2)
    tracking = ops.abs(diff[:, horizon])
    return flexible, tracking


@keras.saving.register_keras_serializable(package="lems")
def lem_loss(y_true, y_pred):
    """Seed loss: mean of ``softplus(diff_buy - diff_sell)`` over flexible columns and ``softplus(|diff|)`` over
    the fixed column's order types and targets (percent units; EXECUTION.md §6).

    Rewards buying below and selling above the benchmark in the flexible columns, and tracking the benchmark
    in the fixed column (a perfect volume forecast scores strictly better than the uniform schedule there).

    Returns:
        Per-sample loss ``(B,)``.
    """
    flexible, tracking = seed_objective_terms(y_true, y_pred)
    batch = ops.shape(y_pred)[0]
    terms = ops.concatenate([ops.reshape(ops.softplus(flexible), (batch, -1)),
                             ops.reshape(ops.softplus(tracking), (batch, -1))], axis=1)
    return ops.mean(terms, axis=1)


__all__ = ["lem_loss", "seed_objective_terms"]
