"""Leak-free training windows over the sequence of actual bars (docs/execution.md §3, §5).

A window has an origin bar ``t0`` (index ``i`` in its symbol's bar array). ``X`` has
``lookback + n_ahead - 1`` positions; position ``j`` is bar ``i - lookback + j``. The targets
``y`` cover the horizon bars ``i .. i + n_ahead - 1``. Windows run over ACTUAL bars: a night, a
weekend or a missing bar is skipped, never filled, so the next ``H`` bars after the last bar of
a session are the next session's bars.

The same function, :func:`build_batch`, builds the rows of :func:`make_windows` (all origins,
in chunks) and the batches of the streaming :class:`WindowDataset`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import NamedTuple

import keras
import numpy as np
import pandas as pd

from lems.data.calendar import add_calendar, bar_minutes_of, timestamps_ns, to_utc_ns
from lems.data.features import (
    FEATURE_NAMES,
    N_KNOWN_AHEAD,
    N_OBSERVED,
    MarketSeries,
    SlotIndex,
    build_slot_index,
    feature_names,
    lookback_mean_volume,
    market_series,
    n_observed_channels,
    raw_known_ahead,
    raw_observed,
    seasonal_volume_profile,
    window_features,
    with_market,
)
from lems.execution import rate_columns

__all__ = [
    "Batch",
    "SymbolState",
    "WindowDataset",
    "WindowSet",
    "build_batch",
    "make_states",
    "make_windows",
    "rate_arrays",
    "valid_origin_indices",
]

_CHUNK = 4096  # origins per build_batch call inside make_windows


# ----------------------------------------------------------------------------------------------
# Per-symbol state
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SymbolState:
    """Everything :func:`build_batch` needs for one symbol, computed once.

    Attributes:
        symbol: Symbol name.
        bars: Calendar-enriched bars of the symbol (RangeIndex = bar index).
        lookback: Lookback length [bars].
        n_ahead: Horizon ``H`` [bars].
        n_days_profile: Past occurrences per slot in the seasonal profile [sessions / days].
        observed: ``(T, 5)`` raw observed arrays, ``(T, 7)`` with the market columns (cross-asset, see
            :func:`lems.data.features.with_market`).
        known: ``(T, 7)`` raw known-ahead arrays (without ``seasonal_volume``).
        volume: ``(T,)`` volume. price: ``(T,)`` bar VWAP. ns: ``(T,)`` bar open [UTC ns].
        slots: :class:`SlotIndex` for the seasonal profile.
        traded: ``(T + 1,)`` prefix counts of bars with positive volume.
    """

    symbol: str
    bars: pd.DataFrame
    lookback: int
    n_ahead: int
    n_days_profile: int
    observed: np.ndarray
    known: np.ndarray
    volume: np.ndarray
    price: np.ndarray
    ns: np.ndarray
    slots: SlotIndex
    traded: np.ndarray

    @classmethod
    def from_calendar(
        cls, cal: pd.DataFrame, lookback: int, n_ahead: int, n_days_profile: int = 20,
        market: MarketSeries | None = None,
    ) -> SymbolState:
        """Build the state from the calendar-enriched bars of ONE symbol.

        Args:
            cal: Calendar-enriched bars of the symbol.
            lookback, n_ahead, n_days_profile: See the attributes.
            market: The universe's :class:`lems.data.features.MarketSeries`: adds the market (cross-asset)
                channels; None: none (the default features).
        """
        bar_minutes = float(cal.attrs.get("bar_minutes") or bar_minutes_of(cal))
        cal = cal.reset_index(drop=True)
        volume = cal["volume"].to_numpy(np.float64)
        ns = timestamps_ns(cal["timestamp"])
        observed = raw_observed(cal)
        symbol = str(cal["symbol"].iloc[0])
        if market is not None:
            observed = with_market(symbol, ns, observed, market)
        return cls(
            symbol=symbol,
            bars=cal,
            lookback=int(lookback),
            n_ahead=int(n_ahead),
            n_days_profile=int(n_days_profile),
            observed=observed,
            known=raw_known_ahead(cal, bar_minutes),
            volume=volume,
            price=cal["price"].to_numpy(np.float64),
            ns=ns,
            slots=build_slot_index(cal["slot"].to_numpy(), volume),
            traded=np.r_[0, np.cumsum(volume > 0)],
        )

    @property
    def n_bars(self) -> int:
        """Number of bars ``T``."""
        return int(self.volume.shape[0])

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Channel names of the windows of this state (with the market channels when it has them)."""
        return feature_names(self.observed.shape[1] > N_OBSERVED)

    @property
    def nbytes(self) -> int:
        """Memory held by the state [bytes]: its arrays, plus the calendar frame (deep)."""
        slots = (getattr(self.slots, f.name) for f in dataclasses.fields(self.slots))
        arrays = (self.observed, self.known, self.volume, self.price, self.ns, self.traded, *slots)
        return int(sum(a.nbytes for a in arrays) + self.bars.memory_usage(deep=True).sum())

    def compact(self) -> SymbolState:
        """The same state without the calendar frame (``bars`` keeps its columns and no row) and with the
        known-ahead arrays in float32.

        :func:`build_batch` gives bit-identical batches from it: the known-ahead values enter ``X`` unchanged and
        ``X`` is float32. About half the memory of a year of hourly bars (measured in
        ``benchmarks/results/universe_memory/universe_memory.md``). Arrays that are views into the calendar frame's blocks (e.g.
        ``volume``, ``price``) are copied, so the compact state does not keep the frame's columns alive (about a
        third more memory otherwise on 5-minute crypto bars).
        """
        slots = dataclasses.replace(self.slots, **{f.name: _owned(getattr(self.slots, f.name))
                                                   for f in dataclasses.fields(self.slots)})
        owned = {name: _owned(getattr(self, name)) for name in ("observed", "volume", "price", "ns", "traded")}
        return dataclasses.replace(self, bars=self.bars.iloc[:0].copy(), known=self.known.astype(np.float32),
                                   slots=slots, **owned)

    def valid_origins(
        self, stride: int = 1, start=None, end=None, min_history: int | None = None
    ) -> np.ndarray:
        """Origin indices with a full lookback and horizon and traded volume in both.

        Args:
            stride: Keep every ``stride``-th candidate origin [bars].
            start: Earliest origin timestamp (inclusive); naive -> UTC.
            end: Latest origin timestamp (exclusive); naive -> UTC.
            min_history: Minimum number of bars before the origin (default ``lookback``).

        Returns:
            Sorted ``int64`` origin indices ``i``.
        """
        return valid_origin_indices(self.ns, self.traded, self.lookback, self.n_ahead, stride=stride, start=start,
                                    end=end, min_history=min_history)


