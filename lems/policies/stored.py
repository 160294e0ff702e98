"""Allocations computed elsewhere, as policies: :class:`ScheduleTable` (another model's or a desk's schedules,
looked up by asset and origin and checked against the limits) and :class:`PrecomputedPolicy` (a policy's own
allocations computed once, so that tables and figures do not run it again).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lems.data.windows import WindowSet
from lems.execution import check_allocations
from lems.policies.base import _rates

__all__ = ["PrecomputedPolicy", "ScheduleTable", "window_keys"]


def window_keys(asset: Any, origin: Any):
    """``(asset, origin)`` of each window as a pandas MultiIndex (origin in UTC nanoseconds; naive = UTC): the key
    under which stored allocations are found again for any subset of their windows."""
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
        """The stored allocations of ``windows`` (see :class:`~lems.policies.Policy`).

        Raises:
            ValueError: a window with no stored row, a horizon that differs, or stored allocations that break
                the invariants or the limits (docs/execution.md §2).
        """
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


class PrecomputedPolicy:
    """A policy that returns allocations computed beforehand (so a policy runs once for tables and plots).

    Args:
        name: Label of the policy.
        allocations: ``(N, H, H+1, 4, 2)`` allocations for the windows it will be asked about.
        windows: the ``N`` windows they belong to: then any subset of them can be asked for too (the backtest asks
            a few windows at a time at long horizons), matched by (asset, origin).
    """

    def __init__(self, name: str, allocations: np.ndarray, windows=None) -> None:
        self.name = str(name)
        self.allocations = np.asarray(allocations, dtype=np.float64)
        self._rows = None if windows is None else window_keys(windows.asset, windows.origin)

    def allocate(self, windows, min_rate: Any = 0.0, max_rate: Any = 1.0) -> np.ndarray:
        """The stored allocations of ``windows`` (``ValueError`` when they do not match the windows)."""
        if self.allocations.shape[:2] == (len(windows), windows.n_ahead):
            return self.allocations
        if self._rows is not None and self.allocations.shape[1] == windows.n_ahead:
            rows = self._rows.get_indexer(window_keys(windows.asset, windows.origin))
            if (rows >= 0).all():
                return self.allocations[rows]
        raise ValueError(f"stored allocations of {self.name!r} have shape {self.allocations.shape}, "
                         f"not ({len(windows)}, {windows.n_ahead}, ...)")

    def __repr__(self) -> str:
        return f"PrecomputedPolicy(rows={len(self.allocations)}, name={self.name!r})"
