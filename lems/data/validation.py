"""Validation of market bars into the canonical long "bars" frame.

The canonical bars frame is the contract every other part of lems relies on
(docs/execution.md §1). It is long format, has a ``RangeIndex``, is sorted by
``(symbol, timestamp)`` and has exactly these columns, in this order:

==================== ========================== =========================================
column               dtype                      meaning
==================== ========================== =========================================
symbol               str                        instrument name
timestamp            datetime64[ns, UTC]        bar OPEN time; bar covers [t, t + dt)
open/high/low/close  float64 (> 0)              prices in quote currency; low <= open, close <= high
volume               float64 (>= 0)             traded quantity (base units / shares)
notional             float64 (>= 0)             traded notional (quote currency)
notional_estimated   bool                       True when notional = volume*(h+l+c)/3
price                float64 (> 0)              bar VWAP notional/volume (carried when 0)
trades               float64 (NaN = unknown)    number of trades in the bar
==================== ========================== =========================================

Gaps (absent bars) and zero-volume bars are legal: they are neither filled
nor dropped.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

__all__ = [
    "BAR_COLUMNS",
    "DEFAULT_SYMBOL",
    "PRICE_COLUMNS",
    "REQUIRED_COLUMNS",
    "bar_vwap",
    "infer_bar_minutes",
    "parse_timestamps",
    "validate_bars",
]

#: Columns of the canonical bars frame, in order.
BAR_COLUMNS: tuple[str, ...] = (
    "symbol",
    "timestamp",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "notional",
    "notional_estimated",
    "price",
    "trades",
)
#: Columns an input frame must have (``notional`` is estimated when absent).
REQUIRED_COLUMNS: tuple[str, ...] = ("timestamp", "open", "high", "low", "close", "volume")
#: Price columns (must be finite and > 0).
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
#: Symbol used when the input names none.
DEFAULT_SYMBOL = "ASSET"

# Epoch units recognised for integer timestamps, by magnitude of |value|
# (upper bounds exclusive): seconds up to year ~5138, then ms, µs, ns.
_EPOCH_UNITS: tuple[tuple[str, float], ...] = (
    ("s", 1e11),
    ("ms", 1e14),
    ("µs", 1e17),
    ("ns", np.inf),
)
_PANDAS_UNIT = {"s": "s", "ms": "ms", "µs": "us", "ns": "ns"}

#: Relative tolerance of the check low <= open, close <= high (float rounding of exported prices only).
_RANGE_RTOL = 1e-9

RowLabel = Callable[[int], str]


def _default_row_label(i: int) -> str:
    return f"row {i}"


# ----------------------------------------------------------------------------------------------
# VWAP
# ----------------------------------------------------------------------------------------------
def bar_vwap(volume: np.ndarray, notional: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Bar VWAP of one symbol, carried forward over zero-volume bars (docs/execution.md §1).

    Args:
        volume: Traded quantity per bar (base units / shares), shape ``(n,)``, ``>= 0``.
        notional: Traded notional per bar (quote currency), shape ``(n,)``.
        fallback: Price (quote currency) used for the zero-volume bars that precede
            the first bar with volume, typically ``(high + low + close) / 3``; shape ``(n,)``.

    Returns:
        float64 array ``(n,)``: ``notional / volume`` where ``volume > 0``; otherwise the
        VWAP of the last earlier bar with volume; ``fallback`` for leading zero-volume bars.
        Never divides by zero, never looks ahead.
    """
    volume = np.asarray(volume, dtype=np.float64)
    notional = np.asarray(notional, dtype=np.float64)
    fallback = np.asarray(fallback, dtype=np.float64)
    if not (volume.shape == notional.shape == fallback.shape) or volume.ndim != 1:
        raise ValueError(
            "bar_vwap: volume, notional and fallback must be 1-D arrays of the same length, "
            f"got shapes {volume.shape}, {notional.shape}, {fallback.shape}"
        )
    return _carried_vwap(volume, notional, fallback, np.zeros(volume.shape[0], dtype=bool))


