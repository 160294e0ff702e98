"""File names and freqtrade data files.

Which reader a file name selects (:func:`_ending`), the symbol a file holds (:func:`symbol_from_path`), and
freqtrade OHLCV files (``<BASE>_<QUOTE>[_<SETTLE>]-<timeframe>[-<candle type>]`` ``.feather``, ``.json``,
``.json.gz``) read as raw frames; :func:`lems.data.loaders.read_bars` turns them into canonical bars.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["FREQTRADE_COLUMNS", "symbol_from_path"]

#: Columns of a freqtrade OHLCV JSON row, in order (``date`` in epoch milliseconds).
FREQTRADE_COLUMNS: tuple[str, ...] = ("date", "open", "high", "low", "close", "volume")
# freqtrade file stems: <BASE>_<QUOTE>[_<SETTLE>]-<timeframe>[-<candle type>], e.g. BTC_USDT-5m,
# BTC_USDT_USDT-1h-futures.
_FREQTRADE_STEM = re.compile(
    r"^(?P<base>[A-Za-z0-9]+)_(?P<quote>[A-Za-z0-9]+)(?:_(?P<settle>[A-Za-z0-9]+))?"
    r"-(?P<timeframe>\d+[smhdwMy])(?:-(?P<candle>[A-Za-z_]+))?$"
)
# freqtrade candle types that are traded bars (mark, index, premiumIndex, funding_rate are not).
_TRADED_CANDLES = (None, "spot", "futures")
_FREQTRADE_ENDINGS = (".feather", ".json", ".json.gz", ".parquet", ".pq")


def _ending(path: Path) -> str:
    """The file-name ending that selects the reader: ``.csv.gz`` / ``.json.gz`` or the last suffix."""
    name = path.name.lower()
    for double in (".csv.gz", ".json.gz"):
        if name.endswith(double):
            return double
    return path.suffix.lower()


def _stem(path: Path) -> str:
    """The file name without its reader ending (``BTC_USDT-5m.json.gz`` -> ``BTC_USDT-5m``)."""
    ending = _ending(path)
    return path.name[: len(path.name) - len(ending)] if ending else path.name


def symbol_from_path(path: str | Path) -> str:
    """The symbol a bar file holds, from its name.

    Rules, in order:

    * freqtrade files (``.feather``, ``.json``, ``.json.gz``, ``.parquet``) named
      ``<BASE>_<QUOTE>[_<SETTLE>]-<timeframe>[-<candle type>]``: ``<BASE><QUOTE>`` as written,
      e.g. ``BTC_USDT-5m.feather`` -> ``BTCUSDT``, ``BTC_USDT_USDT-1h-futures.feather`` -> ``BTCUSDT``
      (the settle currency and the candle type are dropped: one folder holds one market);
    * anything else: the file name without its reader ending (``AAPL.csv.gz`` -> ``AAPL``,
      ``BTC_USDT-5m.csv`` -> ``BTC_USDT-5m``).

    :func:`read_bars` names the bars of a file it recognises as a Binance kline file by the part of
    the name before the first ``-`` instead (``BTCUSDT-5m-2024-01.zip`` -> ``BTCUSDT``), as before.

    Args:
        path: The file path (only its name is read).

    Returns:
        The symbol name.
    """
    path = Path(path)
    stem = _stem(path)
    match = _FREQTRADE_STEM.match(stem)
    if match is not None and _ending(path) in _FREQTRADE_ENDINGS:
        return f"{match.group('base')}{match.group('quote')}"
    return stem


def _check_one_file_per_pair(folder: Path, files: list[Path]) -> None:
    """A folder may not hold one freqtrade pair twice (two timeframes, formats or markets: bars would collide)."""
    seen: dict[str, Path] = {}
    for path in files:
        if _ending(path) not in _FREQTRADE_ENDINGS or _FREQTRADE_STEM.match(_stem(path)) is None:
            continue
        key = symbol_from_path(path)
        if key in seen:
            raise ValueError(
                f"{folder}: two freqtrade files hold symbol '{key}' ({seen[key].name}, {path.name}); "
                "pass the files of one timeframe and format (a list of paths), e.g. every '*-5m.feather'"
            )
        seen[key] = path


def _gunzip(path: Path) -> bytes:
    try:
        return gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as exc:  # gzip.BadGzipFile derives from OSError
        raise ValueError(f"{path}: unreadable gzip file ({exc})") from exc


def _freqtrade_symbol(path: Path) -> str:
    """:func:`symbol_from_path`, refusing freqtrade candle types that are not traded bars."""
    match = _FREQTRADE_STEM.match(_stem(path))
    if match is not None and match.group("candle") not in _TRADED_CANDLES:
        raise ValueError(
            f"{path}: freqtrade '{match.group('candle')}' candles are not traded bars (no volume to track); "
            "read the spot or futures files"
        )
    return symbol_from_path(path)


def _read_freqtrade(path: Path) -> pd.DataFrame:
    """A freqtrade OHLCV file (``.feather``, ``.json``, ``.json.gz``) as a raw frame (``date`` .. ``volume``)."""
    if _ending(path) == ".feather":
        try:
            return pd.read_feather(path)
        except ImportError as exc:
            raise ImportError(f"{path}: reading feather needs pyarrow ({exc}); pip install pyarrow") from exc
        except (OSError, ValueError, TypeError) as exc:  # pyarrow's Arrow* errors derive from these
            raise ValueError(f"{path}: unreadable feather file ({type(exc).__name__}: {exc})") from exc
    raw = _gunzip(path) if _ending(path) == ".json.gz" else path.read_bytes()
    try:
        rows = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:  # json.JSONDecodeError is a ValueError
        raise ValueError(f"{path}: unreadable JSON ({exc})") from exc
    return _freqtrade_rows(rows, str(path))


def _freqtrade_rows(rows: Any, where: str) -> pd.DataFrame:
    """freqtrade JSON rows ``[[ms, o, h, l, c, v], ...]`` as a frame with :data:`FREQTRADE_COLUMNS`."""
    width = len(FREQTRADE_COLUMNS)
    if not isinstance(rows, list) or not rows:
        raise ValueError(f"{where}: expected a non-empty JSON list of [ms, open, high, low, close, volume] rows")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            raise ValueError(
                f"{where}: row {i} is {str(row)[:60]}, expected [ms timestamp, open, high, low, close, volume]"
            )
    return pd.DataFrame(rows, columns=list(FREQTRADE_COLUMNS))
