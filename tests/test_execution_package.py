"""The lems.execution package: one builder of ExecutionConditions, one rule threshold decay, one module state."""

from __future__ import annotations

import numpy as np
import pytest

import lems.execution as execution
from lems.execution import (
    ExecutionConditions,
    NoCost,
    OrderSize,
    SquareRootImpact,
    execution_conditions,
    fixed_duration_diffs,
    rule_threshold_scale,
    schedule_from_weights,
    seed_outcome,
)
from lems.execution import layout as layout_module


def test_builder_one_per_size_in_order_with_every_field():
    model = SquareRootImpact(coef=0.5)
    built = execution_conditions([0.01, OrderSize(quantity=5.0), 0.2], cost_model=model, max_participation=0.3,
                                 require_completion=True, vwap_includes_order=True, arrival="reference")
    assert [c.size for c in built] == [OrderSize(participation=0.01), OrderSize(quantity=5.0),
                                       OrderSize(participation=0.2)]
    for c in built:
        assert c == ExecutionConditions(c.size, model, max_participation=0.3, require_completion=True,
                                        vwap_includes_order=True, arrival="reference")


def test_builder_single_size_defaults_and_empty():
    (only,) = execution_conditions(0.05)
    assert only == ExecutionConditions(OrderSize(participation=0.05), NoCost())
    assert execution_conditions([]) == []


def test_builder_keeps_require_completion():
    assert execution_conditions(0.3, max_participation=0.05)[0].max_participation == 0.05
    with pytest.raises(ValueError, match="cannot complete"):
        execution_conditions(0.3, max_participation=0.05, require_completion=True)


@pytest.mark.parametrize("size", [0.0, -1.0, float("nan"), "0.1", True])
def test_builder_rejects_bad_sizes(size):
    with pytest.raises(ValueError, match="participation"):
        execution_conditions(size)


def test_rule_threshold_scale():
    np.testing.assert_allclose(rule_threshold_scale(4, 0.5), np.sqrt([1.0, 0.75, 0.5, 0.25]))
    np.testing.assert_array_equal(rule_threshold_scale(3, 0.0), np.ones(3))
    with pytest.raises(ValueError, match="decay"):
        rule_threshold_scale(3, -1.0)
    with pytest.raises(ValueError, match="horizon"):
        rule_threshold_scale(0, 0.5)


def test_active_columns_is_one_object():
    assert execution._ACTIVE_COLUMNS is layout_module._ACTIVE_COLUMNS
    with execution.seed_columns(np.array([0, 3]), np.array([3.0, 1.0])):
        assert layout_module.layout_columns(3, 2) is execution._ACTIVE_COLUMNS[-1]
    assert not execution._ACTIVE_COLUMNS


@pytest.mark.parametrize("seed", range(3))
def test_fixed_duration_diffs_are_the_fixed_column_of_seed_outcome(seed):
    rng = np.random.default_rng(seed)
    n, horizon = 5, 6
    prices = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, horizon)), axis=1))
    volumes = rng.gamma(2.0, 50.0, (n, horizon)) * (rng.random((n, horizon)) > 0.2)
    allocations = schedule_from_weights(rng.random((n, horizon, horizon + 1, 4, 2)), 0.0, 0.5, axis=1)
    y = np.stack([volumes / volumes.sum(axis=1, keepdims=True), prices / prices[:, :1]], axis=-1)
    expected = np.asarray(seed_outcome(allocations, y).diff)[:, horizon]
    np.testing.assert_allclose(fixed_duration_diffs(allocations, prices, volumes), expected, rtol=0, atol=1e-13)
    np.testing.assert_array_equal(fixed_duration_diffs(allocations[:, :, -1], prices, volumes),
                                  fixed_duration_diffs(allocations, prices, volumes))
    with pytest.raises(ValueError, match="positive"):
        fixed_duration_diffs(allocations, -prices, volumes)
    with pytest.raises(ValueError, match=r"\(N, H\)"):
        fixed_duration_diffs(allocations, prices[:, 1:], volumes)
