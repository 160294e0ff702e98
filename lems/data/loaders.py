"""Loaders that turn files, folders and in-memory frames into canonical bars.

Every loader returns the canonical bars frame of :mod:`lems.data.validation`
(long format, one row per bar, UTC open times, exact or estimated notional,
bar VWAP ``price``). Supported sources:

* Binance kline CSV files or ``.zip`` archives holding one CSV: spot files
  without header, futures files with header; ``open_time`` in ms or µs.
* Generic OHLCV CSV / Parquet files with a header (one symbol, or long
  format with a ``symbol``/``ticker`` column); gzip-compressed CSV (``.csv.gz``).
* freqtrade data folders: ``<BASE>_<QUOTE>-<timeframe>.feather``, ``.json``,
  ``.json.gz`` or ``.parquet`` files (columns ``date, open, high, low, close,
  volume``; the JSON files a list of ``[ms timestamp, o, h, l, c, v]`` rows),
  symbol ``<BASE><QUOTE>`` (:func:`symbol_from_path`). They hold no quote
  volume: the notional is estimated, as for any file without one.
* pandas or polars DataFrames, dicts ``{symbol: DataFrame or path}``,
  folders and lists of any of these.
* Wide panels (one column per asset) via :func:`bars_from_wide`.
"""

from __future__ import annotations

import io
import warnings
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lems.data.freqtrade import (
    FREQTRADE_COLUMNS,
    _check_one_file_per_pair,
    _ending,
    _freqtrade_symbol,
    _gunzip,
    _read_freqtrade,
    symbol_from_path,
)
from lems.data.resample import resample_validated
from lems.data.validation import _validate, bar_vwap, parse_timestamps

__all__ = [
    "BINANCE_COLUMNS",
    "FREQTRADE_COLUMNS",
    "SUPPORTED_ENDINGS",
    "SUPPORTED_SUFFIXES",
    "bars_from_wide",
    "read_bars",
    "symbol_from_path",
    "to_wide",
]

#: Binance kline columns (futures header names), in file order.
BINANCE_COLUMNS: tuple[str, ...] = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)
_BINANCE_SPOT_NAMES = {"quote_asset_volume", "number_of_trades", "taker_buy_base", "taker_buy_quote"}
#: File suffixes read from folders (``Path.suffix``: ``.gz`` stands for ``.csv.gz`` and ``.json.gz``).
SUPPORTED_SUFFIXES: tuple[str, ...] = (".csv", ".zip", ".parquet", ".pq", ".gz", ".feather", ".json")
#: Full file-name endings read from folders (a ``.gz`` file must be one of these).
SUPPORTED_ENDINGS: tuple[str, ...] = (".csv", ".zip", ".parquet", ".pq", ".csv.gz", ".feather", ".json", ".json.gz")
_FORMATS = ("binance", "csv", "parquet")

# Generic column aliases (lower-case), first match wins.
_TIME_ALIASES = ("timestamp", "time", "date", "datetime", "open_time")
_NOTIONAL_ALIASES = ("notional", "quote_volume", "quote_asset_volume", "turnover", "amount")
_TRADES_ALIASES = ("trades", "count", "number_of_trades")
_SYMBOL_ALIASES = ("symbol", "ticker")
_OHLCV = ("open", "high", "low", "close", "volume")


