"""Aggregate canonical bars to a coarser bar length (e.g. 5-minute bars to 15- or 60-minute bars).

A coarse bar of ``minutes`` covers the fine bars of one symbol whose open times fall in the half-open bucket
``[start, start + minutes)``; the buckets of one local day are ``anchor + j * minutes`` (``j`` an integer) and
never span a local date (the session of :mod:`lems.data.calendar`: a session is a local calendar date), so a
bucket never mixes two sessions. Per bucket: ``open`` of the first fine bar, ``close`` of the last, ``high`` the
max, ``low`` the min, ``volume`` / ``notional`` / ``trades`` summed (``trades`` NaN when any fine bar's count is
unknown), ``notional_estimated`` True when any fine bar's notional was estimated, and the bar VWAP ``price``
recomputed from the summed notional and volume (carried over zero-volume bars, :func:`validate_bars`).

Nothing is invented across gaps: a coarse bar aggregates only the fine bars that exist, and a bucket holding no
fine bar yields no coarse bar (the gap stays a gap). A zero-volume fine bar adds zero volume and notional; a
bucket of zero-volume bars is a zero-volume coarse bar. The coarse bar's ``timestamp`` is its bucket's nominal
start (clipped to the local midnight for a bucket cut by the day boundary), even when the bucket's first fine
bar is missing. Buckets are laid on the local wall clock of ``tz``: on a day when the clock changes (DST), a bucket
that spans the change covers the wall-clock interval (one hour more or less of real time), and its timestamp is
its first fine bar's open time minus the wall-clock minutes from the bucket start.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from lems.data.validation import BAR_COLUMNS, infer_bar_minutes, validate_bars

__all__ = ["PARTIAL_MODES", "resample_bars"]

#: What :func:`resample_bars` does with a bucket that lacks some of its fine bars.
PARTIAL_MODES: tuple[str, ...] = ("keep", "drop")
_DAY_MINUTES = 1440
_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")


def resample_bars(
    bars: pd.DataFrame,
    minutes: int,
    *,
    partial: str = "keep",
    tz: str = "UTC",
    anchor: str = "midnight",
    bar_minutes: int | None = None,
) -> pd.DataFrame:
    """Aggregate canonical bars to bars of ``minutes``, per symbol, without crossing a session (local date).

    Args:
        bars: Canonical bars frame (:mod:`lems.data.validation`), one or many symbols; validated again here.
        minutes: Length of the coarse bar [minutes]: a positive multiple of the input bar length, at most one
            day (1440). Equal to the input bar length, the bars come back unchanged (same values).
        partial: What to do with a *partial* bucket, one holding fewer fine bars than its nominal count
            (``minutes / bar_minutes``, or fewer for a bucket cut by local midnight or by the anchor):
            ``"keep"`` (default) aggregates the fine bars it has (its volume is the volume that traded in the bars
            that exist, nothing is filled in); ``"drop"`` removes it, so every coarse bar covers its whole
            bucket. A bucket with no fine bar never exists.
        tz: Time zone of the session calendar (``"UTC"`` for crypto, ``"America/New_York"`` for US equities):
            the local date that buckets may not span, and the zone of ``anchor``.
        anchor: Where each local day's bucket grid starts: ``"midnight"`` (local midnight: 60-minute buckets on
            the hour), ``"HH:MM"`` (a local time, e.g. ``"09:30"`` for the US equity open; bars before it fall in
            buckets counted backwards from it, cut at midnight), or ``"session"`` (the earliest fine bar of that
            local date over all symbols of ``bars``: the observed session open, robust to one symbol missing its
            first bar).
        bar_minutes: Input bar length [minutes]; inferred (modal spacing, :func:`infer_bar_minutes`) when None.

    Returns:
        A new canonical bars frame sorted by ``(symbol, timestamp)``.

    Raises:
        ValueError: ``minutes`` not a positive integer multiple of the bar length or above 1440, an unknown
            ``partial`` / ``anchor``, an unknown time zone, or invalid bars (any :func:`validate_bars` error).
    """
    return resample_validated(validate_bars(bars), minutes, partial=partial, tz=tz, anchor=anchor,
                              bar_minutes=bar_minutes)


def resample_validated(
    frame: pd.DataFrame,
    minutes: int,
    *,
    partial: str = "keep",
    tz: str = "UTC",
    anchor: str = "midnight",
    bar_minutes: int | None = None,
) -> pd.DataFrame:
    """:func:`resample_bars` on a frame that :func:`validate_bars` has just returned (not validated again: for
    loaders that validated it; anything else must call :func:`resample_bars`)."""
    if partial not in PARTIAL_MODES:
        raise ValueError(f"partial must be one of {PARTIAL_MODES}, got {partial!r}")
    fine = _fine_minutes(frame, bar_minutes)
    coarse = _coarse_minutes(minutes, fine)
    local_day, tod = _local_clock(frame["timestamp"], tz)
    offset = _anchor_minutes(anchor, local_day, tod)
    start = offset + np.floor((tod - offset) / coarse) * coarse  # bucket start [local minutes of the day]
    clipped = np.maximum(start, 0.0)
    end = np.minimum(start + coarse, float(_DAY_MINUTES))
    sym = pd.factorize(frame["symbol"])[0]
    first, last = _bucket_bounds(sym, local_day, start)
    out = _aggregate(frame, first, last)
    shift_ns = np.rint((tod[first] - clipped[first]) * 60e9).astype(np.int64)
    out["timestamp"] = pd.DatetimeIndex(frame["timestamp"]).as_unit("ns")[first] - pd.to_timedelta(shift_ns, "ns")
    if partial == "drop":
        expected = np.rint((end[first] - clipped[first]) / fine).astype(np.int64)
        out = out.loc[(last - first + 1) >= expected]
    return validate_bars(out.reset_index(drop=True)).loc[:, list(BAR_COLUMNS)]


def _fine_minutes(frame: pd.DataFrame, bar_minutes: int | None) -> int:
    """The input bar length [whole minutes], given or inferred."""
    if bar_minutes is None:
        try:
            return infer_bar_minutes(frame)
        except ValueError as exc:
            raise ValueError(f"resample_bars: cannot infer the input bar length ({exc}); pass bar_minutes") from exc
    if isinstance(bar_minutes, bool) or not float(bar_minutes).is_integer() or int(bar_minutes) < 1:
        raise ValueError(f"bar_minutes must be a positive whole number of minutes, got {bar_minutes!r}")
    return int(bar_minutes)


def _coarse_minutes(minutes: int, fine: int) -> int:
    """``minutes`` checked: a positive integer multiple of ``fine``, at most one day."""
    if isinstance(minutes, bool) or not isinstance(minutes, (int, np.integer, float)) or not np.isfinite(minutes):
        raise ValueError(f"minutes must be a positive whole number of minutes, got {minutes!r}")
    if not float(minutes).is_integer() or int(minutes) < 1:
        raise ValueError(f"minutes must be a positive whole number of minutes, got {minutes!r}")
    coarse = int(minutes)
    if coarse % fine:
        raise ValueError(f"minutes={coarse} is not a multiple of the input bar length ({fine} minutes)")
    if coarse > _DAY_MINUTES:
        raise ValueError(f"minutes={coarse} exceeds one day (1440): buckets never span a session (local date)")
    return coarse


def _local_clock(timestamps: pd.Series, tz: str) -> tuple[np.ndarray, np.ndarray]:
    """Local date (days since 1970-01-01) and local time of day [minutes, float] of each bar."""
    try:
        local = pd.DatetimeIndex(timestamps).tz_convert(tz)
    except Exception as exc:  # unknown zone name: pytz / zoneinfo raise different types
        raise ValueError(f"resample_bars: unknown time zone tz={tz!r} ({exc})") from exc
    naive = local.tz_localize(None)
    day = naive.normalize()
    tod = (naive - day).to_numpy().astype("timedelta64[ns]").astype(np.int64) / 60e9
    return day.to_numpy().astype("datetime64[D]").astype(np.int64), tod


def _anchor_minutes(anchor: str, local_day: np.ndarray, tod: np.ndarray) -> np.ndarray:
    """Per bar, the local time of day [minutes] of its day's bucket grid origin."""
    if anchor == "midnight":
        return np.zeros_like(tod)
    if anchor == "session":
        days, inverse = np.unique(local_day, return_inverse=True)
        opens = np.full(days.shape[0], np.inf)
        np.minimum.at(opens, inverse, tod)
        return opens[inverse]
    match = _HHMM.match(anchor) if isinstance(anchor, str) else None
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        raise ValueError(f"anchor must be 'midnight', 'session' or a local time 'HH:MM', got {anchor!r}")
    return np.full_like(tod, int(match.group(1)) * 60.0 + int(match.group(2)))


