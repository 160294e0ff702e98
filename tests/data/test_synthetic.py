"""Tests of the synthetic market generator (lems.data.synthetic)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lems.data.synthetic import SyntheticMarketConfig, session_days, synthetic_market

CANONICAL = [
    "symbol", "timestamp", "open", "high", "low", "close", "volume", "notional",
    "notional_estimated", "price", "trades",
]  # fmt: skip


@pytest.fixture(scope="module")
def crypto() -> pd.DataFrame:
    return synthetic_market(n_assets=3, n_days=240, seed=1)


@pytest.fixture(scope="module")
def equity() -> pd.DataFrame:
    return synthetic_market(n_assets=2, n_days=240, calendar="session", seed=2)


def _one(df: pd.DataFrame, k: int = 0) -> pd.DataFrame:
    return df[df["symbol"] == sorted(df["symbol"].unique())[k]].reset_index(drop=True)


def _ret(g: pd.DataFrame) -> np.ndarray:
    return np.diff(np.log(g["price"].to_numpy()))


def _ac(x: np.ndarray, lag: int = 1) -> float:
    return float(np.corrcoef(x[lag:], x[:-lag])[0, 1])


def _seasonal_r2(log_v: np.ndarray, slot: np.ndarray) -> float:
    means = pd.Series(log_v).groupby(slot).transform("mean").to_numpy()
    return 1.0 - np.var(log_v - means) / np.var(log_v)


def test_deterministic_for_a_seed():
    a = synthetic_market(n_assets=2, n_days=20, seed=7)
    b = synthetic_market(n_assets=2, n_days=20, seed=7)
    pd.testing.assert_frame_equal(a, b)
    c = synthetic_market(n_assets=2, n_days=20, seed=8)
    assert not np.allclose(a["price"].to_numpy(), c["price"].to_numpy())
    assert not np.allclose(a["volume"].to_numpy(), c["volume"].to_numpy())


@pytest.mark.parametrize("calendar", ["24/7", "session"])
def test_canonical_frame(calendar):
    df = synthetic_market(n_assets=3, n_days=30, calendar=calendar, seed=3)
    assert list(df.columns) == CANONICAL
    assert isinstance(df.index, pd.RangeIndex)
    assert str(df["timestamp"].dtype) == "datetime64[ns, UTC]"
    for c in ("open", "high", "low", "close", "volume", "notional", "price", "trades"):
        assert df[c].dtype == np.float64, c
    assert df["notional_estimated"].dtype == bool and not df["notional_estimated"].any()
    assert pd.api.types.is_string_dtype(df["symbol"].dtype)
    assert not df.drop(columns="trades").isna().any().any()
    key = df[["symbol", "timestamp"]]
    assert key.equals(key.sort_values(["symbol", "timestamp"]).reset_index(drop=True))
    # OHLC consistency, VWAP inside traded bars, exact notional, price = notional / volume
    traded = df["volume"] > 0
    assert (df["high"] >= df[["open", "close"]].max(axis=1)).all()
    assert (df["low"] <= df[["open", "close"]].min(axis=1)).all()
    assert (df.loc[traded, "high"] >= df.loc[traded, "price"]).all()
    assert (df.loc[traded, "low"] <= df.loc[traded, "price"]).all()
    np.testing.assert_allclose(df.loc[traded, "notional"], df.loc[traded, "volume"] * df.loc[traded, "price"], rtol=1e-12)
    np.testing.assert_array_equal(df.loc[traded, "price"], df.loc[traded, "notional"] / df.loc[traded, "volume"])


def test_validate_bars_roundtrip(crypto, equity):
    from lems.data.validation import validate_bars

    for df in (crypto, equity):
        pd.testing.assert_frame_equal(validate_bars(df), df)


def test_zero_volume_bars(crypto, equity):
    zero = crypto[crypto["volume"] == 0]
    assert 0 < len(zero) < 0.01 * len(crypto)  # default 0.2% of 24/7 bars
    assert (zero["notional"] == 0).all()
    for c in ("high", "low", "close"):
        np.testing.assert_array_equal(zero[c], zero["open"])
    prev_price = crypto["price"].shift(1)
    assert (zero["price"] == prev_price.loc[zero.index]).all()  # carried forward
    assert (equity["volume"] > 0).all()
    more = synthetic_market(n_assets=1, n_days=30, seed=0, zero_volume_fraction=0.05)
    assert (more["volume"] == 0).mean() > 0.02


def test_martingale_prices(crypto):
    for k in range(3):
        r = _ret(_one(crypto, k))
        assert abs(r.mean()) < 4 * r.std() / np.sqrt(r.size)
        assert abs(_ac(r)) < 0.08
        assert abs(_ac(r, 2)) < 0.08


def test_fat_tails_and_volatility_clustering(crypto, equity):
    for df in (crypto, equity):
        r = _ret(_one(df))
        z = (r - r.mean()) / r.std()
        assert np.mean(z**4) > 3.5  # Pearson kurtosis, Gaussian = 3
    r = _ret(_one(crypto))
    assert _ac(np.abs(r)) > 0.05


def test_cross_asset_correlation(crypto):
    r = np.stack([_ret(_one(crypto, k)) for k in range(3)])
    c = np.corrcoef(r)
    assert c[0, 1] > 0.2 and c[1, 2] > 0.2
    lv = np.stack([np.log(_one(crypto, k)["volume"].clip(lower=1.0)) for k in range(3)])
    assert np.corrcoef(lv)[0, 1] > 0.2


def test_volume_is_predictable(crypto, equity):
    g = _one(crypto)
    g = g[g["volume"] > 0]
    lv = np.log(g["volume"].to_numpy())
    assert _ac(lv) > 0.5
    assert _seasonal_r2(lv, g["timestamp"].dt.hour.to_numpy()) > 0.2
    # log volume correlates with |return|
    r = np.abs(np.r_[0.0, _ret(g)])
    assert np.corrcoef(r, lv)[0, 1] > 0.1
    e = _one(equity)
    lv = np.log(e["volume"].to_numpy())
    slot = e["timestamp"].dt.tz_convert("America/New_York").dt.strftime("%H:%M").to_numpy()
    assert _seasonal_r2(lv, slot) > 0.2
    deseason = lv - pd.Series(lv).groupby(slot).transform("mean").to_numpy()
    assert _ac(deseason) > 0.5
    # U shape: first and last bars busier (per minute) than midday
    per_min = pd.Series(lv).groupby(slot).mean()
    assert per_min["15:00"] > per_min["12:00"] and per_min["09:30"] - np.log(0.5) > per_min["12:00"]


def test_session_calendar(equity):
    local = equity["timestamp"].dt.tz_convert("America/New_York")
    assert (local.dt.dayofweek < 5).all()
    hhmm = set(local.dt.strftime("%H:%M"))
    assert hhmm <= {"09:30", "10:00", "11:00", "12:00", "13:00", "14:00", "15:00"}
    dates = set(local.dt.date.astype(str))
    for holiday in ("2021-01-18", "2021-02-15", "2021-05-31", "2021-07-05"):
        assert holiday not in dates
    per_session = _one(equity).groupby(local[equity["symbol"] == "SYN0"].dt.date).size()
    assert per_session.mode().iloc[0] == 7
    assert (per_session == 7).mean() > 0.95
    # DST: UTC hour of the open changes, the local time does not
    assert set(_one(equity)["timestamp"].dt.strftime("%H:%M")) >= {"14:30", "13:30"}


def test_session_early_close_and_alignment():
    df = synthetic_market(n_assets=1, n_days=40, calendar="session", start="2021-11-15")
    local = df["timestamp"].dt.tz_convert("America/New_York")
    day = local.dt.date.astype(str)
    assert "2021-11-25" not in set(day)  # Thanksgiving
    early = local[day == "2021-11-26"].dt.strftime("%H:%M").tolist()
    assert early == ["09:30", "10:00", "11:00", "12:00"]
    assert "2021-12-24" not in set(day)  # Christmas observed on Friday
    thirty = synthetic_market(n_assets=1, n_days=3, calendar="session", bar_minutes=30, start="2021-11-15")
    first_day = thirty["timestamp"].dt.tz_convert("America/New_York").dt.date == pd.Timestamp("2021-11-15").date()
    assert first_day.sum() == 13


def test_session_days_helper():
    days, close = session_days("2021-07-01", 7)
    assert [str(d) for d in days] == ["2021-07-01", "2021-07-02", "2021-07-06", "2021-07-07"]
    assert (close == 960).all()


def test_config_and_errors():
    cfg = SyntheticMarketConfig(n_assets=1, n_days=5, seed=4)
    pd.testing.assert_frame_equal(synthetic_market(config=cfg), synthetic_market(n_assets=1, n_days=5, seed=4))
    with pytest.raises(ValueError, match="bar_minutes"):
        synthetic_market(bar_minutes=7)
    with pytest.raises(ValueError, match="calendar"):
        synthetic_market(calendar="weekdays")
    with pytest.raises(ValueError, match="unknown parameter"):
        synthetic_market(volatility=0.1)
    with pytest.raises(ValueError, match="garch"):
        synthetic_market(garch_alpha=0.5, garch_beta=0.6)


@pytest.mark.parametrize("calendar", ["24/7", "session"])
def test_day_level_volume_shocks(calendar):
    """Off by default; when on, one decaying jump per asset and day on the log volume, nothing else changes."""
    kw = dict(n_assets=2, n_days=60, calendar=calendar, seed=7)
    plain = synthetic_market(**kw)
    pd.testing.assert_frame_equal(plain, synthetic_market(**kw, volume_shock_sigma=0.0))
    shocked = synthetic_market(**kw, volume_shock_sigma=1.0, volume_shock_decay=0.8)
    for col in ("timestamp", "open", "high", "low", "close"):
        pd.testing.assert_series_equal(plain[col], shocked[col])
    np.testing.assert_allclose(shocked["price"], plain["price"], rtol=1e-12)
    assert ((plain["volume"] > 0) == (shocked["volume"] > 0)).all()
    for symbol in sorted(plain["symbol"].unique()):
        rows = plain["symbol"] == symbol
        with np.errstate(divide="ignore", invalid="ignore"):
            shock = np.log(shocked.loc[rows, "volume"].to_numpy() / plain.loc[rows, "volume"].to_numpy())
        jumps = shock[1:] - 0.8 * shock[:-1]  # one jump per day, zero elsewhere (NaN next to zero-volume bars)
        jumps = jumps[np.isfinite(jumps)]
        n_days = pd.DatetimeIndex(plain.loc[rows, "timestamp"]).normalize().nunique()
        assert n_days - 3 <= int((np.abs(jumps) > 1e-9).sum()) <= n_days
        assert 0.6 < np.std(jumps[np.abs(jumps) > 1e-9]) < 1.5  # N(0, 1) jumps
        finite = shock[np.isfinite(shock)]
        assert _ac(finite) > 0.5  # the bars just seen predict the next ones


def test_volume_shock_errors():
    with pytest.raises(ValueError, match="volume_shock_sigma"):
        synthetic_market(n_days=5, volume_shock_sigma=-0.1)
    with pytest.raises(ValueError, match="volume_shock_decay"):
        synthetic_market(n_days=5, volume_shock_sigma=1.0, volume_shock_decay=1.0)