def _owned(array: np.ndarray) -> np.ndarray:
    """``array`` itself when it owns its memory, else a compact copy (a view would keep its base alive)."""
    return array if array.base is None else np.array(array, copy=True)


def valid_origin_indices(
    ns: np.ndarray,
    traded: np.ndarray,
    lookback: int,
    n_ahead: int,
    *,
    stride: int = 1,
    start=None,
    end=None,
    min_history: int | None = None,
) -> np.ndarray:
    """Origin indices with a full lookback and horizon and traded volume in both, from timestamps and volume only.

    The one rule behind :meth:`SymbolState.valid_origins`; a universe counts its windows with it without building
    the symbols' features (:class:`lems.data.universe.SymbolUniverse`).

    Args:
        ns: ``(T,)`` bar open times [UTC ns], increasing.
        traded: ``(T + 1,)`` prefix counts of bars with positive volume (``np.r_[0, np.cumsum(volume > 0)]``).
        lookback: Lookback length [bars]. n_ahead: Horizon ``H`` [bars].
        stride: Keep every ``stride``-th candidate origin [bars].
        start: Earliest origin timestamp (inclusive); naive -> UTC.
        end: Latest origin timestamp (exclusive); naive -> UTC.
        min_history: Minimum number of bars before the origin (default ``lookback``).

    Returns:
        Sorted ``int64`` origin indices ``i``.
    """
    lookback, n_ahead = int(lookback), int(n_ahead)
    first = max(lookback, lookback if min_history is None else int(min_history))
    cand = np.arange(first, ns.shape[0] - n_ahead + 1, max(int(stride), 1), dtype=np.int64)
    look_ok = traded[cand] - traded[cand - lookback] > 0
    hor_ok = traded[cand + n_ahead] - traded[cand] > 0
    keep = look_ok & hor_ok
    if start is not None:
        keep &= ns[cand] >= to_utc_ns(start)
    if end is not None:
        keep &= ns[cand] < to_utc_ns(end)
    return cand[keep]


