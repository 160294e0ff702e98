"""Tests of calendar, features and leak-free windows (lems.data.calendar/features/windows)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lems.data.calendar import add_calendar
from lems.data.features import (
    FEATURE_NAMES,
    KNOWN_AHEAD_FEATURES,
    N_KNOWN_AHEAD,
    OBSERVED_FEATURES,
    seasonal_volume_profile,
)
from lems.data.synthetic import synthetic_market
from lems.data.windows import WindowDataset, WindowSet, build_batch, make_states, make_windows

NY = "America/New_York"
N_OBS = len(OBSERVED_FEATURES)
LOOKBACK, H = 24, 7


@pytest.fixture(scope="module")
def crypto() -> pd.DataFrame:
    return synthetic_market(n_assets=2, n_days=45, seed=11, zero_volume_fraction=0.01)


@pytest.fixture(scope="module")
def equity() -> pd.DataFrame:
    # spans MLK day (2021-01-18), Presidents day (2021-02-15) and weekends
    return synthetic_market(n_assets=2, n_days=60, calendar="session", seed=12)


@pytest.fixture(scope="module")
def equity_windows(equity) -> WindowSet:
    return make_windows(equity, LOOKBACK, H, tz=NY)


def _ns(ts) -> np.ndarray:
    """UTC nanoseconds of a timestamp column / index."""
    return pd.DatetimeIndex(ts).as_unit("ns").asi8


def _local(ns: np.ndarray) -> pd.DatetimeIndex:
    """New York local times of UTC nanoseconds (any shape, flattened)."""
    return pd.DatetimeIndex(np.asarray(ns).ravel().astype("datetime64[ns]")).tz_localize("UTC").tz_convert(NY)


def _row(ws: WindowSet, asset: str, origin_index: int) -> int:
    hit = np.flatnonzero((ws.asset == asset) & (ws.origin_index == origin_index))
    assert hit.size == 1, (asset, origin_index)
    return int(hit[0])


# ----------------------------------------------------------------------------------------------
# Contract
# ----------------------------------------------------------------------------------------------
def test_feature_contract():
    assert OBSERVED_FEATURES[:2] == ("ret", "log_volume")
    assert KNOWN_AHEAD_FEATURES[-2:] == ("seasonal_volume", "seasonal_share")
    assert FEATURE_NAMES == OBSERVED_FEATURES + KNOWN_AHEAD_FEATURES
    assert N_KNOWN_AHEAD == len(KNOWN_AHEAD_FEATURES) == 9


def test_window_shapes(equity_windows):
    ws = equity_windows
    n = len(ws)
    assert n > 100
    assert ws.X.shape == (n, LOOKBACK + H - 1, len(FEATURE_NAMES)) and ws.X.dtype == np.float32
    assert ws.y.shape == (n, H, 2) and ws.y.dtype == np.float32
    assert ws.prices.shape == ws.volumes.shape == (n, H)
    assert str(ws.origin.tz) == "UTC" and ws.n_known == N_KNOWN_AHEAD
    assert np.isfinite(ws.X).all() and np.isfinite(ws.y).all()
    np.testing.assert_allclose(ws.y[..., 0].sum(axis=1), 1.0, atol=1e-5)
    assert (ws.y[..., 0].max(axis=1) > 0).all()
    # rows ordered by (origin, asset)
    key = pd.DataFrame({"o": ws.origin, "a": ws.asset})
    assert key.equals(key.sort_values(["o", "a"], kind="stable"))


# ----------------------------------------------------------------------------------------------
# Calendar
# ----------------------------------------------------------------------------------------------
def test_calendar_session_columns():
    df = synthetic_market(n_assets=1, n_days=30, calendar="session", start="2021-03-01")  # DST 03-14
    cal = add_calendar(df, tz=NY)
    first = cal[cal["first_bar_of_session"]]
    assert (first["tod_minutes"] == 570).all() and (first["minutes_since_open"] == 0).all()
    assert (first["bar_in_session"] == 0).all()
    assert set(cal["slot"]) == {570, 600, 660, 720, 780, 840, 900}
    assert set(cal["minutes_since_open"]) == {0, 30, 90, 150, 210, 270, 330}
    # overnight gaps: 18.5 h on weekdays, 66.5 h over a weekend (65.5 h over the DST switch);
    # 0.5 h after the 30-min first bar
    assert set(np.round(first["gap_hours"].iloc[1:], 6)) == {18.5, 65.5, 66.5}
    assert set(cal.loc[cal["bar_in_session"] == 1, "gap_hours"]) == {0.5}
    utc = add_calendar(df, tz="UTC")
    assert len(set(utc["slot"])) > 7  # DST shifts UTC slots; the local calendar does not


def test_calendar_crypto(crypto):
    cal = add_calendar(crypto)
    assert cal.attrs["bar_minutes"] == 60
    assert (cal.loc[cal["first_bar_of_session"], "tod_minutes"] == 0).all()
    assert (cal["minutes_since_open"] == cal["tod_minutes"]).all()
    assert (cal["gap_hours"] == 1.0).all()


# ----------------------------------------------------------------------------------------------
# Seasonal profile
# ----------------------------------------------------------------------------------------------
def test_seasonal_volume_profile_matches_brute_force(equity):
    cal = add_calendar(equity[equity["symbol"] == "SYN0"].reset_index(drop=True), tz=NY)
    vol, slot = cal["volume"].to_numpy(), cal["slot"].to_numpy()
    rng = np.random.default_rng(0)
    origin = rng.integers(1, len(cal) - 10, size=40)
    origin[:3] = [1, 2, 7]  # slots without history -> fallback
    query = origin[:, None] + np.arange(-5, 8)[None, :]
    query = np.clip(query, 0, len(cal) - 1)
    got = seasonal_volume_profile(cal, origin, query, n_days=5)
    for n, i in enumerate(origin):
        for k, q in enumerate(query[n]):
            past = vol[:i][slot[:i] == slot[q]][-5:]
            want = past.mean() if past.size else vol[:i].mean()
            assert got[n, k] == pytest.approx(want, rel=1e-12)
    fb = seasonal_volume_profile(cal, origin, query, n_days=5, fallback=np.full(40, -1.0))
    no_history = slot[query[0]] != slot[0]  # origin 1: only bar 0's slot has history
    assert (fb[0, no_history] == -1.0).all() and (fb[0, ~no_history] == vol[0]).all()
    with pytest.raises(ValueError, match="out of range"):
        seasonal_volume_profile(cal, origin, query + len(cal))


# ----------------------------------------------------------------------------------------------
# Data-level causality (EXECUTION.md §3)
# ----------------------------------------------------------------------------------------------
def _perturb(bars: pd.DataFrame, symbol: str, first: int, seed: int) -> pd.DataFrame:
    """Alter price, volume, notional, OHLC of the symbol's bars with index >= first."""
    out = bars.copy()
    rows = np.flatnonzero(out["symbol"].to_numpy() == symbol)[first:]
    rng = np.random.default_rng(seed)
    f = lambda: np.exp(rng.normal(0.0, 0.05, rows.size))  # noqa: E731
    o, c, p = out.loc[rows, "open"] * f(), out.loc[rows, "close"] * f(), out.loc[rows, "price"] * f()
    out.loc[rows, "open"], out.loc[rows, "close"] = o, c
    out.loc[rows, "high"] = np.maximum(out.loc[rows, "high"] * f(), np.maximum(np.maximum(o, c), p))
    out.loc[rows, "low"] = np.minimum(out.loc[rows, "low"] * f(), np.minimum(np.minimum(o, c), p))
    vol = out.loc[rows, "volume"] * np.exp(rng.normal(0.0, 0.7, rows.size))
    out.loc[rows, "volume"] = vol
    out.loc[rows, "notional"] = vol * p
    return out.drop(columns="price")  # recomputed from notional / volume by validate_bars


