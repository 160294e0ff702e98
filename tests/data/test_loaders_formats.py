"""read_bars on .csv.gz files and freqtrade data folders (.feather, .json, .json.gz), and the universe loader."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lems.data.loaders import SUPPORTED_SUFFIXES, read_bars, symbol_from_path
from lems.data.universe import open_symbols

T0_MS = 1704067200000  # 2024-01-01T00:00:00Z
FIVE_MIN_MS = 300_000


def ohlcv(n: int = 6, seed: int = 0) -> pd.DataFrame:
    """freqtrade-style candles: date (UTC), open, high, low, close, volume."""
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    open_ = close + rng.normal(0, 0.3, n)
    return pd.DataFrame({
        "date": pd.to_datetime(T0_MS + FIVE_MIN_MS * np.arange(n), unit="ms", utc=True),
        "open": open_, "high": np.maximum(open_, close) + 0.5, "low": np.minimum(open_, close) - 0.5,
        "close": close, "volume": rng.uniform(0, 5, n).round(4),
    })


def write_json(path: Path, frame: pd.DataFrame, *, compress: bool = False) -> Path:
    rows = [[int(t.value // 1_000_000), *map(float, r)] for t, r in
            zip(frame["date"], frame[["open", "high", "low", "close", "volume"]].to_numpy())]
    data = json.dumps(rows).encode()
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


def check_bars(out: pd.DataFrame, frame: pd.DataFrame, symbol: str) -> None:
    assert (out["symbol"] == symbol).all()
    assert list(out["timestamp"]) == list(frame["date"])
    for c in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(out[c].to_numpy(), frame[c].to_numpy())
    typical = (frame["high"] + frame["low"] + frame["close"]) / 3
    np.testing.assert_allclose(out["notional"], frame["volume"] * typical, rtol=1e-15)  # no quote volume
    assert out["notional_estimated"].all()


def test_symbol_rule():
    assert symbol_from_path("data/binance/BTC_USDT-5m.feather") == "BTCUSDT"
    assert symbol_from_path("ETH_BTC-1h.json") == "ETHBTC"
    assert symbol_from_path("ETH_BTC-1h.json.gz") == "ETHBTC"
    assert symbol_from_path("futures/BTC_USDT_USDT-1h-futures.feather") == "BTCUSDT"
    assert symbol_from_path("1000SHIB_USDT-15m.parquet") == "1000SHIBUSDT"
    assert symbol_from_path("AAPL.csv.gz") == "AAPL"
    assert symbol_from_path("BTC_USDT-5m.csv") == "BTC_USDT-5m"  # a CSV keeps its stem
    assert symbol_from_path("notes.feather") == "notes"


def test_feather_file(tmp_path):
    frame = ohlcv()
    path = tmp_path / "BTC_USDT-5m.feather"
    frame.to_feather(path)
    check_bars(read_bars(path), frame, "BTCUSDT")
    assert (read_bars(path, symbol="XBT")["symbol"] == "XBT").all()


@pytest.mark.parametrize("compress", [False, True])
def test_json_file(tmp_path, compress):
    frame = ohlcv(seed=1)
    name = "ETH_USDT-5m.json" + (".gz" if compress else "")
    check_bars(read_bars(write_json(tmp_path / name, frame, compress=compress)), frame, "ETHUSDT")


def test_csv_gz_file(tmp_path):
    frame = ohlcv(seed=2).rename(columns={"date": "timestamp"})
    frame["notional"] = frame["volume"] * frame["close"]
    path = tmp_path / "SOLUSDT.csv.gz"
    path.write_bytes(gzip.compress(frame.to_csv(index=False).encode()))
    out = read_bars(path)
    plain = tmp_path / "plain" / "SOLUSDT.csv"
    plain.parent.mkdir()
    frame.to_csv(plain, index=False)
    pd.testing.assert_frame_equal(out, read_bars(plain))
    assert (out["symbol"] == "SOLUSDT").all() and not out["notional_estimated"].any()


def test_freqtrade_folder_and_resampling(tmp_path):
    btc, eth = ohlcv(12, seed=3), ohlcv(12, seed=4)
    btc.to_feather(tmp_path / "BTC_USDT-5m.feather")
    write_json(tmp_path / "ETH_USDT-5m.json", eth)
    ohlcv(12, seed=5).to_parquet(tmp_path / "SOL_USDT-5m.parquet")  # freqtrade's parquet format
    (tmp_path / "README.txt").write_text("not data")  # ignored: not a bar file
    out = read_bars(tmp_path)
    assert sorted(out["symbol"].unique()) == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]
    check_bars(out[out["symbol"] == "BTCUSDT"].reset_index(drop=True), btc, "BTCUSDT")
    hourly = read_bars(tmp_path, bar_minutes=60)
    assert len(hourly) == 3
    assert hourly["volume"].to_numpy()[:2] == pytest.approx([btc["volume"].sum(), eth["volume"].sum()], rel=1e-14)


def test_universe_discovers_the_new_files(tmp_path):
    assert {".gz", ".feather", ".json"} <= set(SUPPORTED_SUFFIXES)
    ohlcv(seed=5).to_feather(tmp_path / "BTC_USDT-5m.feather")
    write_json(tmp_path / "ETH_USDT-5m.json.gz", ohlcv(seed=6), compress=True)
    frame = ohlcv(seed=7).rename(columns={"date": "timestamp"})
    (tmp_path / "SOLUSDT.csv.gz").write_bytes(gzip.compress(frame.to_csv(index=False).encode()))
    source = open_symbols(tmp_path)
    assert len(source) == 3
    for symbol in source.symbols:
        bars = source.read(symbol)
        assert len(bars) == 6 and (bars["symbol"] == symbol).all()


def test_bad_files(tmp_path):
    (tmp_path / "A_B-5m.json").write_text('{"not": "rows"}')
    with pytest.raises(ValueError, match="JSON list"):
        read_bars(tmp_path / "A_B-5m.json")
    (tmp_path / "A_B-5m.json").write_text("[[1704067200000, 1, 2, 0.5, 1.5]]")
    with pytest.raises(ValueError, match="row 0"):
        read_bars(tmp_path / "A_B-5m.json")
    (tmp_path / "A_B-5m.json").write_text("[[1704067200000, 1, 2, 0.5")
    with pytest.raises(ValueError, match="unreadable JSON"):
        read_bars(tmp_path / "A_B-5m.json")
    (tmp_path / "C_D-5m.json.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="unreadable gzip"):
        read_bars(tmp_path / "C_D-5m.json.gz")
    (tmp_path / "E_F-5m.feather").write_bytes(b"not feather")
    with pytest.raises(ValueError, match="unreadable feather"):
        read_bars(tmp_path / "E_F-5m.feather")
    bad = ohlcv()
    bad.loc[2, "volume"] = -1.0
    bad.to_feather(tmp_path / "G_H-5m.feather")
    with pytest.raises(ValueError, match="G_H-5m.feather.*negative volume"):
        read_bars(tmp_path / "G_H-5m.feather")
    ohlcv().to_feather(tmp_path / "BTC_USDT_USDT-5m-funding_rate.feather")
    with pytest.raises(ValueError, match="not traded bars"):
        read_bars(tmp_path / "BTC_USDT_USDT-5m-funding_rate.feather")


def test_one_pair_twice_in_a_folder_is_an_error(tmp_path):
    ohlcv().to_feather(tmp_path / "BTC_USDT-5m.feather")
    ohlcv().to_feather(tmp_path / "BTC_USDT-1h.feather")
    with pytest.raises(ValueError, match="two freqtrade files hold symbol 'BTCUSDT'"):
        read_bars(tmp_path)
    assert len(read_bars([tmp_path / "BTC_USDT-5m.feather"])) == 6
