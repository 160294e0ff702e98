"""lems.live: bar-by-bar ExecutionSession, equivalence with the batch forward, safety, persistence, schedule."""

from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest

from lems.baselines import TWAP, FlexibleRule, StaticVWAP
from lems.data.features import N_KNOWN_AHEAD, N_OBSERVED
from lems.data.synthetic import synthetic_market
from lems.data.windows import make_windows
from lems.data_formater import add_config_to_X
from lems.execution import OrderSpec, execution_outcome, feasible_interval, seed_order_specs
from lems.live import ExecutionSession, SessionError, model_shares, schedule
from lems.models import LargeExecutionModel

pytestmark = pytest.mark.backend

LOOKBACK, HORIZON = 24, 5
LO, HI = 0.05, 0.6
TZ = {"24/7": "UTC", "session": "America/New_York"}


@pytest.fixture(scope="module")
def markets():
    return {"24/7": synthetic_market(n_assets=2, n_days=14, calendar="24/7", seed=2),
            "session": synthetic_market(n_assets=1, n_days=45, calendar="session", seed=5)}


@pytest.fixture(scope="module")
def windows(markets):
    return {cal: make_windows(bars, LOOKBACK, HORIZON, tz=TZ[cal]) for cal, bars in markets.items()}


@pytest.fixture(scope="module")
def model():
    """A tiny model with random decoder heads (strong enough that flexible orders often finish early)."""
    keras.utils.set_random_seed(0)
    m = LargeExecutionModel(lookback=LOOKBACK, n_ahead=HORIZON, hidden_size=8, hidden_rnn_layer=1, num_heads=2,
                            num_embedding=4, fused_mlp_hidden_dim=8)
    m.build([(None, LOOKBACK + HORIZON - 1, N_OBSERVED + N_KNOWN_AHEAD), (None, 1), (None, 1)])
    rng = np.random.default_rng(0)
    for v in m.decoder.trainable_variables:
        if "base_curve" not in v.path:
            v.assign((rng.normal(size=v.shape) * 1.5).astype("float32"))
    return m


def batch_allocations(model, win, rows, lo=LO, hi=HI) -> np.ndarray:
    """The batch forward on windows ``rows`` (padded to 4 rows: one compiled shape for every test)."""
    rows = list(rows)
    x = add_config_to_X(win.X[rows + rows[:1] * (4 - len(rows))], lo, hi)
    out = keras.ops.convert_to_numpy(model.predict_on_batch(x))
    return np.asarray(out, dtype=np.float64)[:len(rows)]


def horizon_bars(markets, win, cal, i) -> pd.DataFrame:
    bars = win.bars[win.asset[i]]
    start = int(win.origin_index[i])
    return bars.iloc[start:start + HORIZON]


def history(markets, win, cal, i) -> pd.DataFrame:
    bars = markets[cal]
    bars = bars[bars["symbol"] == win.asset[i]].reset_index(drop=True)
    return bars.iloc[:int(win.origin_index[i])]


def order_frame(specs, win, rows, lo=LO, hi=HI, size=1000.0) -> pd.DataFrame:
    return pd.DataFrame([dict(order_id=f"{r}:{j}", symbol=win.asset[i], start=win.origin[i], side=o.side,
                              target=o.target, benchmark=o.benchmark, min_duration=o.min_duration,
                              objective=o.objective, min_rate=lo, max_rate=hi, size=size, horizon=HORIZON)
                         for r, i in enumerate(rows) for j, o in enumerate(specs)])


def scheduled(out: pd.DataFrame, order_id, times) -> np.ndarray:
    sub = out[out["order_id"] == order_id]
    return pd.Series(sub["fraction"].to_numpy(), index=pd.DatetimeIndex(sub["timestamp"])).reindex(
        pd.DatetimeIndex(times)).fillna(0.0).to_numpy()


