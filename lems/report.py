"""Execution reports from backtest frames: tables, paired comparisons, figures, a Markdown/HTML page.

Every number comes from a :func:`lems.backtest.backtest` frame (one row per policy × window × order) and the
distribution tables from :func:`lems.backtest.summary`; nothing is recomputed differently here.

Conventions (EXECUTION.md §4): improvement in basis points, positive = better for the trader on both sides;
tracking error ``|diff| * 1e4`` bps for fixed-duration ("track") orders. Paired comparisons are always
oriented so that a positive difference means "the model did better".
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lems.backtest import SUMMARY_STATS, TCA_COLUMNS, backtest, summary
from lems.baselines import window_keys
from lems.execution import BENCHMARKS, OBJECTIVES, ORDER_TYPES, SIDES, TARGETS

__all__ = [
    "ALMGREN_CHRISS",
    "CLUSTERS",
    "COSTED_COLUMNS",
    "FIGURES",
    "TCA_FIGURES",
    "PrecomputedPolicy",
    "allocate_and_backtest",
    "almgren_chriss_parameters",
    "costed_backtest",
    "frontier_table",
    "headline",
    "net_of_cost_table",
    "paired_comparison",
    "plot_allocation_curves",
    "plot_cost_curves",
    "plot_frontier",
    "plot_improvement_by_duration",
    "plot_improvement_distribution",
    "plot_orders",
    "read_frames",
    "select_sizes",
    "split_costed",
    "summary_table",
    "tca_table",
    "verdicts",
    "window_half_spread",
    "write_report",
]

#: Ways to cluster orders for the standard error of a paired mean (see :func:`paired_comparison`).
CLUSTERS = ("window", "origin", "day", "week")
#: File names of the report's figures.
FIGURES = {
    "duration": "improvement_by_duration.png",
    "distribution": "improvement_distribution.png",
    "allocation": "allocation_curves.png",
    "orders": "example_orders.png",
}
#: File names of the transaction-cost analysis figures (written when costs are given).
TCA_FIGURES = {
    "cost_curves": "cost_curves.png",
    "frontier": "almgren_chriss_frontier.png",
}
_ORDER_KEYS = ["window", "asset", "origin", "side", "target", "benchmark", "min_duration", "objective"]
_CATEGORIES = {"side": SIDES, "benchmark": BENCHMARKS, "target": TARGETS, "objective": OBJECTIVES}
_NEEDED = ("policy", "window", "asset", "origin", "side", "target", "benchmark", "min_duration", "objective",
           "improvement_bps", "tracking_error_bps")
_STAT_LABELS = {"mean": "mean", "std": "std", "median": "median", "p5": "P5", "p95": "P95", "q25": "Q25",
                "q75": "Q75"}


# --------------------------------------------------------------------------------------------------------
# Frames
# --------------------------------------------------------------------------------------------------------
def _categorical(values: pd.Series, name: str, allowed: Sequence[str] | None = None,
                 lower: bool = False) -> pd.Categorical:
    """``values`` as a categorical of string labels, working on codes (fast on millions of rows).

    With ``allowed``: exactly those categories, in that order (unknown labels are an error). Without: the used
    labels, in category order for a categorical input, else in order of first appearance.
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        codes, uniques = values.cat.codes.to_numpy(), values.cat.categories
    else:
        codes, uniques = pd.factorize(values, sort=False)
    if codes.size and codes.min() < 0:
        raise ValueError(f"column {name!r} has missing values")
    labels = [str(u).lower() if lower else str(u) for u in uniques]
    used = np.bincount(codes, minlength=len(labels)) > 0
    used_labels = [label for label, u in zip(labels, used) if u]
    if allowed is None:
        categories = list(dict.fromkeys(used_labels))
    else:
        unknown = sorted(set(used_labels) - set(allowed))
        if unknown:
            raise ValueError(f"column {name!r} has unknown value(s) {unknown}; expected {list(allowed)}")
        categories = list(allowed)
    position = {c: i for i, c in enumerate(categories)}
    mapping = np.array([position.get(label, -1) for label in labels] or [-1], dtype=np.int64)
    return pd.Categorical.from_codes(mapping[codes], categories=categories)


def _prepare(frame: pd.DataFrame | Sequence[pd.DataFrame]) -> pd.DataFrame:
    """A validated backtest frame with canonical categoricals (policy order = category order, or order of
    appearance), UTC origins and float64 metrics. The input is not modified.

    Raises:
        ValueError: no rows, missing columns, unknown categories, non-finite numbers.
    """
    if not isinstance(frame, pd.DataFrame):
        frames = list(frame)
        if not frames:
            raise ValueError("no backtest frame given")
        frame = pd.concat(frames, ignore_index=True)
    missing = [c for c in _NEEDED if c not in frame.columns]
    if missing:
        raise ValueError(f"not a backtest frame: missing column(s) {missing}")
    if len(frame) == 0:
        raise ValueError("the backtest frame has no rows")
    out = frame.copy(deep=False)
    out["policy"] = _categorical(out["policy"], "policy")
    out["asset"] = _categorical(out["asset"], "asset")
    for col, cats in _CATEGORIES.items():
        out[col] = _categorical(out[col], col, allowed=cats, lower=True)
    origin = out["origin"]
    if isinstance(origin.dtype, pd.DatetimeTZDtype):
        out["origin"] = origin.dt.tz_convert("UTC")
    else:
        try:
            out["origin"] = pd.to_datetime(origin, utc=True)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"column 'origin' holds values that are not times ({exc})") from None
    for col in ("window", "min_duration"):
        values = pd.to_numeric(out[col], errors="coerce").to_numpy(np.float64)
        if not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise ValueError(f"column {col!r} must hold whole numbers")
        out[col] = values.astype(np.int64)
    for col in ("improvement_bps", "tracking_error_bps"):
        values = pd.to_numeric(out[col], errors="coerce").to_numpy(np.float64)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"column {col!r} contains NaN or inf")
        out[col] = values
    return out


