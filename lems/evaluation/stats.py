"""Statistics of backtest frames: distribution tables, paired comparisons with clustered intervals, the report's
headline numbers and THE fixed-duration spread ratio with its day-bootstrap interval.

Conventions (docs/execution.md §4): improvement in basis points, positive = better for the trader on both sides;
tracking error ``|diff| * 1e4`` bps for fixed-duration ("track") orders. Paired comparisons are oriented so that a
positive difference means "the model did better". The spread of a schedule is the standard deviation of the signed
``diff`` [bps] of its fixed-duration VWAP orders (both sides, both targets): the number the README leads with
(:func:`spread_ratios`, :func:`headline_table`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from lems.data.targets import seed_targets
from lems.evaluation.backtest import SUMMARY_STATS, summary
from lems.evaluation.frames import _ORDER_KEYS, _prepare
from lems.execution import IS_VWAP_ORDER, seed_outcome
from lems.policies.schedules import CLASSICAL_SCHEDULES, TUNED_SCHEDULES

__all__ = [
    "CLASSICAL_SCHEDULES",
    "CLUSTERS",
    "FLEXIBLE_RULE",
    "SPREAD_BOOTSTRAP_DRAWS",
    "TUNED_SCHEDULES",
    "clustered_mean_ci",
    "day_bootstrap_spreads",
    "fixed_vwap_diff_table",
    "fixed_vwap_diffs",
    "headline",
    "headline_record",
    "headline_table",
    "origin_days",
    "paired_comparison",
    "spread_ratio",
    "spread_ratios",
    "summary_table",
    "with_fixed_column",
]

#: Ways to cluster orders for the standard error of a paired mean (see :func:`paired_comparison`).
CLUSTERS = ("window", "origin", "day", "week")


def summary_table(frame: pd.DataFrame, metric: str = "auto") -> pd.DataFrame:
    """Seed-style distribution table, policies as rows beside each other (from :func:`lems.evaluation.backtest.summary`).

    Args:
        frame: A backtest frame.
        metric: ``"auto"`` (improvement for flexible "beat" orders, tracking error for fixed "track" orders),
            ``"improvement_bps"`` or ``"tracking_error_bps"``.

    Returns:
        Columns ``side, benchmark, target, objective, min_duration, policy, metric, mean, std, median, p5,
        p95, q25, q75, count`` (bps; ``count`` in orders), sorted by side, benchmark, target, objective
        (beat first), min duration, then policy in frame order.
    """
    if metric not in ("auto", "improvement_bps", "tracking_error_bps"):
        raise ValueError(f"metric must be 'auto', 'improvement_bps' or 'tracking_error_bps', got {metric!r}")
    frame = _prepare(frame)
    stats = summary(frame)
    if metric == "auto":
        chosen = np.where(stats["objective"].astype(str) == "track", "tracking_error_bps", "improvement_bps")
    else:
        chosen = np.full(len(stats), metric)
    out = stats[["side", "benchmark", "target", "objective", "min_duration", "policy"]].copy()
    out["metric"] = chosen
    for stat in SUMMARY_STATS:
        out[stat] = np.where(chosen == "improvement_bps", stats[f"improvement_bps_{stat}"],
                             stats[f"tracking_error_bps_{stat}"])
    out["count"] = stats["count"].to_numpy()
    keys = ["side", "benchmark", "target", "objective", "min_duration", "policy"]
    return out.sort_values(keys, kind="stable").reset_index(drop=True)


def _pooled(frame: pd.DataFrame) -> pd.DataFrame:
    """The frame with every flexible column's min duration set to 0 (= pooled over durations 1..H)."""
    out = frame.copy()
    out["min_duration"] = np.where((out["objective"] == "beat").to_numpy(), 0, out["min_duration"].to_numpy())
    return out


