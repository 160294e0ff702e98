"""Classical schedules as policies: TWAP, the static volume curve, the static curve tilted by a factor fitted on
validation windows, and the flexible-duration rule.

Every allocation is built with :func:`lems.execution.schedule_from_weights` or :func:`lems.execution.allocate_step`,
so the limits of docs/execution.md §2 hold exactly, and every decision for bar ``t0 + s`` reads only bars ``< t0 + s``
(docs/execution.md §3).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lems.data.estimates import lookback_volatility, static_volume_curve
from lems.data.windows import WindowSet
from lems.execution import IS_VWAP_ORDER, allocate_step, rule_threshold_scale, schedule_from_weights
from lems.policies.base import _IS_BUY, _N_TARGETS, _N_TYPES, _check_windows, _columns, _rates, _to_seed_layout

__all__ = ["TWAP", "FlexibleRule", "StaticTilt", "StaticVWAP"]


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
        """Uniform allocations ``(N, H, H+1, 4, 2)`` float64 (see :class:`~lems.policies.Policy`)."""
        lo, hi = _rates(windows, min_rate, max_rate)
        n, horizon = len(windows), int(windows.n_ahead)
        per_window = schedule_from_weights(np.ones((n, horizon)), lo[:, 0], hi[:, 0], axis=1)  # (N, H)
        shape = (n, horizon, horizon + 1, _N_TYPES, _N_TARGETS)
        return np.ascontiguousarray(np.broadcast_to(per_window[:, :, None, None, None], shape))

    def __repr__(self) -> str:
        return f"TWAP(name={self.name!r})"


class StaticVWAP:
    """The classical static VWAP schedule: trade along the expected (seasonal) volume curve.

    VWAP order types (every column) follow :func:`~lems.data.estimates.static_volume_curve` as of the origin; TWAP
    order types get uniform weights. The curve is fixed at the origin (no intra-horizon information).

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
        """Static-curve allocations ``(N, H, H+1, 4, 2)`` float64 (see :class:`~lems.policies.Policy`)."""
        lo, hi = _rates(windows, min_rate, max_rate)
        horizon = int(windows.n_ahead)
        weights = _type_weights(windows, "static", self.n_days)  # (N, H, 4)
        per_type = schedule_from_weights(weights, lo, hi, axis=1)  # (N, H, 4); rates (N, 1) per step
        return _to_seed_layout(_columns(per_type, horizon))

    def __repr__(self) -> str:
        return f"StaticVWAP(n_days={self.n_days}, name={self.name!r})"


