"""Live execution: a bar-by-bar :class:`ExecutionSession` that a trading system can drive.

A session executes ONE parent order (an :class:`~lems.execution.OrderSpec` plus its total size in the order's
units: shares/coins for a quantity target, quote currency for a notional target) on one symbol, with a trained
:class:`~lems.models.LargeExecutionModel` (or any :class:`~lems.baselines.Policy`):

.. code-block:: python

    session = ExecutionSession(model, order, size=50_000, history=bars_before_the_order)
    while not session.ended:
        if not session.complete:
            child = session.next_allocation()          # the child order for the coming bar
            ...                                         # send child.units to the market
        session.on_bar_close(bar, filled_units=done)   # the realised bar and the actual fill
    result = session.outcome()                         # lems.execution.execution_outcome

Information (EXECUTION.md §3): the decision for horizon bar ``s`` builds the model's window ``X`` exactly as
:func:`lems.data.windows.make_windows` would for the order's origin (same features, same per-window
normalisation from the lookback only, same causal seasonal profile), with the bars not yet closed left as
zeros, and the known-ahead features of the coming bar from its open time (and the static volume curve from
the open times of the horizon's bars: inferred on 24/7 markets, ``horizon_times`` from the exchange calendar
on session markets). The decoder's own state
(remaining fraction, own achieved price) is fed the ACTUAL fills, through the decoder's per-step API
(:meth:`lems.layers.decoder.AllocationDecoder.step_share`), so a session replayed with exact fills gives the
model's batch allocations, and a session whose fills differ re-plans on what really remains.

Limits (EXECUTION.md §2): every child order goes through :func:`lems.execution.allocate_step` with the actual
remaining fraction and bars left (forced catch-up when behind), and is never above ``max_rate`` nor above the
remaining. Fills are valued at the bar VWAP (EXECUTION.md §1).
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import keras
import numpy as np
import pandas as pd

from lems.batching import bucket_size
from lems.data.calendar import add_calendar, timestamps_ns, to_utc_ns
from lems.data.features import (
    N_KNOWN_AHEAD,
    N_OBSERVED,
    build_slot_index,
    lookback_mean_volume,
    raw_known_ahead,
    raw_observed,
    seasonal_volume_profile,
)
from lems.data.validation import BAR_COLUMNS, validate_bars
from lems.data.windows import WindowSet, assemble_windows
from lems.execution import (
    TARGETS,
    WINDOW_TOL,
    ARRIVAL_PRICES,
    ExecutionOutcome,
    OrderSpec,
    check_participation_cap,
    implementation_shortfall,
    participation_limit,
    achieved_price,
    allocate_step,
    benchmark_price,
    execution_outcome,
)

__all__ = ["ChildOrder", "ExecutionSession", "SessionError", "model_shares", "schedule"]

#: Remaining fraction of the order under which the order counts as complete.
DONE_TOL = 1e-9
#: A child order leaving less than this fraction of the order behind takes it all (no dust left).
DUST_TOL = WINDOW_TOL
#: Fill excess over the child order tolerated as float noise (fraction of the order); clipped to the child.
FILL_TOL = 1e-9
#: Lookback [bars] of a policy-driven session when none is given.
DEFAULT_POLICY_LOOKBACK = 120
_FORMAT_VERSION = 2
#: Saved formats :meth:`ExecutionSession.from_json` reads (version 1: no fill prices, cap or arrival price).
_READABLE_VERSIONS = (1, 2)
_NS_PER_MINUTE = 60_000_000_000


class SessionError(ValueError):
    """A call the session must refuse (bad bar, bad fill, wrong order of calls); its state is unchanged."""


class ChildOrder(NamedTuple):
    """The child order for the coming bar.

    Attributes:
        timestamp: open time of the bar (UTC).
        step: bar of the horizon, 0-based (bars since the order's first bar).
        fraction: fraction of the parent order to trade in the bar.
        units: ``fraction * size`` (shares/coins for a quantity target, currency for a notional target).
        remaining: fraction of the order still to trade before this child order.
        bars_left: bars left in the horizon, this one included.
    """

    timestamp: pd.Timestamp
    step: int
    fraction: float
    units: float
    remaining: float
    bars_left: int


# --------------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------------
def _to_ns(value: Any, what: str) -> int:
    """An aware timestamp as UTC nanoseconds (:func:`lems.data.calendar.to_utc_ns`); errors as SessionError."""
    try:
        return to_utc_ns(value, naive_is_utc=False, what=what)
    except ValueError as exc:
        raise SessionError(str(exc)) from exc


def _ts(ns: int) -> pd.Timestamp:
    return pd.Timestamp(int(ns), unit="ns", tz="UTC")


def _finite(value: Any, what: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise SessionError(f"{what} must be a number, got {value!r}") from exc
    if not math.isfinite(out):
        raise SessionError(f"{what} must be finite, got {value!r}")
    return out


def _is_model(obj: Any) -> bool:
    return all(hasattr(obj, a) for a in ("encode", "decoder", "lookback", "n_ahead"))


def _unwrap(model: Any) -> tuple[Any, bool]:
    """``(driver, is_model)``: a LargeExecutionModel (also inside a ModelPolicy) or a Policy."""
    if _is_model(model):
        return model, True
    inner = getattr(model, "model", None)
    if inner is not None and _is_model(inner):
        return inner, True
    if callable(getattr(model, "allocate", None)):
        return model, False
    raise ValueError("model must be a LargeExecutionModel or a Policy (an object with an allocate() method)")


# --------------------------------------------------------------------------------------------------------
# The compiled per-step forward
# --------------------------------------------------------------------------------------------------------
class _LiveStep(keras.Model):
    """Proposal of one decoder step for every order of the seed layout, from an explicit live state.

    Inputs ``[X (B, W, F), step (B, 1), fills (B, H - 1)]``: the window as known at the open of bar ``step``,
    and the actual fills (fractions of the order) of the closed horizon bars (ignored from ``step`` on).
    Output ``(B, M, C)``: the share of what remains each order would trade now, before the limits
    (:meth:`lems.models.LargeExecutionModel.next_share`: the decoder's own step and replay). The wrapper only
    holds the compiled function, so that the model's saving is unaffected.
    """

    def __init__(self, lem: Any, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lem = lem

    def call(self, inputs):
        return self.lem.next_share(inputs)


#: Compiled live steps of the most recently used models (id -> (model, step)); bounded, least recent evicted.
_LIVE_STEPS: "OrderedDict[int, tuple[Any, _LiveStep]]" = OrderedDict()
_LIVE_CACHE_SIZE = 4


def _live_step(model: Any) -> _LiveStep:
    """The compiled live step of ``model``: built on first use, cached for the last few models (sessions of the
    same model share one compiled function; nothing is attached to the model, so its saving is unaffected)."""
    hit = _LIVE_STEPS.get(id(model))
    if hit is not None and hit[0] is model:
        _LIVE_STEPS.move_to_end(id(model))
        return hit[1]
    if not model.built:
        n_features = N_OBSERVED + int(model.n_known_features)
        model.build([(None, model.window_length, n_features), (None, 1), (None, 1)])
    step = _LiveStep(model, name=f"{model.name}_live_step")
    _LIVE_STEPS[id(model)] = (model, step)
    while len(_LIVE_STEPS) > _LIVE_CACHE_SIZE:
        _LIVE_STEPS.popitem(last=False)
    return step


def model_shares(model: Any, x: np.ndarray, step: np.ndarray, fills: np.ndarray, *, pad_to: int = 1) -> np.ndarray:
    """One compiled forward of the live step for a batch of sessions.

    Args:
        model: a LargeExecutionModel.
        x: ``(B, W, F)`` windows as known at each session's decision.
        step: ``(B,)`` the decision's bar of the horizon.
        fills: ``(B, H - 1)`` actual fills (fractions of the order) of the closed bars, zeros beyond.
        pad_to: pad the batch to at least this size (one compiled shape for a stream of varying batches); the
            batch is padded to a power of two in any case.

    Returns:
        ``(B, M, C)`` float64 shares of what remains, per order of the seed layout (M = order type x target,
        C = min-duration column).
    """
    n = x.shape[0]
    size = bucket_size(max(n, int(pad_to)))
    pad = size - n
    xs = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)]) if pad else x
    steps = np.r_[step, np.zeros(pad)].reshape(-1, 1).astype(np.float32)
    fl = np.concatenate([fills, np.zeros((pad, fills.shape[1]))]) if pad else fills
    out = _live_step(model).predict_on_batch([xs.astype(np.float32), steps, fl.astype(np.float32)])
    out = np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float64)[:n]
    if not np.all(np.isfinite(out)):
        raise ValueError("model produced a non-finite proposal (check the model's weights and the bars)")
    return out


# --------------------------------------------------------------------------------------------------------
# Window builder: X at the origin, as make_windows builds it, from bars known so far
# --------------------------------------------------------------------------------------------------------
@dataclass
class _Window:
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
                      tz: str) -> "_Window":
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
    def from_dict(cls, d: dict[str, Any]) -> "_Window":
        d = dict(d)
        for k in ("look_obs", "look_known", "look_seasonal"):
            d[k] = np.asarray(d[k], dtype=np.float64)
        d["seasonal_by_slot"] = {int(k): float(v) for k, v in d["seasonal_by_slot"]}
        d["obs"] = [np.asarray(r, dtype=np.float64) for r in d["obs"]]
        d["known"] = [np.asarray(r, dtype=np.float64) for r in d["known"]]
        return cls(**d)


# --------------------------------------------------------------------------------------------------------
# Policies (baselines): the policy's plan, re-scaled on what actually remains
# --------------------------------------------------------------------------------------------------------
class _PolicyPlan:
    """Runs a :class:`~lems.baselines.Policy` on a one-window :class:`WindowSet` at the order's origin.

    Horizon bars not yet closed carry the last known price and zero volume (a causal policy never reads them);
    their open times are the announced/inferred ones (the static volume curve needs their slots).
    """

    def __init__(self, policy: Any, history: pd.DataFrame, window: _Window, order: OrderSpec) -> None:
        self.policy, self.history, self.window, self.order = policy, history, window, order
        self._times: list[int] | None = None
        self._bars: pd.DataFrame | None = None

    def _calendar(self, times: list[int]) -> pd.DataFrame:
        """Calendar-enriched history + placeholder horizon bars at ``times`` (rebuilt when times change)."""
        if self._times != times:
            price = float(self.history["price"].iloc[-1])
            close = float(self.history["close"].iloc[-1])
            ahead = pd.DataFrame({"symbol": self.window.symbol, "timestamp": pd.to_datetime(np.array(times), utc=True),
                                  "open": close, "high": close, "low": close, "close": close, "volume": 0.0,
                                  "notional": 0.0, "notional_estimated": False, "price": price, "trades": np.nan})
            ext = pd.concat([self.history.loc[:, list(BAR_COLUMNS)], ahead], ignore_index=True)
            self._bars = add_calendar(ext, tz=self.window.tz, bar_minutes=self.window.bar_minutes)
            self._times = list(times)
        return self._bars

    def _windows(self, x: np.ndarray, times: list[int], prices: list[float], volumes: list[float]) -> WindowSet:
        """The one-window set at the origin: closed horizon bars' VWAPs and volumes, placeholders after."""
        h, ref = self.order.horizon, float(self.history["price"].iloc[-1])
        p, v = np.full((1, h), ref), np.zeros((1, h))
        p[0, :len(prices)], v[0, :len(volumes)] = prices, volumes
        y = np.stack([np.zeros((1, h)), np.ones((1, h))], axis=-1).astype(np.float32)
        utc = lambda t: pd.DatetimeIndex(pd.to_datetime(np.array([t], dtype=np.int64), utc=True))  # noqa: E731
        return WindowSet(X=x[None], y=y, origin=utc(times[0]), asset=np.array([self.window.symbol], dtype=object),
                         origin_index=np.array([len(self.history)]), reference_price=np.array([ref]), prices=p,
                         volumes=v, horizon_end=utc(times[-1]), lookback=self.window.lookback, n_ahead=h,
                         bars={self.window.symbol: self._calendar(times)})

    def plan(self, x: np.ndarray, times: list[int], prices: list[float], volumes: list[float]) -> np.ndarray:
        """The policy's allocations ``(H,)`` for this order, given the bars closed so far."""
        h, o = self.order.horizon, self.order
        out = np.asarray(self.policy.allocate(self._windows(x, times, prices, volumes), o.min_rate, o.max_rate),
                         dtype=np.float64)
        if out.shape != (1, h, h + 1, 4, 2) or not np.all(np.isfinite(out)):
            raise ValueError(f"policy returned allocations of shape {out.shape} (expected (1, {h}, {h + 1}, 4, 2), "
                             "finite)")
        return out[0, :, o.seed_column, o.order_type_index, o.target_index]


def _policy_share(plan: np.ndarray, step: int) -> float:
    """The plan's share of what remains at ``step`` (1 once the plan thinks it is done)."""
    left = 1.0 - float(plan[:step].sum())
    return 1.0 if left <= DONE_TOL else float(np.clip(plan[step] / left, 0.0, 1.0))


# --------------------------------------------------------------------------------------------------------
# The session
# --------------------------------------------------------------------------------------------------------
class _Request(NamedTuple):
    """What a decision needs (built before the forward pass)."""

    ns: int
    step: int
    known: np.ndarray
    seasonal: float
    first: bool
    x: np.ndarray
    fills: np.ndarray
    times: list[int]


class ExecutionSession:
    """Executes one parent order bar by bar with a trained model (or a baseline policy).

    Args:
        model: a trained :class:`~lems.models.LargeExecutionModel` (also accepted inside a
            :class:`~lems.baselines.ModelPolicy`), or any :class:`~lems.baselines.Policy`.
        order: the order; its horizon must equal the model's ``n_ahead``.
        size: total size of the order in its units: shares/coins for a quantity target, quote currency for a
            notional target (> 0).
        history: canonical bars (see :func:`lems.data.validation.validate_bars`) of ONE symbol, up to the bar
            before the order's first bar: at least ``lookback`` bars, plus the days the seasonal volume profile
            averages (``n_days_profile`` occurrences of each time-of-day slot).
        tz: local time zone of the calendar features (``"America/New_York"`` for US equities).
        bar_minutes: nominal bar length [minutes]; inferred from the history when None.
        n_days_profile: past occurrences per slot in the seasonal volume profile (as in make_windows).
        lookback: bars of history in the window (a model's own lookback; default
            :data:`DEFAULT_POLICY_LOOKBACK` for a policy).
        calendar: "24/7" (bar open times follow the bar grid), "session" (exchange sessions: ``horizon_times``
            required) or "auto" (24/7 when the history has weekend bars in ``tz``).
        horizon_times: open times of the H bars of the order, from the exchange calendar (known in advance). The
            window's known-ahead features include the static volume curve over the whole horizon, so every
            horizon bar's time of day is needed: required on a session calendar; on 24/7 inferred as the bar
            grid after the history. ``next_allocation(bar_open_time=...)`` may still override the coming bar's.
        max_participation: cap on each child order as a fraction of the bar's market volume, in ``(0, 1]``
            (None: no cap). The bar's volume is not known at the decision, so the cap applies to a causal forecast
            of it: the expected volume of the bar's time-of-day slot (the seasonal profile of the history, as the
            model's window reads it). The re-plan on what remains carries any shortfall to later bars; the
            cap takes precedence over ``min_rate``; what is left at the end is reported (``status()['remaining']``).
        arrival: the arrival price of the implementation shortfall (:meth:`shortfall`): "close" (the close of the
            last bar of the history, the last price known at the first decision) or "reference" (its VWAP).

    Raises:
        ValueError: bad history, size, order, cap or model/order mismatch.
    """

    def __init__(self, model: Any, order: OrderSpec, size: float, history: pd.DataFrame, *, tz: str = "UTC",
                 bar_minutes: float | None = None, n_days_profile: int = 20, lookback: int | None = None,
                 calendar: str = "auto", horizon_times=None, max_participation: float | None = None,
                 arrival: str = "close") -> None:
        canon = validate_bars(history)
        if canon["symbol"].nunique() != 1:
            raise ValueError(f"history must hold ONE symbol, got {sorted(canon['symbol'].unique())[:5]}")
        if len(canon) < 2 and bar_minutes is None:
            raise ValueError("history needs at least 2 bars to infer the bar length; pass bar_minutes")
        cal = add_calendar(canon, tz=tz, bar_minutes=bar_minutes)
        self._setup(model, order, size, cal, tz=tz, n_days_profile=n_days_profile, lookback=lookback,
                    calendar=calendar, horizon_times=horizon_times, max_participation=max_participation,
                    arrival=arrival)

    # ---------------------------------------------------------------- construction
    def _setup(self, model: Any, order: OrderSpec, size: float, cal: pd.DataFrame, *, tz: str, n_days_profile: int,
               lookback: int | None, calendar: str, horizon_times, max_participation: float | None = None,
               arrival: str = "close") -> None:
        driver, is_model = _unwrap(model)
        cap = check_participation_cap(max_participation)
        if arrival not in ARRIVAL_PRICES:
            raise ValueError(f"arrival must be one of {ARRIVAL_PRICES}, got {arrival!r}")
        if not isinstance(order, OrderSpec):
            raise ValueError(f"order must be an lems.execution.OrderSpec, got {type(order).__name__}")
        size = float(size)
        if not (math.isfinite(size) and size > 0):
            raise ValueError(f"size must be a finite number > 0 (units of the order), got {size!r}")
        if int(n_days_profile) < 1:
            raise ValueError(f"n_days_profile must be >= 1, got {n_days_profile}")
        lookback = self._check_driver(driver, is_model, order, lookback)
        if calendar not in ("auto", "24/7", "session"):
            raise ValueError(f"calendar must be 'auto', '24/7' or 'session', got {calendar!r}")
        self._driver, self._is_model, self.order, self.size = driver, is_model, order, size
        self.n_days_profile, self._tz = int(n_days_profile), str(tz)
        self._window = _Window.from_calendar(cal, lookback, order.horizon, int(n_days_profile), tz)
        self._max_participation = cap
        self._arrival_price = self._window.last_close if arrival == "close" else self._window.last_price
        self._is_24_7 = bool((cal["dow"] >= 5).any()) if calendar == "auto" else calendar == "24/7"
        self._times_given = horizon_times is not None
        self._horizon_ns = self._check_times(horizon_times)
        self._history = None if is_model else cal.loc[:, list(BAR_COLUMNS)].reset_index(drop=True)
        self._fills: list[float] = []
        self._prices: list[float] = []
        self._fill_prices: list[float] = []
        self._volumes: list[float] = []
        self._stamps: list[int] = []
        self._remaining = 1.0
        self._pending: dict[str, Any] | None = None
        self._plan_driver = None

    @staticmethod
    def _check_driver(driver: Any, is_model: bool, order: OrderSpec, lookback: int | None) -> int:
        if not is_model:
            lb = DEFAULT_POLICY_LOOKBACK if lookback is None else int(lookback)
            if lb < 2:
                raise ValueError(f"lookback must be >= 2 bars, got {lookback}")
            return lb
        if order.horizon != int(driver.n_ahead):
            raise ValueError(f"order horizon ({order.horizon} bars) must equal the model's n_ahead ({driver.n_ahead})")
        if lookback is not None and int(lookback) != int(driver.lookback):
            raise ValueError(f"lookback {lookback} differs from the model's lookback ({driver.lookback})")
        if int(driver.n_known_features) != N_KNOWN_AHEAD:
            raise ValueError(f"the model reads {driver.n_known_features} known-ahead channels; the live window "
                             f"builds the pipeline's {N_KNOWN_AHEAD}")
        return int(driver.lookback)

    @property
    def _dt(self) -> int:
        """Nominal bar length [ns]."""
        return int(round(self._window.bar_minutes * _NS_PER_MINUTE))

    def _check_times(self, horizon_times) -> list[int]:
        """Open times [UTC ns] of the H horizon bars: given, or the bar grid after the history (24/7)."""
        if horizon_times is None:
            if not self._is_24_7:
                raise ValueError("horizon_times (open times of the order's H bars, from the exchange calendar) are "
                                 "required on a session calendar: the window's static volume curve needs the slot of "
                                 "every horizon bar (pass calendar='24/7' for round-the-clock markets)")
            return [self._window.last_ns + k * self._dt for k in range(1, self.order.horizon + 1)]
        try:
            ns = [_to_ns(t, "horizon_times") for t in horizon_times]
        except SessionError as exc:
            raise ValueError(str(exc)) from exc
        if len(ns) != self.order.horizon:
            raise ValueError(f"horizon_times must hold {self.order.horizon} bar open times, got {len(ns)}")
        if ns[0] <= self._window.last_ns or np.any(np.diff(ns) <= 0):
            raise ValueError("horizon_times must be strictly increasing and after the last bar of the history")
        return ns

    @property
    def _plan(self) -> _PolicyPlan:
        if self._plan_driver is None:
            self._plan_driver = _PolicyPlan(self._driver, self._history, self._window, self.order)
        return self._plan_driver

    # ---------------------------------------------------------------- state
    @property
    def symbol(self) -> str:
        """The order's symbol."""
        return self._window.symbol

    @property
    def step(self) -> int:
        """Horizon bars closed so far (the next decision is for bar ``step``)."""
        return len(self._fills)

    @property
    def bars_left(self) -> int:
        """Horizon bars not closed yet [bars]."""
        return self.order.horizon - self.step

    @property
    def remaining(self) -> float:
        """Fraction of the order still to trade."""
        return self._remaining

    @property
    def complete(self) -> bool:
        """Whether the whole order is filled."""
        return self._remaining <= DONE_TOL

    @property
    def ended(self) -> bool:
        """Whether the session is over: the horizon ended, or the order is complete and its benchmark window
        (at least ``min_duration`` bars) has closed."""
        return self.step >= self.order.horizon or (self.complete and self.step >= self.order.min_duration)

    @property
    def next_bar_time(self) -> pd.Timestamp | None:
        """Open time of the bar of the pending child order (None when none is pending)."""
        return None if self._pending is None else _ts(self._pending["ns"])

    # ---------------------------------------------------------------- decisions
    def next_allocation(self, bar_open_time=None) -> ChildOrder:
        """The child order for the coming bar, from what is known now.

        Args:
            bar_open_time: open time of the coming bar (aware timestamp). When None: the horizon's time for
                this bar (``horizon_times``, or on a 24/7 calendar the last closed bar + the bar length). A
                different time (e.g. a missing bar) replaces it; later horizon times are shifted after it
                (inferred ones) or kept when still later (given ones).

        Returns:
            A :class:`ChildOrder`. Calling again for the same bar returns the same child order; a different time
            replaces the pending one.

        Raises:
            SessionError: the order is complete or the session ended, or a bad / missing open time.
        """
        request = self._request(bar_open_time)
        if self._pending is not None and self._pending["ns"] == request.ns:
            return self._child_of(self._pending)
        if self._is_model:
            share = model_shares(self._driver, request.x[None], np.array([request.step]), request.fills[None])
            share = float(share[0, self._model_index, self.order.seed_column])
        else:
            share = _policy_share(self._plan.plan(request.x, request.times, self._prices, self._volumes),
                                  request.step)
        return self._decide(request, share)

    @property
    def _model_index(self) -> int:
        return self.order.order_type_index * len(TARGETS) + self.order.target_index

    def _request(self, bar_open_time) -> _Request:
        if self.ended or self.complete:
            raise SessionError("the order is complete or the session has ended: no further child order")
        step, window = self.step, self._window
        if bar_open_time is None:
            ns = self._horizon_ns[step]
            if ns <= window.last_ns:
                raise SessionError(f"the horizon's time for bar {step} ({_ts(ns)}) is not after the last closed bar; "
                                   "pass bar_open_time")
        else:
            ns = _to_ns(bar_open_time, "bar_open_time")
            if ns <= window.last_ns:
                raise SessionError(f"bar_open_time {_ts(ns)} is not after the last closed bar {_ts(window.last_ns)}")
        times = self._times_with(step, ns)
        if self._pending is not None and self._pending["ns"] == ns:
            return _Request(ns, step, np.asarray(self._pending["known"]), self._pending["seasonal"],
                            self._pending["first"], np.zeros(0, np.float32), np.zeros(0), times)
        known, seasonal, first, future = window.calendar_rows(ns, times[step + 1:])
        fills = np.zeros(self.order.horizon - 1)
        fills[:step] = self._fills[:self.order.horizon - 1]
        return _Request(ns, step, known, seasonal, first, window.x(step, known, seasonal, future), fills, times)

    def _times_with(self, step: int, ns: int) -> list[int]:
        """Horizon open times with bar ``step`` opening at ``ns``: closed bars' actual times, then ``ns``, then
        the later times (inferred ones shifted onto the grid after ``ns``; given ones kept while later)."""
        times = list(self._stamps) + [ns]
        for t in self._horizon_ns[step + 1:]:
            grid = times[-1] + self._dt
            times.append(t if self._times_given and t > times[-1] else grid)
        return times

    def _decide(self, request: _Request, share: float) -> ChildOrder:
        """Map the proposed share into the limits (exact, with the actual remaining) and record the child."""
        order, remaining = self.order, self._remaining
        bars_left = order.horizon - request.step
        a = float(allocate_step(share * remaining, remaining, float(bars_left), order.min_rate, order.max_rate))
        high = min(order.max_rate, remaining)
        a = min(max(a, 0.0), high)  # behind beyond recovery: never above max_rate nor the remaining
        if remaining - a <= DUST_TOL and remaining <= order.max_rate:
            a = remaining
        a = min(a, self._participation_room(request.seasonal))
        self._horizon_ns = request.times
        self._pending = {"ns": request.ns, "step": request.step, "known": np.asarray(request.known).tolist(),
                         "seasonal": request.seasonal, "first": request.first, "fraction": a,
                         "remaining": remaining, "bars_left": bars_left}
        return self._child_of(self._pending)

    def _participation_room(self, forecast_volume: float) -> float:
        """Largest fraction of the order the coming bar may take under the participation cap (``inf`` without a
        cap), against the causal forecast of the bar's volume [units] (a notional order is converted at the last
        closed bar's VWAP)."""
        if self._max_participation is None:
            return math.inf
        notional = int(self.order.target == "notional")
        return float(participation_limit(np.float64(forecast_volume), self.size, self._max_participation,
                                         prices=np.float64(self._window.last_price), notional=notional))

    def _child_of(self, pending: dict[str, Any]) -> ChildOrder:
        return ChildOrder(_ts(pending["ns"]), pending["step"], pending["fraction"], pending["fraction"] * self.size,
                          pending["remaining"], pending["bars_left"])

    # ---------------------------------------------------------------- bars and fills
    def on_bar_close(self, bar: Mapping[str, Any] | pd.Series, filled: float | None = None, *,
                     filled_units: float | None = None, fill_price: float | None = None) -> dict[str, Any]:
        """Record the closed bar and the actual fill of its child order; re-plans on what remains.

        Args:
            bar: the realised bar: ``timestamp`` (open time, aware), ``open``, ``high``, ``low``, ``close``,
                ``volume``, ``symbol`` and ``notional`` (estimated as ``volume * (high + low + close) / 3`` when
                absent, as :func:`~lems.data.validation.validate_bars` does).
            filled: the fill as a fraction of the order (0 .. the child order).
            filled_units: the fill in the order's units (instead of ``filled``). With neither, the child order
                filled exactly.
            fill_price: the average price of the fill as executed (costs included); default: the bar's VWAP
                (EXECUTION.md §1). It enters the achieved price, the outcome and the shortfall.

        Returns:
            :meth:`status` after the bar.

        Raises:
            SessionError: the session ended; no child order pending (call :meth:`next_allocation` first, except
                after completion while the benchmark window is still open); a bar out of order, duplicated, stale
                (not the bar of the pending child order) or of another symbol; NaN / non-positive prices,
                negative volume or notional; a fill that is NaN, negative, or above the child order. The session
                is unchanged after an error.
        """
        if self.ended:
            raise SessionError("the session has ended: no further bar is expected")
        pending = self._pending
        if pending is None and not self.complete:
            raise SessionError("no child order is pending: call next_allocation() before on_bar_close()")
        parsed = self._parse_bar(bar, pending)
        fill = self._parse_fill(filled, filled_units, pending)
        parsed["fill_price"] = parsed["price"] if fill_price is None else _finite(fill_price, "fill_price")
        if parsed["fill_price"] <= 0:
            raise SessionError(f"fill_price must be > 0, got {fill_price!r}")
        row = self._window.observed_row(parsed)
        self._commit(parsed, fill, row, pending)
        return self.status()

    def _parse_bar(self, bar: Any, pending: dict[str, Any] | None) -> dict[str, float]:
        if isinstance(bar, pd.Series):
            bar = bar.to_dict()
        if not isinstance(bar, Mapping):
            raise SessionError(f"bar must be a dict or a pandas Series, got {type(bar).__name__}")
        missing = [c for c in ("symbol", "timestamp", "open", "high", "low", "close", "volume") if c not in bar]
        if missing:
            raise SessionError(f"bar lacks field(s) {missing}")
        if str(bar["symbol"]).strip() != self.symbol:
            raise SessionError(f"bar of symbol {bar['symbol']!r}, the session trades {self.symbol!r}")
        ns = _to_ns(bar["timestamp"], "bar timestamp")
        last = self._window.last_ns
        if ns < last:
            raise SessionError(f"bar out of order: {_ts(ns)} is before the last closed bar {_ts(last)}")
        if ns == last:
            raise SessionError(f"duplicated bar: {_ts(ns)} was already recorded")
        if pending is not None and ns != pending["ns"]:
            raise SessionError(f"stale or unexpected bar {_ts(ns)}: the pending child order is for the bar opening "
                               f"at {_ts(pending['ns'])} (call next_allocation(bar_open_time=...) for that bar)")
        out = {c: _finite(bar[c], f"bar field '{c}'") for c in ("open", "high", "low", "close", "volume")}
        for c in ("open", "high", "low", "close"):
            if out[c] <= 0:
                raise SessionError(f"non-positive price in bar field '{c}': {out[c]}")
        if out["high"] < out["low"]:
            raise SessionError(f"bar high {out['high']} < low {out['low']}")
        slack = 1e-9 * out["high"]
        for c in ("open", "close"):
            if not out["low"] - slack <= out[c] <= out["high"] + slack:
                raise SessionError(f"bar {c} {out[c]} outside [low, high] = [{out['low']}, {out['high']}]")
        if out["volume"] < 0:
            raise SessionError(f"negative volume in bar: {out['volume']}")
        typical = (out["high"] + out["low"] + out["close"]) / 3.0
        notional = bar.get("notional")
        notional = out["volume"] * typical if notional is None else _finite(notional, "bar field 'notional'")
        if notional < 0:
            raise SessionError(f"negative notional in bar: {notional}")
        if (out["volume"] == 0) != (notional == 0):
            raise SessionError(f"notional {notional} inconsistent with volume {out['volume']}")
        out["notional"], out["ns"] = notional, ns
        out["price"] = notional / out["volume"] if out["volume"] > 0 else self._window.last_price
        return out

    def _parse_fill(self, filled: Any, filled_units: Any, pending: dict[str, Any] | None) -> float:
        if filled is not None and filled_units is not None:
            raise SessionError("give the fill as a fraction (filled) or in units (filled_units), not both")
        if filled_units is not None:
            fill = _finite(filled_units, "filled_units") / self.size
        elif filled is not None:
            fill = _finite(filled, "filled")
        else:
            return 0.0 if pending is None else pending["fraction"]
        if fill < 0:
            raise SessionError(f"negative fill {fill:.6g} (fraction of the order)")
        child = 0.0 if pending is None else pending["fraction"]
        if fill > child + FILL_TOL:
            raise SessionError(f"fill {fill:.9g} exceeds the child order {child:.9g} (fraction of the order)")
        if fill > self._remaining + FILL_TOL:
            raise SessionError(f"fill {fill:.9g} exceeds the remaining {self._remaining:.9g}")
        return child if child - fill <= 1e-12 else fill

    def _commit(self, bar: dict[str, float], fill: float, row: np.ndarray, pending: dict[str, Any] | None) -> None:
        window = self._window
        window.obs.append(row)
        if pending is not None:
            window.known.append(np.asarray(pending["known"], dtype=np.float64))
            window.seasonal.append(float(pending["seasonal"]))
            if pending["first"]:
                window.session_open_ns = bar["ns"]
        window.last_ns, window.last_price, window.last_close = bar["ns"], bar["price"], bar["close"]
        self._fills.append(fill)
        self._prices.append(bar["price"])
        self._fill_prices.append(bar["fill_price"])
        self._volumes.append(bar["volume"])
        self._stamps.append(bar["ns"])
        self._remaining = 0.0 if self._remaining - fill <= DONE_TOL else self._remaining - fill
        self._pending = None

    # ---------------------------------------------------------------- reports
    def status(self) -> dict[str, Any]:
        """Where the order stands.

        Returns:
            A dict: ``symbol``, ``step`` (bars closed), ``bars_left``, ``filled`` / ``remaining`` (fractions of the
            order), ``filled_units`` / ``remaining_units``, ``achieved_price`` (VWAP of the fills at the bar VWAPs;
            None before any fill), ``running_benchmark`` (VWAP or TWAP of the closed horizon bars; None before
            the first), ``improvement_bps`` (achieved vs running benchmark, positive = better for the trader; None
            when either is missing), ``complete``, ``ended``, ``next_bar`` (open time of the pending child order).
        """
        filled = float(sum(self._fills))
        achieved = bench = improvement = None
        if self._fills:
            a, p = np.asarray(self._fills), np.asarray(self._prices)
            volumes = np.asarray(self._volumes) if self.order.benchmark == "vwap" else np.ones_like(p)
            bench = float(benchmark_price(p, volumes, np.ones_like(p), axis=0))
            if filled > 0:
                achieved = float(achieved_price(a, np.asarray(self._fill_prices), int(self.order.target == "notional"),
                                                axis=0))
                improvement = -self.order.side_sign * (achieved / bench - 1.0) * 1e4
        return {"symbol": self.symbol, "step": self.step, "bars_left": self.bars_left, "filled": filled,
                "remaining": self._remaining, "filled_units": filled * self.size,
                "remaining_units": self._remaining * self.size, "achieved_price": achieved,
                "running_benchmark": bench, "improvement_bps": improvement, "complete": self.complete,
                "ended": self.ended, "next_bar": self.next_bar_time, "bar_participation": self._last_participation()}

    def _last_participation(self) -> float | None:
        """The last closed bar's fill as a fraction of its market volume (None before the first bar or when the
        bar had no volume)."""
        if not self._fills or self._volumes[-1] <= 0:
            return None
        units = self._fills[-1] * self.size
        if self.order.target == "notional":
            units /= self._fill_prices[-1]
        return units / self._volumes[-1]

    def outcome(self) -> ExecutionOutcome:
        """The final result (EXECUTION.md §4) through :func:`lems.execution.execution_outcome`.

        Fills are valued at their bar VWAPs; the benchmark window covers ``max(d, 1 + last bar that traded)``
        bars. An order left incomplete at the end of the horizon (fills below the plan) is scored on what it
        traded (see ``status()['filled']``).

        Raises:
            SessionError: the session has not ended, or nothing was filled.
        """
        if not self.ended:
            raise SessionError(f"the session has not ended ({self.bars_left} bars left, "
                               f"{self._remaining:.6g} of the order remaining)")
        a = np.asarray(self._fills)[None]
        if a.sum() <= 0:
            raise SessionError("nothing was filled: the order has no achieved price")
        p = np.asarray(self._prices)[None]
        volumes = np.asarray(self._volumes)[None] if self.order.benchmark == "vwap" else np.ones_like(p)
        out = execution_outcome(a, np.asarray(self._fill_prices)[None], volumes, self.order.min_duration,
                                notional=int(self.order.target == "notional"), side=self.order.side_sign, axis=1,
                                market_prices=p)
        return ExecutionOutcome(*[float(np.asarray(f).reshape(-1)[0]) for f in out])

    def shortfall(self) -> dict[str, float]:
        """Implementation shortfall against the arrival price and its Perold decomposition, so far
        (:func:`lems.execution.implementation_shortfall`): bps of the order's value at arrival, positive = cost.

        What is not filled yet is valued at the last closed bar's price (opportunity cost); after the session,
        that is the unfilled remainder's cost.

        Returns:
            A dict: ``total_bps``, ``delay_bps``, ``timing_bps``, ``impact_bps`` (fill prices above the bar VWAPs:
            costs), ``opportunity_bps``, ``filled``, ``arrival``.

        Raises:
            SessionError: no bar of the horizon has closed yet.
        """
        if not self._fills:
            raise SessionError("no bar of the horizon has closed yet: no shortfall to measure")
        if self._arrival_price is None:
            raise SessionError("this session was restored from a version-1 save, which has no arrival price")
        a, p, fp = (np.asarray(v)[None] for v in (self._fills, self._prices, self._fill_prices))
        out = implementation_shortfall(a, p, fp, p, np.array([[self._arrival_price]]),
                                       notional=int(self.order.target == "notional"), side=self.order.side_sign)
        return {k: float(np.asarray(v).reshape(-1)[0]) for k, v in out._asdict().items()}

    # ---------------------------------------------------------------- persistence
    def to_json(self) -> str:
        """The session's whole state as JSON (floats round-trip exactly); restore with :meth:`from_json`."""
        o = self.order
        state = {
            "version": _FORMAT_VERSION, "kind": "model" if self._is_model else "policy",
            "order": {"side": o.side, "horizon": o.horizon, "target": o.target, "benchmark": o.benchmark,
                      "min_duration": o.min_duration, "objective": o.objective, "min_rate": o.min_rate,
                      "max_rate": o.max_rate},
            "size": self.size, "n_days_profile": self.n_days_profile, "tz": self._tz, "is_24_7": self._is_24_7,
            "horizon_ns": self._horizon_ns, "times_given": self._times_given, "window": self._window.to_dict(),
            "fills": self._fills, "fill_prices": self._fill_prices, "max_participation": self._max_participation,
            "arrival_price": self._arrival_price,
            "prices": self._prices, "volumes": self._volumes, "stamps": self._stamps, "remaining": self._remaining,
            "pending": self._pending,
            "history": None if self._history is None else _frame_to_dict(self._history),
        }
        return json.dumps(state)

    @classmethod
    def from_json(cls, s: str, model: Any) -> "ExecutionSession":
        """Restore a session saved by :meth:`to_json`; it continues exactly where it stopped.

        Args:
            s: the JSON text.
            model: the same model (or policy) that drove the session.

        Raises:
            ValueError: malformed JSON, another format version, or a model that does not fit the saved session.
        """
        try:
            d = json.loads(s)
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a saved ExecutionSession: {exc}") from exc
        if not isinstance(d, dict) or d.get("version") not in _READABLE_VERSIONS:
            raise ValueError(f"not a saved ExecutionSession of format version {_READABLE_VERSIONS}")
        driver, is_model = _unwrap(model)
        if is_model != (d["kind"] == "model"):
            raise ValueError(f"the session was driven by a {d['kind']}; pass the same kind of object")
        self = cls.__new__(cls)
        order = OrderSpec(**d["order"])
        window = _Window.from_dict(d["window"])
        cls._check_driver(driver, is_model, order, window.lookback)
        self._driver, self._is_model, self.order, self.size = driver, is_model, order, float(d["size"])
        self.n_days_profile, self._tz, self._is_24_7 = int(d["n_days_profile"]), d["tz"], bool(d["is_24_7"])
        self._window, self._horizon_ns = window, [int(t) for t in d["horizon_ns"]]
        self._times_given = bool(d["times_given"])
        self._history = None if d["history"] is None else _frame_from_dict(d["history"])
        self._fills, self._prices = [float(v) for v in d["fills"]], [float(v) for v in d["prices"]]
        self._fill_prices = [float(v) for v in d.get("fill_prices", d["prices"])]
        self._max_participation, self._arrival_price = d.get("max_participation"), d.get("arrival_price")
        self._volumes, self._stamps = [float(v) for v in d["volumes"]], [int(v) for v in d["stamps"]]
        self._remaining, self._pending, self._plan_driver = float(d["remaining"]), d["pending"], None
        return self

    def __repr__(self) -> str:
        o = self.order
        return (f"ExecutionSession({self.symbol!r}, {o.side} {o.target} vs {o.benchmark}, d={o.min_duration}, "
                f"step {self.step}/{o.horizon}, remaining {self._remaining:.4g})")


def _frame_to_dict(frame: pd.DataFrame) -> dict[str, Any]:
    out = {c: frame[c].tolist() for c in frame.columns if c != "timestamp"}
    out["timestamp"] = timestamps_ns(frame["timestamp"]).tolist()
    out["trades"] = [None if pd.isna(v) else float(v) for v in frame["trades"]]
    return out


def _frame_from_dict(d: dict[str, Any]) -> pd.DataFrame:
    frame = pd.DataFrame({c: d[c] for c in BAR_COLUMNS})
    frame["timestamp"] = pd.to_datetime(np.asarray(d["timestamp"], dtype=np.int64), utc=True)
    frame["trades"] = frame["trades"].astype(np.float64)
    return frame


# --------------------------------------------------------------------------------------------------------
# Many orders at once
# --------------------------------------------------------------------------------------------------------
_ORDER_DEFAULTS = {"target": "quantity", "benchmark": "vwap", "min_duration": None, "objective": None,
                   "min_rate": 0.0, "max_rate": 1.0, "size": 1.0, "horizon": None, "max_participation": None}


def _order_rows(orders_df: pd.DataFrame, default_horizon: int | None) -> list[dict[str, Any]]:
    """Validated order rows (defaults filled in) as dicts with an ``OrderSpec`` under ``spec``."""
    if not isinstance(orders_df, pd.DataFrame):
        raise ValueError(f"orders_df must be a pandas DataFrame, got {type(orders_df).__name__}")
    missing = [c for c in ("order_id", "symbol", "start", "side") if c not in orders_df.columns]
    if missing:
        raise ValueError(f"orders_df lacks column(s) {missing}")
    if orders_df["order_id"].duplicated().any():
        raise ValueError("orders_df has duplicated order_id values")
    rows = []
    for rec in orders_df.to_dict("records"):
        r = {**_ORDER_DEFAULTS, **{k: v for k, v in rec.items() if not (np.isscalar(v) and pd.isna(v))}}
        horizon = default_horizon if r["horizon"] is None else int(r["horizon"])
        if horizon is None:
            raise ValueError("orders_df needs a 'horizon' column when the driver is a policy")
        if default_horizon is not None and horizon != default_horizon:
            raise ValueError(f"order {r['order_id']!r}: horizon {horizon} differs from the model's n_ahead")
        try:
            r["spec"] = OrderSpec(side=r["side"], horizon=horizon, target=r["target"], benchmark=r["benchmark"],
                                  min_duration=None if r["min_duration"] is None else int(r["min_duration"]),
                                  objective=r["objective"], min_rate=float(r["min_rate"]),
                                  max_rate=float(r["max_rate"]))
        except ValueError as exc:
            raise ValueError(f"order {r['order_id']!r}: {exc}") from exc
        r["start_ns"] = _to_ns(r["start"], f"order {r['order_id']!r} start")
        rows.append(r)
    return rows


def _symbol_calendars(bars: pd.DataFrame, tz: str, bar_minutes: float | None) -> dict[str, pd.DataFrame]:
    """Calendar-enriched bars per symbol, as :func:`lems.data.windows.make_states` builds them."""
    cal = add_calendar(validate_bars(bars), tz=tz, bar_minutes=bar_minutes)
    out = {}
    for symbol, part in cal.groupby("symbol", sort=True):
        part = part.reset_index(drop=True)
        part.attrs = dict(cal.attrs)
        out[str(symbol)] = part
    return out


def schedule(orders_df: pd.DataFrame, bars: pd.DataFrame, model: Any, *, tz: str = "UTC",
             bar_minutes: float | None = None, n_days_profile: int = 20, lookback: int | None = None) -> pd.DataFrame:
    """Child orders of many parent orders replayed on historical bars, with exact fills.

    Every order runs in its own :class:`ExecutionSession`; at each bar, the sessions whose next bar opens then
    are decided together (one forward pass of the model for all of them).

    Args:
        orders_df: one row per order: ``order_id``, ``symbol``, ``start`` (open time of the order's first bar;
            the first bar at or after it is used), ``side``; optional ``target`` ("quantity"), ``benchmark``
            ("vwap"), ``min_duration`` (H), ``objective``, ``min_rate`` (0), ``max_rate`` (1), ``size`` (1.0,
            units of the order), ``max_participation`` (none: see :class:`ExecutionSession`) and ``horizon`` (the
            model's n_ahead; required for a policy).
        bars: canonical bars of the symbols (one or many), with each order's history and horizon.
        model: a trained LargeExecutionModel or a Policy.
        tz, bar_minutes, n_days_profile, lookback: as in :class:`ExecutionSession` (the bar length is inferred
            from all the bars, as make_windows does).

    Returns:
        A DataFrame with columns ``order_id``, ``timestamp`` (open of the bar), ``fraction`` (of the order) and
        ``units``, one row per decision, in time order. Orders whose horizon runs past the bars stop at the last
        bar.

    Raises:
        ValueError: malformed orders or bars, an unknown symbol, not enough history.
    """
    driver, is_model = _unwrap(model)
    rows = _order_rows(orders_df, int(driver.n_ahead) if is_model else None)
    calendars = _symbol_calendars(bars, tz, bar_minutes)
    sessions, feeds = [], []
    for r in rows:
        cal = calendars.get(str(r["symbol"]))
        if cal is None:
            raise ValueError(f"order {r['order_id']!r}: no bars for symbol {r['symbol']!r}")
        ns = timestamps_ns(cal["timestamp"])
        i0 = int(np.searchsorted(ns, r["start_ns"], side="left"))
        history = cal.iloc[:i0].reset_index(drop=True)
        history.attrs = dict(cal.attrs)
        session = ExecutionSession.__new__(ExecutionSession)
        try:
            session._setup(driver, r["spec"], r["size"], history, tz=tz, n_days_profile=n_days_profile,
                           lookback=lookback, calendar="auto", horizon_times=_replay_times(ns, i0, r["spec"], cal),
                           max_participation=r["max_participation"])
        except ValueError as exc:
            raise ValueError(f"order {r['order_id']!r}: {exc}") from exc
        sessions.append(session)
        feeds.append((cal, i0))
    return _replay(sessions, feeds, [r["order_id"] for r in rows], driver, is_model)


def _replay_times(ns: np.ndarray, i0: int, order: OrderSpec, cal: pd.DataFrame) -> list[pd.Timestamp]:
    """The horizon's open times in the data (extended on the bar grid where the data ends)."""
    times = [int(t) for t in ns[i0:i0 + order.horizon]]
    dt = int(round(float(cal.attrs["bar_minutes"]) * _NS_PER_MINUTE))
    start = int(ns[i0 - 1]) if i0 > 0 else 0
    while len(times) < order.horizon:
        times.append((times[-1] if times else start) + dt)
    return [_ts(t) for t in times]


def _bar_at(cal: pd.DataFrame, i: int) -> dict[str, Any]:
    return {c: cal[c].iat[i] for c in ("symbol", "timestamp", "open", "high", "low", "close", "volume", "notional")}


def _replay(sessions: list[ExecutionSession], feeds: list[tuple[pd.DataFrame, int]], order_ids: list[Any],
            driver: Any, is_model: bool) -> pd.DataFrame:
    """Event loop of :func:`schedule`: per bar time, batch the decisions, then close the bar (exact fills)."""
    cursor = [i0 for _, i0 in feeds]
    stamps = [timestamps_ns(cal["timestamp"]) for cal, _ in feeds]
    records: list[tuple[Any, int, float, float]] = []
    widest = [1]  # largest batch so far: pad to it, so the compiled shape only grows

    def next_ns(k: int) -> int | None:
        done = sessions[k].ended or cursor[k] >= len(stamps[k])
        return None if done else int(stamps[k][cursor[k]])

    while True:
        times = [next_ns(k) for k in range(len(sessions))]
        live = [t for t in times if t is not None]
        if not live:
            break
        now = min(live)
        due = [k for k, t in enumerate(times) if t == now]
        deciders = [k for k in due if not sessions[k].complete]
        requests = {k: sessions[k]._request(_ts(now)) for k in deciders}
        widest[0] = max(widest[0], len(requests))
        shares = _batch_shares(sessions, requests, driver, is_model, widest[0])
        for k in deciders:
            child = sessions[k]._decide(requests[k], shares[k])
            records.append((order_ids[k], now, child.fraction, child.units))
        for k in due:
            sessions[k].on_bar_close(_bar_at(feeds[k][0], cursor[k]))
            cursor[k] += 1
    frame = pd.DataFrame(records, columns=["order_id", "timestamp", "fraction", "units"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"].astype(np.int64), utc=True)
    return frame


def _batch_shares(sessions: list[ExecutionSession], requests: dict[int, _Request], driver: Any,
                  is_model: bool, pad_to: int = 1) -> dict[int, float]:
    """Proposed shares of the due sessions: one model forward for all of them (or the policy, per session)."""
    if not requests:
        return {}
    keys = list(requests)
    if not is_model:
        return {k: _policy_share(sessions[k]._plan.plan(requests[k].x, requests[k].times,
                                                        sessions[k]._prices, sessions[k]._volumes),
                                 requests[k].step) for k in keys}
    out = model_shares(driver, np.stack([requests[k].x for k in keys]), np.array([requests[k].step for k in keys]),
                       np.stack([requests[k].fills for k in keys]), pad_to=pad_to)
    return {k: float(out[i, sessions[k]._model_index, sessions[k].order.seed_column]) for i, k in enumerate(keys)}
