"""The policy protocol and the helpers every policy shares.

A policy maps a :class:`~lems.data.windows.WindowSet` and trading limits to allocations in the seed layout
``(N, H, H+1, 4, 2)`` = step × min-duration column × order type (buy-VWAP, buy-TWAP, sell-VWAP, sell-TWAP)
× target (quantity, notional) (docs/execution.md §5). Policies are separate from the simulator and the reward
(:mod:`lems.backtest` scores them with :func:`lems.execution.seed_outcome`).

**Batch side** (:meth:`Policy.allocate`): the whole horizon of many windows at once, for backtests and reports.
A policy is causal: the allocation of bar ``t0 + s`` reads only bars ``< t0 + s`` (docs/execution.md §3), so running
it on a window whose bars from ``s`` on are unknown gives the same first ``s + 1`` allocations.

**Per-bar side** (the live decision, :class:`lems.live.ExecutionSession`): at the open of each horizon bar ``s``
the session calls the SAME :meth:`Policy.allocate` on a one-window set at the order's origin whose closed horizon
bars hold their real prices and volumes and whose later bars are placeholders (last known price, zero volume),
reads the order's column, and trades the plan's share of what remains, ``a_s / (1 - sum_{u<s} a_u)``, times the
ACTUALLY remaining fraction, mapped into the limits by :func:`lems.execution.allocate_step`. Replayed with exact
fills, this reproduces the batch allocations; with other fills it re-plans on what really remains. A trained
model decides per bar through its decoder's own step instead (:meth:`lems.models.LargeExecutionModel.next_share`).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from lems.data.windows import WindowSet
from lems.execution import (
    IS_VWAP_ORDER,
    ORDER_TYPES,
    TARGETS,
    allocate_step,
    rate_columns,
)

__all__ = ["Policy"]

#: True for the buy order types of the seed layout's axis 3.
_IS_BUY = np.array([side == "buy" for side, _ in ORDER_TYPES])
_N_TYPES, _N_TARGETS = len(ORDER_TYPES), len(TARGETS)


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


def _walk(share: np.ndarray, min_rate: Any, max_rate: Any) -> np.ndarray:
    """Allocations from shares of what remains ``(N, H, ...)``: ``a_s = allocate_step(R_s share_s, R_s, H - s)``
    with ``R_s`` the fraction left before bar ``s`` (the last bar takes what is left)."""
    horizon = share.shape[1]
    remaining = np.ones((share.shape[0], *share.shape[2:]), dtype=np.float64)
    out = np.empty_like(share)
    for s in range(horizon):
        out[:, s] = allocate_step(remaining * share[:, s], remaining, horizon - s, min_rate, max_rate)
        remaining = remaining - out[:, s]
    return out


def _vwap_share_schedule(vwap_share: np.ndarray, min_rate: Any, max_rate: Any) -> np.ndarray:
    """Seed-layout allocations ``(N, H, H+1, 4, 2)`` of a schedule given as shares of what remains ``(N, H)`` for
    the VWAP order types (every column, both targets); TWAP order types get the uniform schedule."""
    n, horizon = vwap_share.shape
    share = np.empty((n, horizon, _N_TYPES), dtype=np.float64)
    share[:, :, ~IS_VWAP_ORDER] = (1.0 / (horizon - np.arange(horizon, dtype=np.float64)))[None, :, None]
    share[:, :, IS_VWAP_ORDER] = vwap_share[:, :, None]
    return _to_seed_layout(_columns(_walk(share, min_rate, max_rate), horizon))
