"""lems.execution against hand-computed cases, and the step-wise limits on random input."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lems.execution import (
    OrderSpec,
    check_allocations,
    check_rates,
    execution_outcome,
    schedule_from_weights,
    seed_order_specs,
    seed_outcome,
)

PRICES = np.array([100.0, 102.0, 98.0, 101.0])
VOLUMES = np.array([10.0, 30.0, 0.0, 60.0])


def _one(allocs, d, *, notional=0, side="buy", volumes=VOLUMES, prices=PRICES):
    out = execution_outcome(np.asarray(allocs, float)[None], prices[None], volumes[None], d,
                            notional=notional, side=side)
    return {k: float(np.asarray(v)[0]) for k, v in out._asdict().items()}


def test_quantity_vwap_fixed_by_hand():
    a = [0.25, 0.25, 0.25, 0.25]
    out = _one(a, 4)
    achieved = (100 + 102 + 98 + 101) / 4
    vwap = (10 * 100 + 30 * 102 + 0 * 98 + 60 * 101) / 100
    assert out["achieved"] == pytest.approx(achieved)
    assert out["benchmark"] == pytest.approx(vwap)
    assert out["diff"] == pytest.approx(achieved / vwap - 1)
    assert out["improvement_bps"] == pytest.approx(-(achieved / vwap - 1) * 1e4)
    assert out["window"] == 4


def test_notional_target_harmonic_mean_by_hand():
    a = [0.5, 0.5, 0.0, 0.0]
    out = _one(a, 2, notional=1, side="sell", volumes=np.ones(4))
    shares = 0.5 / 100 + 0.5 / 102
    assert out["achieved"] == pytest.approx(1.0 / shares)
    assert out["benchmark"] == pytest.approx(101.0)  # TWAP over the 2-bar window
    assert out["improvement_bps"] == pytest.approx((1.0 / shares / 101.0 - 1) * 1e4)


def test_flexible_window_ends_early_but_not_below_min_duration():
    early = _one([0.0, 1.0, 0.0, 0.0], 1)  # window = bars 0..1
    assert early["window"] == 2
    assert early["benchmark"] == pytest.approx((10 * 100 + 30 * 102) / 40)
    at_d = _one([1.0, 0.0, 0.0, 0.0], 3)  # finished at bar 0 but d = 3
    assert at_d["window"] == 3
    assert at_d["benchmark"] == pytest.approx((10 * 100 + 30 * 102) / 40)  # bar 2 has zero volume


def test_zero_volume_window_falls_back_to_twap():
    out = _one([1.0, 0.0, 0.0, 0.0], 1, volumes=np.array([0.0, 5.0, 5.0, 5.0]))
    assert out["benchmark"] == pytest.approx(100.0)
    assert np.isfinite(out["diff"])


def test_tolerance_does_not_extend_window():
    out = _one([1 - 1e-8, 1e-8, 0, 0], 1)
    assert out["window"] == 1


@pytest.mark.parametrize("kwargs, fragment", [
    ({"side": "hold", "horizon": 4}, "side"),
    ({"side": "buy", "horizon": 0}, "horizon"),
    ({"side": "buy", "horizon": 4, "min_duration": 5}, "min_duration"),
    ({"side": "buy", "horizon": 4, "min_duration": 2, "objective": "track"}, "track"),
    ({"side": "buy", "horizon": 4, "max_rate": 0.2}, "infeasible"),
    ({"side": "buy", "horizon": 4, "min_rate": 0.5, "max_rate": 0.3}, "min_rate must not exceed"),
    ({"side": "buy", "horizon": 4, "min_rate": -0.1}, "non-negative"),
    ({"side": "buy", "horizon": 4, "max_rate": float("nan")}, "finite"),
    ({"side": "buy", "horizon": 4, "target": "shares?"}, "target"),
    ({"side": "buy", "horizon": 4, "benchmark": "close"}, "benchmark"),
])
def test_orderspec_rejects_malformed(kwargs, fragment):
    with pytest.raises(ValueError, match=fragment):
        OrderSpec(**kwargs)


def test_orderspec_defaults_and_seed_indexing():
    spec = OrderSpec("SELL", 12, target="volume", benchmark="TWAP", min_duration=3)
    assert (spec.side, spec.target, spec.benchmark, spec.objective) == ("sell", "quantity", "twap", "beat")
    assert spec.seed_column == 2 and spec.order_type_index == 3 and spec.target_index == 0
    specs = seed_order_specs(4)
    assert len(specs) == 5 * 4 * 2
    assert specs[-1].objective == "track" and specs[-1].target == "notional"
    with pytest.raises(AttributeError):
        spec.side = "buy"  # frozen


@settings(max_examples=60, deadline=None)
@given(horizon=st.integers(1, 16), seed=st.integers(0, 10_000), min_frac=st.floats(0, 1), max_frac=st.floats(0, 1),
       zero_weights=st.booleans())
def test_schedule_from_weights_obeys_limits(horizon, seed, min_frac, max_frac, zero_weights):
    rng = np.random.default_rng(seed)
    max_rate = 1.0 / horizon + max_frac * (1 - 1.0 / horizon)
    min_rate = min_frac * max_rate
    weights = rng.exponential(size=(8, horizon)) ** 3
    if zero_weights:
        weights[:, rng.integers(0, horizon):] = 0.0
    allocs = schedule_from_weights(weights, min_rate, max_rate, axis=1)
    check_allocations(allocs, min_rate, max_rate, axis=1)


def test_schedule_without_limits_is_the_curve():
    w = np.array([[1.0, 3.0, 0.0, 4.0]])
    np.testing.assert_allclose(schedule_from_weights(w), w / 8.0)


def test_check_rates_per_sample():
    check_rates(4, np.zeros((3, 1)), np.full((3, 1), 0.25))
    with pytest.raises(ValueError, match="infeasible"):
        check_rates(4, np.zeros((3, 1)), np.array([[0.25], [0.2], [1.0]]))


def test_check_allocations_catches_each_violation():
    with pytest.raises(ValueError, match="sum"):
        check_allocations(np.array([[0.5, 0.4]]))
    with pytest.raises(ValueError, match="negative"):
        check_allocations(np.array([[1.2, -0.2]]))
    with pytest.raises(ValueError, match="max_rate"):
        check_allocations(np.array([[0.8, 0.2]]), 0.0, 0.6)
    with pytest.raises(ValueError, match="min"):
        check_allocations(np.array([[0.95, 0.0, 0.05]]), 0.1, 1.0)


def _seed_case(batch=3, horizon=5, seed=0):
    rng = np.random.default_rng(seed)
    allocs = rng.dirichlet(np.ones(horizon), size=(batch, horizon + 1, 4, 2))  # (B, C, 4, 2, H)
    allocs = np.moveaxis(allocs, -1, 1)
    y = np.stack([rng.dirichlet(np.ones(horizon), size=batch), 1 + 0.01 * rng.standard_normal((batch, horizon))], -1)
    return allocs, y


def test_seed_layout_matches_per_order_arithmetic():
    allocs, y = _seed_case()
    out = seed_outcome(allocs, y)
    horizon = y.shape[1]
    for spec in seed_order_specs(horizon):
        col, typ, tgt = spec.seed_column, spec.order_type_index, spec.target_index
        vols = y[..., 0] if spec.benchmark == "vwap" else np.ones_like(y[..., 0])
        ref = execution_outcome(allocs[:, :, col, typ, tgt], y[..., 1], vols, spec.min_duration,
                                notional=spec.target == "notional", side=spec.side)
        np.testing.assert_allclose(out.improvement_bps[:, col, typ, tgt], ref.improvement_bps, rtol=1e-9)


def test_seed_layout_tiled_targets_equal_compact():
    from lems.data_formater import add_config_to_y

    allocs, y = _seed_case()
    tiled = add_config_to_y(y)
    np.testing.assert_allclose(seed_outcome(allocs, tiled).diff, seed_outcome(allocs, y).diff, rtol=1e-5, atol=1e-7)


def test_backend_tensors_match_numpy():
    allocs, y = _seed_case()
    ref = seed_outcome(allocs, y)
    out = seed_outcome(keras.ops.convert_to_tensor(allocs, "float32"), keras.ops.convert_to_tensor(y, "float32"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(out.improvement_bps), ref.improvement_bps, atol=0.05)


def test_smooth_window_has_hard_values_and_soft_gradients():
    allocs, y = _seed_case()
    hard = seed_outcome(allocs, y)
    tensors = [keras.ops.convert_to_tensor(a, "float32") for a in (allocs, y)]
    smooth = seed_outcome(*tensors, smooth=True)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(smooth.diff), hard.diff, rtol=1e-4, atol=1e-6)
    horizon = allocs.shape[1]
    late, early = np.zeros_like(allocs), np.zeros_like(allocs)
    late[:, -1], early[:, 0] = 1.0, 1.0  # everything traded in the last bar / in the first bar
    # the window effect on the values: column 0 (flexible, d = 1) benchmarks over the bars it trades in
    assert (seed_outcome(late, y).window[:, 0] == horizon).all()
    assert (seed_outcome(early, y).window[:, 0] == 1).all()
    np.testing.assert_allclose(seed_outcome(early, y).diff[:, 0, [0, 2], 0], 0.0, atol=1e-12)  # VWAP of its own bar
    assert (seed_outcome(early, y).window[:, -1] == horizon).all()  # the fixed column keeps the whole horizon
    if keras.backend.backend() == "jax":
        import jax

        def grad(a, smooth, column):
            def diff_sum(t):
                return seed_outcome(t, tensors[1], smooth=smooth).diff[:, column].sum()

            return np.asarray(jax.grad(diff_sum)(keras.ops.convert_to_tensor(a, "float32")))

        # the window effect on the gradient: only the soft window differs from the hard one
        window_part = grad(late, True, 0) - grad(late, False, 0)
        assert np.abs(window_part).max() > 1e-5  # ~2e-4 here; float32 noise is ~1e-8
        np.testing.assert_allclose(grad(late, True, -1), grad(late, False, -1), atol=1e-7)  # fixed: d = H
