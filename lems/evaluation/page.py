"""The report page: the headline in numbers and words, the tables, the figures, the transaction-cost analysis, as
Markdown or HTML, with its CSV tables (:func:`write_report`)."""

from __future__ import annotations

import html
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lems.evaluation.backtest import split_costed
from lems.evaluation.cost_parameters import _cost_parts
from lems.evaluation.figures import (
    FIGURES,
    TCA_FIGURES,
    plot_allocation_curves,
    plot_cost_curves,
    plot_frontier,
    plot_improvement_by_duration,
    plot_improvement_distribution,
    plot_orders,
)
from lems.evaluation.frames import _prepare, _prepare_costed
from lems.evaluation.stats import (
    _ALL_CLASSICAL,
    CLUSTERS,
    _cluster_ids,
    _pooled,
    headline,
    headline_record,
    headline_table,
    paired_comparison,
    summary_table,
)
from lems.evaluation.tca import frontier_table, net_of_cost_table, tca_table
from lems.execution import (
    BENCHMARKS,
    FeeCost,
    LinearPermanentImpact,
    SpreadCost,
    SquareRootImpact,
    TransientImpact,
)

__all__ = ["spread_lines", "verdicts", "write_report"]

_STAT_LABELS = {"mean": "mean", "std": "std", "median": "median", "p5": "P5", "p95": "P95", "q25": "Q25",
                "q75": "Q75"}


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
        for base in ("twap", "static_vwap", "static_tilt", "dynamic_vwap"):
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


#: The classical fixed-duration schedules in short words (the spread ratio's candidates).
_SCHEDULE_WORDS = {"twap": "TWAP", "static_vwap": "static curve", "static_tilt": "static tilt",
                   "dynamic_vwap": "dynamic VWAP"}


def _ratio(row: Mapping[str, Any]) -> str:
    return f"{row['ratio']:.3f} [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"


def spread_lines(table: Mapping[str, Any], model: str = "model") -> list[str]:
    """The headline of :func:`lems.evaluation.stats.headline_table` in sentences (Markdown bold): the model's
    fixed-duration spread ratio to the best classical schedule (and where it was chosen), to each classical
    schedule, and its flexible improvement over the rule per benchmark and side."""
    best, spread = table["best"], table["spread"]
    where = ("chosen on validation" if best["chosen_on"] == "validation" else
             "chosen on the scored windows themselves: no validation windows were given")
    candidates = ", ".join(_SCHEDULE_WORDS.get(c, c) for c in best.get("selection_spreads_bps", spread["baseline"]))
    days, draws = int(spread["days"].iloc[0]), int(spread["n_boot"].iloc[0])
    others = "; ".join(f"{row.baseline} {_ratio(row._asdict())}" for row in spread.itertuples(index=False))
    lines = [f"**Fixed duration, spread ratio** (std of the signed VWAP diff, {model} / schedule; < 1: {model} tracks "
             f"VWAP more tightly; 95 % day-bootstrap interval, {draws} draws over {days} origin days): vs the best "
             f"classical schedule ({candidates}; {where}), {best['baseline']}: **{_ratio(best)}** ({model} "
             f"{_fmt(best['model_spread_bps'])} bps vs {_fmt(best['spread_bps'])} bps); per schedule: {others}."]
    flex = table["flexible"]
    for bench in BENCHMARKS:
        rows = flex[flex["benchmark"] == bench]
        if len(rows):
            parts = [f"{r.side} {_fmt(r.mean_diff)} [{_fmt(r.ci_low)}, {_fmt(r.ci_high)}] bps"
                     f"{'' if r.significant else ' (n.s.)'}" for r in rows.itertuples(index=False)]
            lines.append(f"**Flexible duration vs {bench.upper()}, {model} − flexible rule** (mean improvement, "
                         f"clustered 95 % CI): " + "; ".join(parts) + ".")
    return lines


#: Baselines in words (verdict sentences).
_IN_WORDS = {"static_vwap": "the static volume curve", "twap": "TWAP", "flexible_rule": "the classical flexible rule",
             "static_tilt": "the static tilt", "dynamic_vwap": "the dynamic VWAP schedule"}


def _significance(row: pd.Series) -> str:
    interval = f"[{_fmt(row['ci_low'])}, {_fmt(row['ci_high'])}]"
    return f"{'significant' if row['significant'] else 'not significant'}, 95 % CI {interval} bps"