class StaticTilt:
    """The static volume curve reshaped per horizon step by a fixed factor fitted on validation windows.

    VWAP order types (every column) follow the weights ``c_s exp(t_s)``: the static curve ``c_s`` of the window
    (:func:`lems.data.estimates.static_volume_curve`, as of its origin) times the step's factor; TWAP order types
    get uniform weights; both targets the same (as :class:`StaticVWAP`). The factors are constants fitted once
    (:meth:`fit`), so the schedule is fixed at the origin and causal.

    The fit (:meth:`fit`): per step ``s`` of the horizon, the geometric mean over the fitting windows of the
    realised volume share over the static curve's share,
    ``t_s = mean_i [log max(v_is, f) - log max(c_is, f)]`` with ``v_is = V_is / sum_u V_iu`` the realised share,
    ``c_is`` the static curve normalised over the horizon and the floor ``f = SHARE_FLOOR / H`` (a bar without
    volume costs a bounded log, not ``-inf``). It is the least-squares fit of the log shares per step, i.e. it
    removes the static curve's average bias at each step of the horizon (e.g. a profile averaged over ``n_days``
    that under-weights the bars right after the origin). Factors are stored centred (their maximum is 0): only
    the shape matters.

    Args:
        log_tilt: ``(H,)`` log factors ``t_s`` (finite), for horizon ``H``.
        n_days: Past occurrences of each slot averaged into the static curve [days / sessions].
        name: Label of the policy.

    Raises:
        ValueError: a ``log_tilt`` that is not a finite 1-d array, a bad ``n_days``.
    """

    #: Floor of a share in the fit, as a fraction of the uniform share ``1 / H``.
    SHARE_FLOOR = 1e-3

    def __init__(self, log_tilt: Any, n_days: int = 20, name: str = "static_tilt") -> None:
        tilt = np.asarray(log_tilt, dtype=np.float64)
        if tilt.ndim != 1 or tilt.size < 1 or not np.all(np.isfinite(tilt)):
            raise ValueError(f"log_tilt must be a finite (H,) array, got shape {tilt.shape}")
        if int(n_days) != n_days or n_days < 1:
            raise ValueError(f"n_days must be an integer >= 1, got {n_days!r}")
        self.log_tilt = tilt - tilt.max()
        self.n_days, self.name = int(n_days), str(name)

    @classmethod
    def fit(cls, windows: WindowSet, n_days: int = 20, name: str = "static_tilt") -> StaticTilt:
        """The tilt fitted on ``windows`` (validation windows: never the ones reported).

        Reads only the given windows: their realised horizon volumes and their static curves (which read bars
        before each origin).

        Raises:
            ValueError: no window, a window without volume in its horizon, bars missing for the static curve.
        """
        if len(windows) == 0:
            raise ValueError("StaticTilt.fit needs at least one window")
        horizon = int(windows.n_ahead)
        volumes = np.asarray(windows.volumes, dtype=np.float64)
        total = volumes.sum(axis=1, keepdims=True)
        if not (np.all(np.isfinite(volumes)) and np.all(volumes >= 0) and np.all(total > 0)):
            raise ValueError("StaticTilt.fit needs finite, non-negative horizon volumes and traded volume in every "
                             "window's horizon")
        floor = cls.SHARE_FLOOR / horizon
        return cls(np.mean(np.log(np.maximum(volumes / total, floor))
                           - np.log(np.maximum(_shares(static_volume_curve(windows, n_days)), floor)), axis=0),
                   n_days=n_days, name=name)

    def allocate(self, windows: WindowSet, min_rate: Any = 0.0, max_rate: Any = 1.0) -> np.ndarray:
        """Tilted static-curve allocations ``(N, H, H+1, 4, 2)`` float64 (see :class:`~lems.policies.Policy`).

        Raises:
            ValueError: infeasible rates, windows of another horizon than the fitted one.
        """
        lo, hi = _rates(windows, min_rate, max_rate)
        horizon = int(windows.n_ahead)
        if horizon != self.log_tilt.size:
            raise ValueError(f"StaticTilt was fitted for horizon {self.log_tilt.size}, the windows have {horizon}")
        weights = _type_weights(windows, "static", self.n_days)  # (N, H, 4)
        weights[:, :, IS_VWAP_ORDER] *= np.exp(self.log_tilt)[None, :, None]
        per_type = schedule_from_weights(weights, lo, hi, axis=1)
        return _to_seed_layout(_columns(per_type, horizon))

    def __repr__(self) -> str:
        return f"StaticTilt(horizon={self.log_tilt.size}, n_days={self.n_days}, name={self.name!r})"


def _shares(curve: np.ndarray) -> np.ndarray:
    """``(N, H)`` weights as shares of their row (uniform for a row without weight)."""
    total = curve.sum(axis=1, keepdims=True)
    return np.where(total > 0, curve / np.where(total > 0, total, 1.0), 1.0 / curve.shape[1])


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
    thr = (threshold * sigma)[:, None, None] * rule_threshold_scale(horizon, decay)[None, :, None]
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
    bar-to-bar log VWAP returns (:func:`~lems.data.estimates.lookback_volatility`, known at the origin). Both targets
    get the same allocations. Strictly causal: the decision at bar ``s`` reads horizon bars ``< s`` only.

    Args:
        threshold: Trigger distance in units of ``sigma`` (>= 0; 0 = any favourable price).
        decay: The distance at the open of bar ``s`` is ``threshold * ((H - s) / H) ** decay`` (>= 0; 0, the
            textbook rule: constant; 0.5: it shrinks like the square root of the time left, as the model's rule
            prior, ``lems.layers.decoder.RULE_DECAY``; :func:`lems.execution.rule_threshold_scale`).
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
        """Rule allocations ``(N, H, H+1, 4, 2)`` float64 (see :class:`~lems.policies.Policy`)."""
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