# ------------------------------------------------------------------------------------------------ equivalence
@pytest.mark.parametrize("cal", ["24/7", "session"])
def test_replay_matches_batch_forward_for_every_seed_order(cal, markets, windows, model):
    win = windows[cal]
    rows = [len(win) - 9, len(win) // 2]
    ref = batch_allocations(model, win, rows)
    specs = seed_order_specs(HORIZON, LO, HI)
    out = schedule(order_frame(specs, win, rows), markets[cal], model, tz=TZ[cal])
    assert list(out.columns) == ["order_id", "timestamp", "fraction", "units"]
    np.testing.assert_allclose(out["units"], out["fraction"] * 1000.0)
    early = 0
    for r, i in enumerate(rows):
        times = horizon_bars(markets, win, cal, i)["timestamp"]
        for j, o in enumerate(specs):
            got = scheduled(out, f"{r}:{j}", times)
            expected = ref[r, :, o.seed_column, o.order_type_index, o.target_index]
            np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=f"{cal} row {r} {o}")
            assert abs(got.sum() - 1) < 1e-9 and got.max() <= HI + 1e-12
            early += int((out["order_id"] == f"{r}:{j}").sum() < HORIZON)
    assert early > 0  # some flexible orders completed before the horizon


@pytest.mark.parametrize("cal", ["24/7", "session"])
def test_session_window_is_the_pipeline_window(cal, markets, windows, model):
    """Bar by bar, the session's X equals make_windows' X on every position known at the decision."""
    win = windows[cal]
    i = len(win) - 4
    order = OrderSpec(side="sell", horizon=HORIZON, target="notional", benchmark="twap", min_duration=2,
                      objective="beat", min_rate=LO, max_rate=HI)
    bars = horizon_bars(markets, win, cal, i)
    times = None if cal == "24/7" else list(bars["timestamp"])  # 24/7: inferred from the bar length
    session = ExecutionSession(model, order, 5e4, history(markets, win, cal, i), tz=TZ[cal], horizon_times=times)
    ref = batch_allocations(model, win, [i])[0, :, order.seed_column, order.order_type_index, order.target_index]
    x_ref, width = win.X[i], LOOKBACK + HORIZON - 1
    for s, (_, bar) in enumerate(bars.iterrows()):
        if session.ended:
            break
        if not session.complete:
            request = session._request(None)
            np.testing.assert_allclose(request.x[:LOOKBACK + s, :N_OBSERVED], x_ref[:LOOKBACK + s, :N_OBSERVED],
                                       atol=1e-6)
            known = min(LOOKBACK + s + 1, width)
            np.testing.assert_allclose(request.x[:known, N_OBSERVED:], x_ref[:known, N_OBSERVED:], atol=1e-6)
            assert not request.x[LOOKBACK + s:, :N_OBSERVED].any()  # nothing observed from the coming bar on
            child = session.next_allocation()
            assert child.timestamp == bar["timestamp"] and child.step == s
            assert child.fraction == pytest.approx(ref[s], abs=1e-5)
        session.on_bar_close(bar.to_dict())
    assert session.ended and session.complete


def test_outcome_matches_execution_outcome_of_the_batch(markets, windows, model):
    cal, win = "24/7", windows["24/7"]
    i = len(win) - 12
    order = OrderSpec(side="buy", horizon=HORIZON, target="quantity", benchmark="vwap", min_duration=3,
                      objective="beat", min_rate=LO, max_rate=HI)
    session = ExecutionSession(model, order, 1.0, history(markets, win, cal, i))
    for _, bar in horizon_bars(markets, win, cal, i).iterrows():
        if session.ended:
            break
        if not session.complete:
            session.next_allocation()
        session.on_bar_close(bar)
    a = batch_allocations(model, win, [i])[:, :, order.seed_column, order.order_type_index, order.target_index]
    expected = execution_outcome(a, win.prices[i:i + 1], win.volumes[i:i + 1], 3, side=1, axis=1)
    got = session.outcome()
    assert got.improvement_bps == pytest.approx(float(expected.improvement_bps[0]), abs=1e-2)
    assert got.benchmark == pytest.approx(float(expected.benchmark[0]), rel=1e-9)
    status = session.status()
    assert status["filled"] == pytest.approx(1.0) and status["remaining"] == 0.0 and status["ended"]
    assert got.window == session.step  # the session ends when its benchmark window has closed
    assert status["improvement_bps"] == pytest.approx(got.improvement_bps, abs=1e-9)


