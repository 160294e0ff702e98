"""Training windows over a universe of many symbols, without loading every symbol at once.

A :class:`SymbolSource` lists the symbols of a folder or a Parquet dataset and reads the bars of one symbol
at a time: a Parquet dataset partitioned by symbol (``root/symbol=XYZ/part-0.parquet``, read with
``pyarrow.dataset`` and a partition filter, so only that symbol's files are opened), a Parquet file or
dataset with a ``symbol`` column (filtered scan), a flat folder with one file (CSV, Binance zip, Parquet)
or one sub-folder per symbol, or an in-memory frame.

A :class:`SymbolUniverse` turns a source into windows. It never materialises the ``(N, lookback + H - 1, F)``
array of all windows: :meth:`SymbolUniverse.split` makes one pass over the symbols that reads only what counting
needs (each symbol's timestamps, where volume traded, notional per day: a small per-symbol index, optionally
cached on disk) and keeps a count of windows per part (train / validation / test, by time, purged exactly as
:meth:`lems.data.windows.WindowSet.split`), reporting progress per symbol; :meth:`UniverseWindows.batches` serves
fixed-shape batches gathered on the fly by :func:`lems.data.windows.build_batch` (the same rows as
:func:`lems.data.windows.make_windows`); :meth:`UniverseWindows.chunks` serves a part (validation, test) as
:class:`WindowSet` chunks of bounded size, so scoring never holds every window.

Symbol split: :meth:`SymbolUniverse.split_symbols` holds out a seeded fraction of the symbols (stratified by
the terciles of a training-period liquidity, :func:`choose_holdout`) or a list; held-out symbols never enter
the training or validation parts and get their own test part (:class:`UniverseSplit`).

Symbol weighting (:meth:`UniverseWindows.symbol_weights`, ``batches(weighting=...)``): per window (every window
weighs 1, so liquid symbols with more valid windows weigh more), per symbol (each symbol's windows together weigh
the same) or by notional (in proportion to the symbol's training-period median daily notional).

Shuffling across symbols with bounded memory: each epoch, the symbols are shuffled and cut into blocks of
``block_symbols``; the windows of a block (all its symbols, all times) are shuffled together and served in
batches, block after block (a batch at a block boundary takes rows of both). A batch therefore mixes up to
``min(batch_size, block_symbols)`` symbols; memory holds at most two blocks of per-symbol states, whatever
the number of symbols. Every window is served exactly once per epoch (padded last batch), or all but the
remainder (``drop_remainder``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
import time
import zipfile
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import keras
import numpy as np
import pandas as pd

from lems.batching import as_tuples
from lems.data.calendar import add_calendar, timestamps_ns, to_utc_ns
from lems.data.features import FEATURE_NAMES, build_slot_index
from lems.data.loaders import SUPPORTED_SUFFIXES, read_bars
from lems.data.validation import validate_bars
from lems.data.windows import (
    _CHUNK,
    SymbolState,
    WindowSet,
    _empty_set,
    build_batch,
    rate_arrays,
    valid_origin_indices,
)

__all__ = [
    "WEIGHTINGS",
    "SplitProgress",
    "SymbolSource",
    "SymbolUniverse",
    "UniverseDataset",
    "UniverseSplit",
    "UniverseWindows",
    "choose_holdout",
    "default_cache_dir",
    "merge_states",
    "open_symbols",
    "write_partitioned",
]

_PARQUET_SUFFIXES = (".parquet", ".pq")


# ----------------------------------------------------------------------------------------------
# Sources: the symbols of a folder / dataset, read one at a time
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _ReadOptions:
    """Options of :func:`lems.data.loaders.read_bars` applied to every symbol."""

    format: str | None = None
    tz: str | None = None
    columns: tuple[tuple[str, str], ...] = ()
    sort: bool = False

    def read(self, data: Any, symbol: str, where: str) -> pd.DataFrame:
        """Canonical bars of ONE symbol named ``symbol``, errors prefixed with ``where``."""
        try:
            bars = read_bars(data, symbol=symbol, format=self.format, tz=self.tz, sort=self.sort,
                             columns=dict(self.columns) or None)
        except ValueError as exc:
            raise ValueError(f"{where} (symbol '{symbol}'): {exc}") from exc
        found = pd.unique(bars["symbol"])
        if len(found) != 1 or found[0] != symbol:
            raise ValueError(f"{where}: expected the bars of symbol '{symbol}' only, found symbol(s) "
                             f"{list(found)[:5]} (one file, folder or partition per symbol)")
        return bars


class _ParquetReader:
    """One symbol's rows of a Parquet dataset: a hive partition ``<field>=<symbol>`` or a column filter."""

    def __init__(self, path: Path, field: str, hive: bool, options: _ReadOptions) -> None:
        import pyarrow as pa
        import pyarrow.dataset as ds

        self.path, self.field, self.hive, self.options = path, field, hive, options
        partitioning = ds.partitioning(pa.schema([(field, pa.string())]), flavor="hive") if hive else None
        try:
            self.dataset = ds.dataset(str(path), format="parquet", partitioning=partitioning)
        except (OSError, ValueError, TypeError) as exc:  # pyarrow's Arrow* errors derive from these
            raise ValueError(f"{path}: unreadable Parquet dataset ({type(exc).__name__}: {exc})") from exc
        if field not in self.dataset.schema.names:
            raise ValueError(f"{path}: the Parquet dataset has no '{field}' column or partition")

    def symbols(self) -> list[str]:
        """The dataset's symbols (partition keys, or the distinct values of the symbol column)."""
        import pyarrow.compute as pc
        import pyarrow.dataset as ds

        if self.hive:
            keys = [ds.get_partition_keys(f.partition_expression).get(self.field)
                    for f in self.dataset.get_fragments()]
            if any(k is None for k in keys):
                raise ValueError(f"{self.path}: a file lies outside the '{self.field}=<symbol>' partitions")
            return sorted(set(keys))
        found: set[str] = set()
        for batch in self.dataset.to_batches(columns=[self.field]):
            column = batch.column(0)
            if column.null_count:
                raise ValueError(f"{self.path}: missing symbol in column '{self.field}'")
            found.update(str(s) for s in pc.unique(column).to_pylist())
        return sorted(found)

    def __call__(self, symbol: str) -> pd.DataFrame:
        import pyarrow.dataset as ds

        table = self.dataset.to_table(filter=ds.field(self.field) == symbol)
        where = f"{self.path} [{self.field}={symbol}]"
        if table.num_rows == 0:
            raise ValueError(f"{where}: no rows")
        frame = table.drop_columns([self.field]).to_pandas()
        return self.options.read(frame, symbol, where)