def read_frames(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Read backtest frames written as Parquet (``.parquet``/``.pq``) or CSV and concatenate them.

    Raises:
        ValueError: a missing or unreadable file, or a file that is not a backtest frame.
    """
    frames = []
    for path in map(Path, paths):
        if not path.is_file():
            raise ValueError(f"frame file not found: {path}")
        try:
            if path.suffix.lower() in (".parquet", ".pq"):
                frames.append(pd.read_parquet(path))
            else:
                frames.append(pd.read_csv(path))
        except Exception as exc:  # pyarrow / parser errors of many kinds
            raise ValueError(f"unreadable frame file {path}: {str(exc).splitlines()[0]}") from None
        try:
            frames[-1] = _prepare(frames[-1])
        except ValueError as exc:
            raise ValueError(f"{path}: {exc}") from None
    return _prepare(frames)


class PrecomputedPolicy:
    """A policy that returns allocations computed beforehand (so a policy runs once for tables and plots).

    Args:
        name: Label of the policy.
        allocations: ``(N, H, H+1, 4, 2)`` allocations for the windows it will be asked about.
        windows: the ``N`` windows they belong to: then any subset of them can be asked for too (the backtest asks
            a few windows at a time at long horizons), matched by (asset, origin).
    """

    def __init__(self, name: str, allocations: np.ndarray, windows=None) -> None:
        self.name = str(name)
        self.allocations = np.asarray(allocations, dtype=np.float64)
        self._rows = None if windows is None else window_keys(windows.asset, windows.origin)

    def allocate(self, windows, min_rate: Any = 0.0, max_rate: Any = 1.0) -> np.ndarray:
        """The stored allocations of ``windows`` (``ValueError`` when they do not match the windows)."""
        if self.allocations.shape[:2] == (len(windows), windows.n_ahead):
            return self.allocations
        if self._rows is not None and self.allocations.shape[1] == windows.n_ahead:
            rows = self._rows.get_indexer(window_keys(windows.asset, windows.origin))
            if (rows >= 0).all():
                return self.allocations[rows]
        raise ValueError(f"stored allocations of {self.name!r} have shape {self.allocations.shape}, "
                         f"not ({len(windows)}, {windows.n_ahead}, ...)")


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


# --------------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------------
def summary_table(frame: pd.DataFrame, metric: str = "auto") -> pd.DataFrame:
    """Seed-style distribution table, policies as rows beside each other (from :func:`lems.backtest.summary`).

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
    from statistics import NormalDist

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
# Figures (matplotlib, Agg: no display needed)
# --------------------------------------------------------------------------------------------------------
def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path | None):
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
        _pyplot().close(fig)
    return fig


def plot_improvement_by_duration(frame: pd.DataFrame, path: str | Path | None = None):
    """Mean improvement [bps] vs min duration [bars] of the flexible orders, one panel per side × benchmark,
    one line per policy (both targets pooled). Saves a PNG when ``path`` is given; returns the figure."""
    plt = _pyplot()
    frame = _prepare(frame)
    flex = frame[frame["objective"] == "beat"]
    means = flex.groupby(["side", "benchmark", "policy", "min_duration"], observed=True)["improvement_bps"].mean()
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    for i, side in enumerate(SIDES):
        for j, bench in enumerate(BENCHMARKS):
            ax = axes[i, j]
            for policy in frame["policy"].cat.categories:
                try:
                    series = means.loc[(side, bench, policy)]
                except KeyError:
                    continue
                ax.plot(series.index, series.to_numpy(), marker="o", ms=3, label=str(policy))
            ax.axhline(0, color="grey", lw=0.8)
            ax.set_title(f"{side} vs {bench.upper()}")
            ax.set_ylabel("mean improvement [bps]")
            if i == 1:
                ax.set_xlabel("min duration d [bars]")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Flexible-duration orders: improvement vs min duration (positive = better for the trader)")
    return _save(fig, path)


def plot_improvement_distribution(frame: pd.DataFrame, path: str | Path | None = None):
    """Histograms per policy: improvement [bps] of the flexible orders (left) and VWAP tracking error [bps]
    of the fixed orders (right). Saves a PNG when ``path`` is given; returns the figure."""
    plt = _pyplot()
    frame = _prepare(frame)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    panels = [(frame["objective"] == "beat", "improvement_bps", "flexible orders: improvement [bps]"),
              ((frame["objective"] == "track") & (frame["benchmark"] == "vwap"), "tracking_error_bps",
               "fixed orders: VWAP tracking error [bps]")]
    for ax, (mask, col, title) in zip(axes, panels):
        values = frame.loc[mask, col].to_numpy()
        lo, hi = np.percentile(values, [0.5, 99.5]) if values.size else (0.0, 1.0)
        bins = np.linspace(lo, hi if hi > lo else lo + 1.0, 50)
        for policy in frame["policy"].cat.categories:
            v = frame.loc[mask & (frame["policy"] == policy), col].to_numpy()
            if v.size:
                ax.hist(np.clip(v, bins[0], bins[-1]), bins=bins, histtype="step", lw=1.4, label=str(policy))
        ax.set_title(title)
        ax.set_xlabel("bps")
        ax.set_ylabel("orders")
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def _order_index(side: str, benchmark: str) -> int:
    return ORDER_TYPES.index((side, benchmark))


def plot_allocation_curves(allocations: Mapping[str, np.ndarray], windows, path: str | Path | None = None):
    """Average allocation per horizon bar [fraction of the order] vs the market's average volume share.

    Left: fixed-duration buy-vs-VWAP orders (quantity target); right: flexible buy-vs-VWAP orders with
    min duration 1 bar. The market curve is the mean of each window's realised volume share per bar.
    """
    plt = _pyplot()
    horizon = int(windows.n_ahead)
    steps = np.arange(1, horizon + 1)
    market = np.asarray(windows.y, dtype=np.float64)[:, :, 0].mean(axis=0)
    k = _order_index("buy", "vwap")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for ax, column, title in ((axes[0], horizon, f"fixed duration ({horizon} bars), buy vs VWAP"),
                              (axes[1], 0, "flexible, min duration 1 bar, buy vs VWAP")):
        ax.bar(steps, market, color="lightgrey", label="market volume share (realised mean)")
        for name, alloc in allocations.items():
            ax.plot(steps, np.asarray(alloc)[:, :, column, k, 0].mean(axis=0), marker="o", ms=3, label=name)
        ax.set_title(title)
        ax.set_xlabel("horizon bar")
    axes[0].set_ylabel("mean allocation [fraction of the order]")
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def plot_orders(allocations: Mapping[str, np.ndarray], windows, path: str | Path | None = None,
                n_orders: int = 3, seed: int = 0):
    """A few individual fixed-duration buy-vs-VWAP orders: bar volume (bars), bar VWAP (line, right axis) and
    each policy's allocation per bar. Windows are drawn at random with ``seed``."""
    plt = _pyplot()
    n = len(windows)
    if n == 0:
        raise ValueError("no windows to draw")
    rows = np.sort(np.random.default_rng(seed).choice(n, size=min(int(n_orders), n), replace=False))
    horizon = int(windows.n_ahead)
    steps = np.arange(1, horizon + 1)
    k = _order_index("buy", "vwap")
    fig, axes = plt.subplots(len(rows), 1, figsize=(10, 3 * len(rows)), squeeze=False)
    for ax, row in zip(axes[:, 0], rows):
        volumes = np.asarray(windows.volumes[row], dtype=np.float64)
        ax.bar(steps, volumes / max(volumes.sum(), 1e-300), color="lightgrey", label="market volume share")
        for name, alloc in allocations.items():
            ax.step(steps, np.asarray(alloc)[row, :, horizon, k, 0], where="mid", label=name)
        ax.set_ylabel("fraction")
        twin = ax.twinx()
        twin.plot(steps, windows.prices[row], color="black", lw=1, ls="--", label="bar VWAP")
        twin.set_ylabel("price")
        ax.set_title(f"{windows.asset[row]} from {pd.Timestamp(windows.origin[row]):%Y-%m-%d %H:%M} UTC: "
                     "fixed buy vs VWAP")
    axes[0, 0].legend(fontsize=8, loc="upper left")
    axes[-1, 0].set_xlabel("horizon bar")
    fig.tight_layout()
    return _save(fig, path)


