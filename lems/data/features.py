"""Model features: observed (realised) and known-ahead channels, and the causal volume profile.

Channel order is a CONTRACT (the model reads channels by position). ``X[..., :N_OBSERVED]`` are
the observed features of the bar at each position, then (only with ``cross_asset``) the two observed market
channels, and the LAST ``N_KNOWN_AHEAD`` channels ``X[..., -N_KNOWN_AHEAD:]`` are known before the bar opens
(:func:`feature_names`; every channel before the known-ahead ones is observed: :func:`n_observed_channels`).

Observed (bar ``j``'s own realised values, normalised per window with statistics of the
lookback part only, i.e. positions ``< lookback``, known at the origin):

0. ``ret``: ``log(p_j / p_{j-1})`` (bar VWAP to bar VWAP; 0 for a symbol's first bar) divided by
   the std of ``ret`` over the lookback (floored at :data:`RET_STD_FLOOR`).
1. ``log_volume``: ``log((V_j + d) / (m + d))``, ``m`` = mean volume of the lookback,
   ``d = VOLUME_DELTA * m + 1e-12`` (``VOLUME_DELTA = 1e-3``). ``exp(channel 1)`` is proportional to ``V_j + d``.
2. ``range``: ``log(high_j / low_j)`` divided by its lookback mean (floored at
   :data:`RANGE_FLOOR`).
3. ``close_loc``: ``log(close_j / p_j)`` / lookback std of ``ret``.
4. ``open_gap``: ``log(open_j / close_{j-1})`` / lookback std of ``ret`` (0 for a symbol's first
   bar).

Market (cross-asset) observed channels, only when switched on (``cross_asset``; then ``X[..., :N_OBSERVED + 2]``
are observed, see :func:`feature_names`), already scale-free, so not normalised per window (clipped only):

5. ``market_volume``: the mean, over the OTHER symbols with a bar at the same open time, of each one's volume
   surprise ``log((V + d) / (m + d))`` (``m`` = its mean volume over its last :data:`MARKET_LEVEL_BARS` bars
   strictly before that bar, ``d = VOLUME_DELTA * m + 1e-12``) (0 when no other symbol counts).
6. ``market_ret``: the same mean of each one's return divided by the std of its returns over the same past bars.

Bar ``j``'s market values are known once bar ``j`` closed, exactly like its own ``log_volume``: they are observed
channels and are masked like them (:func:`symbol_surprise`, :class:`MarketSeries`). A universe of one symbol has
market channels 0.

Known ahead (functions of bar timestamps, and of volumes of bars strictly before the origin):
``tod_sin, tod_cos`` (local time of day on the 24h circle), ``dow_sin, dow_cos`` (day of week on
the 7-day circle), ``first_bar_of_session`` (0/1), ``minutes_since_open`` [days, i.e. minutes /
1440], ``log_gap_hours`` (``log1p(max(hours since previous bar start - bar length, 0))``) and
``seasonal_volume``: ``log((S + d) / (m + d))`` where ``S`` is the mean volume of the bar's slot
over the last ``n_days`` occurrences of that slot strictly before the window's origin (as of the
origin for every position; ``S = m`` -> 0 when the slot has no history), and ``seasonal_share``: at the
order's horizon bars ``t0 + s`` (positions ``lookback + s``), the log-odds of the static volume curve's share
of what remains, ``S_s / sum_{u >= s} S_u`` over the horizon (the classical static VWAP schedule's decision,
known at the origin; clipped to +-SHARE_LOGIT_CLIP), and 0 at the lookback positions.

Every normalised observed channel is clipped to ``[-FEATURE_CLIP, FEATURE_CLIP]`` (elementwise,
so causal) to protect models from bad ticks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = [
    "FEATURE_CLIP",
    "FEATURE_NAMES",
    "KNOWN_AHEAD_FEATURES",
    "MARKET_FEATURES",
    "MARKET_LEVEL_BARS",
    "N_KNOWN_AHEAD",
    "N_OBSERVED",
    "OBSERVED_FEATURES",
    "RANGE_FLOOR",
    "RET_STD_FLOOR",
    "SEASONAL_SHARE_CHANNEL",
    "SEASONAL_VOLUME_CHANNEL",
    "SHARE_LOGIT_CLIP",
    "VOLUME_DELTA",
    "MarketSeries",
    "SlotIndex",
    "feature_names",
    "market_series",
    "n_observed_channels",
    "symbol_surprise",
    "with_market",
    "seasonal_share_logits",
    "build_slot_index",
    "lookback_mean_volume",
    "raw_known_ahead",
    "raw_observed",
    "seasonal_volume_profile",
    "window_features",
]

#: Observed features, channel order of ``X[..., :N_OBSERVED]``.
OBSERVED_FEATURES: tuple[str, ...] = ("ret", "log_volume", "range", "close_loc", "open_gap")
#: Known-ahead features, the LAST channels of ``X``, in this order.
KNOWN_AHEAD_FEATURES: tuple[str, ...] = (
    "tod_sin",
    "tod_cos",
    "dow_sin",
    "dow_cos",
    "first_bar_of_session",
    "minutes_since_open",
    "log_gap_hours",
    "seasonal_volume",
    "seasonal_share",
)
#: Market (cross-asset) observed channels, after the own observed channels when switched on (``cross_asset``).
MARKET_FEATURES: tuple[str, ...] = ("market_volume", "market_ret")
#: Past bars of each symbol's causal volume level and return scale in the market channels [bars].
MARKET_LEVEL_BARS: int = 48
N_OBSERVED: int = len(OBSERVED_FEATURES)
N_KNOWN_AHEAD: int = len(KNOWN_AHEAD_FEATURES)
#: All channel names of ``X``, observed first.
FEATURE_NAMES: tuple[str, ...] = OBSERVED_FEATURES + KNOWN_AHEAD_FEATURES

#: Channel of ``X`` holding the static curve's log-odds of the share of what remains (see above).
SEASONAL_SHARE_CHANNEL: int = FEATURE_NAMES.index("seasonal_share")
#: Channel of ``X`` holding the causal seasonal expected volume ``log((S + d) / (m + d))`` (see above).
SEASONAL_VOLUME_CHANNEL: int = FEATURE_NAMES.index("seasonal_volume")
#: ``d / m`` of the volume channels: ``d = VOLUME_DELTA * m + 1e-12`` (so ``V / m = exp(c) * (1 + VOLUME_DELTA)
#: - VOLUME_DELTA`` for a volume channel ``c``, to 1e-12 relative).
VOLUME_DELTA: float = 1e-3
#: Bound of the ``seasonal_share`` log-odds.
SHARE_LOGIT_CLIP: float = 12.0

#: Floor of the lookback std of log returns [log units per bar].
RET_STD_FLOOR: float = 1e-5
#: Floor of the lookback mean of log(high / low) [log units].
RANGE_FLOOR: float = 1e-5
#: Observed channels are clipped to +-FEATURE_CLIP (units of their normaliser).
FEATURE_CLIP: float = 50.0
_TINY: float = 1e-12

# indices into the raw observed array
_RET, _VOL, _RANGE, _CLOSE, _GAP = range(5)


# ----------------------------------------------------------------------------------------------
# Raw per-bar arrays (one symbol)
# ----------------------------------------------------------------------------------------------
def raw_observed(bars: pd.DataFrame) -> np.ndarray:
    """Raw observed arrays of ONE symbol, shape ``(T, 5)`` float64.

    Columns: ``log(p_j / p_{j-1})`` (0 for j = 0), volume ``V_j`` (raw, not log),
    ``log(high / low)``, ``log(close / p)``, ``log(open_j / close_{j-1})`` (0 for j = 0).

    Args:
        bars: Canonical bars of a single symbol, in time order.
    """
    p = bars["price"].to_numpy(np.float64)
    close = bars["close"].to_numpy(np.float64)
    log_p = np.log(p)
    out = np.empty((len(bars), 5))
    out[:, _RET] = np.r_[0.0, np.diff(log_p)]
    out[:, _VOL] = bars["volume"].to_numpy(np.float64)
    out[:, _RANGE] = np.log(bars["high"].to_numpy(np.float64) / bars["low"].to_numpy(np.float64))
    out[:, _CLOSE] = np.log(close) - log_p
    out[:, _GAP] = np.r_[0.0, np.log(bars["open"].to_numpy(np.float64)[1:] / close[:-1])]
    return out


def raw_known_ahead(cal: pd.DataFrame, bar_minutes: float) -> np.ndarray:
    """Known-ahead arrays of ONE symbol except ``seasonal_volume``, shape ``(T, 7)`` float64.

    Args:
        cal: Calendar-enriched bars (see :func:`lems.data.calendar.add_calendar`).
        bar_minutes: Nominal bar length [minutes].
    """
    tod = 2.0 * np.pi * cal["tod_minutes"].to_numpy(np.float64) / 1440.0
    dow = 2.0 * np.pi * cal["dow"].to_numpy(np.float64) / 7.0
    gap = np.maximum(cal["gap_hours"].to_numpy(np.float64) - bar_minutes / 60.0, 0.0)
    return np.stack(
        [
            np.sin(tod),
            np.cos(tod),
            np.sin(dow),
            np.cos(dow),
            cal["first_bar_of_session"].to_numpy(np.float64),
            cal["minutes_since_open"].to_numpy(np.float64) / 1440.0,
            np.log1p(gap),
        ],
        axis=1,
    )


# ----------------------------------------------------------------------------------------------
# Causal seasonal volume profile
# ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SlotIndex:
    """Per-slot prefix sums of volume for O(1) causal seasonal look-ups (one symbol).

    Attributes:
        code: Slot code of each bar, ``(T,)`` int64 in ``0..S-1``.
        keys: Sorted ``code * (T + 1) + bar index``, ``(T,)`` int64.
        group_start: Position in ``keys`` of each slot's first bar, ``(S,)``.
        prefix: Per-slot inclusive volume prefix sums with a leading 0 per slot,
            ``(T + S,)``; slot ``c`` occupies ``prefix[group_start[c] + c : ...]``.
        cum_volume: ``(T + 1,)`` volume prefix sums over all bars (for the fallback).
    """

    code: np.ndarray
    keys: np.ndarray
    group_start: np.ndarray
    prefix: np.ndarray
    cum_volume: np.ndarray

    @property
    def n_bars(self) -> int:
        """Number of bars ``T``."""
        return int(self.code.shape[0])


def build_slot_index(slot: np.ndarray, volume: np.ndarray) -> SlotIndex:
    """Build the :class:`SlotIndex` of one symbol.

    Sums inside a slot are accumulated sequentially in time order, so a prefix up to bar ``i``
    depends only on volumes of bars ``< i`` (bit-for-bit causal).

    Args:
        slot: Slot (local time of day in minutes) of each bar, ``(T,)`` int.
        volume: Volume of each bar, ``(T,)``.
    """
    slot = np.asarray(slot)
    volume = np.asarray(volume, dtype=np.float64)
    t = slot.shape[0]
    uniq, code = np.unique(slot, return_inverse=True)
    code = code.astype(np.int64).reshape(-1)
    keys = code * (t + 1) + np.arange(t, dtype=np.int64)
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    counts = np.bincount(code, minlength=uniq.size)
    group_start = np.r_[0, np.cumsum(counts)[:-1]].astype(np.int64)
    inclusive = pd.Series(volume[order]).groupby(code[order]).cumsum().to_numpy(np.float64)
    prefix = np.zeros(t + uniq.size)
    prefix[np.arange(t) + code[order] + 1] = inclusive
    cum_volume = np.r_[0.0, np.cumsum(volume)]
    return SlotIndex(code, keys, group_start, prefix, cum_volume)


def seasonal_volume_profile(
    bars: pd.DataFrame | SlotIndex,
    origin_index: np.ndarray,
    query_index: np.ndarray,
    n_days: int = 20,
    *,
    fallback: np.ndarray | None = None,
) -> np.ndarray:
    """Causal static volume curve: expected volume of bar ``query`` as of ``origin``.

    For each origin ``i`` and each queried bar ``k``, the mean volume of the last ``n_days``
    bars that share ``k``'s slot (local time of day) and start strictly before bar ``i``.
    Vectorised (searchsorted on per-slot prefix sums, no loop over windows).

    Args:
        bars: Calendar-enriched frame of ONE symbol (``slot`` and ``volume`` columns, RangeIndex
            positions = bar indices), or a prebuilt :class:`SlotIndex`.
        origin_index: ``(N,)`` bar index of each window origin ``t0``.
        query_index: ``(N, K)`` bar indices whose expected volume is wanted (e.g. ``t0 + s``).
        n_days: Number of past occurrences of a slot averaged [sessions / days].
        fallback: ``(N,)`` volume used where a slot has no history before the origin; default:
            mean volume of all bars before the origin (1.0 when the origin is bar 0).

    Returns:
        ``(N, K)`` float64 expected volume [shares / coins per bar], NaN-free.

    Raises:
        ValueError: indices out of range, shapes inconsistent, ``n_days < 1``.
    """
    index = bars if isinstance(bars, SlotIndex) else build_slot_index(
        bars["slot"].to_numpy(), bars["volume"].to_numpy(np.float64)
    )
    origin = np.asarray(origin_index, dtype=np.int64)
    query = np.asarray(query_index, dtype=np.int64)
    _check_profile_args(index, origin, query, n_days)
    t = index.n_bars
    code = index.code[query]  # (N, K)
    pos = np.searchsorted(index.keys, code * (t + 1) + origin[:, None], side="left")
    available = pos - index.group_start[code]  # bars of that slot strictly before the origin
    n = np.minimum(available, n_days)
    base = index.group_start[code] + code  # offset of the slot's leading zero in prefix
    total = index.prefix[base + available] - index.prefix[base + available - n]
    if fallback is None:
        fallback = np.where(origin > 0, index.cum_volume[origin] / np.maximum(origin, 1), 1.0)
    fallback = np.broadcast_to(np.asarray(fallback, dtype=np.float64).reshape(-1, 1), query.shape)
    out = np.where(n > 0, total / np.maximum(n, 1), fallback)
    if not np.all(np.isfinite(out)):
        raise ValueError("seasonal_volume_profile: non-finite expected volume (check fallback)")
    return out


def _check_profile_args(index: SlotIndex, origin: np.ndarray, query: np.ndarray, n_days: int) -> None:
    if n_days < 1:
        raise ValueError(f"seasonal_volume_profile: n_days must be >= 1, got {n_days}")
    if origin.ndim != 1 or query.ndim != 2 or query.shape[0] != origin.shape[0]:
        raise ValueError(
            "seasonal_volume_profile: origin_index must be (N,) and query_index (N, K), got "
            f"{origin.shape} and {query.shape}"
        )
    t = index.n_bars
    for name, arr in (("origin_index", origin), ("query_index", query)):
        if arr.size and (arr.min() < 0 or arr.max() >= t):
            raise ValueError(f"seasonal_volume_profile: {name} out of range [0, {t})")


# ----------------------------------------------------------------------------------------------
# Per-window normalisation
# ----------------------------------------------------------------------------------------------
def lookback_mean_volume(observed: np.ndarray, lookback: int) -> np.ndarray:
    """Mean volume over the lookback part (positions ``< lookback``) of gathered windows.

    Args:
        observed: ``(N, W, 5)`` raw observed arrays gathered per window.
        lookback: Lookback length [bars].

    Returns:
        ``(N,)`` mean volume ``m``.
    """
    return observed[:, :lookback, _VOL].mean(axis=1)


def seasonal_share_logits(horizon_seasonal: np.ndarray) -> np.ndarray:
    """Log-odds of the static curve's share of what remains, per horizon bar.

    Args:
        horizon_seasonal: ``(N, H)`` expected volume of the horizon bars as of the origin.

    Returns:
        ``(N, H - 1)`` ``logit(S_s / sum_{u >= s} S_u)`` for ``s = 0 .. H-2`` (the last bar takes what is
        left), clipped to ``+-SHARE_LOGIT_CLIP``.
    """
    s = np.maximum(horizon_seasonal, _TINY)
    tail = np.cumsum(s[:, ::-1], axis=1)[:, ::-1]
    share = s[:, :-1] / tail[:, :-1]
    logits = np.log(share) - np.log(np.maximum(1.0 - share, _TINY))
    return np.clip(logits, -SHARE_LOGIT_CLIP, SHARE_LOGIT_CLIP)


def window_features(
    observed: np.ndarray, known: np.ndarray, seasonal: np.ndarray, lookback: int,
    horizon_seasonal: np.ndarray | None = None,
) -> np.ndarray:
    """Normalise gathered raw arrays into model features, per window.

    Every statistic comes from positions ``< lookback`` only (known at the origin).

    Args:
        observed: ``(N, W, 5)`` raw observed arrays (see :func:`raw_observed`), or ``(N, W, 7)`` with the market
            columns (see :func:`with_market`).
        known: ``(N, W, 7)`` raw known-ahead arrays (see :func:`raw_known_ahead`).
        seasonal: ``(N, W)`` expected volume as of the origin (see
            :func:`seasonal_volume_profile`).
        lookback: Lookback length [bars].
        horizon_seasonal: ``(N, H)`` expected volume of the H horizon bars as of the origin (``W = lookback
            + H - 1``); None gives a uniform static curve.

    Returns:
        ``(N, W, F)`` float64, channels in :func:`feature_names` order: ``F = N_OBSERVED + N_KNOWN_AHEAD``, plus
        the two market channels when ``observed`` has 7 columns (:func:`with_market`; taken as they are, clipped).
    """
    look = observed[:, :lookback, :]
    ret_std = np.maximum(look[..., _RET].std(axis=1), RET_STD_FLOOR)[:, None]
    m = look[..., _VOL].mean(axis=1)[:, None]
    delta = VOLUME_DELTA * m + _TINY
    range_mean = np.maximum(look[..., _RANGE].mean(axis=1), RANGE_FLOOR)[:, None]
    obs = np.stack(
        [
            observed[..., _RET] / ret_std,
            np.log((observed[..., _VOL] + delta) / (m + delta)),
            observed[..., _RANGE] / range_mean,
            observed[..., _CLOSE] / ret_std,
            observed[..., _GAP] / ret_std,
        ],
        axis=-1,
    )
    if observed.shape[-1] > N_OBSERVED:  # market channels: scale-free already
        obs = np.concatenate([obs, observed[..., N_OBSERVED:]], axis=-1)
    obs = np.clip(obs, -FEATURE_CLIP, FEATURE_CLIP)
    season = np.log((seasonal + delta) / (m + delta))[..., None]
    n, width = seasonal.shape
    if horizon_seasonal is None:
        horizon_seasonal = np.ones((n, width - lookback + 1))
    share = np.zeros((n, width, 1))
    share[:, lookback:, 0] = seasonal_share_logits(horizon_seasonal)
    return np.concatenate([obs, known, season, share], axis=-1)


# ----------------------------------------------------------------------------------------------
# Market (cross-asset) channels
# ----------------------------------------------------------------------------------------------
def feature_names(cross_asset: bool = False) -> tuple[str, ...]:
    """Channel names of ``X``: :data:`FEATURE_NAMES`, with the :data:`MARKET_FEATURES` after the own observed
    channels when ``cross_asset`` (the known-ahead channels stay the last ones)."""
    if not cross_asset:
        return FEATURE_NAMES
    return OBSERVED_FEATURES + MARKET_FEATURES + KNOWN_AHEAD_FEATURES


def n_observed_channels(n_features: int) -> int:
    """Observed channels of windows with ``n_features`` channels (every channel before the known-ahead ones)."""
    return int(n_features) - N_KNOWN_AHEAD


def symbol_surprise(observed: np.ndarray, level_bars: int = MARKET_LEVEL_BARS) -> np.ndarray:
    """One symbol's contribution to the market channels at each of its bars, ``(T, 3)`` float64.

    Columns: the volume surprise ``log((V_j + d) / (m_j + d))`` (``m_j`` = mean volume of the symbol's last
    ``level_bars`` bars strictly before ``j``, ``d = VOLUME_DELTA * m_j + 1e-12``), the normalised return
    ``r_j / s_j`` (``s_j`` = std of the returns of the same past bars, the symbol's first bar's 0 excluded, floored
    at :data:`RET_STD_FLOOR`), both clipped to ``+-FEATURE_CLIP``, and a 0/1 flag: the bar counts (at least 2
    past returns and ``m_j > 0``; the values are 0 where it does not). Each value reads bars ``<= j`` only, and the
    sums over past bars are added in one fixed order (bar ``j - 1`` first), so a bar's value does not depend on
    how much older history the array holds beyond ``level_bars`` bars.

    Args:
        observed: ``(T, >= 5)`` raw observed arrays of one symbol (:func:`raw_observed`), time order.
        level_bars: Past bars of the causal level ``L`` [bars], >= 2.

    Raises:
        ValueError: ``level_bars < 2`` or a non-2-D array.
    """
    if int(level_bars) < 2:
        raise ValueError(f"symbol_surprise: level_bars must be >= 2, got {level_bars}")
    if observed.ndim != 2 or observed.shape[1] < 5:
        raise ValueError(f"symbol_surprise: observed must be (T, >= 5), got {observed.shape}")
    volume, ret = observed[:, _VOL], observed[:, _RET]
    t = volume.shape[0]
    vol_sum, ret_sum, ret_sq = np.zeros(t), np.zeros(t), np.zeros(t)
    for k in range(1, min(int(level_bars), t) + 1):  # bar j - k, k = 1 first: one order for every history
        vol_sum[k:] += volume[:-k]
        past = ret[:-k].copy()
        past[:1] = 0.0  # the symbol's first bar has no return
        ret_sum[k:] += past
        ret_sq[k:] += past * past
    index = np.arange(t)
    n_vol = np.minimum(index, int(level_bars))
    n_ret = np.minimum(np.maximum(index - 1, 0), int(level_bars))
    level = vol_sum / np.maximum(n_vol, 1)
    counts = (n_ret >= 2) & (level > 0)
    delta = VOLUME_DELTA * level + _TINY
    surprise = np.log((volume + delta) / (level + delta))
    mean = ret_sum / np.maximum(n_ret, 1)
    std = np.sqrt(np.maximum(ret_sq / np.maximum(n_ret, 1) - mean * mean, 0.0))
    normalised = ret / np.maximum(std, RET_STD_FLOOR)
    out = np.stack([surprise, normalised, counts.astype(np.float64)], axis=1)
    out[:, :2] = np.clip(out[:, :2], -FEATURE_CLIP, FEATURE_CLIP)
    out[~counts, :2] = 0.0
    return out


@dataclass(frozen=True)
class MarketSeries:
    """Sums of the symbols' market contributions per bar open time (:func:`symbol_surprise`).

    Built by adding symbols one at a time (:meth:`add`, in sorted name order for bit-identical sums on every
    path); a symbol's market channels are then the leave-one-out average of the OTHER symbols (:meth:`channels`).

    Attributes:
        ns: ``(G,)`` sorted distinct bar open times [UTC ns].
        volume_sum: ``(G,)`` sum of the counted symbols' volume surprises.
        ret_sum: ``(G,)`` sum of the counted symbols' normalised returns.
        count: ``(G,)`` number of counted symbols.
        symbols: Names of the symbols added, in order.
    """

    ns: np.ndarray
    volume_sum: np.ndarray
    ret_sum: np.ndarray
    count: np.ndarray
    symbols: tuple[str, ...] = ()

    @classmethod
    def empty(cls) -> MarketSeries:
        """A series of no symbol."""
        return cls(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0, np.int64))

    @property
    def nbytes(self) -> int:
        """Memory held [bytes]."""
        return int(self.ns.nbytes + self.volume_sum.nbytes + self.ret_sum.nbytes + self.count.nbytes)

    def add(self, symbol: str, ns: np.ndarray, contribution: np.ndarray) -> MarketSeries:
        """The series with one more symbol.

        Args:
            symbol: Its name (each symbol once).
            ns: ``(T,)`` its bar open times [UTC ns], strictly increasing.
            contribution: ``(T, 3)`` its :func:`symbol_surprise`.

        Raises:
            ValueError: a symbol added twice, or shapes that do not match.
        """
        ns = np.asarray(ns, np.int64)
        if symbol in self.symbols:
            raise ValueError(f"MarketSeries: symbol '{symbol}' added twice")
        if contribution.shape != (ns.shape[0], 3):
            raise ValueError(f"MarketSeries: contribution must be ({ns.shape[0]}, 3), got {contribution.shape}")
        grid = np.union1d(self.ns, ns)
        old = np.searchsorted(grid, self.ns)
        volume_sum, ret_sum, count = np.zeros(grid.size), np.zeros(grid.size), np.zeros(grid.size, np.int64)
        volume_sum[old], ret_sum[old], count[old] = self.volume_sum, self.ret_sum, self.count
        pos = np.searchsorted(grid, ns)
        volume_sum[pos] += contribution[:, 0]
        ret_sum[pos] += contribution[:, 1]
        count[pos] += contribution[:, 2].astype(np.int64)
        return MarketSeries(grid, volume_sum, ret_sum, count, (*self.symbols, str(symbol)))

    def channels(self, symbol: str, ns: np.ndarray, contribution: np.ndarray) -> np.ndarray:
        """Market channels of one symbol at its bars, ``(T, 2)``: the mean volume surprise and normalised return
        of the OTHER counted symbols at the same bar open time (0 where none counts).

        Args:
            symbol: The symbol; when it was added to the series, its own contribution is taken out.
            ns: ``(T,)`` its bar open times [UTC ns].
            contribution: ``(T, 3)`` its :func:`symbol_surprise`.
        """
        ns = np.asarray(ns, np.int64)
        volume_sum, ret_sum, count = np.zeros(ns.shape), np.zeros(ns.shape), np.zeros(ns.shape, np.int64)
        if self.ns.size:
            pos = np.minimum(np.searchsorted(self.ns, ns), self.ns.size - 1)
            found = self.ns[pos] == ns
            volume_sum = np.where(found, self.volume_sum[pos], 0.0)
            ret_sum = np.where(found, self.ret_sum[pos], 0.0)
            count = np.where(found, self.count[pos], 0)
        if symbol in self.symbols:  # leave the symbol itself out
            volume_sum = volume_sum - contribution[:, 0]
            ret_sum = ret_sum - contribution[:, 1]
            count = count - contribution[:, 2].astype(np.int64)
        others = count
        scale = np.where(others > 0, 1.0 / np.maximum(others, 1), 0.0)
        return np.stack([volume_sum * scale, ret_sum * scale], axis=1)


def market_series(observed_by_symbol, level_bars: int = MARKET_LEVEL_BARS) -> MarketSeries:
    """The :class:`MarketSeries` of several symbols, added in sorted name order.

    Args:
        observed_by_symbol: Mapping symbol -> ``(ns (T,), observed (T, >= 5))`` (bar open times [UTC ns], raw
            observed arrays of :func:`raw_observed`).
        level_bars: Past bars of the causal level [bars].
    """
    series = MarketSeries.empty()
    for symbol in sorted(observed_by_symbol):
        ns, observed = observed_by_symbol[symbol]
        series = series.add(symbol, ns, symbol_surprise(observed, level_bars))
    return series


def with_market(symbol: str, ns: np.ndarray, observed: np.ndarray, series: MarketSeries,
                level_bars: int = MARKET_LEVEL_BARS) -> np.ndarray:
    """Raw observed arrays of one symbol with its two market columns appended, ``(T, 7)``.

    Args:
        symbol: The symbol.
        ns: ``(T,)`` its bar open times [UTC ns].
        observed: ``(T, 5)`` its raw observed arrays (:func:`raw_observed`).
        series: The market (:func:`market_series`), with or without the symbol.
        level_bars: Past bars of the causal level [bars] (as the series was built with).
    """
    channels = series.channels(symbol, ns, symbol_surprise(observed, level_bars))
    return np.concatenate([observed[:, :5], channels], axis=1)