def _carried_vwap(
    volume: np.ndarray, notional: np.ndarray, fallback: np.ndarray, group_start: np.ndarray
) -> np.ndarray:
    """Vectorised VWAP with carry-forward that restarts at every ``group_start`` row."""
    n = volume.shape[0]
    traded = volume > 0
    raw = np.divide(notional, volume, out=np.zeros(n), where=traded)
    idx = np.arange(n)
    last_traded = np.maximum.accumulate(np.where(traded, idx, -1)) if n else idx
    start = np.maximum.accumulate(np.where(group_start, idx, 0)) if n else idx
    usable = last_traded >= start
    return np.where(usable, raw[np.clip(last_traded, 0, None)], fallback)


# ----------------------------------------------------------------------------------------------
# Timestamps
# ----------------------------------------------------------------------------------------------
def parse_timestamps(
    values: pd.Series | pd.Index | np.ndarray,
    *,
    tz: str | None = None,
    name: str = "timestamp",
    row_label: RowLabel = _default_row_label,
) -> pd.Series:
    """Parse bar open times into ``datetime64[ns, UTC]``, vectorised.

    Accepts datetime64 values (aware, or naive with ``tz=``), ISO-8601 strings with
    a zone (``Z`` or ``+hh:mm``), and epoch integers in s, ms, µs or ns (unit
    detected from the magnitude; all values must share one unit).

    Args:
        values: The raw timestamps.
        tz: Time zone used to localize naive timestamps (e.g. ``"UTC"``,
            ``"America/New_York"``). Naive timestamps without ``tz`` are an error.
        name: Column name used in error messages.
        row_label: Maps a row position to a human label for error messages.

    Returns:
        A ``Series`` (RangeIndex) of ``datetime64[ns, UTC]``.

    Raises:
        ValueError: missing/unparseable values, missing time zone, mixed time zones or
            offsets, mixed epoch units (e.g. "mixed ms/µs").
    """
    s = pd.Series(values).reset_index(drop=True)
    if len(s) and s.isna().any():
        i = int(np.flatnonzero(s.isna().to_numpy())[0])
        raise ValueError(f"missing timestamp in column '{name}' at {row_label(i)}")
    if pd.api.types.is_bool_dtype(s.dtype):
        raise ValueError(f"column '{name}' holds booleans, not timestamps")
    if pd.api.types.is_numeric_dtype(s.dtype):
        out = _parse_epoch(s, name, row_label)
    elif isinstance(s.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(s.dtype):
        out = s
    else:
        out = _parse_text_or_objects(s, name, row_label)
    if out.dt.tz is None:
        if tz is None:
            raise ValueError(
                f"missing time zone in column '{name}' (naive timestamps, e.g. {out.iloc[0]}); "
                "pass tz='UTC' (or the data's zone) to localize them"
            )
        try:
            out = out.dt.tz_localize(tz, ambiguous="raise", nonexistent="raise")
        except Exception as exc:  # ambiguous / nonexistent local times, bad zone name
            raise ValueError(f"cannot localize column '{name}' with tz={tz!r}: {exc}") from exc
    return out.dt.tz_convert("UTC").astype("datetime64[ns, UTC]").reset_index(drop=True)


def _epoch_unit_codes(x: np.ndarray) -> np.ndarray:
    bounds = np.array([b for _, b in _EPOCH_UNITS])
    return np.searchsorted(bounds, np.abs(x), side="right")


def _parse_epoch(s: pd.Series, name: str, row_label: RowLabel) -> pd.Series:
    x = s.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(x)):
        i = int(np.flatnonzero(~np.isfinite(x))[0])
        raise ValueError(f"non-finite epoch timestamp in column '{name}' at {row_label(i)}")
    if np.any(x != np.round(x)):
        i = int(np.flatnonzero(x != np.round(x))[0])
        raise ValueError(f"fractional epoch timestamp in column '{name}' at {row_label(i)}")
    codes = _epoch_unit_codes(x)
    found = np.unique(codes)
    if found.size > 1:
        units = [_EPOCH_UNITS[c][0] for c in found]
        first_other = int(np.flatnonzero(codes != codes[0])[0])
        raise ValueError(
            f"mixed {'/'.join(units)} epoch timestamps in column '{name}' "
            f"(unit changes at {row_label(first_other)})"
        )
    unit = _PANDAS_UNIT[_EPOCH_UNITS[int(found[0])][0]]
    ints = s.to_numpy(dtype=np.int64) if not pd.api.types.is_integer_dtype(s.dtype) else s.to_numpy()
    return pd.Series(pd.to_datetime(ints, unit=unit, utc=True))