def make_states(
    bars: pd.DataFrame,
    lookback: int,
    n_ahead: int,
    *,
    tz: str = "UTC",
    n_days_profile: int = 20,
    bar_minutes: float | None = None,
    cross_asset: bool = False,
) -> dict[str, SymbolState]:
    """Validate bars, add calendar columns and build one :class:`SymbolState` per symbol.

    Args:
        bars: Canonical bars frame (one or many symbols).
        lookback: Lookback length [bars], >= 2.
        n_ahead: Horizon ``H`` [bars], >= 1.
        tz: Local time zone of the calendar features.
        n_days_profile: Past occurrences per slot in the seasonal profile.
        bar_minutes: Nominal bar length [minutes]; inferred when ``None``.
        cross_asset: Add the market channels (:data:`lems.data.features.MARKET_FEATURES`), from all the
            symbols of ``bars``.

    Returns:
        Dict symbol -> state, in the order of the (sorted) symbols.

    Raises:
        ValueError: invalid bars or arguments.
    """
    if int(lookback) < 2 or int(n_ahead) < 1:
        raise ValueError(f"lookback must be >= 2 and n_ahead >= 1, got {lookback} and {n_ahead}")
    if int(n_days_profile) < 1:
        raise ValueError(f"n_days_profile must be >= 1, got {n_days_profile}")
    from lems.data.validation import validate_bars

    canon = validate_bars(bars)
    cal = add_calendar(canon, tz=tz, bar_minutes=bar_minutes)
    codes, names = pd.factorize(cal["symbol"], sort=True)
    bounds = np.r_[0, np.flatnonzero(np.diff(codes)) + 1, len(cal)]
    parts = {}
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        part = cal.iloc[lo:hi].reset_index(drop=True)
        part.attrs = dict(cal.attrs)
        parts[str(part["symbol"].iloc[0])] = part
    market = None
    if cross_asset:
        market = market_series({s: (timestamps_ns(p["timestamp"]), raw_observed(p)) for s, p in parts.items()})
    return {s: SymbolState.from_calendar(p, lookback, n_ahead, n_days_profile, market) for s, p in parts.items()}


# ----------------------------------------------------------------------------------------------
# The one batch builder
# ----------------------------------------------------------------------------------------------
class Batch(NamedTuple):
    """Rows built by :func:`build_batch` (N windows)."""

    X: np.ndarray  # (N, lookback + H - 1, F) float32
    y: np.ndarray  # (N, H, 2) float32: [volume share, p / p_ref]
    reference_price: np.ndarray  # (N,) p_{t0-1}
    prices: np.ndarray  # (N, H) raw bar VWAP of the horizon
    volumes: np.ndarray  # (N, H) raw volume of the horizon


def assemble_windows(
    observed: np.ndarray,
    known: np.ndarray,
    seasonal: np.ndarray,
    lookback: int,
    horizon_seasonal: np.ndarray,
    closed: np.ndarray | None = None,
) -> np.ndarray:
    """Model inputs ``X`` from gathered raw arrays: the one window assembly of batch and live.

    Args:
        observed, known, seasonal: ``(N, W, .)`` raw arrays gathered per window (see
            :func:`lems.data.features.window_features`; ``observed`` with the market columns for cross-asset
            windows).
        lookback: Lookback length [bars].
        horizon_seasonal: ``(N, H)`` expected volumes of the horizon bars as of the origin.
        closed: ``(N,)`` horizon bars closed per window, for a partly known window (live: the decision for
            bar ``closed``): positions ``>= lookback + closed`` carry no observed value and positions
            ``> lookback + closed`` nothing at all (zeros; the raw arrays there are ignored). None: every
            position is known (historical windows).

    Returns:
        ``(N, W, F)`` float32.
    """
    x = window_features(observed, known, seasonal, lookback, horizon_seasonal)
    if closed is not None:
        position = np.arange(x.shape[1])[None, :]
        decision = lookback + np.asarray(closed, dtype=np.int64).reshape(-1, 1)
        n_obs = n_observed_channels(x.shape[-1])  # own and market observed channels
        x[..., :n_obs] = np.where((position < decision)[..., None], x[..., :n_obs], 0.0)
        x = np.where((position <= decision)[..., None], x, 0.0)
    return x.astype(np.float32)