# --------------------------------------------------------------------------------------------------------
# Transaction-cost analysis (order sizes, costs, participation cap; issue 11)
# --------------------------------------------------------------------------------------------------------
#: Columns a costed frame (:func:`costed_backtest`) adds after :data:`lems.backtest.TCA_COLUMNS`: the stated
#: order size [fraction of the expected horizon volume], and the window's lookback volatility [fraction per bar]
#: and half-spread [fraction of price] (those of the cost model, or the Corwin-Schultz estimate).
COSTED_COLUMNS = ("order_size", "sigma", "half_spread")
#: Label of the Almgren-Chriss baseline that :func:`costed_backtest` adds per size.
ALMGREN_CHRISS = "almgren_chriss"
#: Urgencies ``kappa * H`` spanned by the efficient frontier figure (0 = TWAP).
FRONTIER_URGENCIES = np.linspace(0.0, 6.0, 61)


def _cost_parts(cost_model) -> list:
    """The components of a cost model (a :class:`~lems.execution.CompositeCost` flattened)."""
    from lems.execution import CompositeCost

    return list(cost_model.models) if isinstance(cost_model, CompositeCost) else [cost_model]


def window_half_spread(cost_model, windows) -> np.ndarray:
    """Half-spread per window [fraction of price] that ``cost_model`` charges: the stated ``half_spread_bps``
    of its :class:`~lems.execution.SpreadCost`, the lookback's Corwin-Schultz estimate when it is estimated,
    0 without spread cost (summed over spread components)."""
    from lems.baselines import lookback_half_spread
    from lems.execution import SpreadCost

    out = np.zeros(len(windows))
    for part in _cost_parts(cost_model):
        if isinstance(part, SpreadCost):
            out = out + (part.half_spread_bps * 1e-4 if part.half_spread_bps is not None
                         else lookback_half_spread(windows))
    return out