class _EntryReader:
    """Symbols from ``{symbol: file, folder or frame}`` entries, each read by ``read_bars``."""

    def __init__(self, entries: Mapping[str, Any], options: _ReadOptions) -> None:
        self.entries, self.options = dict(entries), options

    def __call__(self, symbol: str) -> pd.DataFrame:
        entry = self.entries[symbol]
        where = str(entry) if isinstance(entry, (str, Path)) else type(entry).__name__
        return self.options.read(entry, symbol, where)

    def cache_key(self, symbol: str) -> list | None:
        """What identifies the symbol's bars on disk: every file's resolved path, size and modification time
        [ns], and the read options; None for an in-memory entry."""
        entry = self.entries[symbol]
        if not isinstance(entry, (str, Path)):
            return None
        path = Path(entry)
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        stats = [(str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files]
        return [symbol, stats, repr(self.options)]


class _FrameReader:
    """Symbols of a canonical bars frame already in memory."""

    def __init__(self, bars: pd.DataFrame) -> None:
        self.bars = bars
        codes, names = pd.factorize(bars["symbol"], sort=True)
        bounds = np.r_[0, np.flatnonzero(np.diff(codes)) + 1, len(bars)]
        self.rows = {str(n): (int(lo), int(hi)) for n, lo, hi in zip(names, bounds[:-1], bounds[1:])}

    def __call__(self, symbol: str) -> pd.DataFrame:
        lo, hi = self.rows[symbol]
        return self.bars.iloc[lo:hi].reset_index(drop=True)


class SymbolSource:
    """The bars of a universe of symbols, read one symbol at a time (see :func:`open_symbols`).

    Attributes:
        symbols: Sorted symbol names.
        description: Where the bars come from.
    """

    def __init__(self, symbols: Sequence[str], reader: Any, description: str) -> None:
        self.symbols = tuple(sorted(str(s) for s in symbols))
        if not self.symbols:
            raise ValueError(f"{description}: no symbol")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"{description}: duplicated symbol names")
        self._reader, self.description = reader, description

    def __len__(self) -> int:
        return len(self.symbols)

    def __repr__(self) -> str:
        return f"SymbolSource({len(self)} symbols from {self.description})"

    def read(self, symbol: str) -> pd.DataFrame:
        """Canonical bars of one symbol (validated).

        Raises:
            ValueError: an unknown symbol, or invalid bars (naming the file or partition).
        """
        if symbol not in self.symbols:
            raise ValueError(f"unknown symbol '{symbol}' (the source has {len(self)} symbols)")
        return self._reader(symbol)

    def cache_key(self, symbol: str) -> list | None:
        """A JSON-able key that changes whenever the bars of ``symbol`` may change (files and read options), or
        None when the source cannot tell (Parquet datasets, frames in memory: never cached)."""
        key = getattr(self._reader, "cache_key", None)
        return None if key is None else key(symbol)

    def subset(self, symbols: Sequence[str] | None = None, exclude: Sequence[str] = ()) -> SymbolSource:
        """The source restricted to ``symbols`` (default all) minus ``exclude`` (e.g. leave one symbol out).

        Raises:
            ValueError: a named symbol the source does not have, or nothing left.
        """
        chosen = self.symbols if symbols is None else tuple(str(s) for s in symbols)
        unknown = sorted(set(chosen).union(map(str, exclude)) - set(self.symbols))
        if unknown:
            raise ValueError(f"unknown symbol(s) {unknown[:5]} (the source has {len(self)} symbols)")
        kept = [s for s in chosen if s not in set(map(str, exclude))]
        return SymbolSource(kept, self._reader, self.description)

    def shard(self, index: int, count: int) -> SymbolSource:
        """Shard ``index`` of ``count``: every ``count``-th symbol of the sorted list from ``index``.

        Every process of a multi-process run calls it with its own process index and the process count, and
        reads disjoint symbols that together cover the universe.

        Raises:
            ValueError: ``index`` outside ``[0, count)`` or more shards than symbols.
        """
        if int(count) < 1 or not 0 <= int(index) < int(count):
            raise ValueError(f"shard index must lie in [0, count), got index {index} and count {count}")
        if int(count) > len(self):
            raise ValueError(f"cannot cut {len(self)} symbols into {count} non-empty shards")
        return SymbolSource(self.symbols[int(index)::int(count)], self._reader,
                            f"{self.description}, shard {index}/{count}")


def open_symbols(
    source: Any,
    *,
    symbols: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    partition: str = "symbol",
    format: str | None = None,
    tz: str | None = None,
    columns: Mapping[str, str] | None = None,
    sort: bool = False,
) -> SymbolSource:
    """List the symbols of a folder, a Parquet dataset, a dict or a frame, without reading their bars.

    Args:
        source: One of
            * a folder of hive partitions ``<partition>=<symbol>/`` holding Parquet files (``pyarrow.dataset``);
            * a Parquet file, or a folder of Parquet files, with a ``<partition>`` column holding the symbol
              (pass the folder as ``pyarrow.dataset`` would read it: files whose names end in ``.parquet``);
              a folder is read this way only when its Parquet files have that column;
            * a flat folder: one file per symbol (``.csv``, ``.zip``, ``.parquet``; symbol = file stem) or one
              sub-folder per symbol (symbol = folder name; every file inside, e.g. monthly Binance files);
            * a list of such files, a dict ``{symbol: path or frame}``, or a bars frame (in memory).
        symbols: Keep only these symbols. exclude: Drop these symbols (e.g. the one left out).
        partition: Name of the partition key / column holding the symbol.
        format, tz, columns, sort: Passed to :func:`lems.data.loaders.read_bars` for every symbol.

    Returns:
        A :class:`SymbolSource`.

    Raises:
        ValueError: a missing path, an empty folder, an unknown symbol, or an unreadable dataset.
    """
    options = _ReadOptions(format=format, tz=tz, columns=tuple((columns or {}).items()), sort=bool(sort))
    found = source if isinstance(source, SymbolSource) else _discover(source, partition, options)
    return found.subset(symbols, exclude)


def _discover(source: Any, partition: str, options: _ReadOptions) -> SymbolSource:
    if isinstance(source, pd.DataFrame) or type(source).__module__.split(".")[0] == "polars":
        bars = read_bars(source, format=options.format, tz=options.tz, columns=dict(options.columns) or None,
                         sort=options.sort)
        reader = _FrameReader(bars)
        return SymbolSource(list(reader.rows), reader, "a bars frame in memory")
    if isinstance(source, Mapping):
        return SymbolSource([str(k) for k in source], _EntryReader({str(k): v for k, v in source.items()},
                                                                   options), "a dict of sources")
    if isinstance(source, (str, Path)):
        return _discover_path(Path(source), partition, options)
    if isinstance(source, Sequence) and not isinstance(source, (bytes, bytearray)):
        return _entries_source(_keyed_paths(Path(p) for p in source), options, f"{len(source)} paths")
    raise ValueError(f"unsupported source type {type(source).__name__}: pass a folder, a Parquet dataset, a "
                     "list of files, a dict {symbol: path or frame} or a bars frame")


def _discover_path(path: Path, partition: str, options: _ReadOptions) -> SymbolSource:
    if not path.exists():
        raise ValueError(f"{path}: no such file or folder")
    if path.is_dir():
        children = sorted(path.iterdir())
        if any(c.is_dir() and c.name.startswith(f"{partition}=") for c in children):
            return _parquet_source(path, partition, hive=True, options=options)
        parquet = [c for c in children if c.is_file() and c.suffix.lower() in _PARQUET_SUFFIXES]
        if parquet and _has_column(parquet[0], partition):
            return _parquet_source(path, partition, hive=False, options=options)
        entries = [c for c in children if c.is_dir() or (c.is_file() and c.suffix.lower() in SUPPORTED_SUFFIXES)]
        if not entries:
            raise ValueError(f"{path}: folder holds no partitions, sub-folders or supported files "
                             f"({', '.join(SUPPORTED_SUFFIXES)})")
        return _entries_source(_keyed_paths(entries), options, str(path))
    if path.suffix.lower() in _PARQUET_SUFFIXES and _has_column(path, partition):
        return _parquet_source(path, partition, hive=False, options=options)
    if path.suffix.lower() in _PARQUET_SUFFIXES:
        return _entries_source({path.stem: path}, options, str(path))
    return _discover(read_bars(path, format=options.format, tz=options.tz, sort=options.sort,
                               columns=dict(options.columns) or None), partition, options)


