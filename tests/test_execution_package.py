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
    rule_threshold_scale,
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
