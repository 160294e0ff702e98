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
    N_OBSERVED,
    build_slot_index,
    lookback_mean_volume,
    raw_known_ahead,
    raw_observed,
    seasonal_volume_profile,
)
from lems.data.windows import assemble_windows

__all__ = ["OnlineWindow"]


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

    @classmethod
    def from_calendar(cls, cal: pd.DataFrame, lookback: int, horizon: int, n_days_profile: int,
                      tz: str) -> "OnlineWindow":
        """Lookback part and causal seasonal lookup from the calendar-enriched history of one symbol."""
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
        return cls(lookback=int(lookback), horizon=int(horizon), bar_minutes=bar_minutes, tz=tz,
                   symbol=str(cal["symbol"].iloc[0]), look_obs=observed,
                   look_known=raw_known_ahead(cal, bar_minutes)[n - lookback:],
                   look_seasonal=np.array([by_slot[int(s)] for s in slots[n - lookback:]]),
                   seasonal_by_slot=by_slot, fallback=fallback, last_ns=int(ns[-1]),
                   last_price=float(cal["price"].iloc[-1]), last_close=float(cal["close"].iloc[-1]),
                   session_open_ns=int(ns[np.flatnonzero(first)[-1]]) if first.any() else int(ns[0]))

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

    def observed_row(self, bar: dict[str, float]) -> np.ndarray:
        """Raw observed features of a closed bar (raw_observed on the previous bar and this one)."""
        frame = pd.DataFrame({c: [self.last_close, bar[c]] for c in ("open", "high", "low", "close", "volume")})
        frame["price"] = [self.last_price, bar["price"]]
        return raw_observed(frame)[1]

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
        obs = np.zeros((w, N_OBSERVED))
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
        return cls(**d)
