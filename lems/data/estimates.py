"""Causal per-window market estimates, known at each window's origin (docs/execution.md §3): the static volume curve,
the last lookback bar's volume against its own curve value, lookback volatility, expected bar volume, half-spread and
arrival price.

Data stage: read by the policies (:mod:`lems.policies`), the costed backtest and the training targets; imports
only :mod:`lems.execution` and :mod:`lems.data`. Every estimate for a window with origin bar ``t0`` reads bars
``< t0`` only.
"""

from __future__ import annotations

import numpy as np

from lems.data.features import build_slot_index, seasonal_volume_profile
from lems.data.windows import WindowSet
from lems.execution import corwin_schultz_half_spread

__all__ = [
    "arrival_prices",
    "expected_bar_volume",
    "lookback_half_spread",
    "lookback_volatility",
    "previous_bar_volume",
    "static_volume_curve",
]


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


def previous_bar_volume(windows: WindowSet, n_days: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """The last bar before each origin (``t0 - 1``, the lookback's last): its realised volume and its static curve
    value (what :func:`static_volume_curve` would have expected for it).

    The expected volume of bar ``t0 - 1`` is the mean volume of the last ``n_days`` bars of its slot that start
    strictly before ``t0 - 1`` (:func:`lems.data.features.seasonal_volume_profile` with the bar itself as the
    origin). Both read bars ``< t0`` only (causal).

    Args:
        windows: Windows with ``bars`` (calendar-enriched bars per asset, with ``slot`` and ``volume``).
        n_days: Past occurrences of a slot averaged [days / sessions].

    Returns:
        ``(volume, expected)``, each ``(N,)`` float64 [shares / coins per bar], non-negative.

    Raises:
        ValueError: ``n_days < 1``, bars missing for an asset, an origin without a bar before it, non-finite or
            negative volumes.
    """
    if int(n_days) != n_days or n_days < 1:
        raise ValueError(f"n_days must be an integer >= 1, got {n_days!r}")
    n = len(windows)
    volume, expected = np.zeros(n, dtype=np.float64), np.zeros(n, dtype=np.float64)
    assets = np.asarray(windows.asset)
    origin = np.asarray(windows.origin_index, dtype=np.int64)
    for asset in np.unique(assets):
        rows = np.flatnonzero(assets == asset)
        bars = _bars_of(windows, str(asset), ("slot", "volume"))
        values = bars["volume"].to_numpy(np.float64)
        previous = origin[rows] - 1
        if previous.size and (previous.min() < 0 or previous.max() >= values.size):
            raise ValueError(f"a window of {asset!r} has no bar before its origin")
        if not (np.all(np.isfinite(values[previous])) and np.all(values[previous] >= 0)):
            raise ValueError(f"non-finite or negative volume before an origin of {asset!r}")
        index = build_slot_index(bars["slot"].to_numpy(), values)
        volume[rows] = values[previous]
        expected[rows] = seasonal_volume_profile(index, previous, previous[:, None], int(n_days))[:, 0]
    return volume, np.maximum(expected, 0.0)


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

