"""Training windows over a universe of many symbols, without loading every symbol at once.

A :class:`SymbolSource` lists the symbols of a folder or a Parquet dataset and reads the bars of one symbol
at a time: a Parquet dataset partitioned by symbol (``root/symbol=XYZ/part-0.parquet``, read with
``pyarrow.dataset`` and a partition filter, so only that symbol's files are opened), a Parquet file or
dataset with a ``symbol`` column (filtered scan), a flat folder with one file (CSV, Binance zip, Parquet)
or one sub-folder per symbol, or an in-memory frame.

Modules: :mod:`lems.data.sources` (sources), :mod:`lems.data.universe_index` (the per-symbol split index and
its cache), :mod:`lems.data.universe_batches` (chunks and batches); every public name is re-exported here.

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
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from lems.data.calendar import add_calendar, timestamps_ns, to_utc_ns
from lems.data.features import (
    MARKET_LEVEL_BARS,
    MarketSeries,
    feature_names,
    raw_observed,
    symbol_surprise,
)
from lems.data.resample import resample_validated
from lems.data.sources import SymbolSource, open_symbols, write_partitioned
from lems.data.universe_batches import UniverseDataset, _ChunkBuilder, merge_states
from lems.data.universe_index import (
    _SymbolIndex,
    _TimeRule,
    default_cache_dir,
    index_path,
    load_index,
    load_market,
    save_index,
    save_market,
)
from lems.data.windows import SymbolState, WindowSet, _empty_set, valid_origin_indices

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


WEIGHTINGS = ("window", "symbol", "notional")


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
        resample_minutes: Aggregate each symbol's bars to bars of this length [minutes] before counting and
            building windows (:func:`lems.data.resample.resample_bars` with its defaults, as
            ``read_bars(..., bar_minutes=resample_minutes)``); a multiple of the files' bar length. ``None``: as read.
        cache_symbols: Per-symbol states kept in memory for :meth:`state` (least recently used evicted): about
            ``cache_symbols`` times one symbol's compact state (:meth:`SymbolState.compact`). Batches do not use
            this cache (see :class:`UniverseDataset`).
        cache_dir: Folder of the per-symbol index cache (e.g. :func:`default_cache_dir`); None: no cache. Only
            sources read from files or folders per symbol are cached (about 1.2 MB per symbol of 72,000 bars);
            files of changed sources are not removed (delete the folder to reclaim the space). The market series
            of ``cross_asset`` is cached there too (one file for all symbols).
        cross_asset: Add the market channels (:data:`lems.data.features.MARKET_FEATURES`) to every symbol's
            windows: the mean of the OTHER symbols of the universe (held-out ones included: same-time observed
            values, never a later bar) at each bar time. Needs one pass over every symbol first
            (:meth:`market`), then each symbol's state joins it by bar open time; memory holds the series (32
            bytes per distinct bar time) and one symbol's bars, not the universe.
        **source_options: Passed to :func:`open_symbols` when ``source`` is not a :class:`SymbolSource`.

    Attributes:
        loads: Number of per-symbol states built so far (reads of a symbol's bars), cached or not.
        index_reads: Number of per-symbol indexes read from the bars (not from the cache).
    """

    def __init__(self, source: Any, lookback: int, n_ahead: int, *, tz: str = "UTC", stride: int = 1,
                 n_days_profile: int = 20, min_history: int | None = None, bar_minutes: float | None = None,
                 cache_symbols: int = 16, cache_dir: str | Path | None = None, resample_minutes: int | None = None,
                 cross_asset: bool = False, **source_options: Any) -> None:
        if int(lookback) < 2 or int(n_ahead) < 1:
            raise ValueError(f"lookback must be >= 2 and n_ahead >= 1, got {lookback} and {n_ahead}")
        if int(cache_symbols) < 1 or int(n_days_profile) < 1:
            raise ValueError(f"cache_symbols and n_days_profile must be >= 1, got {cache_symbols} and {n_days_profile}")
        self.source = open_symbols(source, **source_options)
        self.lookback, self.n_ahead, self.tz = int(lookback), int(n_ahead), tz
        self.stride, self.n_days_profile, self.min_history = int(stride), int(n_days_profile), min_history
        if resample_minutes is not None and (isinstance(resample_minutes, bool) or int(resample_minutes) < 1
                                             or int(resample_minutes) != resample_minutes):
            raise ValueError(f"resample_minutes must be a positive integer or None, got {resample_minutes!r}")
        self.bar_minutes = bar_minutes
        self.resample_minutes = None if resample_minutes is None else int(resample_minutes)
        self.cache_symbols = int(cache_symbols)
        self.cache_dir = None if cache_dir is None else Path(cache_dir).expanduser()
        self.cross_asset = bool(cross_asset)
        self.loads = 0
        self.index_reads = 0
        self.market_reads = 0
        self._market: MarketSeries | None = None
        self._cache: OrderedDict[str, SymbolState] = OrderedDict()
        self._lock = threading.RLock()

    @property
    def symbols(self) -> tuple[str, ...]:
        """The universe's symbols, sorted."""
        return self.source.symbols

    def bars(self, symbol: str) -> pd.DataFrame:
        """The validated canonical bars of ``symbol`` the universe counts and builds windows from (resampled to
        ``resample_minutes`` when set)."""
        bars = self.source.read(symbol)  # validated canonical bars of this one symbol
        if self.resample_minutes is None:
            return bars
        try:
            return resample_validated(bars, self.resample_minutes)
        except ValueError as exc:
            raise ValueError(f"symbol '{symbol}': {exc}") from exc

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Channel names of the universe's windows."""
        return feature_names(self.cross_asset)

    def market(self, progress: SplitProgress | None = None) -> MarketSeries:
        """The market series of every symbol (:class:`lems.data.features.MarketSeries`, symbols added in sorted
        order): built on first use by one pass over the symbols (each read, reduced to its contribution and
        dropped), or read from ``cache_dir`` when every symbol's source has a cache key.

        Args:
            progress: Called after each symbol of the pass (:data:`SplitProgress`); not called on a cache hit.
        """
        with self._lock:
            if self._market is not None:
                return self._market
            path = self._market_path()
            series = None if path is None else load_market(path)
            if series is None or series.symbols != tuple(sorted(self.symbols)):
                series = MarketSeries.empty()
                start = time.perf_counter()
                for j, symbol in enumerate(sorted(self.symbols)):
                    bars = self.bars(symbol)
                    series = series.add(symbol, timestamps_ns(bars["timestamp"]),
                                        symbol_surprise(raw_observed(bars), MARKET_LEVEL_BARS))
                    self.market_reads += 1
                    if progress is not None:
                        progress(j + 1, len(self.symbols), time.perf_counter() - start)
                if path is not None:
                    save_market(path, series)
            self._market = series
            return series

    def _market_path(self) -> Path | None:
        if self.cache_dir is None:
            return None
        keys = [self.source.cache_key(symbol) for symbol in sorted(self.symbols)]
        if any(key is None for key in keys):
            return None
        return index_path(self.cache_dir, "_market", [keys, {"resample_minutes": self.resample_minutes,
                                                             "level_bars": MARKET_LEVEL_BARS}])

    def _build(self, symbol: str, compact: bool = True) -> SymbolState:
        bars = self.bars(symbol)
        cal = add_calendar(bars, tz=self.tz, bar_minutes=self.bar_minutes)
        market = self.market() if self.cross_asset else None
        state = SymbolState.from_calendar(cal, self.lookback, self.n_ahead, self.n_days_profile, market)
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
        index = None if path is None else load_index(path)
        if index is not None:
            return index
        index = _SymbolIndex.of(self.bars(symbol))
        with self._lock:
            self.index_reads += 1
        if path is not None:
            save_index(path, index)
        return index

    def _index_path(self, symbol: str) -> Path | None:
        key = None if self.cache_dir is None else self.source.cache_key(symbol)
        if key is not None and self.resample_minutes is not None:  # resampled bars count other windows
            key = [key, {"resample_minutes": self.resample_minutes}]
        return None if key is None else index_path(self.cache_dir, symbol, key)

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
            return _empty_set({}, u.lookback, u.n_ahead, u.feature_names)
        ws = next(self.chunks(None, symbols=chosen))
        if len(chosen) == 1:
            return ws
        return ws.subset(np.lexsort((ws.asset.astype(str), ws.origin.as_unit("ns").asi8)))
