"""Outcome of an execution (docs/execution.md §4): benchmark window, achieved and benchmark prices, signed difference
and improvement, implementation shortfall, and the same for every order of the seed layout at once
(:func:`seed_outcome`, frictionless; :func:`seed_execution`, under costs and a participation cap).

Conventions: ``prices`` are bar VWAPs ``p_s`` (any positive scale, e.g. relative to a reference price),
``volumes`` the bar volumes ``V_s`` (any non-negative scale; all ones for a TWAP benchmark);
``diff = P / B - 1``; improvement in bps: buy ``-diff * 1e4``, sell ``+diff * 1e4`` (positive is better).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import keras
import numpy as np

from lems.execution._ops import _cast_like, _step_index, array_namespace
from lems.execution.costs import CostModel, cost_adjusted_prices
from lems.execution.layout import _seed_axes, _seed_constants, _seed_targets_like
from lems.execution.orders import SMOOTH_WINDOW_SCALE, WINDOW_TOL, _side_sign
from lems.execution.size import bar_participation, capped_fills, check_participation_cap, participation_limit

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
    """Mask of the benchmark window over the step axis (docs/execution.md §4).

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
    """Average execution price P (docs/execution.md §4), reduced over ``axis``.

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


def benchmark_price(prices, volumes, window, *, axis: int = 1, keepdims: bool = False, order_volumes=None,
                    order_prices=None):
    """VWAP (or TWAP when ``volumes`` are ones) of ``prices`` over the window mask.

    A window with zero total volume falls back to the TWAP of its bars (never divides by zero).

    Args:
        prices, volumes, window: bar prices, volumes (ones for TWAP) and the window mask.
        order_volumes: the order's own quantity per bar, in the units of ``volumes``, to include in the VWAP
            (``None``: the market's volume only). Zero it for a TWAP benchmark.
        order_prices: the prices of the order's own fills (default ``prices``).
    """
    ops = array_namespace(prices, volumes, window, order_volumes, order_prices)
    weights = window * volumes
    total = ops.sum(weights, axis=axis, keepdims=True)
    value = ops.sum(weights * prices, axis=axis, keepdims=True)
    if order_volumes is not None:
        own = window * order_volumes
        total = total + ops.sum(own, axis=axis, keepdims=True)
        value = value + ops.sum(own * (prices if order_prices is None else order_prices), axis=axis, keepdims=True)
    safe_total = ops.where(total > 0, total, ops.ones_like(total))
    vwap = value / safe_total
    twap = ops.sum(window * prices, axis=axis, keepdims=True) / ops.sum(window, axis=axis, keepdims=True)
    price = ops.where(total > 0, vwap, twap)
    return price if keepdims else ops.squeeze(price, axis=axis)


def execution_outcome(allocations, prices, volumes, min_duration, *, notional=0, side=1, axis: int = 1,
                      smooth: bool = False, tol: float = WINDOW_TOL, scale: float = SMOOTH_WINDOW_SCALE,
                      market_prices=None, order_volumes=None) -> ExecutionOutcome:
    """Achieved price, benchmark, signed difference and improvement of executions (docs/execution.md §4).

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
        market_prices: the market's prices for the benchmark when they differ from the order's execution
            ``prices`` (costs: :func:`cost_adjusted_prices`); ``None``: ``prices``.
        order_volumes: the order's own quantity per bar to include in the VWAP benchmark (at ``prices``), in
            the units of ``volumes``; ``None``: market volume only.

    Returns:
        An :class:`ExecutionOutcome`, each field with the step axis reduced.
    """
    side = _side_sign(side)
    ops = array_namespace(allocations, prices, volumes, min_duration, notional, side, market_prices, order_volumes)
    window = benchmark_window(allocations, min_duration, axis=axis, smooth=smooth, tol=tol, scale=scale)
    achieved = achieved_price(allocations, prices, notional, axis=axis, keepdims=True)
    bench = benchmark_price(prices if market_prices is None else market_prices, volumes, window, axis=axis,
                            keepdims=True, order_volumes=order_volumes, order_prices=prices)
    diff = achieved / bench - 1.0
    improvement = -_cast_like(ops, side, diff) * diff * 1e4
    window_length = ops.sum(window, axis=axis, keepdims=True)
    common = ops.zeros_like(diff + improvement)  # broadcast every field to the orders' shape (dynamic batch ok)
    fields = [f + common for f in (achieved, bench, diff, improvement, window_length)]
    return ExecutionOutcome(*[ops.squeeze(f, axis=axis) for f in fields])


class Shortfall(NamedTuple):
    """Implementation shortfall against the arrival price and its Perold (1988) decomposition.

    All in bps of the order's value at the arrival price, POSITIVE = COST to the trader (both sides):
    ``total = delay + timing + impact + fee + opportunity``.

    Attributes:
        total_bps: ``side * (phi (P - A) + u (p_end - A)) / A * 1e4``: the paper portfolio (everything at the
            arrival price ``A``) against the real one (filled fraction ``phi`` at ``P``, the unfilled ``u`` valued
            at the last bar's market price ``p_end``).
        delay_bps: ``side (p_0 - A) / A``: from the decision price to the first bar's market price.
        timing_bps: ``side phi (P_0 - p_0) / A``: where the schedule traded, at the market's prices ``P_0``
            (achieved price without costs).
        impact_bps: ``side phi (P_f - P_0) / A``: the costs before fees (spread, temporary, transient and permanent
            impact), ``P_f`` the achieved price before fees.
        opportunity_bps: ``side u (p_end - p_0) / A``: the market move on what stayed unfilled.
        filled: ``phi``, the fraction of the order filled.
        arrival: the arrival price ``A``.
        fee_bps: ``side phi (P - P_f) / A``: the exchange fees (:class:`lems.execution.FeeCost`; 0 without).
    """

    total_bps: Any
    delay_bps: Any
    timing_bps: Any
    impact_bps: Any
    opportunity_bps: Any
    filled: Any
    arrival: Any
    fee_bps: Any = 0.0




def _filled_price(fills, prices, notional, axis):
    """Achieved price over the filled part, and the filled fraction (keepdims); safe when nothing filled."""
    ops = array_namespace(fills, prices, notional)
    filled = ops.sum(fills, axis=axis, keepdims=True)
    any_fill = filled > 0
    safe = ops.where(any_fill, fills, ops.ones_like(fills))
    return achieved_price(safe, prices, notional, axis=axis, keepdims=True), filled, any_fill


def implementation_shortfall(fills, prices, fill_prices, market_prices, arrival_price, *, notional=0, side=1,
                             axis: int = 1, fee_free_prices=None) -> Shortfall:
    """Implementation shortfall in bps and its Perold decomposition (see :class:`Shortfall`).

    The arrival price is the last price known at the decision for the first bar (the backtest uses the close of
    the last closed bar before the origin, or its VWAP); the first bar's market price ``p_0`` and the last bar's
    ``p_end`` are taken from ``market_prices`` (after the order's permanent impact).

    Args:
        fills: fractions of the order filled per bar (sum ``phi <= 1``; ``1 - phi`` stays unfilled).
        prices: the market's bar prices without the order (``P_0``, timing).
        fill_prices: the order's execution prices (:attr:`CostedPrices.fill`).
        market_prices: the market's prices after the order's impact (:attr:`CostedPrices.market`).
        arrival_price: ``A`` (positive), per order with the step axis kept as 1 (or a scalar).
        notional: 1 where the target is notional (harmonic average prices), 0 for quantity.
        side: +1 buy, -1 sell (or "buy"/"sell").
        axis: the step axis.
        fee_free_prices: the order's execution prices before fees (:attr:`CostedPrices.before_fees`); ``None``:
            no fee (``fee_bps`` 0).

    Returns:
        A :class:`Shortfall`, each field with the step axis reduced.
    """
    side = _side_sign(side)
    ops = array_namespace(fills, prices, fill_prices, market_prices, arrival_price, notional, side, fee_free_prices)
    achieved, filled, any_fill = _filled_price(fills, fill_prices, notional, axis)
    frictionless, _, _ = _filled_price(fills, prices, notional, axis)
    before_fees = achieved if fee_free_prices is None else _filled_price(fills, fee_free_prices, notional, axis)[0]
    horizon = fills.shape[axis]
    moved = ops.moveaxis(market_prices + ops.zeros_like(fills), axis, 0)
    first = ops.expand_dims(moved[0], axis)
    last = ops.expand_dims(moved[horizon - 1], axis)
    unfilled = 1.0 - filled
    sign = _cast_like(ops, side, achieved) * 1e4 / arrival_price
    achieved = ops.where(any_fill, achieved, first)
    frictionless = ops.where(any_fill, frictionless, first)
    before_fees = ops.where(any_fill, before_fees, first)
    parts = [
        sign * (filled * (achieved - arrival_price) + unfilled * (last - arrival_price)),
        sign * (first - arrival_price),
        sign * filled * (frictionless - first),
        sign * filled * (before_fees - frictionless),
        sign * unfilled * (last - first),
        filled,
        arrival_price,
        sign * filled * (achieved - before_fees),
    ]
    common = ops.zeros_like(parts[0] + parts[1] + parts[2])
    return Shortfall(*[ops.squeeze(p + common, axis=axis) for p in parts])



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
        allocations: ``(B, H, H+1, 4, 2)`` model or baseline output (or a compact layout ``(B, H, K+1, 4, 2)``
            inside :func:`seed_columns`).
        y: compact ``(B, H, 2)`` or tiled ``(B, H, H+1, 4, 2)`` targets (see :func:`seed_market`).

    Returns:
        An :class:`ExecutionOutcome` with fields shaped ``(B, H+1, 4, 2)`` (``(B, K+1, 4, 2)`` for a compact
        layout).
    """
    ops = array_namespace(allocations, y)
    if len(allocations.shape) != 5:
        raise ValueError(f"allocations must be (batch, H, H+1, 4, 2), got shape {tuple(allocations.shape)}")
    horizon = allocations.shape[1]
    if ops is keras.ops:
        y = ops.cast(y, allocations.dtype)
    consts = _seed_constants(ops, horizon, allocations)
    volumes, prices = seed_market(_seed_targets_like(ops, y, allocations), ops)
    return execution_outcome(allocations, prices, volumes, consts["min_duration"], notional=consts["notional"],
                             side=consts["side"], axis=1, smooth=smooth, tol=tol, scale=scale)


class SeedExecution(NamedTuple):
    """Every order of the seed layout executed under costs and a participation cap.

    Attributes:
        outcome: :class:`ExecutionOutcome` (fields ``(B, H+1, 4, 2)``): achieved price over the filled part,
            costs included; benchmark over the market's prices after the order's permanent impact.
        shortfall: :class:`Shortfall` against the arrival price (fields ``(B, H+1, 4, 2)``).
        fills: ``(B, H, H+1, 4, 2)`` fractions of the order filled per bar.
        unfilled: ``(B, H+1, 4, 2)`` fraction of the order left unfilled at the end.
        participation: ``(B, H, H+1, 4, 2)`` child quantity over the bar's market volume.
    """

    outcome: ExecutionOutcome
    shortfall: Shortfall
    fills: Any
    unfilled: Any
    participation: Any


def _per_order(ops, value, ref):
    """A per-window value (scalar, ``(B,)`` or ``(B, 1)``) shaped ``(B, 1, 1, 1, 1)`` (``None`` stays)."""
    if value is None:
        return None
    arr = _cast_like(ops, value, ref)
    return arr if len(arr.shape) == 0 else ops.reshape(arr, (-1, 1, 1, 1, 1))


def _seed_market_volume(y, ops):
    """Real bar volumes of seed targets (the VWAP order types' volumes of a tiled ``y``), step axis 1."""
    if len(y.shape) == 5:
        return y[:, :, :, 0:1, 0:1]
    return ops.reshape(y[..., 0], (-1, y.shape[1], 1, 1, 1))


def seed_execution(allocations, y, *, cost_model: CostModel | None = None, order_participation=0.0, sigma=None,
                   half_spread=None, max_participation: float | None = None, max_rate=1.0,
                   vwap_includes_order: bool = False, arrival=1.0, smooth: bool = False, tol: float = WINDOW_TOL,
                   scale: float = SMOOTH_WINDOW_SCALE) -> SeedExecution:
    """Outcomes of every order of the seed layout under a cost model and a participation cap.

    The one implementation behind the costed backtest; on ``keras.ops`` it is differentiable in the allocations
    (a loss can train through the costs). With ``cost_model=None`` / :class:`NoCost`, no cap and
    ``vwap_includes_order=False``, ``outcome`` equals :func:`seed_outcome` bit for bit.

    Args:
        allocations: ``(B, H, H+1, 4, 2)`` planned fractions of each order per bar.
        y: compact ``(B, H, 2)`` [volume share of the horizon, price / reference price] or tiled targets.
        cost_model: the cost model (``None``: :class:`NoCost`).
        order_participation: each window's order quantity over its REALISED horizon volume (the units of the
            volume shares of ``y``): scalar, ``(B,)`` or ``(B, 1)``. A notional order's notional is this quantity
            at the reference price.
        sigma: per-bar volatility (fraction; scalar, ``(B,)`` or ``(B, 1)``), from the lookback only.
        half_spread: estimated half-spread (fraction of price), same shapes; for ``SpreadCost()``.
        max_participation: cap per bar (fraction of the bar's market volume, ``(0, 1]``) or ``None``.
        max_rate: per-bar upper bound of the fills (fraction of the order; scalar, ``(B,)`` or ``(B, 1)``).
        vwap_includes_order: add the order's own fills (at its prices) to the VWAP benchmark.
        arrival: arrival price relative to the reference price (scalar, ``(B,)`` or ``(B, 1)``; 1.0 = the
            reference price).
        smooth, tol, scale: as in :func:`execution_outcome`.

    Returns:
        A :class:`SeedExecution`. An order with nothing filled (every fill blocked by the cap) gets its benchmark
        as achieved price (diff 0) and ``unfilled == 1``.

    Raises:
        ValueError: wrong shapes, a cap outside ``(0, 1]``, inputs a cost model needs but did not get.
    """
    ops = array_namespace(allocations, y)
    if len(allocations.shape) != 5:
        raise ValueError(f"allocations must be (batch, H, H+1, 4, 2), got shape {tuple(allocations.shape)}")
    cap = check_participation_cap(max_participation)
    horizon = allocations.shape[1]
    if ops is keras.ops:
        y = ops.cast(y, allocations.dtype)
    consts = _seed_constants(ops, horizon, allocations)
    y = _seed_targets_like(ops, y, allocations)
    volumes, prices = seed_market(y, ops)
    market_volume = _seed_market_volume(y, ops)
    rho = _per_order(ops, order_participation, allocations)
    notional = consts["notional"]
    if cap is None:
        fills, unfilled = allocations, ops.zeros_like(ops.sum(allocations, axis=1))
    else:
        limits = participation_limit(market_volume, rho, cap, prices=prices, notional=notional)
        rate = _per_order(ops, max_rate, allocations)
        fills, unfilled = capped_fills(allocations, limits, rate if len(rate.shape) == 0 else rate[:, 0], axis=1)
    participation = bar_participation(fills, market_volume, rho, prices=prices, notional=notional, axis=1)
    costed = cost_adjusted_prices(prices, participation, cost_model, side=consts["side"],
                                  sigma=_per_order(ops, sigma, allocations),
                                  half_spread=_per_order(ops, half_spread, allocations), axis=1)
    own = None
    if vwap_includes_order:
        units = fills * rho * ((1 - notional) + notional / prices)
        own = units * consts["is_vwap"]
    filled = ops.sum(fills, axis=1, keepdims=True)
    scored = fills if cap is None else ops.where(filled > 0, fills, ops.ones_like(fills))
    outcome = execution_outcome(scored, costed.fill, volumes, consts["min_duration"], notional=notional,
                                side=consts["side"], axis=1, smooth=smooth, tol=tol, scale=scale,
                                market_prices=costed.market, order_volumes=own)
    if cap is not None:
        outcome = _unfilled_outcome(ops, outcome, ops.squeeze(filled, axis=1) > 0)
    shortfall = implementation_shortfall(fills, prices, costed.fill, costed.market,
                                         _per_order(ops, arrival, allocations), notional=notional,
                                         side=consts["side"], axis=1, fee_free_prices=costed.before_fees)
    return SeedExecution(outcome, shortfall, fills, unfilled, participation)


def _unfilled_outcome(ops, outcome: ExecutionOutcome, any_fill) -> ExecutionOutcome:
    """Orders with no fill at all: achieved price = benchmark, diff and improvement 0."""
    zero = ops.zeros_like(outcome.diff)
    return outcome._replace(achieved=ops.where(any_fill, outcome.achieved, outcome.benchmark),
                            diff=ops.where(any_fill, outcome.diff, zero),
                            improvement_bps=ops.where(any_fill, outcome.improvement_bps, zero))


def fixed_duration_diffs(allocations, prices, volumes) -> np.ndarray:
    """Signed differences ``P / B - 1`` [fraction] of the fixed-duration ("track") orders of the seed layout.

    The benchmark window of a fixed-duration order is the whole horizon (docs/execution.md §4); VWAP order types are
    benchmarked on ``volumes``, TWAP ones on the mean price. The same numbers as the fixed column of
    :func:`seed_outcome` (to float rounding: ``diff`` does not depend on the scale of each window's prices or
    volumes, so raw bar VWAPs and volumes serve as well as relative prices and volume shares), without scoring the
    ``H`` flexible columns. Numpy, float64.

    Args:
        allocations: the fixed column ``(N, H, 4, 2)``, or a full seed layout ``(N, H, H+1, 4, 2)`` (its last
            column is read).
        prices: ``(N, H)`` bar VWAPs (positive, any scale per window).
        volumes: ``(N, H)`` bar volumes (non-negative, any scale per window).

    Returns:
        ``(N, 4, 2)`` float64 diffs per order type (:data:`~lems.execution.ORDER_TYPES`) and target.

    Raises:
        ValueError: shapes that disagree, non-finite or non-positive prices, negative or non-finite volumes.
    """
    a = np.asarray(allocations, dtype=np.float64)
    p = np.asarray(prices, dtype=np.float64)
    v = np.asarray(volumes, dtype=np.float64)
    fixed = a[:, :, -1] if a.ndim == 5 else a
    if p.ndim != 2 or v.shape != p.shape or fixed.shape != (*p.shape, 4, 2):
        raise ValueError(f"allocations (N, H, 4, 2) or (N, H, H+1, 4, 2) with prices and volumes (N, H) needed, got "
                         f"{a.shape}, {p.shape} and {v.shape}")
    if not (np.all(np.isfinite(p)) and np.all(p > 0)):
        raise ValueError("prices must be finite and positive")
    if not (np.all(np.isfinite(v)) and np.all(v >= 0)):
        raise ValueError("volumes must be finite and non-negative")
    axes = _seed_axes(1, np.float64)  # (1, 1, 1, 4 or 1, 2 or 1): drop the column axis
    is_vwap, side, notional = (axes[k][:, :, 0] for k in ("is_vwap", "side", "notional"))
    market = np.where(is_vwap > 0, v[:, :, None, None], 1.0)
    out = execution_outcome(fixed, p[:, :, None, None], market, p.shape[1], notional=notional, side=side, axis=1)
    return np.asarray(out.diff)


def uniform_allocations(horizon: int, dtype="float32") -> np.ndarray:
    """The naive uniform (TWAP) schedule ``1/H`` per bar, shaped ``(1, H, 1, 1, 1)`` to broadcast."""
    return np.full((1, horizon, 1, 1, 1), 1.0 / horizon, dtype=dtype)


