"""Backtest of execution policies: one tidy row per (policy, window, order of the seed layout).

Every number comes from :func:`lems.execution.seed_outcome` (docs/execution.md §4) on the policy's allocations and
the windows' horizon prices and volumes, in float64 numpy; nothing is re-derived here. With
:class:`~lems.execution.ExecutionConditions` (order size, cost model, participation cap), the rows come from
:func:`lems.execution.seed_execution` instead: net of costs, with the fills the cap allows, and with the
transaction-cost columns :data:`TCA_COLUMNS` (implementation shortfall against the arrival price and its
Perold decomposition). :func:`summary` aggregates the rows per policy × side × benchmark × target × min
duration × objective (docs/execution.md §6). :func:`costed_backtest` stacks costed frames of several order sizes (the
input of the transaction-cost analysis, :mod:`lems.evaluation.tca`).

The targets the backtest scores against (:func:`lems.data.targets.seed_targets`) and the per-window cost inputs
(:func:`lems.data.targets.execution_inputs`) belong to the data stage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from lems.data.estimates import lookback_volatility
from lems.policies import AlmgrenChriss, Policy, PrecomputedPolicy
from lems.data.targets import ExecutionInputs, execution_inputs, seed_targets, windows_per_chunk
from lems.data.windows import WindowSet
from lems.evaluation.cost_parameters import ALMGREN_CHRISS, almgren_chriss_parameters, window_half_spread
from lems.execution import (
    BENCHMARKS,
    OBJECTIVES,
    ORDER_TYPES,
    SIDES,
    TARGETS,
    WINDOW_TOL,
    ExecutionConditions,
    rate_columns,
    seed_execution,
    seed_min_durations,
    seed_outcome,
)

__all__ = ["ALMGREN_CHRISS", "COSTED_COLUMNS", "FRAME_COLUMNS", "GROUP_COLUMNS", "SUMMARY_STATS", "TCA_COLUMNS",
           "PrecomputedPolicy", "allocate_and_backtest", "backtest", "classical_frame", "costed_backtest",
           "select_sizes", "split_costed", "summary"]

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
    "fee_bps",
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

#: Columns a costed frame (:func:`costed_backtest`) adds after :data:`TCA_COLUMNS`: the stated
#: order size [fraction of the expected horizon volume], and the window's lookback volatility [fraction per bar]
#: and half-spread [fraction of price] (those of the cost model, or the Corwin-Schultz estimate).
COSTED_COLUMNS = ("order_size", "sigma", "half_spread")

#: Columns only costed frames have.
_COSTED_ONLY: tuple[str, ...] = tuple(TCA_COLUMNS) + COSTED_COLUMNS


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
                             ("opportunity_bps", sf.opportunity_bps.ravel()),
                             ("fee_bps", (sf.fee_bps + np.zeros_like(sf.total_bps)).ravel())):
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
    """Run policies on windows and score every order of the seed layout (docs/execution.md §4).

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
        ``opportunity_bps`` + ``fee_bps`` (positive = cost; :class:`lems.execution.Shortfall`; ``fee_bps``: the
        exchange fees of :class:`lems.execution.FeeCost`, 0 without).

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