# ------------------------------------------------------------------------------------------------ fills and limits
def run_with_fills(model, markets, win, i, order, ratios, size=2e5):
    session = ExecutionSession(model, order, size, history(markets, win, "24/7", i))
    children = []
    for ratio, (_, bar) in zip(ratios, horizon_bars(markets, win, "24/7", i).iterrows()):
        if session.ended:
            break
        if not session.complete:
            remaining, left = session.remaining, session.bars_left
            child = session.next_allocation()
            low, high = feasible_interval(remaining, left, order.min_rate, order.max_rate)
            assert 0.0 <= child.fraction <= min(order.max_rate, remaining) + 1e-12
            if low <= high:  # still feasible: the exact limits, with forced catch-up
                assert child.fraction >= low - 1e-12
            children.append(child)
            session.on_bar_close(bar, filled_units=child.units * ratio)
        else:
            session.on_bar_close(bar)
    return session, children


def test_partial_fills_replan_on_the_actual_remaining(markets, windows, model):
    win = windows["24/7"]
    i = len(win) - 20
    order = OrderSpec(side="sell", horizon=HORIZON, target="notional", benchmark="vwap", min_duration=HORIZON,
                      objective="track", min_rate=0.1, max_rate=0.35)
    exact, exact_children = run_with_fills(model, markets, win, i, order, [1.0] * HORIZON)
    partial, children = run_with_fills(model, markets, win, i, order, [0.5, 0.0, 1.0, 1.0, 1.0])
    assert children[0] == exact_children[0]
    assert children[1].remaining > exact_children[1].remaining
    status = partial.status()
    assert status["ended"] and status["filled"] == pytest.approx(sum(c.fraction for c in children) -
                                                                 0.5 * children[0].fraction - children[1].fraction)
    assert status["filled_units"] == pytest.approx(status["filled"] * 2e5)
    assert np.isfinite(partial.outcome().improvement_bps)


def test_behind_beyond_recovery_never_breaks_max_rate(markets, windows, model):
    win = windows["24/7"]
    order = OrderSpec(side="buy", horizon=HORIZON, target="quantity", benchmark="twap", min_rate=0.0, max_rate=0.25)
    session, children = run_with_fills(model, markets, win, len(win) - 30, order, [0.0, 0.0, 1.0, 1.0, 1.0])
    assert [c.fraction for c in children[2:]] == [0.25, 0.25, 0.25]  # catch-up capped at max_rate
    status = session.status()
    assert status["ended"] and not status["complete"] and status["filled"] == pytest.approx(0.75)


# ------------------------------------------------------------------------------------------------ safety
def test_rejections_leave_the_state_unchanged(markets, windows, model):
    cal, win = "24/7", windows["24/7"]
    i = len(win) - 15
    order = OrderSpec(side="buy", horizon=HORIZON, target="quantity", benchmark="vwap", min_duration=1,
                      objective="beat", min_rate=0.0, max_rate=1.0)
    hist = history(markets, win, cal, i)
    bars = [b.to_dict() for _, b in horizon_bars(markets, win, cal, i).iterrows()]
    session = ExecutionSession(model, order, 100.0, hist)

    def rejected(call, *args, **kwargs):
        before = session.to_json()
        with pytest.raises(SessionError):
            call(*args, **kwargs)
        assert session.to_json() == before

    last = hist["timestamp"].iloc[-1]
    rejected(session.on_bar_close, bars[0])  # no child order pending
    rejected(session.next_allocation, last)  # not after the last closed bar
    rejected(session.next_allocation, last.tz_localize(None) + pd.Timedelta(hours=1))  # naive time
    child = session.next_allocation()
    assert session.next_allocation() == child  # idempotent for the same bar
    rejected(session.on_bar_close, {**bars[0], "timestamp": last})  # duplicated
    rejected(session.on_bar_close, {**bars[0], "timestamp": last - pd.Timedelta(hours=2)})  # out of order
    rejected(session.on_bar_close, bars[1])  # stale: not the bar of the pending child
    rejected(session.on_bar_close, {**bars[0], "symbol": "OTHER"})
    rejected(session.on_bar_close, {**bars[0], "close": float("nan")})
    rejected(session.on_bar_close, {**bars[0], "low": 0.0})
    rejected(session.on_bar_close, {**bars[0], "high": bars[0]["low"] * 0.5})
    rejected(session.on_bar_close, {**bars[0], "close": bars[0]["high"] * 1.01})  # close above the high
    rejected(session.on_bar_close, {**bars[0], "open": bars[0]["low"] * 0.99})  # open below the low
    rejected(session.on_bar_close, {**bars[0], "volume": -1.0})
    rejected(session.on_bar_close, {k: v for k, v in bars[0].items() if k != "close"})
    rejected(session.on_bar_close, bars[0], filled=child.fraction + 1e-3)  # fill above the child order
    rejected(session.on_bar_close, bars[0], filled_units=child.units * 1.01)
    rejected(session.on_bar_close, bars[0], filled=-0.01)
    rejected(session.on_bar_close, bars[0], filled=float("nan"))
    rejected(session.on_bar_close, bars[0], filled=0.0, filled_units=0.0)
    assert issubclass(SessionError, ValueError)
    session.on_bar_close(bars[0], filled=child.fraction)
    while not session.ended:  # complete the order with exact fills
        if session.complete:
            session.on_bar_close(bars[session.step])
        else:
            session.next_allocation()
            session.on_bar_close(bars[session.step])
    rejected(session.next_allocation)  # after completion
    rejected(session.on_bar_close, bars[-1])  # after the end
    assert np.isfinite(session.outcome().improvement_bps)


