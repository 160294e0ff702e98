"""What bounds fixed-duration VWAP tracking: an exact decomposition of the diff, the share-forecast R² and a ladder
of non-causal share forecasts.

Notation, per window ``i`` (one order, fixed duration: the benchmark window is the whole horizon of ``H`` bars):

* ``x_s`` the schedule: fraction of the order traded in bar ``s`` (``x >= 0``, ``sum_s x_s = 1``);
* ``w_s`` the realised volume shares: bar volume over the horizon volume (``sum_s w_s = 1``);
* ``p_s`` the bar VWAP, ``VWAP = sum_s w_s p_s`` the benchmark, ``d_s = p_s / VWAP - 1`` the price deviation
  [fraction] (so ``sum_s w_s d_s = 0``);
* ``e_s = x_s - w_s`` the share error [fraction of the order].

The achieved price of a quantity order is ``P = sum_s x_s p_s`` and its signed diff against VWAP is exactly::

    diff = P / VWAP - 1 = sum_s x_s p_s / VWAP - sum_s w_s p_s / VWAP = sum_s (x_s - w_s) d_s = sum_s c_s,

with the per-step contribution ``c_s = e_s d_s`` (the ``-1`` cancels because both shares sum to 1; the ``d``'s
``-1`` because ``sum_s e_s = 0``). A notional order's achieved price is a harmonic mean and is not linear in
``x``: everything here is the quantity order. :func:`tracking_decomposition` returns the pieces with identities
that hold to float rounding; :func:`tracking_inputs` builds ``x, w, d`` for any policy on any window set exactly as
:func:`lems.backtest.backtest` scores its fixed-duration VWAP order; :func:`share_r2` measures how well a schedule
forecasts the realised remaining-volume shares; :func:`ladder_schedule` builds the non-causal rungs.

All arrays are numpy float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from lems.data.targets import seed_targets
from lems.data.estimates import static_volume_curve
from lems.data.windows import WindowSet
from lems.execution import ORDER_TYPES, SIDES

__all__ = [
    "LADDER_MASSES",
    "TrackingDecomposition",
    "TrackingInputs",
    "ladder",
    "ladder_schedule",
    "market_shares",
    "remaining_shares",
    "share_r2",
    "static_shares",
    "tracking_decomposition",
    "tracking_inputs",
]

#: Tolerance on ``sum_s x_s = 1`` and ``sum_s w_s = 1`` [fraction of the order].
SUM_TOL = 1e-6
#: Tolerance on ``sum_s w_s d_s = 0`` (``d`` must be measured against the ``w``-weighted VWAP) [fraction].
VWAP_TOL = 1e-8
# A spread at or below this is float rounding of an exact schedule [bps].
_ZERO_SPREAD_BPS = 1e-9


# ----------------------------------------------------------------------------------------------------------------
# Checks
# ----------------------------------------------------------------------------------------------------------------
def _matrix(name: str, value: Any, shape: tuple[int, int] | None = None) -> np.ndarray:
    """``value`` as a finite 2-D float64 array ``(n, H)`` (of ``shape`` when given)."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] < 1:
        raise ValueError(f"{name} must be a 2-D array (windows, horizon steps), got shape {arr.shape}")
    if shape is not None and arr.shape != shape:
        raise ValueError(f"{name} must have shape {shape} like the schedules, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} holds NaN or inf")
    return arr


def _shares(name: str, value: Any, shape: tuple[int, int] | None = None) -> np.ndarray:
    """Non-negative rows summing to 1 (within :data:`SUM_TOL`)."""
    arr = _matrix(name, value, shape)
    if np.any(arr < 0):
        raise ValueError(f"{name} must be non-negative (fractions per bar)")
    off = np.abs(arr.sum(axis=1) - 1.0)
    if np.any(off > SUM_TOL):
        i = int(np.argmax(off))
        raise ValueError(f"{name} rows must sum to 1 (fractions of the order / of the horizon volume); "
                         f"row {i} sums to {arr[i].sum():.9g}")
    return arr


def _curve(name: str, value: Any, shape: tuple[int, int]) -> np.ndarray:
    """A share curve given per window ``(n, H)`` or once for all windows ``(H,)``, broadcast to ``shape``."""
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim == 1:
        arr = np.broadcast_to(arr, shape)
    return _shares(name, arr, shape)


