"""The model-free dynamic VWAP schedule: :class:`DynamicVWAP`, the static volume curve times a persistent
multiplicative deviation re-estimated at the open of every bar (Białkowski, Darolles and Le Fol, 2008, "Improving
VWAP strategies: a dynamic volume approach", J. Banking & Finance 32(9)).

Every allocation goes through :func:`lems.execution.allocate_step`, so the limits of docs/execution.md §2 hold
exactly, and the decision for bar ``t0 + s`` reads only bars ``< t0 + s`` (docs/execution.md §3).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lems.data.estimates import previous_bar_volume, static_volume_curve
from lems.data.windows import WindowSet
from lems.execution import IS_VWAP_ORDER, fixed_duration_diffs
from lems.policies.base import (
    _N_TARGETS,
    _N_TYPES,
    _check_windows,
    _rates,
    _vwap_share_schedule,
    _walk,
)

__all__ = ["LEVEL_GRID", "RHO_GRID", "DynamicVWAP"]

#: The persistences ``rho`` [per bar] that :meth:`DynamicVWAP.fit` tries (0: the static schedule).
RHO_GRID: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95)
#: The level weights ``lambda`` that :meth:`DynamicVWAP.fit` tries.
LEVEL_GRID: tuple[float, ...] = (0.0, 0.5, 1.0)


class DynamicVWAP:
    """The dynamic VWAP schedule: forecast the remaining bars' volumes as the static curve times a deviation that
    decays geometrically, and trade the forecast share of what remains.

    Volume model (Białkowski–Darolles–Le Fol style): the volume of horizon bar ``u`` is a level times the static
    seasonal component ``c_u`` times a persistent multiplicative deviation. At the open of bar ``s`` (decision
    ``s``) the closed bars are ``j = -1, 0 .. s-1``: the last lookback bar ``t0 - 1`` and the closed horizon bars
    (``windows.volumes[:, :s]``); bars ``>= s`` are never read. With

    - ``c_u`` [shares / bar]: the window's static curve (:func:`lems.data.estimates.static_volume_curve`, as of the
      origin), ``C = sum_u c_u`` [shares / horizon] its horizon total; ``c_{-1}``, ``V_{-1}``: the static curve
      value and the volume of bar ``t0 - 1`` (:func:`lems.data.estimates.previous_bar_volume`);
    - ``V_j`` [shares / bar]: the realised volume of closed bar ``j``;
    - ``f = SHARE_FLOOR / H``: a floor on shares of ``C`` (a bar without volume costs a bounded log, not ``-inf``);
    - the last closed bar's log surprise against the curve [log units, dimensionless]
      ``e_s = log max(V_{s-1} / C, f) - log max(c_{s-1} / C, f)``;
    - the window's log level so far [log units] ``l_s = log max(sum_{j<s} V_j / C, f) - log max(sum_{j<s} c_j / C,
      f)`` (sums over ``j = -1 .. s-1``);
    - the deviation ``z_s = clip(e_s - lambda * l_s, -Z_CAP, Z_CAP)`` [log units],

    the volume forecast of a remaining bar ``u >= s`` is ``exp(lambda * l_s) * c_u * exp(rho ** (u - s + 1) * z_s)``
    [shares / bar]: the level so far (weight ``lambda``) times the curve times the last surprise net of that level,
    decaying by ``rho`` per bar ahead. The level factor is common to every remaining bar, so it cancels in share
    space: the schedule trades the share of what remains ``sigma_s = w_s / sum_{u >= s} w_u`` with
    ``w_u = c_u exp(rho ** (u - s + 1) z_s)``, i.e. ``a_s = allocate_step(R_s sigma_s, R_s, H - s, min_rate,
    max_rate)`` with ``R_s`` the fraction left (the last bar takes what is left; uniform over the remaining bars
    when their curve is all zero). ``rho = 0`` gives ``w_u = c_u``: exactly :class:`~lems.policies.StaticVWAP`;
    ``rho -> 1`` also tends to it (a deviation that never decays is a level).

    ``lambda = 1`` measures the deviation against the window's own realised level (``z_s`` is then unchanged when
    every closed volume is scaled by a constant: a busy day does not front-load the schedule); at ``s = 0`` the
    closed stretch is bar ``t0 - 1`` alone, so ``z_0 = 0`` and decision 0 follows the static curve.
    ``lambda = 0`` measures it against the static curve's level (the ``n_days`` mean), so at ``s = 0`` the last
    lookback bar's surprise already tilts the schedule. :meth:`fit` chooses ``rho`` and ``lambda`` on validation
    windows.

    VWAP order types (every column) follow this schedule; TWAP order types get the uniform schedule; both targets
    get the same allocations (as :class:`~lems.policies.StaticVWAP`).

    Args:
        rho: Persistence of the deviation per bar ahead, in ``[0, 1]``.
        level_weight: ``lambda`` in ``[0, 1]``: how much of the closed bars' mean surprise is taken as a level.
        n_days: Past occurrences of each slot averaged into the static curve [days / sessions].
        name: Label of the policy.

    Attributes:
        fit_spreads: After :meth:`fit`, the fitting windows' fixed-duration VWAP spread [bps] per ``(rho, lambda)``
            of the grid; ``None`` otherwise.

    Raises:
        ValueError: a ``rho`` or ``level_weight`` outside ``[0, 1]``, a bad ``n_days``.
    """

    #: Floor of a share of the horizon's expected volume, as a fraction of the uniform share ``1 / H``.
    SHARE_FLOOR = 1e-3
    #: Bound on the deviation ``|z_s|`` [log units].
    Z_CAP = 20.0

    def __init__(self, rho: float, level_weight: float = 1.0, n_days: int = 20, name: str = "dynamic_vwap") -> None:
        for label, value in (("rho", rho), ("level_weight", level_weight)):
            if not (np.isfinite(value) and 0.0 <= value <= 1.0):
                raise ValueError(f"{label} must be a number in [0, 1], got {value!r}")
        if int(n_days) != n_days or n_days < 1:
            raise ValueError(f"n_days must be an integer >= 1, got {n_days!r}")
        self.rho, self.level_weight = float(rho), float(level_weight)
        self.n_days, self.name = int(n_days), str(name)
        self.fit_spreads: dict[tuple[float, float], float] | None = None

    # ----------------------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, windows: WindowSet, n_days: int = 20, rhos: Sequence[float] = RHO_GRID,
            level_weights: Sequence[float] = LEVEL_GRID, name: str = "dynamic_vwap") -> DynamicVWAP:
        """The schedule whose ``(rho, lambda)`` on the grid gives the lowest fixed-duration VWAP tracking spread on
        ``windows`` (validation windows: never the ones reported).

        The spread is the standard deviation (``ddof=1``) [bps] of the signed diffs ``P / B - 1`` of the fixed
        column's VWAP orders (both sides and targets, :func:`lems.execution.fixed_duration_diffs`), with no trading
        limits. Ties go to the earlier grid point (``rho`` outer, ``lambda`` inner; with ``rho = 0`` first, the
        static curve wins unless a dynamic schedule is strictly better). Reads only the given windows: their
        horizon prices and volumes and, through the static curve and bar ``t0 - 1``, bars before their origins.

        Raises:
            ValueError: no window, an empty grid or values outside ``[0, 1]``, unusable horizon prices/volumes,
                bars missing for the static curve.
        """
        if len(windows) == 0:
            raise ValueError("DynamicVWAP.fit needs at least one window")
        grid_rho = [float(r) for r in rhos]
        grid_level = [float(x) for x in level_weights]
        if not grid_rho or not grid_level:
            raise ValueError("DynamicVWAP.fit needs non-empty rho and level_weight grids")
        for r in grid_rho:
            for x in grid_level:
                cls(r, x, n_days)  # validates the grid values
        _check_windows(windows)
        curve, previous = _inputs(windows, n_days)
        prices = np.asarray(windows.prices, dtype=np.float64)
        volumes = np.asarray(windows.volumes, dtype=np.float64)
        spreads: dict[tuple[float, float], float] = {}
        best = None
        for x in grid_level:
            z = _deviations(curve, volumes, previous, x, cls.SHARE_FLOOR, cls.Z_CAP)
            for r in grid_rho:
                allocations = _walk(_remaining_shares(curve, z, r), 0.0, 1.0)  # (N, H)
                fixed = np.broadcast_to(allocations[:, :, None, None], (*allocations.shape, _N_TYPES, _N_TARGETS))
                diffs = fixed_duration_diffs(fixed, prices, volumes)[:, IS_VWAP_ORDER].ravel() * 1e4
                spreads[(r, x)] = float(np.std(diffs, ddof=1)) if diffs.size > 1 else 0.0
        for r in grid_rho:  # rho outer, lambda inner: the tie rule
            for x in grid_level:
                if best is None or spreads[(r, x)] < spreads[best]:
                    best = (r, x)
        fitted = cls(best[0], best[1], n_days=n_days, name=name)
        fitted.fit_spreads = spreads
        return fitted

    # ----------------------------------------------------------------------------------------------------
    def shares(self, windows: WindowSet) -> np.ndarray:
        """``(N, H)`` float64 shares of what remains ``sigma_s`` of the VWAP order types at every decision ``s``,
        before the limits (1 at the last bar). Column ``s`` reads ``windows.volumes[:, :s]`` only."""
        _check_windows(windows)
        curve, previous = _inputs(windows, self.n_days)
        z = _deviations(curve, np.asarray(windows.volumes, dtype=np.float64), previous, self.level_weight,
                        self.SHARE_FLOOR, self.Z_CAP)
        return _remaining_shares(curve, z, self.rho)

    def allocate(self, windows: WindowSet, min_rate: Any = 0.0, max_rate: Any = 1.0) -> np.ndarray:
        """Dynamic-curve allocations ``(N, H, H+1, 4, 2)`` float64 (see :class:`~lems.policies.Policy`).

        Raises:
            ValueError: infeasible rates (:func:`lems.execution.check_rates`), unusable horizon prices/volumes.
        """
        lo, hi = _rates(windows, min_rate, max_rate)
        return _vwap_share_schedule(self.shares(windows), lo, hi)

    def __repr__(self) -> str:
        return (f"DynamicVWAP(rho={self.rho}, level_weight={self.level_weight}, n_days={self.n_days}, "
                f"name={self.name!r})")


# --------------------------------------------------------------------------------------------------------
# The arithmetic (numpy, float64, vectorised over windows)
# --------------------------------------------------------------------------------------------------------
def _inputs(windows: WindowSet, n_days: int) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """The static curve ``(N, H)`` and bar ``t0 - 1``'s ``(volume, curve value)``, each ``(N,)``: all known at the
    origin."""
    if len(windows) == 0:
        empty = np.zeros(0)
        return np.zeros((0, int(windows.n_ahead))), (empty, empty)
    return static_volume_curve(windows, n_days), previous_bar_volume(windows, n_days)


def _log_share(x: np.ndarray, total: np.ndarray, floor: float) -> np.ndarray:
    """``log max(x / total, floor)``; 0 where ``total`` is not positive (the deviation is then 0)."""
    ok = total > 0
    return np.where(ok, np.log(np.maximum(np.where(ok, x, 1.0) / np.where(ok, total, 1.0), floor)), 0.0)


def _deviations(curve: np.ndarray, volumes: np.ndarray, previous: tuple[np.ndarray, np.ndarray],
                level_weight: float, share_floor: float, cap: float) -> np.ndarray:
    """The deviation ``z_s`` ``(N, H)`` [log units] at every decision ``s`` (see :class:`DynamicVWAP`).

    Column ``s`` reads the closed bars ``t0 - 1`` and ``t0 .. t0 + s - 1`` only: ``volumes[:, :s]``, never
    ``volumes[:, s:]``.
    """
    horizon = curve.shape[1]
    prev_volume, prev_curve = previous
    # last closed bar at decision s: bar t0 - 1 at s = 0, horizon bar s - 1 after
    last_v = np.concatenate([prev_volume[:, None], volumes[:, :horizon - 1]], axis=1)
    last_c = np.concatenate([prev_curve[:, None], curve[:, :horizon - 1]], axis=1)
    total = curve.sum(axis=1, keepdims=True)  # C
    floor = share_floor / horizon
    surprise = _log_share(last_v, total, floor) - _log_share(last_c, total, floor)
    if level_weight == 0.0:
        return np.clip(surprise, -cap, cap)
    level = _log_share(np.cumsum(last_v, axis=1), total, floor) - _log_share(np.cumsum(last_c, axis=1), total, floor)
    return np.clip(surprise - level_weight * level, -cap, cap)


def _remaining_shares(curve: np.ndarray, z: np.ndarray, rho: float) -> np.ndarray:
    """``sigma_s = w_s / sum_{u >= s} w_u`` with ``w_u = c_u exp(rho ** (u - s + 1) z_s)``, ``(N, H)``.

    The tail sum runs from the last bar back to ``s``, the order of :func:`lems.execution.schedule_from_weights`, so
    ``rho = 0`` reproduces its shares bit for bit.
    """
    n, horizon = curve.shape
    out = np.empty((n, horizon), dtype=np.float64)
    for s in range(horizon):
        ahead = np.arange(1, horizon - s + 1, dtype=np.float64)  # u - s + 1 for u = s .. H-1
        weights = curve[:, s:] * np.exp(rho ** ahead[None, :] * z[:, s:s + 1])
        tail = np.cumsum(weights[:, ::-1], axis=1)[:, -1]
        out[:, s] = np.where(tail > 0, weights[:, 0] / np.where(tail > 0, tail, 1.0), 1.0 / (horizon - s))
    return out
