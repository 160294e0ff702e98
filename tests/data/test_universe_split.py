"""Tests of lems.data.universe: the symbol split, chunked windows, symbol weighting and the split index cache."""

from __future__ import annotations

import copy
import os

import numpy as np
import pandas as pd
import pytest

from lems.data.calendar import to_utc_ns
from lems.data.synthetic import synthetic_market
from lems.data.universe import SymbolUniverse, choose_holdout
from lems.data.windows import make_windows

LOOKBACK, H = 24, 7


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """(bars, folder of one CSV per symbol): 9 hourly 24/7 symbols of up to 30 days, a few zero-volume bars."""
    bars = synthetic_market(n_assets=9, n_days=30, calendar="24/7", seed=3, zero_volume_fraction=0.02)
    first = bars["timestamp"].min()
    listed = {"SYN2": 5, "SYN5": 3, "SYN7": 9}  # symbols listed later (days): window counts differ by symbol
    late = bars["symbol"].map(listed).fillna(0).astype(int)
    bars = bars[bars["timestamp"] >= first + pd.to_timedelta(late, unit="D")].reset_index(drop=True)
    root = tmp_path_factory.mktemp("csv")
    for symbol, group in bars.groupby("symbol"):
        group.to_csv(root / f"{symbol}.csv", index=False)
    return bars, root


def _dates(bars):
    """Train / validation ends inside the synthetic data (its first day + 15 and + 22 days)."""
    first = bars["timestamp"].min().normalize()
    return first + pd.Timedelta(days=15), first + pd.Timedelta(days=22)


def _served(ds):
    """(symbols, origin times [ns], real-row weights / padding factor) of one epoch of a UniverseDataset."""
    sym, times, weights = [], [], []
    for i in range(len(ds)):
        _, _, w = ds[i]
        s, _ = ds.rows(i)
        factor = ds.batch_size / s.size
        sym.append(s), times.append(ds.origin_times(i).as_unit("ns").asi8), weights.append(w[: s.size] / factor)
    return np.concatenate(sym), np.concatenate(times), np.concatenate(weights)


def test_holdout_symbols_never_in_train_or_validation(folder):
    bars, root = folder
    t_end, v_end = _dates(bars)
    universe = SymbolUniverse(root, LOOKBACK, H)
    parts = universe.split_symbols(t_end, v_end, holdout=0.34, seed=7)
    held = set(parts.holdout)
    assert len(held) == 3
    assert set(parts.unseen.symbols) == held
    for part in (parts.train, parts.val, parts.test):
        assert held.isdisjoint(part.symbols) and len(part) > 0
    t_ns, v_ns = to_utc_ns(t_end), to_utc_ns(v_end)
    step = 3600 * 10**9  # hourly bars without gaps: the last horizon bar opens (H - 1) hours after the origin
    for part, shuffle in ((parts.train, True), (parts.val, False)):  # streamed path
        sym, times, _ = _served(part.batches(64, shuffle=shuffle, block_symbols=4))
        assert held.isdisjoint(sym)
        assert sym.size == len(part)
        if part is parts.train:
            assert times.max() < t_ns and times.max() + (H - 1) * step < t_ns  # no validation or test origin
        else:
            assert times.min() >= t_ns and times.max() + (H - 1) * step < v_ns
    for part in (parts.train, parts.val):  # materialised path
        ws = part.to_window_set()
        assert held.isdisjoint(ws.asset)
        assert ws.horizon_end.as_unit("ns").asi8.max() < (t_ns if part is parts.train else v_ns)
    for part in (parts.test, parts.unseen):
        ws = part.to_window_set()
        assert ws.origin.as_unit("ns").asi8.min() >= v_ns
    assert held.issuperset(parts.unseen.to_window_set().asset)


def test_seen_parts_equal_the_materialised_split_of_the_seen_symbols(folder):
    bars, root = folder
    t_end, v_end = _dates(bars)
    parts = SymbolUniverse(root, LOOKBACK, H).split_symbols(t_end, v_end, holdout=["SYN1", "SYN4"])
    assert parts.holdout == ("SYN1", "SYN4")
    seen = bars[~bars["symbol"].isin(parts.holdout)]
    ref_train, ref_val, ref_test = make_windows(seen, LOOKBACK, H).split(t_end, v_end)
    unseen_ref = make_windows(bars[bars["symbol"].isin(parts.holdout)], LOOKBACK, H).split(t_end, v_end)[2]
    for part, ref in ((parts.train, ref_train), (parts.val, ref_val), (parts.test, ref_test),
                      (parts.unseen, unseen_ref)):
        ws = part.to_window_set()
        assert len(part) == len(ref) == len(ws) > 0
        np.testing.assert_array_equal(ws.X, ref.X)
        np.testing.assert_array_equal(ws.y, ref.y)
        np.testing.assert_array_equal(ws.asset, ref.asset)
        np.testing.assert_array_equal(ws.origin_index, ref.origin_index)
        assert ws.origin.equals(ref.origin) and ws.horizon_end.equals(ref.horizon_end)
        assert set(ws.bars) == set(ref.bars)


