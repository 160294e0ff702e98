"""Classical execution schedules as policies (TWAP, static VWAP, a flexible-duration rule, Almgren-Chriss, a
model), and the causal per-window market estimates they and the costed backtest use (volatility, expected bar
volume, half-spread, arrival price).

A policy maps a :class:`~lems.data.windows.WindowSet` and trading limits to allocations in the seed layout
``(N, H, H+1, 4, 2)`` = step × min-duration column × order type (buy-VWAP, buy-TWAP, sell-VWAP, sell-TWAP)
× target (quantity, notional) (EXECUTION.md §5). Policies are separate from the simulator and the reward
(:mod:`lems.backtest` scores them with :func:`lems.execution.seed_outcome`).

Every allocation is built with :func:`lems.execution.schedule_from_weights` or
:func:`lems.execution.allocate_step`, so the limits of EXECUTION.md §2 hold exactly, and every decision for
bar ``t0 + s`` reads only bars ``< t0 + s`` (EXECUTION.md §3).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from lems.data.features import build_slot_index, seasonal_volume_profile
from lems.data.windows import WindowSet
from lems.execution import (
    IS_VWAP_ORDER,
    ORDER_TYPES,
    allocate_step,
    check_allocations,
    corwin_schultz_half_spread,
    rate_columns,
    schedule_from_weights,
)

__all__ = [
    "BASELINES",
    "TWAP",
    "AlmgrenChriss",
    "FlexibleRule",
    "ModelPolicy",
    "Policy",
    "ScheduleTable",
    "StaticVWAP",
    "almgren_chriss_cost",
    "almgren_chriss_frontier",
    "almgren_chriss_holdings",
    "almgren_chriss_kappa",
    "almgren_chriss_trades",
    "arrival_prices",
    "expected_bar_volume",
    "lookback_half_spread",
    "lookback_volatility",
    "static_volume_curve",
    "window_keys",
]

#: 1.0 for the VWAP order types of the seed layout's axis 3, 0.0 for the TWAP ones.
#: True for the buy order types of the seed layout's axis 3.
_IS_BUY = np.array([side == "buy" for side, _ in ORDER_TYPES])
_N_TYPES, _N_TARGETS = len(ORDER_TYPES), 2


@runtime_checkable
class Policy(Protocol):
    """An execution policy: windows and limits in, seed-layout allocations out.

    Attributes:
        name: Label of the policy (a row label in backtests and reports).
    """

    name: str

    def allocate(self, windows: WindowSet, min_rate: Any = 0.0, max_rate: Any = 1.0) -> np.ndarray:
        """Allocations ``(N, H, H+1, 4, 2)`` float64 (fractions of each order per bar).

        Args:
            windows: The windows to execute (one order of every seed type per window).
            min_rate: Minimum fraction of the order per bar while it is open: a scalar or ``(N, 1)``.
            max_rate: Maximum fraction of the order per bar: a scalar or ``(N, 1)``.

        Raises:
            ValueError: infeasible rates (see :func:`lems.execution.check_rates`).
        """
        ...


# --------------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------------
def _rates(windows: WindowSet, min_rate: Any, max_rate: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated rates as float64 arrays ``(N, 1)`` (one limit per window)."""
    return rate_columns(len(windows), min_rate, max_rate, int(windows.n_ahead))