def verdicts(tables: dict[str, pd.DataFrame], model: str = "model") -> list[str]:
    """The headline in words: where the model is better than each classical baseline, and where it is not.

    One sentence per comparison that :func:`headline` makes: the fixed-duration VWAP tracking error against
    the static volume curve, TWAP, the static tilt and the dynamic VWAP schedule (those in the tables), and the
    flexible-duration improvement against the classical flexible rule (per benchmark). A baseline that does
    better than the model is named as the better one.

    Args:
        tables: The output of :func:`headline` (with the paired columns, i.e. a model and baselines).
        model: Label of the model policy.
    """
    lines = []
    fixed = tables["fixed"].set_index("policy")
    for base in ("static_vwap", "twap", "static_tilt", "dynamic_vwap"):
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
            "arithmetic mean of prices; docs/execution.md §4). Compare every number with the naive TWAP schedule's "
            "beside it, never with zero.")
    if len(rows):
        by_side = rows.groupby("side", observed=True)["improvement_bps"].mean()
        detail = ", ".join(f"{side} {_fmt(v, 3)} bps" for side, v in by_side.items())
        base += f" Here the naive TWAP schedule shows {detail} on those orders."
    return base


def _cost_words(cost_model, costed: pd.DataFrame) -> str:
    """The cost model in words, with the median lookback estimates it uses."""
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
        elif isinstance(part, FeeCost):
            words.append(f"exchange fees of {_fmt(part.fee_bps)} bps per unit traded (taker {_fmt(part.taker_bps)} "
                         f"bps, maker {_fmt(part.maker_bps)} bps on {_fmt(part.maker_fraction * 100)} %)")
        elif isinstance(part, TransientImpact):
            kernel = (f"power-law decay (1 + t / {_fmt(part.resilience_minutes)} min)^-{_fmt(part.beta)}"
                      if part.kernel == "power" else f"exponential decay over {_fmt(part.resilience_minutes)} min")
            words.append(f"transient impact with memory ({kernel}, response participation^{_fmt(part.delta)}), "
                         f"calibrated to {_fmt(part.coef)} × σ_T × participation^{_fmt(part.delta)} at the horizon of a uniform order")
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
               "timing_bps": "timing", "impact_bps": "impact", "fee_bps": "fees",
               "opportunity_bps": "opportunity",
               "is_std_bps": "IS std", "schedule_std_bps": "(IS − delay) std", "vs_vwap_bps": "vs VWAP",
               "vs_twap_bps": "vs TWAP", "unfilled_pct": "unfilled [%]",
               "peak_participation_pct": "peak bar participation [%]"}
_NET_TITLES = {"order_size": "size [%]", "policy": "policy", "te_free_bps": "VWAP TE frictionless",
               "te_net_bps": "VWAP TE net", "flex_vwap_free_bps": "flex vs VWAP frictionless",
               "flex_vwap_net_bps": "flex vs VWAP net", "flex_twap_free_bps": "flex vs TWAP frictionless",
               "flex_twap_net_bps": "flex vs TWAP net"}
_TCA_INTRO = ("The same allocations as above, now filled with these costs: achieved prices include them. Slippage and "
              "implementation shortfall (IS) are costs in bps (positive = worse for the trader); IS = delay + timing "
              "+ impact + fees + opportunity (Perold). Means are over both sides, where the market's own moves cancel and "
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
            title: str, tca: list[tuple] = (), spread: Mapping[str, Any] | None = None) -> list[tuple]:
    horizon = int(frame.loc[frame["objective"] == "track", "min_duration"].max()) if (
        frame["objective"] == "track").any() else int(frame["min_duration"].max())
    tables = headline(frame, model=model, cluster=cluster)
    policies = [str(p) for p in frame["policy"].cat.categories]
    n_windows = frame.drop_duplicates(["asset", "origin"]).shape[0]
    first, last = frame["origin"].min(), frame["origin"].max()
    blocks: list[tuple] = [("h1", title), ("h2", "Headline")]
    if model in policies:
        for line in (spread_lines(spread, model) if spread is not None else []) + _headline_lines(tables, model,
                                                                                                  horizon):
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
                 conditions=None, ac_risk_aversion: float | None = None, validation: pd.DataFrame | None = None,
                 spread: Mapping[str, Any] | None = None) -> Path:
    """Write the report page, its figures (PNG) and CSV tables into ``out_dir``.

    Files: ``report.md`` or ``report.html``; ``headline.json`` (the spread ratios and the flexible improvement over
    the rule per side, :func:`lems.evaluation.stats.headline_record`, when the frame has the model and a classical
    schedule); ``summary.csv`` (:func:`summary_table`, per min duration),
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
        validation: Backtest frame of the classical schedules on validation windows: the best classical schedule
            of the spread ratio is chosen there (:func:`lems.evaluation.stats.headline_table`); ``None``: on the
            scored frame, and the page says so.
        spread: An already computed :func:`lems.evaluation.stats.headline_table` of ``frame`` (instead of
            ``validation``).

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
    if (spread is None and model in policies and "diff" in frame.columns
            and any(c in policies for c in _ALL_CLASSICAL)):
        spread = headline_table(frame, model, validation=validation, cluster=cluster)
    if spread is not None:
        (out / "headline.json").write_text(json.dumps(headline_record(spread), indent=2, default=str),
                                           encoding="utf-8")
    blocks = _blocks(frame, model, cluster, figures, meta or {}, title, tca, spread)
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
