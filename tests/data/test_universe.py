"""Tests of lems.data.universe: windows of many symbols gathered on the fly from per-symbol sources."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lems.data.synthetic import synthetic_market
from lems.data.universe import (
    SymbolUniverse,
    merge_states,
    open_symbols,
    write_partitioned,
)
from lems.data.windows import build_batch, make_states, make_windows

NY = "America/New_York"
LOOKBACK, H = 24, 7
CALENDARS = {"24/7": ("UTC", {"zero_volume_fraction": 0.02}), "session": (NY, {})}


@pytest.fixture(scope="module", params=sorted(CALENDARS))
def market(request, tmp_path_factory):
    """(bars, tz, hive dataset folder, materialised windows) for each calendar."""
    tz, extra = CALENDARS[request.param]
    bars = synthetic_market(n_assets=3, n_days=40, calendar=request.param, seed=5, **extra)
    root = write_partitioned(bars, tmp_path_factory.mktemp("hive"))
    return bars, tz, root, make_windows(bars, LOOKBACK, H, tz=tz)


def _boundaries(ws):
    return ws.origin[len(ws) // 2], ws.origin[3 * len(ws) // 4]


def _serve(ds):
    """Every batch of one epoch: X, y, weights, symbols and origin indices of the real rows."""
    x, y, w, sym, org = [], [], [], [], []
    for i in range(len(ds)):
        (xb, lo, hi), yb, wb = ds[i]
        assert xb.shape[0] == yb.shape[0] == wb.shape[0] == lo.shape[0] == hi.shape[0] == ds.batch_size
        s, o = ds.rows(i)
        x.append(xb[: o.size]), y.append(yb[: o.size]), w.append(wb), sym.append(s), org.append(o)
    return np.concatenate(x), np.concatenate(y), np.concatenate(w), np.concatenate(sym), np.concatenate(org)


def _ref_rows(ws, symbols, origins):
    key = {(a, int(o)): k for k, (a, o) in enumerate(zip(ws.asset, ws.origin_index))}
    return np.array([key[(s, int(o))] for s, o in zip(symbols, origins)])


def test_stream_equals_materialised(market):
    _, tz, root, ws = market
    universe = SymbolUniverse(root, LOOKBACK, H, tz=tz)
    t_end, v_end = _boundaries(ws)
    for part, ref in zip(universe.split(t_end, v_end), ws.split(t_end, v_end), strict=True):
        assert len(part) == len(ref) > 0
        ds = part.batches(50, shuffle=False, block_symbols=8)
        x, y, w, sym, org = _serve(ds)
        np.testing.assert_array_equal(x, ref.X)
        np.testing.assert_array_equal(y, ref.y)
        np.testing.assert_array_equal(sym, ref.asset)
        np.testing.assert_array_equal(org, ref.origin_index)
        times = np.concatenate([ds.origin_times(i).as_unit("ns").asi8 for i in range(len(ds))])
        np.testing.assert_array_equal(times, ref.origin.as_unit("ns").asi8)
        real = len(ref) - (len(ds) - 1) * 50  # rows of the last batch
        np.testing.assert_array_equal(w[-50:], np.r_[np.full(real, 50 / real), np.zeros(50 - real)].astype(np.float32))
        np.testing.assert_array_equal(w[:-50], 1.0)
        materialised = part.to_window_set()
        np.testing.assert_array_equal(materialised.X, ref.X)
        np.testing.assert_array_equal(materialised.asset, ref.asset)
        assert materialised.origin.equals(ref.origin) and materialised.horizon_end.equals(ref.horizon_end)


def test_shuffled_blocks_serve_every_window_once(market):
    _, tz, root, ws = market
    universe = SymbolUniverse(root, LOOKBACK, H, tz=tz, cache_symbols=1)
    part = universe.windows()
    assert len(part) == len(ws)
    loads = universe.loads
    ds = part.batches(64, shuffle=True, seed=1, block_symbols=1, min_rate=0.01, max_rate=0.5)
    x, y, _, sym, org = _serve(ds)
    rows = _ref_rows(ws, sym, org)
    assert np.array_equal(np.sort(rows), np.arange(len(ws)))  # each window exactly once
    np.testing.assert_array_equal(x, ws.X[rows])
    np.testing.assert_array_equal(y, ws.y[rows])
    assert universe.loads - loads == len(universe.symbols)  # one load per symbol, block after block
    assert not np.array_equal(rows, np.sort(rows))  # shuffled inside a block
    (_, lo, hi), _, _ = ds[0]
    assert (lo == np.float32(0.01)).all() and (hi == np.float32(0.5)).all()
    first = ds.rows(0)[1].copy()
    ds.on_epoch_end()
    assert not np.array_equal(first, ds.rows(0)[1])
    again = part.batches(64, shuffle=True, seed=1, block_symbols=1)
    np.testing.assert_array_equal(again.rows(0)[1], first)  # the order depends only on (seed, epoch)
    mixed = SymbolUniverse(root, LOOKBACK, H, tz=tz).windows().batches(64, shuffle=True, block_symbols=3)
    assert len(set(mixed.rows(0)[0])) == 3  # one block of all symbols: batches mix symbols


def test_drop_remainder_and_num_batches(market):
    _, tz, root, ws = market
    part = SymbolUniverse(root, LOOKBACK, H, tz=tz).windows()
    assert len(part.batches(64, drop_remainder=True)) == len(ws) // 64
    assert len(part.batches(64)) == -(-len(ws) // 64)
    assert len(part.batches(64, num_batches=3)) == 3
    with pytest.raises(ValueError, match="num_batches"):
        part.batches(64, num_batches=len(ws))
    with pytest.raises(ValueError, match="infeasible"):
        part.batches(64, max_rate=0.1)  # 7 * 0.1 < 1


def test_compact_and_merged_states_give_identical_batches(market):
    bars, tz, _, _ = market
    states = make_states(bars, LOOKBACK, H, tz=tz)
    state = states["SYN0"]
    small = state.compact()
    origins = state.valid_origins()[::7]
    for full, compact in zip(build_batch(state, origins), build_batch(small, origins), strict=True):
        np.testing.assert_array_equal(full, compact)
    assert small.nbytes < 0.7 * state.nbytes and len(small.bars) == 0
    parts = [states[s] for s in ("SYN2", "SYN0", "SYN1")]
    merged, offsets = merge_states(parts)
    picks = [np.unique(np.r_[v[0], v[k::5], v[-1]]) for k, v in enumerate(p.valid_origins() for p in parts)]
    together = build_batch(merged, np.concatenate([o + off for o, off in zip(picks, offsets)]))
    alone = [build_batch(p, o) for p, o in zip(parts, picks)]
    for field, joined in zip(together._fields, together):
        np.testing.assert_array_equal(joined, np.concatenate([getattr(a, field) for a in alone]))


def test_sources_agree(tmp_path):
    bars = synthetic_market(n_assets=3, n_days=20, seed=2)
    flat, nested = tmp_path / "flat", tmp_path / "nested"
    flat.mkdir()
    for symbol, part in bars.groupby("symbol"):
        part.to_csv(flat / f"{symbol}.csv", index=False)
        (nested / symbol).mkdir(parents=True)
        part.to_parquet(nested / symbol / "2021.parquet")
    bars.to_parquet(tmp_path / "long.parquet")
    sources = [bars, flat, nested, tmp_path / "long.parquet", sorted(flat.iterdir()),
               {s: p for s, p in bars.groupby("symbol")}, write_partitioned(bars, tmp_path / "hive")]
    ref = make_windows(bars, LOOKBACK, H)
    for source in sources:
        part = SymbolUniverse(source, LOOKBACK, H).windows()
        assert part.symbols == ("SYN0", "SYN1", "SYN2")
        (x, _, _), y, _ = part.batches(40, shuffle=False)[3]
        np.testing.assert_allclose(x, ref.X[120:160], rtol=1e-6, atol=1e-6)  # CSV: decimal round trip
        np.testing.assert_allclose(y, ref.y[120:160], rtol=1e-6)


def test_shards_subsets_and_errors(tmp_path, market):
    _, tz, root, ws = market
    source = open_symbols(root)
    shards = [source.shard(i, 2) for i in range(2)]
    assert shards[0].symbols == ("SYN0", "SYN2") and shards[1].symbols == ("SYN1",)
    assert open_symbols(root, exclude=["SYN1"]).symbols == ("SYN0", "SYN2")
    assert open_symbols(root, symbols=["SYN2"]).symbols == ("SYN2",)
    universe = SymbolUniverse(shards[1], LOOKBACK, H, tz=tz)
    assert len(universe.windows()) == int((ws.asset == "SYN1").sum())
    with pytest.raises(ValueError, match="unknown symbol"):
        open_symbols(root, exclude=["NOPE"])
    with pytest.raises(ValueError, match="shard"):
        source.shard(2, 2)
    with pytest.raises(ValueError, match="non-empty shards"):
        source.shard(0, 4)
    with pytest.raises(ValueError, match="no such file"):
        open_symbols(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no partitions"):
        open_symbols(tmp_path / "empty")
    t_end, v_end = _boundaries(ws)
    u = SymbolUniverse(root, LOOKBACK, H, tz=tz)
    with pytest.raises(ValueError, match="must not be before"):
        u.split(v_end, t_end)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        u.split(1.5)


def test_bad_bars_name_the_partition(tmp_path):
    bars = synthetic_market(n_assets=2, n_days=10, seed=3)
    bars.loc[bars.index[bars["symbol"] == "SYN1"][5], "high"] = 0.0  # high < low
    root = tmp_path / "hive"
    (root / "symbol=SYN1").mkdir(parents=True)
    bars[bars["symbol"] == "SYN1"].drop(columns="symbol").to_parquet(root / "symbol=SYN1" / "part-0.parquet")
    universe = SymbolUniverse(root, LOOKBACK, H)
    with pytest.raises(ValueError, match=r"symbol=SYN1"):
        universe.windows()


def test_fraction_split_matches_training_semantics(market):
    _, tz, root, ws = market
    origins = np.unique(ws.origin.as_unit("ns").asi8)
    t_end = pd.Timestamp(origins[int(0.6 * len(origins))], tz="UTC")
    v_end = pd.Timestamp(origins[int(0.8 * len(origins))], tz="UTC")
    parts = SymbolUniverse(root, LOOKBACK, H, tz=tz).split(0.6, 0.8)
    assert [len(p) for p in parts] == [len(r) for r in ws.split(t_end, v_end)]