def _parse_text_or_objects(s: pd.Series, name: str, row_label: RowLabel) -> pd.Series:
    is_text = s.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool) if s.dtype == object else None
    if is_text is not None and is_text.any() and not is_text.all():
        i = int(np.flatnonzero(~is_text)[0] if is_text[0] else np.flatnonzero(is_text)[0])
        raise ValueError(f"column '{name}' mixes text and non-text values ({row_label(i)})")
    try:
        if is_text is None or is_text.all():
            return pd.Series(pd.to_datetime(s.astype(str), format="ISO8601"))
        return pd.Series(pd.to_datetime(s))
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        if "Mixed timezones" in msg or "Tz-aware" in msg or "tz-naive" in msg.lower():
            raise ValueError(
                f"mixed time zones / mixed offsets in column '{name}'; convert every "
                "timestamp to one zone (preferably UTC) first"
            ) from exc
        coerced = pd.to_datetime(s.astype(str), format="ISO8601", errors="coerce", utc=True)
        bad = np.flatnonzero(coerced.isna().to_numpy())
        where = f" at {row_label(int(bad[0]))}: {s.iloc[int(bad[0])]!r}" if bad.size else ""
        raise ValueError(f"unparseable timestamp in column '{name}'{where}") from exc


# ----------------------------------------------------------------------------------------------
# Numeric columns
# ----------------------------------------------------------------------------------------------
def _numeric(s: pd.Series, name: str, where: Callable[[int], str]) -> np.ndarray:
    """Column as float64; non-numeric text is an error naming the first offending row."""
    if pd.api.types.is_bool_dtype(s.dtype):
        raise ValueError(f"column '{name}' holds booleans, expected numbers")
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    obj = s.astype(object)  # keeps missing values missing (pandas 2 "str" would write 'nan')
    stripped = obj.where(obj.isna(), obj.astype(str).str.strip())
    blank = stripped.isna() | (stripped == "")
    coerced = pd.to_numeric(stripped.where(~blank, None), errors="coerce")
    bad = np.flatnonzero((coerced.isna() & ~blank).to_numpy())
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"non-numeric text in column '{name}' at {where(i)}: {s.iloc[i]!r}")
    return coerced.to_numpy(dtype=np.float64, na_value=np.nan)


def _check_values(cols: dict[str, np.ndarray], where: Callable[[int], str]) -> None:
    """Range checks on the numeric columns (NaN/inf, signs, low <= open, close <= high, notional/volume)."""

    def fail(mask: np.ndarray, msg: str) -> None:
        if mask.any():
            raise ValueError(f"{msg} at {where(int(np.flatnonzero(mask)[0]))}")

    for c in (*PRICE_COLUMNS, "volume", "notional"):
        fail(np.isnan(cols[c]), f"NaN (missing value) in column '{c}'")
        fail(np.isinf(cols[c]), f"inf in column '{c}'")
    fail(np.isinf(cols["trades"]), "inf in column 'trades'")
    for c in PRICE_COLUMNS:
        fail(cols[c] <= 0, f"non-positive price in column '{c}'")
    for c in ("volume", "notional"):
        fail(cols[c] < 0, f"negative {c} in column '{c}'")
    fail(cols["trades"] < 0, "negative trades in column 'trades'")
    fail(cols["high"] < cols["low"], "high < low")
    tol = _RANGE_RTOL * cols["high"]
    for c in ("open", "close"):
        fail(
            (cols[c] > cols["high"] + tol) | (cols[c] < cols["low"] - tol),
            f"{c} outside [low, high] (column '{c}' must lie within the bar's range)",
        )
    fail(
        (cols["volume"] == 0) & (cols["notional"] > 0),
        "notional inconsistent with volume (volume == 0 but notional > 0)",
    )
    fail(
        (cols["volume"] > 0) & (cols["notional"] == 0),
        "notional inconsistent with volume (volume > 0 but notional == 0)",
    )