def test_holdout_fraction_is_deterministic_and_stratified():
    symbols = [f"S{k}" for k in range(30)]
    liquidity = np.arange(30.0)[::-1]  # S0 most liquid
    first = choose_holdout(symbols, 0.2, seed=11, liquidity=liquidity)
    assert first == choose_holdout(symbols, 0.2, seed=11, liquidity=liquidity)
    assert len(first) == 6
    draws = {choose_holdout(symbols, 0.2, seed=s, liquidity=liquidity) for s in range(8)}
    assert len(draws) > 1  # the seed matters
    for held in draws:
        rank = np.array([29 - int(s[1:]) for s in held])  # 0 = least liquid
        np.testing.assert_array_equal(np.bincount(rank // 10, minlength=3), [2, 2, 2])
    unstratified = choose_holdout(symbols, 0.2, seed=11)
    assert len(unstratified) == 6 and unstratified == choose_holdout(symbols, 0.2, seed=11)
    assert choose_holdout(symbols, None) == choose_holdout(symbols, 0.0) == ()


@pytest.mark.parametrize("bad", [1.0, -0.1, ["NOPE"], [f"S{k}" for k in range(3)]])
def test_bad_holdout_is_refused(bad):
    with pytest.raises(ValueError, match="holdout"):
        choose_holdout(["S0", "S1", "S2"], bad)


def test_split_symbols_holdout_is_deterministic_with_the_seed(folder):
    bars, root = folder
    t_end, v_end = _dates(bars)
    a = SymbolUniverse(root, LOOKBACK, H).split_symbols(t_end, v_end, holdout=0.34, seed=3)
    b = SymbolUniverse(root, LOOKBACK, H).split_symbols(t_end, v_end, holdout=0.34, seed=3)
    assert a.holdout == b.holdout
    np.testing.assert_array_equal(a.train.counts, b.train.counts)
    liq = a.liquidity
    ranked = sorted(liq, key=lambda s: (liq[s], s))
    terciles = [set(ranked[k * 3:(k + 1) * 3]) for k in range(3)]
    assert [len(t & set(a.holdout)) for t in terciles] == [1, 1, 1]


@pytest.mark.parametrize("max_windows", [1, 37, 10**6])
def test_chunks_equal_the_materialised_windows(folder, max_windows):
    bars, root = folder
    t_end, v_end = _dates(bars)
    _, val, _ = SymbolUniverse(root, LOOKBACK, H).split(t_end, v_end)
    whole = val.to_window_set()
    chunks = list(val.thin(4).chunks(max_windows)) if max_windows == 1 else list(val.chunks(max_windows))
    if max_windows == 1:
        thinned = val.thin(4)
        assert len(chunks) == len(thinned) == sum(-(-c // 4) for c in val.counts)
        got = np.concatenate([c.origin_index for c in chunks])
        want = np.concatenate([val.origins(s)[::4] for s in val.symbols])
        np.testing.assert_array_equal(got, want)
        return
    assert all(len(c) <= max_windows for c in chunks) and sum(len(c) for c in chunks) == len(whole)
    assert len(chunks) == -(-len(whole) // max_windows)
    for c in chunks:
        names = c.asset.astype(str)
        assert np.all(names[1:] >= names[:-1])  # symbol by symbol, time order inside a symbol
        t = c.origin.as_unit("ns").asi8
        assert np.all((np.diff(t) > 0) | (names[1:] != names[:-1]))
        assert set(c.bars) == set(c.asset)
    assert all(len(c) == max_windows for c in chunks[:-1])
    asset = np.concatenate([c.asset for c in chunks])
    origin = np.concatenate([c.origin_index for c in chunks])
    order = np.lexsort((origin, asset.astype(str)))
    ref = np.lexsort((whole.origin_index, whole.asset.astype(str)))
    np.testing.assert_array_equal(np.concatenate([c.X for c in chunks])[order], whole.X[ref])
    np.testing.assert_array_equal(np.concatenate([c.y for c in chunks])[order], whole.y[ref])
    np.testing.assert_array_equal(np.concatenate([c.prices for c in chunks])[order], whole.prices[ref])
    np.testing.assert_array_equal(asset[order], whole.asset[ref])
    np.testing.assert_array_equal(origin[order], whole.origin_index[ref])


def test_chunks_without_bars_and_bad_size(folder):
    bars, root = folder
    part = SymbolUniverse(root, LOOKBACK, H).split(*_dates(bars))[1]
    chunk = next(part.chunks(100, bars=False))
    assert chunk.bars == {} and len(chunk) == 100
    with pytest.raises(ValueError, match="max_windows"):
        next(part.chunks(0))


@pytest.mark.parametrize("weighting", ["window", "symbol", "notional"])
def test_symbol_weighting_gives_each_symbol_its_share(folder, weighting):
    bars, root = folder
    t_end, v_end = _dates(bars)
    train = SymbolUniverse(root, LOOKBACK, H).split_symbols(t_end, v_end, holdout=0.34, seed=7).train
    ds = train.batches(50, shuffle=True, seed=1, block_symbols=2, weighting=weighting)
    sym, _, weights = _served(ds)
    total = np.array([weights[sym == s].sum() for s in train.symbols])
    n, counts = len(train), train.counts.astype(float)
    expected = {"window": counts, "symbol": np.full(counts.size, n / counts.size),
                "notional": n * train.liquidity / train.liquidity.sum()}[weighting]
    np.testing.assert_allclose(total, expected, rtol=1e-5)
    np.testing.assert_allclose(total.sum(), n, rtol=1e-5)
    if weighting == "symbol":
        assert np.ptp(counts) > 0  # the symbols do differ in windows (zero-volume bars): the test can fail


def test_unknown_weighting_is_refused(folder):
    bars, root = folder
    train = SymbolUniverse(root, LOOKBACK, H).split(*_dates(bars))[0]
    with pytest.raises(ValueError, match="weighting"):
        train.batches(32, weighting="volume")


def test_index_cache_is_used_and_invalidated(folder, tmp_path):
    bars, root = folder
    data = tmp_path / "data"
    data.mkdir()
    for f in root.glob("*.csv"):
        (data / f.name).write_bytes(f.read_bytes())
    t_end, v_end = _dates(bars)
    cache = tmp_path / "cache"
    first = SymbolUniverse(data, LOOKBACK, H, cache_dir=cache)
    counts = [p.counts for p in first.split(t_end, v_end)]
    assert first.index_reads == 9 and len(list(cache.glob("*.npz"))) == 9
    second = SymbolUniverse(data, LOOKBACK, H, cache_dir=cache)
    for part, ref in zip(second.split(t_end, v_end), counts, strict=True):
        np.testing.assert_array_equal(part.counts, ref)
    assert second.index_reads == 0
    changed = data / "SYN0.csv"
    frame = pd.read_csv(changed)
    frame.iloc[: len(frame) // 2].to_csv(changed, index=False)  # the symbol's data now ends earlier
    os.utime(changed, ns=(1, 1))
    third = SymbolUniverse(data, LOOKBACK, H, cache_dir=cache)
    train, _, test = third.split(t_end, v_end)
    assert third.index_reads == 1
    assert "SYN0" not in test.symbols
    stale = SymbolUniverse(data, LOOKBACK, H)  # no cache: the same counts
    np.testing.assert_array_equal(stale.split(t_end, v_end)[0].counts, train.counts)


def test_split_reports_progress(folder):
    bars, root = folder
    seen = []
    universe = SymbolUniverse(root, LOOKBACK, H)
    universe.split(*_dates(bars), progress=lambda done, total, elapsed: seen.append((done, total, elapsed)))
    assert [d for d, _, _ in seen] == list(range(1, 10)) and {t for _, t, _ in seen} == {9}
    assert all(b[2] >= a[2] >= 0 for a, b in zip(seen, seen[1:]))
    assert universe.loads == 0  # the split builds no per-symbol state


def test_thin_to_bounds_the_part(folder):
    bars, root = folder
    val = SymbolUniverse(root, LOOKBACK, H).split(*_dates(bars))[1]
    for cap in (9, 100, 1000, len(val), 10 * len(val)):
        small = val.thin_to(cap)
        assert len(small) <= cap and small.symbols == val.symbols
        assert sum(len(c) for c in small.chunks(64, bars=False)) == len(small)
        if cap >= len(val):
            assert small is val
        else:
            every = small._rule.every
            assert int((-(-val.counts // (every - 1))).sum()) > cap  # the smallest such thinning
    with pytest.raises(ValueError, match="at most"):
        val.thin_to(len(val.symbols) - 1)


def test_blocks_built_from_split_bar_counts_equal_blocks_of_loaded_states(folder):
    bars, root = folder
    train = SymbolUniverse(root, LOOKBACK, H).split(*_dates(bars))[0]
    assert train.n_bars is not None and train.n_bars.sum() == len(bars)
    streamed = train.batches(64, shuffle=True, seed=2, block_symbols=4)
    fallback = train.batches(64, shuffle=True, seed=2, block_symbols=4)
    fallback.windows = copy.copy(train)
    fallback.windows.n_bars = None  # e.g. a part built without the split's bar counts: states merged at once
    for i in (0, len(streamed) // 2, len(streamed) - 1):
        (xa, _, _), ya, wa = streamed[i]
        (xb, _, _), yb, wb = fallback[i]
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
        np.testing.assert_array_equal(wa, wb)
