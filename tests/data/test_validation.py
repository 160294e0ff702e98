"""Tests of lems.data.validation: the canonical bars frame and its errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lems.data.validation import (
    BAR_COLUMNS,
    bar_vwap,
    infer_bar_minutes,
    parse_timestamps,
    validate_bars,
)


# ----------------------------------------------------------------------------------------------
# Helpers building tiny frames
# ----------------------------------------------------------------------------------------------
def make_bars(n: int = 5, *, start: str = "2021-01-01T00:00:00Z", freq: str = "1h", **over) -> pd.DataFrame:
    """A small valid single-symbol frame with ISO timestamps; ``over`` replaces columns."""
    ts = pd.date_range(start, periods=n, freq=freq)
    close = 100.0 + np.arange(n)
    df = pd.DataFrame(
        {
            "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "open": close - 0.5,
            "high": close + 1.0,
            "low": close - 1.0,
            "close": close,
            "volume": np.full(n, 10.0),
            "notional": np.full(n, 10.0) * close,
            "trades": np.full(n, 3.0),
        }
    )
    for k, v in over.items():
        df[k] = v
    return df


def with_cell(df: pd.DataFrame, col: str, row: int, value) -> pd.DataFrame:
    """Copy of ``df`` with one cell replaced (object dtype when needed)."""
    out = df.copy()
    if isinstance(value, str) and out[col].dtype != object:
        out[col] = out[col].astype(object)
    out.loc[row, col] = value
    return out


def two_symbols() -> pd.DataFrame:
    a = make_bars(3).assign(symbol="AAA")
    b = make_bars(3).assign(symbol="BBB")
    return pd.concat([a, b], ignore_index=True)


# ----------------------------------------------------------------------------------------------
# Canonical output
# ----------------------------------------------------------------------------------------------
def test_canonical_columns_dtypes_and_values():
    df = make_bars(4)
    out = validate_bars(df)
    assert tuple(out.columns) == BAR_COLUMNS
    assert isinstance(out.index, pd.RangeIndex)
    assert str(out["timestamp"].dtype) == "datetime64[ns, UTC]"
    for c in ("open", "high", "low", "close", "volume", "notional", "price", "trades"):
        assert out[c].dtype == np.float64, c
    assert out["notional_estimated"].dtype == bool
    assert not out["notional_estimated"].any()
    assert (out["symbol"] == "ASSET").all()
    np.testing.assert_allclose(out["price"], df["close"])
    assert out["timestamp"].iloc[0] == pd.Timestamp("2021-01-01T00:00:00Z")


def test_input_not_mutated_and_new_frame():
    df = make_bars(4)
    before = df.copy(deep=True)
    out = validate_bars(df, symbol="XYZ")
    pd.testing.assert_frame_equal(df, before)
    assert out is not df
    assert (out["symbol"] == "XYZ").all()


def test_sorted_by_symbol_then_time_and_interleaved_input():
    a = make_bars(3).assign(symbol="ZZZ")
    b = make_bars(3).assign(symbol="AAA")
    # interleave rows by time: long format sorted by timestamp first
    df = pd.concat([a, b]).sort_values("timestamp", kind="stable").reset_index(drop=True)
    out = validate_bars(df)
    assert list(out["symbol"]) == ["AAA"] * 3 + ["ZZZ"] * 3
    assert out.groupby("symbol")["timestamp"].apply(lambda s: s.is_monotonic_increasing).all()


def test_notional_estimated_when_absent():
    df = make_bars(3).drop(columns=["notional", "trades"])
    out = validate_bars(df)
    assert out["notional_estimated"].all()
    typical = (df["high"] + df["low"] + df["close"]) / 3
    np.testing.assert_allclose(out["notional"], df["volume"] * typical)
    np.testing.assert_allclose(out["price"], typical)
    assert out["trades"].isna().all()


def test_naive_timestamps_localized_with_tz():
    df = make_bars(3)
    df["timestamp"] = pd.date_range("2021-06-01 09:30", periods=3, freq="1h")  # naive
    out = validate_bars(df, tz="America/New_York")
    assert out["timestamp"].iloc[0] == pd.Timestamp("2021-06-01T13:30:00Z")


def test_epoch_units_detected():
    base = pd.Timestamp("2021-01-01T00:00:00Z")
    for mult in (1, 1_000, 1_000_000, 1_000_000_000):
        ints = np.array([1609459200, 1609462800], dtype=np.int64) * mult
        out = parse_timestamps(pd.Series(ints))
        assert out.iloc[0] == base
        assert out.iloc[1] == base + pd.Timedelta(hours=1)


# ----------------------------------------------------------------------------------------------
# Zero-volume bars and gaps are legal
# ----------------------------------------------------------------------------------------------
def test_zero_volume_price_carried_forward():
    df = make_bars(5)
    df.loc[[2, 3], ["volume", "notional"]] = 0.0
    out = validate_bars(df)
    assert len(out) == 5  # nothing dropped
    assert not out["price"].isna().any()
    np.testing.assert_allclose(out["price"], [100, 101, 101, 101, 104])


def test_symbol_starting_with_zero_volume_uses_typical_price():
    df = two_symbols()
    df.loc[[3, 4], ["volume", "notional"]] = 0.0  # first two bars of BBB
    out = validate_bars(df)
    bbb = out[out["symbol"] == "BBB"]
    typical = (bbb["high"] + bbb["low"] + bbb["close"]) / 3
    np.testing.assert_allclose(bbb["price"].iloc[:2], typical.iloc[:2])
    assert bbb["price"].iloc[2] == pytest.approx(102.0)
    # AAA's last VWAP must not leak into BBB
    assert bbb["price"].iloc[0] != out[out["symbol"] == "AAA"]["price"].iloc[-1]


def test_bar_vwap_numpy():
    vol = np.array([0.0, 2.0, 0.0, 0.0, 4.0])
    notl = np.array([0.0, 20.0, 0.0, 0.0, 48.0])
    fb = np.array([7.0, 7.0, 7.0, 7.0, 7.0])
    np.testing.assert_allclose(bar_vwap(vol, notl, fb), [7.0, 10.0, 10.0, 10.0, 12.0])
    with pytest.raises(ValueError, match="same length"):
        bar_vwap(vol, notl[:2], fb)


def test_equity_like_nights_and_weekends_no_phantom_bars():
    sessions = pd.bdate_range("2021-03-01", periods=5)  # Mon..Fri
    local = [d + pd.Timedelta(hours=h, minutes=m) for d in sessions for h, m in ((9, 30), (10, 0), (11, 0), (12, 0))]
    ts = pd.DatetimeIndex(local).tz_localize("America/New_York")
    df = make_bars(len(ts))
    df["timestamp"] = ts
    out = validate_bars(df)
    assert len(out) == len(ts) == 20
    assert (out["timestamp"].to_numpy() == ts.tz_convert("UTC").as_unit("ns").to_numpy()).all()
    assert infer_bar_minutes(out) == 60


def test_gaps_are_legal():
    df = make_bars(6).drop(index=[2, 3]).reset_index(drop=True)
    out = validate_bars(df)
    assert len(out) == 4


def test_infer_bar_minutes():
    assert infer_bar_minutes(validate_bars(make_bars(4, freq="5min"))) == 5
    assert infer_bar_minutes(validate_bars(two_symbols())) == 60
    wide = pd.DataFrame({"x": [1, 2, 3]}, index=pd.date_range("2021", periods=3, freq="15min"))
    assert infer_bar_minutes(wide) == 15
    with pytest.raises(ValueError, match="at least 2 bars"):
        infer_bar_minutes(validate_bars(make_bars(1)))


# ----------------------------------------------------------------------------------------------
# Errors: one table of bad inputs -> expected message fragment
# ----------------------------------------------------------------------------------------------
def _naive():
    df = make_bars(3)
    df["timestamp"] = pd.date_range("2021-01-01", periods=3, freq="1h")
    return df


def _mixed_zones():
    df = make_bars(3)
    df["timestamp"] = ["2021-01-01T00:00:00Z", "2021-01-01T02:00:00+01:00", "2021-01-01T02:00:00Z"]
    return df


def _mixed_naive_aware():
    df = make_bars(3)
    df["timestamp"] = ["2021-01-01T00:00:00Z", "2021-01-01T01:00:00", "2021-01-01T02:00:00Z"]
    return df


def _mixed_tz_objects():
    df = make_bars(2)
    df["timestamp"] = pd.Series(
        [pd.Timestamp("2021-01-01", tz="UTC"), pd.Timestamp("2021-01-02", tz="Asia/Tokyo")], dtype=object
    )
    return df


def _swap(df: pd.DataFrame, i: int, j: int) -> pd.DataFrame:
    idx = list(range(len(df)))
    idx[i], idx[j] = idx[j], idx[i]
    return df.iloc[idx].reset_index(drop=True)


BAD_INPUTS = [
    ("empty", lambda: make_bars(3).iloc[:0], "empty frame"),
    ("missing volume", lambda: make_bars(3).drop(columns="volume"), "missing required column(s) ['volume']"),
    ("missing close+time", lambda: make_bars(3).drop(columns=["close", "timestamp"]), "['timestamp', 'close']"),
    ("text in close", lambda: with_cell(make_bars(3), "close", 1, "abc"), "non-numeric text in column 'close' at row 1"),
    ("text in volume", lambda: with_cell(make_bars(3), "volume", 2, "1O"), "column 'volume' at row 2"),
    ("NaN in open", lambda: with_cell(make_bars(3), "open", 1, np.nan), "NaN (missing value) in column 'open'"),
    ("inf in high", lambda: with_cell(make_bars(3), "high", 0, np.inf), "inf in column 'high'"),
    ("NaN in notional", lambda: with_cell(make_bars(3), "notional", 2, np.nan), "column 'notional' at row 2"),
    ("inf in volume", lambda: with_cell(make_bars(3), "volume", 1, np.inf), "inf in column 'volume'"),
    ("negative volume", lambda: with_cell(make_bars(3), "volume", 1, -1.0), "negative volume"),
    ("negative notional", lambda: with_cell(make_bars(3), "notional", 1, -5.0), "negative notional"),
    ("zero price", lambda: with_cell(make_bars(3), "low", 2, 0.0), "non-positive price in column 'low'"),
    ("negative price", lambda: with_cell(make_bars(3), "open", 0, -1.0), "non-positive price in column 'open'"),
    ("high < low", lambda: with_cell(make_bars(3), "high", 1, 50.0), "high < low at row 1 (symbol 'ASSET', timestamp 2021-01-01 01:00:00+00:00)"),
    ("close above high", lambda: with_cell(make_bars(3), "close", 1, 102.5), "close outside [low, high] (column 'close' must lie within the bar's range) at row 1 (symbol 'ASSET', timestamp 2021-01-01 01:00:00+00:00)"),
    ("open below low", lambda: with_cell(two_symbols(), "open", 4, 99.0), "open outside [low, high] (column 'open' must lie within the bar's range) at row 4 (symbol 'BBB', timestamp 2021-01-01 01:00:00+00:00)"),
    ("close below low", lambda: with_cell(make_bars(3), "close", 2, 100.9), "close outside [low, high]"),
    ("unsorted", lambda: _swap(make_bars(4), 1, 2), "unsorted for symbol 'ASSET'"),
    ("duplicated", lambda: with_cell(make_bars(3), "timestamp", 2, "2021-01-01T01:00:00Z"), "duplicated (symbol, timestamp) ('ASSET', 2021-01-01 01:00:00+00:00)"),
    ("duplicated 2nd symbol", lambda: with_cell(two_symbols(), "timestamp", 5, "2021-01-01T01:00:00Z"), "('BBB', 2021-01-01 01:00:00+00:00)"),
    ("naive", _naive, "missing time zone"),
    ("mixed offsets", _mixed_zones, "mixed time zones / mixed offsets"),
    ("mixed naive/aware", _mixed_naive_aware, "mixed time zones / mixed offsets"),
    ("mixed tz objects", _mixed_tz_objects, "mixed time zones / mixed offsets"),
    ("bad timestamp text", lambda: with_cell(make_bars(3), "timestamp", 1, "yesterday"), "unparseable timestamp in column 'timestamp' at row 1"),
    ("missing timestamp", lambda: with_cell(make_bars(3), "timestamp", 1, None), "missing timestamp"),
    ("mixed ms/µs", lambda: make_bars(2, timestamp=[1609459200000, 1609462800000000]), "mixed ms/µs"),
    ("vol 0 notional > 0", lambda: with_cell(make_bars(3), "volume", 1, 0.0), "volume == 0 but notional > 0"),
    ("vol > 0 notional 0", lambda: with_cell(make_bars(3), "notional", 1, 0.0), "volume > 0 but notional == 0"),
    ("missing symbol", lambda: with_cell(two_symbols(), "symbol", 4, None), "missing symbol"),
    ("negative trades", lambda: with_cell(make_bars(3), "trades", 0, -2.0), "negative trades"),
    ("not a frame", lambda: {"a": 1}, "expected a pandas DataFrame"),
]


@pytest.mark.parametrize("make, fragment", [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS])
def test_bad_inputs_raise_clear_errors(make, fragment):
    with pytest.raises(ValueError) as info:
        validate_bars(make())
    assert fragment in str(info.value)


def test_open_close_on_the_range_edges_pass_with_float_tolerance_only():
    df = make_bars(3)
    df["open"], df["close"] = df["low"], df["high"]  # on the edges: valid
    validate_bars(df)
    df.loc[1, "close"] = df.loc[1, "high"] * (1 + 1e-12)  # rounding noise of an export: accepted
    validate_bars(df)
    df.loc[1, "close"] = df.loc[1, "high"] * (1 + 1e-7)  # a real excursion: rejected
    with pytest.raises(ValueError, match="close outside"):
        validate_bars(df)


def test_unsorted_is_not_sorted_silently_but_reverse_is_caught():
    df = make_bars(4).iloc[::-1].reset_index(drop=True)
    with pytest.raises(ValueError, match="unsorted"):
        validate_bars(df)


def test_validate_is_idempotent_on_canonical_frames():
    df = two_symbols()
    df.loc[3, ["volume", "notional"]] = 0.0
    once = validate_bars(df)
    pd.testing.assert_frame_equal(validate_bars(once), once)
