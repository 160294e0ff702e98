"""Figures of backtest frames and allocations (matplotlib, Agg backend: no display needed). Each ``plot_*`` saves a
PNG when given a path and returns the figure."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from lems.evaluation.frames import _prepare, _prepare_costed
from lems.evaluation.tca import _by_size, _fixed, tca_table
from lems.execution import BENCHMARKS, ORDER_TYPES, SIDES

__all__ = ["FIGURES", "TCA_FIGURES", "plot_allocation_curves", "plot_cost_curves", "plot_frontier",
           "plot_improvement_by_duration", "plot_improvement_distribution", "plot_orders"]

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


def _pyplot():
    # matplotlib is imported on first use: it costs about a second and only the figures need it
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