def _has_column(path: Path, name: str) -> bool:
    import pyarrow.parquet as pq

    try:
        return name in pq.read_schema(path).names
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable Parquet file ({type(exc).__name__}: {exc})") from exc


def _parquet_source(path: Path, partition: str, hive: bool, options: _ReadOptions) -> SymbolSource:
    reader = _ParquetReader(path, partition, hive, options)
    kind = "partitioned" if hive else "with a symbol column"
    return SymbolSource(reader.symbols(), reader, f"{path} (Parquet, {kind})")


def _keyed_paths(paths) -> dict[str, Path]:
    keyed: dict[str, Path] = {}
    for p in paths:
        key = p.name if p.is_dir() else p.stem
        if key in keyed:
            raise ValueError(f"two sources for symbol '{key}': {keyed[key]} and {p} (one file or folder per symbol)")
        keyed[key] = p
    return keyed


def _entries_source(entries: Mapping[str, Path], options: _ReadOptions, description: str) -> SymbolSource:
    return SymbolSource(list(entries), _EntryReader(entries, options), description)


def write_partitioned(bars: pd.DataFrame, path: str | Path, partition: str = "symbol") -> Path:
    """Write canonical bars as a Parquet dataset partitioned by symbol (``path/<partition>=<symbol>/``).

    Call it once per group of symbols (e.g. chunk by chunk for a large universe); writing the same symbol twice
    replaces its file.

    Args:
        bars: Canonical bars frame (validated here).
        path: Root folder of the dataset.
        partition: Partition key.

    Returns:
        ``path``.
    """
    import pyarrow as pa
    import pyarrow.dataset as ds

    canon = validate_bars(bars).rename(columns={"symbol": partition})
    table = pa.Table.from_pandas(canon, preserve_index=False)
    scheme = ds.partitioning(pa.schema([(partition, pa.string())]), flavor="hive")
    ds.write_dataset(table, str(path), format="parquet", partitioning=scheme,
                     existing_data_behavior="delete_matching", basename_template="part-{i}.parquet")
    return Path(path)


# ----------------------------------------------------------------------------------------------
# Universe: a cheap per-symbol index for the split, per-symbol states in a bounded cache
# ----------------------------------------------------------------------------------------------
_DAY_NS = 86_400_000_000_000
_CACHE_VERSION = 1  # bump when _SymbolIndex or its computation changes: old cache files are then ignored
WEIGHTINGS = ("window", "symbol", "notional")


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


class UniverseSplit(NamedTuple):
    """The parts of :meth:`SymbolUniverse.split_symbols`: a purged time split of the seen symbols and the test
    period of the held-out (unseen) symbols.

    Attributes:
        train: Seen symbols, windows whose last horizon bar opens before ``train_end``.
        val: Seen symbols, origin ``>= train_end`` and last horizon bar before ``val_end``; None without ``val_end``.
        test: Seen symbols, origin ``>= val_end`` (``>= train_end`` without ``val_end``).
        unseen: Held-out symbols, the same test period as ``test``; None when nothing is held out.
        holdout: The held-out symbols, sorted (they have no window in ``train`` or ``val``).
        liquidity: Symbol -> median daily notional over the complete UTC days before ``train_end`` [quote
            currency], every symbol of the universe (the measure that stratified the hold-out).
    """

    train: UniverseWindows
    val: UniverseWindows | None
    test: UniverseWindows
    unseen: UniverseWindows | None
    holdout: tuple[str, ...]
    liquidity: dict[str, float]


def choose_holdout(symbols: Sequence[str], holdout: float | Sequence[str] | None, *, seed: int = 0,
                   liquidity: Sequence[float] | None = None) -> tuple[str, ...]:
    """The symbols to hold out of training and validation: a seeded fraction or an explicit list.

    A fraction ``f`` holds out ``round(f * n)`` symbols (at least one, at most ``n - 1``). With ``liquidity``
    (one value per symbol), the symbols are ranked by it (ties by name) and cut into three terciles
    (``numpy.array_split`` of the ranking, least liquid first); each tercile gives its share of the held-out
    count (largest remainders, ties to the more liquid tercile), drawn by ``numpy.random.default_rng(seed)``.
    Without ``liquidity``, one seeded draw from all symbols. The result depends only on the symbols, the
    liquidity values and the seed.

    Args:
        symbols: The universe's symbols.
        holdout: A fraction in ``(0, 1)``, a list of symbol names, or None / 0 (nothing held out).
        seed: Seed of the draw.
        liquidity: Per-symbol liquidity (e.g. :meth:`_SymbolIndex.liquidity` over the training period only).

    Returns:
        The held-out symbols, sorted.

    Raises:
        ValueError: a fraction outside ``[0, 1)``, unknown names, every symbol held out, a non-finite liquidity.
    """
    names = [str(s) for s in symbols]
    if holdout is None or (isinstance(holdout, (int, float)) and not isinstance(holdout, bool) and holdout == 0):
        return ()
    if isinstance(holdout, str):
        holdout = [holdout]
    if not isinstance(holdout, (int, float)):
        chosen = sorted({str(s) for s in holdout})
        unknown = sorted(set(chosen) - set(names))
        if unknown:
            raise ValueError(f"holdout symbol(s) {unknown[:5]} not in the universe ({len(names)} symbols)")
        if len(chosen) >= len(names):
            raise ValueError("holdout names every symbol of the universe: nothing would be left to train on")
        return tuple(chosen)
    fraction = float(holdout)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout as a fraction must lie in [0, 1), got {holdout}")
    if len(names) < 2:
        raise ValueError(f"cannot hold out a fraction of {len(names)} symbol: at least 2 are needed")
    n_hold = min(max(int(round(fraction * len(names))), 1), len(names) - 1)
    rng = np.random.default_rng(int(seed))
    if liquidity is None:
        return tuple(sorted(names[i] for i in rng.choice(len(names), size=n_hold, replace=False)))
    liq = np.asarray(liquidity, dtype=np.float64)
    if liq.shape != (len(names),) or not np.all(np.isfinite(liq)):
        raise ValueError(f"liquidity must hold one finite value per symbol ({len(names)}), got shape {liq.shape}")
    ranked = np.lexsort((np.array(names, dtype=object).astype(str), liq))
    terciles = np.array_split(ranked, 3)
    share = np.array([n_hold * t.size / len(names) for t in terciles])
    take = np.floor(share).astype(int)
    for k in sorted(range(3), key=lambda k: (-(share[k] - take[k]), -k))[: n_hold - int(take.sum())]:
        take[k] += 1
    chosen = [names[i] for t, k in zip(terciles, take) for i in rng.choice(t, size=int(k), replace=False)]
    return tuple(sorted(chosen))


SplitProgress = Callable[[int, int, float], None]
"""``progress(done, total, elapsed_s)``: called after each symbol of a split pass (symbols done, symbols in the
pass, process wall seconds since the pass began)."""


