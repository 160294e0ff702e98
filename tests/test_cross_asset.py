"""Market (cross-asset) channels (issue 27): causal, computed as documented, a one-symbol universe degrades to
today's features, the streamed universe and the live window build the materialised path's windows."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

from lems.data.calendar import timestamps_ns
from lems.data.features import (
    FEATURE_CLIP,
    FEATURE_NAMES,
    MARKET_FEATURES,
    MARKET_LEVEL_BARS,
    N_KNOWN_AHEAD,
    N_OBSERVED,
    RET_STD_FLOOR,
    VOLUME_DELTA,
    feature_names,
    market_series,
    raw_observed,
    symbol_surprise,
)
from lems.data.synthetic import synthetic_market
from lems.data.universe import SymbolUniverse
from lems.data.windows import make_states, make_windows
from lems.models import LargeExecutionModel

LOOKBACK, HORIZON = 12, 4
MARKET = slice(N_OBSERVED, N_OBSERVED + len(MARKET_FEATURES))


@pytest.fixture(scope="module")
def bars():
    """Three hourly 24/7 symbols of 8 days; SYN1 misses one bar and SYN2 starts a day late."""
    frame = synthetic_market(n_assets=3, n_days=8, calendar="24/7", seed=5)
    ns = timestamps_ns(frame["timestamp"])
    first = ns.min()
    missing = (frame["symbol"] == "SYN1") & (ns == first + 100 * 3_600_000_000_000)
    late = (frame["symbol"] == "SYN2") & (ns < first + 24 * 3_600_000_000_000)
    return frame[~(missing | late)].reset_index(drop=True)


def _alter(frame: pd.DataFrame, rows: np.ndarray, seed: int) -> pd.DataFrame:
    """Prices and volumes of ``rows`` scaled at random (OHLC kept consistent)."""
    rng = np.random.default_rng(seed)
    out = frame.copy()
    scale = rng.uniform(0.7, 1.4, rows.sum())
    for col in ("open", "high", "low", "close", "price"):
        out.loc[rows, col] = out.loc[rows, col].to_numpy() * scale
    out.loc[rows, "high"] = out.loc[rows, ["open", "high", "close", "price"]].max(axis=1) * 1.001
    out.loc[rows, "low"] = out.loc[rows, ["open", "low", "close", "price"]].min(axis=1) * 0.999
    volume_scale = rng.uniform(0.2, 5.0, rows.sum())
    for col in ("volume", "notional", "trades"):
        if col in out:
            out.loc[rows, col] = out.loc[rows, col].to_numpy() * volume_scale
    return out


def _tiny_model() -> LargeExecutionModel:
    keras.utils.set_random_seed(0)
    return LargeExecutionModel(lookback=LOOKBACK, n_ahead=HORIZON, hidden_size=8, hidden_rnn_layer=1, num_heads=2,
                               num_embedding=4, fused_mlp_hidden_dim=8)


def test_channel_layout():
    names = feature_names(True)
    assert feature_names(False) == FEATURE_NAMES
    assert names[:N_OBSERVED] == FEATURE_NAMES[:N_OBSERVED] and names[MARKET] == MARKET_FEATURES
    assert names[-N_KNOWN_AHEAD:] == FEATURE_NAMES[-N_KNOWN_AHEAD:]  # known-ahead channels stay the last


def test_perturbing_any_symbol_from_bar_t_changes_nothing_before_t(bars):
    ns = timestamps_ns(bars["timestamp"])
    cut = int(np.sort(np.unique(ns))[130])
    altered = _alter(bars, ns >= cut, seed=1)
    base, other = (make_states(b, LOOKBACK, HORIZON, cross_asset=True) for b in (bars, altered))
    for symbol, st in base.items():
        before = st.ns < cut
        np.testing.assert_array_equal(other[symbol].observed[before], st.observed[before])
        at = np.flatnonzero(st.ns == cut)
        assert at.size == 0 or np.any(other[symbol].observed[at, MARKET] != st.observed[at, MARKET])

    w0, w1 = (make_windows(b, LOOKBACK, HORIZON, cross_asset=True) for b in (bars, altered))
    np.testing.assert_array_equal(w0.origin_index, w1.origin_index)
    model = _tiny_model()
    origin_ns = w0.origin.as_unit("ns").asi8
    hour = 3_600_000_000_000
    keep = (origin_ns <= cut) & (origin_ns > cut - 2 * HORIZON * hour)  # windows with decisions before bar t
    rates = [np.zeros((keep.sum(), 1), np.float32), np.ones((keep.sum(), 1), np.float32)]
    a0 = np.asarray(model.predict([w0.X[keep], *rates], verbose=0))
    a1 = np.asarray(model.predict([w1.X[keep], *rates], verbose=0))
    for row, (symbol, origin) in enumerate(zip(w0.asset[keep], w0.origin_index[keep])):
        horizon_ns = base[symbol].ns[origin:origin + HORIZON]
        decided = int(np.searchsorted(horizon_ns, cut, side="right"))  # bars opening at or before the cut
        np.testing.assert_allclose(a1[row, :decided], a0[row, :decided], atol=1e-6,
                                   err_msg=f"{symbol} at origin {origin}: a decision before bar t changed")
    assert np.abs(a1 - a0).max() > 1e-6  # the test can fail: later decisions react


def _reference_market(bars: pd.DataFrame, level: int) -> dict[str, np.ndarray]:
    """Market channels by the definition, with plain loops."""
    per_symbol = {}
    for symbol, group in bars.groupby("symbol"):
        obs = raw_observed(group.reset_index(drop=True))
        rows = {}
        for j, t in enumerate(timestamps_ns(group["timestamp"])):
            past_v = obs[max(j - level, 0):j, 1]
            past_r = obs[max(j - level, 1):j, 0]
            if past_r.size < 2 or past_v.mean() <= 0:
                continue
            m = past_v.mean()
            d = VOLUME_DELTA * m + 1e-12
            rows[int(t)] = (np.clip(np.log((obs[j, 1] + d) / (m + d)), -FEATURE_CLIP, FEATURE_CLIP),
                            np.clip(obs[j, 0] / max(past_r.std(), RET_STD_FLOOR), -FEATURE_CLIP, FEATURE_CLIP))
        per_symbol[symbol] = rows
    out = {}
    for symbol, group in bars.groupby("symbol"):
        values = []
        for t in timestamps_ns(group["timestamp"]):
            others = [per_symbol[o][int(t)] for o in per_symbol if o != symbol and int(t) in per_symbol[o]]
            values.append(np.mean(others, axis=0) if others else (0.0, 0.0))
        out[symbol] = np.asarray(values)
    return out


def test_values_match_a_hand_computation_with_a_missing_bar(bars):
    small = bars[timestamps_ns(bars["timestamp"]) < timestamps_ns(bars["timestamp"]).min() + 110 * 3_600_000_000_000]
    expected = _reference_market(small, MARKET_LEVEL_BARS)
    states = make_states(small, LOOKBACK, HORIZON, cross_asset=True)
    for symbol, st in states.items():
        np.testing.assert_allclose(st.observed[:, MARKET], expected[symbol], rtol=1e-9, atol=1e-12)
    # the bar SYN1 misses: SYN0's market there is SYN2's value alone
    missing = np.setdiff1d(states["SYN0"].ns, states["SYN1"].ns)
    assert missing.size == 1
    # a short level, by the same hand computation on the functions themselves
    series = market_series({s: (st.ns, st.observed[:, :N_OBSERVED]) for s, st in states.items()}, level_bars=3)
    short = _reference_market(small, 3)
    for symbol, st in states.items():
        got = series.channels(symbol, st.ns, symbol_surprise(st.observed, 3))
        np.testing.assert_allclose(got, short[symbol], rtol=1e-9, atol=1e-12)


def test_one_symbol_universe_has_zero_market_channels(bars):
    one = bars[bars["symbol"] == "SYN0"]
    today = make_windows(one, LOOKBACK, HORIZON)
    cross = make_windows(one, LOOKBACK, HORIZON, cross_asset=True)
    assert cross.feature_names == feature_names(True) and today.feature_names == FEATURE_NAMES
    assert not cross.X[..., MARKET].any()
    np.testing.assert_array_equal(cross.X[..., :N_OBSERVED], today.X[..., :N_OBSERVED])
    np.testing.assert_array_equal(cross.X[..., MARKET.stop:], today.X[..., N_OBSERVED:])


def test_switch_off_gives_todays_windows(bars):
    today = make_windows(bars, LOOKBACK, HORIZON)
    cross = make_windows(bars, LOOKBACK, HORIZON, cross_asset=True)
    assert today.X.shape[-1] == len(FEATURE_NAMES) and cross.X.shape[-1] == len(FEATURE_NAMES) + 2
    np.testing.assert_array_equal(cross.X[..., :N_OBSERVED], today.X[..., :N_OBSERVED])
    np.testing.assert_array_equal(cross.X[..., MARKET.stop:], today.X[..., N_OBSERVED:])
    assert cross.X[..., MARKET].std() > 0.1


def test_streamed_universe_builds_the_materialised_windows(bars, tmp_path):
    folder = tmp_path / "bars"
    folder.mkdir()
    for symbol, group in bars.groupby("symbol"):
        group.to_csv(folder / f"{symbol}.csv", index=False)
    expected = make_windows(bars, LOOKBACK, HORIZON, cross_asset=True, bar_minutes=60)
    for cache in (tmp_path / "cache", tmp_path / "cache"):  # built, then read from the cache
        universe = SymbolUniverse(folder, LOOKBACK, HORIZON, cross_asset=True, cache_dir=cache, bar_minutes=60)
        streamed = universe.windows().to_window_set()
        assert streamed.feature_names == expected.feature_names
        np.testing.assert_array_equal(streamed.X, expected.X)
    assert universe.market_reads == 0  # the second universe read the series from the cache
    batch = next(iter(universe.windows().batches(16, shuffle=False, block_symbols=3)))
    (x, _, _), _, _ = batch
    np.testing.assert_array_equal(x, expected.X[:16])


def test_live_window_is_the_offline_window(bars):
    """Bar by bar, the session's X (market channels fed from the other symbols' bars) equals make_windows' X on
    every position known at the decision; a model with market channels refuses a session without them."""
    from lems.execution import OrderSpec
    from lems.live import ExecutionSession, SessionError

    win = make_windows(bars, LOOKBACK, HORIZON, cross_asset=True)
    i = int(np.flatnonzero((win.asset == "SYN0") & (win.origin_index == 98))[0])  # SYN1 misses horizon bar 2
    t0 = win.origin[i]
    own, others = bars[bars["symbol"] == "SYN0"], bars[bars["symbol"] != "SYN0"]
    order = OrderSpec(side="buy", horizon=HORIZON, target="quantity", benchmark="vwap", min_duration=HORIZON,
                      objective="track", min_rate=0.0, max_rate=1.0)
    model = _tiny_model()
    session = ExecutionSession(model, order, 100.0, own[own["timestamp"] < t0], calendar="24/7",
                               market=others[others["timestamp"] < t0])
    x_ref, n_obs = win.X[i], N_OBSERVED + len(MARKET_FEATURES)
    horizon = own[own["timestamp"] >= t0].iloc[:HORIZON]
    for s, (_, bar) in enumerate(horizon.iterrows()):
        request = session._request(None)
        np.testing.assert_allclose(request.x[:LOOKBACK + s, :n_obs], x_ref[:LOOKBACK + s, :n_obs], rtol=1e-6,
                                   atol=1e-6)
        known = min(LOOKBACK + s + 1, x_ref.shape[0])
        np.testing.assert_allclose(request.x[:known, n_obs:], x_ref[:known, n_obs:], atol=1e-6)
        assert not request.x[LOOKBACK + s:, :n_obs].any()  # nothing observed from the coming bar on
        child = session.next_allocation()
        assert 0.0 <= child.fraction <= 1.0
        same_time = others[others["timestamp"] == bar["timestamp"]]
        session.on_bar_close(bar.to_dict(), market=same_time)
        if s == 1:
            restored = ExecutionSession.from_json(session.to_json(), model)  # the market state persists
            assert restored._window.market.tails.keys() == session._window.market.tails.keys()
    assert session.complete
    with pytest.raises(ValueError, match="market"):
        ExecutionSession(model, order, 100.0, own[own["timestamp"] < t0], calendar="24/7")
    with pytest.raises(SessionError):  # market bars of another open time
        fresh = ExecutionSession(model, order, 100.0, own[own["timestamp"] < t0], calendar="24/7",
                                 market=others[others["timestamp"] < t0])
        fresh.next_allocation()
        fresh.on_bar_close(horizon.iloc[0].to_dict(), market=others[others["timestamp"] < t0].tail(2))


def test_cli_flag_reaches_the_config_and_the_windows(tmp_path):
    from lems.cli import _train_config, build_parser
    from lems.training import TrainConfig
    from lems.training.feed import build_windows, stream_splits

    args = build_parser().parse_args(["train", "synthetic", "--cross-asset", "--synthetic-assets", "2",
                                      "--synthetic-days", "6", "--lookback", "8", "--n-ahead", "4"])
    args.config = None
    config = _train_config(args, ["synthetic"])
    assert config.windows.cross_asset and not TrainConfig().windows.cross_asset  # off by default
    again = TrainConfig.load(config.save(tmp_path / "config.toml"))
    assert again.windows.cross_asset  # lems evaluate reads it back
    windows = build_windows(config)
    assert windows.feature_names == feature_names(True) and windows.X.shape[-1] == len(FEATURE_NAMES) + 2
    train = stream_splits(config.replace(stream=True, cache_dir="none")).train
    assert train.universe.cross_asset and train.universe.feature_names == feature_names(True)
