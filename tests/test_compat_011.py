"""Code written for lems 0.1.1 runs unchanged (issue 14 §1): the seed page's data API and model calls.

The 0.1.1-style calls below are copied from the seed page's snippets (only the sizes are small), fed
with what 0.1.1 users feed them: wide panels of volumes and notionals, here an equity-like panel on a
24-hour hourly grid (zero volume at night, the first rows before the first session, an asset that lists
later), lists of limits (one (min, max) configuration per entry), and dates used as one array of sample
origins.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from lems.data.loaders import to_wide
from lems.data.synthetic import synthetic_market
from lems.execution import check_allocations

LOOKBACK, N_AHEAD = 16, 4
LISTED_LATE_DAYS = 3  # SYN1 trades only from the fourth day on


def equity_panel_24h(n_days: int = 14, naive: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Session bars (NYSE-like, 14:30-21:00 UTC) on a 24-hour hourly grid, zeros at night and on weekends.

    The grid starts at midnight of the first day, so every asset starts with zero-volume night bars; SYN1
    has no trade during its first ``LISTED_LATE_DAYS`` days. A naive index (UTC wall times) is the usual
    shape of an exported panel.
    """
    bars = synthetic_market(n_assets=2, n_days=n_days, calendar="session", seed=7, zero_volume_fraction=0.0)
    bars = bars.assign(timestamp=bars["timestamp"].dt.floor("1h"))  # the 14:30 half-hour bar -> 14:00
    volumes, notionals = to_wide(bars, "volume"), to_wide(bars, "notional")
    grid = pd.date_range(volumes.index[0].normalize(), volumes.index[-1].normalize() + pd.Timedelta(hours=23),
                         freq="1h")
    volumes, notionals = volumes.reindex(grid, fill_value=0.0), notionals.reindex(grid, fill_value=0.0)
    before_listing = grid < grid[0] + pd.Timedelta(days=LISTED_LATE_DAYS)
    volumes.loc[before_listing, "SYN1"] = 0.0
    notionals.loc[before_listing, "SYN1"] = 0.0
    if naive:
        volumes.index = notionals.index = grid.tz_localize(None)
    return volumes, notionals


def leading_zero_bars(volumes: pd.DataFrame) -> dict[str, int]:
    return {c: int(np.argmax(volumes[c].to_numpy() > 0)) for c in volumes.columns}


def expected_targets(volumes: pd.DataFrame, notionals: pd.DataFrame, asset: str, origin) -> np.ndarray:
    """Compact targets of the order starting at ``origin``, computed from the raw panel (EXECUTION.md §1, §5)."""
    vol, notl = volumes[asset], notionals[asset]
    price = (notl / vol.where(vol > 0)).ffill()  # bar VWAP, carried over zero-volume bars
    pos = volumes.index.get_loc(origin)
    horizon = vol.iloc[pos:pos + N_AHEAD].to_numpy()
    rel = price.iloc[pos:pos + N_AHEAD].to_numpy() / price.iloc[pos - 1]
    return np.stack([horizon / horizon.sum(), rel], axis=-1)


def test_24h_equity_panel_with_nights_loads_with_one_warning():
    from lems.data_formater import full_generate

    volumes_df, notionals_df = equity_panel_24h()
    leading = leading_zero_bars(volumes_df)
    assert leading["SYN0"] >= 14 and leading["SYN1"] >= 24 * LISTED_LATE_DAYS  # the shape that used to fail
    with pytest.warns(UserWarning) as record:
        out = full_generate(volumes_df, notionals_df, target_asset=["SYN0", "SYN1"], lookback=LOOKBACK,
                            n_ahead=N_AHEAD, split_date="2021-01-14")
    ours = [r for r in record if "before the first trade" in str(r.message)]
    assert len(ours) == 1  # one warning for the whole panel
    message = str(ours[0].message)
    assert f"dropped {sum(leading.values())} zero-volume bar(s) before the first trade" in message
    assert f"'SYN0' {leading['SYN0']} bar(s)" in message and f"'SYN1' {leading['SYN1']} bar(s)" in message
    X_train, X_test, _, _, dates = out
    assert len(X_train) > 0 and len(X_test) > 0
    assert (dates >= volumes_df.index[leading["SYN0"] + LOOKBACK]).all()
    night = dates.hour < 14  # origins in the night: their horizon reaches the next session's bars
    assert night.any()


def test_dates_are_one_array_of_sample_origins_aligned_with_the_samples():
    from lems.data_formater import full_generate

    volumes_df, notionals_df = equity_panel_24h()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # the leading night (tested above)
        X_train, X_test, y_train, y_test, dates = full_generate(
            volumes_df, notionals_df, target_asset="SYN1", lookback=LOOKBACK, n_ahead=N_AHEAD,
            split_date="2021-01-14"
        )
    # 0.1.1 usage: one array, train then test
    assert len(dates) == len(X_train) + len(X_test) == len(y_train) + len(y_test)
    test_dates = dates[len(X_train):]
    assert len(test_dates) == len(X_test)
    as_array = np.asarray(dates)
    assert as_array.shape == (len(dates),)
    assert (pd.DatetimeIndex(as_array) == dates).all()
    assert (test_dates >= pd.Timestamp("2021-01-14")).all() and (dates[:len(X_train)] < pd.Timestamp("2021-01-14")).all()
    assert dates.is_monotonic_increasing and dates.tz is None  # expressed like the (naive) panel index
    # dates[i] is the origin of sample i: the targets recomputed from the raw panel at dates[i] match
    y_all = np.concatenate([y_train, y_test])
    for i in np.linspace(0, len(dates) - 1, 25).astype(int):
        np.testing.assert_allclose(y_all[i], expected_targets(volumes_df, notionals_df, "SYN1", dates[i]),
                                   rtol=2e-6, atol=1e-7)
    # and the origin shifted by one bar does not (the check can fail)
    i = len(dates) // 2
    shifted = volumes_df.index[volumes_df.index.get_loc(dates[i]) + 1]
    assert not np.allclose(y_all[i], expected_targets(volumes_df, notionals_df, "SYN1", shifted), rtol=1e-3)


