"""Forecast combination of tracking schedules (lems.blend)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from lems.backtest import backtest
from lems.baselines import TWAP, FlexibleRule, StaticVWAP
from lems.blend import BlendedPolicy, fit_blend_weights, fit_blended_policy, simplex_min_second_moment
from lems.data.synthetic import synthetic_market
from lems.data.windows import make_windows
from lems.execution import check_allocations


@lru_cache(maxsize=None)
def _windows():
    return make_windows(synthetic_market(n_assets=2, n_days=25, seed=7), 8, 6, stride=3)


def _rms_fixed_vwap(frame, policy: str) -> float:
    rows = frame[(frame["objective"] == "track") & (frame["benchmark"] == "vwap") & (frame["policy"] == policy)]
    return float(np.sqrt(np.mean(rows["diff"].to_numpy() ** 2)))


@pytest.mark.parametrize("seed", range(5))
def test_simplex_minimum_beats_every_random_blend(seed):
    rng = np.random.default_rng(seed)
    errors = rng.normal(size=(200, 4)) @ rng.normal(size=(4, 4)) + rng.normal(size=(200, 1))
    moments = errors.T @ errors / len(errors)
    w = simplex_min_second_moment(moments)
    assert np.all(w >= 0) and np.isclose(w.sum(), 1.0)
    candidates = rng.dirichlet(np.ones(4), size=20000)
    candidates = np.vstack([candidates, np.eye(4)])
    values = np.einsum("nk,kl,nl->n", candidates, moments, candidates)
    assert w @ moments @ w <= values.min() + 1e-12


def test_independent_errors_get_inverse_variance_weights():
    w = simplex_min_second_moment(np.diag([1.0, 4.0]))
    np.testing.assert_allclose(w, [0.8, 0.2])
    np.testing.assert_allclose(simplex_min_second_moment(np.array([[1.0, 1.0], [1.0, 4.0]])), [1.0, 0.0])


def test_bad_moments_are_rejected():
    with pytest.raises(ValueError, match="square"):
        simplex_min_second_moment(np.ones((2, 3)))
    with pytest.raises(ValueError, match="symmetric"):
        simplex_min_second_moment(np.array([[1.0, 0.5], [0.0, 1.0]]))


def test_blend_is_feasible_keeps_the_flexible_columns_and_is_linear_in_the_fixed_errors():
    win = _windows()
    policies = {"rule": FlexibleRule(), "static": StaticVWAP(), "twap": TWAP()}
    weights = {"vwap": {"static": 0.6, "twap": 0.4}, "twap": {"twap": 1.0}}
    blend = BlendedPolicy(policies, weights, flexible_from="rule")
    max_rate = 0.4
    allocations = blend.allocate(win, 0.05, max_rate)
    check_allocations(allocations, 0.05, max_rate)
    rule = policies["rule"].allocate(win, 0.05, max_rate)
    np.testing.assert_array_equal(allocations[:, :, :-1], rule[:, :, :-1])
    frame = backtest({**policies, "blend": blend}, win, min_rate=0.05, max_rate=max_rate)
    fixed = frame[(frame["objective"] == "track") & (frame["benchmark"] == "vwap") & (frame["target"] == "quantity")]
    diff = fixed.pivot_table(index=["window", "side"], columns="policy", values="diff", observed=True)
    np.testing.assert_allclose(diff["blend"], 0.6 * diff["static"] + 0.4 * diff["twap"], rtol=1e-9, atol=1e-12)


def test_fitted_blend_tracks_no_worse_than_any_policy_on_its_fit_windows():
    win = _windows()
    policies = {"static": StaticVWAP(n_days=3), "static_long": StaticVWAP(n_days=20), "twap": TWAP()}
    weights = fit_blend_weights(policies, win)
    assert all(v >= 0 for w in weights.values() for v in w.values())
    blend = fit_blended_policy(policies, win, flexible_from="static")
    frame = backtest({**policies, "blend": blend}, win)
    best = min(_rms_fixed_vwap(frame, name) for name in policies)
    assert _rms_fixed_vwap(frame, "blend") <= best + 1e-12
    twap_orders = frame[(frame["objective"] == "track") & (frame["benchmark"] == "twap") & (frame["policy"] == "blend")
                        & (frame["target"] == "quantity")]
    assert np.abs(twap_orders["diff"]).max() < 1e-12  # every policy here tracks TWAP exactly (quantity orders)
    assert sum(v > 0 for v in weights["vwap"].values()) >= 2  # a real combination here, not one policy


def test_bad_weights_and_labels_are_rejected():
    policies = {"static": StaticVWAP(), "twap": TWAP()}
    with pytest.raises(ValueError, match="sum to 1"):
        BlendedPolicy(policies, {"vwap": {"static": 0.5}, "twap": {"twap": 1.0}}, "static")
    with pytest.raises(ValueError, match="not blended"):
        BlendedPolicy(policies, {"vwap": {"other": 1.0}, "twap": {"twap": 1.0}}, "static")
    with pytest.raises(ValueError, match="flexible_from"):
        BlendedPolicy(policies, {"vwap": {"static": 1.0}, "twap": {"twap": 1.0}}, "model")