def build_batch(symbol_state: SymbolState, origin_indices: np.ndarray) -> Batch:
    """Gather and normalise the windows of one symbol at the given origins.

    Vectorised: one fancy-indexing gather of ``[i - lookback, i + H - 1)`` per array, then
    per-window normalisation from positions ``< lookback`` only.

    Args:
        symbol_state: The symbol's :class:`SymbolState`.
        origin_indices: ``(N,)`` origin bar indices ``i`` (each valid: full lookback and
            horizon, traded volume in both).

    Returns:
        A :class:`Batch`.

    Raises:
        ValueError: invalid origins, or non-finite values in the output (names the symbol).
    """
    st = symbol_state
    origin = np.asarray(origin_indices, dtype=np.int64).reshape(-1)
    lb, h = st.lookback, st.n_ahead
    _check_origins(st, origin)
    idx = origin[:, None] + np.arange(-lb, h - 1, dtype=np.int64)[None, :]  # (N, W)
    observed = st.observed[idx]
    m = lookback_mean_volume(observed, lb)
    seasonal = seasonal_volume_profile(st.slots, origin, idx, st.n_days_profile, fallback=m)
    hor = origin[:, None] + np.arange(h, dtype=np.int64)[None, :]  # (N, H)
    horizon_seasonal = seasonal_volume_profile(st.slots, origin, hor, st.n_days_profile, fallback=m)
    x32 = assemble_windows(observed, st.known[idx], seasonal, lb, horizon_seasonal)
    volumes = st.volume[hor]
    prices = st.price[hor]
    ref = st.price[origin - 1]
    y = np.stack([volumes / volumes.sum(axis=1, keepdims=True), prices / ref[:, None]], axis=-1)
    y32 = y.astype(np.float32)
    for name, arr in (("X", x32), ("y", y32)):
        if not np.all(np.isfinite(arr)):
            bad = origin[np.flatnonzero(~np.isfinite(arr).reshape(len(origin), -1).all(axis=1))]
            raise ValueError(f"non-finite {name} for symbol '{st.symbol}' at origin indices {bad[:5]}")
    return Batch(x32, y32, ref, prices, volumes)


def _check_origins(st: SymbolState, origin: np.ndarray) -> None:
    lb, h = st.lookback, st.n_ahead
    if origin.size == 0:
        return
    if origin.min() < lb or origin.max() > st.n_bars - h:
        raise ValueError(
            f"origin indices must lie in [{lb}, {st.n_bars - h}] for symbol '{st.symbol}' "
            f"(full lookback and horizon), got [{origin.min()}, {origin.max()}]"
        )
    look = st.traded[origin] - st.traded[origin - lb]
    hor = st.traded[origin + h] - st.traded[origin]
    if np.any(look == 0) or np.any(hor == 0):
        raise ValueError(f"zero total volume in the lookback or horizon of a window of '{st.symbol}'")


# ----------------------------------------------------------------------------------------------
# Materialised windows
# ----------------------------------------------------------------------------------------------
def _origin_table(
    states: dict[str, SymbolState], stride: int, start, end, min_history
) -> tuple[np.ndarray, np.ndarray]:
    """All (symbol code, origin index) pairs, sorted by (origin time, symbol code)."""
    codes, origins, times = [], [], []
    for k, st in enumerate(states.values()):
        o = st.valid_origins(stride, start, end, min_history)
        codes.append(np.full(o.shape, k, dtype=np.int64))
        origins.append(o)
        times.append(st.ns[o])
    code = np.concatenate(codes) if codes else np.zeros(0, np.int64)
    origin = np.concatenate(origins) if origins else np.zeros(0, np.int64)
    t = np.concatenate(times) if times else np.zeros(0, np.int64)
    order = np.lexsort((code, t))
    return code[order], origin[order]