def _cluster_ids(rows: pd.DataFrame, cluster: str) -> np.ndarray:
    if cluster == "window":
        return rows.groupby(["asset", "origin"], observed=True, sort=False).ngroup().to_numpy()
    days = ((rows["origin"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(days=1)).to_numpy(np.int64)
    if cluster == "origin":
        key = rows["origin"]
    elif cluster == "day":
        key = days
    elif cluster == "week":
        key = (days + 3) // 7  # weeks starting on Monday (1970-01-01 was a Thursday)
    else:
        raise ValueError(f"cluster must be one of {CLUSTERS}, got {cluster!r}")
    return pd.factorize(key)[0]


def clustered_mean_ci(values: np.ndarray, clusters: np.ndarray, alpha: float = 0.05) -> dict[str, float]:
    """Mean with a normal-approximation confidence interval and a cluster-robust standard error.

    ``se^2 = G / (G - 1) * sum_g (sum_{i in g} (x_i - mean))^2 / n^2`` (CR1 small-sample factor), ``G``
    clusters, ``n`` values; with one cluster per value this is the usual ``std / sqrt(n)``. With fewer than
    two clusters the interval is infinite and nothing is significant.

    Returns:
        ``mean, se, ci_low, ci_high, n, n_clusters`` (same units as ``values``).
    """
    x = np.asarray(values, dtype=np.float64)
    g = np.asarray(clusters)
    n = x.size
    if n == 0:
        raise ValueError("no values to average")
    mean = float(x.mean())
    codes, _ = pd.factorize(g)
    n_clusters = int(codes.max()) + 1
    if n_clusters < 2:
        return {"mean": mean, "se": math.inf, "ci_low": -math.inf, "ci_high": math.inf, "n": n,
                "n_clusters": n_clusters}
    sums = np.bincount(codes, weights=x - mean, minlength=n_clusters)
    se = math.sqrt(n_clusters / (n_clusters - 1) * float(np.sum(sums ** 2)) / n ** 2)
    z = NormalDist().inv_cdf(1 - alpha / 2)
    return {"mean": mean, "se": se, "ci_low": mean - z * se, "ci_high": mean + z * se, "n": n,
            "n_clusters": n_clusters}


def paired_comparison(frame: pd.DataFrame, model: str = "model", baseline: str | Sequence[str] | None = None, *,
                      by: Sequence[str] = ("side", "benchmark", "target", "objective", "min_duration"),
                      cluster: str = "day", alpha: float = 0.05) -> pd.DataFrame:
    """Model vs baseline on the same orders: mean difference with a clustered 95 % confidence interval.

    Per order (same window, side, target, benchmark, min duration): flexible ("beat") orders compare
    improvement, ``model - baseline`` [bps]; fixed ("track") orders compare tracking error,
    ``baseline - model`` [bps]. Positive always means the model did better. The mean over each group of
    ``by`` gets a normal-approximation interval whose standard error is clustered by ``cluster`` (default:
    the UTC calendar day of the order's origin, so that all orders of the same window and of overlapping
    horizons starting that day count as one cluster; see :func:`clustered_mean_ci`).

    Args:
        frame: A backtest frame holding the model and the baseline(s).
        model: The model's policy label.
        baseline: One label, several, or ``None`` for every other policy of the frame.
        by: Grouping columns (any of side, benchmark, target, objective, min_duration); ``objective`` is
            always added (the two objectives compare different metrics).
        cluster: ``"window"`` (asset × origin), ``"origin"`` (origin time, all assets), ``"day"`` or
            ``"week"`` (of the origin, UTC).
        alpha: 1 - confidence level of the interval.

    Returns:
        One row per baseline × group: the ``by`` columns, ``baseline``, ``metric``, ``model_mean``,
        ``baseline_mean``, ``mean_diff``, ``se``, ``ci_low``, ``ci_high`` (bps), ``n_orders``,
        ``n_clusters``, ``significant`` (the interval excludes 0), ``cluster``.

    A baseline scored on one objective only (e.g. a fixed-duration schedule whose flexible rows were left out,
    :func:`lems.training.universe_evaluation.slim_frame`) is compared on that objective's orders.

    Raises:
        ValueError: unknown policies, orders present for one policy and not the other, bad arguments.
    """
    if cluster not in CLUSTERS:
        raise ValueError(f"cluster must be one of {CLUSTERS}, got {cluster!r}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    frame = _prepare(frame)
    policies = list(frame["policy"].cat.categories)
    if model not in policies:
        raise ValueError(f"model policy {model!r} is not in the frame (policies: {policies})")
    baselines = [p for p in policies if p != model] if baseline is None else (
        [baseline] if isinstance(baseline, str) else list(baseline))
    unknown = [b for b in baselines if b not in policies]
    if unknown:
        raise ValueError(f"baseline policy {unknown} not in the frame (policies: {policies})")
    by = [c for c in by if c != "objective"]
    bad = [c for c in by if c not in ("side", "benchmark", "target", "min_duration")]
    if bad:
        raise ValueError(f"cannot group by {bad}; use side, benchmark, target, objective, min_duration")
    groups = ["objective", *by]
    parts = [_paired_one(frame, model, b, groups, cluster, alpha) for b in baselines]
    if not parts:
        return pd.DataFrame()
    return pd.concat(parts, ignore_index=True)


def _paired_one(frame: pd.DataFrame, model: str, baseline: str, groups: list[str], cluster: str,
                alpha: float) -> pd.DataFrame:
    cols = _ORDER_KEYS + ["improvement_bps", "tracking_error_bps"]
    left = frame.loc[frame["policy"] == model, cols]
    right = frame.loc[frame["policy"] == baseline, cols]
    scored = set(right["objective"].astype(str))  # a fixed-duration schedule kept on its "track" orders only
    if scored and scored < set(left["objective"].astype(str)):
        left = left[left["objective"].astype(str).isin(scored).to_numpy()]
    for name, part in ((model, left), (baseline, right)):
        if part.duplicated(_ORDER_KEYS).any():
            raise ValueError(f"policy {name!r} has duplicate orders (frames of different runs concatenated?)")
    pairs = left.merge(right, on=_ORDER_KEYS, how="inner", suffixes=("_m", "_b"))
    if len(pairs) != len(left) or len(pairs) != len(right):
        raise ValueError(f"policies {model!r} and {baseline!r} were not run on the same orders "
                         f"({len(left)} and {len(right)} orders, {len(pairs)} in common)")
    track = (pairs["objective"] == "track").to_numpy()
    model_value = np.where(track, pairs["tracking_error_bps_m"], pairs["improvement_bps_m"])
    base_value = np.where(track, pairs["tracking_error_bps_b"], pairs["improvement_bps_b"])
    pairs = pairs.assign(_model=model_value, _base=base_value,
                         _diff=np.where(track, base_value - model_value, model_value - base_value),
                         _cluster=_cluster_ids(pairs, cluster))
    rows = []
    for key, part in pairs.groupby(groups, observed=True, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        ci = clustered_mean_ci(part["_diff"].to_numpy(), part["_cluster"].to_numpy(), alpha)
        objective = str(key[0])
        row = dict(zip(groups, key))
        row.update({
            "baseline": baseline,
            "metric": "tracking_error_bps" if objective == "track" else "improvement_bps",
            "model_mean": float(part["_model"].mean()), "baseline_mean": float(part["_base"].mean()),
            "mean_diff": ci["mean"], "se": ci["se"], "ci_low": ci["ci_low"], "ci_high": ci["ci_high"],
            "n_orders": ci["n"], "n_clusters": ci["n_clusters"],
            "significant": bool(ci["ci_low"] > 0 or ci["ci_high"] < 0), "cluster": cluster,
        })
        rows.append(row)
    out = pd.DataFrame(rows)
    first = ["baseline", *groups]
    return out[first + [c for c in out.columns if c not in first]]


def headline(frame: pd.DataFrame, model: str = "model", cluster: str = "day") -> dict[str, pd.DataFrame]:
    """The report's headline numbers.

    Returns:
        ``{"fixed": ..., "flexible": ...}``. ``fixed``: VWAP tracking error of the fixed-duration orders
        (mean ``|diff|`` bps over both sides and both targets) per policy, with the model's relative
        improvement ``(1 - model / policy) * 100`` [%] and the paired difference (policy - model, bps) with
        its clustered 95 % interval. ``flexible``: mean improvement [bps] of the flexible-duration orders
        (all min durations, both sides and targets) per benchmark and policy, with the paired difference
        (model - policy) and its interval. Rows of the model itself carry zeros for the comparison.
    """
    frame = _prepare(frame)
    policies = list(frame["policy"].cat.categories)
    has_model = model in policies
    fixed_rows = frame[(frame["objective"] == "track") & (frame["benchmark"] == "vwap")]
    te = fixed_rows.groupby("policy", observed=True)["tracking_error_bps"].mean()
    fixed = pd.DataFrame({"policy": te.index.astype(str), "vwap_tracking_error_bps": te.to_numpy()})
    flex_rows = frame[frame["objective"] == "beat"]
    imp = flex_rows.groupby(["benchmark", "policy"], observed=True)["improvement_bps"].mean().reset_index()
    flexible = imp.rename(columns={"improvement_bps": "mean_improvement_bps"})
    flexible["policy"] = flexible["policy"].astype(str)
    flexible["benchmark"] = flexible["benchmark"].astype(str)
    if has_model and len(policies) > 1:
        paired = paired_comparison(frame, model, by=("benchmark",), cluster=cluster)
        fixed_p = paired[(paired["objective"] == "track") & (paired["benchmark"] == "vwap")]
        fixed = fixed.merge(fixed_p[["baseline", "mean_diff", "ci_low", "ci_high", "significant"]]
                            .rename(columns={"baseline": "policy"}), on="policy", how="left")
        model_te = float(te.loc[model])
        fixed["model_improvement_pct"] = np.where(fixed["vwap_tracking_error_bps"] > 0,
                                                  (1 - model_te / fixed["vwap_tracking_error_bps"]) * 100, 0.0)
        flex_p = paired[paired["objective"] == "beat"][["baseline", "benchmark", "mean_diff", "ci_low", "ci_high",
                                                         "significant"]]
        flex_p = flex_p.assign(benchmark=flex_p["benchmark"].astype(str)).rename(columns={"baseline": "policy"})
        flexible = flexible.merge(flex_p, on=["benchmark", "policy"], how="left")
        for table in (fixed, flexible):
            is_model = table["policy"] == model
            table.loc[is_model, ["mean_diff", "ci_low", "ci_high"]] = 0.0
            table["significant"] = table["significant"].where(~is_model, False).astype(bool)
    return {"fixed": fixed, "flexible": flexible}


# --------------------------------------------------------------------------------------------------------
# The fixed-duration spread ratio (the README's headline)
# --------------------------------------------------------------------------------------------------------
#: The classical fixed-duration schedules a model's spread is compared with (policy labels of the backtest; defined
#: in :mod:`lems.policies.schedules`): :data:`CLASSICAL_SCHEDULES` (TWAP, the static curve) are always there,
#: :data:`TUNED_SCHEDULES` (the static tilt, the dynamic VWAP schedule) when they were fitted on validation windows
#: (:func:`lems.policies.classical_schedules`).
_ALL_CLASSICAL = (*CLASSICAL_SCHEDULES, *TUNED_SCHEDULES)
#: The classical flexible-duration policy a model's flexible columns are compared with.
FLEXIBLE_RULE = "flexible_rule"
#: Draws of the day bootstrap of the spread ratio's interval (percentile interval): 500, the number
#: benchmarks/real_data.py and benchmarks/tracking_anatomy.py use for the README's intervals (reference_crypto.py
#: uses 2000 multinomial day weights). Pass ``n_boot`` for more; the interval's ends then move by Monte Carlo noise.
SPREAD_BOOTSTRAP_DRAWS = 500


def fixed_vwap_diffs(allocations: np.ndarray, windows) -> np.ndarray:
    """Signed diffs [bps] of the fixed column's VWAP orders (both sides and targets), ``(N, 4)``.

    Columns in the seed layout's order of the VWAP order types (:data:`lems.execution.IS_VWAP_ORDER`: buy, sell)
    by target (quantity, notional). The same numbers as the ``diff`` column of a :func:`lems.evaluation.backtest.
    backtest` frame's fixed-duration VWAP rows, times 1e4.

    Args:
        allocations: ``(N, H, H+1, 4, 2)`` allocations (only the fixed column ``H`` is read; see
            :func:`with_fixed_column` for a fixed schedule alone).
        windows: the ``N`` windows.
    """
    horizon = int(windows.n_ahead)
    out = seed_outcome(np.asarray(allocations, np.float64), seed_targets(windows))
    return (np.asarray(out.diff)[:, horizon][:, IS_VWAP_ORDER] * 1e4).reshape(len(windows), -1)


def with_fixed_column(fixed: np.ndarray) -> np.ndarray:
    """A full seed layout ``(N, H, H + 1, 4, 2)`` whose every column is the fixed schedule ``(N, H, 4, 2)`` (for
    scoring a fixed-duration schedule alone: only the fixed column is read)."""
    fixed = np.asarray(fixed)
    n, horizon = fixed.shape[:2]
    return np.broadcast_to(fixed[:, :, None], (n, horizon, horizon + 1, *fixed.shape[2:]))


def origin_days(origin: Any, tz: str = "UTC") -> np.ndarray:
    """Calendar day of each origin in time zone ``tz``, ``datetime64[D]`` (the bootstrap's clusters)."""
    index = pd.DatetimeIndex(origin)
    index = index.tz_localize("UTC") if index.tz is None else index
    return np.asarray(index.tz_convert(tz).tz_localize(None).normalize(), "datetime64[D]")


def fixed_vwap_diff_table(frame: pd.DataFrame, policies: Sequence[str] | None = None,
                          tz: str = "UTC") -> tuple[pd.DataFrame, np.ndarray]:
    """The signed fixed-duration VWAP diffs [bps] of a backtest frame, one column per policy.

    Returns:
        ``(diffs, days)``: ``diffs`` has one row per order (window, asset, origin, side, target; in that order)
        and one column per policy (frame order, or ``policies``); ``days`` the origin day of each row
        (:func:`origin_days`).

    Raises:
        ValueError: a frame without fixed-duration VWAP orders, unknown policies, policies not run on the same
            orders.
    """
    frame = _prepare(frame)
    if "diff" not in frame.columns:
        raise ValueError("the spread needs the backtest frame's signed 'diff' column")
    rows = frame[(frame["objective"] == "track") & (frame["benchmark"] == "vwap")]
    if len(rows) == 0:
        raise ValueError("the frame has no fixed-duration VWAP orders")
    known = [str(p) for p in frame["policy"].cat.categories]
    wanted = known if policies is None else [str(p) for p in policies]
    unknown = [p for p in wanted if p not in known]
    if unknown:
        raise ValueError(f"policies {unknown} are not in the frame (policies: {known})")
    keys = ["window", "asset", "origin", "side", "target"]
    rows = rows[rows["policy"].isin(wanted)].assign(diff_bps=lambda r: r["diff"].to_numpy(np.float64) * 1e4)
    if rows.duplicated([*keys, "policy"]).any():
        raise ValueError("a policy has duplicate fixed VWAP orders (frames of different runs concatenated?)")
    wide = rows.pivot(index=keys, columns="policy", values="diff_bps")
    wide.columns = [str(c) for c in wide.columns]
    wide = wide[wanted]
    if wide.isna().any().any():
        raise ValueError(f"policies {wanted} were not run on the same fixed VWAP orders")
    return wide, origin_days(wide.index.get_level_values("origin"), tz)


def day_bootstrap_spreads(values: np.ndarray, days: np.ndarray, n_boot: int = SPREAD_BOOTSTRAP_DRAWS,
                          seed: int = 0) -> np.ndarray:
    """Spreads (std, ``ddof=1``) of each column of ``values`` on day-bootstrap resamples of its rows.

    Each draw resamples the distinct ``days`` with replacement (as many as there are; all rows of a drawn day
    come along together, so the orders of a day, overlapping horizons included, move as one) and takes every
    column's standard deviation on the SAME rows (paired).

    Args:
        values: ``(R, P)`` (or ``(R,)``) signed diffs [bps]; rows are orders.
        days: ``(R,)`` day label of each row (any sortable labels; days are numbered in sorted order).
        n_boot: number of draws (>= 1).
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        ``(n_boot, P)`` spreads [bps].
    """
    values = np.asarray(values, np.float64)
    values = values[:, None] if values.ndim == 1 else values.reshape(len(values), -1)
    days = np.asarray(days)
    if len(days) != len(values):
        raise ValueError(f"days must label every row: {len(days)} days for {len(values)} rows")
    if int(n_boot) != n_boot or n_boot < 1:
        raise ValueError(f"n_boot must be an integer >= 1, got {n_boot!r}")
    unique, inverse = np.unique(days, return_inverse=True)
    members = [np.flatnonzero(inverse == i) for i in range(len(unique))]
    rng = np.random.default_rng(seed)
    draws = np.empty((int(n_boot), values.shape[1]))
    for k in range(int(n_boot)):
        rows = np.concatenate([members[i] for i in rng.integers(0, len(unique), len(unique))])
        draws[k] = values[rows].std(axis=0, ddof=1)
    return draws


def spread_ratio(policy: np.ndarray, baseline: np.ndarray, days: np.ndarray, n_boot: int = SPREAD_BOOTSTRAP_DRAWS,
                 seed: int = 0, alpha: float = 0.05) -> dict[str, float]:
    """THE fixed-duration spread ratio: std of ``policy``'s signed VWAP diffs over ``baseline``'s, with a paired
    day-bootstrap interval.

    Args:
        policy, baseline: signed fixed-duration VWAP diffs [bps] of the same orders, ``(N, ...)`` (e.g.
            :func:`fixed_vwap_diffs` of two schedules on the same windows: rows are windows).
        days: ``(N,)`` origin day of each row (:func:`origin_days`).
        n_boot: bootstrap draws (default :data:`SPREAD_BOOTSTRAP_DRAWS`).
        seed: seed of the draws.
        alpha: 1 - confidence level (percentile interval).

    Returns:
        ``policy_spread_bps``, ``baseline_spread_bps``, ``ratio`` (< 1: the policy tracks VWAP more tightly),
        ``ci_low``, ``ci_high``, ``days`` (distinct days), ``n_boot``.
    """
    policy, baseline = np.asarray(policy, np.float64), np.asarray(baseline, np.float64)
    if policy.shape != baseline.shape:
        raise ValueError(f"policy and baseline diffs must be of the same orders, got {policy.shape} and "
                         f"{baseline.shape}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    if len(np.asarray(days)) != len(policy):
        raise ValueError(f"days must label every row: {len(np.asarray(days))} days for {len(policy)} rows")
    per_row = policy.reshape(len(policy), -1).shape[1]
    values = np.stack([policy.ravel(), baseline.ravel()], axis=1)  # one row per order, rows of a window together
    spreads = day_bootstrap_spreads(values, np.repeat(np.asarray(days), per_row), n_boot, seed)
    full = values.std(axis=0, ddof=1)
    ratios = spreads[:, 0] / spreads[:, 1]
    return {"policy_spread_bps": float(full[0]), "baseline_spread_bps": float(full[1]),
            "ratio": float(full[0] / full[1]), "ci_low": float(np.quantile(ratios, alpha / 2)),
            "ci_high": float(np.quantile(ratios, 1 - alpha / 2)), "days": int(len(np.unique(days))),
            "n_boot": int(n_boot)}


def spread_ratios(frame: pd.DataFrame, model: str = "model", baselines: Sequence[str] | None = None, *,
                  n_boot: int = SPREAD_BOOTSTRAP_DRAWS, seed: int = 0, alpha: float = 0.05,
                  tz: str = "UTC") -> pd.DataFrame:
    """The model's fixed-duration spread ratio to each baseline of a backtest frame, with day-bootstrap intervals.

    One bootstrap for all policies (the same resampled days for every ratio; :func:`day_bootstrap_spreads`), days
    of the origin in ``tz``.

    Returns:
        One row per baseline (frame order; default every other policy): ``baseline``, ``spread_bps`` (the
        baseline's), ``model_spread_bps``, ``ratio`` (model / baseline), ``ci_low``, ``ci_high``, ``days``,
        ``n_boot``.
    """
    wide, days = fixed_vwap_diff_table(frame, tz=tz)
    if model not in wide.columns:
        raise ValueError(f"model policy {model!r} is not in the frame (policies: {list(wide.columns)})")
    names = [p for p in wide.columns if p != model] if baselines is None else [str(b) for b in baselines]
    unknown = [b for b in names if b not in wide.columns]
    if unknown:
        raise ValueError(f"baseline policies {unknown} are not in the frame (policies: {list(wide.columns)})")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    values = wide[[model, *names]].to_numpy()
    draws = day_bootstrap_spreads(values, days, n_boot, seed)
    full = values.std(axis=0, ddof=1)
    ratios = draws[:, [0]] / draws[:, 1:]
    return pd.DataFrame({
        "baseline": names, "spread_bps": full[1:], "model_spread_bps": full[0], "ratio": full[0] / full[1:],
        "ci_low": np.quantile(ratios, alpha / 2, axis=0), "ci_high": np.quantile(ratios, 1 - alpha / 2, axis=0),
        "days": len(np.unique(days)), "n_boot": int(n_boot)})


def _classical_spreads(frame: pd.DataFrame, classical: Sequence[str], tz: str) -> dict[str, float]:
    """Fixed-duration spread [bps] of each classical schedule present in ``frame``."""
    present = [c for c in classical if c in {str(p) for p in _prepare(frame)["policy"].cat.categories}]
    if not present:
        return {}
    wide, _ = fixed_vwap_diff_table(frame, present, tz=tz)
    return {c: float(wide[c].std(ddof=1)) for c in present}


def headline_table(frame: pd.DataFrame, model: str = "model", *, validation: pd.DataFrame | None = None,
                   classical: Sequence[str] | None = None, rule: str = FLEXIBLE_RULE,
                   n_boot: int = SPREAD_BOOTSTRAP_DRAWS, seed: int = 0, cluster: str = "day",
                   tz: str = "UTC") -> dict[str, Any]:
    """The headline of a data set: the model's fixed-duration spread ratio to each classical schedule and to the
    best one, and its flexible improvement over the rule per side (what ``lems evaluate`` / ``lems report`` print
    and the README's results table shows).

    The classical schedules are TWAP, the static curve, the static tilt and the dynamic VWAP schedule, those of them
    the frame holds (:func:`lems.policies.classical_schedules`). The best one is the one with the lowest spread on
    ``validation`` (a backtest frame of the classical schedules on the validation windows) when given, so that
    choosing it does not look at the scored orders; otherwise it is chosen on ``frame`` itself and
    ``best["chosen_on"]`` says so. Only the schedules of ``frame`` that ``validation`` holds too are candidates
    (e.g. a validation frame written before the tuned schedules existed chooses among TWAP and the static curve);
    ``spread`` still lists the ratio to every one of ``frame``. The tuned schedules are fitted on the first part
    of the validation period and ``validation`` should hold the rest (:func:`lems.policies.validation_parts`), so
    that their choosing spread is out of sample.

    Args:
        frame: The scored backtest frame (the model, the classical schedules, the rule).
        model: The model's policy label.
        validation: Backtest frame of the classical schedules on validation windows, or ``None``.
        classical: Labels of the classical fixed-duration schedules (those absent from the frame are skipped);
            ``None``: :data:`CLASSICAL_SCHEDULES` and :data:`TUNED_SCHEDULES`, i.e. every classical schedule the
            frame holds.
        rule: Label of the classical flexible rule.
        n_boot, seed: Draws and seed of the day bootstrap (:func:`spread_ratios`).
        cluster: Clustering of the flexible comparison's standard errors (:func:`paired_comparison`).
        tz: Time zone of the origin days (bootstrap clusters).

    Returns:
        ``{"spread": DataFrame, "best": dict, "flexible": DataFrame}``. ``spread``: one row per classical schedule
        (:func:`spread_ratios`' columns, plus ``best``: True on the chosen one). ``best``: ``baseline``, ``ratio``,
        ``ci_low``, ``ci_high``, ``model_spread_bps``, ``spread_bps``, ``chosen_on`` (``"validation"`` or
        ``"scored set"``) and ``selection_spreads_bps`` (the spreads it was chosen by). ``flexible``: per
        benchmark and side, the model's and the rule's mean improvement [bps] and ``model - rule`` with its
        clustered 95 % interval (columns ``benchmark, side, model_mean, rule_mean, mean_diff, ci_low, ci_high,
        significant, n_clusters``; empty without the rule).

    Raises:
        ValueError: no model or no classical schedule in the frame, a validation frame without them.
    """
    classical = _ALL_CLASSICAL if classical is None else tuple(classical)
    present = [c for c in classical if c in {str(p) for p in _prepare(frame)["policy"].cat.categories}]
    if not present:
        raise ValueError(f"no classical schedule {list(classical)} in the frame")
    spread = spread_ratios(frame, model, present, n_boot=n_boot, seed=seed, tz=tz)
    if validation is not None:
        chosen_by, chosen_on = _classical_spreads(validation, present, tz), "validation"
        if not chosen_by:
            raise ValueError(f"the validation frame holds none of the classical schedules {present}")
    else:
        chosen_by, chosen_on = dict(zip(spread["baseline"], spread["spread_bps"])), "scored set"
    best_name = min(chosen_by, key=chosen_by.get)
    spread["best"] = spread["baseline"] == best_name
    row = spread.set_index("baseline").loc[best_name]
    best = {"baseline": best_name, "ratio": float(row["ratio"]), "ci_low": float(row["ci_low"]),
            "ci_high": float(row["ci_high"]), "model_spread_bps": float(row["model_spread_bps"]),
            "spread_bps": float(row["spread_bps"]), "chosen_on": chosen_on,
            "selection_spreads_bps": {k: float(v) for k, v in chosen_by.items()}}
    return {"spread": spread, "best": best, "flexible": _flexible_vs_rule(frame, model, rule, cluster)}


def _flexible_vs_rule(frame: pd.DataFrame, model: str, rule: str, cluster: str) -> pd.DataFrame:
    """Model minus rule, flexible orders (all min durations, both targets), per benchmark and side [bps]."""
    columns = ["benchmark", "side", "model_mean", "rule_mean", "mean_diff", "ci_low", "ci_high", "significant",
               "n_clusters"]
    if rule not in {str(p) for p in _prepare(frame)["policy"].cat.categories}:
        return pd.DataFrame(columns=columns)
    paired = paired_comparison(frame, model, rule, by=("benchmark", "side"), cluster=cluster)
    out = paired[paired["objective"] == "beat"].rename(columns={"baseline_mean": "rule_mean"})
    out = out.assign(benchmark=out["benchmark"].astype(str), side=out["side"].astype(str))
    return out[columns].reset_index(drop=True)


def headline_record(table: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`headline_table` as plain JSON-friendly values (lists of dicts for the tables)."""
    return {"spread": table["spread"].to_dict(orient="records"), "best": dict(table["best"]),
            "flexible": table["flexible"].to_dict(orient="records")}