def test_session_calendar_needs_the_horizon_times(markets, windows, model):
    cal, win = "session", windows["session"]
    i = len(win) - 3
    order = OrderSpec(side="sell", horizon=HORIZON, min_rate=LO, max_rate=HI)
    hist = history(markets, win, cal, i)
    with pytest.raises(ValueError, match="horizon_times"):
        ExecutionSession(model, order, 10.0, hist, tz=TZ[cal])
    times = list(horizon_bars(markets, win, cal, i)["timestamp"])
    session = ExecutionSession(model, order, 10.0, hist, tz=TZ[cal], horizon_times=times)
    assert session.next_allocation().timestamp == times[0]
    with pytest.raises(SessionError, match="has not ended"):
        session.outcome()


def test_live_step_reads_the_actual_fills(markets, windows, model):
    """The decoder state is rebuilt from the fills given (not from the model's own plan)."""
    cal, win = "24/7", windows["24/7"]
    i = len(win) - 10
    order = OrderSpec(side="buy", horizon=HORIZON, target="quantity", benchmark="vwap", min_duration=2,
                      objective="beat", min_rate=0.0, max_rate=0.3)  # flexible (unbounded head), open at step 2
    ref = batch_allocations(model, win, [i], 0.0, 0.3)[0, :, order.seed_column, order.order_type_index,
                                                       order.target_index]
    session = ExecutionSession(model, order, 1.0, history(markets, win, cal, i))
    bars = horizon_bars(markets, win, cal, i)
    for s in range(2):
        session.next_allocation()
        session.on_bar_close(bars.iloc[s])
    x = session._request(None).x[None]
    m = order.order_type_index * 2 + order.target_index
    planned = model_shares(model, x, np.array([2]), np.r_[ref[:2], np.zeros(HORIZON - 3)][None])
    other = model_shares(model, x, np.array([2]), np.r_[ref[0] / 2, 0.0, np.zeros(HORIZON - 3)][None])
    share = planned[0, m, order.seed_column]
    low, high = feasible_interval(1 - ref[:2].sum(), HORIZON - 2, 0.0, 0.3)
    assert np.clip(share * (1 - ref[:2].sum()), low, high) == pytest.approx(ref[2], abs=1e-5)  # batch step 2
    assert np.abs(other - planned).max() > 1e-3  # the fills enter the decoder state


