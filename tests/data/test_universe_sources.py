"""SymbolUniverse over freqtrade folders: symbol names as read_bars gives them, and resample_minutes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lems.data.loaders import read_bars
from lems.data.synthetic import synthetic_market
from lems.data.universe import SymbolUniverse, open_symbols
from lems.data.windows import make_windows

pytest.importorskip("pyarrow")  # feather files

LOOKBACK, H = 12, 5
PAIRS = {"AAA_USDT-5m.feather": "AAAUSDT", "BBB_USDT-5m.feather": "BBBUSDT"}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A freqtrade data folder: one 5-minute feather file per pair (date, open, high, low, close, volume)."""
    root = tmp_path_factory.mktemp("freqtrade")
    bars = synthetic_market(n_assets=len(PAIRS), n_days=4, bar_minutes=5, seed=3)
    for name, (_, one) in zip(PAIRS, bars.groupby("symbol", sort=True)):
        frame = one.rename(columns={"timestamp": "date"})[["date", "open", "high", "low", "close", "volume"]]
        frame.reset_index(drop=True).to_feather(root / name)
    return root


def test_folder_symbols_are_the_symbols_read_bars_gives(folder):
    source = open_symbols(folder)
    assert source.symbols == tuple(sorted(PAIRS.values()))
    for name, symbol in PAIRS.items():
        bars = source.read(symbol)
        direct = read_bars(folder / name)
        assert (bars["symbol"] == symbol).all() and (direct["symbol"] == symbol).all()
        pd.testing.assert_frame_equal(bars.reset_index(drop=True), direct.reset_index(drop=True))


def test_single_paths_and_lists_are_named_like_read_bars(folder, tmp_path):
    name = next(iter(PAIRS))
    assert open_symbols([folder / name]).symbols == (PAIRS[name],)
    parquet = tmp_path / name.replace(".feather", ".parquet")
    pd.read_feather(folder / name).to_parquet(parquet)
    assert read_bars(parquet)["symbol"].iloc[0] == PAIRS[name]
    assert open_symbols(parquet).symbols == (PAIRS[name],)
    universe = SymbolUniverse(folder, LOOKBACK, H)
    assert universe.symbols == tuple(sorted(PAIRS.values()))
    assert len(universe.windows()) > 0


def _same_windows(got, ref) -> None:
    assert len(got) == len(ref) > 0
    np.testing.assert_array_equal(got.X, ref.X)
    np.testing.assert_array_equal(got.y, ref.y)
    np.testing.assert_array_equal(got.origin_index, ref.origin_index)
    np.testing.assert_array_equal(got.origin.as_unit("ns").asi8, ref.origin.as_unit("ns").asi8)
    np.testing.assert_array_equal(got.reference_price, ref.reference_price)


@pytest.mark.parametrize("cached", [False, True])
def test_resampled_universe_matches_make_windows_of_resampled_files(folder, tmp_path, cached):
    cache = tmp_path / "cache" if cached else None
    universe = SymbolUniverse(folder, LOOKBACK, H, resample_minutes=15, cache_dir=cache)
    part = universe.windows()
    for name, symbol in PAIRS.items():
        ref = make_windows(read_bars(folder / name, bar_minutes=15), LOOKBACK, H)
        assert part.counts[part.symbols.index(symbol)] == len(ref)
        _same_windows(part.to_window_set([symbol]), ref)
        assert universe.bars(symbol)["timestamp"].diff().dropna().eq(pd.Timedelta(minutes=15)).any()
    plain = SymbolUniverse(folder, LOOKBACK, H, cache_dir=cache).windows()
    assert len(plain) > len(part)  # the 5-minute bars give other (more) windows than the 15-minute ones
    if cached:  # resampled and plain indexes are cached apart; a second resampled split reads only the cache
        assert len(list(cache.glob("*.npz"))) == 2 * len(PAIRS)
        again = SymbolUniverse(folder, LOOKBACK, H, resample_minutes=15, cache_dir=cache)
        np.testing.assert_array_equal(again.windows().counts, part.counts)
        assert again.index_reads == 0


def test_bad_resample_minutes(folder):
    for bad in (0, -5, 7.5, True):
        with pytest.raises(ValueError, match="resample_minutes"):
            SymbolUniverse(folder, LOOKBACK, H, resample_minutes=bad)
    with pytest.raises(ValueError, match="AAAUSDT"):  # not a multiple of the 5-minute bars
        SymbolUniverse(folder, LOOKBACK, H, resample_minutes=7).windows()
