"""Order size, the participation cap and the execution conditions a desk states besides the order.

:class:`OrderSize` sizes a parent order (a fraction of the expected horizon volume, or units);
:func:`check_participation_cap` is the one validator of a cap ``max_participation`` (fraction of each bar's
market volume); :func:`participation_limit` and :func:`capped_fills` enforce it bar by bar;
:class:`ExecutionConditions` bundles size, cost model, cap and arrival price, and :func:`execution_conditions`
is the one builder of them that every caller (config, command line, reports) uses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from lems.execution._ops import _cast_like, _positive_finite, array_namespace
from lems.execution.costs import CostModel, NoCost
from lems.execution.orders import FEASIBILITY_SLACK

#: A bar without market volume counts, for participation, as one with this fraction of the horizon's mean bar
#: volume (a fill there is costed as a very large participation instead of dividing by zero).
ZERO_VOLUME_FLOOR = 1e-3
_TINY_VOLUME = 1e-30
#: Allowed ``(low, high]`` range of a participation cap (fraction of a bar's market volume).
PARTICIPATION_CAP_RANGE = (0.0, 1.0)



@dataclass(frozen=True)
class OrderSize:
    """The size of a parent order: exactly one of ``participation`` and ``quantity``.

    Attributes:
        participation: order quantity as a fraction of the EXPECTED market volume over the horizon (> 0; a desk
            trades 0.01 .. 0.3). Expected means causal: the lookback's mean bar volume times ``H`` (see
            :func:`lems.data.estimates.expected_bar_volume`), never the realised horizon volume.
        quantity: order quantity in units (shares / coins, > 0); the market volumes come from the bars.

    A notional-target order of this size has the notional ``quantity * reference price`` (the reference price is
    the VWAP of the last closed bar before the origin); its child quantity in bar ``s`` is
    ``a_s * notional / p_s``. Per-bar participation is child quantity / the bar's market volume
    (:func:`bar_participation`).

    Raises:
        ValueError: both or neither given, or a value that is not a finite number > 0.
    """

    participation: float | None = None
    quantity: float | None = None

    def __post_init__(self) -> None:
        if (self.participation is None) == (self.quantity is None):
            raise ValueError("OrderSize needs exactly one of participation (fraction of the expected horizon volume, "
                             "> 0) and quantity (units, > 0)")
        if self.participation is not None:
            object.__setattr__(self, "participation", _positive_finite("participation", self.participation,
                                                                       "(0, inf) (fraction of the horizon volume)"))
        else:
            object.__setattr__(self, "quantity", _positive_finite("quantity", self.quantity, "(0, inf) (units)"))

    def quantity_for(self, expected_horizon_volume: Any) -> np.ndarray:
        """Order quantity in units for each window.

        Args:
            expected_horizon_volume: causal expected market volume of each window's horizon [units], ``(N,)``.

        Returns:
            ``(N,)`` float64 quantities [units].

        Raises:
            ValueError: a non-finite or non-positive expected volume with a participation size.
        """
        volume = np.asarray(expected_horizon_volume, dtype=np.float64)
        if self.quantity is not None:
            return np.full(volume.shape, self.quantity)
        if not (np.all(np.isfinite(volume)) and np.all(volume > 0)):
            raise ValueError("expected_horizon_volume must be finite and > 0 to size an order by participation")
        return self.participation * volume


def check_participation_cap(max_participation: Any, order_participation: Any = None, *,
                            require_completion: bool = False) -> float | None:
    """Validate a participation cap (fraction of each bar's market volume).

    Args:
        max_participation: ``None`` (no cap) or a number in ``(0, 1]``.
        order_participation: the order's size as a fraction of the expected horizon volume (scalar or array),
            used for the completion check.
        require_completion: raise when the cap cannot complete the order even in expectation, i.e. when
            ``max_participation < order_participation`` (filling at the cap in every bar of average volume
            trades ``max_participation`` of the horizon volume).

    Returns:
        The cap as a float, or ``None``.

    Raises:
        ValueError: a cap outside ``(0, 1]``, or an infeasible order when completion is required.
    """
    if max_participation is None:
        return None
    cap = _positive_finite("max_participation", max_participation, "(0, 1] (fraction of a bar's market volume)")
    if cap > PARTICIPATION_CAP_RANGE[1]:
        raise ValueError(f"max_participation must be in (0, 1] (fraction of a bar's market volume), got {cap!r}")
    if require_completion and order_participation is not None:
        worst = float(np.max(np.asarray(order_participation, dtype=np.float64), initial=0.0))
        if worst > cap * (1 + FEASIBILITY_SLACK):
            raise ValueError(f"infeasible order: max_participation {cap:g} of each bar's volume cannot complete an "
                             f"order of {worst:g} of the expected horizon volume; max_participation must be >= the "
                             "order's participation when completion is required")
    return cap


def bar_participation(fills, volumes, order_volume, *, prices=None, notional=0, axis: int = 1,
                      floor: float = ZERO_VOLUME_FLOOR):
    """Per-bar participation ``pi_s = q_s / V_s``: the order's child quantity over the bar's market volume.

    Args:
        fills: fractions of the order traded per bar (step axis ``axis``).
        volumes: market volume ``V_s`` per bar, in the units of ``order_volume`` (e.g. shares of the horizon
            volume), broadcastable to ``fills``.
        order_volume: the order's quantity in the units of ``volumes`` (per order, keep the step axis as 1).
        prices: bar prices relative to the price at which a notional order was sized (needed when ``notional``).
        notional: 1 where the target is notional (``q_s = a_s * order_volume / p_s``), 0 for quantity.
        axis: the step axis.
        floor: a bar volume below ``floor`` times the mean bar volume over the step axis counts as that (no
            division by zero; a fill in a bar without volume is costed as a very large participation).

    Returns:
        ``pi_s`` (>= 0), the shape of ``fills`` broadcast with the inputs.
    """
    ops = array_namespace(fills, volumes, order_volume, prices, notional)
    units = fills * order_volume
    if prices is not None:
        is_notional = _cast_like(ops, notional, units)
        units = units * ((1 - is_notional) + is_notional / prices)
    volumes = _cast_like(ops, volumes, units) if ops is keras.ops else volumes
    denominator = ops.maximum(volumes, floor * ops.mean(volumes, axis=axis, keepdims=True))
    return units / ops.maximum(denominator, _TINY_VOLUME)  # rows without any volume (padding) stay finite


def participation_limit(volumes, order_volume, max_participation, *, prices=None, notional=0):
    """Largest fraction of the order a bar can fill under the cap ``q_s <= max_participation * V_s``.

    Args:
        volumes: bar market volumes, in the units of ``order_volume``.
        order_volume: the order's quantity in those units (0 means no limit: returns 2, which never binds).
        max_participation: the cap, fraction of the bar's market volume in ``(0, 1]``.
        prices, notional: as in :func:`bar_participation` (a notional order's fraction buys ``1 / p_s`` units).

    Returns:
        Per-bar limits (fractions of the order, >= 0), broadcast over the inputs.
    """
    ops = array_namespace(volumes, order_volume, prices, notional)
    per_fraction = order_volume * ops.ones_like(volumes)
    if prices is not None:
        is_notional = _cast_like(ops, notional, per_fraction)
        per_fraction = per_fraction * ((1 - is_notional) + is_notional / prices)
    positive = per_fraction > 0
    safe = ops.where(positive, per_fraction, ops.ones_like(per_fraction))
    return ops.where(positive, max_participation * volumes / safe, 2.0 * ops.ones_like(per_fraction))


def capped_fills(allocations, limits, max_rate=1.0, *, axis: int = 1):
    """Fills of planned allocations under per-bar limits; what cannot fill carries to later bars.

    Bar by bar: ``want_s = a_s + backlog_s``; ``fill_s = min(want_s, limit_s, max(max_rate, a_s))`` (the backlog
    never lifts a bar above ``max_rate``; the plan's own allocation is never cut by it); the rest carries over.
    What is left after the last bar is unfilled (reported, never dropped).

    Args:
        allocations: planned fractions of the order per bar (step axis ``axis``).
        limits: per-bar fill limits (fractions of the order, :func:`participation_limit`), broadcastable.
        max_rate: per-bar upper bound (fraction of the order), broadcastable to ``allocations`` without its
            step axis.
        axis: the step axis.

    Returns:
        ``(fills, unfilled)``: fills shaped like ``allocations`` (>= 0, never above a limit); unfilled fractions
        with the step axis reduced (``sum fills + unfilled == sum allocations``).
    """
    ops = array_namespace(allocations, limits, max_rate)
    ndim = len(allocations.shape)
    plan = ops.moveaxis(allocations, axis, 0)
    limit = ops.moveaxis(limits + ops.zeros_like(allocations), axis, 0)
    backlog = ops.zeros_like(plan[0])
    fills = []
    for s in range(plan.shape[0]):
        want = plan[s] + backlog
        fill = ops.minimum(ops.minimum(want, limit[s]), ops.maximum(max_rate, plan[s]))
        fill = ops.maximum(fill, 0.0)
        fills.append(fill)
        backlog = want - fill
    out = ops.moveaxis(ops.stack(fills, axis=0), 0, axis % ndim)
    return out, backlog


#: Arrival prices the backtest knows: the close of the last closed bar before the origin, or its VWAP.
ARRIVAL_PRICES = ("close", "reference")


@dataclass(frozen=True)
class ExecutionConditions:
    """The real-world conditions of an execution: order size, cost model, participation cap, arrival price.

    Attributes:
        size: the order's size (:class:`OrderSize`).
        cost_model: the cost model (default :class:`NoCost`: frictionless, today's numbers bit for bit).
        max_participation: cap on the order's fill in each bar, fraction of that bar's market volume in
            ``(0, 1]``; ``None`` = no cap. Enforced exactly against the realised volume: what cannot fill carries
            to later bars, and what is left at the end is reported as unfilled.
        require_completion: reject (``ValueError``) an order the cap cannot complete even in expectation
            (``max_participation < participation`` of the expected horizon volume).
        vwap_includes_order: the market VWAP benchmark includes the order's own fills (at its prices), as the
            exchange's VWAP would; off by default.
        arrival: the arrival price of the implementation shortfall: "close" (the close of the last bar before
            the origin, the last price known at the decision) or "reference" (that bar's VWAP, the reference
            price of the windows' ``y``).

    Raises:
        ValueError: a wrong type, a cap outside ``(0, 1]``, an unknown arrival price, or a participation size
            above the cap when completion is required.
    """

    size: OrderSize
    cost_model: CostModel = NoCost()
    max_participation: float | None = None
    require_completion: bool = False
    vwap_includes_order: bool = False
    arrival: str = "close"

    def __post_init__(self) -> None:
        if not isinstance(self.size, OrderSize):
            raise ValueError(f"size must be an lems.execution.OrderSize, got {type(self.size).__name__}")
        if not isinstance(self.cost_model, CostModel):
            raise ValueError(f"cost_model must be an lems.execution.CostModel, got {type(self.cost_model).__name__}")
        if str(self.arrival) not in ARRIVAL_PRICES:
            raise ValueError(f"arrival must be one of {ARRIVAL_PRICES}, got {self.arrival!r}")
        cap = check_participation_cap(self.max_participation, self.size.participation,
                                      require_completion=bool(self.require_completion))
        object.__setattr__(self, "max_participation", cap)
        object.__setattr__(self, "require_completion", bool(self.require_completion))
        object.__setattr__(self, "vwap_includes_order", bool(self.vwap_includes_order))
        object.__setattr__(self, "arrival", str(self.arrival))



def execution_conditions(order_sizes: Any, *, cost_model: CostModel | None = None,
                         max_participation: float | None = None, require_completion: bool = False,
                         vwap_includes_order: bool = False, arrival: str = "close") -> list[ExecutionConditions]:
    """One :class:`ExecutionConditions` per order size, all under the same cost model, cap and arrival price.

    The one builder of execution conditions: the ``[execution]`` settings of a config (one per size, or the size
    training scores), the command line's report and any script build them here, so that no field (in particular
    ``require_completion``) is dropped on the way.

    Args:
        order_sizes: one size or a sequence of sizes, in the order wanted; each an :class:`OrderSize` or a
            number, the participation (order quantity as a fraction of the EXPECTED horizon volume, > 0). An empty
            sequence gives an empty list (frictionless: no size stated).
        cost_model: the cost model (``None``: :class:`NoCost`).
        max_participation: cap on the fill in each bar [fraction of the bar's market volume, ``(0, 1]``]; ``None``
            = no cap.
        require_completion: reject (``ValueError``) a size the cap cannot complete in expectation
            (``max_participation`` < the size's participation).
        vwap_includes_order: the VWAP benchmark includes the order's own fills.
        arrival: the arrival price of the implementation shortfall, one of :data:`ARRIVAL_PRICES`.

    Returns:
        A list of :class:`ExecutionConditions`, one per size, in order (one element for a single size).

    Raises:
        ValueError: a size that is not a finite number > 0 nor an :class:`OrderSize`, or anything
            :class:`ExecutionConditions` rejects (a cap outside ``(0, 1]``, an unknown arrival price, a size above
            the cap when completion is required).
    """
    many = isinstance(order_sizes, Iterable) and not isinstance(order_sizes, (str, bytes))
    sizes = [_order_size(s) for s in (order_sizes if many else [order_sizes])]
    model = NoCost() if cost_model is None else cost_model
    return [ExecutionConditions(size, model, max_participation=max_participation,
                                require_completion=require_completion, vwap_includes_order=vwap_includes_order,
                                arrival=arrival) for size in sizes]


def _order_size(size: Any) -> OrderSize:
    """``size`` as an :class:`OrderSize` (a number is a participation)."""
    return size if isinstance(size, OrderSize) else OrderSize(participation=size)