def test_bad_construction(markets, windows, model):
    win = windows["24/7"]
    hist = history(markets, win, "24/7", len(win) - 1)
    order = OrderSpec(side="buy", horizon=HORIZON)
    with pytest.raises(ValueError, match="n_ahead"):
        ExecutionSession(model, OrderSpec(side="buy", horizon=HORIZON + 1), 1.0, hist)
    with pytest.raises(ValueError, match="lookback"):
        ExecutionSession(model, order, 1.0, hist.iloc[:LOOKBACK - 1])
    with pytest.raises(ValueError, match="ONE symbol"):
        ExecutionSession(model, order, 1.0, markets["24/7"])
    with pytest.raises(ValueError, match="size"):
        ExecutionSession(model, order, 0.0, hist)
    with pytest.raises(ValueError, match="LargeExecutionModel or a Policy"):
        ExecutionSession(object(), order, 1.0, hist)
    with pytest.raises(ValueError, match="lacks column"):
        schedule(pd.DataFrame({"order_id": [1]}), markets["24/7"], model)
    with pytest.raises(ValueError, match="no bars for symbol"):
        schedule(pd.DataFrame({"order_id": [1], "symbol": ["NOPE"], "start": [win.origin[0]], "side": ["buy"]}),
                 markets["24/7"], model)


# ------------------------------------------------------------------------------------------------ persistence
def test_json_round_trip_mid_order_continues_identically(markets, windows, model):
    win = windows["24/7"]
    i = len(win) - 25
    order = OrderSpec(side="buy", horizon=HORIZON, target="notional", benchmark="twap", min_duration=HORIZON,
                      objective="track", min_rate=0.1, max_rate=0.4)
    bars = [b for _, b in horizon_bars(markets, win, "24/7", i).iterrows()]
    ratios = [0.6, 1.0, 0.3, 1.0, 1.0]
    original = ExecutionSession(model, order, 7e5, history(markets, win, "24/7", i))
    for k in range(2):
        child = original.next_allocation()
        original.on_bar_close(bars[k], filled=child.fraction * ratios[k])
    pending = original.next_allocation()  # saved with a pending child order
    text = original.to_json()
    json.loads(text)
    restored = ExecutionSession.from_json(text, model)
    assert restored.to_json() == text and restored.next_allocation() == pending
    for session in (original, restored):
        session.on_bar_close(bars[2], filled=pending.fraction * ratios[2])
    for k in range(3, HORIZON):
        a, b = original.next_allocation(), restored.next_allocation()
        assert a == b
        original.on_bar_close(bars[k], filled_units=a.units * ratios[k])
        restored.on_bar_close(bars[k], filled_units=b.units * ratios[k])
    assert original.to_json() == restored.to_json()
    assert original.outcome() == restored.outcome()
    with pytest.raises(ValueError):
        ExecutionSession.from_json("{}", model)
    with pytest.raises(ValueError, match="kind"):
        ExecutionSession.from_json(text, TWAP())


# ------------------------------------------------------------------------------------------------ policies
@pytest.mark.parametrize("policy", [TWAP(), StaticVWAP(n_days=5), FlexibleRule(threshold=0.0)],
                         ids=lambda p: p.name)
def test_policy_replay_matches_policy_allocate(policy, markets, windows):
    cal, win = "session", windows["session"]
    i = len(win) - 6
    ref = policy.allocate(win.subset([i]), LO, HI)[0]
    specs = seed_order_specs(HORIZON, LO, HI)
    out = schedule(order_frame(specs, win, [i]), markets[cal], policy, tz=TZ[cal], lookback=LOOKBACK)
    times = horizon_bars(markets, win, cal, i)["timestamp"]
    for j, o in enumerate(specs):
        np.testing.assert_allclose(scheduled(out, f"0:{j}", times),
                                   ref[:, o.seed_column, o.order_type_index, o.target_index], atol=1e-9)


def test_policy_session_json_round_trip(markets, windows):
    cal, win = "session", windows["session"]
    i = len(win) - 8
    policy = FlexibleRule(threshold=0.0)
    order = OrderSpec(side="sell", horizon=HORIZON, benchmark="vwap", min_duration=2, objective="beat")
    bars = [b for _, b in horizon_bars(markets, win, cal, i).iterrows()]
    session = ExecutionSession(policy, order, 10.0, history(markets, win, cal, i), tz=TZ[cal], lookback=LOOKBACK,
                               horizon_times=[b["timestamp"] for b in bars])
    child = session.next_allocation()
    session.on_bar_close(bars[0], filled=child.fraction / 2)
    restored = ExecutionSession.from_json(session.to_json(), policy)
    assert not session.ended  # one bar closed, min duration 2: the next decision must exist on both
    assert restored.next_allocation() == session.next_allocation()