def _check_windows(windows: WindowSet) -> None:
    """Raise ``ValueError`` unless the horizon prices/volumes are usable (finite, positive prices)."""
    n, horizon = len(windows), int(windows.n_ahead)
    if horizon < 1:
        raise ValueError(f"windows.n_ahead must be >= 1, got {horizon}")
    for name in ("prices", "volumes"):
        arr = np.asarray(getattr(windows, name))
        if arr.shape != (n, horizon):
            raise ValueError(f"windows.{name} must have shape ({n}, {horizon}), got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"windows.{name} contain NaN or inf")
    if np.any(np.asarray(windows.prices) <= 0):
        raise ValueError("windows.prices must be positive (bar VWAPs)")
    if np.any(np.asarray(windows.volumes) < 0):
        raise ValueError("windows.volumes must be non-negative")


def _to_seed_layout(per_type: np.ndarray) -> np.ndarray:
    """``(N, H, H+1, 4)`` allocations repeated over the 2 targets: ``(N, H, H+1, 4, 2)`` float64."""
    return np.repeat(np.asarray(per_type, dtype=np.float64)[..., None], _N_TARGETS, axis=-1)


def _columns(weights: np.ndarray, horizon: int) -> np.ndarray:
    """Per-type weights ``(N, H, 4)`` broadcast (as a view) on every column: ``(N, H, H+1, 4)``."""
    n = weights.shape[0]
    return np.broadcast_to(weights[:, :, None, :], (n, horizon, horizon + 1, _N_TYPES))


def _bars_of(windows: WindowSet, asset: str, columns: tuple[str, ...]):
    bars = windows.bars.get(asset) if windows.bars else None
    if bars is None:
        raise ValueError(f"windows.bars has no bars for asset {asset!r} (needed by the baseline)")
    missing = [c for c in columns if c not in bars.columns]
    if missing:
        raise ValueError(f"windows.bars[{asset!r}] lacks column(s) {missing}")
    return bars


def static_volume_curve(windows: WindowSet, n_days: int = 20) -> np.ndarray:
    """Expected volume of each horizon bar as of each window's origin (the classical static VWAP curve).

    For window ``i`` (origin bar ``t0``) and step ``s``: the mean volume of the last ``n_days`` bars of the
    slot (local time of day) of bar ``t0 + s`` that start strictly before ``t0``
    (:func:`lems.data.features.seasonal_volume_profile`; causal).

    Args:
        windows: Windows with ``bars`` (calendar-enriched bars per asset, with ``slot`` and ``volume``).
        n_days: Past occurrences of a slot averaged [days / sessions].

    Returns:
        ``(N, H)`` float64 expected volume [shares / coins per bar], non-negative and finite.

    Raises:
        ValueError: ``n_days < 1``, or bars missing for an asset of the windows.
    """
    if int(n_days) != n_days or n_days < 1:
        raise ValueError(f"n_days must be an integer >= 1, got {n_days!r}")
    n, horizon = len(windows), int(windows.n_ahead)
    out = np.empty((n, horizon), dtype=np.float64)
    assets = np.asarray(windows.asset)
    origin = np.asarray(windows.origin_index, dtype=np.int64)
    for asset in np.unique(assets):
        rows = np.flatnonzero(assets == asset)
        bars = _bars_of(windows, str(asset), ("slot", "volume"))
        index = build_slot_index(bars["slot"].to_numpy(), bars["volume"].to_numpy(np.float64))
        query = origin[rows, None] + np.arange(horizon, dtype=np.int64)[None, :]
        out[rows] = seasonal_volume_profile(index, origin[rows], query, int(n_days))
    return np.maximum(out, 0.0)


def lookback_volatility(windows: WindowSet) -> np.ndarray:
    """Std of the bar-to-bar log VWAP returns of each window's lookback (known at the origin).

    Uses the raw bar VWAPs of bars ``t0 - lookback .. t0 - 1`` (``lookback - 1`` returns, population std).

    Returns:
        ``(N,)`` float64 volatility [log units per bar], finite and non-negative.

    Raises:
        ValueError: bars missing for an asset, or non-positive / non-finite lookback prices.
    """
    n, lookback = len(windows), int(windows.lookback)
    out = np.zeros(n, dtype=np.float64)
    assets = np.asarray(windows.asset)
    origin = np.asarray(windows.origin_index, dtype=np.int64)
    for asset in np.unique(assets):
        rows = np.flatnonzero(assets == asset)
        price = _bars_of(windows, str(asset), ("price",))["price"].to_numpy(np.float64)
        idx = origin[rows, None] + np.arange(-lookback, 0, dtype=np.int64)[None, :]
        if idx.size and (idx.min() < 0 or idx.max() >= price.size):
            raise ValueError(f"lookback of a window of {asset!r} lies outside its bars")
        look = price[idx]
        if not (np.all(np.isfinite(look)) and np.all(look > 0)):
            raise ValueError(f"non-positive or non-finite lookback prices for asset {asset!r}")
        rets = np.diff(np.log(look), axis=1)
        out[rows] = rets.std(axis=1) if rets.shape[1] else 0.0
    return out


def _lookback_rows(windows: WindowSet, asset: str, rows: np.ndarray, column: str) -> np.ndarray:
    """``(len(rows), lookback)`` values of ``column`` over bars ``t0 - lookback .. t0 - 1`` of each window."""
    values = _bars_of(windows, asset, (column,))[column].to_numpy(np.float64)
    origin = np.asarray(windows.origin_index, dtype=np.int64)[rows]
    idx = origin[:, None] + np.arange(-int(windows.lookback), 0, dtype=np.int64)[None, :]
    if idx.size and (idx.min() < 0 or idx.max() >= values.size):
        raise ValueError(f"lookback of a window of {asset!r} lies outside its bars")
    return values[idx]


def _per_asset(windows: WindowSet, fn) -> np.ndarray:
    """``(N,)`` float64: ``fn(asset, rows)`` evaluated per asset of the windows."""
    out = np.zeros(len(windows), dtype=np.float64)
    assets = np.asarray(windows.asset)
    for asset in np.unique(assets):
        rows = np.flatnonzero(assets == asset)
        out[rows] = fn(str(asset), rows)
    return out


def expected_bar_volume(windows: WindowSet) -> np.ndarray:
    """Mean market volume per bar over each window's lookback (bars ``t0 - lookback .. t0 - 1``; causal).

    Times ``H``, the expected horizon volume that an :class:`lems.execution.OrderSize` participation refers to.

    Returns:
        ``(N,)`` float64 [units per bar], finite and > 0 (valid windows have traded volume in the lookback).

    Raises:
        ValueError: bars missing for an asset, a lookback without volume or with invalid volumes.
    """
    def mean_volume(asset: str, rows: np.ndarray) -> np.ndarray:
        volume = _lookback_rows(windows, asset, rows, "volume")
        if not (np.all(np.isfinite(volume)) and np.all(volume >= 0)):
            raise ValueError(f"non-finite or negative lookback volumes for asset {asset!r}")
        mean = volume.mean(axis=1)
        if np.any(mean <= 0):
            raise ValueError(f"a window of {asset!r} has no traded volume in its lookback")
        return mean

    return _per_asset(windows, mean_volume)


def lookback_half_spread(windows: WindowSet) -> np.ndarray:
    """Half bid-ask spread of each window estimated from its lookback's highs and lows (causal).

    The Corwin & Schultz (2012) estimator (:func:`lems.execution.corwin_schultz_half_spread`) over bars
    ``t0 - lookback .. t0 - 1``.

    Returns:
        ``(N,)`` float64 half-spread [fraction of price], >= 0.

    Raises:
        ValueError: bars missing (or without ``high``/``low``) for an asset, invalid highs and lows.
    """
    return _per_asset(windows, lambda asset, rows: corwin_schultz_half_spread(
        _lookback_rows(windows, asset, rows, "high"), _lookback_rows(windows, asset, rows, "low"), axis=1))


def arrival_prices(windows: WindowSet, kind: str = "close") -> np.ndarray:
    """The arrival price of each window: the last price known at the open of the origin bar ``t0``.

    Args:
        windows: the windows.
        kind: "close" (the close of bar ``t0 - 1``, the last traded price before the decision) or "reference"
            (its VWAP, ``windows.reference_price``).

    Returns:
        ``(N,)`` float64 prices [quote currency], finite and > 0.

    Raises:
        ValueError: an unknown ``kind``, bars without ``close``, or non-positive prices.
    """
    if kind == "reference":
        out = np.asarray(windows.reference_price, dtype=np.float64)
    elif kind == "close":
        out = _per_asset(windows, lambda asset, rows: _lookback_rows(windows, asset, rows, "close")[:, -1])
    else:
        raise ValueError(f"kind must be 'close' or 'reference', got {kind!r}")
    if not (np.all(np.isfinite(out)) and np.all(out > 0)):
        raise ValueError("arrival prices must be finite and positive")
    return out


def _type_weights(windows: WindowSet, base: str, n_days: int) -> np.ndarray:
    """Base curves per order type ``(N, H, 4)``: static curve (VWAP types, when ``base == "static"``) or
    uniform."""
    n, horizon = len(windows), int(windows.n_ahead)
    weights = np.ones((n, horizon, _N_TYPES), dtype=np.float64)
    if base == "static" and n:
        weights[:, :, IS_VWAP_ORDER] = static_volume_curve(windows, n_days)[:, :, None]
    return weights


# --------------------------------------------------------------------------------------------------------
# Fixed schedules
# --------------------------------------------------------------------------------------------------------
class TWAP:
    """The naive uniform schedule: ``1/H`` per bar for every order (limits applied exactly).

    Args:
        name: Label of the policy.
    """

    def __init__(self, name: str = "twap") -> None:
        self.name = str(name)

    def allocate(self, windows: WindowSet, min_rate: Any = 0.0, max_rate: Any = 1.0) -> np.ndarray:
        """Uniform allocations ``(N, H, H+1, 4, 2)`` float64 (see :class:`Policy`)."""
        lo, hi = _rates(windows, min_rate, max_rate)
        n, horizon = len(windows), int(windows.n_ahead)
        per_window = schedule_from_weights(np.ones((n, horizon)), lo[:, 0], hi[:, 0], axis=1)  # (N, H)
        shape = (n, horizon, horizon + 1, _N_TYPES, _N_TARGETS)
        return np.ascontiguousarray(np.broadcast_to(per_window[:, :, None, None, None], shape))

    def __repr__(self) -> str:
        return f"TWAP(name={self.name!r})"


class StaticVWAP:
    """The classical static VWAP schedule: trade along the expected (seasonal) volume curve.

    VWAP order types (every column) follow :func:`static_volume_curve` as of the origin; TWAP order types
    get uniform weights. The curve is fixed at the origin (no intra-horizon information).

    Args:
        n_days: Past occurrences of each slot averaged into the curve [days / sessions].
        name: Label of the policy.
    """

    def __init__(self, n_days: int = 20, name: str = "static_vwap") -> None:
        if int(n_days) != n_days or n_days < 1:
            raise ValueError(f"n_days must be an integer >= 1, got {n_days!r}")
        self.n_days = int(n_days)
        self.name = str(name)

    def allocate(self, windows: WindowSet, min_rate: Any = 0.0, max_rate: Any = 1.0) -> np.ndarray:
        """Static-curve allocations ``(N, H, H+1, 4, 2)`` float64 (see :class:`Policy`)."""
        lo, hi = _rates(windows, min_rate, max_rate)
        horizon = int(windows.n_ahead)
        weights = _type_weights(windows, "static", self.n_days)  # (N, H, 4)
        per_type = schedule_from_weights(weights, lo, hi, axis=1)  # (N, H, 4); rates (N, 1) per step
        return _to_seed_layout(_columns(per_type, horizon))

    def __repr__(self) -> str:
        return f"StaticVWAP(n_days={self.n_days}, name={self.name!r})"


# --------------------------------------------------------------------------------------------------------
# Flexible-duration rule
# --------------------------------------------------------------------------------------------------------
def _running_benchmarks(prices: np.ndarray, volumes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Running VWAP and TWAP over the closed bars ``0 .. s-1``, for ``s = 0 .. H-1``.

    Row ``s = 0`` (nothing closed) holds the first price as a harmless placeholder. A VWAP over bars without
    volume falls back to their mean price (as :func:`lems.execution.benchmark_price`).

    Returns:
        ``(vwap, twap)``, each ``(N, H)``.
    """
    n, horizon = prices.shape
    closed = np.arange(horizon, dtype=np.float64)  # number of closed bars at decision s

    def closed_sum(x: np.ndarray) -> np.ndarray:  # sum over bars 0 .. s-1 at column s
        return np.concatenate([np.zeros((n, 1)), np.cumsum(x, axis=1)[:, :-1]], axis=1)

    sum_p, sum_pv, sum_v = closed_sum(prices), closed_sum(prices * volumes), closed_sum(volumes)
    safe = np.maximum(closed, 1.0)[None, :]
    twap = np.where(closed[None, :] > 0, sum_p / safe, prices[:, :1])
    vwap = np.where(sum_v > 0, sum_pv / np.where(sum_v > 0, sum_v, 1.0), twap)
    return vwap, twap


def _favourable(windows: WindowSet, threshold: float, decay: float = 0.0) -> np.ndarray:
    """Whether the last closed bar's price is favourable at the open of each bar, per order type.

    Buy: ``p_{s-1} < running * (1 - threshold_s * sigma)``; sell: ``p_{s-1} > running * (1 + threshold_s *
    sigma)``, with ``threshold_s = threshold * ((H - s) / H) ** decay``; always False at ``s = 0``.

    Returns:
        ``(N, H, 4)`` booleans.
    """
    prices = np.asarray(windows.prices, dtype=np.float64)
    volumes = np.asarray(windows.volumes, dtype=np.float64)
    n, horizon = prices.shape
    vwap, twap = _running_benchmarks(prices, volumes)
    running = np.where(IS_VWAP_ORDER[None, None, :], vwap[:, :, None], twap[:, :, None])  # (N, H, 4)
    last = np.concatenate([prices[:, :1], prices[:, :-1]], axis=1)[:, :, None]  # p_{s-1}
    sigma = lookback_volatility(windows) if threshold > 0 else np.zeros(n)  # threshold 0 needs no bars
    thr = (threshold * sigma)[:, None, None] * (((horizon - np.arange(horizon)) / horizon) ** decay)[None, :, None]
    buy = last < running * (1.0 - thr)
    sell = last > running * (1.0 + thr)
    fav = np.where(_IS_BUY[None, None, :], buy, sell)
    fav[:, 0] = False
    return fav


class FlexibleRule:
    """A classical rule for the flexible ("beat") columns: follow a base curve, finish early on a good price.

    Fixed column (``d = H``): the base schedule. Flexible column with min duration ``d``: follow the base
    schedule; at the open of bar ``s >= max(d - 1, 1)`` (so the benchmark window still covers ``>= d`` bars),
    when the last closed bar's price ``p_{s-1}`` is favourable against the running benchmark over the closed
    bars ``0 .. s-1`` of the horizon (buy: below ``running * (1 - threshold * sigma)``; sell: above
    ``running * (1 + threshold * sigma)``), complete the remainder, as fast as the limits allow (once
    triggered, the order keeps completing at the maximum rate). The running benchmark is the VWAP of the closed
    bars for VWAP order types and their mean price for TWAP types; ``sigma`` is the std of the lookback's
    bar-to-bar log VWAP returns (:func:`lookback_volatility`, known at the origin). Both targets get the same
    allocations. Strictly causal: the decision at bar ``s`` reads horizon bars ``< s`` only.

    Args:
        threshold: Trigger distance in units of ``sigma`` (>= 0; 0 = any favourable price).
        decay: The distance at the open of bar ``s`` is ``threshold * ((H - s) / H) ** decay`` (>= 0; 0, the
            textbook rule: constant; 0.5: it shrinks like the square root of the time left, as the model's rule
            prior, ``lems.layers.decoder.RULE_DECAY``).
        base: "static" (static volume curve for VWAP types, uniform for TWAP types) or "twap" (uniform).
        n_days: Days of the static volume curve (see :class:`StaticVWAP`).
        name: Label of the policy.
    """

    def __init__(self, threshold: float = 0.0, base: str = "static", n_days: int = 20,
                 name: str = "flexible_rule", decay: float = 0.0) -> None:
        if not np.isfinite(threshold) or threshold < 0:
            raise ValueError(f"threshold must be a finite number >= 0 (units of sigma), got {threshold!r}")
        if not np.isfinite(decay) or decay < 0:
            raise ValueError(f"decay must be a finite number >= 0, got {decay!r}")
        self.decay = float(decay)
        if base not in ("static", "twap"):
            raise ValueError(f"base must be 'static' or 'twap', got {base!r}")
        if int(n_days) != n_days or n_days < 1:
            raise ValueError(f"n_days must be an integer >= 1, got {n_days!r}")
        self.threshold, self.base, self.n_days, self.name = float(threshold), base, int(n_days), str(name)

    def allocate(self, windows: WindowSet, min_rate: Any = 0.0, max_rate: Any = 1.0) -> np.ndarray:
        """Rule allocations ``(N, H, H+1, 4, 2)`` float64 (see :class:`Policy`)."""
        lo, hi = _rates(windows, min_rate, max_rate)
        _check_windows(windows)
        n, horizon = len(windows), int(windows.n_ahead)
        weights = _type_weights(windows, self.base, self.n_days)  # (N, H, 4)
        favourable = _favourable(windows, self.threshold, self.decay) if n else np.zeros((0, horizon, _N_TYPES), bool)
        # earliest trigger step per column: s >= d - 1 = k and s >= 1; the fixed column never triggers
        first = np.r_[np.maximum(np.arange(horizon), 1), horizon]  # (H+1,)
        per_type = _rule_steps(weights, favourable, first, lo[:, :, None], hi[:, :, None])
        return _to_seed_layout(per_type)

    def __repr__(self) -> str:
        return (f"FlexibleRule(threshold={self.threshold}, base={self.base!r}, n_days={self.n_days}, "
                f"name={self.name!r}, decay={self.decay})")


def _rule_steps(weights: np.ndarray, favourable: np.ndarray, first: np.ndarray, min_rate: np.ndarray,
                max_rate: np.ndarray) -> np.ndarray:
    """Vectorised step loop of :class:`FlexibleRule` over ``s`` (not over windows).

    Until triggered, the proposal is the one of :func:`lems.execution.schedule_from_weights` (the base curve
    renormalised on what is left); once triggered, the whole remainder. Both go through
    :func:`lems.execution.allocate_step`, so the limits are exact.

    Args:
        weights: ``(N, H, 4)`` base curves. favourable: ``(N, H, 4)`` trigger signal per step.
        first: ``(H+1,)`` earliest trigger step per column. min_rate, max_rate: ``(N, 1, 1)``.

    Returns:
        ``(N, H, H+1, 4)`` float64 allocations.
    """
    n, horizon, types = weights.shape
    tails = np.flip(np.cumsum(np.flip(weights, 1), axis=1), 1)
    remaining = np.ones((n, horizon + 1, types))
    triggered = np.zeros((n, horizon + 1, types), dtype=bool)
    out = np.empty((n, horizon, horizon + 1, types))
    for s in range(horizon):
        triggered |= favourable[:, s, None, :] & (s >= first)[None, :, None]
        tail = tails[:, s]
        share = np.where(tail > 0, weights[:, s] / np.where(tail > 0, tail, 1.0), 1.0 / (horizon - s))
        proposal = np.where(triggered, remaining, remaining * share[:, None, :])
        a = allocate_step(proposal, remaining, horizon - s, min_rate, max_rate)
        out[:, s] = a
        remaining = remaining - a
    return out


# --------------------------------------------------------------------------------------------------------
# A trained model as a policy
# --------------------------------------------------------------------------------------------------------
class ModelPolicy:
    """A trained :class:`lems.models.LargeExecutionModel` (or any Keras model with its inputs) as a policy.

    Args:
        model: Keras model taking ``[X, min_rate (N, 1), max_rate (N, 1)]`` and returning
            ``(N, H, H+1, 4, 2)`` allocations.
        batch_size: Windows per forward pass.
        name: Label of the policy.
    """

    def __init__(self, model: Any, batch_size: int = 256, name: str = "model") -> None:
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.model, self.batch_size, self.name = model, int(batch_size), str(name)

    def allocate(self, windows: WindowSet, min_rate: Any = 0.0, max_rate: Any = 1.0) -> np.ndarray:
        """The model's allocations ``(N, H, H+1, 4, 2)`` as float64 (see :class:`Policy`).

        Raises:
            ValueError: infeasible rates, a model whose output has the wrong shape, or non-finite output.
        """
        lo, hi = _rates(windows, min_rate, max_rate)
        n, horizon = len(windows), int(windows.n_ahead)
        shape = (n, horizon, horizon + 1, _N_TYPES, _N_TARGETS)
        if n == 0:
            return np.zeros(shape)
        x = np.asarray(windows.X, dtype=np.float32)
        out = self.model.predict([x, lo.astype(np.float32), hi.astype(np.float32)], batch_size=self.batch_size,
                                 verbose=0)
        out = np.asarray(out, dtype=np.float64)
        if out.shape != shape:
            raise ValueError(f"model output has shape {out.shape}, expected {shape} (check n_ahead)")
        if not np.all(np.isfinite(out)):
            raise ValueError("model output contains NaN or inf")
        return out

    def __repr__(self) -> str:
        return f"ModelPolicy(model={getattr(self.model, 'name', self.model)!r}, name={self.name!r})"


# --------------------------------------------------------------------------------------------------------
# Almgren-Chriss optimal execution
# --------------------------------------------------------------------------------------------------------
def _ac_check(risk_aversion: Any, sigma: Any, eta: float, gamma: float, tau: float) -> tuple[np.ndarray, ...]:
    """Validated Almgren-Chriss parameters as float64 arrays; ``eta_tilde = eta - gamma tau / 2``."""
    lam = np.asarray(risk_aversion, dtype=np.float64)
    sig = np.asarray(sigma, dtype=np.float64)
    for name, value, allowed in (("risk_aversion", lam, "[0, inf)"), ("sigma", sig, "[0, inf) (fraction per bar)")):
        if not np.all(np.isfinite(value)) or np.any(value < 0):
            raise ValueError(f"{name} must be in {allowed}, got {value.min() if value.size else value!r}")
    for name, value, allowed in (("eta", eta, "(0, inf)"), ("tau", tau, "(0, inf) (bars)")):
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be in {allowed}, got {value!r}")
    if not np.isfinite(gamma) or gamma < 0:
        raise ValueError(f"gamma must be in [0, inf), got {gamma!r}")
    eta_tilde = eta - 0.5 * gamma * tau
    if eta_tilde <= 0:
        raise ValueError(f"eta must exceed gamma * tau / 2 ({0.5 * gamma * tau:g}) for a convex cost, got {eta!r}")
    return lam, sig, np.float64(eta_tilde)


def almgren_chriss_kappa(risk_aversion: Any, sigma: Any, eta: float, gamma: float = 0.0,
                         tau: float = 1.0) -> np.ndarray:
    """Urgency ``kappa`` of the discrete Almgren-Chriss solution (Almgren & Chriss 2000, eq. for ``kappa``).

    ``2 (cosh(kappa tau) - 1) / tau^2 = kappa_tilde^2 = lambda sigma^2 / eta_tilde`` with ``eta_tilde = eta -
    gamma tau / 2``; solved as ``kappa = 2 / tau * asinh(kappa_tilde tau / 2)`` (the same equation, accurate
    for small ``kappa``).

    Args:
        risk_aversion: ``lambda`` >= 0 [per unit of the order's value]: the objective is ``E + lambda Var`` of the
            shortfall as a fraction of the order's value at the arrival price.
        sigma: volatility of the relative price per bar (fraction), >= 0.
        eta: linear temporary impact [fraction of price per (fraction of the order per bar)], > 0.
        gamma: linear permanent impact [fraction of price per fraction of the order], >= 0.
        tau: bar length in bars (1).

    Returns:
        ``kappa`` [1 / bar], broadcast over ``risk_aversion`` and ``sigma``.

    Raises:
        ValueError: a parameter outside its range, or ``eta <= gamma tau / 2``.
    """
    lam, sig, eta_tilde = _ac_check(risk_aversion, sigma, eta, gamma, tau)
    kappa_tilde = np.sqrt(lam * sig**2 / eta_tilde)
    return 2.0 / tau * np.arcsinh(kappa_tilde * tau / 2.0)


def almgren_chriss_holdings(horizon: int, risk_aversion: Any, sigma: Any, eta: float, gamma: float = 0.0,
                            tau: float = 1.0) -> np.ndarray:
    """Optimal remaining holdings ``x_j = sinh(kappa (T - t_j)) / sinh(kappa T)``, ``j = 0 .. H`` (``X = 1``).

    Almgren & Chriss (2000), the discrete-time optimal trajectory for ``E + lambda Var``; ``t_j = j tau``,
    ``T = H tau``. ``kappa = 0`` (no risk aversion or no volatility) gives the straight line ``1 - j / H`` (TWAP).
    Evaluated as ``exp(-kappa t_j) (1 - exp(-2 kappa (T - t_j))) / (1 - exp(-2 kappa T))`` (no overflow).

    Args:
        horizon: ``H`` >= 1 (bars).
        risk_aversion, sigma, eta, gamma, tau: see :func:`almgren_chriss_kappa`.

    Returns:
        ``(..., H + 1)`` float64 holdings (fractions of the order), ``x_0 = 1``, ``x_H = 0``, non-increasing.
    """
    if isinstance(horizon, bool) or int(horizon) != horizon or horizon < 1:
        raise ValueError(f"horizon must be an integer number of bars >= 1, got {horizon!r}")
    kappa = almgren_chriss_kappa(risk_aversion, sigma, eta, gamma, tau)[..., None]
    t = np.arange(int(horizon) + 1, dtype=np.float64) * tau
    total = int(horizon) * tau
    positive = kappa > 0
    k = np.where(positive, kappa, 1.0)
    curved = np.exp(-k * t) * -np.expm1(-2.0 * k * (total - t)) / -np.expm1(-2.0 * k * total)
    return np.where(positive, curved, 1.0 - t / total)


def almgren_chriss_trades(horizon: int, risk_aversion: Any, sigma: Any, eta: float, gamma: float = 0.0,
                          tau: float = 1.0) -> np.ndarray:
    """Optimal trade list ``n_j = x_{j-1} - x_j``, ``j = 1 .. H`` (fractions of the order, summing to 1).

    Returns:
        ``(..., H)`` float64, >= 0 (front-loaded for ``kappa > 0``).
    """
    x = almgren_chriss_holdings(horizon, risk_aversion, sigma, eta, gamma, tau)
    return np.maximum(-np.diff(x, axis=-1), 0.0)


def almgren_chriss_cost(trades: Any, sigma: Any, eta: float, gamma: float = 0.0, epsilon: float = 0.0,
                        tau: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Expected cost and variance of a trade list under the Almgren & Chriss (2000) model (``X = 1``).

    ``E = gamma / 2 + epsilon sum |n_k| + eta_tilde / tau sum n_k^2`` and ``V = sigma^2 tau sum_{k=1}^{H} x_k^2``
    with ``x_k = 1 - sum_{j<=k} n_j`` the holdings after bar ``k``: fractions of the order's value (times 1e4 for
    bps).

    Args:
        trades: ``(..., H)`` fractions of the order per bar (summing to 1).
        sigma, eta, gamma, tau: see :func:`almgren_chriss_kappa`. epsilon: fixed cost per unit traded
            (half-spread, fraction of price), >= 0.

    Returns:
        ``(expected, variance)``, each reduced over the last axis.
    """
    _, sig, eta_tilde = _ac_check(0.0, sigma, eta, gamma, tau)
    if not np.isfinite(epsilon) or epsilon < 0:
        raise ValueError(f"epsilon must be in [0, inf), got {epsilon!r}")
    n = np.asarray(trades, dtype=np.float64)
    x = 1.0 - np.cumsum(n, axis=-1)
    expected = 0.5 * gamma + epsilon * np.abs(n).sum(axis=-1) + eta_tilde / tau * (n**2).sum(axis=-1)
    variance = sig**2 * tau * (x**2).sum(axis=-1)
    return expected, variance


def almgren_chriss_frontier(horizon: int, risk_aversions: Any, sigma: float, eta: float, gamma: float = 0.0,
                            epsilon: float = 0.0, tau: float = 1.0):
    """The efficient frontier of Almgren & Chriss (2000): expected cost against risk, one row per ``lambda``.

    Args:
        horizon: ``H`` (bars).
        risk_aversions: the ``lambda`` grid (>= 0).
        sigma, eta, gamma, epsilon, tau: see :func:`almgren_chriss_cost`.

    Returns:
        A ``pandas.DataFrame`` with columns ``risk_aversion``, ``kappa`` [1/bar], ``expected_cost_bps`` and
        ``std_bps`` (standard deviation of the shortfall), in the order of ``risk_aversions``; the cost rises and
        the risk falls along increasing ``lambda``.
    """
    import pandas as pd

    lam = np.atleast_1d(np.asarray(risk_aversions, dtype=np.float64))
    trades = almgren_chriss_trades(horizon, lam, sigma, eta, gamma, tau)
    expected, variance = almgren_chriss_cost(trades, sigma, eta, gamma, epsilon, tau)
    return pd.DataFrame({"risk_aversion": lam, "kappa": almgren_chriss_kappa(lam, sigma, eta, gamma, tau),
                         "expected_cost_bps": expected * 1e4, "std_bps": np.sqrt(variance) * 1e4})


class AlmgrenChriss:
    """The Almgren & Chriss (2000) optimal schedule for a risk aversion ``lambda`` (closed form).

    Trades ``n_j = x_{j-1} - x_j`` with ``x_j = sinh(kappa (H - j)) / sinh(kappa H)``
    (:func:`almgren_chriss_trades`), ``sigma`` per window from its lookback (:func:`lookback_volatility`, causal)
    unless given. The schedule is fixed at the origin and the same for every order type, column and target; the
    limits are applied exactly by :func:`lems.execution.schedule_from_weights` (unchanged when they do not bind).
    ``lambda = 0`` is TWAP.

    Args:
        risk_aversion: ``lambda`` >= 0, per unit of the order's value (see :func:`almgren_chriss_kappa`).
        eta: linear temporary impact [fraction of price per (fraction of the order per bar)], > 0. For a linear
            participation cost ``c = k sigma pi`` (:class:`lems.execution.SquareRootImpact` with ``delta = 1``)
            and an order of ``rho`` of the horizon volume: ``eta = k sigma rho H``.
        gamma: linear permanent impact [fraction of price per fraction of the order], >= 0.
        sigma: a fixed per-bar volatility (fraction) for every window; ``None``: each window's lookback.
        name: label of the policy.
    """

    def __init__(self, risk_aversion: float = 0.0, eta: float = 1e-3, gamma: float = 0.0,
                 sigma: float | None = None, name: str = "almgren_chriss") -> None:
        _ac_check(risk_aversion, 0.0 if sigma is None else sigma, eta, gamma, 1.0)
        if np.ndim(risk_aversion) or (sigma is not None and np.ndim(sigma)):
            raise ValueError("risk_aversion and sigma must be scalars")
        self.risk_aversion, self.eta, self.gamma = float(risk_aversion), float(eta), float(gamma)
        self.sigma = None if sigma is None else float(sigma)
        self.name = str(name)

    def allocate(self, windows: WindowSet, min_rate: Any = 0.0, max_rate: Any = 1.0) -> np.ndarray:
        """Almgren-Chriss allocations ``(N, H, H+1, 4, 2)`` float64 (see :class:`Policy`)."""
        lo, hi = _rates(windows, min_rate, max_rate)
        n, horizon = len(windows), int(windows.n_ahead)
        if n == 0:
            return np.zeros((0, horizon, horizon + 1, _N_TYPES, _N_TARGETS))
        sigma = lookback_volatility(windows) if self.sigma is None else np.full(n, self.sigma)
        trades = almgren_chriss_trades(horizon, self.risk_aversion, sigma, self.eta, self.gamma)  # (N, H)
        per_window = schedule_from_weights(trades, lo[:, 0], hi[:, 0], axis=1)
        per_type = np.repeat(per_window[:, :, None], _N_TYPES, axis=2)
        return _to_seed_layout(_columns(per_type, horizon))

    def __repr__(self) -> str:
        return (f"AlmgrenChriss(risk_aversion={self.risk_aversion}, eta={self.eta}, gamma={self.gamma}, "
                f"sigma={self.sigma}, name={self.name!r})")


#: The classical baselines by name (classes; instantiate with their defaults or parameters).
BASELINES: dict[str, type] = {"twap": TWAP, "static_vwap": StaticVWAP, "flexible_rule": FlexibleRule,
                              "almgren_chriss": AlmgrenChriss}


def window_keys(asset: Any, origin: Any):
    """``(asset, origin)`` of each window as a pandas MultiIndex (origin in UTC nanoseconds; naive = UTC): the key
    under which stored allocations are found again for any subset of their windows."""
    import pandas as pd

    origin = pd.DatetimeIndex(pd.to_datetime(np.asarray(origin), utc=True))
    return pd.MultiIndex.from_arrays([np.asarray(asset).astype(str), origin.as_unit("ns")])


class ScheduleTable:
    """Allocations computed elsewhere (another model, a desk's schedules), looked up by asset and origin.

    Lets :func:`lems.backtest.backtest` score any external schedule with the same arithmetic as the
    built-in policies. The table is checked once against the trading limits given to :meth:`allocate`.

    Args:
        allocations: ``(M, H, H+1, 4, 2)`` fractions of each order per bar (seed layout).
        asset: ``(M,)`` symbol of each row.
        origin: ``(M,)`` origin bar open times ``t0`` (UTC, or naive = UTC).
        name: Label of the policy.

    Raises:
        ValueError: shapes that disagree, duplicate ``(asset, origin)`` keys.
    """

    def __init__(self, allocations: Any, asset: Any, origin: Any, name: str = "schedule_table") -> None:
        import pandas as pd

        self.allocations = np.asarray(allocations, dtype=np.float64)
        if self.allocations.ndim != 5 or self.allocations.shape[2] != self.allocations.shape[1] + 1:
            raise ValueError(f"allocations must be (M, H, H+1, 4, 2), got shape {self.allocations.shape}")
        origin = pd.DatetimeIndex(pd.to_datetime(np.asarray(origin), utc=True))
        asset = np.asarray(asset).astype(str)
        if not len(asset) == len(origin) == len(self.allocations):
            raise ValueError(f"allocations ({len(self.allocations)}), asset ({len(asset)}) and origin "
                             f"({len(origin)}) must have the same length")
        self.index = window_keys(asset, origin)
        if self.index.has_duplicates:
            raise ValueError("ScheduleTable has duplicate (asset, origin) rows")
        self.name = str(name)

    def allocate(self, windows: WindowSet, min_rate: Any = 0.0, max_rate: Any = 1.0) -> np.ndarray:
        """The stored allocations of ``windows`` (see :class:`Policy`).

        Raises:
            ValueError: a window with no stored row, a horizon that differs, or stored allocations that break
                the invariants or the limits (EXECUTION.md §2).
        """
        import pandas as pd

        lo, hi = _rates(windows, min_rate, max_rate)
        horizon = int(windows.n_ahead)
        if self.allocations.shape[1] != horizon:
            raise ValueError(f"ScheduleTable has horizon {self.allocations.shape[1]}, the windows {horizon}")
        keys = window_keys(windows.asset, windows.origin)
        rows = self.index.get_indexer(keys)
        if (rows < 0).any():
            first = keys[int(np.flatnonzero(rows < 0)[0])]
            raise ValueError(f"ScheduleTable {self.name!r} has no allocations for {int((rows < 0).sum())} "
                             f"window(s), e.g. asset {first[0]!r} origin {first[1]}")
        out = self.allocations[rows]
        check_allocations(out, lo.reshape(-1, 1, 1, 1, 1), hi.reshape(-1, 1, 1, 1, 1))
        return out

    def __repr__(self) -> str:
        return f"ScheduleTable(rows={len(self.allocations)}, name={self.name!r})"
