"""The per-symbol split index of a :class:`lems.data.universe.SymbolUniverse` and its on-disk cache.

A split pass needs, per symbol, only its bar open times, where volume traded and the notional per UTC day
(:class:`_SymbolIndex`), not its features. With a cache folder (:func:`default_cache_dir`), the index is
stored in a small ``.npz`` file named by the symbol and a digest of the source file's key (path, size,
modification time, read options), the universe options that change the bars (resampling) and the lems
version (:func:`index_path`), so a later split reads the index instead of the bars.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from lems.data.calendar import timestamps_ns
from lems.data.features import MarketSeries

__all__ = ["default_cache_dir", "index_path", "load_index", "load_market", "save_index", "save_market"]

_DAY_NS = 86_400_000_000_000
_CACHE_VERSION = 1  # bump when _SymbolIndex or its computation changes: old cache files are then ignored


class _SymbolIndex(NamedTuple):
    """What the split pass needs of one symbol: timestamps, where volume traded, daily notional (no features)."""

    ns: np.ndarray  # (T,) bar open times [UTC ns]
    traded: np.ndarray  # (T + 1,) prefix counts of bars with positive volume
    day: np.ndarray  # (D,) UTC days (days since 1970-01-01) holding bars
    day_notional: np.ndarray  # (D,) notional traded per UTC day [quote currency]

    @classmethod
    def of(cls, bars: pd.DataFrame) -> _SymbolIndex:
        """The index of one symbol's validated canonical bars."""
        ns = timestamps_ns(bars["timestamp"]).astype(np.int64)
        volume = bars["volume"].to_numpy(np.float64)
        day, first = np.unique(ns // _DAY_NS, return_index=True)
        notional = bars["notional"].to_numpy(np.float64)
        day_notional = np.add.reduceat(notional, first) if ns.size else np.zeros(0)
        return cls(ns, np.r_[0, np.cumsum(volume > 0)].astype(np.int64), day.astype(np.int64), day_notional)

    def liquidity(self, before_ns: int | None) -> float:
        """Median notional per UTC day over the complete days ending at or before ``before_ns`` [quote currency];
        every day when ``None``; 0.0 when there is no such day (a symbol listed after ``before_ns``)."""
        days = self.day_notional if before_ns is None else self.day_notional[(self.day + 1) * _DAY_NS <= before_ns]
        return float(np.median(days)) if days.size else 0.0


def default_cache_dir() -> Path:
    """The per-user cache folder of universe indexes: ``$LEMS_CACHE_DIR``, else ``$XDG_CACHE_HOME/lems/universe``,
    else ``~/.cache/lems/universe`` (never inside the data folder or the repository)."""
    if os.environ.get("LEMS_CACHE_DIR"):
        return Path(os.environ["LEMS_CACHE_DIR"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return base / "lems" / "universe"


@dataclass(frozen=True)
class _TimeRule:
    """Which windows a part keeps (the purged split of :meth:`WindowSet.split`), UTC ns bounds, then every
    ``every``-th of a symbol's windows (:meth:`UniverseWindows.thin`)."""

    origin_from: int | None = None  # origin >= origin_from
    last_before: int | None = None  # open of the last horizon bar < last_before
    every: int = 1

    def select(self, ns: np.ndarray, origins: np.ndarray, n_ahead: int) -> np.ndarray:
        """The kept origins (positions in the symbol's bars) among the valid ``origins``."""
        keep = np.ones(origins.shape, dtype=bool)
        if self.origin_from is not None:
            keep &= ns[origins] >= self.origin_from
        if self.last_before is not None:
            keep &= ns[origins + n_ahead - 1] < self.last_before
        return origins[keep][:: self.every]


def _lems_version() -> str:
    """The installed lems version (part of every cache key), ``"unknown"`` when lems is not installed."""
    try:
        return importlib.metadata.version("lems")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _safe_name(symbol: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in symbol)[:64]


def index_path(cache_dir: Path, symbol: str, key: list) -> Path:
    """The cache file of ``symbol``'s index under ``cache_dir`` for a source key and universe options ``key``
    (any JSON-serialisable list that changes whenever the bars counted would change)."""
    digest = hashlib.sha256(json.dumps([_CACHE_VERSION, _lems_version(), key]).encode()).hexdigest()[:32]
    return cache_dir / f"{_safe_name(symbol)}-{digest}.npz"


def load_index(path: Path) -> _SymbolIndex | None:
    """The index stored at ``path``; None when the file is missing or unreadable (then rebuilt from the bars)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as stored:
            return _SymbolIndex(*(stored[name] for name in _SymbolIndex._fields))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # an interrupted write or another layout


def save_index(path: Path, index: _SymbolIndex) -> None:
    """Write ``index`` to ``path`` atomically (a temporary file renamed), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npz")
    np.savez(tmp, **index._asdict())
    os.replace(tmp, path)


def load_market(path: Path) -> MarketSeries | None:
    """The market series stored at ``path``; None when the file is missing or unreadable (then rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path) as stored:
            return MarketSeries(stored["ns"], stored["volume_sum"], stored["ret_sum"], stored["count"],
                                tuple(str(s) for s in stored["symbols"]))
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None


def save_market(path: Path, series: MarketSeries) -> None:
    """Write a market series to ``path`` atomically (a temporary file renamed), creating the folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npz")
    np.savez(tmp, ns=series.ns, volume_sum=series.volume_sum, ret_sum=series.ret_sum, count=series.count,
             symbols=np.array(series.symbols, dtype=str))
    os.replace(tmp, path)