@dataclass
class WindowSet:
    """Materialised windows (docs/execution.md §5 layout).

    Attributes:
        X: ``(N, lookback + H - 1, F)`` float32; position ``j`` = bar ``t0 - lookback + j``;
            observed channels first, the last ``n_known`` channels known ahead.
        y: ``(N, H, 2)`` float32: ``[V_{t0+s} / sum_u V_{t0+u}, p_{t0+s} / p_ref]``.
        origin: ``(N,)`` UTC origin bar open times ``t0``.
        asset: ``(N,)`` symbol of each window.
        origin_index: ``(N,)`` position of ``t0`` in its symbol's bar array (``bars[asset]``).
        reference_price: ``(N,)`` ``p_ref = p_{t0-1}`` (VWAP of the last bar before the origin).
        prices: ``(N, H)`` raw bar VWAPs of the horizon [quote currency].
        volumes: ``(N, H)`` raw volumes of the horizon [shares / coins].
        horizon_end: ``(N,)`` UTC open time of the last horizon bar ``t0 + H - 1``.
        lookback, n_ahead: Window sizes [bars].
        feature_names: Channel names of ``X``.
        n_known: Number of known-ahead channels (the last ones); every channel before them is observed (with the
            market channels of :func:`lems.data.features.feature_names` for cross-asset windows).
        bars: Symbol -> calendar-enriched bars of that symbol (index = bar index).
    """

    X: np.ndarray
    y: np.ndarray
    origin: pd.DatetimeIndex
    asset: np.ndarray
    origin_index: np.ndarray
    reference_price: np.ndarray
    prices: np.ndarray
    volumes: np.ndarray
    horizon_end: pd.DatetimeIndex
    lookback: int
    n_ahead: int
    feature_names: tuple[str, ...] = FEATURE_NAMES
    n_known: int = N_KNOWN_AHEAD
    bars: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return int(self.X.shape[0])

    def subset(self, rows) -> WindowSet:
        """Windows selected by a boolean mask ``(N,)`` or an integer index array."""
        rows = np.asarray(rows)
        if rows.dtype == bool:
            if rows.shape != (len(self),):
                raise ValueError(f"subset mask must have shape ({len(self)},), got {rows.shape}")
            rows = np.flatnonzero(rows)
        rows = rows.astype(np.int64)
        per_row = ("X", "y", "asset", "origin_index", "reference_price", "prices", "volumes")
        changes = {k: getattr(self, k)[rows] for k in per_row}
        changes["origin"] = self.origin[rows]
        changes["horizon_end"] = self.horizon_end[rows]
        return dataclasses.replace(self, **changes)

    def split(self, train_end, val_end=None) -> tuple[WindowSet, ...]:
        """Time split with purging.

        Train: windows whose LAST horizon bar starts before ``train_end``. Val (when
        ``val_end`` is given): origin ``>= train_end`` and last horizon bar ``< val_end``.
        Test: origin ``>= val_end`` (``>= train_end`` when ``val_end`` is None). Windows that
        straddle a boundary are dropped, so no horizon crosses into the next set.

        Args:
            train_end: End of training (timestamp; naive -> UTC).
            val_end: End of validation, ``>= train_end``; ``None`` -> no validation set.

        Returns:
            ``(train, val, test)``, or ``(train, test)`` when ``val_end`` is None.
        """
        t_end = to_utc_ns(train_end)
        o = self.origin.as_unit("ns").asi8
        last = self.horizon_end.as_unit("ns").asi8
        train = self.subset(last < t_end)
        if val_end is None:
            return train, self.subset(o >= t_end)
        v_end = to_utc_ns(val_end)
        if v_end < t_end:
            raise ValueError(f"val_end ({val_end}) must not be before train_end ({train_end})")
        val = self.subset((o >= t_end) & (last < v_end))
        return train, val, self.subset(o >= v_end)