# ----------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------
def read_bars(
    source: Any,
    *,
    symbol: str | None = None,
    format: str | None = None,  # noqa: A002 - public keyword named by the API
    tz: str | None = None,
    sort: bool = False,
    columns: Mapping[str, str] | None = None,
    bar_minutes: int | None = None,
) -> pd.DataFrame:
    """Read bars from files, folders or frames into one canonical bars frame.

    Args:
        source: A path (``str``/``Path``) to a file or a folder (every ``.csv``, ``.csv.gz``,
            ``.zip``, ``.parquet``, ``.feather``, ``.json``, ``.json.gz`` inside; symbol from the
            file name, :func:`symbol_from_path`), a list of paths, a pandas DataFrame, a polars
            DataFrame, or a dict ``{symbol: DataFrame or path}``.
        symbol: Symbol for data without a ``symbol`` column (overrides the file-name
            symbol; default ``"ASSET"`` for frames).
        format: ``None`` (auto-detect), ``"binance"`` (kline CSV / zip), ``"csv"``
            (generic OHLCV CSV) or ``"parquet"``.
        tz: Time zone for naive timestamps; naive timestamps without it are an error.
        sort: Sort each source by time before validation (e.g. files written in reverse
            order). Off by default: unsorted data is an error, never silently sorted.
        columns: Renames applied first, mapping the user's names to canonical ones,
            e.g. ``{"ts": "timestamp", "qty": "volume"}``.
        bar_minutes: Aggregate the bars read to bars of this length [minutes], a multiple of
            the files' bar length (:func:`lems.data.resample.resample_bars` with its defaults:
            buckets on the UTC clock from midnight, partial buckets kept); ``None``: as read.
            For session-anchored equity buckets call ``resample_bars`` with ``tz``/``anchor``.

    Returns:
        The canonical bars frame, sorted by ``(symbol, timestamp)``.

    Raises:
        ValueError: unknown format, malformed file (naming the file and line) or any
            validation error of :func:`lems.data.validation.validate_bars`.
        ImportError: a parquet file without pyarrow or fastparquet installed.
    """
    if format is not None and format not in _FORMATS:
        raise ValueError(f"unknown format {format!r}; expected one of {_FORMATS} or None")
    opts = _Options(symbol=symbol, format=format, tz=tz, sort=sort, columns=dict(columns or {}))
    bars = _combined(_collect(source, opts), source, sort)
    return bars if bar_minutes is None else resample_validated(bars, bar_minutes)


def _combined(parts: list[pd.DataFrame], source: Any, sort: bool) -> pd.DataFrame:
    """One canonical frame from the frames of every file / frame of ``source``."""
    if not parts:
        raise ValueError(f"no bars found in {source!r}")
    if len(parts) == 1:
        return parts[0]
    merged = pd.concat(parts, ignore_index=True).drop(columns="price")
    if sort:
        merged = merged.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)
    try:
        return _validate(merged)
    except ValueError as exc:
        raise ValueError(f"combining {len(parts)} sources (rows counted across them): {exc}") from exc


def bars_from_wide(
    volumes_df: pd.DataFrame,
    notionals_df: pd.DataFrame,
    prices_df: pd.DataFrame | None = None,
    *,
    tz: str | None = None,
) -> pd.DataFrame:
    """Canonical bars from wide panels (rows: DatetimeIndex of bar open times, columns: assets).

    A NaN volume means the asset has no bar at that time (the row is dropped for that
    asset). ``price`` is ``notional / volume``, carried forward over zero-volume bars.
    Without ``prices_df``, the zero-volume bars of an asset before its first trade (e.g. the
    night before an equity's first session on a 24-hour grid) have no price: they are dropped,
    with one ``UserWarning`` that counts them per asset. Zero-volume bars after the first trade
    are kept.

    Args:
        volumes_df: Traded quantity per bar and asset (base units / shares).
        notionals_df: Traded notional per bar and asset (quote currency); same index and
            columns as ``volumes_df``.
        prices_df: Optional price per bar and asset, used as open = high = low = close;
            without it every OHLC price is the bar VWAP.
        tz: Time zone for a naive index (e.g. ``"UTC"``); a naive index without it is an
            error ("missing time zone").

    Returns:
        The canonical bars frame, ``notional_estimated`` False, ``trades`` NaN.

    Raises:
        ValueError: mismatched panels, notional missing where volume is present (or the
            reverse), an asset that never trades (without ``prices_df``), a bar before an
            asset's first trade with a negative volume or a non-zero notional, or any
            validation error.
    """
    frames = {"volumes_df": volumes_df, "notionals_df": notionals_df}
    if prices_df is not None:
        frames["prices_df"] = prices_df
    _check_panels(frames)
    vol = volumes_df.to_numpy(dtype=np.float64)
    notn = notionals_df.loc[volumes_df.index, volumes_df.columns].to_numpy(dtype=np.float64)
    has_bar = ~np.isnan(vol)
    _check_panel_holes(has_bar, np.isnan(notn), volumes_df, "notionals_df")
    prices = None
    if prices_df is not None:
        prices = prices_df.loc[volumes_df.index, volumes_df.columns].to_numpy(dtype=np.float64)
        _check_panel_holes(has_bar, np.isnan(prices), volumes_df, "prices_df")
    else:
        has_bar = _drop_before_first_trade(has_bar, vol, notn, volumes_df)

    rows, cols = np.nonzero(has_bar.T)  # column-major: grouped by asset, time-ordered
    long = pd.DataFrame(
        {
            "symbol": np.asarray(volumes_df.columns.astype(str))[rows],
            "timestamp": volumes_df.index[cols],
            "volume": vol[cols, rows],
            "notional": notn[cols, rows],
        }
    )
    if prices is not None:
        px = prices[cols, rows]
    else:
        px = _panel_vwap(long)
    for c in ("open", "high", "low", "close"):
        long[c] = px
    return _validate(long, tz=tz)


