"""Exchange fees (issue 24 item 2): maker/taker bps per child order, a part of its own in the shortfall and the TCA.

Default 0: every number without a fee is unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest

from lems.evaluation.cost_parameters import almgren_chriss_parameters
from lems.execution import (
    FeeCost,
    NoCost,
    SpreadCost,
    SquareRootImpact,
    TransientImpact,
    cost_adjusted_prices,
    implementation_shortfall,
    seed_execution,
)
from lems.loss import cost_model_from_config, cost_model_to_config
from lems.training.config import TrainConfig

IMPACT = SpreadCost(1.0) + SquareRootImpact(0.8) + TransientImpact(bar_minutes=5.0)


def _seed_case(seed: int = 0, batch: int = 4, horizon: int = 5):
    rng = np.random.default_rng(seed)
    allocs = rng.dirichlet(np.ones(horizon), size=(batch, horizon + 1, 4, 2)).transpose(0, 4, 1, 2, 3)
    volume = rng.uniform(0.2, 2.0, (batch, horizon))
    prices = 1.0 + 0.01 * rng.standard_normal((batch, horizon))
    return allocs, np.stack([volume / volume.sum(1, keepdims=True), prices], axis=-1)


@pytest.mark.parametrize("cap", [None, 0.25])
def test_parts_sum_to_the_shortfall_with_fees(cap):
    allocs, y = _seed_case(seed=5)
    model = IMPACT + FeeCost(taker_bps=5.0, maker_bps=-1.0, maker_fraction=0.3)
    ex = seed_execution(allocs, y, cost_model=model, order_participation=0.3, sigma=0.02, max_participation=cap,
                        arrival=np.array([1.01, 0.99, 1.0, 1.002]))
    sf = ex.shortfall
    if cap is not None:
        assert np.abs(ex.unfilled).max() > 0.01  # exercised with an unfilled part
    np.testing.assert_allclose(sf.delay_bps + sf.timing_bps + sf.impact_bps + sf.fee_bps + sf.opportunity_bps,
                               sf.total_bps, rtol=1e-12, atol=1e-9)
    assert np.all(sf.fee_bps > 0)
    # the fee is its own part: impact, delay, timing and opportunity are those of the same costs without it
    without = seed_execution(allocs, y, cost_model=IMPACT, order_participation=0.3, sigma=0.02,
                             max_participation=cap, arrival=np.array([1.01, 0.99, 1.0, 1.002])).shortfall
    for name in ("delay_bps", "timing_bps", "impact_bps", "opportunity_bps", "filled"):
        np.testing.assert_allclose(getattr(sf, name), getattr(without, name), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(without.fee_bps, 0.0)


@pytest.mark.parametrize("side", ["buy", "sell"])
def test_fee_part_by_hand(side):
    """Quantity target: the fee part is ``phi * fee * P_0 / A`` (P_0 the achieved price before any cost)."""
    fills = np.array([[0.3, 0.2, 0.0]])
    prices = np.array([[100.0, 101.0, 103.0]])
    model = SquareRootImpact(1.0) + FeeCost(taker_bps=4.0)
    costed = cost_adjusted_prices(prices, np.array([[0.1, 0.1, 0.0]]), model, side=side, sigma=0.01)
    no_fee = cost_adjusted_prices(prices, np.array([[0.1, 0.1, 0.0]]), SquareRootImpact(1.0), side=side, sigma=0.01)
    np.testing.assert_array_equal(costed.before_fees, no_fee.fill)
    out = implementation_shortfall(fills, prices, costed.fill, costed.market, 99.0, side=side,
                                   fee_free_prices=costed.before_fees)
    p0 = (0.3 * 100.0 + 0.2 * 101.0) / 0.5
    assert out.fee_bps[0] == pytest.approx(0.5 * 4e-4 * p0 / 99.0 * 1e4, rel=1e-12)
    assert out.delay_bps + out.timing_bps + out.impact_bps + out.fee_bps + out.opportunity_bps == \
        pytest.approx(out.total_bps, rel=1e-12)


def test_default_is_no_fee_and_numbers_do_not_change():
    assert FeeCost().is_free and FeeCost(0.0, 3.0, 0.0).is_free
    assert TrainConfig().execution.cost_model() == NoCost()
    assert TrainConfig(impact_coef=1.0).execution.cost_model() == SquareRootImpact(1.0)  # no fee part added
    prices = np.array([[100.0, 101.0]])
    out = cost_adjusted_prices(prices, np.array([[0.1, 0.2]]), SquareRootImpact(1.0), sigma=0.01)
    assert out.before_fees is None
    assert cost_adjusted_prices(prices, np.array([[0.1, 0.2]]), FeeCost()).fill is prices  # free: bit for bit


def test_maker_taker_blend():
    fee = FeeCost(taker_bps=6.0, maker_bps=-1.0, maker_fraction=0.25)
    assert fee.fee_bps == pytest.approx(0.75 * 6.0 - 0.25)
    prices = np.array([[50.0, 51.0]])
    out = cost_adjusted_prices(prices, np.zeros((1, 2)), fee, side="sell")
    np.testing.assert_allclose(out.fill, prices * (1 - fee.fee_bps * 1e-4), rtol=1e-15)
    np.testing.assert_array_equal(out.market, prices)  # fees never move the market


@pytest.mark.parametrize("build, match", [
    (lambda: FeeCost(taker_bps=-1.0), "taker_bps"),
    (lambda: FeeCost(taker_bps=float("nan")), "taker_bps"),
    (lambda: FeeCost(maker_bps=float("inf")), "maker_bps"),
    (lambda: FeeCost(maker_fraction=1.5), "maker_fraction"),
    (lambda: FeeCost(taker_bps=1.0, maker_bps=-3.0, maker_fraction=0.9), "rebate"),
    (lambda: TrainConfig(fee_bps=-2.0), "fee_bps"),
    (lambda: TrainConfig(maker_fraction=2.0), "maker_fraction"),
    (lambda: TrainConfig(fee_bps=1.0, maker_fee_bps=-5.0, maker_fraction=0.5), "rebate"),
])
def test_bad_fee_input_raises(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_config_cli_loss_and_almgren_chriss():
    config = TrainConfig(fee_bps=5.0, maker_fee_bps=1.0, maker_fraction=0.5)
    assert config.execution.cost_model() == FeeCost(5.0, 1.0, 0.5)
    from lems.cli import _train_config, build_parser

    args = build_parser().parse_args(["evaluate", "m.keras", "synthetic", "--sizes", "0.05", "--fee-bps", "5",
                                      "--impact", "transient", "--impact-coef", "1", "--bar-minutes", "5"])
    args.config = None
    execution = _train_config(args, ["synthetic"]).execution
    assert execution.cost_model() == TransientImpact(bar_minutes=5.0) + FeeCost(5.0)
    model = IMPACT + FeeCost(5.0)
    assert cost_model_from_config(cost_model_to_config(model)) == model
    params = almgren_chriss_parameters(SquareRootImpact(1.0) + FeeCost(5.0), 0.05, 0.002, 6)
    assert params["epsilon"] == pytest.approx(5e-4)


def test_tca_table_has_the_fee_part():
    from lems.baselines import TWAP
    from lems.evaluation.backtest import costed_backtest
    from lems.data.synthetic import synthetic_market
    from lems.data.windows import make_windows
    from lems.evaluation.tca import tca_table
    from lems.execution import ExecutionConditions, OrderSize

    windows = make_windows(synthetic_market(n_assets=1, n_days=6, seed=2), 8, 6, stride=7)
    conditions = ExecutionConditions(OrderSize(participation=0.05), SquareRootImpact(1.0) + FeeCost(5.0))
    frame = costed_backtest([TWAP()], windows, [conditions], ac_risk_aversion=None)
    parts = frame[["delay_bps", "timing_bps", "impact_bps", "fee_bps", "opportunity_bps"]].sum(axis=1)
    np.testing.assert_allclose(parts, frame["shortfall_bps"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(frame["fee_bps"], 5.0, rtol=0.05)  # 5 bps of the value at arrival, near P_0 / A
    table = tca_table(frame)
    assert "fee_bps" in table.columns and table["fee_bps"].iloc[0] == pytest.approx(5.0, rel=0.05)
    old = tca_table(frame.drop(columns="fee_bps"))  # a frame written before fees: read as no fee
    assert (old["fee_bps"] == 0).all()