# ----------------------------------------------------------------------------------------------
# Main entry point
# ----------------------------------------------------------------------------------------------
def validate_bars(
    df: pd.DataFrame, *, tz: str | None = None, symbol: str | None = None
) -> pd.DataFrame:
    """Validate bars and return a NEW canonical bars frame (the input is never mutated).

    Args:
        df: Bars with columns ``timestamp, open, high, low, close, volume`` and optionally
            ``symbol``, ``notional``, ``notional_estimated`` and ``trades``. Extra columns
            are dropped. Rows of one symbol must be in ascending time order.
        tz: Time zone used to localize naive timestamps; without it naive
            timestamps are an error ("missing time zone").
        symbol: Symbol for every row when ``df`` has no ``symbol`` column
            (default ``"ASSET"``).

    Returns:
        The canonical bars frame (see module docstring), sorted by ``(symbol, timestamp)``.

    Raises:
        ValueError: naming the column and the first offending row (symbol, timestamp), e.g. a
            negative volume, ``high < low``, or an open or close outside ``[low, high]`` (relative
            tolerance 1e-9).
    """
    return _validate(df, tz=tz, symbol=symbol)


def _validate(
    df: pd.DataFrame,
    *,
    tz: str | None = None,
    symbol: str | None = None,
    row_label: RowLabel = _default_row_label,
) -> pd.DataFrame:
    """``validate_bars`` with a custom row label (loaders report file lines)."""
    if not isinstance(df, pd.DataFrame):
        raise ValueError(f"expected a pandas DataFrame of bars, got {type(df).__name__}")
    if len(df) == 0:
        raise ValueError("empty frame: no bars to validate")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"missing required column(s) {missing}; got {list(map(str, df.columns))}")

    symbols = _symbols(df, symbol, row_label)
    ts = parse_timestamps(df["timestamp"], tz=tz, row_label=row_label)

    def where(i: int) -> str:
        return f"{row_label(i)} (symbol '{symbols[i]}', timestamp {ts.iloc[i]})"

    cols = {c: _numeric(df[c], c, where) for c in (*PRICE_COLUMNS, "volume")}
    n = len(df)
    has_notional = "notional" in df.columns
    typical = (cols["high"] + cols["low"] + cols["close"]) / 3.0
    if has_notional:
        cols["notional"] = _numeric(df["notional"], "notional", where)
    else:
        cols["notional"] = cols["volume"] * typical
    cols["trades"] = _numeric(df["trades"], "trades", where) if "trades" in df.columns else np.full(n, np.nan)
    estimated = _estimated_flags(df, has_notional, n)
    _check_values(cols, where)

    # Rows grouped by symbol (stable, symbols in code point order as a string sort) with numpy on the symbol
    # codes: a pyarrow-backed string column is converted to numpy only here, never again below.
    codes = pd.factorize(symbols, sort=True)[0]
    order = np.argsort(codes, kind="stable")
    codes = codes[order]
    out = pd.DataFrame({"symbol": pd.Series(symbols[order], dtype="str"),
                        "timestamp": ts.iloc[order].reset_index(drop=True)})
    for c in (*PRICE_COLUMNS, "volume", "notional"):
        out[c] = cols[c][order]
    out["notional_estimated"] = estimated[order]
    out["trades"] = cols["trades"][order]
    out["_row"] = order
    _check_order(out, codes, symbols[order], row_label)

    starts = np.r_[True, codes[1:] != codes[:-1]]
    fallback = (out["high"].to_numpy() + out["low"].to_numpy() + out["close"].to_numpy()) / 3.0
    out["price"] = _carried_vwap(
        out["volume"].to_numpy(), out["notional"].to_numpy(), fallback, starts
    )
    return out.loc[:, list(BAR_COLUMNS)].reset_index(drop=True)