def to_wide(bars: pd.DataFrame, column: str) -> pd.DataFrame:
    """Pivot canonical bars to a wide panel.

    Args:
        bars: Canonical bars frame (``symbol``, ``timestamp`` and ``column``).
        column: The column to spread, e.g. ``"volume"``, ``"notional"`` or ``"price"``.

    Returns:
        DataFrame indexed by ``timestamp`` (sorted), one column per symbol (sorted);
        NaN where a symbol has no bar.
    """
    for c in ("symbol", "timestamp", column):
        if c not in bars.columns:
            raise ValueError(f"to_wide: bars have no column '{c}'")
    wide = bars.pivot(index="timestamp", columns="symbol", values=column).sort_index()
    wide = wide.reindex(columns=sorted(wide.columns))
    wide.columns.name = "symbol"
    wide.index.name = "timestamp"
    return wide


# ----------------------------------------------------------------------------------------------
# Source dispatch
# ----------------------------------------------------------------------------------------------
class _Options:
    """Read options shared by every part of one ``read_bars`` call."""

    def __init__(
        self,
        *,
        symbol: str | None,
        format: str | None,  # noqa: A002
        tz: str | None,
        sort: bool,
        columns: dict[str, str],
    ) -> None:
        self.symbol = symbol
        self.format = format
        self.tz = tz
        self.sort = sort
        self.columns = columns


def _collect(source: Any, opts: _Options, default_symbol: str | None = None) -> list[pd.DataFrame]:
    """Canonical frames, one per file / frame found in ``source``."""
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            return [_read_file(p, opts) for p in _folder_files(path)]
        return [_read_file(path, opts)]
    if isinstance(source, pd.DataFrame):
        return [_from_frame(source, opts, default_symbol, where="DataFrame")]
    if _is_polars(source):
        return [_from_frame(_polars_to_pandas(source), opts, default_symbol, where="polars DataFrame")]
    if isinstance(source, Mapping):
        out: list[pd.DataFrame] = []
        for key, value in source.items():
            sub = _Options(
                symbol=str(key), format=opts.format, tz=opts.tz, sort=opts.sort, columns=opts.columns
            )
            out.extend(_collect(value, sub, default_symbol=str(key)))
        return out
    if isinstance(source, Sequence) and not isinstance(source, (bytes, bytearray)):
        return [frame for item in source for frame in _collect(item, opts, default_symbol)]
    raise ValueError(
        f"unsupported source type {type(source).__name__}: pass a path, a folder, a list of paths, "
        "a pandas/polars DataFrame or a dict {symbol: DataFrame}"
    )


def _folder_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and _ending(p) in SUPPORTED_ENDINGS)
    if not files:
        raise ValueError(f"{folder}: folder holds no supported files ({', '.join(SUPPORTED_ENDINGS)})")
    _check_one_file_per_pair(folder, files)
    return files


