"""Render the README's results block from the committed results files (no hand-copied numbers).

Sources, under ``benchmarks/results/<script>/``:

* ``real_data_crypto.json``, ``real_data_equities.json``, ``real_data_crypto_1m.json``: written by ``benchmarks/real_data.py`` (or rebuilt
  from a committed run's ``.csv`` and ``.md`` with ``real_data.py --summary-only``);
* ``reference_crypto.json``: written by ``benchmarks/reference_crypto.py``;
* ``costs_crypto_1h.csv``, ``costs_crypto_1m.csv``: written by ``benchmarks/costs.py`` (net-of-cost flexible gains).

The block sits in ``README.md`` between ``<!-- results:begin -->`` and ``<!-- results:end -->``; significance
("n.s.") is read from each paired confidence interval, never decided by hand.

Usage (from the repository root)::

    python -m benchmarks.render_readme           # rewrite the block in README.md
    python -m benchmarks.render_readme --check   # exit 1 if README.md differs from the files
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
README = ROOT / "README.md"
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
DATASETS = {"crypto": "BTCUSDT + ETHUSDT 1h", "equities": "SPY, AAPL, IBM, AIG, BAC 1h",
            "crypto_1m": "ALGO, DOT, LINK, LTC USDT 1m"}
#: The spread target of the tracking schedules: at most this fraction of the best classical baseline's spread.
SPREAD_TARGET = 0.70


def wrap(text: str) -> list[str]:
    """A paragraph as lines of at most 110 characters (like the rest of the README)."""
    return textwrap.wrap(text, width=110, break_long_words=False, break_on_hyphens=False)


def bps(value: float, sign: bool = True) -> str:
    """``+1.23`` (never ``-0.00``)."""
    value = round(float(value), 2) + 0.0
    return f"{value:+.2f}" if sign else f"{value:.2f}"


#: The script folder under ``benchmarks/results/`` that holds each input (by file-name prefix).
SCRIPT_OF = (("real_data_", "real_data"), ("reference_crypto", "reference_crypto"), ("costs_", "costs"),
             ("ablation_", "universe"))
#: The universe benchmark's result the README shows (``benchmarks/universe.py --tag ablation_5m_h12``).
UNIVERSE_RESULT = "ablation_5m_h12.json"
#: The universe targets: at most these fractions of the static curve's and of the best classical schedule's spread.
UNIVERSE_TARGETS = {"static_vwap": 0.70, "best": 0.85}


def result_path(results: Path, name: str) -> Path:
    """``results/<script>/<name>`` (the results layout), or ``results/<name>`` when ``results`` is a flat folder of
    the inputs (a copy, as the tests make)."""
    script = next((folder for prefix, folder in SCRIPT_OF if name.startswith(prefix)), None)
    nested = results / script / name if script else results / name
    return nested if nested.is_file() or not (results / name).is_file() else results / name


def _load(results: Path, name: str) -> dict:
    path = result_path(results, name)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the benchmark that writes it (see {Path(__file__).name})")
    return json.loads(path.read_text(encoding="utf-8"))


def significant(pair: dict) -> bool:
    """Whether a paired 95 % interval excludes 0 (read from the interval itself, not from a stored flag)."""
    return bool(pair["ci_low"] > 0 or pair["ci_high"] < 0)


def ci(pair: dict, pct: bool = False) -> str:
    """``+3.97 [+1.33, +6.60]``, with ``, n.s.`` when the interval contains 0."""
    if pct:
        text = f"{pair['ratio_minus_1']:+.1%} [{pair['ci_low']:+.1%}, {pair['ci_high']:+.1%}]"
    else:
        text = f"{pair['mean_diff']:+.2f} [{pair['ci_low']:+.2f}, {pair['ci_high']:+.2f}]"
    return text + ("" if significant(pair) else ", n.s.")


def _fixed_cell(s: dict) -> str:
    fx, paired = s["fixed"], s["fixed_paired"]
    reduction = 1 - fx["model"]["mean_abs_bps"] / fx["static_vwap"]["mean_abs_bps"]
    return (f"**{fx['model']['mean_abs_bps']:.2f} / {fx['model']['std_diff_bps']:.2f}**; static curve "
            f"{fx['static_vwap']['mean_abs_bps']:.2f} / {fx['static_vwap']['std_diff_bps']:.2f} (mean abs "
            f"{-reduction:+.1%}, paired {ci(paired['static_vwap'])}); TWAP {fx['twap']['mean_abs_bps']:.2f} / "
            f"{fx['twap']['std_diff_bps']:.2f}")


def _flex_cell(s: dict, benchmark: str) -> str:
    """Pooled over both sides, then (when the results have them) model minus rule per side."""
    flex, paired = s["flexible"][benchmark], s["flexible_vs_rule"][benchmark]
    cell = f"**{flex['model']:+.2f}**; flexible rule {flex['flexible_rule']:+.2f} (paired {ci(paired)})"
    sides = s.get("flexible_vs_rule_by_side", {}).get(benchmark)
    if sides:
        cell += "; minus rule, " + ", ".join(f"{side} {ci(sides[side])}" for side in ("buy", "sell"))
    return cell


def _spread_cell(s: dict) -> str:
    """Spread ratio to the best classical baseline: the model's and the validation-fitted blend's, with the target."""
    spread = s.get("spread") or {}
    if not spread:
        fx = s["fixed"]
        best = min(("static_vwap", "twap"), key=lambda p: fx[p]["std_diff_bps"])
        return f"{fx['model']['std_diff_bps'] / fx[best]['std_diff_bps']:.2f} (vs {best})"
    cells = []
    for who, label in (("model", "model"), ("model_blend", "blend")):
        if who in spread:
            r = spread[who]
            cells.append(f"{label} {r['ratio']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]")
    met = all(spread[w]["ratio"] <= SPREAD_TARGET for w in ("model",) if w in spread)
    return "; ".join(cells) + f" (vs {spread['best_classical']}; target <= {SPREAD_TARGET:.2f}: " + (
        "met)" if met else "not met)")


def real_data_table(results: Path) -> list[str]:
    """Our model against the classical schedules on every data set."""
    lines = [("| data (test period from) | fixed duration: VWAP tracking, mean abs / std of diff [bps] | "
              "spread ratio to the best classical schedule | flexible: improvement vs VWAP [bps] | "
              "flexible: improvement vs TWAP [bps] |"), "|---|---|---|---|---|"]
    for name, label in DATASETS.items():
        s = _load(results, f"real_data_{name}.json")
        lines.append(f"| {label}, H = {s['n_ahead']} ({s['test_start']}) | {_fixed_cell(s)} | {_spread_cell(s)} | "
                     f"{_flex_cell(s, 'vwap')} | {_flex_cell(s, 'twap')} |")
    return lines


def _pair(ref: dict, policy: str, baseline: str, objective: str, benchmark: str) -> dict:
    for row in ref["paired"]:
        if (row["policy"], row["baseline"], row["objective"], row["benchmark"]) == (policy, baseline, objective,
                                                                                    benchmark):
            return row
    raise KeyError(f"reference_crypto.json has no paired row {policy} vs {baseline} ({objective}, {benchmark})")


def _spread(ref: dict, policy: str, baseline: str) -> dict:
    for row in ref["spread"]:
        if (row["policy"], row["baseline"]) == (policy, baseline):
            return row
    raise KeyError(f"reference_crypto.json has no spread row {policy} vs {baseline}")


def _what(pair: dict) -> str:
    return "fixed, abs diff" if pair["objective"] == "track" else f"flexible vs {pair['benchmark'].upper()}"


def reference_table(results: Path) -> list[str]:
    """The reference package (lems 0.1.1) beside ours and the baselines on the same crypto test orders."""
    ref = _load(results, "reference_crypto.json")
    rows = {r["policy"]: r for r in ref["policies"]}
    lines = [("| policy | fixed: mean abs diff [bps] | fixed: std of diff [bps] | flexible: vs VWAP [bps] | "
             "flexible: vs TWAP [bps] |"), "|---|---|---|---|---|"]
    for name in ("ours", "ours_no_prior", "reference_shifted", "reference_published", "static_vwap", "twap",
                 "flexible_rule"):
        r = rows[name]
        lines.append(f"| {ref['labels'][name]} | {bps(r['fixed_mean_abs_bps'], False)} | "
                     f"{bps(r['fixed_std_diff_bps'], False)} | {bps(r['flex_vs_vwap_bps'])} | "
                     f"{bps(r['flex_vs_twap_bps'])} |")
    al, ttq = ref["alignment"]["test"], ref["time_to_quality"]
    not_significant = [f"{p['policy']} vs {p['baseline']} ({_what(p)}: {ci(p)})" for p in ref["paired"]
                       if not significant(p)]

    def reached(metric: str, name: str) -> str:
        seconds = ttq[metric][f"{name}_s"]
        return "not within the budget" if math.isnan(seconds) else f"{seconds:.0f} CPU s"

    def quality(metric: str, label: str) -> str:
        t = ttq[metric]
        return (f"its best validation {label} ({t['reference_best_ratio']:.3f} of the static curve's, after "
                f"{t['reference_s']:.0f} CPU s) is reached by ours in {reached(metric, 'ours')} and by ours "
                f"without the prior, from a uniform start, in {reached(metric, 'ours_no_prior')}")

    text = (
        f"Same {ref['test_windows']} test windows, {ref['budget_cpu_s'] / 60:.0f} CPU minutes of training per "
        "model, early stopping on the same validation windows with the best weights restored; the reference built "
        "its own windows (lookback 48, H 12) and was scored by our execution arithmetic. Its targets are ours: "
        f"volume-share correlation {al['share_corr']:.6f} (max abs diff {al['share_max_abs_diff']:.1e}), price "
        f"correlation {al['price_corr']:.6f}. Spread (std of diff) against the static curve: leak-free reference "
        f"{ci(_spread(ref, 'reference_shifted', 'static_vwap'), pct=True)}, ours "
        f"{ci(_spread(ref, 'ours', 'static_vwap'), pct=True)}; ours against the leak-free reference "
        f"{ci(_spread(ref, 'ours', 'reference_shifted'), pct=True)} (day-bootstrap 95 % CIs). Look-ahead, the "
        "published reference minus the leak-free one, flexible vs VWAP: "
        f"{ci(_pair(ref, 'reference_published', 'reference_shifted', 'beat', 'vwap'))} bps. Time to quality "
        f"against the leak-free reference: {quality('std_ratio', 'spread')}; "
        f"{quality('mean_abs_ratio', 'mean abs diff')}.")
    lines += ["", *wrap(text), "", *wrap("Not significant (paired 95 % CI contains 0): "
                                          + ("; ".join(not_significant) if not_significant else "none") + ".")]
    return lines


COST_SETS = (("costs_crypto_1h.csv", "BTCUSDT + ETHUSDT 1h, H = 12"), ("costs_crypto_1m.csv", "ALGO, DOT, LINK, LTC 1m, H = 60"))
COST_POLICIES = (("flexible_rule", "flexible rule"), ("model_free", "model trained frictionless"),
                 ("model_cost", "model trained for the size and costs"))


def _condition_label(condition: str) -> str:
    return "frictionless" if condition == "frictionless" else condition.replace("size_", "").replace("pct", " %")


def costs_table(results: Path) -> list[str]:
    """Flexible gain over TWAP net of costs per order size, from ``benchmarks/costs.py``'s committed CSVs."""
    import pandas as pd

    rows = ["| data | order size (of the horizon volume) | " + " | ".join(label for _, label in COST_POLICIES) + " |",
            "|---|---|" + "---|" * len(COST_POLICIES)]
    for name, label in COST_SETS:
        frame = pd.read_csv(result_path(results, name)).set_index(["condition", "policy"])["flex_vwap_imp"]
        for condition in dict.fromkeys(frame.index.get_level_values(0)):
            twap = frame[(condition, "twap")]
            cells = [bps(frame[(condition, p)] - twap) if (condition, p) in frame.index else "" for p, _ in COST_POLICIES]
            rows.append(f"| {label} | {_condition_label(condition)} | " + " | ".join(cells) + " |")
    return rows


