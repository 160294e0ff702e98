"""Per-bar calendar columns (local time of day, sessions, gaps), vectorised per symbol.

A *session* is a local calendar date: its open is the first bar of that date (for 24/7 data in
UTC, the first bar of the UTC day). A *slot* is the local time of day of the bar start in whole
minutes; seasonal volume profiles are computed per slot.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["CALENDAR_COLUMNS", "add_calendar", "bar_minutes_of", "timestamps_ns", "to_utc_ns"]

#: Columns added by :func:`add_calendar`, in order.
CALENDAR_COLUMNS: tuple[str, ...] = (
    "tod_minutes",
    "slot",
    "dow",
    "session",
    "bar_in_session",
    "minutes_since_open",
    "first_bar_of_session",
    "gap_hours",
)


def bar_minutes_of(bars: pd.DataFrame) -> float:
    """Modal spacing between consecutive bars of the same symbol [minutes].

    Args:
        bars: Frame with ``symbol`` and ``timestamp`` columns, sorted by (symbol, timestamp).

    Returns:
        The most frequent positive spacing (ties: the smaller), in minutes.

    Raises:
        ValueError: when no symbol has two bars.
    """
    ns = timestamps_ns(bars["timestamp"])
    sym = pd.factorize(bars["symbol"])[0] if "symbol" in bars.columns else np.zeros(len(bars))
    gaps = np.diff(ns)[sym[1:] == sym[:-1]]
    gaps = gaps[gaps > 0]
    if gaps.size == 0:
        raise ValueError("cannot infer the bar length: no symbol has two bars; pass bar_minutes")
    values, counts = np.unique(gaps, return_counts=True)
    return float(values[np.argmax(counts)] / 60e9)


def to_utc_ns(value, *, naive_is_utc: bool = True, what: str = "timestamp") -> int:
    """One timestamp (str, datetime, pd.Timestamp, np.datetime64) as UTC nanoseconds.

    Args:
        value: the timestamp.
        naive_is_utc: read a naive timestamp as UTC; when False, a naive timestamp is an error (live trading
            takes aware timestamps only).
        what: what the value is, for error messages.

    Raises:
        ValueError: unparseable, missing, or naive when ``naive_is_utc`` is False.
    """
    try:
        ts = pd.Timestamp(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: cannot parse timestamp {value!r}") from exc
    if ts is pd.NaT or pd.isna(ts):
        raise ValueError(f"{what}: missing timestamp")
    if ts.tzinfo is None:
        if not naive_is_utc:
            raise ValueError(f"{what}: timestamp {ts} has no time zone; give an aware timestamp (e.g. UTC)")
        ts = ts.tz_localize("UTC")
    return int(ts.tz_convert("UTC").as_unit("ns").value)


def timestamps_ns(ts: pd.Series | pd.Index) -> np.ndarray:
    """Timestamps (aware, or naive meaning UTC) as int64 UTC nanoseconds since the epoch."""
    return pd.DatetimeIndex(pd.to_datetime(ts, utc=True)).as_unit("ns").asi8.copy()


def add_calendar(bars: pd.DataFrame, tz: str = "UTC", bar_minutes: float | None = None) -> pd.DataFrame:
    """Return a copy of ``bars`` with the calendar columns :data:`CALENDAR_COLUMNS`.

    Args:
        bars: Canonical bars frame (``symbol``, ``timestamp`` UTC bar open, sorted by
            ``(symbol, timestamp)``), one or many symbols.
        tz: Time zone of the local calendar (``"UTC"`` for crypto, ``"America/New_York"`` for
            US equities).
        bar_minutes: Nominal bar length [minutes]; inferred (modal spacing) when ``None``.

    Returns:
        New frame (same row order, RangeIndex) with, per bar:
        ``tod_minutes`` local time of day [minutes, float], ``slot`` the same as int,
        ``dow`` local day of week (0 = Monday), ``session`` local date as days since
        1970-01-01 (int), ``bar_in_session`` position of the bar in its session (0-based),
        ``minutes_since_open`` minutes since the first bar of its session, ``first_bar_of_session``
        (bool), ``gap_hours`` hours since the previous bar's start of the same symbol (the
        nominal bar length for a symbol's first bar). ``attrs`` hold ``tz`` and ``bar_minutes``.

    Raises:
        ValueError: unknown time zone, missing columns.
    """
    for c in ("symbol", "timestamp"):
        if c not in bars.columns:
            raise ValueError(f"add_calendar: missing column '{c}'")
    if bar_minutes is None:
        bar_minutes = bar_minutes_of(bars)
    try:
        local = pd.DatetimeIndex(pd.to_datetime(bars["timestamp"], utc=True)).tz_convert(tz)
    except Exception as exc:  # bad zone name
        raise ValueError(f"add_calendar: cannot convert timestamps to tz={tz!r}: {exc}") from exc
    out = bars.reset_index(drop=True).copy()
    tod = local.hour.to_numpy() * 60.0 + local.minute.to_numpy() + local.second.to_numpy() / 60.0
    session = local.tz_localize(None).normalize().to_numpy().astype("datetime64[D]").astype(np.int64)
    ns = timestamps_ns(out["timestamp"])
    sym = pd.factorize(out["symbol"])[0]
    new_symbol = np.r_[True, sym[1:] != sym[:-1]]
    new_session = new_symbol | np.r_[True, session[1:] != session[:-1]]
    idx = np.arange(len(out))
    start = np.maximum.accumulate(np.where(new_session, idx, 0))
    gap = np.r_[np.nan, np.diff(ns) / 3.6e12]
    out["tod_minutes"] = tod
    out["slot"] = np.floor(tod).astype(np.int64)
    out["dow"] = local.day_of_week.to_numpy().astype(np.int64)
    out["session"] = session
    out["bar_in_session"] = (idx - start).astype(np.int64)
    out["minutes_since_open"] = (ns - ns[start]) / 6e10
    out["first_bar_of_session"] = new_session
    out["gap_hours"] = np.where(new_symbol, bar_minutes / 60.0, gap)
    out.attrs = {**bars.attrs, "tz": tz, "bar_minutes": float(bar_minutes)}
    return out