def _is_polars(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "polars" and type(obj).__name__ == "DataFrame"


def _polars_to_pandas(frame: Any) -> pd.DataFrame:
    """polars -> pandas; without pyarrow (polars' ``to_pandas`` needs it) through Python lists, same values."""
    try:
        return frame.to_pandas()
    except ImportError:  # ModuleNotFoundError: pyarrow is not installed
        return pd.DataFrame(frame.to_dict(as_series=False))


# ----------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------
def _read_file(path: Path, opts: _Options) -> pd.DataFrame:
    if not path.is_file():
        raise ValueError(f"{path}: no such file or folder")
    suffix = _ending(path)
    fmt = opts.format
    if suffix == ".zip":
        return _read_zip(path, opts)
    if suffix in (".feather", ".json", ".json.gz"):
        return _from_frame(_read_freqtrade(path), opts, _freqtrade_symbol(path), where=str(path))
    if fmt == "parquet" or (fmt is None and suffix in (".parquet", ".pq")):
        return _from_frame(_read_parquet(path), opts, symbol_from_path(path), where=str(path))
    if suffix == ".csv.gz":
        return _read_csv_bytes(_gunzip(path), path.name[:-3], str(path), opts)
    if fmt in ("binance", "csv") or suffix in (".csv", ".txt"):
        return _read_csv_bytes(path.read_bytes(), path.name, str(path), opts)
    raise ValueError(f"{path}: unknown format (suffix {suffix!r}); pass format='binance', 'csv' or 'parquet'")


def _read_parquet(path: Path) -> pd.DataFrame:
    """``pd.read_parquet`` whose failures name the file and say why (no engine, or a bad file)."""
    try:
        return pd.read_parquet(path)
    except ImportError as exc:
        raise ImportError(
            f"{path}: reading parquet needs pyarrow or fastparquet ({exc}); pip install pyarrow"
        ) from exc
    except (OSError, ValueError, TypeError, NotImplementedError) as exc:  # pyarrow's Arrow* errors
        raise ValueError(f"{path}: unreadable parquet file ({type(exc).__name__}: {exc})") from exc


def _read_zip(path: Path, opts: _Options) -> pd.DataFrame:
    try:
        with zipfile.ZipFile(path) as zf:
            members = [
                m for m in zf.infolist() if not m.is_dir() and not m.filename.startswith("__MACOSX")
            ]
            csvs = [m for m in members if m.filename.lower().endswith(".csv")]
            if len(csvs) != 1:
                raise ValueError(
                    f"{path}: unreadable zip: expected exactly one CSV inside, "
                    f"found {[m.filename for m in members]}"
                )
            data = zf.read(csvs[0])
    except (zipfile.BadZipFile, OSError, EOFError, zipfile.LargeZipFile) as exc:
        raise ValueError(f"{path}: unreadable zip ({exc})") from exc
    return _read_csv_bytes(data, path.name, f"{path}:{csvs[0].filename}", opts)


def _read_csv_bytes(data: bytes, file_name: str, where: str, opts: _Options) -> pd.DataFrame:
    """Read one CSV (Binance kline or generic OHLCV) from its raw bytes."""
    first = data.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0].decode("utf-8", "replace").strip()
    if not first:
        raise ValueError(f"{where}: empty file")
    fields = [f.strip().lower() for f in first.split(",")]
    kind = opts.format or _sniff(fields)
    if kind not in ("binance", "csv"):
        raise ValueError(
            f"{where}: unknown format (first line {first[:80]!r}); expected a Binance kline CSV "
            "or a generic OHLCV CSV with a header"
        )
    if kind == "binance":
        return _read_binance(data, fields, file_name, where, opts)
    return _read_generic_csv(data, file_name, where, opts)


def _sniff(fields: list[str]) -> str:
    headerless = fields[0].isdigit()
    if headerless and len(fields) == len(BINANCE_COLUMNS):
        return "binance"
    if headerless:
        return "unknown"
    if fields[0] == "open_time" and "close_time" in fields and len(fields) == len(BINANCE_COLUMNS):
        return "binance"
    return "csv"


def _binance_symbol(file_name: str) -> str:
    return Path(file_name).stem.split("-", 1)[0]


def _read_binance(
    data: bytes, fields: list[str], file_name: str, where: str, opts: _Options
) -> pd.DataFrame:
    has_header = not fields[0].isdigit()
    if has_header and fields[0] != "open_time":
        raise ValueError(f"{where}: not a Binance kline file (header {fields})")
    width = len(BINANCE_COLUMNS)
    if len(fields) != width:
        raise ValueError(
            f"{where}: wrong column count {len(fields)} on line 1, expected {width} (Binance kline)"
        )
    frame = _csv(data, where, header=0 if has_header else None, names=list(BINANCE_COLUMNS))
    if frame.shape[1] != width:
        raise ValueError(f"{where}: wrong column count {frame.shape[1]}, expected {width} (Binance kline)")
    base = 2 if has_header else 1
    core = frame.iloc[:, : width - 1]
    short = core.isna().any(axis=1).to_numpy()
    if short.any():
        i = int(np.flatnonzero(short)[0])
        raise ValueError(
            f"{where}: truncated row / wrong column count at line {i + base}: expected {width} fields"
        )
    if opts.sort:
        frame = _sort_by_time(frame, "open_time", where)
    long = frame.rename(columns={"open_time": "timestamp", "quote_volume": "notional", "count": "trades"})
    long = long.loc[:, ["timestamp", "open", "high", "low", "close", "volume", "notional", "trades"]]
    sym = opts.symbol or _binance_symbol(file_name)
    return _checked(long, opts, sym, where, base)