@pytest.mark.parametrize("calendar,tz", [("24/7", "UTC"), ("session", NY)])
def test_data_level_causality(calendar, tz, crypto, equity):
    bars = crypto if calendar == "24/7" else equity
    sym = "SYN1"
    n_sym = int((bars["symbol"] == sym).sum())
    base = make_windows(bars, LOOKBACK, H, tz=tz)
    origins = [LOOKBACK + 40, n_sym // 2 + 3, n_sym - H - 5]
    for t0 in origins:
        ref = base.X[_row(base, sym, t0)]
        for s in range(H):
            alt = make_windows(_perturb(bars, sym, t0 + s, seed=100 * t0 + s), LOOKBACK, H, tz=tz)
            x = alt.X[_row(alt, sym, t0)]
            np.testing.assert_array_equal(x[: LOOKBACK + s, :N_OBS], ref[: LOOKBACK + s, :N_OBS])
            np.testing.assert_array_equal(x[:, N_OBS:], ref[:, N_OBS:])  # known: never depend on >= t0
            if s < H - 1:  # the perturbation is visible from position lookback + s on
                assert not np.array_equal(x[LOOKBACK + s, :N_OBS], ref[LOOKBACK + s, :N_OBS])
        # altering bars >= t0 keeps the normalisation: horizon returns are scaled by the OLD std
        alt = make_windows(_perturb(bars, sym, t0, seed=t0), LOOKBACK, H, tz=tz)
        st = alt.bars[sym]
        logp = np.log(st["price"].to_numpy())
        old = base.bars[sym]
        old_ret = np.diff(np.log(old["price"].to_numpy()))[t0 - LOOKBACK - 1 : t0 - 1]
        new_ret = np.diff(logp)[t0 - 1 : t0 + H - 2]
        x = alt.X[_row(alt, sym, t0)]
        np.testing.assert_allclose(x[LOOKBACK:, 0], new_ret / old_ret.std(), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Alignment on equity-like data (nights, weekends, holidays)
# ----------------------------------------------------------------------------------------------
def test_alignment_equity_like(equity, equity_windows):
    ws = equity_windows
    raw = equity
    local_origin = ws.origin.tz_convert(NY)
    last_of_session = np.flatnonzero((local_origin.hour == 15) & (local_origin.dayofweek == 4))
    first_of_session = np.flatnonzero((local_origin.hour == 9))
    picks = np.r_[last_of_session[:3], first_of_session[:3], np.linspace(0, len(ws) - 1, 6).astype(int)]
    for k in picks:
        sym, i = ws.asset[k], int(ws.origin_index[k])
        g = raw[raw["symbol"] == sym].reset_index(drop=True)  # the raw bars, not the window's copy
        assert g["timestamp"].iloc[i] == ws.origin[k]
        p, v = g["price"].to_numpy(), g["volume"].to_numpy()
        # the s-th ACTUAL bar after the origin (searchsorted on the raw timestamps)
        pos = np.searchsorted(_ns(g["timestamp"]), ws.origin[k].as_unit("ns").value) + np.arange(H)
        assert ws.reference_price[k] == p[i - 1]
        np.testing.assert_allclose(ws.y[k, :, 1] * p[i - 1], p[pos], rtol=1e-6)
        np.testing.assert_allclose(ws.y[k, :, 0], v[pos] / v[pos].sum(), rtol=1e-5)
        np.testing.assert_array_equal(ws.prices[k], p[pos])
        ret = np.r_[0.0, np.diff(np.log(p))]  # ret[j] = log(p_j / p_{j-1}), 0 for the first bar
        want = ret[i - 1] / ret[i - LOOKBACK : i].std()
        assert ws.X[k, LOOKBACK - 1, 0] == pytest.approx(want, rel=1e-5)
        assert ws.horizon_end[k] == g["timestamp"].iloc[i + H - 1]
    # Friday 15:00 origin: the horizon continues on the next trading day, no phantom bar
    k = int(last_of_session[0])
    start = ws.origin[k].tz_convert(NY)
    nxt = ws.bars[ws.asset[k]]["timestamp"].iloc[ws.origin_index[k] + 1].tz_convert(NY)
    assert nxt.dayofweek == 0 or (nxt - start).days >= 3
    assert (nxt.hour, nxt.minute) == (9, 30)


def test_no_phantom_bars_and_positions(equity_windows):
    ws = equity_windows
    for sym, cal in ws.bars.items():
        sel = ws.asset == sym
        idx = ws.origin_index[sel][:, None] + np.arange(-LOOKBACK, H)[None, :]
        local = _local(_ns(cal["timestamp"])[idx])
        assert set(local.strftime("%H:%M")) <= {"09:30", "10:00", "11:00", "12:00", "13:00", "14:00", "15:00"}
        assert (local.dayofweek < 5).all()
        assert not {"2021-01-18", "2021-02-15"} & set(local.strftime("%Y-%m-%d"))
        # known-ahead channels describe the bar at each position
        tod = np.arctan2(ws.X[sel][..., N_OBS], ws.X[sel][..., N_OBS + 1]) % (2 * np.pi) * 1440 / (2 * np.pi)
        np.testing.assert_allclose(tod, cal["tod_minutes"].to_numpy()[idx[:, :-1]], atol=0.05)


# ----------------------------------------------------------------------------------------------
# Zero volume
# ----------------------------------------------------------------------------------------------
def test_zero_volume_inside_windows_and_dropped_horizon(crypto):
    bars = crypto.copy()
    sym_rows = np.flatnonzero(bars["symbol"].to_numpy() == "SYN0")
    dead = sym_rows[300 : 300 + H]  # a whole horizon without trades
    bars.loc[dead, ["volume", "notional"]] = 0.0
    prev_close = bars.loc[sym_rows[299], "close"]
    bars.loc[dead, ["open", "high", "low", "close"]] = prev_close
    bars = bars.drop(columns="price")
    ws = make_windows(bars, LOOKBACK, H)
    assert np.isfinite(ws.X).all() and np.isfinite(ws.y).all()
    kept = set(ws.origin_index[ws.asset == "SYN0"])
    assert 300 not in kept  # horizon 300..306 has zero volume
    assert {299, 301, 306} <= kept  # partially dead horizons are kept
    k = _row(ws, "SYN0", 320)  # the dead bars sit inside this lookback
    x = ws.X[k]
    assert np.isfinite(x).all() and x[LOOKBACK - 20, 1] < -5  # log((0 + d) / (m + d)) = log(1e-3)
    np.testing.assert_allclose(ws.y[:, :, 0].sum(axis=1), 1.0, atol=1e-5)
    # windows whose lookback has zero volume are dropped too
    more = crypto.copy()
    more.loc[sym_rows[500 : 500 + LOOKBACK], ["volume", "notional"]] = 0.0
    ws2 = make_windows(more.drop(columns="price"), LOOKBACK, H)
    assert 500 + LOOKBACK not in set(ws2.origin_index[ws2.asset == "SYN0"])


# ----------------------------------------------------------------------------------------------
# Split, streaming dataset, build_batch
# ----------------------------------------------------------------------------------------------
def test_split_purging(equity_windows):
    ws = equity_windows
    t1, t2 = ws.origin[len(ws) // 2], ws.origin[3 * len(ws) // 4]
    train, val, test = ws.split(t1, t2)
    assert len(train) and len(val) and len(test)
    assert (train.horizon_end < t1).all()
    assert (val.origin >= t1).all() and (val.horizon_end < t2).all()
    assert (test.origin >= t2).all()
    assert len(train) + len(val) + len(test) < len(ws)  # straddling windows purged
    tr, te = ws.split(t1)
    assert len(tr) == len(train) and (te.origin >= t1).all()
    for part in (train, val, test):
        for sym, cal in part.bars.items():
            sel = part.asset == sym
            end = _ns(cal["timestamp"])[part.origin_index[sel] + H - 1]
            np.testing.assert_array_equal(end, _ns(part.horizon_end[sel]))
    sub = ws.subset(np.arange(5))
    np.testing.assert_array_equal(sub.X, ws.X[:5])
    assert len(ws.subset(ws.asset == "SYN0")) == int((ws.asset == "SYN0").sum())


def test_window_dataset_matches_make_windows(equity, equity_windows):
    ws = equity_windows
    ds = WindowDataset(equity, LOOKBACK, H, batch_size=50, shuffle=False, tz=NY, min_rate=0.01, max_rate=0.5)
    assert len(ds) == int(np.ceil(len(ws) / 50))
    (x, lo, hi), y = ds[1]
    np.testing.assert_array_equal(x, ws.X[50:100])
    np.testing.assert_array_equal(y, ws.y[50:100])
    assert lo.shape == hi.shape == (50, 1) and lo.dtype == np.float32
    assert (lo == np.float32(0.01)).all() and (hi == np.float32(0.5)).all()
    shuffled = WindowDataset(equity, LOOKBACK, H, batch_size=64, shuffle=True, seed=3, tz=NY)
    code, origin = shuffled.rows(2)
    (x, _, _), y = shuffled[2]
    names = np.array(list(shuffled.states))
    rows = [_row(ws, names[c], o) for c, o in zip(code, origin)]
    np.testing.assert_array_equal(x, ws.X[rows])
    np.testing.assert_array_equal(y, ws.y[rows])
    before = shuffled.rows(0)[1].copy()
    shuffled.on_epoch_end()
    assert not np.array_equal(before, shuffled.rows(0)[1])
    with pytest.raises(ValueError, match="infeasible"):
        WindowDataset(equity, LOOKBACK, H, max_rate=0.1)  # 7 * 0.1 < 1


def test_build_batch_and_options(equity):
    states = make_states(equity, LOOKBACK, H, tz=NY)
    st = states["SYN0"]
    b = build_batch(st, np.array([LOOKBACK, LOOKBACK + 5]))
    assert b.X.shape == (2, LOOKBACK + H - 1, len(FEATURE_NAMES))
    with pytest.raises(ValueError, match="origin indices"):
        build_batch(st, np.array([LOOKBACK - 1]))
    with pytest.raises(ValueError, match="origin indices"):
        build_batch(st, np.array([st.n_bars - H + 1]))
    ws = make_windows(equity, LOOKBACK, H, tz=NY, stride=7, start="2021-02-01", end="2021-02-20")
    assert (ws.origin >= pd.Timestamp("2021-02-01", tz="UTC")).all()
    assert (ws.origin < pd.Timestamp("2021-02-20", tz="UTC")).all()
    assert (np.diff(np.sort(ws.origin_index[ws.asset == "SYN0"])) % 7 == 0).all()
    hist = make_windows(equity, LOOKBACK, H, tz=NY, min_history=100)
    assert ws.origin_index.min() >= LOOKBACK and hist.origin_index.min() == 100
    with pytest.raises(ValueError):
        make_windows(equity, 1, H)


# ----------------------------------------------------------------------------------------------
# Real data (skips when ../shared/data is absent)
# ----------------------------------------------------------------------------------------------
def test_real_equities(shared_data):
    from lems.data.loaders import read_bars

    bars = read_bars(shared_data / "equities_1h" / "SPY.csv")
    bars = bars[(bars["timestamp"] >= "2019-06-01") & (bars["timestamp"] < "2020-06-01")]
    ws = make_windows(bars.reset_index(drop=True), 35, 7, tz=NY)
    assert len(ws) > 1000
    assert np.isfinite(ws.X).all()
    np.testing.assert_allclose(ws.y[..., 0].sum(axis=1), 1.0, atol=1e-5)
    cal = ws.bars["SPY"]
    assert set(cal["slot"]) <= {570, 600, 660, 720, 780, 840, 900}
    assert cal["minutes_since_open"].between(0, 390).all()
    assert (cal.loc[cal["first_bar_of_session"], "slot"] == 570).all()
    idx = ws.origin_index[:, None] + np.arange(7)[None, :]
    local = _local(_ns(cal["timestamp"])[idx])
    assert (local.dayofweek < 5).all()
    assert ((local.hour * 60 + local.minute) >= 570).all() and (local.hour < 16).all()
    # an origin at the last bar of a session continues with the next session's first bar
    last = cal["bar_in_session"].to_numpy()[ws.origin_index] == 6
    nxt = cal["first_bar_of_session"].to_numpy()[ws.origin_index[last] + 1]
    assert last.any() and nxt.all()


def test_real_crypto(shared_data):
    from lems.data.loaders import read_bars

    bars = read_bars(shared_data / "crypto_1h" / "BTCUSDT.csv")
    bars = bars[(bars["timestamp"] >= "2020-11-01") & (bars["timestamp"] < "2021-03-01")]
    ws = make_windows(bars.reset_index(drop=True), 48, 12)
    assert len(ws) > 2000 and np.isfinite(ws.X).all()
    np.testing.assert_allclose(ws.y[..., 0].sum(axis=1), 1.0, atol=1e-5)
    gap = ws.X[..., N_OBS + KNOWN_AHEAD_FEATURES.index("log_gap_hours")]
    assert (gap > 0).any()  # missing hours (e.g. 2020-12-21) are skipped, shown as gaps


def test_static_curve_beats_twap_on_vwap_tracking(equity_windows):
    """Synthetic volume is predictable: the causal seasonal curve tracks VWAP better than TWAP."""
    ws = equity_windows
    err = {"twap": [], "static": []}
    for sym, cal in ws.bars.items():
        sel = ws.asset == sym
        o = ws.origin_index[sel]
        curve = seasonal_volume_profile(cal, o, o[:, None] + np.arange(H)[None, :], n_days=20)
        p, v = ws.prices[sel], ws.volumes[sel]
        vwap = (v * p).sum(axis=1) / v.sum(axis=1)
        for name, a in (("twap", np.ones_like(curve)), ("static", curve)):
            a = a / a.sum(axis=1, keepdims=True)
            err[name].append(np.abs((a * p).sum(axis=1) / vwap - 1.0))
    twap, static = np.concatenate(err["twap"]).mean(), np.concatenate(err["static"]).mean()
    assert static < 0.8 * twap


def test_volume_channels_give_volumes_relative_to_the_lookback_mean(equity_windows):
    """``V / m`` and ``S / m`` come back from the volume channels through VOLUME_DELTA (what the model's volume
    forecast reads): the horizon volumes as realised, shares of the horizon as in ``y``."""
    from lems.data.features import SEASONAL_VOLUME_CHANNEL, VOLUME_DELTA

    ws = equity_windows
    volume = np.exp(ws.X[..., OBSERVED_FEATURES.index("log_volume")].astype(np.float64)) * (1 + VOLUME_DELTA) \
        - VOLUME_DELTA
    horizon = volume[:, LOOKBACK:]  # bars 0 .. H-2, relative to the lookback mean
    m = ws.volumes[:, 0] / horizon[:, 0]
    ok = horizon[:, 0] > 1e-6
    np.testing.assert_allclose(horizon[ok] * m[ok, None], ws.volumes[ok, :-1], rtol=1e-4, atol=1e-3)
    seasonal = np.exp(ws.X[..., SEASONAL_VOLUME_CHANNEL].astype(np.float64)) * (1 + VOLUME_DELTA) - VOLUME_DELTA
    assert np.all(seasonal > 0) and FEATURE_NAMES[SEASONAL_VOLUME_CHANNEL] == "seasonal_volume"
