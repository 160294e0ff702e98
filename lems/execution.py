"""Execution semantics: the one implementation of EXECUTION.md §2 and §4.

Everything that turns allocations into numbers (the loss, the metrics, the baselines, the backtest, the
reports and the live session) calls this module; nothing re-derives it.

The arithmetic is written once against an array namespace: ``keras.ops`` for backend tensors (JAX, PyTorch,
TensorFlow: loss and metrics, differentiable) and ``numpy`` when every input is a numpy array or a Python
number (backtests, in float64, exact). The two namespaces share the names used here.

Conventions (EXECUTION.md):

* Allocations ``a_s`` are fractions of the order (of its quantity or notional, per target) on a step axis.
* ``prices`` are bar VWAPs ``p_s`` (any positive scale, e.g. relative to a reference price), ``volumes``
  the bar volumes ``V_s`` (any non-negative scale; all ones for a TWAP benchmark).
* ``diff = P / B - 1``; improvement in bps: buy ``-diff * 1e4``, sell ``+diff * 1e4`` (positive is better).
* The seed's layout ``(batch, H, H + 1, 4, 2)`` is step × min-duration column × order type × target.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any, NamedTuple

import keras
import numpy as np

SIDES = ("buy", "sell")
TARGETS = ("quantity", "notional")
BENCHMARKS = ("vwap", "twap")
OBJECTIVES = ("beat", "track")
#: Order types of the seed layout's axis 3, in order.
ORDER_TYPES = (("buy", "vwap"), ("buy", "twap"), ("sell", "vwap"), ("sell", "twap"))
ORDER_TYPE_NAMES = tuple(f"{side}_{bench}" for side, bench in ORDER_TYPES)
_TARGET_ALIASES = {"quantity": "quantity", "volume": "quantity", "qty": "quantity", "notional": "notional"}

#: Default tolerance (fraction of the order) under which an allocation counts as "nothing traded".
WINDOW_TOL = 1e-6
#: Softness (fraction of the order still to trade) of the loss's straight-through benchmark window.
SMOOTH_WINDOW_SCALE = 5e-2
#: Slack (fraction of the order) allowed when checking feasibility ``H * max_rate >= 1``.
FEASIBILITY_SLACK = 1e-9


# --------------------------------------------------------------------------------------------------------
# Array namespace
# --------------------------------------------------------------------------------------------------------
def _is_numpy_like(x: Any) -> bool:
    return isinstance(x, (np.ndarray, np.generic, float, int, bool))


def array_namespace(*arrays: Any) -> types.ModuleType:
    """``numpy`` when every argument is a numpy array or Python number, else ``keras.ops``."""
    if all(_is_numpy_like(a) for a in arrays if a is not None):
        return np
    return keras.ops


def _step_index(ops, horizon: int, ndim: int, axis: int, dtype):
    """Step index 0..H-1 shaped to broadcast along ``axis`` of an ``ndim``-dimensional array."""
    shape = [1] * ndim
    shape[axis % ndim] = horizon
    return _cast_like(ops, np.arange(horizon).reshape(shape), dtype)


def _cast_like(ops, value, ref):
    """``value`` as an array of the floating dtype of ``ref`` (an array or a dtype)."""
    dtype = getattr(ref, "dtype", ref)
    if ops is np:
        return np.asarray(value, dtype=np.result_type(dtype, np.float32))
    return ops.cast(value, dtype)


# --------------------------------------------------------------------------------------------------------
# Order specification
# --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OrderSpec:
    """A validated parent order (EXECUTION.md §2).

    Attributes:
        side: "buy" or "sell".
        horizon: H, the number of bars within which the order must complete (bars, >= 1).
        target: "quantity" (allocations are fractions of the shares/coins) or "notional" (of the currency).
            "volume" is accepted as the seed's name for "quantity".
        benchmark: "vwap" or "twap".
        min_duration: d, the minimum benchmark window (bars, 1..H). Defaults to H (a fixed-duration order).
        objective: "track" (fixed duration, minimise tracking error; requires d == H) or "beat" (flexible
            duration, maximise improvement). Defaults to "track" when d == H, else "beat".
        min_rate: lower bound per bar (fraction of the order) while the order is not complete.
        max_rate: upper bound per bar (fraction of the order). Feasible only when ``H * max_rate >= 1``.

    Raises:
        ValueError: on any malformed or infeasible field, before any computation.
    """

    side: str
    horizon: int
    target: str = "quantity"
    benchmark: str = "vwap"
    min_duration: int | None = None
    objective: str | None = None
    min_rate: float = 0.0
    max_rate: float = 1.0

    def __post_init__(self) -> None:
        side = str(self.side).lower()
        if side not in SIDES:
            raise ValueError(f"side must be one of {SIDES}, got {self.side!r}")
        target = _TARGET_ALIASES.get(str(self.target).lower())
        if target is None:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        benchmark = str(self.benchmark).lower()
        if benchmark not in BENCHMARKS:
            raise ValueError(f"benchmark must be one of {BENCHMARKS}, got {self.benchmark!r}")
        if isinstance(self.horizon, bool) or int(self.horizon) != self.horizon or self.horizon < 1:
            raise ValueError(f"horizon must be an integer number of bars >= 1, got {self.horizon!r}")
        horizon = int(self.horizon)
        d = horizon if self.min_duration is None else self.min_duration
        if isinstance(d, bool) or int(d) != d or not 1 <= d <= horizon:
            raise ValueError(f"min_duration must be an integer in 1..{horizon} (the horizon), got {d!r}")
        d = int(d)
        objective = ("track" if d == horizon else "beat") if self.objective is None else str(self.objective).lower()
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {OBJECTIVES}, got {self.objective!r}")
        if objective == "track" and d != horizon:
            raise ValueError(f"a 'track' (fixed-duration) order needs min_duration == horizon ({horizon}), got {d}")
        check_rates(horizon, self.min_rate, self.max_rate)
        for name, value in (("side", side), ("target", target), ("benchmark", benchmark), ("horizon", horizon),
                            ("min_duration", d), ("objective", objective),
                            ("min_rate", float(self.min_rate)), ("max_rate", float(self.max_rate))):
            object.__setattr__(self, name, value)

    @property
    def side_sign(self) -> int:
        """+1 for a buy, -1 for a sell (improvement = -side_sign * diff)."""
        return 1 if self.side == "buy" else -1

    @property
    def order_type_index(self) -> int:
        """Index on the seed layout's order-type axis (buy-VWAP, buy-TWAP, sell-VWAP, sell-TWAP)."""
        return ORDER_TYPES.index((self.side, self.benchmark))

    @property
    def target_index(self) -> int:
        """Index on the seed layout's target axis (quantity, notional)."""
        return TARGETS.index(self.target)

    @property
    def seed_column(self) -> int:
        """Column on the seed layout's min-duration axis: ``d - 1`` for "beat", ``H`` for "track"."""
        return self.horizon if self.objective == "track" else self.min_duration - 1

    @classmethod
    def from_seed_index(cls, horizon: int, column: int, order_type: int, target: int,
                        min_rate: float = 0.0, max_rate: float = 1.0) -> "OrderSpec":
        """The order that column ``column``, order type ``order_type`` and target ``target`` of the seed
        layout stand for."""
        if not 0 <= column <= horizon:
            raise ValueError(f"column must be in 0..{horizon}, got {column}")
        side, benchmark = ORDER_TYPES[order_type]
        track = column == horizon
        return cls(side=side, horizon=horizon, target=TARGETS[target], benchmark=benchmark,
                   min_duration=horizon if track else column + 1, objective="track" if track else "beat",
                   min_rate=min_rate, max_rate=max_rate)