def test_lists_of_limits_replicate_samples_and_targets_line_up():
    from lems.data_formater import add_config_to_X, add_config_to_y, full_generate

    volumes_df, notionals_df = equity_panel_24h(naive=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        X_train, _, y_train, _, _ = full_generate(
            volumes_df, notionals_df, target_asset="SYN0", lookback=LOOKBACK, n_ahead=N_AHEAD,
            split_date="2021-01-14"
        )
    n = len(X_train)
    inputs = add_config_to_X(X_train, [0.0, 0.05], [1.0, 0.5])
    targets = add_config_to_y(y_train, [0.0, 0.05], [1.0, 0.5])
    assert inputs[0].shape == (2 * n, *X_train.shape[1:])
    assert inputs[1].shape == inputs[2].shape == (2 * n, 1)
    assert targets.shape == (2 * n, N_AHEAD, N_AHEAD + 1, 4, 2)
    rows = np.array([0, n - 1, n, 2 * n - 1])
    np.testing.assert_array_equal(inputs[0][rows], X_train[rows % n])  # configuration-major
    np.testing.assert_array_equal(targets[rows], add_config_to_y(y_train)[rows % n])  # same rows as X
    np.testing.assert_array_equal(inputs[1][rows, 0], np.float32([0.0, 0.0, 0.05, 0.05]))
    np.testing.assert_array_equal(inputs[2][rows, 0], np.float32([1.0, 1.0, 0.5, 0.5]))
    with pytest.raises(ValueError, match="configuration 1"):
        add_config_to_X(X_train, [0.0, 0.05], [1.0, 0.2], n_ahead=N_AHEAD)  # 4 bars x 0.2 < 1


def test_seed_page_code_runs_on_a_24h_panel_with_lists_of_limits():
    """Not marked `backend`: ~20 s on JAX (compilation); the model calls alone run on every backend in
    tests/test_seed_example.py, and the data path above is backend-independent."""
    volumes_df, notionals_df = equity_panel_24h()

    # --- 0.1.1-style code (the seed page's snippets; lookback 120 -> 16, n_ahead 12 -> 4, hidden 200 -> 8) ---
    from lems.models import LargeExecutionModel
    from lems.loss import lem_loss
    from lems.metrics import (
        buy_vwap_avg_imp, buy_twap_avg_imp,
        sell_vwap_avg_imp, sell_twap_avg_imp,
        buy_vwap_avg_risk, buy_twap_avg_risk,
        sell_vwap_avg_risk, sell_twap_avg_risk,
        unsigned_vwap_avg_risk, unsigned_twap_avg_risk
    )
    from lems.data_formater import full_generate, add_config_to_X, add_config_to_y

    with pytest.warns(UserWarning, match="before the first trade"):
        X_train, X_test, y_train, y_test, dates = full_generate(
            volumes_df, notionals_df,
            target_asset='SYN0',
            lookback=16,
            n_ahead=4,
            split_date='2021-01-14'
        )
    test_dates = dates[len(X_train):]

    X_train = add_config_to_X(X_train[:24], [0.0, 0.05], [1.0, 0.5])
    y_train = add_config_to_y(y_train[:24], [0.0, 0.05], [1.0, 0.5])
    X_val = add_config_to_X(X_test[:8], minimum_traded_per_period=0.0, maximum_traded_per_period=1.0)
    y_val = add_config_to_y(y_test[:8])

    model = LargeExecutionModel(
        lookback=16,
        n_ahead=4,
        hidden_size=8,
        num_embedding=4,
        num_heads=2,
        fused_mlp_hidden_dim=8
    )

    model.compile(
        optimizer="adam",
        loss=lem_loss,
        metrics=[
            buy_vwap_avg_imp, buy_twap_avg_imp,
            sell_vwap_avg_imp, sell_twap_avg_imp,
            buy_vwap_avg_risk, buy_twap_avg_risk,
            sell_vwap_avg_risk, sell_twap_avg_risk,
            unsigned_vwap_avg_risk, unsigned_twap_avg_risk
        ]
    )

    history = model.fit(X_train, y_train, validation_data=(X_val, y_val), epochs=1, batch_size=16)
    # --- end of the 0.1.1-style code ---
    assert len(test_dates) == len(X_test)
    assert len(history.history) == 22 and np.isfinite(history.history["val_loss"]).all()
    allocations = np.asarray(model.predict(X_train, verbose=0))
    assert allocations.shape == (48, 4, 5, 4, 2)
    check_allocations(allocations[:24], 0.0, 1.0)
    check_allocations(allocations[24:], 0.05, 0.5)  # the second configuration's limits hold on its rows
