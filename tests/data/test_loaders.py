"""Tests of lems.data.loaders: every supported source and its malformed variants."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lems.data.loaders import BINANCE_COLUMNS, bars_from_wide, read_bars, to_wide
from lems.data.validation import BAR_COLUMNS

T0_MS = 1609459200000  # 2021-01-01T00:00:00Z in ms
HOUR_MS = 3_600_000


# ----------------------------------------------------------------------------------------------
# Helpers writing tiny files
# ----------------------------------------------------------------------------------------------
def kline_rows(n: int = 4, *, unit: str = "ms", start_ms: int = T0_MS) -> list[list]:
    """Binance kline rows (12 fields): open_time .. ignore, with exact quote volume."""
    mult = 1000 if unit == "us" else 1
    rows = []
    for i in range(n):
        o = (start_ms + i * HOUR_MS) * mult
        close = 100.0 + i
        vol = 2.0 + i
        quote = vol * (close - 0.25)  # exact notional, deliberately not the typical price
        rows.append([o, close - 0.5, close + 1, close - 1, close, vol, o + HOUR_MS * mult - 1, quote, 10 + i, 1.0, 100.0, 0])
    return rows


def write_kline_csv(path: Path, rows: list[list], *, header: bool = False) -> Path:
    lines = [",".join(BINANCE_COLUMNS)] if header else []
    lines += [",".join(str(v) for v in r) for r in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_zip(path: Path, members: dict[str, str]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in members.items():
            zf.writestr(name, text)
    return path


def generic_frame(n: int = 4, *, notional: bool = True, start: str = "2021-01-01T00:00:00Z") -> pd.DataFrame:
    ts = pd.date_range(start, periods=n, freq="1h")
    close = 50.0 + np.arange(n)
    df = pd.DataFrame(
        {
            "timestamp": ts.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "open": close,
            "high": close + 1,
            "low": close - 1,
            "close": close,
            "volume": np.arange(1, n + 1, dtype=float),
        }
    )
    if notional:
        df["quote_volume"] = df["volume"] * (close + 0.1)
    df["trades"] = np.nan  # empty when unknown, as in the shared data
    return df


def check_canonical(out: pd.DataFrame) -> None:
    assert tuple(out.columns) == BAR_COLUMNS
    assert str(out["timestamp"].dtype) == "datetime64[ns, UTC]"
    assert isinstance(out.index, pd.RangeIndex)
    assert not out["price"].isna().any()


# ----------------------------------------------------------------------------------------------
# Binance
# ----------------------------------------------------------------------------------------------
def test_binance_spot_no_header_ms(tmp_path):
    path = write_kline_csv(tmp_path / "BTCUSDT-1h-2021-01.csv", kline_rows(4))
    out = read_bars(path)
    check_canonical(out)
    assert (out["symbol"] == "BTCUSDT").all()
    assert out["timestamp"].iloc[0] == pd.Timestamp("2021-01-01T00:00:00Z")
    assert out["timestamp"].iloc[3] == pd.Timestamp("2021-01-01T03:00:00Z")
    np.testing.assert_allclose(out["notional"], [2 * 99.75, 3 * 100.75, 4 * 101.75, 5 * 102.75])
    np.testing.assert_allclose(out["price"], [99.75, 100.75, 101.75, 102.75])
    np.testing.assert_allclose(out["trades"], [10, 11, 12, 13])
    assert not out["notional_estimated"].any()


def test_binance_spot_microseconds(tmp_path):
    ms = read_bars(write_kline_csv(tmp_path / "ETHUSDT-1h-2025-01.csv", kline_rows(3)))
    us = read_bars(write_kline_csv(tmp_path / "ETHBTC-1h-2025-01.csv", kline_rows(3, unit="us")))
    pd.testing.assert_series_equal(ms["timestamp"], us["timestamp"])
    assert (us["symbol"] == "ETHBTC").all()


def test_binance_futures_with_header(tmp_path):
    path = write_kline_csv(tmp_path / "BTCUSDT-1h-2021-02.csv", kline_rows(3), header=True)
    out = read_bars(path)
    check_canonical(out)
    assert len(out) == 3 and (out["symbol"] == "BTCUSDT").all()
    np.testing.assert_allclose(out["trades"], [10, 11, 12])
    assert not out["notional_estimated"].any()


def test_binance_zip(tmp_path):
    text = "\n".join(",".join(map(str, r)) for r in kline_rows(3)) + "\n"
    path = write_zip(tmp_path / "SOLUSDT-1h-2021-01.zip", {"SOLUSDT-1h-2021-01.csv": text})
    out = read_bars(path)
    assert len(out) == 3 and (out["symbol"] == "SOLUSDT").all()
    assert read_bars(path, symbol="SOL")["symbol"].eq("SOL").all()


def test_binance_monthly_folder_concatenates(tmp_path):
    write_kline_csv(tmp_path / "BTCUSDT-1h-2021-01.csv", kline_rows(3))
    write_kline_csv(tmp_path / "BTCUSDT-1h-2021-02.csv", kline_rows(3, start_ms=T0_MS + 3 * HOUR_MS))
    out = read_bars(tmp_path)
    assert len(out) == 6 and out["timestamp"].is_monotonic_increasing
    assert out["symbol"].unique().tolist() == ["BTCUSDT"]


def test_binance_reverse_order_needs_sort(tmp_path):
    path = write_kline_csv(tmp_path / "BTCUSDT-1h.csv", kline_rows(4)[::-1])
    with pytest.raises(ValueError, match="unsorted"):
        read_bars(path)
    out = read_bars(path, sort=True)
    assert out["timestamp"].is_monotonic_increasing and len(out) == 4


# ----------------------------------------------------------------------------------------------
# Generic CSV / Parquet
# ----------------------------------------------------------------------------------------------
def test_generic_csv_with_quote_volume(tmp_path):
    df = generic_frame(4)
    df.to_csv(tmp_path / "AAPL.csv", index=False)
    out = read_bars(tmp_path / "AAPL.csv")
    check_canonical(out)
    assert (out["symbol"] == "AAPL").all()
    np.testing.assert_allclose(out["notional"], df["quote_volume"])
    np.testing.assert_allclose(out["price"], df["close"] + 0.1)
    assert not out["notional_estimated"].any()
    assert out["trades"].isna().all()


def test_generic_csv_without_quote_volume_estimates(tmp_path):
    df = generic_frame(4, notional=False).drop(columns="trades")
    df.columns = [c.upper() for c in df.columns]  # case-insensitive names
    df.to_csv(tmp_path / "IBM.csv", index=False)
    out = read_bars(tmp_path / "IBM.csv")
    assert out["notional_estimated"].all()
    typical = (df["HIGH"] + df["LOW"] + df["CLOSE"]) / 3
    np.testing.assert_allclose(out["notional"], df["VOLUME"] * typical)


@pytest.mark.parametrize("unit, mult", [("s", 1), ("ms", 1_000), ("us", 1_000_000)])
def test_generic_csv_epoch_time_column(tmp_path, unit, mult):
    df = generic_frame(3).drop(columns="timestamp")
    df.insert(0, "time", (1609459200 + 3600 * np.arange(3)) * mult)
    df.to_csv(tmp_path / "X.csv", index=False)
    out = read_bars(tmp_path / "X.csv")
    assert out["timestamp"].iloc[2] == pd.Timestamp("2021-01-01T02:00:00Z")


def test_generic_aliases_and_user_columns(tmp_path):
    df = generic_frame(3).rename(columns={"timestamp": "ts", "quote_volume": "turnover", "volume": "qty"})
    df["count"] = [1, 2, 3]
    df = df.drop(columns="trades")
    df.to_csv(tmp_path / "Y.csv", index=False)
    with pytest.raises(ValueError, match="missing required column"):
        read_bars(tmp_path / "Y.csv")
    out = read_bars(tmp_path / "Y.csv", columns={"ts": "timestamp", "qty": "volume"})
    np.testing.assert_allclose(out["notional"], df["turnover"])
    np.testing.assert_allclose(out["trades"], [1, 2, 3])
    with pytest.raises(ValueError, match="columns= names"):
        read_bars(tmp_path / "Y.csv", columns={"nope": "timestamp"})


def test_parquet(tmp_path):
    df = generic_frame(4)
    df["timestamp"] = pd.to_datetime(df["timestamp"], utc=True)
    df.to_parquet(tmp_path / "SPY.parquet")
    out = read_bars(tmp_path / "SPY.parquet")
    check_canonical(out)
    assert (out["symbol"] == "SPY").all() and len(out) == 4


def test_long_csv_with_symbol_column(tmp_path):
    a = generic_frame(3).assign(ticker="AAA")
    b = generic_frame(2).assign(ticker="BBB")
    long = pd.concat([a, b]).sort_values("timestamp", kind="stable")
    long.to_csv(tmp_path / "panel.csv", index=False)
    out = read_bars(tmp_path / "panel.csv")
    assert out.groupby("symbol").size().to_dict() == {"AAA": 3, "BBB": 2}


def test_real_data_like_file_with_empty_trades_and_zero_volume(tmp_path):
    text = (
        "timestamp,open,high,low,close,volume,quote_volume,trades\n"
        "2021-01-01T00:00:00Z,10,11,9,10,0,0,\n"
        "2021-01-01T01:00:00Z,10,11,9,10.5,2,21,5\n"
        "2021-01-01T02:00:00Z,10.5,10.5,10.5,10.5,0,0,\n"
        "2021-01-01T04:00:00Z,10.5,12,10,11,1,11.5,\n"
    )
    (tmp_path / "Z.csv").write_text(text)
    out = read_bars(tmp_path / "Z.csv")
    np.testing.assert_allclose(out["price"], [10.0, 10.5, 10.5, 11.5])  # leading bar: (h+l+c)/3
    assert len(out) == 4  # gap at 03:00 not filled
    assert np.isnan(out["trades"].iloc[0]) and out["trades"].iloc[1] == 5


# ----------------------------------------------------------------------------------------------
# In-memory sources, folders, lists
# ----------------------------------------------------------------------------------------------
def test_pandas_frame_default_symbol_and_datetime_index():
    df = generic_frame(3)
    assert read_bars(df)["symbol"].eq("ASSET").all()
    assert read_bars(df, symbol="EUR")["symbol"].eq("EUR").all()
    indexed = df.set_index(pd.DatetimeIndex(pd.to_datetime(df.pop("timestamp"), utc=True)))
    out = read_bars(indexed)
    assert out["timestamp"].iloc[1] == pd.Timestamp("2021-01-01T01:00:00Z")


def test_polars_frame():
    pl = pytest.importorskip("polars")
    out = read_bars(pl.from_pandas(generic_frame(3)), symbol="PL")
    expected = read_bars(generic_frame(3), symbol="PL")
    pd.testing.assert_frame_equal(out, expected)


def test_polars_without_pyarrow_goes_through_lists_and_other_errors_surface(monkeypatch):
    pl = pytest.importorskip("polars")
    frame = pl.from_pandas(generic_frame(3))
    expected = read_bars(generic_frame(3), symbol="PL")

    def no_pyarrow(self, *args, **kwargs):
        raise ModuleNotFoundError("No module named 'pyarrow'")

    monkeypatch.setattr(type(frame), "to_pandas", no_pyarrow)
    pd.testing.assert_frame_equal(read_bars(frame, symbol="PL"), expected)

    def broken(self, *args, **kwargs):
        raise RuntimeError("a bug, not a missing dependency")

    monkeypatch.setattr(type(frame), "to_pandas", broken)
    with pytest.raises(RuntimeError, match="a bug"):  # no longer swallowed by a broad except
        read_bars(frame, symbol="PL")


def test_parquet_without_engine_says_so(tmp_path, monkeypatch):
    (tmp_path / "SPY.parquet").write_bytes(b"PAR1")

    def no_engine(*args, **kwargs):
        raise ImportError("Unable to find a usable engine")

    monkeypatch.setattr(pd, "read_parquet", no_engine)
    with pytest.raises(ImportError, match="SPY.parquet: reading parquet needs pyarrow or fastparquet"):
        read_bars(tmp_path / "SPY.parquet")


def test_dict_of_frames_and_paths(tmp_path):
    generic_frame(2).to_csv(tmp_path / "file.csv", index=False)
    out = read_bars({"A": generic_frame(3), "B": tmp_path / "file.csv"})
    assert out.groupby("symbol").size().to_dict() == {"A": 3, "B": 2}


def test_folder_and_list(tmp_path):
    generic_frame(3).to_csv(tmp_path / "AAA.csv", index=False)
    generic_frame(2).to_csv(tmp_path / "BBB.csv", index=False)
    write_kline_csv(tmp_path / "CCCUSDT-1h-2021-01.csv", kline_rows(2))
    (tmp_path / "notes.txt").write_text("ignored")
    out = read_bars(tmp_path)
    assert out.groupby("symbol").size().to_dict() == {"AAA": 3, "BBB": 2, "CCCUSDT": 2}
    listed = read_bars([tmp_path / "BBB.csv", str(tmp_path / "AAA.csv")])
    assert listed["symbol"].unique().tolist() == ["AAA", "BBB"]


def test_duplicates_across_files_are_caught(tmp_path):
    write_kline_csv(tmp_path / "BTCUSDT-1h-2021-01.csv", kline_rows(3))
    write_kline_csv(tmp_path / "BTCUSDT-1h-2021-01b.csv", kline_rows(3))
    with pytest.raises(ValueError, match="combining 2 sources.*unsorted"):
        read_bars(tmp_path)
    with pytest.raises(ValueError, match="duplicated"):
        read_bars(tmp_path, sort=True)


# ----------------------------------------------------------------------------------------------
# Wide panels
# ----------------------------------------------------------------------------------------------
def wide_panels():
    idx = pd.date_range("2021-01-01", periods=4, freq="1h", tz="UTC").as_unit("ns")
    vol = pd.DataFrame({"X": [1.0, 0.0, 2.0, 3.0], "Y": [np.nan, 4.0, 5.0, 0.0]}, index=idx)
    notl = pd.DataFrame({"X": [10.0, 0.0, 22.0, 36.0], "Y": [np.nan, 8.0, 15.0, 0.0]}, index=idx)
    return vol, notl


def test_bars_from_wide_and_round_trip():
    vol, notl = wide_panels()
    bars = bars_from_wide(vol, notl)
    check_canonical(bars)
    assert bars.groupby("symbol").size().to_dict() == {"X": 4, "Y": 3}  # NaN volume: no bar
    x = bars[bars["symbol"] == "X"]
    np.testing.assert_allclose(x["price"], [10.0, 10.0, 11.0, 12.0])
    np.testing.assert_allclose(x["open"], x["price"])
    assert (bars["high"] == bars["low"]).all()
    back_v, back_n = to_wide(bars, "volume"), to_wide(bars, "notional")
    pd.testing.assert_frame_equal(back_v, vol, check_names=False, check_freq=False)
    pd.testing.assert_frame_equal(back_n, notl, check_names=False, check_freq=False)
    again = bars_from_wide(back_v, back_n)
    pd.testing.assert_frame_equal(again, bars)


def test_bars_from_wide_with_prices_and_errors():
    vol, notl = wide_panels()
    px = notl / vol.where(vol > 0)
    px = px.ffill().fillna(9.0).where(vol.notna())
    bars = bars_from_wide(vol, notl, px)
    assert bars["close"].to_numpy()[0] == pytest.approx(10.0)
    naive_v, naive_n = vol.tz_localize(None), notl.tz_localize(None)
    with pytest.raises(ValueError, match="missing time zone"):
        bars_from_wide(naive_v, naive_n)
    assert bars_from_wide(naive_v, naive_n, tz="UTC")["timestamp"].iloc[0] == vol.index[0]
    bad = notl.copy()
    bad.iloc[2, 0] = np.nan
    with pytest.raises(ValueError, match="NaN where volumes_df has a bar: asset 'X'"):
        bars_from_wide(vol, bad)
    with pytest.raises(ValueError, match="same index and columns"):
        bars_from_wide(vol, notl[["X"]])


def test_bars_from_wide_drops_bars_before_the_first_trade_with_one_warning():
    """A 24-hour grid whose first rows are the night before the first session: zero volume, no price."""
    idx = pd.date_range("2021-01-04", periods=8, freq="1h", tz="UTC").as_unit("ns")
    vol = pd.DataFrame({"X": [0, 0, 0, 5, 0, 6, 0, 7.0], "Y": [np.nan, 0, 2, 0, 3, 0, 0, 4.0]}, index=idx)
    notl = vol * pd.Series({"X": 10.0, "Y": 20.0})
    with pytest.warns(UserWarning) as record:
        bars = bars_from_wide(vol, notl)
    assert len(record) == 1
    msg = str(record[0].message)
    assert "dropped 4 zero-volume bar(s) before the first trade" in msg
    assert "'X' 3 bar(s) before 2021-01-04 03:00:00+00:00" in msg and "'Y' 1 bar(s) before 2021-01-04 02:00" in msg
    check_canonical(bars)
    x, y = bars[bars["symbol"] == "X"], bars[bars["symbol"] == "Y"]
    assert x["timestamp"].iloc[0] == idx[3] and len(x) == 5  # zero-volume bars after the first trade stay
    assert y["timestamp"].iloc[0] == idx[2] and len(y) == 6
    np.testing.assert_allclose(x["price"], 10.0)
    assert (x["volume"] == 0).sum() == 2
    with pytest.warns(UserWarning, match="before the first trade"):  # the seed API goes through the same path
        assert len(bars_from_wide(vol[["X"]], notl[["X"]])) == 5
    px = (notl / vol.where(vol > 0)).bfill().where(vol.notna())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # with prices, nothing is dropped and nothing is said
        assert len(bars_from_wide(vol, notl, px)) == 8 + 7


def test_bars_from_wide_leading_bars_must_be_empty_and_assets_must_trade():
    idx = pd.date_range("2021-01-04", periods=4, freq="1h", tz="UTC").as_unit("ns")
    vol = pd.DataFrame({"X": [0, 0, 5, 6.0], "Y": [0, 0, 0, 0.0]}, index=idx)
    with pytest.raises(ValueError, match=r"asset\(s\) \['Y'\] never trade"):
        bars_from_wide(vol, vol * 10.0)
    odd_n = vol[["X"]] * 10.0
    odd_n.iloc[1, 0] = 3.0
    with pytest.raises(ValueError, match="asset 'X', timestamp 2021-01-04 01:00:00.00:00: volume 0 and notional 3"):
        bars_from_wide(vol[["X"]], odd_n)
    neg = vol[["X"]].copy()
    neg.iloc[0, 0] = -1.0
    with pytest.raises(ValueError, match="volume -1 and notional 0 before the asset's first trade"):
        bars_from_wide(neg, vol[["X"]] * 10.0)


# ----------------------------------------------------------------------------------------------
# Malformed files: one table of bad files -> expected message fragment
# ----------------------------------------------------------------------------------------------
def _kline_text(rows: list[list]) -> str:
    return "\n".join(",".join(map(str, r)) for r in rows) + "\n"


def _truncated_kline(tmp: Path) -> Path:
    rows = kline_rows(3)
    text = _kline_text(rows[:2]) + ",".join(map(str, rows[2][:5])) + "\n"
    (tmp / "BTCUSDT-1h.csv").write_text(text)
    return tmp / "BTCUSDT-1h.csv"


def _extra_field_kline(tmp: Path) -> Path:
    rows = kline_rows(3)
    rows[1] = rows[1] + [7]
    (tmp / "BTCUSDT-1h.csv").write_text(_kline_text(rows))
    return tmp / "BTCUSDT-1h.csv"


def _text_in_kline(tmp: Path) -> Path:
    rows = kline_rows(3)
    rows[2][4] = "oops"
    (tmp / "BTCUSDT-1h.csv").write_text(_kline_text(rows))
    return tmp / "BTCUSDT-1h.csv"


def _mixed_units(tmp: Path) -> Path:
    rows = kline_rows(3)
    rows[2][0] = rows[2][0] * 1000
    (tmp / "BTCUSDT-1h.csv").write_text(_kline_text(rows))
    return tmp / "BTCUSDT-1h.csv"


def _bad_zip(tmp: Path) -> Path:
    (tmp / "BTCUSDT-1h.zip").write_bytes(b"PK\x03\x04 this is not a zip")
    return tmp / "BTCUSDT-1h.zip"


def _two_member_zip(tmp: Path) -> Path:
    return write_zip(tmp / "BTCUSDT-1h.zip", {"a.csv": _kline_text(kline_rows(2)), "b.csv": "x"})


def _unknown_suffix(tmp: Path) -> Path:
    (tmp / "data.xlsx").write_bytes(b"\x00\x01")
    return tmp / "data.xlsx"


def _headerless_generic(tmp: Path) -> Path:
    (tmp / "raw.csv").write_text("1609459200,1,2,0.5,1,10\n")
    return tmp / "raw.csv"


def _generic_text_in_volume(tmp: Path) -> Path:
    df = generic_frame(4)
    df["volume"] = df["volume"].astype(object)
    df.loc[2, "volume"] = "n/a?"
    df.to_csv(tmp / "G.csv", index=False)
    return tmp / "G.csv"


def _generic_truncated(tmp: Path) -> Path:
    text = generic_frame(3).to_csv(index=False).rstrip("\n") + "\n2021-01-01T03:00:00Z,50,51\n"
    (tmp / "G.csv").write_text(text)
    return tmp / "G.csv"


def _generic_extra_field(tmp: Path) -> Path:
    lines = generic_frame(3).to_csv(index=False).splitlines()
    lines[2] += ",99"
    (tmp / "G.csv").write_text("\n".join(lines) + "\n")
    return tmp / "G.csv"


def _corrupt_parquet(tmp: Path) -> Path:
    (tmp / "SPY.parquet").write_bytes(b"PAR1 this is not a parquet file")
    return tmp / "SPY.parquet"


def _empty_file(tmp: Path) -> Path:
    (tmp / "E.csv").write_text("")
    return tmp / "E.csv"


def _empty_folder(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


BAD_FILES = [
    ("truncated kline row", _truncated_kline, "line 3: expected 12 fields"),
    ("extra kline field", _extra_field_kline, "wrong column count"),
    ("text in kline close", _text_in_kline, "non-numeric text in column 'close' at line 3"),
    ("mixed ms/us", _mixed_units, "mixed ms/µs"),
    ("bad zip", _bad_zip, "unreadable zip"),
    ("two csv in zip", _two_member_zip, "expected exactly one CSV"),
    ("unknown suffix", _unknown_suffix, "unknown format"),
    ("headerless non-binance", _headerless_generic, "unknown format"),
    ("generic text in volume", _generic_text_in_volume, "non-numeric text in column 'volume' at line 4"),
    ("generic truncated row", _generic_truncated, "column 'low' at line 5"),
    ("generic extra field", _generic_extra_field, "wrong column count"),
    ("empty file", _empty_file, "empty file"),
    ("corrupt parquet", _corrupt_parquet, "unreadable parquet file (ArrowInvalid"),
    ("empty folder", _empty_folder, "no supported files"),
]


@pytest.mark.parametrize("make, fragment", [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES])
def test_malformed_files_name_the_file(tmp_path, make, fragment):
    path = make(tmp_path)
    with pytest.raises(ValueError) as info:
        read_bars(path)
    msg = str(info.value)
    assert fragment in msg
    assert path.name in msg


@pytest.mark.parametrize(
    "source, kwargs, fragment",
    [
        (42, {}, "unsupported source type"),
        (pd.DataFrame(), {}, "missing required column"),
        ("x.csv", {"format": "excel"}, "unknown format 'excel'"),
    ],
)
def test_bad_sources(source, kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        read_bars(source, **kwargs)


def test_format_forced(tmp_path):
    generic_frame(2).to_csv(tmp_path / "G.dat", index=False)
    assert len(read_bars(tmp_path / "G.dat", format="csv")) == 2
    with pytest.raises(ValueError, match="not a Binance kline file|wrong column count"):
        read_bars(tmp_path / "G.dat", format="binance")


# ----------------------------------------------------------------------------------------------
# Real data (skipped when ../shared/data is absent)
# ----------------------------------------------------------------------------------------------
EXPECTED_ROWS = {
    "BTCUSDT": 33_413,
    "ETHUSDT": 33_413,
    "SPY": 40_832,
    "AAPL": 40_831,
    "IBM": 40_813,
    "AIG": 40_811,
    "BAC": 40_818,
    **{sym: 40_320 for sym in ("ALGOUSDT", "DOTUSDT", "LINKUSDT", "LTCUSDT")},  # crypto_1m
}


@pytest.mark.data
def test_real_data_loads(shared_data):
    files = sorted(shared_data.glob("*/*.csv"))
    assert len(files) == len(EXPECTED_ROWS)
    bars = read_bars(files)  # every bar passes validate_bars, incl. low <= open, close <= high
    check_canonical(bars)
    assert bars.groupby("symbol").size().to_dict() == EXPECTED_ROWS
    crypto = bars["symbol"].isin(["BTCUSDT", "ETHUSDT"])
    assert not bars.loc[crypto, "notional_estimated"].any()
    assert bars.loc[crypto, "trades"].notna().any() and bars.loc[crypto, "trades"].isna().any()
    zero = bars.loc[bars["volume"] == 0].groupby("symbol").size().to_dict()
    assert zero == {"BTCUSDT": 117, "ETHUSDT": 119, "ALGOUSDT": 22}  # the data README's counts
    assert np.isfinite(bars["price"]).all() and (bars["price"] > 0).all()
    spy = bars[bars["symbol"] == "SPY"]
    assert spy["timestamp"].iloc[0] == pd.Timestamp("1998-01-02T14:30:00Z")
    assert spy["timestamp"].iloc[-1] == pd.Timestamp("2021-03-31T19:00:00Z")