# ----------------------------------------------------------------------------------------------------------------
# Decomposition
# ----------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class TrackingDecomposition:
    """The fixed-duration VWAP diff of one schedule over ``n`` windows, taken apart (see the module docstring).

    Per window (``(n,)``) and per window and step (``(n, H)``):

    Attributes:
        share_error: ``e = x - w`` ``(n, H)`` [fraction of the order].
        price_deviation: ``d = p / VWAP - 1`` ``(n, H)`` [fraction].
        contribution: ``c = e * d`` ``(n, H)`` [fraction]; ``contribution.sum(1) == diff``.
        diff: signed diff ``P / VWAP - 1`` ``(n,)`` [fraction] = ``sum_s c_s``.
        window_share_error: ``sigma_e = sqrt(mean_s e_s^2)`` ``(n,)`` [fraction of the order per bar].
        window_price_dispersion: ``sigma_d = sqrt(mean_s (d_s - mean_s d)^2)`` ``(n,)`` [fraction].
        window_correlation: ``rho = mean_s e_s (d_s - mean_s d) / (sigma_e sigma_d)`` ``(n,)`` in [-1, 1] (0 when
            ``sigma_e`` or ``sigma_d`` is 0). Since ``sum_s e_s = 0``: ``diff = H * sigma_e * sigma_d * rho``
            exactly (share error × price dispersion × their correlation within the window).

    Per step (``(H,)``), over windows:

    Attributes:
        step_mean: ``mean_i c_is``; sums over steps to :attr:`bias`.
        step_covariance: ``cov_i(c_is, diff_i)`` (ddof 1); sums over steps to ``spread ** 2`` (the variance of the
            diff, split by the step where the error is made: a step whose contribution co-moves with the total
            adds to the spread, one that offsets it subtracts).
        step_variance: ``var_i(c_is)`` (ddof 1): the step's own variance (the diagonal of the split above).
        step_second_moment: ``mean_i c_is diff_i``; sums over steps to ``mean_i diff_i ** 2``.
        step_share_rms: ``sqrt(mean_i e_is^2)`` [fraction of the order].
        step_price_rms: ``sqrt(mean_i d_is^2)`` [fraction].
    """

    share_error: np.ndarray
    price_deviation: np.ndarray
    contribution: np.ndarray
    diff: np.ndarray
    window_share_error: np.ndarray
    window_price_dispersion: np.ndarray
    window_correlation: np.ndarray
    step_mean: np.ndarray
    step_covariance: np.ndarray
    step_variance: np.ndarray
    step_second_moment: np.ndarray
    step_share_rms: np.ndarray
    step_price_rms: np.ndarray

    @property
    def horizon(self) -> int:
        """``H`` [bars]."""
        return int(self.share_error.shape[1])

    @property
    def spread(self) -> float:
        """Tracking spread: ``std_i(diff_i)`` with ddof 1 [fraction]."""
        return float(np.std(self.diff, ddof=1))

    @property
    def bias(self) -> float:
        """Mean signed diff [fraction]."""
        return float(np.mean(self.diff))

    @property
    def mean_abs_diff(self) -> float:
        """``mean_i |diff_i|`` [fraction]."""
        return float(np.mean(np.abs(self.diff)))

    @property
    def rms_diff(self) -> float:
        """``sqrt(mean_i diff_i^2)`` [fraction] = ``H * share_rms * price_dispersion * effective_correlation``."""
        return float(np.sqrt(np.mean(self.diff**2)))

    @property
    def share_rms(self) -> float:
        """``sqrt(mean_i sigma_e,i^2)``: RMS share error per bar over all windows and steps [fraction of the
        order]."""
        return float(np.sqrt(np.mean(self.window_share_error**2)))

    @property
    def price_dispersion(self) -> float:
        """``sqrt(mean_i sigma_d,i^2)``: RMS within-window dispersion of the price deviation [fraction]."""
        return float(np.sqrt(np.mean(self.window_price_dispersion**2)))

    @property
    def effective_correlation(self) -> float:
        """``rms_diff / (H * share_rms * price_dispersion)`` (0 when the denominator is 0): how much of the
        possible damage the share errors do, given their size and the price moves; it is the RMS of
        ``rho_i`` when share error and dispersion are the same in every window."""
        scale = self.horizon * self.share_rms * self.price_dispersion
        return float(self.rms_diff / scale) if scale > 0 else 0.0

    def summary(self) -> dict[str, float]:
        """The per-schedule numbers, diffs in bps (1e-4), shares in fractions of the order."""
        return {
            "n_windows": float(self.diff.shape[0]),
            "spread_bps": self.spread * 1e4,
            "bias_bps": self.bias * 1e4,
            "mean_abs_diff_bps": self.mean_abs_diff * 1e4,
            "rms_diff_bps": self.rms_diff * 1e4,
            "share_rms": self.share_rms,
            "price_dispersion_bps": self.price_dispersion * 1e4,
            "effective_correlation": self.effective_correlation,
            "mean_correlation": float(np.mean(self.window_correlation)),
        }

    def per_step(self) -> pd.DataFrame:
        """One row per horizon step: ``step``, the ``step_*`` arrays (diff quantities in bps, variances in bps²),
        and ``variance_fraction`` = ``step_covariance / spread**2`` (sums to 1; 0 when the spread is 0)."""
        variance = float(np.var(self.diff, ddof=1))
        fraction = self.step_covariance / variance if variance > 0 else np.zeros_like(self.step_covariance)
        return pd.DataFrame({
            "step": np.arange(self.step_mean.shape[0]),
            "mean_bps": self.step_mean * 1e4,
            "covariance_bps2": self.step_covariance * 1e8,
            "variance_bps2": self.step_variance * 1e8,
            "second_moment_bps2": self.step_second_moment * 1e8,
            "variance_fraction": fraction,
            "share_rms": self.step_share_rms,
            "price_rms_bps": self.step_price_rms * 1e4,
        })


