"""lems.data.resample_bars: exact OHLCV aggregation, gaps, zero-volume bars, sessions, several symbols, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lems.data import resample_bars
from lems.data.loaders import read_bars
from lems.data.validation import BAR_COLUMNS, validate_bars


def fine_bars(n: int = 24, *, start: str = "2024-01-01 00:00", minutes: int = 5, symbol: str = "AAA",
              seed: int = 0, tz: str = "UTC", notional: bool = True) -> pd.DataFrame:
    """``n`` random but valid fine bars of one symbol."""
    rng = np.random.default_rng(seed)
    ts = pd.date_range(pd.Timestamp(start, tz=tz), periods=n, freq=f"{minutes}min").tz_convert("UTC")
    close = 100 + np.cumsum(rng.normal(0, 0.5, n))
    open_ = close + rng.normal(0, 0.2, n)
    high = np.maximum(open_, close) + rng.uniform(0, 0.5, n)
    low = np.minimum(open_, close) - rng.uniform(0, 0.5, n)
    volume = rng.uniform(1, 10, n).round(3)
    frame = pd.DataFrame({"symbol": symbol, "timestamp": ts, "open": open_, "high": high, "low": low,
                          "close": close, "volume": volume, "trades": rng.integers(1, 50, n).astype(float)})
    if notional:
        frame["notional"] = volume * (low + high) / 2
    return validate_bars(frame)


def expected(fine: pd.DataFrame, groups: list[list[int]]) -> pd.DataFrame:
    """Hand aggregation of the given row groups (rows of ``fine``)."""
    rows = []
    for g in groups:
        part = fine.iloc[g]
        rows.append({"open": part["open"].iloc[0], "high": part["high"].max(), "low": part["low"].min(),
                     "close": part["close"].iloc[-1], "volume": part["volume"].sum(),
                     "notional": part["notional"].sum(), "trades": part["trades"].sum()})
    return pd.DataFrame(rows)


def assert_values(out: pd.DataFrame, want: pd.DataFrame) -> None:
    for c in want.columns:
        np.testing.assert_allclose(out[c].to_numpy(), want[c].to_numpy(), rtol=1e-13, atol=0, err_msg=c)


def test_exact_ohlcv_sums_first_last_max_min():
    fine = fine_bars(24)
    out = resample_bars(fine, 15)
    assert list(out.columns) == list(BAR_COLUMNS)
    assert len(out) == 8
    assert_values(out, expected(fine, [list(range(i, i + 3)) for i in range(0, 24, 3)]))
    assert list(out["timestamp"]) == list(pd.date_range("2024-01-01", periods=8, freq="15min", tz="UTC"))
    np.testing.assert_allclose(out["price"], out["notional"] / out["volume"], rtol=1e-14)
    assert not out["notional_estimated"].any()
    # totals are conserved
    assert out["volume"].sum() == pytest.approx(fine["volume"].sum(), rel=1e-14)


def test_same_length_is_identity_and_hourly_from_five_minutes():
    fine = fine_bars(36)
    same = resample_bars(fine, 5)
    pd.testing.assert_frame_equal(same, fine)
    hourly = resample_bars(fine, 60)
    assert_values(hourly, expected(fine, [list(range(0, 12)), list(range(12, 24)), list(range(24, 36))]))


def test_gaps_are_not_filled_and_partial_buckets_follow_the_option():
    fine = fine_bars(24)
    holes = fine.drop(index=[3, 4, 5, 7]).reset_index(drop=True)  # bucket 1 empty, bucket 2 lacks a bar
    keep = resample_bars(holes, 15)
    starts = pd.date_range("2024-01-01", periods=8, freq="15min", tz="UTC")
    assert list(keep["timestamp"]) == [starts[i] for i in (0, 2, 3, 4, 5, 6, 7)]  # the empty bucket does not exist
    assert_values(keep, expected(fine, [[0, 1, 2], [6, 8], *[list(range(i, i + 3)) for i in range(9, 24, 3)]]))
    drop = resample_bars(holes, 15, partial="drop")
    assert list(drop["timestamp"]) == [starts[i] for i in (0, 3, 4, 5, 6, 7)]
    # a bucket missing its FIRST bar keeps the bucket's nominal start and opens at its first existing bar
    late = fine.drop(index=[0]).reset_index(drop=True)
    first = resample_bars(late, 15).iloc[0]
    assert first["timestamp"] == starts[0] and first["open"] == fine["open"].iloc[1]


def test_zero_volume_bars_stay_zero_volume():
    fine = fine_bars(12)
    fine.loc[3:5, ["volume", "notional"]] = 0.0  # a whole bucket without trades
    fine.loc[7, ["volume", "notional"]] = 0.0  # one quiet bar inside a traded bucket
    out = resample_bars(validate_bars(fine), 15)
    assert out["volume"].iloc[1] == 0.0 and out["notional"].iloc[1] == 0.0
    assert out["price"].iloc[1] == out["price"].iloc[0]  # VWAP carried over the zero-volume bar
    assert out["volume"].iloc[2] == pytest.approx(fine["volume"].iloc[[6, 8]].sum(), rel=1e-15)


def test_estimated_notional_and_unknown_trades_propagate():
    fine = fine_bars(6, notional=False)
    fine.loc[4, "trades"] = np.nan
    out = resample_bars(fine, 15)
    assert out["notional_estimated"].all()
    assert out["notional"].iloc[0] == pytest.approx(fine["notional"].iloc[:3].sum(), rel=1e-14)
    assert out["trades"].iloc[0] == fine["trades"].iloc[:3].sum() and np.isnan(out["trades"].iloc[1])


def test_several_symbols_are_aggregated_separately():
    a, b = fine_bars(12, symbol="AAA", seed=1), fine_bars(12, symbol="BBB", seed=2, start="2024-01-01 00:30")
    out = resample_bars(pd.concat([b, a], ignore_index=True).sample(frac=1, random_state=0)
                        .sort_values(["symbol", "timestamp"]), 15)
    assert list(out["symbol"]) == ["AAA"] * 4 + ["BBB"] * 4
    groups = [list(range(i, i + 3)) for i in range(0, 12, 3)]
    assert_values(out[out["symbol"] == "AAA"].reset_index(drop=True), expected(a, groups))
    assert_values(out[out["symbol"] == "BBB"].reset_index(drop=True), expected(b, groups))


def test_buckets_never_span_a_local_date():
    fine = fine_bars(12, start="2024-01-01 23:30")  # 23:30 .. 00:25 UTC
    out = resample_bars(fine, 45)  # 1440 / 45 = 32: the grid ends at midnight exactly
    assert list(out["timestamp"].dt.strftime("%H:%M")) == ["23:15", "00:00"]
    assert_values(out, expected(fine, [list(range(0, 6)), list(range(6, 12))]))
    odd = resample_bars(fine, 35)  # 1440 / 35 is not whole: the day's last bucket (23:55) is cut at midnight
    assert list(odd["timestamp"].dt.strftime("%d %H:%M")) == ["01 23:20", "01 23:55", "02 00:00"]
    assert_values(odd, expected(fine, [list(range(0, 5)), [5], list(range(6, 12))]))
    cut = resample_bars(fine, 35, partial="drop")  # 23:55 .. 00:00 (one bar of one) is whole
    assert "23:55" in set(cut["timestamp"].dt.strftime("%H:%M"))


def test_equity_sessions_anchor_at_the_open():
    tz = "America/New_York"
    days = [fine_bars(78, start=f"2024-03-0{d} 09:30", tz=tz, seed=d) for d in (4, 5)]  # 09:30 .. 16:00
    fine = validate_bars(pd.concat(days, ignore_index=True))
    for anchor in ("09:30", "session"):
        out = resample_bars(fine, 60, tz=tz, anchor=anchor)
        local = out["timestamp"].dt.tz_convert(tz)
        assert list(local.dt.strftime("%H:%M")[:7]) == ["09:30", "10:30", "11:30", "12:30", "13:30", "14:30", "15:30"]
        assert len(out) == 14  # the 15:30 bucket holds 6 bars and no bucket spans the night
        assert_values(out.iloc[:7].reset_index(drop=True),
                      expected(days[0], [list(range(i, min(i + 12, 78))) for i in range(0, 78, 12)]))
        assert len(resample_bars(fine, 60, tz=tz, anchor=anchor, partial="drop")) == 12  # the short 15:30 buckets
    midnight = resample_bars(fine, 60, tz=tz)
    assert midnight["timestamp"].dt.tz_convert(tz).dt.strftime("%H:%M").iloc[0] == "09:00"


def test_session_anchor_uses_the_earliest_bar_over_symbols():
    tz = "America/New_York"
    a = fine_bars(12, start="2024-03-04 09:30", tz=tz, symbol="AAA")
    b = fine_bars(11, start="2024-03-04 09:35", tz=tz, symbol="BBB")  # misses the opening bar
    out = resample_bars(pd.concat([a, b], ignore_index=True), 30, tz=tz, anchor="session")
    local = out["timestamp"].dt.tz_convert(tz).dt.strftime("%H:%M")
    assert list(local[out["symbol"] == "BBB"]) == ["09:30", "10:00"]


def test_read_bars_resamples_with_bar_minutes(tmp_path):
    fine = fine_bars(24)
    path = tmp_path / "AAA.csv"
    fine.drop(columns=["price", "notional_estimated", "symbol"]).to_csv(path, index=False)
    pd.testing.assert_frame_equal(read_bars(path, bar_minutes=15), resample_bars(read_bars(path), 15))


@pytest.mark.parametrize("minutes, match", [(7, "not a multiple"), (0, "positive"), (-15, "positive"),
                                            (12.5, "whole"), ("15", "whole"), (2880, "one day")])
def test_bad_minutes(minutes, match):
    with pytest.raises(ValueError, match=match):
        resample_bars(fine_bars(12), minutes)


def test_bad_options_and_bad_data():
    fine = fine_bars(12)
    with pytest.raises(ValueError, match="partial"):
        resample_bars(fine, 15, partial="fill")
    with pytest.raises(ValueError, match="anchor"):
        resample_bars(fine, 15, anchor="25:00")
    with pytest.raises(ValueError, match="time zone"):
        resample_bars(fine, 15, tz="Mars/Olympus")
    with pytest.raises(ValueError, match="bar length"):
        resample_bars(fine.iloc[:1], 15)
    with pytest.raises(ValueError, match="bar_minutes"):
        resample_bars(fine, 15, bar_minutes=0)
    bad = fine.copy()
    bad.loc[2, "volume"] = -1.0
    with pytest.raises(ValueError, match="negative volume"):
        resample_bars(bad, 15)
    with pytest.raises(ValueError, match="unsorted"):
        resample_bars(fine.iloc[::-1].reset_index(drop=True), 15)


# ----------------------------------------------------------------------------------------------
# Real data (skipped when ../shared/data is absent)
# ----------------------------------------------------------------------------------------------
@pytest.mark.data
def test_real_minute_bars_resample_exactly(shared_data):
    fine = read_bars(shared_data / "crypto_1m" / "LTCUSDT.csv")
    for minutes in (5, 60):
        coarse = resample_bars(fine, minutes)
        bucket = fine["timestamp"].dt.floor(f"{minutes}min")
        want = fine.groupby(bucket).agg(open=("open", "first"), high=("high", "max"), low=("low", "min"),
                                        close=("close", "last"), volume=("volume", "sum"))
        assert list(coarse["timestamp"]) == list(want.index)  # no bucket invented, none lost
        for c in ("open", "high", "low", "close"):
            np.testing.assert_array_equal(coarse[c].to_numpy(), want[c].to_numpy())
        np.testing.assert_allclose(coarse["volume"].to_numpy(), want["volume"].to_numpy(), rtol=1e-12)
        assert (coarse["volume"] == 0).sum() <= (fine["volume"] == 0).sum()