# --------------------------------------------------------------------------------------------------------
# Stored allocations and the costed backtest (order sizes)
# --------------------------------------------------------------------------------------------------------
def allocate_and_backtest(policies: Sequence[Any], windows, *, min_rate: Any = 0.0,
                          max_rate: Any = 1.0) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Run each policy once: its allocations (for the figures) and the backtest frame (for the tables).

    Returns:
        ``(frame, allocations)`` with ``allocations[name]`` shaped ``(N, H, H+1, 4, 2)``.
    """
    allocations = {str(p.name): np.asarray(p.allocate(windows, min_rate=min_rate, max_rate=max_rate), np.float64)
                   for p in policies}
    frame = backtest([PrecomputedPolicy(k, v, windows) for k, v in allocations.items()], windows,
                     min_rate=min_rate, max_rate=max_rate)
    return frame, allocations


def classical_frame(schedules: Mapping[str, Policy], windows: WindowSet | None, *, min_rate: Any = 0.0,
                    max_rate: Any = 1.0) -> pd.DataFrame | None:
    """Backtest frame of the classical fixed-duration schedules on the validation windows, the frame the headline's
    best classical schedule is chosen on (:func:`lems.evaluation.stats.headline_table`); ``None`` without windows.

    Args:
        schedules: Label -> schedule, e.g. :func:`lems.policies.classical_schedules` of the same ``windows``.
        windows: The validation windows, or ``None``.
        min_rate, max_rate: The trading limits of the scored orders.
    """
    if windows is None or len(windows) == 0:
        return None
    return backtest(dict(schedules), windows, min_rate=min_rate, max_rate=max_rate)


def _size_of(conditions) -> float:
    size = conditions.size.participation
    if size is None:
        raise ValueError("the transaction-cost analysis buckets orders by size as a fraction of the expected horizon "
                         "volume: give OrderSize(participation=...), not a quantity in units")
    return float(size)


def costed_backtest(policies: Any, windows, conditions: Sequence[Any], *, min_rate: Any = 0.0, max_rate: Any = 1.0,
                    ac_risk_aversion: float | None = None) -> pd.DataFrame:
    """Backtest frames net of costs, one per order size, stacked (the input of the report's TCA section).

    Each policy allocates once; every :class:`~lems.execution.ExecutionConditions` scores the allocations with
    :func:`backtest` (``conditions=...``). With ``ac_risk_aversion``, the Almgren-Chriss schedule
    (:class:`lems.baselines.AlmgrenChriss`, labelled :data:`ALMGREN_CHRISS`) joins each size, its impact matched to
    that size (:func:`almgren_chriss_parameters` at the windows' mean lookback volatility).

    Args:
        policies: policies (a sequence, a dict label -> policy, or one), e.g. :class:`PrecomputedPolicy`.
        windows: the windows.
        conditions: one :class:`~lems.execution.ExecutionConditions` per size (participation sizes).
        min_rate, max_rate: per-bar limits [fraction of the order].
        ac_risk_aversion: the Almgren-Chriss ``lambda`` [per unit of the order's value], or ``None``: no such
            baseline. Skipped for a cost model without temporary impact (see :func:`almgren_chriss_parameters`).

    Returns:
        The frames of every size, in order, with :data:`FRAME_COLUMNS`,
        :data:`TCA_COLUMNS` and :data:`COSTED_COLUMNS`.

    Raises:
        ValueError: no conditions, a size in units, anything :func:`backtest` rejects.
    """
    conditions = list(conditions)
    if not conditions:
        raise ValueError("costed_backtest needs at least one ExecutionConditions (order size)")
    named = _named_policies(policies)
    stored = [PrecomputedPolicy(name, policy.allocate(windows, min_rate=min_rate, max_rate=max_rate), windows)
              for name, policy in named.items()]
    sigma = lookback_volatility(windows)
    horizon = int(windows.n_ahead)
    frames = []
    for c in conditions:
        size, spread = _size_of(c), window_half_spread(c.cost_model, windows)
        run = list(stored)
        params = None if ac_risk_aversion is None else almgren_chriss_parameters(
            c.cost_model, size, float(np.mean(sigma)), horizon, float(np.mean(spread)))
        if params is not None:
            run.append(AlmgrenChriss(risk_aversion=ac_risk_aversion, eta=params["eta"], gamma=params["gamma"],
                                     name=ALMGREN_CHRISS))
        frame = backtest(run, windows, min_rate=min_rate, max_rate=max_rate, conditions=c)
        rows = frame["window"].to_numpy()
        frames.append(frame.assign(order_size=size, sigma=sigma[rows], half_spread=spread[rows]))
    return pd.concat(frames, ignore_index=True)


def split_costed(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``(frictionless rows, costed rows or None)`` of frames read together (costed rows have an ``order_size``)."""
    if "order_size" not in frame.columns:
        return frame, None
    costed = frame["order_size"].notna().to_numpy()
    if not costed.any():
        return frame.drop(columns=[c for c in frame.columns if c in _COSTED_ONLY]), None
    free = frame.loc[~costed].drop(columns=[c for c in frame.columns if c in _COSTED_ONLY])
    return free.reset_index(drop=True), frame.loc[costed].reset_index(drop=True)


def select_sizes(costed: pd.DataFrame, sizes: Sequence[float] | None) -> pd.DataFrame:
    """The rows of the given order sizes (``None``: all).

    Raises:
        ValueError: a size that the frame does not hold (the available ones are named).
    """
    if sizes is None:
        return costed
    have = np.unique(costed["order_size"].to_numpy(np.float64))
    keep = np.zeros(len(costed), dtype=bool)
    for size in sizes:
        match = np.isclose(have, float(size), rtol=1e-9, atol=0.0)
        if not match.any():
            raise ValueError(f"sizes: no costed orders of size {size:g} in the frames (sizes there: "
                             f"{', '.join(f'{s:g}' for s in have)})")
        keep |= np.isclose(costed["order_size"].to_numpy(np.float64), have[match][0], rtol=1e-12, atol=0.0)
    return costed.loc[keep].reset_index(drop=True)
