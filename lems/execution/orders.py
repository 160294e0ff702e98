"""Orders and trading limits (docs/execution.md §2): :class:`OrderSpec`, the seed layout's order types, the per-bar
limits ``min_rate`` / ``max_rate`` applied exactly step by step, and the flexible rule's threshold decay.

Conventions: allocations ``a_s`` are fractions of the order (of its quantity or notional, per target) on a step
axis; the seed's layout ``(batch, H, H + 1, 4, 2)`` is step × min-duration column × order type × target.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from lems.execution._ops import _is_numpy_like, array_namespace

SIDES = ("buy", "sell")
TARGETS = ("quantity", "notional")
BENCHMARKS = ("vwap", "twap")
#: The arrival-price benchmark (implementation shortfall, Perold 1988); not an order type of the seed layout.
ARRIVAL = "arrival"
#: Benchmarks an :class:`OrderSpec` accepts: the seed layout's two and the arrival price.
ORDER_BENCHMARKS = BENCHMARKS + (ARRIVAL,)
OBJECTIVES = ("beat", "track")
#: Order types of the seed layout's axis 3, in order.
ORDER_TYPES = (("buy", "vwap"), ("buy", "twap"), ("sell", "vwap"), ("sell", "twap"))
ORDER_TYPE_NAMES = tuple(f"{side}_{bench}" for side, bench in ORDER_TYPES)
#: ``(4,)`` bool over :data:`ORDER_TYPES`: True for the VWAP-benchmarked order types.
IS_VWAP_ORDER = np.array([bench == "vwap" for _, bench in ORDER_TYPES])
_TARGET_ALIASES = {"quantity": "quantity", "volume": "quantity", "qty": "quantity", "notional": "notional"}

#: Default tolerance (fraction of the order) under which an allocation counts as "nothing traded".
WINDOW_TOL = 1e-6
#: Softness (fraction of the order still to trade) of the loss's straight-through benchmark window.
SMOOTH_WINDOW_SCALE = 5e-2
#: Slack (fraction of the order) allowed when checking feasibility ``H * max_rate >= 1``.
FEASIBILITY_SLACK = 1e-9


@dataclass(frozen=True)
class OrderSpec:
    """A validated parent order (docs/execution.md §2).

    Attributes:
        side: "buy" or "sell".
        horizon: H, the number of bars within which the order must complete (bars, >= 1).
        target: "quantity" (allocations are fractions of the shares/coins) or "notional" (of the currency).
            "volume" is accepted as the seed's name for "quantity".
        benchmark: "vwap", "twap" or "arrival" (implementation shortfall against the last price known at the
            decision, see :func:`implementation_shortfall`; an arrival order has no order type in the seed layout).
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
        if benchmark not in ORDER_BENCHMARKS:
            raise ValueError(f"benchmark must be one of {ORDER_BENCHMARKS}, got {self.benchmark!r}")
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
        """Index on the seed layout's order-type axis (buy-VWAP, buy-TWAP, sell-VWAP, sell-TWAP).

        Raises:
            ValueError: for an arrival-price order (the seed layout has VWAP and TWAP order types only).
        """
        if self.benchmark == ARRIVAL:
            raise ValueError("an arrival-price order has no order type in the seed layout (buy/sell x vwap/twap): "
                             "execute it with a VWAP or TWAP schedule and score it with implementation_shortfall")
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
                        min_rate: float = 0.0, max_rate: float = 1.0) -> OrderSpec:
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
def rule_threshold_scale(horizon: int, decay: float) -> np.ndarray:
    """Decay of the flexible rule's trigger distance with the time left: ``((H - s) / H) ** decay``, ``s = 0 ..
    H-1`` (the one definition; :class:`lems.policies.FlexibleRule` and the model's rule prior multiply their
    threshold by it).

    Args:
        horizon: ``H`` [bars], >= 1.
        decay: the exponent (>= 0; 0: a constant threshold, the textbook rule; 0.5: it shrinks like the square
            root of the time left).

    Returns:
        ``(H,)`` float64 factors in ``(0, 1]`` (1 at ``s = 0``).

    Raises:
        ValueError: ``horizon < 1`` or a negative / non-finite ``decay``.
    """
    if isinstance(horizon, bool) or int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be an integer number of bars >= 1, got {horizon!r}")
    if not np.isfinite(decay) or decay < 0:
        raise ValueError(f"decay must be a finite number >= 0, got {decay!r}")
    horizon = int(horizon)
    return ((horizon - np.arange(horizon)) / horizon) ** float(decay)


def feasible_interval(remaining, bars_left, min_rate, max_rate):
    """Bounds on this bar's allocation that keep the order completable within its limits.

    ``[max(min(min_rate, R), R - (L - 1) * max_rate), min(max_rate, R)]`` with ``R`` the remaining fraction
    and ``L`` the bars left including this one (docs/execution.md §2).

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


def check_allocations(allocations, min_rate=0.0, max_rate=1.0, *, axis: int = 1, atol: float = 1e-5) -> None:
    """Raise ``ValueError`` unless allocations obey the invariants of docs/execution.md §2.

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


def _side_sign(side):
    if isinstance(side, str):
        if side.lower() not in SIDES:
            raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")
        return 1 if side.lower() == "buy" else -1
    return side