def tracking_decomposition(x: Any, w: Any, p_over_vwap: Any) -> TrackingDecomposition:
    """Decompose the fixed-duration VWAP diff ``sum_s (x_s - w_s) d_s`` of a schedule (module docstring).

    Args:
        x: Schedules ``(n, H)``: fraction of the order per bar, non-negative, rows summing to 1.
        w: Realised volume shares ``(n, H)``: bar volume over the horizon volume, non-negative, rows summing to 1
            (the benchmark's weights).
        p_over_vwap: Price deviations ``d = p_s / VWAP - 1`` ``(n, H)`` [fraction], VWAP the ``w``-weighted mean
            of the bar prices (so ``sum_s w_s d_s = 0``).

    Returns:
        A :class:`TrackingDecomposition`.

    Raises:
        ValueError: shapes that differ or are not 2-D, fewer than 2 windows, NaN/inf, negative shares, rows not
            summing to 1 (tolerance 1e-6), or ``d`` not measured against the ``w``-VWAP (``|sum_s w_s d_s| >
            1e-8``), or ``d <= -1`` (a non-positive price).
    """
    x = _shares("x (schedules)", x)
    w = _shares("w (realised volume shares)", w, x.shape)
    d = _matrix("p_over_vwap (price deviations)", p_over_vwap, x.shape)
    if x.shape[0] < 2:
        raise ValueError(f"the decomposition needs at least 2 windows (a spread), got {x.shape[0]}")
    if np.any(d <= -1.0):
        raise ValueError("p_over_vwap must be > -1 (prices are positive)")
    drift = np.abs(np.sum(w * d, axis=1))
    if np.any(drift > VWAP_TOL):
        raise ValueError(f"p_over_vwap must be p / VWAP - 1 with VWAP = sum_s w_s p_s (sum_s w_s d_s = 0); a row "
                         f"gives {drift.max():.3g}: pass deviations from the w-weighted VWAP")
    e = x - w
    c = e * d
    diff = c.sum(axis=1)
    centred = d - d.mean(axis=1, keepdims=True)
    sigma_e = np.sqrt(np.mean(e**2, axis=1))
    sigma_d = np.sqrt(np.mean(centred**2, axis=1))
    scale = sigma_e * sigma_d
    cov = np.mean(e * centred, axis=1)
    rho = np.divide(cov, scale, out=np.zeros_like(cov), where=scale > 0)
    n = x.shape[0]
    c_centred = c - c.mean(axis=0)
    diff_centred = diff - diff.mean()
    return TrackingDecomposition(
        share_error=e, price_deviation=d, contribution=c, diff=diff,
        window_share_error=sigma_e, window_price_dispersion=sigma_d, window_correlation=rho,
        step_mean=c.mean(axis=0),
        step_covariance=(c_centred * diff_centred[:, None]).sum(axis=0) / (n - 1),
        step_variance=np.var(c, axis=0, ddof=1),
        step_second_moment=np.mean(c * diff[:, None], axis=0),
        step_share_rms=np.sqrt(np.mean(e**2, axis=0)),
        step_price_rms=np.sqrt(np.mean(d**2, axis=0)),
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------------------------
# Inputs from windows and policies
# ----------------------------------------------------------------------------------------------------------------
class TrackingInputs(NamedTuple):
    """``x, w, d`` of the fixed-duration VWAP quantity order of each window (all ``(n, H)`` float64).

    Attributes:
        x: The schedule: the policy's allocations of the fixed column, divided by their sum (as the achieved
            price does).
        w: Realised volume shares (the VWAP benchmark's weights; uniform ``1 / H`` for a horizon without volume,
            where the backtest's benchmark falls back to TWAP).
        d: ``p_s / VWAP - 1`` with ``VWAP = sum_s w_s p_s``.
    """

    x: np.ndarray
    w: np.ndarray
    d: np.ndarray


def market_shares(windows: WindowSet) -> tuple[np.ndarray, np.ndarray]:
    """Realised volume shares ``w`` and price deviations ``d = p / VWAP - 1`` ``(n, H)`` of the windows'
    horizons, from :func:`lems.backtest.seed_targets` (float64; see :class:`TrackingInputs`)."""
    y = seed_targets(windows)
    share, price = y[..., 0], y[..., 1]
    horizon = share.shape[1]
    total = share.sum(axis=1, keepdims=True)
    w = np.where(total > 0, share / np.where(total > 0, total, 1.0), 1.0 / horizon)
    vwap = np.sum(w * price, axis=1, keepdims=True)
    return w, price / vwap - 1.0


def tracking_inputs(source: Any, windows: WindowSet, *, side: str = "buy", min_rate: Any = 0.0,
                    max_rate: Any = 1.0) -> TrackingInputs:
    """``x, w, d`` of the fixed-duration VWAP quantity order of ``side`` for a policy (or its allocations).

    ``sum_s (x_s - w_s) d_s`` equals the ``diff`` of :func:`lems.backtest.backtest`'s row (``side``, ``vwap``,
    ``quantity``, ``track``) of each window, to float rounding.

    Args:
        source: A policy (``allocate(windows, min_rate, max_rate)``) or its seed-layout allocations
            ``(n, H, H+1, 4, 2)``.
        windows: The windows scored.
        side: ``"buy"`` or ``"sell"`` (a model may plan the two sides differently).
        min_rate, max_rate: Trading limits passed to the policy [fraction of the order per bar].

    Raises:
        ValueError: an unknown side, allocations of the wrong shape, non-finite or non-positive fixed-column
            allocations, anything :func:`lems.backtest.seed_targets` rejects.
    """
    if side not in SIDES:
        raise ValueError(f"side must be one of {SIDES}, got {side!r}")
    n, horizon = len(windows), int(windows.n_ahead)
    if callable(getattr(source, "allocate", None)):
        source = source.allocate(windows, min_rate=min_rate, max_rate=max_rate)
    allocations = np.asarray(source, dtype=np.float64)
    shape = (n, horizon, horizon + 1, len(ORDER_TYPES), 2)
    if allocations.shape != shape:
        raise ValueError(f"allocations must have the seed layout {shape}, got {allocations.shape}")
    fixed = allocations[:, :, horizon, ORDER_TYPES.index((side, "vwap")), 0]
    total = fixed.sum(axis=1, keepdims=True)
    if not np.all(np.isfinite(fixed)) or np.any(fixed < 0) or np.any(total <= 0):
        raise ValueError("the fixed-duration allocations must be finite, non-negative and trade something")
    w, d = market_shares(windows)
    return TrackingInputs(x=fixed / total, w=w, d=d)


def static_shares(windows: WindowSet, n_days: int = 20) -> np.ndarray:
    """The static curve as shares ``(n, H)``: :func:`lems.baselines.static_volume_curve` over its row sum
    (uniform ``1 / H`` where the curve is all zero, as :class:`lems.baselines.StaticVWAP` trades it)."""
    curve = static_volume_curve(windows, n_days)
    total = curve.sum(axis=1, keepdims=True)
    return np.where(total > 0, curve / np.where(total > 0, total, 1.0), 1.0 / curve.shape[1])


# ----------------------------------------------------------------------------------------------------------------
# Share forecasts: R² and the ladder
# ----------------------------------------------------------------------------------------------------------------
def _suffix_sums(a: np.ndarray) -> np.ndarray:
    """``out[:, s] = sum_{u >= s} a[:, u]``, ``(n, H + 1)`` with ``out[:, H] = 0``."""
    tails = np.cumsum(a[:, ::-1], axis=1)[:, ::-1]
    return np.concatenate([tails, np.zeros((a.shape[0], 1))], axis=1)


def remaining_shares(shares: Any) -> np.ndarray:
    """Share of each bar in the volume (or order) remaining from it: ``r_s = a_s / sum_{u >= s} a_u`` ``(n, H)``.

    For a schedule ``x`` this is the share forecast it implies at step ``s``: trading ``x_s`` out of the ``sum_{u
    >= s} x_u`` still to trade is right exactly when bar ``s`` holds that share of the remaining volume. Where
    nothing remains (``sum_{u >= s} a_u = 0``) the share is uniform over the remaining bars, ``1 / (H - s)``. The
    last step is always 1.

    Args:
        shares: Non-negative ``(n, H)`` (rows need not sum to 1).
    """
    a = _matrix("shares", shares)
    if np.any(a < 0):
        raise ValueError("shares must be non-negative")
    tails = _suffix_sums(a)[:, :-1]
    uniform = 1.0 / (a.shape[1] - np.arange(a.shape[1]))
    return np.where(tails > 0, a / np.where(tails > 0, tails, 1.0), uniform)


def share_r2(x_implied: Any, w: Any, reference: Any = None) -> np.ndarray:
    """Out-of-sample R² of a schedule's implied remaining-share forecast, per step ``s = 0 .. H-2``.

    At step ``s`` of window ``i`` the realised target is ``r_is = w_is / sum_{u >= s} w_iu`` (the share of bar ``s``
    in the volume remaining from ``s``: what a schedule must trade of what is left to track VWAP exactly) and the
    forecast is ``f_is = x_is / sum_{u >= s} x_iu`` (:func:`remaining_shares`). Windows with no realised volume
    left at ``s`` have no target and are skipped at that step. The last step (``r = f = 1``) has no R².

    ``R²_s = 1 - sum_i (r_is - f_is)^2 / sum_i (r_is - g_is)^2`` with the reference forecast ``g``:

    * ``reference=None``: the mean of ``r_is`` over the scored windows (the classical R²; the mean is taken on the
      evaluation windows themselves, a reference no causal forecast has, so an R² above 0 is skill beyond the best
      constant in hindsight);
    * ``reference=`` a schedule (``(n, H)`` or one curve ``(H,)``, e.g. the static curve): its implied forecast
      (R² above 0: better than that schedule; R² of the reference itself is 0).

    Args:
        x_implied: Schedules ``(n, H)``, non-negative (their implied forecasts are scored; rows need not sum to 1).
        w: Realised volume shares ``(n, H)``, non-negative.
        reference: ``None`` or a reference schedule (see above).

    Returns:
        ``(H - 1,)`` float64 R² per step.

    Raises:
        ValueError: shapes that differ, ``H < 2``, negative or non-finite values, a step without any window to
            score, or a step where the reference's squared error is 0 (the R² is undefined).
    """
    x = _matrix("x_implied", x_implied)
    target_w = _matrix("w", w, x.shape)
    if x.shape[1] < 2:
        raise ValueError("share_r2 needs a horizon of at least 2 bars")
    if np.any(x < 0) or np.any(target_w < 0):
        raise ValueError("x_implied and w must be non-negative")
    valid = _suffix_sums(target_w)[:, :-1] > 0
    target = remaining_shares(target_w)
    forecast = remaining_shares(x)
    if reference is None:
        counts = valid.sum(axis=0)
        base = np.where(counts > 0, np.sum(np.where(valid, target, 0.0), axis=0) / np.maximum(counts, 1), 0.0)
        base = np.broadcast_to(base, x.shape)
    else:
        ref = np.asarray(reference, dtype=np.float64)
        ref = _matrix("reference", np.broadcast_to(ref, x.shape) if ref.ndim == 1 else ref, x.shape)
        if np.any(ref < 0):
            raise ValueError("reference must be non-negative")
        base = remaining_shares(ref)
    steps = slice(0, x.shape[1] - 1)
    sse = np.sum(np.where(valid, (target - forecast) ** 2, 0.0), axis=0)[steps]
    sse_ref = np.sum(np.where(valid, (target - base) ** 2, 0.0), axis=0)[steps]
    if np.any(valid.sum(axis=0)[steps] == 0):
        raise ValueError(f"no window has volume left at step(s) {np.flatnonzero(valid.sum(axis=0)[steps] == 0)}")
    if np.any(sse_ref <= 0):
        raise ValueError(f"the reference forecast is exact at step(s) {np.flatnonzero(sse_ref <= 0)}: R² undefined")
    return 1.0 - sse / sse_ref


#: Who sets the known bars' mass in a ladder rung (:func:`ladder_schedule`).
LADDER_MASSES: tuple[str, ...] = ("realised", "static")


def ladder_schedule(static_shares: Any, realised_shares: Any, k: int, *, mass: str = "realised") -> np.ndarray:
    """Rung ``k`` of the non-causal ladder: the schedule that knows the realised shares of the next ``k`` bars.

    Built in share space, as a sequence of decisions. At step ``s`` the order has ``R_s`` left (``R_0 = 1``) and
    trades ``x_s = R_s * q_s``, ``q_s`` the rung's forecast of bar ``s``'s share of the volume remaining from ``s``.
    The known bars are ``K_s = [s, min(s + k, H))``, the unknown ones ``U_s = [s + k, H)``; ``w`` is the realised
    volume shares and ``g`` the static curve, both fractions of a horizon total; ``W_K, G_K, G_U`` sums over the
    sets. Two definitions, neither of which forecasts the horizon's volume level (a realised level never meets a
    level-scaled forecast):

    * ``mass="realised"`` (default)::

          q_s = w_s / (W_K + G_U)

      the known bars bring their realised shares of the horizon total, the unknown bars the static curve's
      shares of it. Knowing ``w_s`` as a fraction of the realised total is knowing how big bar ``s`` is relative
      to the whole horizon: this rung is told part of the level, and rung 1 already differs from rung 0.
    * ``mass="static"``::

          q_s = (w_s / W_K) * (G_K / (G_K + G_U))

      the static curve says what fraction of the remaining volume the known bars hold, the realised volumes only
      split it among them (scale-free: no level at all). Rung 1 equals rung 0 (one bar alone says nothing about
      its share without a level); rung ``k`` gains from the realised SHAPE of ``k`` bars.

    Conventions: ``q_{H-1} = 1`` (the order completes); a zero denominator gives ``1 / (H - s)``; with
    ``mass="static"``, known bars without volume (``W_K = 0``) are split as the static curve splits them and a
    static curve without remaining mass gives ``G_K / (G_K + G_U) = |K| / (H - s)``.

    Then ``x_s = R_s - R_{s+1}`` with ``R_{s+1} = R_s (1 - q_s)``. In both definitions rung 0 trades ``g`` (``q_s =
    g_s / sum_{u>=s} g_u`` telescopes to ``x = g``); rung ``k >= H - s`` knows every remaining bar at step ``s``
    (``q_s = w_s / sum_{u>=s} w_u``), so rung ``H`` trades ``w`` (zero diff) and rung ``k`` trades the last ``k``
    bars in proportion to ``w``. Giving the rung the realised shares of the PAST bars too would tell it the
    remaining total (``1 - sum_{u<s} w_u``) and make rung 1 exact: they are not used.

    Args:
        static_shares: The static curve ``(H,)`` or ``(n, H)``, non-negative, rows summing to 1.
        realised_shares: ``w`` ``(n, H)``, non-negative, rows summing to 1.
        k: Bars known ahead, ``0 <= k <= H``.
        mass: ``"realised"`` or ``"static"`` (above).

    Returns:
        ``(n, H)`` float64 schedules: non-negative, rows summing to 1.

    Raises:
        ValueError: shapes, negative values, rows not summing to 1, ``k`` outside ``[0, H]``, an unknown ``mass``.
    """
    w = _shares("realised_shares", realised_shares)
    g = _curve("static_shares", static_shares, w.shape)
    horizon = w.shape[1]
    if isinstance(k, bool) or not float(k).is_integer() or not 0 <= int(k) <= horizon:
        raise ValueError(f"k must be an integer in [0, H] = [0, {horizon}], got {k!r}")
    if mass not in LADDER_MASSES:
        raise ValueError(f"mass must be one of {LADDER_MASSES}, got {mass!r}")
    k = int(k)
    steps = np.arange(horizon)
    bars_left = horizon - steps
    end = np.minimum(steps + k, horizon)  # first unknown bar of each step
    w_tail, g_tail = _suffix_sums(w), _suffix_sums(g)
    w_known, g_known, g_rest = w_tail[:, steps] - w_tail[:, end], g_tail[:, steps] - g_tail[:, end], g_tail[:, :-1]
    if k == 0:
        q = _ratio(g, g_rest, 1.0 / bars_left)
    elif mass == "realised":
        q = _ratio(w, w_known + g_tail[:, end], 1.0 / bars_left)
    else:
        split = np.where(w_known > 0, _ratio(w, w_known, 0.0), _ratio(g, g_known, 1.0 / (end - steps)))
        q = split * _ratio(g_known, g_rest, (end - steps) / bars_left)
    q = np.clip(q, 0.0, 1.0)
    q[:, -1] = 1.0
    remaining = np.concatenate([np.ones((w.shape[0], 1)), np.cumprod(1.0 - q, axis=1)], axis=1)
    return np.maximum(remaining[:, :-1] - remaining[:, 1:], 0.0)


def _ratio(num: np.ndarray, den: np.ndarray, fallback: Any) -> np.ndarray:
    """``num / den`` where ``den > 0``, ``fallback`` (broadcast) elsewhere."""
    return np.where(den > 0, num / np.where(den > 0, den, 1.0), fallback)


def ladder(static_shares: Any, realised_shares: Any, p_over_vwap: Any, ks: Any = None, *,
           mass: str = "realised") -> pd.DataFrame:
    """The ladder's numbers: per rung ``k``, the decomposition's summary of :func:`ladder_schedule`.

    Args:
        static_shares, realised_shares: As :func:`ladder_schedule`.
        p_over_vwap: ``d`` ``(n, H)`` as :func:`tracking_decomposition`.
        ks: Rungs to build (default ``0 .. H``).
        mass: The rungs' definition (:func:`ladder_schedule`).

    Returns:
        One row per rung: ``k``, the :meth:`TrackingDecomposition.summary` columns, and ``spread_vs_static`` (the
        rung's spread over rung 0's; the share of the static curve's spread a k-bar forecast could remove is
        ``1 - spread_vs_static``).

    Raises:
        ValueError: as :func:`ladder_schedule` and :func:`tracking_decomposition`, or a static curve that tracks
            every window exactly (spread 0 up to float rounding, 1e-9 bps: nothing to remove).
    """
    w = _shares("realised_shares", realised_shares)
    horizon = w.shape[1]
    ks = list(range(horizon + 1)) if ks is None else [int(k) for k in ks]
    rows = []
    for k in ks:
        decomposition = tracking_decomposition(ladder_schedule(static_shares, w, k, mass=mass), w, p_over_vwap)
        rows.append({"k": k, **decomposition.summary()})
    out = pd.DataFrame(rows)
    static = tracking_decomposition(ladder_schedule(static_shares, w, 0), w, p_over_vwap).spread * 1e4
    if not static > _ZERO_SPREAD_BPS:
        raise ValueError("the static curve's spread is 0 (it tracks every window exactly): no ladder to measure")
    out["spread_vs_static"] = out["spread_bps"] / static
    return out
