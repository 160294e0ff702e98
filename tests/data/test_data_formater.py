"""Tests of the seed's data API (lems.data_formater)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lems.data.features import FEATURE_NAMES, N_KNOWN_AHEAD
from lems.data.synthetic import synthetic_market
from lems.data_formater import (
    add_config_to_X,
    add_config_to_y,
    full_generate,
    full_generate_windows,
    prepare_data_with_ahead_inputs,
)

LOOKBACK, H = 30, 6
F = len(FEATURE_NAMES)


@pytest.fixture(scope="module")
def wide() -> tuple[pd.DataFrame, pd.DataFrame]:
    bars = synthetic_market(n_assets=3, n_days=30, seed=5, zero_volume_fraction=0.0)
    vol = bars.pivot(index="timestamp", columns="symbol", values="volume")
    notional = bars.pivot(index="timestamp", columns="symbol", values="notional")
    return vol, notional


def test_full_generate_shapes_and_split(wide):
    vol, notional = wide
    split = "2021-01-25"
    X_tr, X_te, y_tr, y_te, dates = full_generate(vol, notional, "SYN0", LOOKBACK, H, split_date=split)
    assert X_tr.shape[1:] == X_te.shape[1:] == (LOOKBACK + H - 1, F)
    assert y_tr.shape[1:] == y_te.shape[1:] == (H, 2)
    assert X_tr.dtype == y_tr.dtype == np.float32
    assert isinstance(dates, pd.DatetimeIndex) and len(dates) == len(X_tr) + len(X_te)  # the seed's form
    d_tr, d_te = dates[: len(X_tr)], dates[len(X_tr) :]
    split_form = full_generate(vol, notional, "SYN0", LOOKBACK, H, split_date=split, split_dates=True)[-1]
    assert len(split_form) == 2
    pd.testing.assert_index_equal(split_form[0], d_tr)
    pd.testing.assert_index_equal(split_form[1], d_te)
    cut = pd.Timestamp(split, tz="UTC")
    assert (d_te >= cut).all()
    # purged: the last horizon bar of every training window starts before the split (hourly bars)
    assert (d_tr + pd.Timedelta(hours=H - 1) < cut).all()
    assert len(X_tr) + len(X_te) == len(vol) - LOOKBACK - H + 1 - (H - 1)
    np.testing.assert_allclose(y_tr[..., 0].sum(axis=1), 1.0, atol=1e-5)
    # same rows as the window builder, and dates[i] is the origin of row i
    ws = full_generate_windows(vol, notional, "SYN0", LOOKBACK, H)
    np.testing.assert_array_equal(X_te, ws.X[ws.origin >= cut])
    rows = ws.origin.get_indexer(dates)
    np.testing.assert_array_equal(np.concatenate([X_tr, X_te]), ws.X[rows])
    assert np.asarray(dates).shape == (len(dates),)


def test_full_generate_default_split_and_multi_asset(wide):
    vol, notional = wide
    X_tr, X_te, y_tr, y_te, (d_tr, d_te) = full_generate(
        vol, notional, ["SYN0", "SYN2"], LOOKBACK, H, split_dates=True
    )
    n = len(X_tr) + len(X_te)
    assert 0.15 < len(X_te) / n < 0.25  # about the last 20% of origins
    assert d_tr.max() < d_te.min()
    assert len(X_te) % 2 == 0  # both assets share every test origin
    out = full_generate(
        vol, notional, "SYN1", LOOKBACK, H, split_date="2021-01-20", val_split_date="2021-01-27"
    )
    assert len(out) == 7 and len(out[-1]) == sum(len(x) for x in out[:3])
    X_tr, X_val, X_te = out[:3]
    d_val = out[-1][len(X_tr) : len(X_tr) + len(X_val)]
    assert len(X_val) > 0 and (d_val >= pd.Timestamp("2021-01-20", tz="UTC")).all()
    split_form = full_generate(
        vol, notional, "SYN1", LOOKBACK, H, split_date="2021-01-20", val_split_date="2021-01-27", split_dates=True
    )[-1]
    assert len(split_form) == 3
    pd.testing.assert_index_equal(split_form[1], d_val)
    pd.testing.assert_index_equal(split_form[0].append(list(split_form[1:])), out[-1])


def test_full_generate_errors(wide):
    vol, notional = wide
    with pytest.raises(ValueError, match="freq_min"):
        full_generate(vol, notional, "SYN0", LOOKBACK, H, freq_min=30)
    with pytest.raises(ValueError, match="target_asset"):
        full_generate(vol, notional, "BTC", LOOKBACK, H)
    with pytest.raises(ValueError, match="val_split_date"):
        full_generate(vol, notional, "SYN0", LOOKBACK, H, val_split_date="2021-01-27")
    naive_v, naive_n = vol.copy(), notional.copy()
    naive_v.index = naive_v.index.tz_localize(None)
    naive_n.index = naive_n.index.tz_localize(None)
    a = full_generate(naive_v, naive_n, "SYN0", LOOKBACK, H, split_date="2021-01-25")
    b = full_generate(vol, notional, "SYN0", LOOKBACK, H, split_date="2021-01-25")
    np.testing.assert_array_equal(a[0], b[0])  # a naive index means UTC
    assert a[-1].tz is None and b[-1].tz is not None  # dates are expressed like the panels' index
    pd.testing.assert_index_equal(a[-1], b[-1].tz_localize(None))
    assert naive_v.index.get_indexer(a[-1]).min() >= 0  # usable to index the user's own panels


def test_add_config_to_X():
    X = np.zeros((5, LOOKBACK + H - 1, F), np.float32)
    inputs = add_config_to_X(X, 0.05, 0.5)
    assert len(inputs) == 3 and inputs[0] is X
    assert inputs[1].shape == inputs[2].shape == (5, 1) and inputs[1].dtype == np.float32
    assert np.all(inputs[1] == np.float32(0.05)) and np.all(inputs[2] == np.float32(0.5))
    per_sample = add_config_to_X(X, np.linspace(0, 0.1, 5), np.full(5, 0.3), n_ahead=H)
    np.testing.assert_allclose(per_sample[1][:, 0], np.linspace(0, 0.1, 5))
    for lo, hi, kw in [(0.3, 0.2, {}), (-0.1, 0.5, {}), (0.0, 0.0, {}), (0.0, 1.5, {}), (0.0, 0.1, {"n_ahead": H})]:
        with pytest.raises(ValueError, match="infeasible"):
            add_config_to_X(X, lo, hi, **kw)
    with pytest.raises(ValueError, match="finite"):
        add_config_to_X(X, np.nan, 0.5)
    with pytest.raises(ValueError, match="shape"):
        add_config_to_X(X, np.zeros(3), 0.5)
    with pytest.raises(ValueError, match="3-D"):
        add_config_to_X(X[0], 0.0, 1.0)


def test_add_config_to_X_lists_replicate_per_configuration():
    rng = np.random.default_rng(1)
    X = rng.random((5, LOOKBACK + H - 1, F)).astype(np.float32)
    x, lo, hi = add_config_to_X(X, [0.0, 0.05], [1.0, 0.2])
    assert x.shape == (10, LOOKBACK + H - 1, F) and lo.shape == hi.shape == (10, 1)
    np.testing.assert_array_equal(x[:5], X)  # configuration-major: all samples with config 0 first
    np.testing.assert_array_equal(x[5:], X)
    np.testing.assert_array_equal(lo[:, 0], np.float32([0.0] * 5 + [0.05] * 5))
    np.testing.assert_array_equal(hi[:, 0], np.float32([1.0] * 5 + [0.2] * 5))
    x3, lo3, hi3 = add_config_to_X(X, 0.0, (1.0, 0.5, 0.25), n_ahead=H)  # a scalar is shared by every config
    assert x3.shape[0] == 15 and (lo3 == 0).all()
    np.testing.assert_array_equal(hi3[::5, 0], np.float32([1.0, 0.5, 0.25]))
    single = add_config_to_X(X, [0.05], [0.5])  # one configuration: the scalar result
    for a, b in zip(single, add_config_to_X(X, 0.05, 0.5)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"configuration 1 \(min_rate 0.3, max_rate 0.2\): infeasible"):
        add_config_to_X(X, [0.0, 0.3], [1.0, 0.2])
    with pytest.raises(ValueError, match=r"configuration 1 \(min_rate 0, max_rate 0.1\): infeasible order: horizon"):
        add_config_to_X(X, [0.0, 0.0], [1.0, 0.1], n_ahead=H)
    with pytest.raises(ValueError, match="same length"):
        add_config_to_X(X, [0.0, 0.1], [1.0, 0.5, 0.2])
    with pytest.raises(ValueError, match="same length"):
        add_config_to_X(X, [], 1.0)
    with pytest.raises(ValueError, match="shape \\(N,\\) for per-sample"):
        add_config_to_X(X, [0.0, 0.1], np.full(5, 0.5))


def test_add_config_to_y_replicates_like_add_config_to_X():
    rng = np.random.default_rng(2)
    y = rng.random((4, H, 2)).astype(np.float32)
    mins, maxs = [0.0, 0.05, 0.1], [1.0, 0.5, 0.3]
    tiled = add_config_to_y(y, mins, maxs)
    assert tiled.shape == (12, H, H + 1, 4, 2)
    np.testing.assert_array_equal(tiled, np.concatenate([add_config_to_y(y)] * 3))
    np.testing.assert_array_equal(add_config_to_y(y, n_configs=3), tiled)
    np.testing.assert_array_equal(add_config_to_y(y, mins, maxs, n_configs=3), tiled)
    compact = add_config_to_y(y, mins, maxs, tile=False)
    assert compact.shape == (12, H, 2)
    np.testing.assert_array_equal(compact[8:], y)
    assert add_config_to_y(y, 0.0, np.full(4, 0.5)).shape == (4, H, H + 1, 4, 2)  # per sample: no replication
    with pytest.raises(ValueError, match="n_configs=2 but the limits hold 3"):
        add_config_to_y(y, mins, maxs, n_configs=2)
    with pytest.raises(ValueError, match="positive integer"):
        add_config_to_y(y, n_configs=0)


def test_add_config_to_y():
    rng = np.random.default_rng(0)
    y = rng.random((4, H, 2)).astype(np.float32)
    tiled = add_config_to_y(y)
    assert tiled.shape == (4, H, H + 1, 4, 2) and tiled.dtype == np.float32
    for col in range(H + 1):
        for typ in (0, 2):  # VWAP order types keep the market volume share
            np.testing.assert_array_equal(tiled[:, :, col, typ], y)
        for typ in (1, 3):  # TWAP: volume 1, price unchanged
            assert (tiled[:, :, col, typ, 0] == 1.0).all()
            np.testing.assert_array_equal(tiled[:, :, col, typ, 1], y[..., 1])
    with pytest.raises(ValueError, match="compact"):
        add_config_to_y(tiled)


def test_prepare_data_with_ahead_inputs():
    X = np.arange(2 * 5 * F, dtype=np.float32).reshape(2, 5, F)
    obs, known = prepare_data_with_ahead_inputs(X, n_ahead=3)
    assert obs.shape == (2, 5, F - N_KNOWN_AHEAD) and known.shape == (2, 5, N_KNOWN_AHEAD)
    np.testing.assert_array_equal(np.concatenate([obs, known], axis=-1), X)
    with pytest.raises(ValueError):
        prepare_data_with_ahead_inputs(X[0])
    with pytest.raises(ValueError):
        prepare_data_with_ahead_inputs(X, n_ahead=9)