def _bucket_bounds(sym: np.ndarray, local_day: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First and last row of every bucket (rows sorted by symbol then time: buckets are contiguous runs)."""
    n = sym.shape[0]
    new = np.r_[True, (sym[1:] != sym[:-1]) | (local_day[1:] != local_day[:-1]) | (start[1:] != start[:-1])]
    first = np.flatnonzero(new)
    last = np.r_[first[1:] - 1, n - 1]
    return first, last


def _aggregate(frame: pd.DataFrame, first: np.ndarray, last: np.ndarray) -> pd.DataFrame:
    """OHLC, sums and flags of every bucket ``rows first..last``."""

    def col(name: str) -> np.ndarray:
        return frame[name].to_numpy()

    trades = col("trades").astype(np.float64)
    unknown = np.add.reduceat(np.isnan(trades).astype(np.int64), first) > 0
    return pd.DataFrame(
        {
            "symbol": col("symbol")[first],
            "open": col("open")[first],
            "high": np.maximum.reduceat(col("high"), first),
            "low": np.minimum.reduceat(col("low"), first),
            "close": col("close")[last],
            "volume": np.add.reduceat(col("volume"), first),
            "notional": np.add.reduceat(col("notional"), first),
            "notional_estimated": np.logical_or.reduceat(col("notional_estimated").astype(bool), first),
            "trades": np.where(unknown, np.nan, np.add.reduceat(np.nan_to_num(trades), first)),
        }
    )
