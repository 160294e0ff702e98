"""Windows of a universe part built on demand: :class:`WindowSet` chunks and shuffled training batches.

:class:`_ChunkBuilder` fills a :class:`WindowSet` of bounded size symbol by symbol (the chunks of
:meth:`lems.data.universe.UniverseWindows.chunks`); :func:`merge_states` puts several symbols' states back to
back so one :func:`lems.data.windows.build_batch` call gathers windows of all of them; :class:`UniverseDataset`
serves a part's windows as fixed-shape batches, shuffled across symbols block by block (see
:mod:`lems.data.universe`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import keras
import numpy as np
import pandas as pd

from lems.data.features import build_slot_index
from lems.data.nested import as_tuples
from lems.data.windows import _CHUNK, SymbolState, WindowSet, build_batch, rate_arrays

if TYPE_CHECKING:  # type hints only: lems.data.universe imports this module
    from lems.data.universe import UniverseWindows

__all__ = ["UniverseDataset", "merge_states"]


class _ChunkBuilder:
    """A :class:`WindowSet` of ``size`` rows filled symbol by symbol, each window built in place."""

    def __init__(self, size: int, like: SymbolState, bars: bool) -> None:
        lb, h = like.lookback, like.n_ahead
        self.lookback, self.n_ahead, self.size, self.filled, self.with_bars = lb, h, int(size), 0, bool(bars)
        self.feature_names = like.feature_names
        self.x = np.empty((size, lb + h - 1, len(self.feature_names)), np.float32)
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
                         n_ahead=self.n_ahead, feature_names=self.feature_names, bars=self.bars)


def _utc(ns: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(ns.astype("datetime64[ns]")).tz_localize("UTC")


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