def _read_generic_csv(data: bytes, file_name: str, where: str, opts: _Options) -> pd.DataFrame:
    frame = _csv(data, where, header=0)
    return _from_frame(frame, opts, Path(file_name).stem, where=where, line_base=2)


def _csv(data: bytes, where: str, *, header: int | None, names: list[str] | None = None) -> pd.DataFrame:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(
                io.BytesIO(data), header=header, names=names, index_col=False, skipinitialspace=True
            )
    except (pd.errors.ParserError, pd.errors.ParserWarning) as exc:
        raise ValueError(f"{where}: malformed CSV, wrong column count ({exc})") from exc
    except (pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ValueError(f"{where}: unreadable CSV ({exc})") from exc


# ----------------------------------------------------------------------------------------------
# Frames
# ----------------------------------------------------------------------------------------------
def _from_frame(
    frame: pd.DataFrame,
    opts: _Options,
    default_symbol: str | None,
    *,
    where: str,
    line_base: int | None = None,
) -> pd.DataFrame:
    """Map a generic OHLCV frame onto canonical names, then validate it."""
    frame = _apply_user_columns(frame, opts.columns, where)
    frame = _canonical_names(frame, where)
    if opts.sort:
        frame = _sort_by_time(frame, "timestamp", where)
    sym = opts.symbol or default_symbol
    return _checked(frame, opts, sym, where, line_base)


def _apply_user_columns(frame: pd.DataFrame, mapping: dict[str, str], where: str) -> pd.DataFrame:
    if not mapping:
        return frame
    absent = [k for k in mapping if k not in frame.columns]
    if absent:
        raise ValueError(f"{where}: columns= names {absent}, which the data does not have")
    return frame.rename(columns=mapping)


def _canonical_names(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    """Pick time / OHLCV / notional / trades / symbol columns by case-insensitive alias."""
    lower: dict[str, Any] = {}
    for col in frame.columns:
        lower.setdefault(str(col).strip().lower(), col)
    picks: dict[str, Any] = {}
    for canon, aliases in (
        ("timestamp", _TIME_ALIASES),
        ("notional", _NOTIONAL_ALIASES),
        ("trades", _TRADES_ALIASES),
        ("symbol", _SYMBOL_ALIASES),
        *((c, (c,)) for c in _OHLCV),
        ("notional_estimated", ("notional_estimated",)),
    ):
        hit = next((lower[a] for a in aliases if a in lower), None)
        if hit is not None:
            picks[canon] = hit
    if "timestamp" not in picks and isinstance(frame.index, pd.DatetimeIndex):
        frame = frame.reset_index(names="__index_time__")
        picks["timestamp"] = "__index_time__"
    missing = [c for c in ("timestamp", *_OHLCV) if c not in picks]
    if missing:
        raise ValueError(
            f"{where}: unknown format, missing required column(s) {missing} "
            f"(time column may be one of {list(_TIME_ALIASES)}); got {list(map(str, frame.columns))}"
        )
    return pd.DataFrame({canon: frame[col].reset_index(drop=True) for canon, col in picks.items()})


def _sort_by_time(frame: pd.DataFrame, col: str, where: str) -> pd.DataFrame:
    """Stable time sort (``sort=True``), after parsing so ISO strings with zones order correctly."""
    try:
        keys = parse_timestamps(frame[col], tz="UTC")
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc
    order = np.argsort(keys.to_numpy(), kind="stable")
    return frame.iloc[order].reset_index(drop=True)


def _checked(
    frame: pd.DataFrame, opts: _Options, sym: str | None, where: str, line_base: int | None
) -> pd.DataFrame:
    """Validate and prefix every error with the source name (and file line when known)."""
    row_label: Callable[[int], str]
    if line_base is None or opts.sort:
        row_label = _row
    else:
        row_label = _line(line_base)
    try:
        return _validate(frame, tz=opts.tz, symbol=sym, row_label=row_label)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc


def _row(i: int) -> str:
    return f"row {i}"


def _line(base: int) -> Callable[[int], str]:
    return lambda i: f"line {i + base}"


# ----------------------------------------------------------------------------------------------
# Wide panels
# ----------------------------------------------------------------------------------------------
def _check_panels(frames: dict[str, pd.DataFrame]) -> None:
    ref_name, ref = next(iter(frames.items()))
    for name, frame in frames.items():
        if not isinstance(frame, pd.DataFrame):
            raise ValueError(f"{name} must be a pandas DataFrame, got {type(frame).__name__}")
        if not isinstance(frame.index, pd.DatetimeIndex):
            raise ValueError(f"{name} must have a DatetimeIndex of bar open times")
        if frame.empty:
            raise ValueError(f"{name} is empty: no bars")
        if set(frame.columns) != set(ref.columns) or not frame.index.equals(ref.index):
            raise ValueError(f"{name} and {ref_name} must share the same index and columns")
    if ref.columns.duplicated().any():
        raise ValueError(f"{ref_name} has duplicated asset columns")


def _check_panel_holes(
    has_bar: np.ndarray, other_nan: np.ndarray, volumes_df: pd.DataFrame, other_name: str
) -> None:
    for mask, msg in (
        (has_bar & other_nan, f"{other_name} is NaN where volumes_df has a bar"),
        (~has_bar & ~other_nan, f"{other_name} has a value where volumes_df is NaN (no bar)"),
    ):
        if mask.any():
            r, c = (int(x[0]) for x in np.nonzero(mask))
            raise ValueError(f"{msg}: asset '{volumes_df.columns[c]}', timestamp {volumes_df.index[r]}")


def _drop_before_first_trade(
    has_bar: np.ndarray, vol: np.ndarray, notn: np.ndarray, volumes_df: pd.DataFrame
) -> np.ndarray:
    """``has_bar`` without each asset's bars before its first trade (volume > 0); one warning.

    Those bars carry no information and have no VWAP to carry forward (docs/execution.md §1).
    """
    traded = has_bar & (vol > 0)
    names = volumes_df.columns.astype(str)
    never = has_bar.any(axis=0) & ~traded.any(axis=0)
    if never.any():
        raise ValueError(
            f"asset(s) {list(names[never])} never trade (no bar with volume > 0): no price to load; "
            "drop the column(s) or pass prices_df"
        )
    n_rows = vol.shape[0]
    first = np.where(traded.any(axis=0), traded.argmax(axis=0), n_rows)
    leading = has_bar & (np.arange(n_rows)[:, None] < first[None, :])
    if not leading.any():
        return has_bar
    odd = leading & ((vol != 0) | (notn != 0))
    if odd.any():
        r, c = (int(x[0]) for x in np.nonzero(odd))
        raise ValueError(
            f"asset '{names[c]}', timestamp {volumes_df.index[r]}: volume {vol[r, c]:g} and notional "
            f"{notn[r, c]:g} before the asset's first trade (expected 0 and 0)"
        )
    counts = leading.sum(axis=0)
    cols = np.flatnonzero(counts)
    detail = ", ".join(
        f"'{names[c]}' {counts[c]} bar(s) before {volumes_df.index[first[c]]}" for c in cols
    )
    warnings.warn(
        f"bars_from_wide: dropped {int(counts.sum())} zero-volume bar(s) before the first trade "
        f"(no price to carry; pass prices_df to keep them): {detail}",
        UserWarning,
        stacklevel=3,
    )
    return has_bar & ~leading


def _panel_vwap(long: pd.DataFrame) -> np.ndarray:
    """VWAP per bar of a long frame grouped by symbol (time-ordered), each symbol starting with a trade."""
    vol = long["volume"].to_numpy()
    notional = long["notional"].to_numpy()
    out = np.empty(len(long))
    sym = long["symbol"].to_numpy()
    bounds = np.flatnonzero(np.r_[True, sym[1:] != sym[:-1], True])
    for a, b in zip(bounds[:-1], bounds[1:]):  # one iteration per asset, vectorised inside
        out[a:b] = bar_vwap(vol[a:b], notional[a:b], np.full(b - a, np.nan))
    return out

