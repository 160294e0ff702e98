"""Execution semantics: the one implementation of docs/execution.md §2 and §4.

Everything that turns allocations into numbers (the loss, the metrics, the policies, the backtest, the reports and
the live session) calls this package; nothing re-derives it. The lowest stage of lems: it imports no other lems
module.

Modules:

* :mod:`~lems.execution.orders`: :class:`OrderSpec`, the seed layout's order types, the trading limits
  (:func:`check_rates`, :func:`allocate_step`, :func:`schedule_from_weights`, :func:`check_allocations`) and the
  flexible rule's threshold decay (:func:`rule_threshold_scale`);
* :mod:`~lems.execution.size`: :class:`OrderSize`, the participation cap, :class:`ExecutionConditions` and its
  one builder :func:`execution_conditions`;
* :mod:`~lems.execution.costs`: the cost models and :func:`cost_adjusted_prices`, the Corwin-Schultz estimator;
* :mod:`~lems.execution.outcome`: benchmark window, prices, :func:`execution_outcome`, the implementation
  shortfall, and the seed layout's outcomes (:func:`seed_outcome`, :func:`seed_execution`,
  :func:`fixed_duration_diffs`);
* :mod:`~lems.execution.layout`: the seed layout's columns and compact layouts (:func:`seed_columns`).

The arithmetic is written once against an array namespace: ``keras.ops`` for backend tensors (JAX, PyTorch,
TensorFlow: loss and metrics, differentiable) and ``numpy`` when every input is a numpy array or a Python
number (backtests, in float64, exact).

Conventions (docs/execution.md):

* Allocations ``a_s`` are fractions of the order (of its quantity or notional, per target) on a step axis.
* ``prices`` are bar VWAPs ``p_s`` (any positive scale, e.g. relative to a reference price), ``volumes``
  the bar volumes ``V_s`` (any non-negative scale; all ones for a TWAP benchmark).
* ``diff = P / B - 1``; improvement in bps: buy ``-diff * 1e4``, sell ``+diff * 1e4`` (positive is better).
* The seed's layout ``(batch, H, H + 1, 4, 2)`` is step × min-duration column × order type × target.
"""

from __future__ import annotations

from lems.execution._ops import array_namespace
from lems.execution.costs import (
    TRANSIENT_KERNELS,
    CompositeCost,
    CostedPrices,
    CostInputs,
    CostModel,
    FeeCost,
    LinearPermanentImpact,
    NoCost,
    SpreadCost,
    SquareRootImpact,
    TransientImpact,
    TransientParts,
    corwin_schultz_half_spread,
    cost_adjusted_prices,
)
from lems.execution.layout import (
    _ACTIVE_COLUMNS,  # module state: the same list object as lems.execution.layout's (never rebound)
    SeedColumns,
    column_weights,
    layout_columns,
    seed_columns,
    seed_min_durations,
)
from lems.execution.orders import (
    ARRIVAL,
    BENCHMARKS,
    FEASIBILITY_SLACK,
    IS_VWAP_ORDER,
    OBJECTIVES,
    ORDER_BENCHMARKS,
    ORDER_TYPE_NAMES,
    ORDER_TYPES,
    SIDES,
    SMOOTH_WINDOW_SCALE,
    TARGETS,
    WINDOW_TOL,
    OrderSpec,
    allocate_step,
    check_allocations,
    check_rates,
    feasible_interval,
    rate_columns,
    rule_threshold_scale,
    schedule_from_weights,
    seed_order_specs,
)
from lems.execution.outcome import (
    ExecutionOutcome,
    SeedExecution,
    Shortfall,
    achieved_price,
    benchmark_price,
    benchmark_window,
    execution_outcome,
    fixed_duration_diffs,
    implementation_shortfall,
    seed_execution,
    seed_market,
    seed_outcome,
    uniform_allocations,
)
from lems.execution.size import (
    ARRIVAL_PRICES,
    PARTICIPATION_CAP_RANGE,
    ZERO_VOLUME_FLOOR,
    ExecutionConditions,
    OrderSize,
    bar_participation,
    capped_fills,
    check_participation_cap,
    execution_conditions,
    participation_limit,
)

__all__ = [
    "ARRIVAL",
    "ARRIVAL_PRICES",
    "BENCHMARKS",
    "FEASIBILITY_SLACK",
    "IS_VWAP_ORDER",
    "OBJECTIVES",
    "ORDER_BENCHMARKS",
    "ORDER_TYPES",
    "ORDER_TYPE_NAMES",
    "PARTICIPATION_CAP_RANGE",
    "SIDES",
    "SMOOTH_WINDOW_SCALE",
    "TARGETS",
    "TRANSIENT_KERNELS",
    "WINDOW_TOL",
    "ZERO_VOLUME_FLOOR",
    "CompositeCost",
    "CostInputs",
    "CostModel",
    "CostedPrices",
    "ExecutionConditions",
    "ExecutionOutcome",
    "FeeCost",
    "LinearPermanentImpact",
    "NoCost",
    "OrderSize",
    "OrderSpec",
    "SeedColumns",
    "SeedExecution",
    "Shortfall",
    "SpreadCost",
    "SquareRootImpact",
    "TransientImpact",
    "TransientParts",
    "achieved_price",
    "allocate_step",
    "array_namespace",
    "bar_participation",
    "benchmark_price",
    "benchmark_window",
    "capped_fills",
    "check_allocations",
    "check_participation_cap",
    "check_rates",
    "column_weights",
    "corwin_schultz_half_spread",
    "cost_adjusted_prices",
    "execution_conditions",
    "execution_outcome",
    "feasible_interval",
    "fixed_duration_diffs",
    "implementation_shortfall",
    "layout_columns",
    "participation_limit",
    "rate_columns",
    "rule_threshold_scale",
    "schedule_from_weights",
    "seed_columns",
    "seed_execution",
    "seed_market",
    "seed_min_durations",
    "seed_order_specs",
    "seed_outcome",
    "uniform_allocations",
]