class SymbolUniverse:
    """Leak-free windows of many symbols, built per symbol on demand.

    The split (:meth:`split`, :meth:`split_symbols`, :meth:`windows`) reads each symbol once and keeps only a
    count of its windows per part: it needs the bars' timestamps and volumes, not their features, so it builds
    no per-symbol state. With ``cache_dir``, that per-symbol index (timestamps, where volume traded, notional per
    day) is also written to a small file keyed by the source file's path, size and modification time, the read
    options and the lems version; a later split reads the index instead of the bars (validation of the bars
    then happens when they are read for batches or windows, and a symbol whose window count changed raises).

    Args:
        source: A :class:`SymbolSource` or anything :func:`open_symbols` takes.
        lookback: Lookback length [bars], >= 2.
        n_ahead: Horizon ``H`` [bars], >= 1.
        tz: Local time zone of the calendar features (``"America/New_York"`` for US equities).
        stride, n_days_profile, min_history: As in :func:`lems.data.windows.make_windows`.
        bar_minutes: Nominal bar length [minutes]; ``None`` infers it per symbol (its modal spacing, as
            ``make_windows`` does for one symbol).
        cache_symbols: Per-symbol states kept in memory for :meth:`state` (least recently used evicted): about
            ``cache_symbols`` times one symbol's compact state (:meth:`SymbolState.compact`). Batches do not use
            this cache (see :class:`UniverseDataset`).
        cache_dir: Folder of the per-symbol index cache (e.g. :func:`default_cache_dir`); None: no cache. Only
            sources read from files or folders per symbol are cached (about 1.2 MB per symbol of 72,000 bars);
            files of changed sources are not removed (delete the folder to reclaim the space).
        **source_options: Passed to :func:`open_symbols` when ``source`` is not a :class:`SymbolSource`.

    Attributes:
        loads: Number of per-symbol states built so far (reads of a symbol's bars), cached or not.
        index_reads: Number of per-symbol indexes read from the bars (not from the cache).
    """

    def __init__(self, source: Any, lookback: int, n_ahead: int, *, tz: str = "UTC", stride: int = 1,
                 n_days_profile: int = 20, min_history: int | None = None, bar_minutes: float | None = None,
                 cache_symbols: int = 16, cache_dir: str | Path | None = None, **source_options: Any) -> None:
        if int(lookback) < 2 or int(n_ahead) < 1:
            raise ValueError(f"lookback must be >= 2 and n_ahead >= 1, got {lookback} and {n_ahead}")
        if int(cache_symbols) < 1 or int(n_days_profile) < 1:
            raise ValueError(f"cache_symbols and n_days_profile must be >= 1, got {cache_symbols} and {n_days_profile}")
        self.source = open_symbols(source, **source_options)
        self.lookback, self.n_ahead, self.tz = int(lookback), int(n_ahead), tz
        self.stride, self.n_days_profile, self.min_history = int(stride), int(n_days_profile), min_history
        self.bar_minutes = bar_minutes
        self.cache_symbols = int(cache_symbols)
        self.cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()
        self.loads = 0
        self.index_reads = 0
        self._cache: OrderedDict[str, SymbolState] = OrderedDict()
        self._lock = threading.RLock()

    @property
    def symbols(self) -> tuple[str, ...]:
        """The universe's symbols, sorted."""
        return self.source.symbols

    def _build(self, symbol: str, compact: bool = True) -> SymbolState:
        bars = self.source.read(symbol)  # validated canonical bars of this one symbol
        cal = add_calendar(bars, tz=self.tz, bar_minutes=self.bar_minutes)
        state = SymbolState.from_calendar(cal, self.lookback, self.n_ahead, self.n_days_profile)
        return state.compact() if compact else state

    def load(self, symbol: str, *, compact: bool = True) -> SymbolState:
        """The :class:`SymbolState` of ``symbol``, read and built now (not cached); ``compact=False`` keeps its
        calendar bars (``state.bars``, needed by :attr:`WindowSet.bars`)."""
        state = self._build(symbol, compact)
        with self._lock:
            self.loads += 1
        return state

    def state(self, symbol: str) -> SymbolState:
        """The compact :class:`SymbolState` of ``symbol`` (from the cache, or loaded and cached)."""
        with self._lock:
            if symbol in self._cache:
                self._cache.move_to_end(symbol)
                return self._cache[symbol]
            state = self.load(symbol)
            self._cache[symbol] = state
            while len(self._cache) > self.cache_symbols:
                self._cache.popitem(last=False)
            return state

    def valid_origins(self, state: SymbolState | _SymbolIndex) -> np.ndarray:
        """Origin indices of every valid window of a symbol's state or index (stride and min_history applied)."""
        return valid_origin_indices(state.ns, state.traded, self.lookback, self.n_ahead, stride=self.stride,
                                    min_history=self.min_history)

    # -- the per-symbol index (split passes) ---------------------------------------------------
    def index(self, symbol: str) -> _SymbolIndex:
        """The split index of ``symbol``: from the cache when ``cache_dir`` holds a current one, else read from
        its bars (validated) and, with ``cache_dir``, written there."""
        path = self._index_path(symbol)
        if path is not None and path.is_file():
            try:
                with np.load(path) as stored:
                    return _SymbolIndex(*(stored[name] for name in _SymbolIndex._fields))
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
                pass  # an unreadable cache file (interrupted write, other version): rebuilt from the bars below
        index = _SymbolIndex.of(self.source.read(symbol))
        with self._lock:
            self.index_reads += 1
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npz")
            np.savez(tmp, **index._asdict())
            os.replace(tmp, path)
        return index

    def _index_path(self, symbol: str) -> Path | None:
        if self.cache_dir is None:
            return None
        key = self.source.cache_key(symbol)
        if key is None:
            return None
        digest = hashlib.sha256(json.dumps([_CACHE_VERSION, _lems_version(), key]).encode()).hexdigest()[:32]
        return self.cache_dir / f"{_safe_name(symbol)}-{digest}.npz"

    def _scan(self, rules: Mapping[str, _TimeRule], liquidity_before: int | None,
              progress: SplitProgress | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(counts (n_rules, n_symbols), liquidity (n_symbols,), n_bars (n_symbols,))`` from one pass over the
        symbols' indexes."""
        counts = np.zeros((len(rules), len(self.symbols)), np.int64)
        liquidity = np.zeros(len(self.symbols))
        n_bars = np.zeros(len(self.symbols), np.int64)
        start = time.perf_counter()
        for j, symbol in enumerate(self.symbols):
            index = self.index(symbol)
            origins = self.valid_origins(index)
            for k, rule in enumerate(rules.values()):
                counts[k, j] = rule.select(index.ns, origins, self.n_ahead).size
            liquidity[j] = index.liquidity(liquidity_before)
            n_bars[j] = index.ns.size
            if progress is not None:
                progress(j + 1, len(self.symbols), time.perf_counter() - start)
        return counts, liquidity, n_bars

    # -- parts -----------------------------------------------------------------------------------
    def windows(self, *, progress: SplitProgress | None = None) -> UniverseWindows:
        """All windows (no time split); one pass over the symbols to count them (liquidity over every day)."""
        rule = _TimeRule()
        counts, liquidity, n_bars = self._scan({"all": rule}, None, progress)
        return UniverseWindows(self, "all", rule, self.symbols, counts[0], liquidity, n_bars)

    def split(self, train_end, val_end=None, *, progress: SplitProgress | None = None) -> tuple[UniverseWindows, ...]:
        """Time split with purging, as :meth:`lems.data.windows.WindowSet.split`, every symbol in every part.

        Train: windows whose last horizon bar starts before ``train_end``; validation: origin ``>= train_end``
        and last horizon bar before ``val_end``; test: origin ``>= val_end`` (``>= train_end`` without
        ``val_end``).

        Args:
            train_end: Timestamp (naive -> UTC), or a fraction in ``[0, 1]`` of the sorted distinct origin times
                of all windows (as ``lems.training`` splits): one more pass over the symbols.
            val_end: Same, ``>= train_end``; ``None``: no validation part.
            progress: Called after each symbol of each pass (:data:`SplitProgress`).

        Returns:
            ``(train, val, test)``, or ``(train, test)`` when ``val_end`` is None.

        Raises:
            ValueError: ``val_end`` before ``train_end``, a fraction outside ``[0, 1]``, invalid bars.
        """
        rules = self._rules(train_end, val_end, progress)
        counts, liquidity, n_bars = self._scan(rules, next(iter(rules.values())).last_before, progress)
        return tuple(UniverseWindows(self, name, rule, self.symbols, counts[k], liquidity, n_bars)
                     for k, (name, rule) in enumerate(rules.items()))

    def split_symbols(self, train_end, val_end=None, *, holdout: float | Sequence[str] | None = 0.2, seed: int = 0,
                      stratify: bool = True, progress: SplitProgress | None = None) -> UniverseSplit:
        """Purged time split of the seen symbols, and the test period of held-out symbols (:class:`UniverseSplit`).

        The held-out symbols (:func:`choose_holdout`: a seeded fraction, stratified by liquidity tercile when
        ``stratify``, or an explicit list) have no window in ``train`` or ``val``: a model trained and selected on
        those parts never saw them. Their test-period windows form ``unseen``. Liquidity is the median notional
        per complete UTC day before ``train_end`` (training period only; the Binance files carry no quote volume,
        so it is the estimated notional of :func:`lems.data.loaders.read_bars`); a symbol without such a day has
        liquidity 0 (least liquid tercile).

        Args:
            train_end, val_end, progress: As in :meth:`split`.
            holdout: A fraction in ``[0, 1)`` of the symbols, a list of symbol names, or None / 0.
            seed: Seed of the held-out draw.
            stratify: Draw the fraction per liquidity tercile (else one draw from all symbols).

        Returns:
            A :class:`UniverseSplit`.

        Raises:
            ValueError: as :meth:`split` and :func:`choose_holdout`.
        """
        rules = self._rules(train_end, val_end, progress)
        train_rule = next(iter(rules.values()))
        counts, liquidity, n_bars = self._scan(rules, train_rule.last_before, progress)
        held = choose_holdout(self.symbols, holdout, seed=seed, liquidity=liquidity if stratify else None)
        unseen = np.isin(np.array(self.symbols, dtype=object), list(held))
        seen_symbols = [s for s, u in zip(self.symbols, unseen) if not u]
        held_symbols = [s for s, u in zip(self.symbols, unseen) if u]

        def part(name: str, symbols_mask: np.ndarray, names: list[str], out_name: str) -> UniverseWindows:
            k = list(rules).index(name)
            return UniverseWindows(self, out_name, rules[name], names, counts[k][symbols_mask],
                                   liquidity[symbols_mask], n_bars[symbols_mask])

        return UniverseSplit(
            train=part("train", ~unseen, seen_symbols, "train"),
            val=part("val", ~unseen, seen_symbols, "val") if "val" in rules else None,
            test=part("test", ~unseen, seen_symbols, "test"),
            unseen=part("test", unseen, held_symbols, "test_unseen") if held else None,
            holdout=held, liquidity=dict(zip(self.symbols, liquidity.tolist())),
        )

    def _rules(self, train_end, val_end, progress: SplitProgress | None) -> dict[str, _TimeRule]:
        bounds = [b for b in (train_end, val_end) if b is not None]
        times = self._origin_times(progress) if any(isinstance(b, float) for b in bounds) else None
        t_end = self._boundary("train_end", train_end, times)
        if val_end is None:
            return {"train": _TimeRule(last_before=t_end), "test": _TimeRule(origin_from=t_end)}
        v_end = self._boundary("val_end", val_end, times)
        if v_end < t_end:
            raise ValueError(f"val_end ({val_end}) must not be before train_end ({train_end})")
        return {"train": _TimeRule(last_before=t_end), "val": _TimeRule(origin_from=t_end, last_before=v_end),
                "test": _TimeRule(origin_from=v_end)}

    def _origin_times(self, progress: SplitProgress | None = None) -> np.ndarray:
        """Sorted distinct origin times [UTC ns] of all windows (memory: the calendar, not the symbols)."""
        times = np.zeros(0, np.int64)
        start = time.perf_counter()
        for j, symbol in enumerate(self.symbols):
            index = self.index(symbol)
            times = np.union1d(times, index.ns[self.valid_origins(index)])
            if progress is not None:
                progress(j + 1, len(self.symbols), time.perf_counter() - start)
        if times.size == 0:
            raise ValueError("no valid window in the universe (check lookback, n_ahead and the data)")
        return times

    @staticmethod
    def _boundary(name: str, value, times: np.ndarray | None) -> int:
        if not isinstance(value, float):
            return to_utc_ns(value, what=name)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} as a fraction must lie in [0, 1], got {value}")
        return int(times[min(int(value * len(times)), len(times) - 1)])