# ------------------------------------------------------------------------------------------------ size, cap, arrival
@pytest.mark.parametrize("target", ["quantity", "notional"])
@pytest.mark.parametrize("cap", [0.02, 0.1, 1.0])
def test_participation_cap_against_the_causal_volume_forecast(markets, windows, model, target, cap):
    """No child order exceeds the cap times the bar's forecast volume; what cannot trade stays reported."""
    win = windows["24/7"]
    i = len(win) - 12
    bars = horizon_bars(markets, win, "24/7", i)
    size = 0.5 * float(bars["volume"].sum())  # half the horizon's volume: the cap binds
    if target == "notional":
        size *= float(bars["notional"].sum() / bars["volume"].sum())
    order = OrderSpec(side="buy", horizon=HORIZON, target=target, benchmark="vwap", min_rate=LO, max_rate=HI)
    session = ExecutionSession(model, order, size, history(markets, win, "24/7", i), max_participation=cap)
    uncapped = ExecutionSession(model, order, size, history(markets, win, "24/7", i))
    last_price = session._window.last_price
    for _, bar in bars.iterrows():
        if session.ended:
            break
        if not session.complete:
            child = session.next_allocation()
            forecast = session._pending["seasonal"]  # the causal forecast of the bar's volume [units]
            units = child.units / (last_price if target == "notional" else 1.0)
            assert units <= cap * forecast * (1 + 1e-9)
            if session.step == 0:  # same state as the uncapped session: the cap can only lower the child
                assert child.fraction <= uncapped.next_allocation().fraction + 1e-12
        session.on_bar_close(bar)
    status = session.status()
    assert status["ended"]
    assert status["filled"] + status["remaining"] == pytest.approx(1.0)
    if cap < 1.0:  # half the horizon volume cannot trade at 2 % or 10 % of each bar: reported, never dropped
        assert not status["complete"] and status["remaining"] > 0.3
        parts = session.shortfall()
        assert parts["filled"] == pytest.approx(status["filled"])
        assert parts["opportunity_bps"] != 0.0


def test_bad_participation_cap_is_rejected(markets, windows, model):
    win = windows["24/7"]
    order = OrderSpec(side="buy", horizon=HORIZON)
    for bad in (0.0, -0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="max_participation"):
            ExecutionSession(model, order, 1.0, history(markets, win, "24/7", len(win) - 3), max_participation=bad)
    with pytest.raises(ValueError, match="arrival"):
        ExecutionSession(model, order, 1.0, history(markets, win, "24/7", len(win) - 3), arrival="open")


def test_shortfall_with_fill_prices_sums_and_survives_json(markets, windows, model):
    """Fill prices 10 bps above the bar VWAPs show up as 10 bps of impact; the Perold parts sum to the total."""
    win = windows["24/7"]
    i = len(win) - 7
    order = OrderSpec(side="buy", horizon=HORIZON, target="quantity", benchmark="vwap", min_rate=LO, max_rate=HI)
    session = ExecutionSession(model, order, 100.0, history(markets, win, "24/7", i), max_participation=0.5)
    bars = [b for _, b in horizon_bars(markets, win, "24/7", i).iterrows()]
    arrival = float(history(markets, win, "24/7", i)["close"].iloc[-1])
    for s, bar in enumerate(bars):
        if session.ended:
            break
        if not session.complete:
            session.next_allocation()
        price = bar["notional"] / bar["volume"]
        session.on_bar_close(bar, fill_price=price * 1.001)
        if s == 1:
            restored = ExecutionSession.from_json(session.to_json(), model)
            assert restored.shortfall() == session.shortfall()
            assert restored.status() == session.status()
    parts = session.shortfall()
    assert parts["arrival"] == pytest.approx(arrival)
    total = parts["delay_bps"] + parts["timing_bps"] + parts["impact_bps"] + parts["opportunity_bps"]
    assert parts["total_bps"] == pytest.approx(total, abs=1e-9)
    # impact = side * filled * (P - P0) / A with P = 1.001 * P0
    achieved = session.status()["achieved_price"]
    assert parts["impact_bps"] == pytest.approx(achieved / 1.001 * 0.001 / arrival * 1e4, rel=1e-6)
    assert session.outcome().achieved == pytest.approx(achieved)  # the outcome is valued at the fill prices
