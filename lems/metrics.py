"""The seed's ten metrics (docs/execution.md §6), generated from one definition on :mod:`lems.execution`.

All values are in percent. ``*_avg_imp``: mean improvement over the flexible columns (positive = better).
``{buy,sell}_twap_avg_risk``: mean ``|diff|`` vs TWAP over the flexible columns. ``{buy,sell}_vwap_avg_risk``:
mean adverse deviation vs VWAP over the flexible columns relative to the naive uniform schedule's, as a
percentage change (negative = less adverse risk than naive). ``unsigned_vwap_avg_risk``: mean ``|diff|`` vs
VWAP of the fixed column, both sides, relative to naive (percentage change); ``unsigned_twap_avg_risk``: mean
``|diff|`` vs TWAP of the fixed column, both sides, in percent.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from lems.execution import ORDER_TYPE_NAMES, column_weights, seed_outcome, uniform_allocations

_EPS = 1e-12


def _diffs(y_true, y_pred, naive: bool = False):
    """Signed differences in percent ``(B, H+1, 4, 2)`` of the model (or of the naive uniform schedule)."""
    if naive:
        horizon = y_pred.shape[1]
        y_pred = ops.zeros_like(y_pred) + ops.cast(uniform_allocations(horizon), y_pred.dtype)
    return seed_outcome(y_pred, y_true).diff * 100.0


def _columns(diff, fixed: bool):
    """The fixed column ``(B, 4, 2)`` (the last one) or the flexible ones ``(B, C - 1, 4, 2)``."""
    return diff[:, -1] if fixed else diff[:, :-1]


def _mean(values, weights):
    """Mean of ``values``; flexible columns (axis 1) weighted by a compact layout's ``weights`` (None: plain)."""
    if weights is None:
        return ops.mean(values)
    rest = int(np.prod(values.shape[2:]))
    per_column = ops.mean(ops.reshape(values, (-1, values.shape[1], rest)), axis=(0, 2))
    return ops.sum(per_column * weights[:-1]) / ops.sum(weights[:-1])


def _types(values, names):
    """Select order types by name along the order-type axis (axis -2)."""
    index = [ORDER_TYPE_NAMES.index(n) for n in names]
    return ops.take(values, index, axis=len(values.shape) - 2)


def _value(kind: str, side: str, bench: str, y_true, y_pred):
    sides = ["buy", "sell"] if side == "unsigned" else [side]
    names = [f"{s}_{bench}" for s in sides]
    fixed = side == "unsigned"
    weights = None if fixed else column_weights(ops, y_pred.shape[1], y_pred.shape[2], y_pred.dtype)
    diff = _types(_columns(_diffs(y_true, y_pred), fixed), names)
    if kind == "imp":
        return _mean(-diff if side == "buy" else diff, weights)
    if bench == "twap":
        return _mean(ops.abs(diff), weights)
    naive = _types(_columns(_diffs(y_true, y_pred, naive=True), fixed), names)
    if side == "unsigned":
        model_risk, naive_risk = ops.abs(diff), ops.abs(naive)
    else:
        sign = 1.0 if side == "buy" else -1.0
        model_risk, naive_risk = ops.relu(sign * diff), ops.relu(sign * naive)
    return (_mean(model_risk, weights) / (_mean(naive_risk, weights) + _EPS) - 1.0) * 100.0


def _make_metric(kind: str, side: str, bench: str):
    name = f"{side}_{bench}_avg_{kind}"

    def metric(y_true, y_pred):
        return _value(kind, side, bench, y_true, y_pred)

    metric.__name__ = metric.__qualname__ = name
    metric.__doc__ = f"Seed metric ``{name}`` in percent (see module docstring)."
    return keras.saving.register_keras_serializable(package="lems", name=name)(metric)


buy_vwap_avg_imp = _make_metric("imp", "buy", "vwap")
buy_twap_avg_imp = _make_metric("imp", "buy", "twap")
sell_vwap_avg_imp = _make_metric("imp", "sell", "vwap")
sell_twap_avg_imp = _make_metric("imp", "sell", "twap")
buy_vwap_avg_risk = _make_metric("risk", "buy", "vwap")
buy_twap_avg_risk = _make_metric("risk", "buy", "twap")
sell_vwap_avg_risk = _make_metric("risk", "sell", "vwap")
sell_twap_avg_risk = _make_metric("risk", "sell", "twap")
unsigned_vwap_avg_risk = _make_metric("risk", "unsigned", "vwap")
unsigned_twap_avg_risk = _make_metric("risk", "unsigned", "twap")

ALL_METRICS = [buy_vwap_avg_imp, buy_twap_avg_imp, sell_vwap_avg_imp, sell_twap_avg_imp, buy_vwap_avg_risk,
               buy_twap_avg_risk, sell_vwap_avg_risk, sell_twap_avg_risk, unsigned_vwap_avg_risk,
               unsigned_twap_avg_risk]

__all__ = [m.__name__ for m in ALL_METRICS] + ["ALL_METRICS"]
