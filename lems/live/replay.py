"""Many orders replayed on historical bars (:func:`schedule`): one :class:`~lems.live.ExecutionSession` per order,
the sessions due at each bar decided together (one forward pass of the model for all of them), exact fills."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from lems.data.calendar import add_calendar, timestamps_ns
from lems.data.validation import validate_bars
from lems.execution import OrderSpec
from lems.live._common import _NS_PER_MINUTE, _to_ns, _ts, _unwrap
from lems.live._plan import _policy_share, model_shares
from lems.live.session import ExecutionSession, _Request

__all__ = ["schedule"]


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