def _lems_version() -> str:
    from lems import __version__  # the package root is already imported whenever lems.data is

    return str(__version__)


def _safe_name(symbol: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in symbol)[:64]


class UniverseWindows:
    """The windows of one part of a :class:`SymbolUniverse` (e.g. its training period): counts only.

    Serve them as shuffled training batches (:meth:`batches`), as :class:`WindowSet` chunks of bounded size
    (:meth:`chunks`: validation and test scoring without materialising the part), or all at once
    (:meth:`to_window_set`, small parts only).

    Attributes:
        universe: The universe.
        name: ``"all"``, ``"train"``, ``"val"``, ``"test"`` or ``"test_unseen"``.
        symbols: Symbols with at least one window in the part, sorted.
        counts: ``(n_symbols,)`` windows per symbol.
        liquidity: ``(n_symbols,)`` median notional per complete UTC day before the split's ``train_end`` (every
            day for :meth:`SymbolUniverse.windows`) [quote currency], or None.
        n_bars: ``(n_symbols,)`` bars per symbol seen by the split (lets a batch block be built without holding
            every state of the block twice), or None.
    """

    def __init__(self, universe: SymbolUniverse, name: str, rule: _TimeRule, symbols: Sequence[str],
                 counts: np.ndarray, liquidity: np.ndarray | None = None, n_bars: np.ndarray | None = None) -> None:
        keep = np.asarray(counts) > 0
        self.universe, self.name, self._rule = universe, name, rule
        self.symbols = tuple(s for s, k in zip(symbols, keep) if k)
        self.counts = np.asarray(counts, np.int64)[keep]
        self.liquidity = None if liquidity is None else np.asarray(liquidity, np.float64)[keep]
        self.n_bars = None if n_bars is None else np.asarray(n_bars, np.int64)[keep]

    def __len__(self) -> int:
        return int(self.counts.sum())

    def __repr__(self) -> str:
        return f"UniverseWindows({self.name}: {len(self)} windows of {len(self.symbols)} symbols)"

    def select(self, state: SymbolState) -> np.ndarray:
        """Origin indices (positions in the symbol's bars) of the part's windows of a symbol's state."""
        return self._rule.select(state.ns, self.universe.valid_origins(state), self.universe.n_ahead)

    def origins(self, symbol: str) -> np.ndarray:
        """Origin indices (positions in the symbol's bars) of the part's windows of ``symbol``."""
        return self.select(self.universe.state(symbol))

    def thin(self, every: int) -> UniverseWindows:
        """The same part keeping every ``every``-th window of each symbol (its first, then every ``every``-th in
        time order): e.g. a cheaper validation pass. Counts stay exact (``ceil(count / every)``)."""
        if int(every) < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        rule = dataclasses.replace(self._rule, every=self._rule.every * int(every))
        return UniverseWindows(self.universe, self.name, rule, self.symbols, -(-self.counts // int(every)),
                               self.liquidity, self.n_bars)

    def thin_to(self, max_windows: int) -> UniverseWindows:
        """:meth:`thin` by the smallest ``every`` that leaves at most ``max_windows`` windows (the part itself when
        it is small enough): e.g. a validation pass of bounded cost on a large universe.

        Raises:
            ValueError: ``max_windows < 1``, or more symbols than ``max_windows`` (each keeps at least one window).
        """
        if int(max_windows) < 1 or len(self.symbols) > int(max_windows):
            raise ValueError(f"cannot keep at most {max_windows} windows of {len(self.symbols)} symbols (each "
                             "symbol keeps at least one)")
        every = max(-(-len(self) // int(max_windows)), 1)
        while int((-(-self.counts // every)).sum()) > int(max_windows):
            every += 1
        return self if every == 1 else self.thin(every)

    def symbol_weights(self, weighting: str = "window") -> np.ndarray:
        """Per-window training weight of each symbol's windows, ``(n_symbols,)``, mean 1 over the part's windows.

        * ``"window"``: 1 (a symbol counts by its number of windows: today's behaviour);
        * ``"symbol"``: ``N / (S * count)``: each symbol's windows together weigh ``N / S``, whatever its count;
        * ``"notional"``: ``N * liquidity / (sum(liquidity) * count)``: a symbol's windows together weigh in
          proportion to its median daily notional over the training period (:attr:`liquidity`).

        Raises:
            ValueError: an unknown weighting, or ``"notional"`` without a positive liquidity.
        """
        n, counts = float(len(self)), self.counts.astype(np.float64)
        if weighting == "window":
            return np.ones(counts.size)
        if weighting == "symbol":
            return n / (counts.size * counts)
        if weighting == "notional":
            liq = self.liquidity
            if liq is None or not np.all(np.isfinite(liq)) or liq.sum() <= 0:
                raise ValueError(f"weighting='notional' needs a finite, positive liquidity per symbol of the "
                                 f"{self.name} part (from SymbolUniverse.split), got {liq}")
            return n * liq / (liq.sum() * counts)
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, got {weighting!r}")

    def batches(self, batch_size: int = 64, *, shuffle: bool = True, seed: int = 0, min_rate: float = 0.0,
                max_rate: float = 1.0, drop_remainder: bool = False, block_symbols: int = 32,
                num_batches: int | None = None, weighting: str = "window", **kwargs: Any) -> UniverseDataset:
        """Fixed-shape ``((X, min_rate, max_rate), y, sample_weight)`` batches (see :class:`UniverseDataset`)."""
        return UniverseDataset(self, batch_size, shuffle=shuffle, seed=seed, min_rate=min_rate,
                               max_rate=max_rate, drop_remainder=drop_remainder, block_symbols=block_symbols,
                               num_batches=num_batches, weighting=weighting, **kwargs)

    def _chosen(self, symbols: Sequence[str] | None) -> tuple[str, ...]:
        chosen = self.symbols if symbols is None else tuple(symbols)
        missing = sorted(set(chosen) - set(self.symbols))
        if missing:
            raise ValueError(f"no {self.name} window for symbol(s) {missing[:5]}")
        return chosen

    def chunks(self, max_windows: int | None = 65536, *, symbols: Sequence[str] | None = None,
               bars: bool = True) -> Iterator[WindowSet]:
        """The part's windows as :class:`WindowSet` chunks of at most ``max_windows`` rows, built lazily.

        Rows go symbol by symbol (sorted), in time order inside a symbol; a symbol's windows may span two chunks.
        Every chunk but the last holds exactly ``max_windows`` rows, and together they hold exactly the rows of
        :meth:`to_window_set` (which orders them by (origin time, symbol)). Memory: the chunk being built
        (``max_windows * (lookback + H - 1) * F * 4`` bytes of ``X``, 216 MB for 65,536 windows of 48 + 11 bars
        and 14 channels), the one the caller holds, and one symbol's state; each window is built once, from its
        origin (no window outside the part is built), straight into its chunk.

        Args:
            max_windows: Rows per chunk (the last one may hold fewer); None: one chunk of every window.
            symbols: Only these symbols (default: all of the part).
            bars: Fill :attr:`WindowSet.bars` with the calendar bars of the chunk's symbols (needed by the
                baselines of :mod:`lems.baselines`); False saves one symbol frame per symbol of the chunk.

        Yields:
            :class:`WindowSet` chunks.

        Raises:
            ValueError: ``max_windows < 1``, a symbol without windows in this part, or a symbol whose window
                count changed since the split (its data changed).
        """
        if max_windows is not None and int(max_windows) < 1:
            raise ValueError(f"max_windows must be >= 1 or None, got {max_windows}")
        chosen = self._chosen(symbols)
        count = dict(zip(self.symbols, self.counts.tolist()))
        remaining = sum(count[s] for s in chosen)
        size = remaining if max_windows is None else int(max_windows)
        chunk: _ChunkBuilder | None = None
        for symbol in chosen:
            state = self.universe.load(symbol, compact=not bars)
            origins = self.select(state)
            if origins.size != count[symbol]:
                raise ValueError(f"symbol '{symbol}' has {origins.size} {self.name} windows, counted "
                                 f"{count[symbol]}: its data changed since the split")
            pos = 0
            while pos < origins.size:
                if chunk is None:
                    chunk = _ChunkBuilder(min(size, remaining), state, bars)
                taken = chunk.add(state, origins[pos:pos + chunk.room])
                pos, remaining = pos + taken, remaining - taken
                if chunk.room == 0:
                    yield chunk.finish()
                    chunk = None
            del state

    def to_window_set(self, symbols: Sequence[str] | None = None) -> WindowSet:
        """Materialise the part's windows of ``symbols`` (default: all) as a :class:`WindowSet`.

        For small parts only (a validation period of a few symbols, the symbol left out): it holds every window
        in memory (twice while ordering them); use :meth:`chunks` for a universe. Rows are ordered by (origin
        time, symbol), as :func:`make_windows` orders them.

        Raises:
            ValueError: a symbol without windows in this part.
        """
        chosen = self._chosen(symbols)
        if not chosen:
            u = self.universe
            return _empty_set({}, u.lookback, u.n_ahead)
        ws = next(self.chunks(None, symbols=chosen))
        if len(chosen) == 1:
            return ws
        return ws.subset(np.lexsort((ws.asset.astype(str), ws.origin.as_unit("ns").asi8)))


class _ChunkBuilder:
    """A :class:`WindowSet` of ``size`` rows filled symbol by symbol, each window built in place."""

    def __init__(self, size: int, like: SymbolState, bars: bool) -> None:
        lb, h = like.lookback, like.n_ahead
        self.lookback, self.n_ahead, self.size, self.filled, self.with_bars = lb, h, int(size), 0, bool(bars)
        self.x = np.empty((size, lb + h - 1, len(FEATURE_NAMES)), np.float32)
        self.y = np.empty((size, h, 2), np.float32)
        self.ref, self.prices, self.volumes = np.empty(size), np.empty((size, h)), np.empty((size, h))
        self.origin_ns, self.end_ns = np.empty(size, np.int64), np.empty(size, np.int64)
        self.origin_index, self.asset = np.empty(size, np.int64), np.empty(size, dtype=object)
        self.bars: dict[str, pd.DataFrame] = {}

    @property
    def room(self) -> int:
        """Rows still free."""
        return self.size - self.filled

    def add(self, state: SymbolState, origins: np.ndarray) -> int:
        """Build the windows of ``state`` at ``origins`` (at most :attr:`room`) into the next rows; their count."""
        origins = origins[: self.room]
        lo = self.filled
        for start in range(0, origins.size, _CHUNK):
            part = origins[start:start + _CHUNK]
            rows = slice(lo + start, lo + start + part.size)
            self.x[rows], self.y[rows], self.ref[rows], self.prices[rows], self.volumes[rows] = build_batch(state, part)
        rows = slice(lo, lo + origins.size)
        self.origin_ns[rows], self.end_ns[rows] = state.ns[origins], state.ns[origins + self.n_ahead - 1]
        self.origin_index[rows], self.asset[rows] = origins, state.symbol
        if self.with_bars:
            self.bars[state.symbol] = state.bars
        self.filled += origins.size
        return int(origins.size)

    def finish(self) -> WindowSet:
        """The filled :class:`WindowSet`."""
        return WindowSet(X=self.x, y=self.y, origin=_utc(self.origin_ns), asset=self.asset,
                         origin_index=self.origin_index, reference_price=self.ref, prices=self.prices,
                         volumes=self.volumes, horizon_end=_utc(self.end_ns), lookback=self.lookback,
                         n_ahead=self.n_ahead, bars=self.bars)


def _utc(ns: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(ns.astype("datetime64[ns]")).tz_localize("UTC")


# ----------------------------------------------------------------------------------------------
# Batches gathered on the fly
# ----------------------------------------------------------------------------------------------
def merge_states(states: Sequence[SymbolState]) -> tuple[SymbolState, np.ndarray]:
    """One state holding the bars of several symbols back to back, so one :func:`build_batch` call gathers
    windows of all of them.

    A window never crosses from one symbol into the next (its bars lie inside its symbol's segment), and the
    seasonal profile is indexed by (symbol, slot), so a merged window is bit-identical to the window built from
    its own symbol's state.

    Args:
        states: States of distinct symbols with the same lookback, horizon and profile length.

    Returns:
        ``(merged, offsets)``: origin index ``i`` of ``states[k]`` is ``i + offsets[k]`` in ``merged``.
    """
    merger = _Merger([s.n_bars for s in states])
    for state in states:
        merger.add(state)
    return merger.finish(), merger.offsets


class _Merger:
    """Builds the state of :func:`merge_states` from states added one at a time into arrays sized up front, so
    a caller that loads each state, adds it and drops it holds the merged arrays and one state, not every state
    plus their concatenation."""

    _ROWS = ("observed", "known", "volume", "price", "ns")

    def __init__(self, n_bars: Sequence[int]) -> None:
        sizes = np.asarray(n_bars, np.int64)
        self.offsets = np.r_[0, np.cumsum(sizes)[:-1]].astype(np.int64)
        self.sizes, self.total = sizes, int(sizes.sum())
        self.added: list[str] = []
        self._first: SymbolState | None = None
        self._arrays: dict[str, np.ndarray] = {}
        self._slots = np.empty(self.total, np.int64)
        self._slot_base = 0

    def add(self, state: SymbolState) -> None:
        """Copy the next state (in the order of ``n_bars``) into the merged arrays."""
        k = len(self.added)
        if k >= self.sizes.size or state.n_bars != self.sizes[k]:
            expected = "no more state" if k >= self.sizes.size else f"{self.sizes[k]} bars"
            raise ValueError(f"merge_states: state of '{state.symbol}' has {state.n_bars} bars, expected {expected} "
                             "(its data changed since the split)")
        if self._first is None:
            self._first = state
            self._arrays = {name: np.empty((self.total, *getattr(state, name).shape[1:]), getattr(state, name).dtype)
                            for name in self._ROWS}
        first = self._first
        if (state.lookback, state.n_ahead, state.n_days_profile) != (first.lookback, first.n_ahead,
                                                                    first.n_days_profile):
            raise ValueError("merge_states: the states differ in lookback, n_ahead or n_days_profile")
        rows = slice(int(self.offsets[k]), int(self.offsets[k]) + state.n_bars)
        for name, array in self._arrays.items():
            array[rows] = getattr(state, name)
        self._slots[rows] = state.slots.code + self._slot_base
        self._slot_base += int(state.slots.code.max()) + 1
        self.added.append(state.symbol)

    def finish(self) -> SymbolState:
        """The merged state (every state of ``n_bars`` added)."""
        if len(self.added) != self.sizes.size or self._first is None:
            raise ValueError(f"merge_states: {len(self.added)} of {self.sizes.size} states added")
        first, arrays, volume = self._first, self._arrays, self._arrays["volume"]
        names = ", ".join(self.added[:3]) + (f" and {len(self.added) - 3} more" if len(self.added) > 3 else "")
        return SymbolState(
            symbol=names, bars=first.bars.iloc[:0], lookback=first.lookback, n_ahead=first.n_ahead,
            n_days_profile=first.n_days_profile, observed=arrays["observed"], known=arrays["known"], volume=volume,
            price=arrays["price"], ns=arrays["ns"], slots=build_slot_index(self._slots, volume),
            traded=np.r_[0, np.cumsum(volume > 0)],
        )


class _Block(NamedTuple):
    """One shuffling block: its symbols' merged state and its rows in serving order."""

    state: SymbolState
    code: np.ndarray  # (n,) symbol code (index into the part's symbols)
    origin: np.ndarray  # (n,) origin index in the merged state
    local: np.ndarray  # (n,) origin index in the symbol's own bars


class UniverseDataset(keras.utils.PyDataset):
    """Batches of a :class:`UniverseWindows`, gathered on the fly, shuffled across symbols block by block.

    Every batch has ``batch_size`` rows: ``((X, min_rate, max_rate), y, sample_weight)`` with ``X``
    ``(B, lookback + H - 1, F)`` float32, rates ``(B, 1)`` float32, compact ``y`` ``(B, H, 2)`` float32. The
    last partial batch is padded with copies of its first row weighted 0, its real rows weighted
    ``B / n_real`` (so the batch's mean loss is the mean over real rows, as :class:`lems.batching.PaddedBatches`),
    or dropped (``drop_remainder``).

    Order (see the module docstring): per epoch, symbols are shuffled (``shuffle``) and cut into blocks of
    ``block_symbols``; a block's windows are shuffled together. Without ``shuffle``, symbols stay sorted and a
    block's windows are ordered by (origin time, symbol); with ``block_symbols >= n_symbols`` that is
    :func:`lems.data.windows.make_windows`' order. The order of epoch ``e`` depends only on ``(seed, e)``, so
    any batch can be built in any order (workers).

    Memory: the states of at most two blocks, merged (:func:`merge_states`, so that a batch is gathered by one
    :func:`build_batch` call per block whatever the number of symbols in it), plus their row tables
    (20 bytes per window of the block).

    Args:
        windows: The part to serve.
        batch_size: Rows per batch.
        shuffle: Shuffle symbols and windows, anew each epoch.
        seed: Seed of the order.
        min_rate, max_rate: Trading limits [fraction of the order per bar]; ``H * max_rate >= 1``.
        drop_remainder: Drop the last partial batch instead of padding it.
        block_symbols: Symbols per shuffling block.
        num_batches: Serve only the first ``num_batches`` batches of each epoch (e.g. the number every process
            of a multi-process run has: :func:`lems.distributed.agree_num_batches`).
        weighting: How symbols weigh in the loss (:meth:`UniverseWindows.symbol_weights`): ``"window"`` (every
            window 1, so a symbol weighs by its number of windows), ``"symbol"`` (every symbol's windows together
            weigh the same) or ``"notional"`` (in proportion to its training-period median daily notional). A
            row's ``sample_weight`` is its symbol's weight (times ``B / n_real`` in the padded last batch);
            the order of the windows does not change.
        **kwargs: ``keras.utils.PyDataset`` options (``workers``, ``use_multiprocessing``, ``max_queue_size``).

    Attributes:
        epoch: Epochs completed (``on_epoch_end`` calls).
        batches_per_epoch: Batches served per epoch (``len``).
    """

    def __init__(self, windows: UniverseWindows, batch_size: int = 64, *, shuffle: bool = True, seed: int = 0,
                 min_rate: float = 0.0, max_rate: float = 1.0, drop_remainder: bool = False,
                 block_symbols: int = 32, num_batches: int | None = None, weighting: str = "window",
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if int(batch_size) < 1 or int(block_symbols) < 1:
            raise ValueError(f"batch_size and block_symbols must be >= 1, got {batch_size} and {block_symbols}")
        if len(windows) == 0:
            raise ValueError(f"no {windows.name} window to serve")
        rate_arrays(1, min_rate, max_rate, windows.universe.n_ahead)  # validate early
        self.windows, self.universe = windows, windows.universe
        self.batch_size, self.block_symbols = int(batch_size), int(block_symbols)
        self.shuffle, self.seed, self.drop_remainder = bool(shuffle), int(seed), bool(drop_remainder)
        self.min_rate, self.max_rate = float(min_rate), float(max_rate)
        self.weighting = weighting
        self._symbol_weight = windows.symbol_weights(weighting)
        self.epoch = 0
        natural = len(windows) // self.batch_size if self.drop_remainder else -(-len(windows) // self.batch_size)
        if natural == 0:
            raise ValueError(f"{len(windows)} {windows.name} windows make no full batch of {batch_size}")
        if num_batches is not None and not 1 <= int(num_batches) <= natural:
            raise ValueError(f"num_batches must lie in [1, {natural}], got {num_batches}")
        self.batches_per_epoch = natural if num_batches is None else int(num_batches)
        self._blocks: OrderedDict[tuple[int, int], _Block] = OrderedDict()
        self._lock = threading.RLock()

    def __len__(self) -> int:
        return self.batches_per_epoch

    # -- order ---------------------------------------------------------------------------------
    def _epoch_blocks(self) -> tuple[np.ndarray, np.ndarray]:
        """Symbol codes in this epoch's order and the cumulative window count at the end of each block."""
        n = len(self.windows.symbols)
        order = np.random.default_rng([self.seed, self.epoch]).permutation(n) if self.shuffle else np.arange(n)
        sizes = np.add.reduceat(self.windows.counts[order], np.arange(0, n, self.block_symbols))
        return order, np.cumsum(sizes)

    def _block(self, b: int, order: np.ndarray) -> _Block:
        key = (self.epoch, b)
        with self._lock:
            if key not in self._blocks:
                while len(self._blocks) > 1:  # evict before building: at most two blocks in the cache, ever
                    self._blocks.popitem(last=False)
                self._blocks[key] = self._build_block(b, order)
            return self._blocks[key]

    def _build_block(self, b: int, order: np.ndarray) -> _Block:
        codes = order[b * self.block_symbols:(b + 1) * self.block_symbols]
        code, local = [], []
        merger = None if self.windows.n_bars is None else _Merger(self.windows.n_bars[codes])
        states = []
        for c in codes:  # with the split's bar counts, each state is copied into the block and dropped
            state = self.universe.load(self.windows.symbols[c])
            o = self.windows.select(state)
            if o.size != self.windows.counts[c]:
                raise ValueError(f"symbol '{state.symbol}' has {o.size} {self.windows.name} windows, counted "
                                 f"{self.windows.counts[c]}: its data changed during training")
            code.append(np.full(o.size, c, np.int32))
            local.append(o)
            if merger is None:
                states.append(state)
            else:
                merger.add(state)
            del state
        merged, offsets = merge_states(states) if merger is None else (merger.finish(), merger.offsets)
        code_arr, local_arr = np.concatenate(code), np.concatenate(local)
        origin = local_arr + np.repeat(offsets, [o.size for o in local])
        rows = np.lexsort((code_arr, merged.ns[origin]))
        if self.shuffle:
            rows = rows[np.random.default_rng([self.seed, self.epoch, b + 1]).permutation(rows.size)]
        return _Block(merged, code_arr[rows], origin[rows], local_arr[rows])

    def _segments(self, index: int) -> list[tuple[_Block, slice]]:
        """The blocks and row slices that make the real rows of batch ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"batch index {index} out of range [0, {len(self)})")
        order, ends = self._epoch_blocks()
        lo, hi = index * self.batch_size, min((index + 1) * self.batch_size, int(ends[-1]))
        starts = np.r_[0, ends[:-1]]
        out = []
        for b in range(int(np.searchsorted(ends, lo, side="right")), ends.size):
            if starts[b] >= hi:
                break
            out.append((self._block(b, order), slice(max(lo - starts[b], 0), hi - starts[b])))
        return out

    def rows(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(symbol names, origin indices in each symbol's bars)`` of the real rows of batch ``index``."""
        segments = self._segments(index)
        code = np.concatenate([block.code[sl] for block, sl in segments])
        local = np.concatenate([block.local[sl] for block, sl in segments])
        return np.asarray(self.windows.symbols, dtype=object)[code], local

    def origin_times(self, index: int) -> pd.DatetimeIndex:
        """UTC origin times of the real rows of batch ``index``."""
        return _utc(np.concatenate([block.state.ns[block.origin[sl]] for block, sl in self._segments(index)]))

    # -- batches -------------------------------------------------------------------------------
    def __getitem__(self, index: int):
        segments = self._segments(index)
        parts = [build_batch(block.state, block.origin[sl]) for block, sl in segments]
        x = np.concatenate([p.X for p in parts]) if len(parts) > 1 else parts[0].X
        y = np.concatenate([p.y for p in parts]) if len(parts) > 1 else parts[0].y
        real, n = x.shape[0], self.batch_size
        code = np.concatenate([block.code[sl] for block, sl in segments])
        weights = (self._symbol_weight[code] * (n / real)).astype(np.float32)
        if real < n:
            pad = np.r_[np.arange(real), np.zeros(n - real, np.int64)]
            x, y = x[pad], y[pad]
            weights = np.r_[weights, np.zeros(n - real, np.float32)]
        lo, hi = rate_arrays(n, self.min_rate, self.max_rate, self.universe.n_ahead)
        return as_tuples(((x, lo, hi), y, weights))

    def on_epoch_end(self) -> None:
        """Next epoch: a new symbol and window order (when ``shuffle``)."""
        with self._lock:
            self.epoch += 1
            self._blocks.clear()