def _empty_set(states: dict[str, SymbolState], lookback: int, n_ahead: int,
               names: tuple[str, ...] = FEATURE_NAMES) -> WindowSet:
    w, f = lookback + n_ahead - 1, len(names)
    empty_t = pd.DatetimeIndex([], tz="UTC").as_unit("ns")
    return WindowSet(
        np.zeros((0, w, f), np.float32), np.zeros((0, n_ahead, 2), np.float32), empty_t,
        np.zeros(0, object), np.zeros(0, np.int64), np.zeros(0), np.zeros((0, n_ahead)),
        np.zeros((0, n_ahead)), empty_t, lookback, n_ahead, feature_names=names,
        bars={s: st.bars for s, st in states.items()},
    )  # fmt: skip


def make_windows(
    bars: pd.DataFrame,
    lookback: int,
    n_ahead: int,
    *,
    tz: str = "UTC",
    stride: int = 1,
    start=None,
    end=None,
    n_days_profile: int = 20,
    min_history: int | None = None,
    bar_minutes: float | None = None,
    cross_asset: bool = False,
) -> WindowSet:
    """Build every valid window of one or many symbols.

    The window at origin index ``i`` uses bars ``i - lookback .. i + H - 2`` for ``X`` and
    ``i .. i + H - 1`` for ``y``. Windows without a full lookback, or with zero total volume in
    the lookback or in the horizon, are dropped (never repaired). Rows are ordered by
    (origin time, symbol).

    Args:
        bars: Canonical bars frame (validated here).
        lookback: Lookback length [bars].
        n_ahead: Horizon ``H`` [bars].
        tz: Local time zone of the calendar features (``"America/New_York"`` for US equities).
        stride: Keep every ``stride``-th origin of each symbol [bars].
        start: Earliest origin (inclusive). end: Latest origin (exclusive).
        n_days_profile: Past occurrences per slot in the seasonal volume profile.
        min_history: Minimum number of bars before an origin (default ``lookback``).
        bar_minutes: Nominal bar length [minutes]; inferred when ``None``.
        cross_asset: Add the market channels (:data:`lems.data.features.MARKET_FEATURES`: the other symbols of
            ``bars`` at each bar time) after the own observed channels.

    Returns:
        A :class:`WindowSet`.
    """
    states = make_states(
        bars, lookback, n_ahead, tz=tz, n_days_profile=n_days_profile, bar_minutes=bar_minutes,
        cross_asset=cross_asset,
    )
    names_of_x = feature_names(cross_asset)
    code, origin = _origin_table(states, stride, start, end, min_history)
    n = origin.shape[0]
    if n == 0:
        return _empty_set(states, lookback, n_ahead, names_of_x)
    w, f = lookback + n_ahead - 1, len(names_of_x)
    x = np.empty((n, w, f), np.float32)
    y = np.empty((n, n_ahead, 2), np.float32)
    ref, prices, volumes = np.empty(n), np.empty((n, n_ahead)), np.empty((n, n_ahead))
    t0, t_last = np.empty(n, np.int64), np.empty(n, np.int64)
    names = np.array(list(states), dtype=object)
    for k, st in enumerate(states.values()):
        rows = np.flatnonzero(code == k)
        for lo in range(0, rows.size, _CHUNK):
            r = rows[lo : lo + _CHUNK]
            b = build_batch(st, origin[r])
            x[r], y[r], ref[r], prices[r], volumes[r] = b
            t0[r], t_last[r] = st.ns[origin[r]], st.ns[origin[r] + n_ahead - 1]
    return WindowSet(
        X=x, y=y, origin=_utc_index(t0), asset=names[code], origin_index=origin,
        reference_price=ref, prices=prices, volumes=volumes, horizon_end=_utc_index(t_last),
        lookback=int(lookback), n_ahead=int(n_ahead), feature_names=names_of_x,
        bars={s: st.bars for s, st in states.items()},
    )  # fmt: skip


