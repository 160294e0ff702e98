"""Backtest of execution policies: one tidy row per (policy, window, order of the seed layout).

Every number comes from :func:`lems.execution.seed_outcome` (EXECUTION.md §4) on the policy's allocations and
the windows' horizon prices and volumes, in float64 numpy; nothing is re-derived here. With
:class:`~lems.execution.ExecutionConditions` (order size, cost model, participation cap), the rows come from
:func:`lems.execution.seed_execution` instead: net of costs, with the fills the cap allows, and with the
transaction-cost columns :data:`TCA_COLUMNS` (implementation shortfall against the arrival price and its
Perold decomposition). :func:`summary` aggregates the rows per policy × side × benchmark × target × min
duration × objective (EXECUTION.md §6).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from lems.baselines import Policy, arrival_prices, expected_bar_volume, lookback_half_spread, lookback_volatility
from lems.data.windows import WindowSet
from lems.execution import (
    BENCHMARKS,
    OBJECTIVES,
    ORDER_TYPES,
    SIDES,
    TARGETS,
    WINDOW_TOL,
    ExecutionConditions,
    check_participation_cap,
    rate_columns,
    seed_execution,
    seed_min_durations,
    seed_outcome,
)

__all__ = ["FRAME_COLUMNS", "GROUP_COLUMNS", "SUMMARY_STATS", "TCA_COLUMNS", "backtest", "cost_targets",
           "execution_inputs", "seed_targets", "summary", "windows_per_chunk"]

#: Columns of :func:`backtest`, in order.
FRAME_COLUMNS: tuple[str, ...] = (
    "policy", "window", "asset", "origin", "side", "target", "benchmark", "min_duration", "objective",
    "achieved_price", "benchmark_price", "diff", "improvement_bps", "tracking_error_bps",
    "realised_duration", "window_bars", "max_participation",
)  # fmt: skip
#: The numeric (outcome) columns of :func:`backtest`.
_NUMERIC_COLUMNS: tuple[str, ...] = FRAME_COLUMNS[9:]
#: Columns added after :data:`FRAME_COLUMNS` when :func:`backtest` gets execution conditions, in order.
TCA_COLUMNS: tuple[str, ...] = (
    "order_quantity", "order_participation", "realised_participation", "peak_bar_participation", "filled",
    "unfilled", "arrival_price", "shortfall_bps", "delay_bps", "timing_bps", "impact_bps", "opportunity_bps",
)  # fmt: skip
#: Grouping of :func:`summary`, in order.
GROUP_COLUMNS: tuple[str, ...] = ("policy", "side", "benchmark", "target", "min_duration", "objective")
#: Statistics of :func:`summary` per metric (quantiles in percent: p5 = 5 %, q25 = 25 %, ...).
SUMMARY_STATS: tuple[str, ...] = ("mean", "std", "median", "p5", "p95", "q25", "q75")
_QUANTILES = {"p5": 0.05, "p95": 0.95, "q25": 0.25, "q75": 0.75}
_SUMMARY_METRICS = ("improvement_bps", "tracking_error_bps")
_CHUNK = 2048  # windows per seed_outcome call (bounds the float64 temporaries)
_COSTED_CELLS = 2**21  # bar x order cells per seed_execution call (about 16 MiB per float64 temporary)
#: Bar x order cells of allocations asked of a policy at once (64 MiB of float64): long horizons stream windows.
_ALLOCATION_CELLS = 2**23


def windows_per_chunk(horizon: int, cells: int, cap: int | None = None) -> int:
    """Windows whose seed-layout arrays ``(n, H, H+1, 4, 2)`` hold at most ``cells`` cells (at least 1; at most
    ``cap`` when given): the chunk size that keeps long horizons within a memory bound."""
    per_window = horizon * (horizon + 1) * len(ORDER_TYPES) * len(TARGETS)
    chunk = max(1, cells // per_window)
    return chunk if cap is None else min(chunk, cap)


def _named_policies(policies: Policy | Sequence[Policy] | Mapping[str, Policy]) -> dict[str, Policy]:
    """Policies keyed by their row label (dict keys win over ``policy.name``)."""
    if isinstance(policies, Mapping):
        named = {str(k): p for k, p in policies.items()}
    else:
        items = [policies] if hasattr(policies, "allocate") else list(policies)
        named = {}
        for p in items:
            name = str(getattr(p, "name", type(p).__name__))
            if name in named:
                raise ValueError(f"two policies are named {name!r}: pass a dict to label them")
            named[name] = p
    if not named:
        raise ValueError("backtest needs at least one policy")
    for name, p in named.items():
        if not callable(getattr(p, "allocate", None)):
            raise ValueError(f"policy {name!r} has no allocate(windows, min_rate, max_rate) method")
    return named


def seed_targets(windows: WindowSet) -> np.ndarray:
    """Compact targets ``(N, H, 2)`` float64: [volume share, price / reference price].

    The definition of ``windows.y``, rebuilt in float64 from the raw horizon ``prices``, ``volumes`` and
    ``reference_price`` (no float32 rounding in the backtest).

    Raises:
        ValueError: shapes inconsistent with ``windows.y``, non-finite or non-positive prices.
    """
    n, horizon = len(windows), int(windows.n_ahead)
    prices = np.asarray(windows.prices, dtype=np.float64)
    volumes = np.asarray(windows.volumes, dtype=np.float64)
    ref = np.asarray(windows.reference_price, dtype=np.float64)
    if prices.shape != (n, horizon) or volumes.shape != (n, horizon) or ref.shape != (n,):
        raise ValueError(f"windows.prices/volumes must be ({n}, {horizon}) and reference_price ({n},), got "
                         f"{prices.shape}, {volumes.shape}, {ref.shape}")
    if not (np.all(np.isfinite(prices)) and np.all(prices > 0) and np.all(np.isfinite(ref)) and np.all(ref > 0)):
        raise ValueError("windows.prices and windows.reference_price must be finite and positive")
    if not (np.all(np.isfinite(volumes)) and np.all(volumes >= 0)):
        raise ValueError("windows.volumes must be finite and non-negative")
    total = volumes.sum(axis=1, keepdims=True)
    share = volumes / np.where(total > 0, total, 1.0)
    return np.stack([share, prices / ref[:, None]], axis=-1)


def _append_outcome(parts: dict[str, list[np.ndarray]], out, fills: np.ndarray, ref: np.ndarray) -> None:
    """Append the :data:`FRAME_COLUMNS` outcome columns of one chunk (``ref`` shaped ``(n, 1, 1, 1)``)."""
    steps = np.arange(1, fills.shape[1] + 1, dtype=np.float64).reshape(1, -1, 1, 1, 1)
    parts["achieved_price"].append((out.achieved * ref).ravel())
    parts["benchmark_price"].append((out.benchmark * ref).ravel())
    parts["diff"].append(np.asarray(out.diff).ravel())
    parts["improvement_bps"].append(np.asarray(out.improvement_bps).ravel())
    parts["tracking_error_bps"].append(np.abs(np.asarray(out.diff)).ravel() * 1e4)
    parts["realised_duration"].append(np.where(fills > WINDOW_TOL, steps, 0.0).max(axis=1).astype(np.int64).ravel())
    parts["window_bars"].append(np.rint(out.window).astype(np.int64).ravel())
    parts["max_participation"].append(fills.max(axis=1).ravel())


def _outcome_columns(allocations: np.ndarray, y: np.ndarray, reference: np.ndarray) -> dict[str, np.ndarray]:
    """Flattened numeric columns (C order of ``(N, H+1, 4, 2)``) for one policy, chunked over windows."""
    n = allocations.shape[0]
    parts: dict[str, list[np.ndarray]] = {k: [] for k in _NUMERIC_COLUMNS}
    for lo in range(0, n, _CHUNK):
        a, yy = allocations[lo:lo + _CHUNK], y[lo:lo + _CHUNK]
        _append_outcome(parts, seed_outcome(a, yy), a, reference[lo:lo + _CHUNK].reshape(-1, 1, 1, 1))
    return {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in parts.items()}


class ExecutionInputs(NamedTuple):
    """Per-window inputs of a costed execution, all causal except the realised horizon volume (``(N,)``).

    Attributes:
        quantity: order quantity [units] (:meth:`lems.execution.OrderSize.quantity_for`).
        order_participation: quantity over the EXPECTED horizon volume (lookback mean bar volume x H).
        realised_participation: quantity over the REALISED horizon volume (what the fills meet).
        sigma: lookback volatility per bar [fraction] (:func:`lems.baselines.lookback_volatility`), or ``None``
            when the cost model does not need it.
        half_spread: lookback Corwin-Schultz half-spread [fraction] (:func:`lems.baselines.lookback_half_spread`),
            or ``None`` when the cost model does not need it.
        arrival: arrival price [quote currency] (:func:`lems.baselines.arrival_prices`).
    """

    quantity: np.ndarray
    order_participation: np.ndarray
    realised_participation: np.ndarray
    sigma: np.ndarray | None
    half_spread: np.ndarray | None
    arrival: np.ndarray


def execution_inputs(windows: WindowSet, conditions: ExecutionConditions) -> ExecutionInputs:
    """Size, volatility, spread and arrival price of each window's order under ``conditions``.

    Raises:
        ValueError: a cap that cannot complete some window's order in expectation when
            ``conditions.require_completion``; bars missing what an estimate needs.
    """
    if not isinstance(conditions, ExecutionConditions):
        raise ValueError(f"conditions must be an lems.execution.ExecutionConditions, got {type(conditions).__name__}")
    horizon = int(windows.n_ahead)
    expected = expected_bar_volume(windows) * horizon if len(windows) else np.zeros(0)
    quantity = conditions.size.quantity_for(expected)
    participation = quantity / np.where(expected > 0, expected, 1.0)
    check_participation_cap(conditions.max_participation, participation,
                            require_completion=conditions.require_completion)
    realised_volume = np.asarray(windows.volumes, dtype=np.float64).sum(axis=1)
    if np.any(realised_volume <= 0):
        raise ValueError("every window needs traded volume in its horizon")
    model = conditions.cost_model
    return ExecutionInputs(
        quantity=quantity,
        order_participation=participation,
        realised_participation=quantity / realised_volume,
        sigma=lookback_volatility(windows) if model.needs_sigma else None,
        half_spread=lookback_half_spread(windows) if model.needs_half_spread else None,
        arrival=arrival_prices(windows, conditions.arrival),
    )


def cost_targets(windows: WindowSet, *, half_spread: float | None = None) -> np.ndarray:
    """Extended targets ``(N, H, 5)`` float64 for a cost-aware loss (:func:`lems.loss.make_lem_loss`).

    Channels :data:`lems.loss.TARGET_CHANNELS`: the compact two of :func:`seed_targets` (volume share, price /
    reference price), then per window, repeated on every step: ``sigma`` (:func:`lems.baselines.lookback_volatility`,
    fraction per bar), ``half_spread`` (fraction of price) and ``volume_ratio`` (expected horizon volume,
    :func:`lems.baselines.expected_bar_volume` x H, over the realised horizon volume). The same causal estimates as
    :func:`execution_inputs`, so that the loss costs a window as the backtest does.

    Args:
        windows: the windows.
        half_spread: a fixed half-spread [fraction of price, >= 0] for every window; ``None``: the Corwin-Schultz
            estimate over each lookback (:func:`lems.baselines.lookback_half_spread`; needs ``high``/``low``).

    Raises:
        ValueError: a negative or non-finite ``half_spread``, a window without volume in its lookback or horizon,
            anything :func:`seed_targets` rejects.
    """
    y = seed_targets(windows)
    n, horizon = y.shape[0], y.shape[1]
    if half_spread is not None and not (np.isfinite(half_spread) and half_spread >= 0):
        raise ValueError(f"half_spread must be a fraction of price in [0, inf) or None, got {half_spread!r}")
    if n == 0:
        return np.zeros((0, horizon, 5))
    realised = np.asarray(windows.volumes, dtype=np.float64).sum(axis=1)
    if np.any(realised <= 0):
        raise ValueError("every window needs traded volume in its horizon")
    spread = lookback_half_spread(windows) if half_spread is None else np.full(n, float(half_spread))
    extra = np.stack([lookback_volatility(windows), spread, expected_bar_volume(windows) * horizon / realised], -1)
    return np.concatenate([y, np.broadcast_to(extra[:, None, :], (n, horizon, extra.shape[-1]))], axis=-1)


def _costed_columns(allocations: np.ndarray, y: np.ndarray, reference: np.ndarray, inputs: ExecutionInputs,
                    conditions: ExecutionConditions, max_rate: np.ndarray) -> dict[str, np.ndarray]:
    """Like :func:`_outcome_columns`, through :func:`lems.execution.seed_execution`, plus :data:`TCA_COLUMNS`."""
    n, horizon = allocations.shape[0], allocations.shape[1]
    chunk = windows_per_chunk(horizon, _COSTED_CELLS)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in _NUMERIC_COLUMNS + TCA_COLUMNS}

    def per_order(x: np.ndarray, rows: slice) -> np.ndarray:  # one value per window, repeated over its orders
        return np.broadcast_to(x[rows, None, None, None], (len(x[rows]), *allocations.shape[2:])).ravel()

    def rows_of(x: np.ndarray | None, rows: slice) -> np.ndarray | None:
        return None if x is None else x[rows]

    for lo in range(0, n, chunk):
        rows = slice(lo, lo + chunk)
        ref = reference[rows]
        ex = seed_execution(allocations[rows], y[rows], cost_model=conditions.cost_model,
                            order_participation=inputs.realised_participation[rows],
                            sigma=rows_of(inputs.sigma, rows), half_spread=rows_of(inputs.half_spread, rows),
                            max_participation=conditions.max_participation, max_rate=max_rate[rows],
                            vwap_includes_order=conditions.vwap_includes_order, arrival=inputs.arrival[rows] / ref)
        _append_outcome(parts, ex.outcome, ex.fills, ref.reshape(-1, 1, 1, 1))
        sf = ex.shortfall
        for name, values in (("order_quantity", per_order(inputs.quantity, rows)),
                             ("order_participation", per_order(inputs.order_participation, rows)),
                             ("realised_participation", per_order(inputs.realised_participation, rows)),
                             ("peak_bar_participation", ex.participation.max(axis=1).ravel()),
                             ("filled", sf.filled.ravel()), ("unfilled", np.asarray(ex.unfilled).ravel()),
                             ("arrival_price", per_order(inputs.arrival, rows)),
                             ("shortfall_bps", sf.total_bps.ravel()), ("delay_bps", sf.delay_bps.ravel()),
                             ("timing_bps", sf.timing_bps.ravel()), ("impact_bps", sf.impact_bps.ravel()),
                             ("opportunity_bps", sf.opportunity_bps.ravel())):
            parts[name].append(np.asarray(values, dtype=np.float64))
    return {k: (np.concatenate(v) if v else np.zeros(0)) for k, v in parts.items()}


def _layout_columns(n: int, horizon: int) -> dict[str, Any]:
    """Order description columns for ``n`` stacked windows (C order of ``(n, H+1, 4, 2)``)."""
    n_types, n_targets = len(ORDER_TYPES), len(TARGETS)
    col = np.tile(np.repeat(np.arange(horizon + 1), n_types * n_targets), n)
    otype = np.tile(np.repeat(np.arange(n_types), n_targets), n * (horizon + 1))
    target = np.tile(np.arange(n_targets), n * (horizon + 1) * n_types)
    side_code = np.array([SIDES.index(s) for s, _ in ORDER_TYPES])[otype]
    bench_code = np.array([BENCHMARKS.index(b) for _, b in ORDER_TYPES])[otype]
    return {
        "side": pd.Categorical.from_codes(side_code, categories=list(SIDES)),
        "target": pd.Categorical.from_codes(target, categories=list(TARGETS)),
        "benchmark": pd.Categorical.from_codes(bench_code, categories=list(BENCHMARKS)),
        "min_duration": seed_min_durations(horizon).astype(np.int64)[col],
        "objective": pd.Categorical.from_codes((col == horizon).astype(np.int8), categories=list(OBJECTIVES)),
    }


def _window_columns(windows: WindowSet, names: list[str], per_window: int) -> dict[str, Any]:
    """Policy, window, asset and origin columns: each window repeated over its orders, per policy."""
    n, k = len(windows), len(names)
    asset_codes, asset_names = pd.factorize(pd.Series(np.asarray(windows.asset, dtype=object)), sort=True)
    origin = pd.DatetimeIndex(windows.origin)
    origin = origin.tz_localize("UTC") if origin.tz is None else origin.tz_convert("UTC")
    ns = np.tile(np.repeat(origin.as_unit("ns").asi8, per_window), k)
    return {
        "policy": pd.Categorical.from_codes(np.repeat(np.arange(k), n * per_window), categories=names),
        "window": np.tile(np.repeat(np.arange(n, dtype=np.int64), per_window), k),
        "asset": pd.Categorical.from_codes(np.tile(np.repeat(asset_codes, per_window), k),
                                           categories=list(asset_names)),
        "origin": pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC"),
    }


def backtest(policies: Policy | Sequence[Policy] | Mapping[str, Policy], windows: WindowSet, *,
             min_rate: Any = 0.0, max_rate: Any = 1.0, conditions: ExecutionConditions | None = None) -> pd.DataFrame:
    """Run policies on windows and score every order of the seed layout (EXECUTION.md §4).

    Args:
        policies: One policy, a sequence (labelled by ``policy.name``, unique) or a dict label -> policy.
        windows: The windows (one order of every seed type per window and policy).
        min_rate: Minimum fraction of the order per bar: a scalar or ``(N, 1)``.
        max_rate: Maximum fraction of the order per bar: a scalar or ``(N, 1)``.
        conditions: Order size, cost model, participation cap and arrival price
            (:class:`~lems.execution.ExecutionConditions`); ``None``: frictionless, today's frame.

    Returns:
        One row per (policy, window, column, order type, target), in that order, with columns
        :data:`FRAME_COLUMNS`: ``policy`` (categorical, in the given order), ``window`` (row in ``windows``),
        ``asset``, ``origin`` (UTC), ``side``, ``target``, ``benchmark``, ``min_duration`` [bars],
        ``objective`` (beat/track), ``achieved_price`` and ``benchmark_price`` [quote currency],
        ``diff`` [fraction], ``improvement_bps`` (positive is better), ``tracking_error_bps`` (``|diff| *
        1e4``), ``realised_duration`` [bars: 1 + last bar with an allocation > 1e-6], ``window_bars``
        [benchmark window length, bars], ``max_participation`` [largest allocation, fraction of the order].

        With ``conditions``, the policies' allocations are the plan and the rows score the FILLS (the cap
        carries what a bar's volume cannot take to later bars): ``achieved_price`` includes the costs and is over
        the filled part, ``benchmark_price`` is over the market's prices after the order's permanent impact (and
        its own fills with ``vwap_includes_order``), ``realised_duration`` / ``window_bars`` /
        ``max_participation`` follow the fills; then the :data:`TCA_COLUMNS`: ``order_quantity`` [units],
        ``order_participation`` [quantity / expected horizon volume], ``realised_participation`` [quantity /
        realised horizon volume], ``peak_bar_participation`` [largest fill / bar volume], ``filled`` and
        ``unfilled`` [fractions of the order, summing to 1], ``arrival_price`` [quote currency], and the
        implementation shortfall ``shortfall_bps`` = ``delay_bps`` + ``timing_bps`` + ``impact_bps`` +
        ``opportunity_bps`` (positive = cost; :class:`lems.execution.Shortfall`).

    Raises:
        ValueError: infeasible rates, policies with clashing names, allocations of the wrong shape, conditions
            the windows cannot meet (see :func:`execution_inputs`).
    """
    named = _named_policies(policies)
    n, horizon = len(windows), int(windows.n_ahead)
    y = seed_targets(windows)
    reference = np.asarray(windows.reference_price, dtype=np.float64)
    inputs = None if conditions is None else execution_inputs(windows, conditions)
    lo, hi = rate_columns(n, min_rate, max_rate, horizon)
    chunk = windows_per_chunk(horizon, _ALLOCATION_CELLS)  # windows per allocate() call: all unless H is long
    scalar_rates = np.isscalar(min_rate) and np.isscalar(max_rate)
    numeric: list[dict[str, np.ndarray]] = []
    for name, policy in named.items():
        parts = []
        for start in range(0, max(n, 1), chunk):
            rows = np.arange(start, min(n, start + chunk))
            part = windows if len(rows) == n else windows.subset(rows)
            rates = (min_rate, max_rate) if scalar_rates else (lo[rows], hi[rows])
            allocations = _checked_allocations(name, policy, part, *rates)
            if inputs is None:
                parts.append(_outcome_columns(allocations, y[rows], reference[rows]))
            else:
                sub = inputs._replace(**{k: None if v is None else v[rows] for k, v in inputs._asdict().items()})
                parts.append(_costed_columns(allocations, y[rows], reference[rows], sub, conditions, hi[rows]))
        numeric.append({k: np.concatenate([p[k] for p in parts]) for k in parts[0]})
    columns = list(FRAME_COLUMNS) + ([] if conditions is None else list(TCA_COLUMNS))
    frame = _window_columns(windows, list(named), (horizon + 1) * len(ORDER_TYPES) * len(TARGETS))
    frame.update(_layout_columns(n * len(named), horizon))
    frame.update({col: np.concatenate([part[col] for part in numeric]) for col in columns[9:]})
    return pd.DataFrame(frame, columns=columns)


def _checked_allocations(name: str, policy: Policy, windows: WindowSet, min_rate: Any, max_rate: Any) -> np.ndarray:
    """The policy's float64 allocations of ``windows`` (rates: scalars, or these windows' rows ``(n, 1)``), checked
    for shape and finiteness."""
    n, horizon = len(windows), int(windows.n_ahead)
    allocations = np.asarray(policy.allocate(windows, min_rate=min_rate, max_rate=max_rate), dtype=np.float64)
    shape = (n, horizon, horizon + 1, len(ORDER_TYPES), len(TARGETS))
    if allocations.shape != shape:
        raise ValueError(f"policy {name!r} returned allocations of shape {allocations.shape}, expected {shape}")
    if not np.all(np.isfinite(allocations)):
        raise ValueError(f"policy {name!r} returned NaN or inf allocations")
    return allocations


def summary(frame: pd.DataFrame, metrics: Sequence[str] = _SUMMARY_METRICS) -> pd.DataFrame:
    """Distribution of improvement and tracking error (or other metrics) per policy × side × benchmark × target ×
    min duration × objective.

    Args:
        frame: Output of :func:`backtest`.
        metrics: numeric columns to describe (default ``improvement_bps`` and ``tracking_error_bps``; with
            execution conditions e.g. also ``shortfall_bps``, ``impact_bps``, ``unfilled``).

    Returns:
        One row per group (columns :data:`GROUP_COLUMNS` first), then for each metric the columns
        ``<metric>_<stat>`` for :data:`SUMMARY_STATS` (std with ``ddof=1``; quantiles linearly interpolated,
        numpy's default), and ``count`` (orders in the group).

    Raises:
        ValueError: a required column is missing, or no metric.
    """
    metrics = [str(m) for m in ([metrics] if isinstance(metrics, str) else metrics)]
    if not metrics:
        raise ValueError("summary needs at least one metric")
    needed = list(GROUP_COLUMNS) + metrics
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise ValueError(f"summary needs the backtest columns {missing}")
    grouped = frame.groupby(list(GROUP_COLUMNS), observed=True, sort=True)[metrics]
    stats = grouped.agg(["mean", "std", "median"])
    stats.columns = [f"{metric}_{stat}" for metric, stat in stats.columns]
    quantiles = [grouped.quantile(q).add_suffix(f"_{stat}") for stat, q in _QUANTILES.items()]
    out = stats.join(quantiles)
    ordered = [f"{m}_{s}" for m in metrics for s in SUMMARY_STATS]
    out = out[ordered]
    out["count"] = grouped.size()
    return out.reset_index()