def _symbols(df: pd.DataFrame, symbol: str | None, row_label: RowLabel) -> np.ndarray:
    if "symbol" not in df.columns:
        name = DEFAULT_SYMBOL if symbol is None else str(symbol)
        if not name:
            raise ValueError("symbol must be a non-empty string")
        return np.full(len(df), name, dtype=object)
    raw = df["symbol"]
    if raw.isna().any():
        i = int(np.flatnonzero(raw.isna().to_numpy())[0])
        raise ValueError(f"missing symbol in column 'symbol' at {row_label(i)}")
    values = raw.astype(str).str.strip().to_numpy(dtype=object)
    empty = values == ""
    if empty.any():
        raise ValueError(f"empty symbol in column 'symbol' at {row_label(int(np.flatnonzero(empty)[0]))}")
    return values


def _estimated_flags(df: pd.DataFrame, has_notional: bool, n: int) -> np.ndarray:
    if not has_notional:
        return np.ones(n, dtype=bool)
    if "notional_estimated" not in df.columns:
        return np.zeros(n, dtype=bool)
    flags = df["notional_estimated"]
    if flags.isna().any() or not pd.api.types.is_bool_dtype(flags.dtype):
        raise ValueError("column 'notional_estimated' must be boolean with no missing values")
    return flags.to_numpy(dtype=bool)


def _check_order(out: pd.DataFrame, codes: np.ndarray, sym: np.ndarray, row_label: RowLabel) -> None:
    """Within each symbol, timestamps must be strictly increasing (no silent sorting); ``codes`` and ``sym`` are
    the symbol codes and names of ``out``'s rows."""
    t = _epoch_ns(out["timestamp"])
    same = codes[1:] == codes[:-1]
    step = np.diff(t)
    for mask, word in ((same & (step < 0), "unsorted"), (same & (step == 0), "duplicated")):
        if mask.any():
            j = int(np.flatnonzero(mask)[0]) + 1
            row = int(out["_row"].iloc[j])
            stamp = out["timestamp"].iloc[j]
            if word == "unsorted":
                raise ValueError(
                    f"timestamps unsorted for symbol '{sym[j]}': {stamp} at {row_label(row)} comes "
                    f"after {out['timestamp'].iloc[j - 1]} (sort the data first; nothing is sorted silently)"
                )
            raise ValueError(f"duplicated (symbol, timestamp) ('{sym[j]}', {stamp}) at {row_label(row)}")


def _epoch_ns(values: pd.Series | pd.Index) -> np.ndarray:
    """Datetimes (aware or naive) as int64 nanoseconds since the epoch, vectorised."""
    return pd.DatetimeIndex(values).as_unit("ns").asi8


def infer_bar_minutes(df: pd.DataFrame) -> int:
    """Modal spacing between consecutive bars of a symbol, in minutes.

    Args:
        df: Canonical bars (``symbol``/``timestamp`` columns), a frame with a
            ``timestamp`` column, or a wide frame with a ``DatetimeIndex``.

    Returns:
        The most frequent positive gap between consecutive bars of the same symbol,
        rounded to whole minutes (ties: the smaller gap).

    Raises:
        ValueError: fewer than 2 bars in every symbol, or a sub-minute spacing.
    """
    if "timestamp" in getattr(df, "columns", ()):
        ns = _epoch_ns(df["timestamp"])
        sym = pd.factorize(df["symbol"])[0] if "symbol" in df.columns else np.zeros(len(df), int)
    elif isinstance(getattr(df, "index", None), pd.DatetimeIndex):
        ns, sym = _epoch_ns(df.index), np.zeros(len(df), dtype=int)
    else:
        raise ValueError("infer_bar_minutes needs a 'timestamp' column or a DatetimeIndex")
    order = np.lexsort((ns, sym))
    ns, sym = ns[order], sym[order]
    gaps = np.diff(ns)[sym[1:] == sym[:-1]]
    gaps = gaps[gaps > 0]
    if gaps.size == 0:
        raise ValueError("infer_bar_minutes needs at least 2 bars of one symbol")
    values, counts = np.unique(gaps, return_counts=True)
    minutes = int(round(values[np.argmax(counts)] / 60e9))
    if minutes < 1:
        raise ValueError("bars shorter than one minute are not supported")
    return minutes