def seed_order_specs(horizon: int, min_rate: float = 0.0, max_rate: float = 1.0) -> list[OrderSpec]:
    """All ``(H + 1) * 4 * 2`` orders of the seed layout, in C order of (column, order type, target)."""
    return [OrderSpec.from_seed_index(horizon, c, o, t, min_rate, max_rate)
            for c in range(horizon + 1) for o in range(len(ORDER_TYPES)) for t in range(len(TARGETS))]


def check_rates(horizon: int | None, min_rate: Any, max_rate: Any) -> None:
    """Validate per-bar trading limits (scalars or arrays of any shape, e.g. ``(batch, 1)``).

    Args:
        horizon: H in bars; ``None`` skips the feasibility check ``H * max_rate >= 1``.
        min_rate: minimum fraction of the order per bar while it is open.
        max_rate: maximum fraction of the order per bar.

    Raises:
        ValueError: NaN/inf, negative rates, ``min_rate > max_rate``, ``max_rate`` outside ``(0, 1]`` or an
            infeasible order (``H * max_rate < 1``).
    """
    lo = np.asarray(keras.ops.convert_to_numpy(min_rate) if not _is_numpy_like(min_rate) else min_rate, dtype=float)
    hi = np.asarray(keras.ops.convert_to_numpy(max_rate) if not _is_numpy_like(max_rate) else max_rate, dtype=float)
    if not (np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ValueError("min_rate and max_rate must be finite numbers")
    if np.any(lo < 0) or np.any(hi < 0):
        raise ValueError(f"infeasible order: rates must be non-negative, got min_rate={lo.min()}, "
                         f"max_rate={hi.min()}")
    if np.any(hi <= 0) or np.any(hi > 1):
        raise ValueError("infeasible order: max_rate must be in (0, 1] (a fraction of the order per bar)")
    if np.any(lo > hi):
        raise ValueError("infeasible order: min_rate must not exceed max_rate")
    if horizon is not None and np.any(horizon * hi < 1 - FEASIBILITY_SLACK):
        raise ValueError(f"infeasible order: horizon {horizon} bars * max_rate {hi.min():g} < 1, "
                         "the order cannot complete within its horizon")


def rate_columns(n: int, min_rate: Any, max_rate: Any, horizon: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-order limits as validated float64 columns ``(n, 1)``.

    Args:
        n: number of orders.
        min_rate, max_rate: scalars or arrays shaped ``(n,)`` / ``(n, 1)`` (fractions of the order per bar).
        horizon: H in bars, for the feasibility check (``None``: not checked).

    Raises:
        ValueError: a wrong shape, or anything :func:`check_rates` rejects.
    """
    columns = []
    for name, value in (("min_rate", min_rate), ("max_rate", max_rate)):
        arr = np.asarray(keras.ops.convert_to_numpy(value) if not _is_numpy_like(value) else value, dtype=np.float64)
        if arr.ndim == 0:
            arr = np.full((n, 1), float(arr))
        elif arr.shape in ((n,), (n, 1)):
            arr = arr.reshape(n, 1)
        else:
            raise ValueError(f"{name} must be a scalar or have shape ({n},) or ({n}, 1), got shape {arr.shape}")
        columns.append(arr)
    check_rates(horizon, columns[0], columns[1])
    return columns[0], columns[1]


# --------------------------------------------------------------------------------------------------------
# Trading limits: exact, step by step
# --------------------------------------------------------------------------------------------------------
def feasible_interval(remaining, bars_left, min_rate, max_rate):
    """Bounds on this bar's allocation that keep the order completable within its limits.

    ``[max(min(min_rate, R), R - (L - 1) * max_rate), min(max_rate, R)]`` with ``R`` the remaining fraction
    and ``L`` the bars left including this one (EXECUTION.md §2).

    Returns:
        ``(low, high)`` fractions of the order, broadcast over the inputs.
    """
    ops = array_namespace(remaining, bars_left, min_rate, max_rate)
    low = ops.maximum(ops.minimum(min_rate, remaining), remaining - (bars_left - 1) * max_rate)
    high = ops.minimum(max_rate, remaining)
    return low, high


def allocate_step(proposal, remaining, bars_left, min_rate, max_rate):
    """Map a proposed allocation into the feasible interval (exact limits, sub-gradient friendly).

    When the interval is empty by float error only (``low > high`` by ~1e-7), completion wins: the order
    always sums to one.
    """
    ops = array_namespace(proposal, remaining, bars_left, min_rate, max_rate)
    low, high = feasible_interval(remaining, bars_left, min_rate, max_rate)
    return ops.maximum(ops.minimum(proposal, high), low)


def schedule_from_weights(weights, min_rate=0.0, max_rate=1.0, axis: int = 1):
    """Turn a desired curve (non-negative weights over steps) into allocations that obey the limits.

    At step ``s`` the proposal is ``R_s * w_s / sum_{u >= s} w_u`` (the curve renormalised on what is left;
    uniform on the remaining bars when the remaining weights are all zero), then clipped into the feasible
    interval by :func:`allocate_step`. Without binding limits the result is ``w / sum(w)``.

    Args:
        weights: non-negative array with the step axis at ``axis``.
        min_rate, max_rate: limits, broadcastable to ``weights`` with the step axis removed (or scalars).
        axis: the step axis.

    Returns:
        Allocations of the same shape as ``weights``: non-negative, summing to 1 along ``axis``.
    """
    ops = array_namespace(weights, min_rate, max_rate)
    w = ops.moveaxis(weights, axis, 0)
    horizon = w.shape[0]
    tails = ops.flip(ops.cumsum(ops.flip(w, 0), axis=0), 0)
    remaining = ops.ones_like(w[0])
    allocations = []
    for s in range(horizon):
        bars_left = horizon - s
        share = ops.where(tails[s] > 0, w[s] / ops.where(tails[s] > 0, tails[s], 1.0), 1.0 / bars_left)
        a = allocate_step(remaining * share, remaining, bars_left, min_rate, max_rate)
        allocations.append(a)
        remaining = remaining - a
    return ops.moveaxis(ops.stack(allocations, axis=0), 0, axis)


# --------------------------------------------------------------------------------------------------------
# Outcome of an execution
# --------------------------------------------------------------------------------------------------------
class ExecutionOutcome(NamedTuple):
    """What an execution achieved, per order (the step axis reduced).

    Attributes:
        achieved: achieved average price P (same units as ``prices``).
        benchmark: benchmark price B over the benchmark window.
        diff: signed difference ``P / B - 1`` (fraction).
        improvement_bps: improvement for the trader in bps (positive is better, both sides).
        window: length of the benchmark window ``e`` in bars (smooth: its soft length).
    """

    achieved: Any
    benchmark: Any
    diff: Any
    improvement_bps: Any
    window: Any


def benchmark_window(allocations, min_duration, *, axis: int = 1, smooth: bool = False, tol: float = WINDOW_TOL,
                     scale: float = SMOOTH_WINDOW_SCALE):
    """Mask of the benchmark window over the step axis (EXECUTION.md §4).

    Hard: bars ``0 .. e-1`` with ``e = max(d, 1 + last bar with a_s > tol)``.

    Smooth (for the loss): the same values as the hard mask (so the loss scores the true benchmark), with the
    gradient of a soft window (straight-through): bar ``s >= d`` has soft weight ``tail_s / (tail_s + scale)``,
    ``tail_s`` being the fraction of the order traded at or after ``s``. Finishing earlier visibly shrinks the
    benchmark window for the optimiser even from a uniform schedule, which a hard window cannot tell it.

    Args:
        allocations: allocations with the step axis at ``axis``.
        min_duration: d in bars, broadcastable to ``allocations`` (keep the step axis as size 1).
        smooth: straight-through soft window (backend tensors; numpy inputs get the hard mask, same values).
        tol: an allocation at or below ``tol`` does not extend the hard window.
        scale: softness of the surrogate (fraction of the order).

    Returns:
        A mask of the dtype of ``allocations`` and its shape.
    """
    ops = array_namespace(allocations, min_duration)
    horizon = allocations.shape[axis]
    steps = _step_index(ops, horizon, len(allocations.shape), axis, allocations.dtype)
    d = _cast_like(ops, min_duration, allocations)
    last_plus_one = ops.max(ops.where(allocations > tol, steps + 1, ops.zeros_like(allocations)), axis=axis,
                            keepdims=True)
    end = ops.maximum(d, last_plus_one)
    hard = _cast_like(ops, steps < end, allocations)
    if not smooth or ops is np:
        return hard
    tail = ops.maximum(ops.sum(allocations, axis=axis, keepdims=True) - ops.cumsum(allocations, axis=axis)
                       + allocations, 0.0)
    soft = ops.where(steps < d, ops.ones_like(allocations), tail / (tail + scale))
    return hard + soft - ops.stop_gradient(soft)


def achieved_price(allocations, prices, notional=0, *, axis: int = 1, keepdims: bool = False):
    """Average execution price P (EXECUTION.md §4), reduced over ``axis``.

    Args:
        allocations: fractions of the order per bar.
        prices: bar VWAPs (positive), broadcastable to ``allocations``.
        notional: 1 where the target is notional, 0 where it is quantity; broadcastable (step axis size 1).
        axis: the step axis.
        keepdims: keep the reduced step axis with size 1.
    """
    ops = array_namespace(allocations, prices, notional)
    total = ops.sum(allocations, axis=axis, keepdims=True)
    quantity_price = ops.sum(allocations * prices, axis=axis, keepdims=True) / total
    notional_price = total / ops.sum(allocations / prices, axis=axis, keepdims=True)
    is_notional = _cast_like(ops, notional, quantity_price)
    price = is_notional * notional_price + (1 - is_notional) * quantity_price
    return price if keepdims else ops.squeeze(price, axis=axis)


def benchmark_price(prices, volumes, window, *, axis: int = 1, keepdims: bool = False):
    """VWAP (or TWAP when ``volumes`` are ones) of ``prices`` over the window mask.

    A window with zero total volume falls back to the TWAP of its bars (never divides by zero).
    """
    ops = array_namespace(prices, volumes, window)
    weights = window * volumes
    total = ops.sum(weights, axis=axis, keepdims=True)
    safe_total = ops.where(total > 0, total, ops.ones_like(total))
    vwap = ops.sum(weights * prices, axis=axis, keepdims=True) / safe_total
    twap = ops.sum(window * prices, axis=axis, keepdims=True) / ops.sum(window, axis=axis, keepdims=True)
    price = ops.where(total > 0, vwap, twap)
    return price if keepdims else ops.squeeze(price, axis=axis)


def execution_outcome(allocations, prices, volumes, min_duration, *, notional=0, side=1, axis: int = 1,
                      smooth: bool = False, tol: float = WINDOW_TOL,
                      scale: float = SMOOTH_WINDOW_SCALE) -> ExecutionOutcome:
    """Achieved price, benchmark, signed difference and improvement of executions (EXECUTION.md §4).

    All arguments broadcast against ``allocations``; keep the step axis (size 1 where constant) so that
    nothing is tiled in memory.

    Args:
        allocations: fractions of the order per bar (step axis ``axis``).
        prices: bar VWAPs ``p_s`` (positive).
        volumes: bar volumes ``V_s`` for a VWAP benchmark, ones for TWAP.
        min_duration: d in bars (the window covers at least bars ``0 .. d-1``).
        notional: 1 where the target is notional, 0 for quantity.
        side: +1 for buy, -1 for sell (a string "buy"/"sell" is accepted).
        axis: the step axis.
        smooth: use the smooth benchmark window (for gradients in the loss).
        tol: an allocation at or below ``tol`` does not extend the hard window.
        scale: ramp of the smooth window.

    Returns:
        An :class:`ExecutionOutcome`, each field with the step axis reduced.
    """
    if isinstance(side, str):
        if side.lower() not in SIDES:
            raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")
        side = 1 if side.lower() == "buy" else -1
    ops = array_namespace(allocations, prices, volumes, min_duration, notional, side)
    window = benchmark_window(allocations, min_duration, axis=axis, smooth=smooth, tol=tol, scale=scale)
    achieved = achieved_price(allocations, prices, notional, axis=axis, keepdims=True)
    bench = benchmark_price(prices, volumes, window, axis=axis, keepdims=True)
    diff = achieved / bench - 1.0
    improvement = -_cast_like(ops, side, diff) * diff * 1e4
    window_length = ops.sum(window, axis=axis, keepdims=True)
    common = ops.zeros_like(diff + improvement)  # broadcast every field to the orders' shape (dynamic batch ok)
    fields = [f + common for f in (achieved, bench, diff, improvement, window_length)]
    return ExecutionOutcome(*[ops.squeeze(f, axis=axis) for f in fields])


# --------------------------------------------------------------------------------------------------------
# The seed layout (batch, H, H + 1, 4, 2)
# --------------------------------------------------------------------------------------------------------
def seed_min_durations(horizon: int) -> np.ndarray:
    """Min duration d of each column of the seed layout: ``1 .. H`` for the flexible columns, ``H`` last."""
    return np.concatenate([np.arange(1, horizon + 1), [horizon]]).astype(np.float32)


def _seed_axes(horizon: int, dtype) -> dict[str, np.ndarray]:
    """Per-column / order-type / target constants shaped to broadcast on ``(B, H, H+1, 4, 2)``."""
    return {
        "min_duration": seed_min_durations(horizon).astype(dtype).reshape(1, 1, horizon + 1, 1, 1),
        "notional": np.array([0.0, 1.0], dtype=dtype).reshape(1, 1, 1, 1, 2),
        "side": np.array([1.0, 1.0, -1.0, -1.0], dtype=dtype).reshape(1, 1, 1, 4, 1),
        "is_vwap": np.array([1.0, 0.0, 1.0, 0.0], dtype=dtype).reshape(1, 1, 1, 4, 1),
    }


def seed_market(y, ops=None):
    """Bar volumes and prices of seed targets, shaped to broadcast on ``(B, H, H+1, 4, 2)``.

    Args:
        y: compact targets ``(B, H, 2)`` = [volume share, price relative to a reference], or the seed's tiled
            ``(B, H, H+1, 4, 2)`` whose last axis is [volume, price] with TWAP volumes already set to 1.

    Returns:
        ``(volumes, prices)``: compact input gives ``(B, H, 1, 4, 1)`` volumes (ones for the TWAP order types)
        and ``(B, H, 1, 1, 1)`` prices; tiled input gives ``(B, H, H+1, 4, 1)`` for both.
    """
    ops = ops or array_namespace(y)
    if len(y.shape) == 5:
        return y[..., 0:1], y[..., 1:2]
    if len(y.shape) != 3 or y.shape[-1] != 2:
        raise ValueError(f"targets must be (batch, H, 2) or (batch, H, H+1, 4, 2), got shape {tuple(y.shape)}")
    horizon = y.shape[1]
    volume = ops.reshape(y[..., 0], (-1, horizon, 1, 1, 1))
    price = ops.reshape(y[..., 1], (-1, horizon, 1, 1, 1))
    is_vwap = _cast_like(ops, _seed_axes(1, np.float32)["is_vwap"], volume)
    return volume * is_vwap + (1 - is_vwap), price


def seed_outcome(allocations, y, *, smooth: bool = False, tol: float = WINDOW_TOL,
                 scale: float = SMOOTH_WINDOW_SCALE) -> ExecutionOutcome:
    """Outcomes of every order of the seed layout.

    Args:
        allocations: ``(B, H, H+1, 4, 2)`` model or baseline output.
        y: compact ``(B, H, 2)`` or tiled ``(B, H, H+1, 4, 2)`` targets (see :func:`seed_market`).

    Returns:
        An :class:`ExecutionOutcome` with fields shaped ``(B, H+1, 4, 2)``.
    """
    ops = array_namespace(allocations, y)
    if len(allocations.shape) != 5:
        raise ValueError(f"allocations must be (batch, H, H+1, 4, 2), got shape {tuple(allocations.shape)}")
    horizon = allocations.shape[1]
    if ops is keras.ops:
        y = ops.cast(y, allocations.dtype)
    consts = {k: _cast_like(ops, v, allocations) for k, v in _seed_axes(horizon, np.float32).items()}
    volumes, prices = seed_market(y, ops)
    return execution_outcome(allocations, prices, volumes, consts["min_duration"], notional=consts["notional"],
                             side=consts["side"], axis=1, smooth=smooth, tol=tol, scale=scale)


def uniform_allocations(horizon: int, dtype="float32") -> np.ndarray:
    """The naive uniform (TWAP) schedule ``1/H`` per bar, shaped ``(1, H, 1, 1, 1)`` to broadcast."""
    return np.full((1, horizon, 1, 1, 1), 1.0 / horizon, dtype=dtype)


def check_allocations(allocations, min_rate=0.0, max_rate=1.0, *, axis: int = 1, atol: float = 1e-5) -> None:
    """Raise ``ValueError`` unless allocations obey the invariants of EXECUTION.md §2.

    Checks non-negativity, completion (sum 1), ``a_s <= max_rate`` and ``a_s >= min(min_rate, remaining_s)``,
    all within ``atol``. Works on numpy arrays and backend tensors (converted to numpy).
    """
    a = np.moveaxis(np.asarray(keras.ops.convert_to_numpy(allocations), dtype=np.float64), axis, -1)
    lo = np.asarray(keras.ops.convert_to_numpy(min_rate) if not _is_numpy_like(min_rate) else min_rate, float)
    hi = np.asarray(keras.ops.convert_to_numpy(max_rate) if not _is_numpy_like(max_rate) else max_rate, float)
    lo = lo.reshape(lo.shape + (1,) * (a.ndim - lo.ndim)) if lo.ndim else lo
    hi = hi.reshape(hi.shape + (1,) * (a.ndim - hi.ndim)) if hi.ndim else hi
    if not np.all(np.isfinite(a)):
        raise ValueError("allocations contain NaN or inf")
    if np.any(a < -atol):
        raise ValueError(f"negative allocation {a.min():.3g}")
    total = a.sum(axis=-1)
    if np.any(np.abs(total - 1) > atol):
        raise ValueError(f"allocations do not sum to 1 (worst {total.flat[np.argmax(np.abs(total - 1))]:.8f})")
    if np.any(a > hi + atol):
        raise ValueError(f"allocation above max_rate by {(a - hi).max():.3g}")
    remaining = 1 - (np.cumsum(a, axis=-1) - a)
    if np.any(a < np.minimum(lo, remaining) - atol):
        raise ValueError(f"allocation below min(min_rate, remaining) by {(np.minimum(lo, remaining) - a).max():.3g}")


__all__ = [
    "BENCHMARKS", "ORDER_TYPES", "ORDER_TYPE_NAMES", "OBJECTIVES", "SIDES", "TARGETS",
    "ExecutionOutcome", "OrderSpec", "achieved_price", "allocate_step", "array_namespace", "benchmark_price",
    "benchmark_window", "check_allocations", "check_rates", "execution_outcome", "feasible_interval",
    "rate_columns", "schedule_from_weights", "seed_market", "seed_min_durations", "seed_order_specs", "seed_outcome",
    "uniform_allocations",
]
