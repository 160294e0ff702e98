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
    d_tr, d_te = dates
    assert isinstance(d_tr, pd.DatetimeIndex) and len(d_tr) == len(X_tr) and len(d_te) == len(X_te)
    cut = pd.Timestamp(split, tz="UTC")
    assert (d_te >= cut).all()
    # purged: the last horizon bar of every training window starts before the split (hourly bars)
    assert (d_tr + pd.Timedelta(hours=H - 1) < cut).all()
    assert len(X_tr) + len(X_te) == len(vol) - LOOKBACK - H + 1 - (H - 1)
    np.testing.assert_allclose(y_tr[..., 0].sum(axis=1), 1.0, atol=1e-5)
    # same rows as the window builder
    ws = full_generate_windows(vol, notional, "SYN0", LOOKBACK, H)
    np.testing.assert_array_equal(X_te, ws.X[ws.origin >= cut])


def test_full_generate_default_split_and_multi_asset(wide):
    vol, notional = wide
    X_tr, X_te, y_tr, y_te, (d_tr, d_te) = full_generate(vol, notional, ["SYN0", "SYN2"], LOOKBACK, H)
    n = len(X_tr) + len(X_te)
    assert 0.15 < len(X_te) / n < 0.25  # about the last 20% of origins
    assert d_tr.max() < d_te.min()
    assert len(X_te) % 2 == 0  # both assets share every test origin
    out = full_generate(
        vol, notional, "SYN1", LOOKBACK, H, split_date="2021-01-20", val_split_date="2021-01-27"
    )
    assert len(out) == 7 and len(out[-1]) == 3
    X_tr, X_val, X_te = out[:3]
    d_tr, d_val, d_te = out[-1]
    assert len(X_val) == len(d_val) and (d_val >= pd.Timestamp("2021-01-20", tz="UTC")).all()


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
