"""The seed's README example, verbatim apart from sizes (and the data it starts from)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.backend


def test_seed_readme_example_runs():
    from lems.data.loaders import to_wide
    from lems.data.synthetic import synthetic_market

    bars = synthetic_market(n_assets=2, n_days=20, calendar="24/7", seed=5)
    volumes_df, notionals_df = to_wide(bars, "volume"), to_wide(bars, "notional")
    target = volumes_df.columns[0]
    split = volumes_df.index[int(len(volumes_df) * 0.75)]

    # --- the seed's example starts here (lookback 120 -> 16, n_ahead 12 -> 4, hidden 200 -> 8, ...) ---
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

    X_train, X_test, y_train, y_test, dates = full_generate(
        volumes_df, notionals_df,
        target_asset=target,
        lookback=16,
        n_ahead=4,
        split_date=split
    )

    X_train = add_config_to_X(X_train, minimum_traded_per_period=0.0, maximum_traded_per_period=1.0)
    y_train = add_config_to_y(y_train)
    X_val = add_config_to_X(X_test, minimum_traded_per_period=0.0, maximum_traded_per_period=1.0)
    y_val = add_config_to_y(y_test)

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

    history = model.fit(X_train, y_train, validation_data=(X_val, y_val), epochs=1, batch_size=64)
    # --- end of the seed's example ---
    assert len(dates) == len(y_train) + len(y_val)  # one index of sample origins, train then test
    assert (dates[: len(y_train)] < split).all() and (dates[len(y_train) :] >= split).all()
    assert "val_unsigned_vwap_avg_risk" in history.history