def almgren_chriss_parameters(cost_model, size: float, sigma: float, horizon: int, half_spread: float = 0.0,
                              risk_sigma: float | None = None) -> dict[str, float] | None:
    """Almgren & Chriss (2000) linear-impact parameters matched to a cost model for one order size.

    A uniform schedule of an order of ``size`` of the expected horizon volume trades ``1/H`` of the order per bar
    at participation ``size`` (bars of average volume): :class:`~lems.execution.SquareRootImpact` then costs
    ``coef sigma size^delta`` per unit, which the linear temporary impact ``eta n`` (``n = 1/H``) matches with
    ``eta = coef sigma size^delta H``; :class:`~lems.execution.LinearPermanentImpact` moves later prices by
    ``coef sigma size H`` per fraction of the order (``gamma``); a :class:`~lems.execution.SpreadCost` is the
    fixed cost per unit ``epsilon``.

    Args:
        cost_model: the :class:`lems.execution.CostModel`.
        size: the order's size [fraction of the expected horizon volume], > 0.
        sigma: volatility per bar [fraction], >= 0, that the impact scales with (costs are linear in it: the mean
            lookback volatility of the windows for their mean cost).
        horizon: ``H`` [bars].
        half_spread: the half-spread [fraction of price] of an estimated :class:`~lems.execution.SpreadCost`.
        risk_sigma: volatility per bar of the price risk (variances add: the root mean square of the windows'
            volatilities for their pooled variance); ``None``: ``sigma``.

    Returns:
        ``{"eta", "gamma", "epsilon", "sigma"}`` (``sigma`` = the risk's), or ``None`` when the model has no
        temporary impact, or not one larger than half the permanent one (the Almgren-Chriss problem is then not
        convex).
    """
    from lems.execution import LinearPermanentImpact, SpreadCost, SquareRootImpact

    eta = gamma = epsilon = 0.0
    for part in _cost_parts(cost_model):
        if isinstance(part, SquareRootImpact):
            eta += part.coef * sigma * size ** part.delta * horizon
        elif isinstance(part, LinearPermanentImpact):
            gamma += part.coef * sigma * size * horizon
        elif isinstance(part, SpreadCost):
            epsilon += half_spread if part.half_spread_bps is None else part.half_spread_bps * 1e-4
    if not eta > 0.5 * gamma or not np.isfinite(eta):
        return None
    risk = sigma if risk_sigma is None else risk_sigma
    return {"eta": float(eta), "gamma": float(gamma), "epsilon": float(epsilon), "sigma": float(risk)}


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
    :func:`lems.backtest.backtest` (``conditions=...``). With ``ac_risk_aversion``, the Almgren-Chriss schedule
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
        The frames of every size, in order, with :data:`lems.backtest.FRAME_COLUMNS`,
        :data:`lems.backtest.TCA_COLUMNS` and :data:`COSTED_COLUMNS`.

    Raises:
        ValueError: no conditions, a size in units, anything :func:`lems.backtest.backtest` rejects.
    """
    from lems.backtest import _named_policies
    from lems.baselines import AlmgrenChriss, lookback_volatility

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


def _prepare_costed(costed: pd.DataFrame | Sequence[pd.DataFrame]) -> pd.DataFrame:
    """A validated costed frame (see :func:`_prepare`), with its TCA columns as float64."""
    out = _prepare(costed)
    missing = [c for c in _COSTED_ONLY if c not in out.columns]
    if missing:
        raise ValueError(f"not a costed backtest frame (lems.report.costed_backtest): missing column(s) {missing}")
    for col in _COSTED_ONLY:
        out[col] = pd.to_numeric(out[col], errors="coerce").astype(np.float64)
    if out["order_size"].isna().any():
        raise ValueError("a costed frame has rows without order_size")
    return out


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


def _fixed(frame: pd.DataFrame, benchmark: str = "vwap") -> pd.DataFrame:
    return frame[(frame["objective"] == "track") & (frame["benchmark"] == benchmark)]


def _by_size(frame: pd.DataFrame, column: str, how: str = "mean", sign: float = 1.0) -> pd.Series:
    return sign * frame.groupby(["order_size", "policy"], observed=True, sort=True)[column].agg(how)


def tca_table(costed: pd.DataFrame) -> pd.DataFrame:
    """Slippage of the fixed-duration orders by order size and policy [bps, positive = a cost to the trader].

    Implementation shortfall vs the arrival price with its Perold parts (``is_bps = delay + timing + impact +
    opportunity``; :class:`lems.execution.Shortfall`), its standard deviation over orders (``is_std_bps``) and
    that of the schedule's part ``is - delay`` (``schedule_std_bps``: without the move from the arrival price to
    the first bar, which no schedule controls; the risk of the Almgren-Chriss frontier), of the VWAP-type orders
    (both sides and targets: the market's moves cancel in the means, the costs remain); slippage vs VWAP
    (``-improvement``, the VWAP-type orders) and vs TWAP (the TWAP-type orders); mean unfilled fraction and mean
    peak bar participation [%].

    Returns:
        Columns ``order_size, policy, is_bps, delay_bps, timing_bps, impact_bps, opportunity_bps, is_std_bps,
        schedule_std_bps, vs_vwap_bps, vs_twap_bps, unfilled_pct, peak_participation_pct, orders``.
    """
    costed = _prepare_costed(costed)
    vwap, twap = _fixed(costed, "vwap"), _fixed(costed, "twap")
    out = pd.DataFrame({"is_bps": _by_size(vwap, "shortfall_bps")})
    for part in ("delay", "timing", "impact", "opportunity"):
        out[f"{part}_bps"] = _by_size(vwap, f"{part}_bps")
    out["is_std_bps"] = _by_size(vwap, "shortfall_bps", "std")
    out["schedule_std_bps"] = _by_size(vwap.assign(schedule_bps=vwap["shortfall_bps"] - vwap["delay_bps"]),
                                       "schedule_bps", "std")
    out["vs_vwap_bps"] = _by_size(vwap, "improvement_bps", sign=-1.0)
    out["vs_twap_bps"] = _by_size(twap, "improvement_bps", sign=-1.0)
    out["unfilled_pct"] = _by_size(vwap, "unfilled", sign=100.0)
    out["peak_participation_pct"] = _by_size(vwap, "peak_bar_participation", sign=100.0)
    out["orders"] = vwap.groupby(["order_size", "policy"], observed=True, sort=True).size()
    out = out.reset_index()
    out["policy"] = out["policy"].astype(str)
    return out


def _headline_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    """Per policy: fixed VWAP tracking error and flexible mean improvement vs VWAP and vs TWAP [bps]."""
    flex = frame[frame["objective"] == "beat"]
    out = pd.DataFrame({"te": _fixed(frame).groupby("policy", observed=True)["tracking_error_bps"].mean()})
    for bench in BENCHMARKS:
        out[f"flex_{bench}"] = flex[flex["benchmark"] == bench].groupby("policy", observed=True)[
            "improvement_bps"].mean()
    out.index = out.index.astype(str)
    return out


def net_of_cost_table(frame: pd.DataFrame, costed: pd.DataFrame) -> pd.DataFrame:
    """Every headline number frictionless next to its net-of-cost counterpart, by order size and policy [bps].

    Fixed duration: VWAP tracking error (lower is better); flexible duration: mean improvement vs VWAP and vs
    TWAP (all min durations, both sides and targets; higher is better). The frictionless numbers do not depend on
    the size (NaN for a policy absent from the frictionless frame, e.g. Almgren-Chriss).

    Returns:
        Columns ``order_size, policy, te_free_bps, te_net_bps, flex_vwap_free_bps, flex_vwap_net_bps,
        flex_twap_free_bps, flex_twap_net_bps``.
    """
    free = _headline_numbers(_prepare(frame))
    costed = _prepare_costed(costed)
    rows = []
    for size, part in costed.groupby("order_size", sort=True):
        net = _headline_numbers(part)
        for policy in net.index:
            row = {"order_size": float(size), "policy": policy}
            for key in ("te", "flex_vwap", "flex_twap"):
                row[f"{key}_free_bps"] = free[key].get(policy, np.nan)
                row[f"{key}_net_bps"] = net.loc[policy, key]
            rows.append(row)
    return pd.DataFrame(rows)


def plot_cost_curves(costed: pd.DataFrame, path: str | Path | None = None):
    """Cost curves: bps vs order size per policy. Left: mean implementation shortfall vs arrival of the
    fixed-duration orders (cost, lower is better); right: mean net improvement vs VWAP of the flexible orders
    (higher is better). Saves a PNG when ``path`` is given; returns the figure."""
    plt = _pyplot()
    costed = _prepare_costed(costed)
    flex = costed[(costed["objective"] == "beat") & (costed["benchmark"] == "vwap")]
    panels = ((_by_size(_fixed(costed), "shortfall_bps"), "fixed duration: implementation shortfall vs arrival [bps]"),
              (_by_size(flex, "improvement_bps"), "flexible duration: net improvement vs VWAP [bps]"))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (values, title) in zip(axes, panels):
        for policy in costed["policy"].cat.categories:
            series = values.xs(policy, level="policy") if policy in values.index.get_level_values(1) else None
            if series is not None and len(series):
                ax.plot(series.index * 100, series.to_numpy(), marker="o", label=str(policy))
        ax.set_xscale("log")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel("order size [% of the expected horizon volume]")
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=8)
    return _save(fig, path)


def _frontier_lambdas(params: dict[str, float], horizon: int) -> np.ndarray:
    """Risk aversions giving the urgencies :data:`FRONTIER_URGENCIES` (``kappa H``) for these parameters."""
    kappa = FRONTIER_URGENCIES / horizon
    eta_tilde = params["eta"] - 0.5 * params["gamma"]
    return (2.0 * np.sinh(kappa / 2.0)) ** 2 * eta_tilde / max(params["sigma"], 1e-12) ** 2


def frontier_table(costed: pd.DataFrame, cost_model, ac_risk_aversion: float | None = None) -> pd.DataFrame:
    """The Almgren-Chriss efficient frontier per order size (:func:`lems.baselines.almgren_chriss_frontier`), with
    the parameters matched to the cost model (:func:`almgren_chriss_parameters`) at the costed windows' mean
    lookback volatility and half-spread, and their root-mean-square volatility for the risk; the stated
    ``ac_risk_aversion`` is added to the grid.

    Returns:
        Columns ``order_size, risk_aversion, kappa, expected_cost_bps, std_bps, stated`` (True on the stated
        ``lambda``); no rows for sizes without a matched Almgren-Chriss problem.
    """
    from lems.baselines import almgren_chriss_frontier

    costed = _prepare_costed(costed)
    horizon = int(_fixed(costed)["min_duration"].max())
    rows = []
    for size, part in costed.groupby("order_size", sort=True):
        windows = part.drop_duplicates("window")
        sigma = windows["sigma"].to_numpy(np.float64)
        params = almgren_chriss_parameters(cost_model, float(size), float(sigma.mean()), horizon,
                                           float(windows["half_spread"].mean()),
                                           risk_sigma=float(np.sqrt(np.mean(sigma**2))))
        if params is None:
            continue
        lambdas = _frontier_lambdas(params, horizon)
        stated = np.zeros(len(lambdas), dtype=bool)
        if ac_risk_aversion is not None:
            lambdas, stated = np.append(lambdas, ac_risk_aversion), np.append(stated, True)
        table = almgren_chriss_frontier(horizon, lambdas, params["sigma"], params["eta"], params["gamma"],
                                        params["epsilon"])
        rows.append(table.assign(order_size=float(size), stated=stated))
    if not rows:
        return pd.DataFrame(columns=["order_size", "risk_aversion", "kappa", "expected_cost_bps", "std_bps",
                                     "stated"])
    out = pd.concat(rows, ignore_index=True)
    return out[["order_size", "risk_aversion", "kappa", "expected_cost_bps", "std_bps", "stated"]]


def plot_frontier(costed: pd.DataFrame, frontier: pd.DataFrame, path: str | Path | None = None):
    """The Almgren-Chriss efficient frontier (expected cost vs risk, bps) per order size, with every policy's
    realised point: mean implementation shortfall and standard deviation of its schedule part (``is - delay``) of
    its fixed-duration VWAP-type orders (:func:`tca_table`). Saves a PNG when ``path`` is given; returns the
    figure.

    Raises:
        ValueError: an empty ``frontier`` (no size with a matched Almgren-Chriss problem).
    """
    if frontier.empty:
        raise ValueError("no Almgren-Chriss frontier to draw (the cost model has no temporary impact)")
    plt = _pyplot()
    points = tca_table(costed)
    sizes = sorted(frontier["order_size"].unique())
    fig, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 4), squeeze=False)
    for ax, size in zip(axes[0], sizes):
        curve = frontier[(frontier["order_size"] == size) & ~frontier["stated"]]
        ax.plot(curve["std_bps"], curve["expected_cost_bps"], color="black", lw=1.2,
                label="Almgren-Chriss frontier (model)")
        stated = frontier[(frontier["order_size"] == size) & frontier["stated"]]
        if len(stated):
            ax.plot(stated["std_bps"], stated["expected_cost_bps"], "k*", ms=10,
                    label=f"stated lambda {stated['risk_aversion'].iloc[0]:g}")
        mine = points[np.isclose(points["order_size"], size)]
        for row in mine.itertuples(index=False):
            ax.plot(row.schedule_std_bps, row.is_bps, "o", label=f"{row.policy} (realised)")
        ax.set_title(f"order of {size * 100:g} % of the expected horizon volume", fontsize=10)
        ax.set_xlabel("risk: std of the shortfall after the first bar's price [bps]")
        ax.set_ylabel("expected / mean cost [bps]")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


#: Columns only costed frames have.
_COSTED_ONLY: tuple[str, ...] = tuple(TCA_COLUMNS) + COSTED_COLUMNS


# --------------------------------------------------------------------------------------------------------
# The page
# --------------------------------------------------------------------------------------------------------
def _fmt(value: Any, digits: int = 2) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if math.isnan(value):
            return "–"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        if abs(value) < 0.5 * 10 ** -digits:
            value = 0.0
        return f"{value:,.{digits}f}"
    return str(value)


def _md_table(df: pd.DataFrame) -> str:
    header = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(df[c]) else "---" for c in df.columns) + "|"
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([header, rule, *body])


def _html_table(df: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
                   for row in df.itertuples(index=False))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _ci(row: pd.Series) -> str:
    return f"{_fmt(row['mean_diff'])} [{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]"


def _headline_lines(tables: dict[str, pd.DataFrame], model: str, horizon: int) -> list[str]:
    lines = []
    fixed = tables["fixed"].set_index("policy")
    if model in fixed.index:
        te = fixed.loc[model, "vwap_tracking_error_bps"]
        parts = []
        for base in ("twap", "static_vwap"):
            if base in fixed.index and "model_improvement_pct" in fixed.columns:
                r = fixed.loc[base]
                pct = r["model_improvement_pct"]
                relative = f"model {_fmt(abs(pct), 1)} % {'lower' if pct >= 0 else 'higher'}"
                parts.append(f"{base} {_fmt(r['vwap_tracking_error_bps'])} bps ({relative}; {base} − model: "
                             f"{_ci(r)} bps, {'significant' if r['significant'] else 'not significant'})")
        lines.append(f"**Fixed duration ({horizon} bars), VWAP tracking error**: model {_fmt(te)} bps"
                     + (" vs " + "; ".join(parts) if parts else "") + ".")
    flex = tables["flexible"]
    for bench in BENCHMARKS:
        sub = flex[flex["benchmark"] == bench].set_index("policy")
        if model not in sub.index:
            continue
        parts = []
        for base in ("flexible_rule", "twap"):
            if base in sub.index and "mean_diff" in sub.columns:
                r = sub.loc[base]
                parts.append(f"{base} {_fmt(r['mean_improvement_bps'])} bps (model − {base}: {_ci(r)} bps, "
                             f"{'significant' if r['significant'] else 'not significant'})")
        lines.append(f"**Flexible duration vs {bench.upper()}, mean improvement**: model "
                     f"{_fmt(sub.loc[model, 'mean_improvement_bps'])} bps"
                     + (" vs " + "; ".join(parts) if parts else "") + ".")
    words = verdicts(tables, model)
    if words:
        lines.append("**In words**: " + " ".join(words))
    return lines


#: Baselines in words (verdict sentences).
_IN_WORDS = {"static_vwap": "the static volume curve", "twap": "TWAP", "flexible_rule": "the classical flexible rule"}


def _significance(row: pd.Series) -> str:
    interval = f"[{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]"
    return f"{'significant' if row['significant'] else 'not significant'}, 95 % CI {interval} bps"


def verdicts(tables: dict[str, pd.DataFrame], model: str = "model") -> list[str]:
    """The headline in words: where the model is better than each classical baseline, and where it is not.

    One sentence per comparison that :func:`headline` makes: the fixed-duration VWAP tracking error against
    the static volume curve and TWAP, and the flexible-duration improvement against the classical flexible
    rule (per benchmark). A baseline that does better than the model is named as the better one.

    Args:
        tables: The output of :func:`headline` (with the paired columns, i.e. a model and baselines).
        model: Label of the model policy.
    """
    lines = []
    fixed = tables["fixed"].set_index("policy")
    for base in ("static_vwap", "twap"):
        if base == model or base not in fixed.index or "mean_diff" not in fixed.columns:
            continue
        r, name = fixed.loc[base], _IN_WORDS[base]
        pct = abs(float(r["model_improvement_pct"]))
        if r["mean_diff"] > 0:
            lines.append(f"Fixed duration: the model tracks VWAP {_fmt(pct, 1)} % better than {name} "
                         f"({_significance(r)}).")
        else:
            lines.append(f"Fixed duration: {name} tracks VWAP better than the model (the model's tracking error "
                         f"is {_fmt(pct, 1)} % higher; {_significance(r)}).")
    flex = tables["flexible"]
    for bench in BENCHMARKS:
        sub = flex[flex["benchmark"] == bench].set_index("policy")
        if "flexible_rule" not in sub.index or "mean_diff" not in sub.columns or model not in sub.index:
            continue
        r = sub.loc["flexible_rule"]
        if r["mean_diff"] > 0:
            lines.append(f"Flexible duration vs {bench.upper()}: the model beats the classical flexible rule by "
                         f"{_fmt(r['mean_diff'])} bps ({_significance(r)}).")
        else:
            lines.append(f"Flexible duration vs {bench.upper()}: the classical flexible rule is better than the "
                         f"model by {_fmt(abs(r['mean_diff']))} bps ({_significance(r)}); the learned stopping "
                         f"policy has no edge over it here.")
    return lines


def _naive_note(frame: pd.DataFrame) -> str:
    rows = frame[(frame["policy"] == "twap") & (frame["objective"] == "beat") & (frame["benchmark"] == "twap")
                 & (frame["target"] == "notional")]
    base = ("A notional-target order measured against TWAP earns a small \"improvement\" with no skill at all: "
            "buying a fixed amount of currency per bar buys more shares when the price is low (harmonic vs "
            "arithmetic mean of prices; EXECUTION.md §4). Compare every number with the naive TWAP schedule's "
            "beside it, never with zero.")
    if len(rows):
        by_side = rows.groupby("side", observed=True)["improvement_bps"].mean()
        detail = ", ".join(f"{side} {_fmt(v, 3)} bps" for side, v in by_side.items())
        base += f" Here the naive TWAP schedule shows {detail} on those orders."
    return base


def _cost_words(cost_model, costed: pd.DataFrame) -> str:
    """The cost model in words, with the median lookback estimates it uses."""
    from lems.execution import LinearPermanentImpact, SpreadCost, SquareRootImpact

    windows = costed.drop_duplicates(["order_size", "window"])
    sigma_bps = float(windows["sigma"].median()) * 1e4
    words = []
    for part in _cost_parts(cost_model):
        if isinstance(part, SpreadCost) and part.half_spread_bps is not None:
            words.append(f"a half-spread of {_fmt(part.half_spread_bps)} bps on every unit")
        elif isinstance(part, SpreadCost):
            words.append(f"a half-spread estimated per window from its lookback's highs and lows (Corwin-Schultz; "
                         f"median {_fmt(float(windows['half_spread'].median()) * 1e4)} bps)")
        elif isinstance(part, SquareRootImpact):
            words.append(f"temporary impact {_fmt(part.coef)} × σ × participation^{_fmt(part.delta)} per bar")
        elif isinstance(part, LinearPermanentImpact):
            words.append(f"permanent impact {_fmt(part.coef)} × σ × participation, moving the later bars' prices")
    text = "; ".join(words) if words else "no cost (fills at the bars' VWAP)"
    return text + f" (σ: each window's lookback volatility per bar, median {_fmt(sigma_bps)} bps)"


def _in_percent(table: pd.DataFrame) -> pd.DataFrame:
    """The table with ``order_size`` in percent (for display)."""
    return table.assign(order_size=table["order_size"] * 100.0)


def _tca_lines(table: pd.DataFrame, net: pd.DataFrame, model: str) -> list[str]:
    """Per size: the model's shortfall beside the baselines', and its flexible gains frictionless vs net."""
    lines = []
    for size, part in table.groupby("order_size", sort=True):
        part = part.set_index("policy")
        if model not in part.index:
            continue
        others = ", ".join(f"{p} {_fmt(part.loc[p, 'is_bps'])}" for p in part.index if p != model)
        text = (f"**{_fmt(size * 100, 3 if size < 0.01 else 1)} % of the expected horizon volume**: fixed-duration "
                f"shortfall vs arrival: model {_fmt(part.loc[model, 'is_bps'])} bps"
                + (f" ({others})" if others else "") + ".")
        rows = net[np.isclose(net["order_size"], size)].set_index("policy")
        if "twap" in rows.index and model in rows.index:
            for bench in BENCHMARKS:
                free = rows.loc[model, f"flex_{bench}_free_bps"] - rows.loc["twap", f"flex_{bench}_free_bps"]
                paid = rows.loc[model, f"flex_{bench}_net_bps"] - rows.loc["twap", f"flex_{bench}_net_bps"]
                text += (f" Flexible gain over TWAP vs {bench.upper()}: {_fmt(free)} bps frictionless, "
                         f"{_fmt(paid)} bps net of costs.")
        lines.append(text)
    return lines


#: Column titles of the page's TCA tables.
_TCA_TITLES = {"order_size": "size [%]", "policy": "policy", "is_bps": "IS vs arrival", "delay_bps": "delay",
               "timing_bps": "timing", "impact_bps": "impact", "opportunity_bps": "opportunity",
               "is_std_bps": "IS std", "schedule_std_bps": "(IS − delay) std", "vs_vwap_bps": "vs VWAP",
               "vs_twap_bps": "vs TWAP", "unfilled_pct": "unfilled [%]",
               "peak_participation_pct": "peak bar participation [%]"}
_NET_TITLES = {"order_size": "size [%]", "policy": "policy", "te_free_bps": "VWAP TE frictionless",
               "te_net_bps": "VWAP TE net", "flex_vwap_free_bps": "flex vs VWAP frictionless",
               "flex_vwap_net_bps": "flex vs VWAP net", "flex_twap_free_bps": "flex vs TWAP frictionless",
               "flex_twap_net_bps": "flex vs TWAP net"}
_TCA_INTRO = ("The same allocations as above, now filled with these costs: achieved prices include them. Slippage and "
              "implementation shortfall (IS) are costs in bps (positive = worse for the trader); IS = delay + timing "
              "+ impact + opportunity (Perold). Means are over both sides, where the market's own moves cancel and "
              "the costs remain; the standard deviations are the risk. The model sees no order size: it is scored "
              "at every size.")
_FRONTIER_TEXT = ("Expected cost vs risk of the Almgren-Chriss schedules (linear impact matched to the cost model at "
                  "each size at the windows' mean σ, risk at their root-mean-square σ; a star marks the stated risk "
                  "aversion) and every policy's realised point: mean IS of its fixed-duration orders and standard "
                  "deviation of IS − delay (the move from the arrival price to the first bar is the same for every "
                  "schedule). The curve is linear impact on a random walk; the realised points pay the cost model "
                  "above on the actual bars.")


def _conditions_words(conditions, costed: pd.DataFrame) -> str:
    """Cost model, cap and arrival price in words."""
    if conditions is None:
        return "cost model and cap not stated here (see the run that wrote the frames)"
    cap = conditions.max_participation
    capped = (f"{_fmt(cap * 100, 1)} % of each bar's volume (what a bar cannot take carries to later bars; the "
              "rest stays unfilled)") if cap is not None else "none"
    arrival = "the last close" if conditions.arrival == "close" else "the last VWAP"
    own = "; the VWAP benchmark includes the order's own fills" if conditions.vwap_includes_order else ""
    return (f"costs: {_cost_words(conditions.cost_model, costed)}; participation cap: {capped}; arrival price: "
            f"{arrival} before the origin{own}")


def _tca_blocks(costed: pd.DataFrame, conditions, model: str, figures: dict[str, str],
                tables: dict[str, pd.DataFrame]) -> list[tuple]:
    """The page's transaction-cost analysis section."""
    sizes = ", ".join(f"{s * 100:g} %" for s in sorted(costed["order_size"].unique()))
    intro = (f"Order sizes {sizes} of the EXPECTED market volume over the horizon (the lookback's mean bar volume × "
             f"H, known at the decision); {_conditions_words(conditions, costed)}. {_TCA_INTRO}")
    blocks: list[tuple] = [("h2", "Net of costs: transaction-cost analysis"), ("p", intro)]
    blocks += [("li", line) for line in _tca_lines(tables["tca"], tables["net"], model)]
    shown = _in_percent(tables["tca"])[list(_TCA_TITLES)].rename(columns=_TCA_TITLES)
    net_title = ("Frictionless vs net of costs: fixed-duration VWAP tracking error (lower is better) and "
                 "flexible-duration mean improvement (higher is better) [bps]")
    blocks += [("h3", "Fixed-duration orders: slippage vs arrival, VWAP and TWAP by order size [bps, + = cost]"),
               ("table", shown), ("h3", net_title),
               ("table", _in_percent(tables["net"]).rename(columns=_NET_TITLES))]
    if "cost_curves" in figures:
        blocks += [("h3", "Cost curves"), ("img", figures["cost_curves"], "Cost vs order size")]
    if "frontier" in figures:
        blocks += [("h3", "Almgren-Chriss efficient frontier"), ("p", _FRONTIER_TEXT),
                   ("img", figures["frontier"], "Almgren-Chriss frontier")]
    else:
        blocks.append(("p", "No Almgren-Chriss frontier: it needs a stated cost model with a temporary impact."))
    return blocks


def _blocks(frame: pd.DataFrame, model: str, cluster: str, figures: dict[str, str], meta: Mapping[str, Any],
            title: str, tca: list[tuple] = ()) -> list[tuple]:
    horizon = int(frame.loc[frame["objective"] == "track", "min_duration"].max()) if (
        frame["objective"] == "track").any() else int(frame["min_duration"].max())
    tables = headline(frame, model=model, cluster=cluster)
    policies = [str(p) for p in frame["policy"].cat.categories]
    n_windows = frame.drop_duplicates(["asset", "origin"]).shape[0]
    first, last = frame["origin"].min(), frame["origin"].max()
    blocks: list[tuple] = [("h1", title), ("h2", "Headline")]
    if model in policies:
        for line in _headline_lines(tables, model, horizon):
            blocks.append(("li", line))
    else:
        blocks.append(("p", f"No policy named {model!r} in the frame: no model comparison."))
    blocks.append(("note", _naive_note(frame)))
    context = (f"{n_windows} order windows ({', '.join(sorted(frame['asset'].unique()))}), origins "
               f"{first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC; horizon {horizon} bars; policies: "
               f"{', '.join(policies)}. Every window carries one order of each side × benchmark × target × "
               f"min duration. Units: basis points (bps) of the benchmark price; improvement > 0 is better for "
               f"the trader on both sides; tracking error = |achieved / benchmark − 1| × 10,000.")
    blocks += [("h2", "What was measured"), ("p", context)]
    if meta:
        blocks.append(("p", "; ".join(f"{k}: {v}" for k, v in meta.items()) + "."))
    ci_text = (f"Confidence intervals: 95 %, normal approximation, standard errors clustered by "
               f"{_CLUSTER_WORDS[cluster]}. Paired differences are taken order by order on the same windows; "
               f"positive = the model did better.")
    n_clusters = len(np.unique(_cluster_ids(frame, cluster)))
    if n_clusters < _FEW_CLUSTERS:
        ci_text += (f" Only {n_clusters} clusters: the normal approximation is rough, treat the intervals as "
                    f"indicative.")
    blocks.append(("p", ci_text))
    fixed_cols = {"policy": "policy", "vwap_tracking_error_bps": "VWAP tracking error [bps]",
                  "model_improvement_pct": "model lower by [%]", "mean_diff": "policy − model [bps]",
                  "ci_low": "95% CI low", "ci_high": "95% CI high", "significant": "significant"}
    fixed = tables["fixed"]
    fixed = fixed[[c for c in fixed_cols if c in fixed.columns]].rename(columns=fixed_cols)
    blocks += [("h3", "Fixed-duration orders: VWAP tracking error (both sides, both targets)"), ("table", fixed)]
    flex = tables["flexible"].rename(columns={"mean_improvement_bps": "mean improvement [bps]",
                                              "mean_diff": "model − policy [bps]", "ci_low": "95% CI low",
                                              "ci_high": "95% CI high"})
    blocks += [("h3", "Flexible-duration orders: mean improvement (all min durations, both sides and targets)"),
               ("table", flex)]
    blocks += list(tca)
    for key, caption in (("duration", "Improvement vs min duration"), ("distribution", "Distributions"),
                         ("allocation", "Average schedules vs the market's volume curve"),
                         ("orders", "Example orders")):
        if key in figures:
            blocks += [("h2", caption), ("img", figures[key], caption)]
    blocks.append(("h2", "Distribution tables"))
    pooled = summary_table(_pooled(frame))
    fixed_stats = pooled[pooled["objective"] == "track"].drop(columns=["objective", "min_duration", "metric"])
    flex_stats = pooled[pooled["objective"] == "beat"].drop(columns=["objective", "min_duration", "metric"])
    rename = {**_STAT_LABELS, "count": "orders"}
    blocks += [("h3", f"Fixed duration ({horizon} bars): tracking error [bps]"),
               ("table", fixed_stats.rename(columns=rename)),
               ("h3", "Flexible duration, all min durations pooled: improvement [bps]"),
               ("table", flex_stats.rename(columns=rename)),
               ("p", "Per-min-duration tables: `summary.csv` (every side × benchmark × target × min duration × "
                     "policy) and `paired.csv` (model vs each baseline, per group, with intervals).")]
    return blocks


_FEW_CLUSTERS = 20
_CLUSTER_WORDS = {
    "window": "order window (asset × origin)",
    "origin": "origin time (all assets starting at the same bar together)",
    "day": "UTC calendar day of the order's origin (all orders starting that day, overlapping horizons included, "
           "form one cluster)",
    "week": "calendar week of the order's origin",
}


def _render_md(blocks: list[tuple]) -> str:
    out = []
    for kind, *args in blocks:
        if kind in ("h2", "h3") and out and out[-1].startswith("- "):
            out.append("")
        if kind == "h1":
            out.append(f"# {args[0]}\n")
        elif kind == "h2":
            out.append(f"## {args[0]}\n")
        elif kind == "h3":
            out.append(f"### {args[0]}\n")
        elif kind == "p":
            out.append(f"{args[0]}\n")
        elif kind == "li":
            out.append(f"- {args[0]}")
        elif kind == "note":
            out.append(f"\n> **Note.** {args[0]}\n")
        elif kind == "table":
            out.append(_md_table(args[0]) + "\n")
        elif kind == "img":
            out.append(f"![{args[1]}]({args[0]})\n")
    return "\n".join(out) + "\n"


def _render_html(blocks: list[tuple], title: str) -> str:
    body, items = [], []

    def flush():
        if items:
            body.append("<ul>" + "".join(items) + "</ul>")
            items.clear()

    def inline(text: str) -> str:
        text = html.escape(text)
        parts = text.split("**")
        text = "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))
        parts = text.split("`")
        return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))

    for kind, *args in blocks:
        if kind == "li":
            items.append(f"<li>{inline(args[0])}</li>")
            continue
        flush()
        if kind in ("h1", "h2", "h3"):
            body.append(f"<{kind}>{html.escape(args[0])}</{kind}>")
        elif kind == "p":
            body.append(f"<p>{inline(args[0])}</p>")
        elif kind == "note":
            body.append(f"<blockquote><strong>Note.</strong> {inline(args[0])}</blockquote>")
        elif kind == "table":
            body.append(_html_table(args[0]))
        elif kind == "img":
            body.append(f'<figure><img src="{html.escape(args[0])}" alt="{html.escape(args[1])}"></figure>')
    flush()
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto;line-height:1.4}"
             "table{border-collapse:collapse;margin:0.5em 0 1.5em;font-size:0.9em}"
             "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f2f2f2}"
             "blockquote{background:#fff8e1;border-left:4px solid #f0b400;margin:1em 0;padding:0.5em 1em}"
             "img{max-width:100%}")
    return (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(body)}</body></html>\n")


