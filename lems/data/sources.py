"""Symbol sources: the symbols of a folder or a Parquet dataset, read one symbol at a time.

A :class:`SymbolSource` lists the symbols of a folder or a Parquet dataset and reads the validated canonical
bars of one symbol at a time: a Parquet dataset partitioned by symbol (``root/symbol=XYZ/part-0.parquet``, read
with ``pyarrow.dataset`` and a partition filter, so only that symbol's files are opened), a Parquet file or
dataset with a ``symbol`` column (filtered scan), a flat folder with one file (CSV, Binance zip, Parquet,
freqtrade feather) or one sub-folder per symbol, or an in-memory frame (:func:`open_symbols`).
:func:`write_partitioned` writes a multi-symbol frame as a symbol-partitioned Parquet dataset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lems.data.loaders import SUPPORTED_SUFFIXES, read_bars, symbol_from_path
from lems.data.validation import validate_bars

__all__ = ["SymbolSource", "open_symbols", "write_partitioned"]

_PARQUET_SUFFIXES = (".parquet", ".pq")


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
        return _entries_source({symbol_from_path(path): path}, options, str(path))
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
        key = p.name if p.is_dir() else symbol_from_path(p)  # the symbol read_bars names the file's bars
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
