"""The bar-by-bar :class:`ExecutionSession` of one parent order: decisions, fills, outcome, save and restore."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from lems.data.calendar import add_calendar, timestamps_ns
from lems.data.features import MARKET_FEATURES, N_KNOWN_AHEAD, N_OBSERVED
from lems.data.online import OnlineWindow
from lems.data.validation import BAR_COLUMNS, validate_bars
from lems.execution import (
    ARRIVAL_PRICES,
    TARGETS,
    ExecutionOutcome,
    OrderSpec,
    achieved_price,
    allocate_step,
    benchmark_price,
    check_participation_cap,
    execution_outcome,
    implementation_shortfall,
    participation_limit,
)
from lems.live._common import (
    _FORMAT_VERSION,
    _NS_PER_MINUTE,
    _READABLE_VERSIONS,
    DEFAULT_POLICY_LOOKBACK,
    DONE_TOL,
    DUST_TOL,
    FILL_TOL,
    ChildOrder,
    SessionError,
    _finite,
    _to_ns,
    _ts,
    _unwrap,
)
from lems.live._plan import _policy_share, _PolicyPlan, model_shares

__all__ = ["ExecutionSession"]


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
            :class:`~lems.policies.ModelPolicy`), or any :class:`~lems.policies.Policy`.
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
        market: for a model trained with the market channels (``cross_asset``): canonical bars of the OTHER symbols
            of its universe up to the history's last bar (at least ``lookback + MARKET_LEVEL_BARS + 2`` bars of
            each, or all they have, for the values :func:`~lems.data.windows.make_windows` computes); each
            :meth:`on_bar_close` then takes the other symbols' bars of the closed bar (``market=``). None: the
            model reads its own symbol only (a model with market channels raises).

    Raises:
        ValueError: bad history, size, order, cap or model/order mismatch.
    """

    def __init__(self, model: Any, order: OrderSpec, size: float, history: pd.DataFrame, *, tz: str = "UTC",
                 bar_minutes: float | None = None, n_days_profile: int = 20, lookback: int | None = None,
                 calendar: str = "auto", horizon_times=None, max_participation: float | None = None,
                 arrival: str = "close", market: pd.DataFrame | None = None) -> None:
        canon = validate_bars(history)
        if canon["symbol"].nunique() != 1:
            raise ValueError(f"history must hold ONE symbol, got {sorted(canon['symbol'].unique())[:5]}")
        if len(canon) < 2 and bar_minutes is None:
            raise ValueError("history needs at least 2 bars to infer the bar length; pass bar_minutes")
        cal = add_calendar(canon, tz=tz, bar_minutes=bar_minutes)
        self._setup(model, order, size, cal, tz=tz, n_days_profile=n_days_profile, lookback=lookback,
                    calendar=calendar, horizon_times=horizon_times, max_participation=max_participation,
                    arrival=arrival, market=market)

    # ---------------------------------------------------------------- construction
    def _setup(self, model: Any, order: OrderSpec, size: float, cal: pd.DataFrame, *, tz: str, n_days_profile: int,
               lookback: int | None, calendar: str, horizon_times, max_participation: float | None = None,
               arrival: str = "close", market: pd.DataFrame | None = None) -> None:
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
        self._check_market(driver, is_model, market)
        if calendar not in ("auto", "24/7", "session"):
            raise ValueError(f"calendar must be 'auto', '24/7' or 'session', got {calendar!r}")
        self._driver, self._is_model, self.order, self.size = driver, is_model, order, size
        self.n_days_profile, self._tz = int(n_days_profile), str(tz)
        self._window = OnlineWindow.from_calendar(cal, lookback, order.horizon, int(n_days_profile), tz, market)
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

    @staticmethod
    def _check_market(driver: Any, is_model: bool, market: pd.DataFrame | None) -> None:
        """A model's input channels must match the window's: the market channels iff ``market`` is given."""
        if not is_model:
            if market is not None:
                raise ValueError("market bars feed a model's market channels; a policy does not read them")
            return
        channels = getattr(driver, "input_channels", None)
        expected = N_OBSERVED + (len(MARKET_FEATURES) if market is not None else 0) + int(driver.n_known_features)
        if channels is not None and int(channels) != expected:
            hint = ("pass market= (the other symbols' bars): the model was trained with cross_asset" if market is None
                    else "the model was trained without the market channels: do not pass market=")
            raise ValueError(f"the model reads {channels} channels, the live window builds {expected}: {hint}")

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
                     filled_units: float | None = None, fill_price: float | None = None,
                     market: pd.DataFrame | None = None) -> dict[str, Any]:
        """Record the closed bar and the actual fill of its child order; re-plans on what remains.

        Args:
            bar: the realised bar: ``timestamp`` (open time, aware), ``open``, ``high``, ``low``, ``close``,
                ``volume``, ``symbol`` and ``notional`` (estimated as ``volume * (high + low + close) / 3`` when
                absent, as :func:`~lems.data.validation.validate_bars` does).
            filled: the fill as a fraction of the order (0 .. the child order).
            filled_units: the fill in the order's units (instead of ``filled``). With neither, the child order
                filled exactly.
            fill_price: the average price of the fill as executed (costs included); default: the bar's VWAP
                (docs/execution.md §1). It enters the achieved price, the outcome and the shortfall.
            market: a session with market channels: the other symbols' bars that opened at the same time as
                ``bar`` (``symbol``, ``timestamp``, ``open``, ``high``, ``low``, ``close``, ``volume``, optionally
                ``notional``; a frame or a list of dicts; a symbol without a bar there is absent; None: none).

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
        try:
            row = self._window.observed_row(parsed, None if market is None else pd.DataFrame(market))
        except ValueError as exc:
            raise SessionError(str(exc)) from exc
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
        """The final result (docs/execution.md §4) through :func:`lems.execution.execution_outcome`.

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
        window = OnlineWindow.from_dict(d["window"])
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