def write_report(frame: pd.DataFrame | Sequence[pd.DataFrame], out_dir: str | Path, *,
                 allocations: Mapping[str, np.ndarray] | None = None, windows=None, format: str = "md",  # noqa: A002
                 model: str = "model", cluster: str = "day", title: str = "lems execution report",
                 meta: Mapping[str, Any] | None = None, seed: int = 0, costs: pd.DataFrame | None = None,
                 conditions=None, ac_risk_aversion: float | None = None) -> Path:
    """Write the report page, its figures (PNG) and CSV tables into ``out_dir``.

    Files: ``report.md`` or ``report.html``; ``summary.csv`` (:func:`summary_table`, per min duration),
    ``paired.csv`` (:func:`paired_comparison` vs every other policy, per group), ``headline.csv``;
    ``improvement_by_duration.png``, ``improvement_distribution.png`` and, when ``allocations`` and
    ``windows`` are given, ``allocation_curves.png`` and ``example_orders.png``. With ``costs``, a
    transaction-cost analysis section: ``tca.csv`` (:func:`tca_table`), ``net_of_costs.csv``
    (:func:`net_of_cost_table`), ``cost_curves.png`` and, with a cost model that has a temporary impact,
    ``frontier.csv`` and ``almgren_chriss_frontier.png`` (:func:`frontier_table`, :func:`plot_frontier`).

    Args:
        frame: Backtest frame(s) (concatenated); frictionless rows, or frictionless and costed rows together
            (e.g. both files of ``lems evaluate``, split by :func:`split_costed`).
        out_dir: Output folder (created).
        allocations: Optional ``{policy: (N, H, H+1, 4, 2)}`` allocations on ``windows`` (for the schedule
            figures).
        windows: The windows the frame was computed on (with ``allocations``).
        format: ``"md"`` or ``"html"``.
        model: Label of the model policy (the reference of every comparison).
        cluster: Clustering of the standard errors (see :func:`paired_comparison`).
        title: Page title.
        meta: Extra facts printed in the report (e.g. training time, data files).
        seed: Seed of the choice of example orders.
        costs: A costed frame (:func:`costed_backtest`) of the same windows and policies; ``None``: costed rows
            of ``frame``, if any.
        conditions: The :class:`lems.execution.ExecutionConditions` of the costs (any size: the cost model, cap
            and arrival price are described and the frontier drawn from it); ``None``: not described, no frontier.
        ac_risk_aversion: The Almgren-Chriss baseline's ``lambda``, marked on the frontier.

    Returns:
        Path of the report page.

    Raises:
        ValueError: bad frame, unknown format or cluster, costed rows without frictionless ones.
    """
    if format not in ("md", "html"):
        raise ValueError(f"format must be 'md' or 'html', got {format!r}")
    if cluster not in CLUSTERS:
        raise ValueError(f"cluster must be one of {CLUSTERS}, got {cluster!r}")
    if not isinstance(frame, pd.DataFrame):
        frame = pd.concat(list(frame), ignore_index=True) if len(frame) else frame
    if isinstance(frame, pd.DataFrame) and costs is None:
        frame, costs = split_costed(frame)
        if len(frame) == 0:
            raise ValueError("only costed rows were given: pass the frictionless frame too (backtest.parquet "
                             "beside backtest_costs.parquet)")
    frame = _prepare(frame)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary_table(frame).to_csv(out / "summary.csv", index=False)
    policies = [str(p) for p in frame["policy"].cat.categories]
    if model in policies and len(policies) > 1:
        paired_comparison(frame, model, cluster=cluster).to_csv(out / "paired.csv", index=False)
        tables = headline(frame, model=model, cluster=cluster)
        pd.concat([tables["fixed"].assign(orders="fixed, VWAP tracking error"),
                   tables["flexible"].assign(orders="flexible, improvement")],
                  ignore_index=True).to_csv(out / "headline.csv", index=False)
    figures = {"duration": FIGURES["duration"], "distribution": FIGURES["distribution"]}
    plot_improvement_by_duration(frame, out / figures["duration"])
    plot_improvement_distribution(frame, out / figures["distribution"])
    if allocations and windows is not None and len(windows):
        figures["allocation"] = FIGURES["allocation"]
        figures["orders"] = FIGURES["orders"]
        plot_allocation_curves(allocations, windows, out / figures["allocation"])
        plot_orders(allocations, windows, out / figures["orders"], seed=seed)
    tca = [] if costs is None else _write_tca(frame, costs, out, figures, conditions, ac_risk_aversion, model)
    blocks = _blocks(frame, model, cluster, figures, meta or {}, title, tca)
    page = out / f"report.{format}"
    text = _render_md(blocks) if format == "md" else _render_html(blocks, title)
    page.write_text(text, encoding="utf-8")
    return page


def _write_tca(frame: pd.DataFrame, costs: pd.DataFrame, out: Path, figures: dict[str, str], conditions,
               ac_risk_aversion: float | None, model: str) -> list[tuple]:
    """Write the TCA tables and figures into ``out``; returns the page's TCA blocks (``figures`` updated)."""
    costs = _prepare_costed(costs)
    tables = {"tca": tca_table(costs), "net": net_of_cost_table(frame, costs)}
    tables["tca"].to_csv(out / "tca.csv", index=False)
    tables["net"].to_csv(out / "net_of_costs.csv", index=False)
    figures["cost_curves"] = TCA_FIGURES["cost_curves"]
    plot_cost_curves(costs, out / figures["cost_curves"])
    if conditions is not None:
        frontier = frontier_table(costs, conditions.cost_model, ac_risk_aversion)
        if len(frontier):
            frontier.to_csv(out / "frontier.csv", index=False)
            figures["frontier"] = TCA_FIGURES["frontier"]
            plot_frontier(costs, frontier, out / figures["frontier"])
    return _tca_blocks(costs, conditions, model, figures, tables)