def _utc_index(ns: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(ns.astype("datetime64[ns]")).tz_localize("UTC")


# ----------------------------------------------------------------------------------------------
# Order-rate inputs
# ----------------------------------------------------------------------------------------------
def rate_arrays(n: int, min_rate, max_rate, n_ahead: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate per-bar rate limits and shape them as float32 ``(n, 1)`` arrays (model inputs).

    Args:
        n: Number of samples.
        min_rate: Minimum fraction of the order per bar (scalar or ``(n,)`` / ``(n, 1)``).
        max_rate: Maximum fraction of the order per bar (scalar or ``(n,)`` / ``(n, 1)``).
        n_ahead: Horizon ``H`` [bars]; when given, ``H * max_rate >= 1`` is required.

    Raises:
        ValueError: see :func:`lems.execution.rate_columns`.
    """
    lo, hi = rate_columns(n, min_rate, max_rate, n_ahead)
    return lo.astype(np.float32), hi.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# Streaming dataset
# ----------------------------------------------------------------------------------------------
class WindowDataset(keras.utils.PyDataset):
    """Windows built on the fly, batch by batch, with :func:`build_batch`.

    Yields ``([X, min_rate, max_rate], y)`` with ``X`` ``(B, lookback + H - 1, F)``,
    ``min_rate``/``max_rate`` float32 ``(B, 1)`` and compact ``y`` ``(B, H, 2)``, the same rows
    :func:`make_windows` would build for the same origins, without materialising all windows.

    Args:
        bars: Canonical bars frame (one or many symbols).
        lookback: Lookback length [bars].
        n_ahead: Horizon ``H`` [bars].
        batch_size: Windows per batch.
        shuffle: Shuffle the windows (re-shuffled by ``on_epoch_end``); ``False`` keeps the
            :func:`make_windows` order (origin time, symbol).
        seed: Seed of the shuffling ``Generator``.
        min_rate: Minimum fraction of the order per bar.
        max_rate: Maximum fraction of the order per bar (``H * max_rate >= 1``).
        tz, stride, start, end, n_days_profile, min_history, bar_minutes, cross_asset: As in
            :func:`make_windows`.
        **kwargs: Passed to ``keras.utils.PyDataset`` (``workers``, ``use_multiprocessing``,
            ``max_queue_size``).
    """

    def __init__(
        self,
        bars: pd.DataFrame,
        lookback: int,
        n_ahead: int,
        batch_size: int = 64,
        shuffle: bool = True,
        seed: int = 0,
        min_rate: float = 0.0,
        max_rate: float = 1.0,
        *,
        tz: str = "UTC",
        stride: int = 1,
        start=None,
        end=None,
        n_days_profile: int = 20,
        min_history: int | None = None,
        bar_minutes: float | None = None,
        cross_asset: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        rate_arrays(1, min_rate, max_rate, n_ahead)  # validate early
        self.states = make_states(
            bars, lookback, n_ahead, tz=tz, n_days_profile=n_days_profile, bar_minutes=bar_minutes,
            cross_asset=cross_asset,
        )
        self._states = list(self.states.values())
        self.code, self.origin = _origin_table(self.states, stride, start, end, min_history)
        if self.origin.size == 0:
            raise ValueError("WindowDataset: no valid window (check lookback, n_ahead, start/end)")
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.min_rate, self.max_rate = float(min_rate), float(max_rate)
        self.n_ahead = int(n_ahead)
        self._rng = np.random.default_rng(seed)
        self._order = np.arange(self.origin.size)
        if self.shuffle:
            self._rng.shuffle(self._order)

    def __len__(self) -> int:
        return int(np.ceil(self.origin.size / self.batch_size))

    def rows(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """``(symbol codes, origin indices)`` of batch ``index``."""
        sel = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        return self.code[sel], self.origin[sel]

    def __getitem__(self, index: int):
        if not 0 <= index < len(self):
            raise IndexError(f"batch index {index} out of range [0, {len(self)})")
        code, origin = self.rows(index)
        n = origin.size
        lb, h = self._states[0].lookback, self.n_ahead
        x = np.empty((n, lb + h - 1, len(self._states[0].feature_names)), np.float32)
        y = np.empty((n, h, 2), np.float32)
        for k in np.unique(code):
            r = np.flatnonzero(code == k)
            b = build_batch(self._states[int(k)], origin[r])
            x[r], y[r] = b.X, b.y
        lo, hi = rate_arrays(n, self.min_rate, self.max_rate, h)
        return [x, lo, hi], y

    def on_epoch_end(self) -> None:
        """Re-shuffle the window order (when ``shuffle``)."""
        if self.shuffle:
            self._rng.shuffle(self._order)