def _ratio_cell(value: float, low: float, high: float) -> str:
    return f"{value:.3f} [{low:.3f}, {high:.3f}]"


def universe_table(results: Path) -> list[str]:
    """One model for the 5-minute universe and its ablations (``benchmarks/universe.py``): spread ratios on the
    held-out symbols' and the seen symbols' test period, the flexible gain over the rule, the paired ratio to
    ``base``."""
    record = _load(results, UNIVERSE_RESULT)
    rows = ["| variant | unseen: vs static curve | unseen: vs best classical | seen: vs best classical | "
            "unseen: flexible minus rule, buy / sell [bps] | unseen: paired vs base |", "|---|---|---|---|---|---|"]
    for run in record["records"]:
        unseen, seen = run["headline"]["unseen"], run["headline"]["seen"]
        static = next(r for r in unseen["spread"] if r["baseline"] == "static_vwap")
        best, seen_best = unseen["best"], seen["best"]
        flexible = {r["side"]: r for r in unseen["flexible"] if r["benchmark"] == "vwap"}
        flex = " / ".join(f"{bps(flexible[side]['mean_diff'])} [{bps(flexible[side]['ci_low'])}, "
                          f"{bps(flexible[side]['ci_high'])}]" for side in ("buy", "sell") if side in flexible)
        pair = record["paired"].get(run["variant"], {}).get("unseen")
        paired = "-" if pair is None else _ratio_cell(pair["ratio"], pair["ci_low"], pair["ci_high"])
        rows.append(f"| {run['variant']} ({run['steps']} steps) | "
                    f"{_ratio_cell(static['ratio'], static['ci_low'], static['ci_high'])} | "
                    f"{_ratio_cell(best['ratio'], best['ci_low'], best['ci_high'])} ({best['baseline']}) | "
                    f"{_ratio_cell(seen_best['ratio'], seen_best['ci_low'], seen_best['ci_high'])} "
                    f"({seen_best['baseline']}) | {flex} | {paired} |")
    return rows


