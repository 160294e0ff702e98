"""The live window: the model's input ``X`` of one order at its origin, as :func:`lems.data.windows.make_windows`
builds it, assembled online from the bars known so far (data stage: imports only :mod:`lems.data`).

:class:`OnlineWindow` holds the lookback part and the causal seasonal lookup from the history, appends the horizon's
bars as they close, and builds the window as known at the open of any horizon bar: the bars not yet closed are
zeros, the known-ahead features of the coming bar come from its open time, and the static volume curve from the
open times of the horizon's bars (docs/execution.md §3). :class:`lems.live.ExecutionSession` drives it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from lems.data.calendar import add_calendar, timestamps_ns
from lems.data.features import (
    MARKET_LEVEL_BARS,
    N_OBSERVED,
    MarketSeries,
    build_slot_index,
    lookback_mean_volume,
    market_series,
    raw_known_ahead,
    raw_observed,
    seasonal_volume_profile,
    symbol_surprise,
    with_market,
)
from lems.data.validation import validate_bars
from lems.data.windows import assemble_windows

__all__ = ["OnlineMarket", "OnlineWindow"]

_TAIL_COLUMNS = ("open", "high", "low", "close", "volume", "price")


@dataclass
class OnlineMarket:
    """The live market channels: each symbol's last closed bars, enough for its causal level.

    Built from the histories (:meth:`from_history`), then fed the bars that close together at each bar time
    (:meth:`row`). A value equals the one :func:`lems.data.windows.make_windows` computes with ``cross_asset``
    when every symbol's history holds at least ``level_bars + 2`` bars before the first bar fed (or all its bars).

    Attributes:
        symbol: The session's own symbol.
        level_bars: Past bars of each symbol's causal level [bars] (:data:`MARKET_LEVEL_BARS`).
        tails: Symbol -> ``(ns (n,) int64 [UTC ns], rows (n, 6) float64: open, high, low, close, volume, price)`` of
            its last ``n <= level_bars + 2`` closed bars, oldest first.
    """

    symbol: str
    level_bars: int
    tails: dict[str, tuple[np.ndarray, np.ndarray]]

    @classmethod
    def from_history(cls, own: pd.DataFrame, market: pd.DataFrame, lookback: int,
                     level_bars: int = MARKET_LEVEL_BARS) -> tuple[OnlineMarket, np.ndarray]:
        """The state after the histories, and the market columns of the own history's last ``lookback`` bars.

        Args:
            own: Canonical bars of the session's symbol (its history), time order.
            market: Canonical bars of the OTHER symbols (rows of ``own``'s symbol are ignored), none after the
                last bar of ``own``.
            lookback: Bars of the window's lookback.
            level_bars: Past bars of the causal level [bars].

        Returns:
            ``(state, (lookback, 2) market columns)``.

        Raises:
            ValueError: market bars after the history's last bar, or invalid bars
                (:func:`lems.data.validation.validate_bars`).
        """
        symbol = str(own["symbol"].iloc[0])
        if "symbol" not in market.columns:
            raise ValueError("market bars need a 'symbol' column (bars of the other symbols)")
        others = market[market["symbol"].astype(str) != symbol]
        others = validate_bars(others) if len(others) else others
        own_ns = timestamps_ns(own["timestamp"])
        if len(others) and timestamps_ns(others["timestamp"]).max() > own_ns[-1]:
            raise ValueError("market bars after the history's last bar: the market must end where the history ends")
        frames = {symbol: own.reset_index(drop=True)}
        frames.update({str(s): g.sort_values("timestamp").reset_index(drop=True) for s, g in others.groupby("symbol")})
        arrays = {s: (timestamps_ns(f["timestamp"]).astype(np.int64), f.loc[:, list(_TAIL_COLUMNS)].to_numpy(np.float64))
                  for s, f in frames.items()}
        series = market_series({s: (ns, raw_observed(frames[s])) for s, (ns, _) in arrays.items()}, level_bars)
        look = with_market(symbol, own_ns, raw_observed(frames[symbol]), series, level_bars)[-lookback:, N_OBSERVED:]
        keep = int(level_bars) + 2
        tails = {s: (ns[-keep:], rows[-keep:]) for s, (ns, rows) in arrays.items()}
        return cls(symbol, int(level_bars), tails), look

    def _contribution(self, tail: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        frame = pd.DataFrame(tail[1], columns=list(_TAIL_COLUMNS))
        return symbol_surprise(raw_observed(frame), self.level_bars)[-1:]

    def _appended(self, symbol: str, ns: int, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        old_ns, old_rows = self.tails.get(symbol, (np.zeros(0, np.int64), np.zeros((0, len(_TAIL_COLUMNS)))))
        if old_ns.size and ns <= old_ns[-1]:
            raise ValueError(f"market bar of '{symbol}' at {ns} is not after its last bar ({old_ns[-1]})")
        keep = self.level_bars + 2
        return np.r_[old_ns, ns][-keep:].astype(np.int64), np.vstack([old_rows, row])[-keep:]

    def row(self, ns: int, own_bar: dict[str, float], others: pd.DataFrame | None) -> np.ndarray:
        """Record the bars closed at ``ns`` and return the own symbol's market columns there, ``(2,)``.

        Args:
            ns: Open time of the bar that closed [UTC ns].
            own_bar: The own bar's ``open, high, low, close, volume, price``.
            others: The other symbols' bars of the same open time (``symbol``, ``timestamp``, ``open``, ``high``,
                ``low``, ``close``, ``volume``, optionally ``notional``: validated as
                :func:`lems.data.validation.validate_bars`; a symbol without a bar there is absent), or None /
                empty: no other symbol has a bar.

        Raises:
            ValueError: a bar of another open time, a symbol twice, a bar not after that symbol's last one.
        """
        rows = {self.symbol: np.array([float(own_bar[c]) for c in _TAIL_COLUMNS])}
        frame = pd.DataFrame(others) if others is not None else pd.DataFrame()
        if len(frame):
            if "symbol" not in frame.columns:
                raise ValueError("market bars need a 'symbol' column")
            frame = frame[frame["symbol"].astype(str) != self.symbol]
        if len(frame):
            frame = validate_bars(frame)  # clear ValueError on bad bars; the VWAP from notional / volume
            if np.any(timestamps_ns(frame["timestamp"]) != ns):
                raise ValueError("market bars must all open at the closed bar's open time")
            if frame["symbol"].duplicated().any():
                raise ValueError("market bars name a symbol twice")
            values = frame.loc[:, list(_TAIL_COLUMNS)].to_numpy(np.float64)
            for name, value in zip(frame["symbol"].astype(str), values):
                tail = self.tails.get(name)
                if value[4] == 0 and tail is not None and tail[1].shape[0]:
                    value[5] = tail[1][-1, 5]  # no trade: the last VWAP carried, as validate_bars does offline
                rows[name] = value
        new = {symbol: self._appended(symbol, int(ns), row) for symbol, row in rows.items()}  # may raise: no change
        series = MarketSeries.empty()
        for symbol in sorted(new):
            series = series.add(symbol, np.array([ns]), self._contribution(new[symbol]))
        out = series.channels(self.symbol, np.array([ns]), self._contribution(new[self.symbol]))[0]
        self.tails.update(new)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"symbol": self.symbol, "level_bars": self.level_bars,
                "tails": [[s, ns.tolist(), rows.tolist()] for s, (ns, rows) in self.tails.items()]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OnlineMarket:
        tails = {str(s): (np.asarray(ns, np.int64), np.asarray(rows, np.float64).reshape(-1, len(_TAIL_COLUMNS)))
                 for s, ns, rows in d["tails"]}
        return cls(str(d["symbol"]), int(d["level_bars"]), tails)


@dataclass
class OnlineWindow:
    """Raw per-position arrays of the order's window; rows are appended as bars become known.

    Attributes:
        lookback, horizon: sizes [bars]. bar_minutes: nominal bar length [minutes]. tz: calendar zone.
        symbol: the symbol. look_obs ``(lookback, 5)``, look_known ``(lookback, 7)``, look_seasonal
        ``(lookback,)``: the lookback part. seasonal_by_slot: slot -> expected volume as of the origin;
        fallback: the lookback mean volume ``m`` (slots without history). obs, known, seasonal: rows of the
        horizon bars (observed rows of closed bars; known rows of every bar decided on).
        last_ns, last_price, last_close: the last closed bar. session_open_ns: open of its session.
        market: the market channels' state (:class:`OnlineMarket`; ``look_obs`` and the observed rows then carry
        the two market columns), or None (the default features).
    """

    lookback: int
    horizon: int
    bar_minutes: float
    tz: str
    symbol: str
    look_obs: np.ndarray
    look_known: np.ndarray
    look_seasonal: np.ndarray
    seasonal_by_slot: dict[int, float]
    fallback: float
    last_ns: int
    last_price: float
    last_close: float
    session_open_ns: int
    obs: list = field(default_factory=list)
    known: list = field(default_factory=list)
    seasonal: list = field(default_factory=list)
    market: OnlineMarket | None = None

    @classmethod
    def from_calendar(cls, cal: pd.DataFrame, lookback: int, horizon: int, n_days_profile: int,
                      tz: str, market: pd.DataFrame | None = None) -> "OnlineWindow":
        """Lookback part and causal seasonal lookup from the calendar-enriched history of one symbol.

        Args:
            cal: Calendar-enriched history of the symbol.
            lookback, horizon: Window sizes [bars]. n_days_profile: seasonal profile length. tz: calendar zone.
            market: Canonical bars of the OTHER symbols up to the history's last bar (see
                :meth:`OnlineMarket.from_history`): adds the market channels; None: none.
        """
        n = len(cal)
        if n < lookback:
            raise ValueError(f"history has {n} bars, the lookback needs at least {lookback}")
        bar_minutes = float(cal.attrs["bar_minutes"])
        observed = raw_observed(cal)[n - lookback:]
        if not np.any(observed[:, 1] > 0):
            raise ValueError("no traded volume in the lookback of the history: the window cannot be normalised")
        fallback = float(lookback_mean_volume(observed[None], lookback)[0])
        slots = cal["slot"].to_numpy(np.int64)
        uniq, last_of = np.unique(slots[::-1], return_index=True)
        reps = n - 1 - last_of  # one bar of each slot
        index = build_slot_index(np.r_[slots, -1], np.r_[cal["volume"].to_numpy(np.float64), 0.0])
        values = seasonal_volume_profile(index, np.array([n]), reps[None, :], n_days_profile,
                                         fallback=np.array([fallback]))[0]
        by_slot = {int(s): float(v) for s, v in zip(uniq, values)}
        ns = timestamps_ns(cal["timestamp"])
        first = cal["first_bar_of_session"].to_numpy(bool)
        state = None
        if market is not None:
            state, look_market = OnlineMarket.from_history(cal, market, lookback)
            observed = np.concatenate([observed, look_market], axis=1)
        return cls(lookback=int(lookback), horizon=int(horizon), bar_minutes=bar_minutes, tz=tz,
                   symbol=str(cal["symbol"].iloc[0]), look_obs=observed,
                   look_known=raw_known_ahead(cal, bar_minutes)[n - lookback:],
                   look_seasonal=np.array([by_slot[int(s)] for s in slots[n - lookback:]]),
                   seasonal_by_slot=by_slot, fallback=fallback, last_ns=int(ns[-1]),
                   last_price=float(cal["price"].iloc[-1]), last_close=float(cal["close"].iloc[-1]),
                   session_open_ns=int(ns[np.flatnonzero(first)[-1]]) if first.any() else int(ns[0]),
                   market=state)

    def calendar_rows(self, ns: int, future: list[int]) -> tuple[np.ndarray, float, bool, list[float]]:
        """Calendar of the coming bar (opening at ``ns``) and of the later horizon bars (``future``).

        Runs :func:`~lems.data.calendar.add_calendar` on the last session's open, the last closed bar, the coming
        bar and the later ones (calendar features only depend on earlier bars of the same session).

        Returns:
            ``(known (7,), seasonal, first_bar_of_session, future_seasonal)``: the coming bar's raw known-ahead
            features, expected volumes as of the origin (its slot's, then the later bars').
        """
        stamps = ([self.session_open_ns] if self.session_open_ns != self.last_ns else []) + [self.last_ns, ns]
        frame = pd.DataFrame({"symbol": self.symbol,
                              "timestamp": pd.to_datetime(np.array(stamps + list(future), dtype=np.int64), utc=True)})
        cal = add_calendar(frame, tz=self.tz, bar_minutes=self.bar_minutes)
        row = len(stamps) - 1
        seasonal = [self.seasonal_by_slot.get(int(slot), self.fallback) for slot in cal["slot"].to_numpy()[row:]]
        known = raw_known_ahead(cal.iloc[:row + 1], self.bar_minutes)[-1]
        return known, float(seasonal[0]), bool(cal["first_bar_of_session"].iat[row]), seasonal[1:]

    def observed_row(self, bar: dict[str, float], market: pd.DataFrame | None = None) -> np.ndarray:
        """Raw observed features of a closed bar (raw_observed on the previous bar and this one), with its market
        columns when the window has a market (``market``: the other symbols' bars of the same open time, see
        :meth:`OnlineMarket.row`; ``bar`` then needs its ``ns``). Records the market bars: call once per bar."""
        frame = pd.DataFrame({c: [self.last_close, bar[c]] for c in ("open", "high", "low", "close", "volume")})
        frame["price"] = [self.last_price, bar["price"]]
        row = raw_observed(frame)[1]
        if self.market is None:
            if market is not None and len(market):
                raise ValueError("market bars given to a window without market channels (the model does not read "
                                 "them)")
            return row
        return np.r_[row, self.market.row(int(bar["ns"]), bar, market)]

    def x(self, step: int, next_known: np.ndarray, next_seasonal: float, future_seasonal: list[float]) -> np.ndarray:
        """``(W, F)`` float32 window at the open of horizon bar ``step``; unknown positions are zeros.

        Args:
            step: the decision's bar of the horizon (bars ``< step`` closed).
            next_known, next_seasonal: raw known-ahead features and expected volume of bar ``step``.
            future_seasonal: expected volumes of bars ``step + 1 .. H - 1`` (their slots as of the origin).
        """
        lb, horizon = self.lookback, self.horizon
        w = lb + horizon - 1
        closed = min(step, w - lb)
        obs = np.zeros((w, self.look_obs.shape[1]))
        known = np.zeros((w, self.look_known.shape[1]))
        seasonal = np.full(w, self.fallback)
        obs[:lb], known[:lb], seasonal[:lb] = self.look_obs, self.look_known, self.look_seasonal
        if closed:
            obs[lb:lb + closed] = np.asarray(self.obs[:closed])
            known[lb:lb + closed] = np.asarray(self.known[:closed])
            seasonal[lb:lb + closed] = self.seasonal[:closed]
        if lb + step < w:
            known[lb + step], seasonal[lb + step] = next_known, next_seasonal
        horizon_seasonal = np.asarray(list(self.seasonal[:step]) + [next_seasonal] + list(future_seasonal))
        if horizon_seasonal.shape != (horizon,):
            raise ValueError(f"expected volumes of {horizon} horizon bars needed, got {horizon_seasonal.shape}")
        return assemble_windows(obs[None], known[None], seasonal[None], lb, horizon_seasonal[None],
                                closed=np.array([step]))[0]

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("lookback", "horizon", "bar_minutes", "tz", "symbol", "fallback",
                                             "last_ns", "last_price", "last_close", "session_open_ns")}
        out["market"] = None if self.market is None else self.market.to_dict()
        out.update(look_obs=self.look_obs.tolist(), look_known=self.look_known.tolist(),
                   look_seasonal=self.look_seasonal.tolist(),
                   seasonal_by_slot=[[k, v] for k, v in self.seasonal_by_slot.items()],
                   obs=[np.asarray(r).tolist() for r in self.obs], known=[np.asarray(r).tolist() for r in self.known],
                   seasonal=list(self.seasonal))
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "OnlineWindow":
        d = dict(d)
        for k in ("look_obs", "look_known", "look_seasonal"):
            d[k] = np.asarray(d[k], dtype=np.float64)
        d["seasonal_by_slot"] = {int(k): float(v) for k, v in d["seasonal_by_slot"]}
        d["obs"] = [np.asarray(r, dtype=np.float64) for r in d["obs"]]
        d["known"] = [np.asarray(r, dtype=np.float64) for r in d["known"]]
        d["market"] = None if d.get("market") is None else OnlineMarket.from_dict(d["market"])
        return cls(**d)
