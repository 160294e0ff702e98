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

import contextlib
import types
from dataclasses import dataclass
from typing import Any, NamedTuple

import keras
import numpy as np

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


# --------------------------------------------------------------------------------------------------------
# Order size and participation
# --------------------------------------------------------------------------------------------------------
#: A bar without market volume counts, for participation, as one with this fraction of the horizon's mean bar
#: volume (a fill there is costed as a very large participation instead of dividing by zero).
ZERO_VOLUME_FLOOR = 1e-3
_TINY_VOLUME = 1e-30
#: Allowed ``(low, high]`` range of a participation cap (fraction of a bar's market volume).
PARTICIPATION_CAP_RANGE = (0.0, 1.0)


def _positive_finite(name: str, value: Any, allowed: str) -> float:
    """``value`` as a float, or ``ValueError`` naming ``name`` and its allowed range."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number in {allowed}, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be in {allowed}, got {value!r}")
    return float(value)


def _non_negative_finite(name: str, value: Any, allowed: str = "[0, inf)") -> float:
    """``value`` as a float >= 0, or ``ValueError`` naming ``name`` and its allowed range."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number in {allowed}, got {value!r}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be in {allowed}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class OrderSize:
    """The size of a parent order: exactly one of ``participation`` and ``quantity``.

    Attributes:
        participation: order quantity as a fraction of the EXPECTED market volume over the horizon (> 0; a desk
            trades 0.01 .. 0.3). Expected means causal: the lookback's mean bar volume times ``H`` (see
            :func:`lems.baselines.expected_bar_volume`), never the realised horizon volume.
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


# --------------------------------------------------------------------------------------------------------
# Cost models
# --------------------------------------------------------------------------------------------------------
class CostInputs(NamedTuple):
    """What a cost model may read, per bar of each order (arrays of either namespace, broadcastable).

    Attributes:
        participation: ``pi_s``, the order's child quantity over the bar's market volume (>= 0, realised).
        sigma: volatility of the bar's relative price per bar (fraction, e.g. 0.002), estimated from the
            lookback only (:func:`lems.baselines.lookback_volatility`); ``None`` when no model needs it.
        half_spread: estimated half bid-ask spread (fraction of price, e.g. 2e-4), per order or per bar;
            ``None`` when not estimated.
    """

    participation: Any
    sigma: Any = None
    half_spread: Any = None


def _required(inputs: CostInputs, field_name: str, model: str):
    value = getattr(inputs, field_name)
    if value is None:
        raise ValueError(f"{model} needs {field_name} (pass {field_name}=... estimated from the lookback)")
    return value


def _safe_power(ops, x, exponent: float):
    """``x ** exponent`` for ``x >= 0`` with value 0 and gradient 0 at ``x == 0`` (no inf * 0 = NaN)."""
    positive = x > 0
    safe = ops.where(positive, x, ops.ones_like(x))
    return ops.where(positive, ops.power(safe, exponent), ops.zeros_like(x))


class CostModel:
    """Interface of an execution cost model (EXECUTION.md §1: "unless an impact model is configured").

    A cost model says, per bar ``s`` of an order, as fractions of the bar's price (never negative):

    * :meth:`temporary` ``c_s``: paid by the order's own fills in bar ``s`` only (spread, temporary impact);
    * :meth:`permanent` ``g_s``: the permanent price move caused by the order's trading in bar ``s``. It shifts
      the market price of the LATER bars ``u > s`` only (Almgren & Chriss 2000: the trade of interval ``k`` moves
      the price ``S_k`` from which interval ``k + 1`` starts; interval ``k`` itself pays only the temporary
      impact). :func:`cost_adjusted_prices` accumulates the shifts.

    Adverse for the trader on both sides: a buy pays ``p_s (1 + shift_s + c_s)``, a sell receives
    ``p_s (1 - shift_s - c_s)``. Models are written once on the array namespace of their inputs (numpy float64 or
    ``keras.ops``, differentiable) and combine with ``+`` (:class:`CompositeCost`).

    Attributes:
        needs_sigma: the model reads :attr:`CostInputs.sigma`.
        needs_half_spread: the model reads :attr:`CostInputs.half_spread` (an estimated spread).
    """

    needs_sigma: bool = False
    needs_half_spread: bool = False

    def temporary(self, inputs: CostInputs):
        """Temporary cost ``c_s`` per bar (fraction of price, >= 0), the shape of ``inputs.participation``."""
        ops = array_namespace(inputs.participation)
        return ops.zeros_like(inputs.participation)

    def permanent(self, inputs: CostInputs):
        """Permanent price move ``g_s`` caused by bar ``s`` (fraction of price, >= 0): shifts bars ``> s``."""
        ops = array_namespace(inputs.participation)
        return ops.zeros_like(inputs.participation)

    @property
    def is_free(self) -> bool:
        """True when the model costs nothing by construction (prices pass through unchanged)."""
        return False

    def __add__(self, other: CostModel) -> CompositeCost:
        if not isinstance(other, CostModel):
            return NotImplemented
        return CompositeCost((self, other))


@dataclass(frozen=True)
class NoCost(CostModel):
    """No cost: every child order fills at the bar's VWAP (EXECUTION.md §1, the seed's convention; default)."""

    @property
    def is_free(self) -> bool:
        return True


@dataclass(frozen=True)
class SpreadCost(CostModel):
    """The half bid-ask spread, paid on every unit traded (a temporary cost independent of size).

    Args:
        half_spread_bps: the half-spread in bps (>= 0). ``None``: use the estimate in
            :attr:`CostInputs.half_spread`, e.g. the Corwin & Schultz (2012) high-low estimator over the lookback
            (:func:`corwin_schultz_half_spread`, :func:`lems.baselines.lookback_half_spread`).

    Raises:
        ValueError: a negative or non-finite ``half_spread_bps``.
    """

    half_spread_bps: float | None = None

    def __post_init__(self) -> None:
        if self.half_spread_bps is not None:
            object.__setattr__(self, "half_spread_bps", _non_negative_finite(
                "half_spread_bps", self.half_spread_bps, "[0, inf) bps"))

    @property
    def needs_half_spread(self) -> bool:  # type: ignore[override]
        return self.half_spread_bps is None

    def temporary(self, inputs: CostInputs):
        ops = array_namespace(inputs.participation, inputs.half_spread)
        if self.half_spread_bps is not None:
            return ops.zeros_like(inputs.participation) + self.half_spread_bps * 1e-4
        return ops.zeros_like(inputs.participation) + _required(inputs, "half_spread", "SpreadCost()")


@dataclass(frozen=True)
class SquareRootImpact(CostModel):
    """Temporary market impact ``c_s = coef * sigma * pi_s ** delta`` (the square-root law for ``delta = 0.5``).

    ``pi_s`` is the participation of the order in bar ``s`` (child quantity / bar volume) and ``sigma`` the
    per-bar volatility estimated from the lookback. The square-root law: the impact of a metaorder of ``Q`` in a
    market trading ``V`` is ``Y sigma sqrt(Q / V)`` with ``Y`` of order one (Tóth, Lemperière, Deremble, de
    Lataillade, Kockelkoren & Bouchaud 2011, "Anomalous price impact and the critical nature of liquidity in
    financial markets", Phys. Rev. X 1, 021006; Bouchaud, Bonart, Donier & Gould 2018, "Trades, Quotes and
    Prices", ch. 12: ``Y`` about 0.5 to 1). Almgren, Thum, Hauptmann & Li (2005, "Direct estimation of equity
    market impact", Risk 18) fit the same form per unit of trading rate with exponent 0.6 (``delta = 0.6``) and
    ``coef = 0.142`` against DAILY volatility. Here the law is applied bar by bar with the bar's volatility; for a
    uniform schedule at participation ``rho`` over ``H`` bars the metaorder law ``Y sigma_H sqrt(rho)`` (horizon
    volatility ``sigma_H = sigma sqrt(H)``) corresponds to ``coef = Y sqrt(H)``. ``delta = 1`` gives the linear
    temporary impact of Almgren & Chriss (2000) with ``eta = coef * sigma * Q / V``.

    Args:
        coef: dimensionless coefficient (>= 0), default 1.0.
        delta: exponent in ``(0, 1]``, default 0.5.

    Raises:
        ValueError: a negative or non-finite ``coef``, ``delta`` outside ``(0, 1]``.
    """

    coef: float = 1.0
    delta: float = 0.5
    needs_sigma = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "coef", _non_negative_finite("coef", self.coef))
        delta = _positive_finite("delta", self.delta, "(0, 1]")
        if delta > 1:
            raise ValueError(f"delta must be in (0, 1], got {self.delta!r}")
        object.__setattr__(self, "delta", delta)

    def temporary(self, inputs: CostInputs):
        ops = array_namespace(inputs.participation, inputs.sigma)
        sigma = _required(inputs, "sigma", "SquareRootImpact")
        return self.coef * sigma * _safe_power(ops, inputs.participation, self.delta)


@dataclass(frozen=True)
class LinearPermanentImpact(CostModel):
    """Linear permanent impact (Almgren & Chriss 2000, "Optimal execution of portfolio transactions", J. Risk 3):
    trading ``pi_s`` of bar ``s``'s volume moves the price of every later bar by ``g_s = coef * sigma * pi_s``.

    Linear in the quantity traded, as the permanent impact ``g(v) = gamma v`` of Almgren & Chriss, with
    ``gamma = coef * sigma / V_s`` per unit (fraction of price): with constant bar volume ``V`` and an order of
    ``Q``, ``gamma = coef * sigma * Q / V`` per fraction of the order. The bar of the trade itself is not shifted
    (its cost is the temporary impact), bars before it never. Almgren et al. (2005) estimate ``gamma = 0.314``
    against daily volatility and the fraction of DAILY volume; per bar of ``1/n`` of a day that is about
    ``0.314 / sqrt(n)``.

    Args:
        coef: dimensionless coefficient (>= 0).

    Raises:
        ValueError: a negative or non-finite ``coef``.
    """

    coef: float = 0.1
    needs_sigma = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "coef", _non_negative_finite("coef", self.coef))

    def permanent(self, inputs: CostInputs):
        sigma = _required(inputs, "sigma", "LinearPermanentImpact")
        return self.coef * sigma * inputs.participation


@dataclass(frozen=True)
class CompositeCost(CostModel):
    """The sum of cost models (temporary costs and permanent moves add up).

    Args:
        models: the cost models (nested composites are flattened).

    Raises:
        ValueError: an element that is not a :class:`CostModel`.
    """

    models: tuple = ()

    def __post_init__(self) -> None:
        flat: list[CostModel] = []
        for m in tuple(self.models):
            if not isinstance(m, CostModel):
                raise ValueError(f"CompositeCost takes CostModel instances, got {type(m).__name__}")
            flat.extend(m.models if isinstance(m, CompositeCost) else (m,))
        object.__setattr__(self, "models", tuple(flat))

    @property
    def needs_sigma(self) -> bool:  # type: ignore[override]
        return any(m.needs_sigma for m in self.models)

    @property
    def needs_half_spread(self) -> bool:  # type: ignore[override]
        return any(m.needs_half_spread for m in self.models)

    @property
    def is_free(self) -> bool:
        return all(m.is_free for m in self.models)

    def temporary(self, inputs: CostInputs):
        return _sum_parts([m.temporary(inputs) for m in self.models], inputs)

    def permanent(self, inputs: CostInputs):
        return _sum_parts([m.permanent(inputs) for m in self.models], inputs)


def _sum_parts(parts: list, inputs: CostInputs):
    total = CostModel().temporary(inputs)  # zeros of the participation's shape
    for part in parts:
        total = total + part
    return total


def corwin_schultz_half_spread(high, low, axis: int = -1) -> np.ndarray:
    """Half bid-ask spread from high and low prices (Corwin & Schultz 2012, "A simple way to estimate bid-ask
    spreads from daily high and low prices", J. Finance 67(2), 719-760), averaged over consecutive bar pairs.

    For bars ``t, t+1``: ``beta = ln(H_t/L_t)^2 + ln(H_{t+1}/L_{t+1})^2``, ``gamma = ln(max(H_t, H_{t+1}) /
    min(L_t, L_{t+1}))^2``, ``alpha = (sqrt(2 beta) - sqrt(beta)) / (3 - 2 sqrt 2) - sqrt(gamma / (3 - 2 sqrt
    2))``, spread ``S = 2 (e^alpha - 1) / (1 + e^alpha)``. Negative pair estimates are set to zero before
    averaging (as in the paper); no overnight adjustment. Pass the LOOKBACK bars only to keep it causal.

    Args:
        high, low: bar highs and lows (positive, ``high >= low``), at least two bars along ``axis``.
        axis: the bar axis.

    Returns:
        Half-spread ``S / 2`` (fraction of price, >= 0), reduced over ``axis`` (float64).

    Raises:
        ValueError: fewer than two bars, non-finite or non-positive prices, or ``high < low``.
    """
    hi = np.moveaxis(np.asarray(high, dtype=np.float64), axis, -1)
    lo = np.moveaxis(np.asarray(low, dtype=np.float64), axis, -1)
    if hi.shape != lo.shape or hi.shape[-1] < 2:
        raise ValueError(f"high and low need the same shape with >= 2 bars, got {hi.shape} and {lo.shape}")
    if not (np.all(np.isfinite(hi)) and np.all(np.isfinite(lo)) and np.all(lo > 0)):
        raise ValueError("high and low must be finite and positive")
    if np.any(hi < lo):
        raise ValueError("high must be >= low in every bar")
    log_range2 = np.log(hi / lo) ** 2
    beta = log_range2[..., 1:] + log_range2[..., :-1]
    gamma = np.log(np.maximum(hi[..., 1:], hi[..., :-1]) / np.minimum(lo[..., 1:], lo[..., :-1])) ** 2
    k = 3.0 - 2.0 * np.sqrt(2.0)
    alpha = (np.sqrt(2.0 * beta) - np.sqrt(beta)) / k - np.sqrt(gamma / k)
    spread = np.maximum(2.0 * np.expm1(alpha) / (1.0 + np.exp(alpha)), 0.0)
    return spread.mean(axis=-1) / 2.0


# --------------------------------------------------------------------------------------------------------
# Execution conditions (what a desk states besides the order: size, costs, cap)
# --------------------------------------------------------------------------------------------------------
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


# --------------------------------------------------------------------------------------------------------
# Costs, participation cap and implementation shortfall
# --------------------------------------------------------------------------------------------------------
class CostedPrices(NamedTuple):
    """Prices of an execution under a cost model (same shape, step axis kept).

    Attributes:
        fill: the order's execution price per bar: ``p_s (1 + side * (shift_s + c_s))``.
        market: the market's price per bar after the order's permanent impact: ``p_s (1 + side * shift_s)``.
    """

    fill: Any
    market: Any


def _exclusive_cumsum(ops, x, axis: int):
    """``sum_{u < s} x_u`` along ``axis`` (exact: bar ``s`` never enters its own or an earlier sum)."""
    moved = ops.moveaxis(x, axis, 0)
    csum = ops.cumsum(moved, axis=0)
    shifted = ops.concatenate([ops.zeros_like(moved[:1]), csum[:-1]], axis=0)
    return ops.moveaxis(shifted, 0, axis)


def cost_adjusted_prices(prices, participation, cost_model: CostModel | None = None, *, side=1, sigma=None,
                         half_spread=None, axis: int = 1) -> CostedPrices:
    """Execution and market prices of an order under a cost model (differentiable on ``keras.ops``).

    The permanent moves ``g_s`` of bars ``< s`` shift bar ``s`` (``shift_s = sum_{u<s} g_u``, adverse: up for a
    buy, down for a sell); the order's fills also pay the temporary cost ``c_s`` of their own bar. A free model
    (:class:`NoCost`) returns ``prices`` unchanged (the same object: every frictionless number is reproduced bit
    for bit).

    Args:
        prices: bar prices ``p_s`` (positive, any scale), step axis ``axis``.
        participation: per-bar participation ``pi_s`` (:func:`bar_participation`).
        cost_model: the cost model (``None``: :class:`NoCost`).
        side: +1 buy, -1 sell (broadcastable, or "buy"/"sell").
        sigma: per-bar volatility (fraction), broadcastable; needed by impact models.
        half_spread: estimated half-spread (fraction of price), broadcastable; needed by ``SpreadCost()``.
        axis: the step axis.

    Returns:
        :class:`CostedPrices`.

    Raises:
        ValueError: a missing input the model needs; with numpy inputs, costs that make a price non-positive
            (a sell's costs above 100 %: check the coefficients and the order size).
    """
    cost_model = NoCost() if cost_model is None else cost_model
    if not isinstance(cost_model, CostModel):
        raise ValueError(f"cost_model must be a lems.execution.CostModel, got {type(cost_model).__name__}")
    if cost_model.is_free:
        return CostedPrices(prices, prices)
    side = _side_sign(side)
    ops = array_namespace(prices, participation, side, sigma, half_spread)
    inputs = CostInputs(participation, sigma, half_spread)
    shift = _exclusive_cumsum(ops, cost_model.permanent(inputs), axis)
    sign = _cast_like(ops, side, shift)
    market = prices * (1.0 + sign * shift)
    fill = prices * (1.0 + sign * (shift + cost_model.temporary(inputs)))
    if ops is np and not (np.all(fill > 0) and np.all(market > 0)):
        raise ValueError("execution costs exceed the price (a sell's costs above 100 %): check the cost model's "
                         "coefficients and the order size")
    return CostedPrices(fill, market)


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


class Shortfall(NamedTuple):
    """Implementation shortfall against the arrival price and its Perold (1988) decomposition.

    All in bps of the order's value at the arrival price, POSITIVE = COST to the trader (both sides):
    ``total = delay + timing + impact + opportunity``.

    Attributes:
        total_bps: ``side * (phi (P - A) + u (p_end - A)) / A * 1e4``: the paper portfolio (everything at the
            arrival price ``A``) against the real one (filled fraction ``phi`` at ``P``, the unfilled ``u`` valued
            at the last bar's market price ``p_end``).
        delay_bps: ``side (p_0 - A) / A``: from the decision price to the first bar's market price.
        timing_bps: ``side phi (P_0 - p_0) / A``: where the schedule traded, at the market's prices ``P_0``
            (achieved price without costs).
        impact_bps: ``side phi (P - P_0) / A``: the costs (spread, temporary and permanent impact).
        opportunity_bps: ``side u (p_end - p_0) / A``: the market move on what stayed unfilled.
        filled: ``phi``, the fraction of the order filled.
        arrival: the arrival price ``A``.
    """

    total_bps: Any
    delay_bps: Any
    timing_bps: Any
    impact_bps: Any
    opportunity_bps: Any
    filled: Any
    arrival: Any


def _side_sign(side):
    if isinstance(side, str):
        if side.lower() not in SIDES:
            raise ValueError(f"side must be 'buy' or 'sell', got {side!r}")
        return 1 if side.lower() == "buy" else -1
    return side


def _filled_price(fills, prices, notional, axis):
    """Achieved price over the filled part, and the filled fraction (keepdims); safe when nothing filled."""
    ops = array_namespace(fills, prices, notional)
    filled = ops.sum(fills, axis=axis, keepdims=True)
    any_fill = filled > 0
    safe = ops.where(any_fill, fills, ops.ones_like(fills))
    return achieved_price(safe, prices, notional, axis=axis, keepdims=True), filled, any_fill


def implementation_shortfall(fills, prices, fill_prices, market_prices, arrival_price, *, notional=0, side=1,
                             axis: int = 1) -> Shortfall:
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

    Returns:
        A :class:`Shortfall`, each field with the step axis reduced.
    """
    side = _side_sign(side)
    ops = array_namespace(fills, prices, fill_prices, market_prices, arrival_price, notional, side)
    achieved, filled, any_fill = _filled_price(fills, fill_prices, notional, axis)
    frictionless, _, _ = _filled_price(fills, prices, notional, axis)
    horizon = fills.shape[axis]
    moved = ops.moveaxis(market_prices + ops.zeros_like(fills), axis, 0)
    first = ops.expand_dims(moved[0], axis)
    last = ops.expand_dims(moved[horizon - 1], axis)
    unfilled = 1.0 - filled
    sign = _cast_like(ops, side, achieved) * 1e4 / arrival_price
    achieved = ops.where(any_fill, achieved, first)
    frictionless = ops.where(any_fill, frictionless, first)
    parts = [
        sign * (filled * (achieved - arrival_price) + unfilled * (last - arrival_price)),
        sign * (first - arrival_price),
        sign * filled * (frictionless - first),
        sign * filled * (achieved - frictionless),
        sign * unfilled * (last - first),
        filled,
        arrival_price,
    ]
    common = ops.zeros_like(parts[0] + parts[1] + parts[2])
    return Shortfall(*[ops.squeeze(p + common, axis=axis) for p in parts])


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


class SeedColumns(NamedTuple):
    """A subset of the seed layout's ``H + 1`` min-duration columns: a *compact layout* ``(B, H, K + 1, 4, 2)``.

    Training at long horizons scores a stratified sample of the flexible columns (and always the fixed one)
    instead of all ``H + 1`` (:meth:`lems.models.LargeExecutionModel.sample_columns`); every function of this
    module that reads the seed layout accepts the compact one while :func:`seed_columns` says which columns it
    holds.

    Attributes:
        index: ``(K + 1,)`` int column indices into ``0 .. H`` (flexible ones first, the fixed column ``H`` last).
        weight: ``(K + 1,)`` float: how many columns of the full layout each one stands for (the size of its
            stratum; 1 for the fixed column): a column-weighted mean over the compact layout is an unbiased
            estimate of the plain mean over the full one.
    """

    index: Any
    weight: Any


_ACTIVE_COLUMNS: list[SeedColumns] = []


@contextlib.contextmanager
def seed_columns(index, weight=None):
    """Within the block, a seed-layout array with fewer than ``H + 1`` columns holds the columns ``index``.

    Args:
        index: ``(K + 1,)`` column indices (the fixed column ``H`` last); a backend tensor or a numpy array.
        weight: ``(K + 1,)`` stratum sizes (see :class:`SeedColumns`); default ones.
    """
    if weight is None:
        weight = np.ones(tuple(index.shape), np.float32)
    _ACTIVE_COLUMNS.append(SeedColumns(index, weight))
    try:
        yield _ACTIVE_COLUMNS[-1]
    finally:
        _ACTIVE_COLUMNS.pop()


def layout_columns(horizon: int, n_columns: int) -> SeedColumns | None:
    """The columns of a seed-layout array with ``n_columns`` columns: ``None`` for the full layout (``H + 1``).

    Raises:
        ValueError: a compact layout outside a matching :func:`seed_columns` block.
    """
    if n_columns == horizon + 1:
        return None
    if not _ACTIVE_COLUMNS or _ACTIVE_COLUMNS[-1].index.shape[0] != n_columns:
        raise ValueError(f"allocations must be (batch, H, H+1, 4, 2) = (batch, {horizon}, {horizon + 1}, 4, 2), got "
                         f"{n_columns} columns (a compact layout needs lems.execution.seed_columns to say which)")
    return _ACTIVE_COLUMNS[-1]


def column_weights(ops, horizon: int, n_columns: int, ref):
    """``(C,)`` weight of each column of a compact seed-layout array, as ``ref``'s dtype; ``None`` for the full
    layout (every column weighs 1: plain means apply)."""
    columns = layout_columns(horizon, n_columns)
    return None if columns is None else _cast_like(ops, columns.weight, ref)


def _seed_constants(ops, horizon: int, allocations) -> dict[str, Any]:
    """:func:`_seed_axes` as arrays like ``allocations`` (full or compact layout: the min durations of its
    columns)."""
    consts = {k: _cast_like(ops, v, allocations) for k, v in _seed_axes(horizon, np.float32).items()}
    columns = layout_columns(horizon, allocations.shape[2])
    if columns is not None:
        consts["min_duration"] = ops.take(consts["min_duration"], columns.index, axis=2)
    return consts


def _seed_targets_like(ops, y, allocations):
    """Targets for ``allocations``: a tiled ``y`` keeps the columns of a compact layout (compact ``y`` as is)."""
    if len(y.shape) != 5 or y.shape[2] == allocations.shape[2]:
        return y
    columns = layout_columns(allocations.shape[1], allocations.shape[2])
    return y if columns is None else ops.take(y, columns.index, axis=2)


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
                                         side=consts["side"], axis=1)
    return SeedExecution(outcome, shortfall, fills, unfilled, participation)


def _unfilled_outcome(ops, outcome: ExecutionOutcome, any_fill) -> ExecutionOutcome:
    """Orders with no fill at all: achieved price = benchmark, diff and improvement 0."""
    zero = ops.zeros_like(outcome.diff)
    return outcome._replace(achieved=ops.where(any_fill, outcome.achieved, outcome.benchmark),
                            diff=ops.where(any_fill, outcome.diff, zero),
                            improvement_bps=ops.where(any_fill, outcome.improvement_bps, zero))


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
    "ARRIVAL",
    "ARRIVAL_PRICES",
    "BENCHMARKS",
    "OBJECTIVES",
    "ORDER_BENCHMARKS",
    "ORDER_TYPES",
    "ORDER_TYPE_NAMES",
    "SIDES",
    "TARGETS",
    "ZERO_VOLUME_FLOOR",
    "CompositeCost",
    "CostInputs",
    "CostModel",
    "CostedPrices",
    "ExecutionConditions",
    "ExecutionOutcome",
    "LinearPermanentImpact",
    "NoCost",
    "OrderSize",
    "OrderSpec",
    "SeedExecution",
    "Shortfall",
    "SpreadCost",
    "SquareRootImpact",
    "achieved_price",
    "allocate_step",
    "SeedColumns",
    "array_namespace",
    "column_weights",
    "bar_participation",
    "benchmark_price",
    "benchmark_window",
    "capped_fills",
    "check_allocations",
    "check_participation_cap",
    "check_rates",
    "corwin_schultz_half_spread",
    "cost_adjusted_prices",
    "execution_outcome",
    "feasible_interval",
    "implementation_shortfall",
    "layout_columns",
    "participation_limit",
    "rate_columns",
    "schedule_from_weights",
    "seed_columns",
    "seed_execution",
    "seed_market",
    "seed_min_durations",
    "seed_order_specs",
    "seed_outcome",
    "uniform_allocations",
]