def render(results: Path = RESULTS) -> str:
    """The whole README block, markers included."""
    lines = [
        BEGIN,
        "<!-- generated by benchmarks/render_readme.py from benchmarks/results/{real_data,reference_crypto,costs,universe}/: do not edit by hand -->",
        "",
        *wrap("Test splits never used for a choice; commands and full tables in "
              "[`benchmarks/results/`](benchmarks/results/). Fixed duration: VWAP orders over the whole horizon, "
              "mean abs(achieved / VWAP − 1) and the standard deviation of the signed difference (the spread). "
              "Flexible duration: mean improvement against the benchmark over min durations 1..H (positive = "
              "better), both sides pooled, then ours minus the flexible rule per side. Brackets: paired 95 % CI clustered by origin day (positive = ours better; n.s. = not "
              "significant). Spread ratio: our spread over the best classical schedule's (static curve or TWAP) "
              "with a day-bootstrap 95 % interval; blend = our schedule combined with its own volume forecast, the "
              "static curve and TWAP, weights fitted on the validation split (`lems.policies.blend`)."),
        "",
        *real_data_table(results),
        "",
        ("**The reference package (lems 0.1.1) on the same crypto orders** "
        "([`reference_crypto.md`](benchmarks/results/reference_crypto/reference_crypto.md)):"),
        "",
        *reference_table(results),
        "",
        ("**Net of costs** ([`costs_crypto_1h.md`](benchmarks/results/costs/costs_crypto_1h.md), "
         "[`costs_crypto_1m.md`](benchmarks/results/costs/costs_crypto_1m.md), with confidence intervals): flexible-duration "
         "gain over TWAP against VWAP [bps], square-root impact (coefficient 1, lookback volatility) and a 1 bp "
         "half-spread; order size as a fraction of the expected horizon volume."),
        "",
        *costs_table(results),
        "",
        *wrap("**One model for a universe** ([`ablation_5m_h12.md`](benchmarks/results/universe/ablation_5m_h12.md)): "
         "`lems train binance_5m_2024 --stream --holdout-symbols 0.2` (102 Binance pairs, 5-minute bars, H = 12; "
         "train to June 2024, validation July, test from August; 20 % of the symbols never trained or validated "
         "on), the same optimizer steps per variant, then `lems evaluate`. Targets: <= "
         f"{UNIVERSE_TARGETS['static_vwap']:.2f} of the static curve's spread and <= "
         f"{UNIVERSE_TARGETS['best']:.2f} of the best classical schedule's on the unseen symbols; paired: the "
         "variant's spread over base's on the same orders."),
        "",
        *universe_table(results),
        END,
    ]
    return "\n".join(lines)


def replace_block(text: str, block: str) -> str:
    """``text`` with its results block replaced by ``block``.

    Raises:
        ValueError: the markers are missing, repeated or out of order.
    """
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise ValueError(f"README must hold exactly one {BEGIN} ... {END} block")
    head, rest = text.split(BEGIN)
    return head + block + rest.split(END, 1)[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 when README.md is stale")
    parser.add_argument("--readme", type=Path, default=README)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    text = args.readme.read_text(encoding="utf-8")
    new = replace_block(text, render(args.results))
    if args.check:
        if new != text:
            print(f"{args.readme} results block is stale: run python -m benchmarks.render_readme", file=sys.stderr)
            return 1
        return 0
    args.readme.write_text(new, encoding="utf-8")
    print(f"updated {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
