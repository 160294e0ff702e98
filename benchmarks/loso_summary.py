"""Leave-one-symbol-out table from the committed ``real_data_<set>_holdout_<SYMBOL>.json`` files.

Each file is written by ``benchmarks/real_data.py --dataset <set> --holdout <SYMBOL>``: a model trained and
early-stopped on the other symbols of the set only, tested on the held-out symbol's test period. This script only
reads those files (no training) and writes ``benchmarks/results/loso_summary/leave_one_symbol_out.md``.

Usage (from the repository root): ``python -m benchmarks.loso_summary``
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from benchmarks.common import RESULTS, results_dir

TARGET = 0.70


def row(path: Path) -> str:
    """One table row: the held-out symbol's fixed-duration tracking and flexible gains."""
    s = json.loads(path.read_text(encoding="utf-8"))
    data, symbol = path.stem.removeprefix("real_data_").split("_holdout_")
    fx, spread = s["fixed"], s.get("spread") or {}
    reduction = 1 - fx["model"]["mean_abs_bps"] / fx["static_vwap"]["mean_abs_bps"]
    paired = s["fixed_paired"]["static_vwap"]

    def ratio(who: str) -> str:
        r = spread.get(who)
        return "" if r is None else f"{r['ratio']:.2f} [{r['ci_low']:.2f}, {r['ci_high']:.2f}]"

    def interval(p: dict) -> str:
        return f"{p['mean_diff']:+.2f} [{p['ci_low']:+.2f}, {p['ci_high']:+.2f}]"

    def flex(benchmark: str) -> str:
        text = (f"{s['flexible'][benchmark]['model']:+.2f} vs {s['flexible'][benchmark]['flexible_rule']:+.2f} "
                f"({interval(s['flexible_vs_rule'][benchmark])})")
        sides = s.get("flexible_vs_rule_by_side", {}).get(benchmark)
        if sides:
            text += "; buy " + interval(sides["buy"]) + ", sell " + interval(sides["sell"])
        return text

    return (f"| {data} | {symbol} | {fx['model']['mean_abs_bps']:.2f} vs {fx['static_vwap']['mean_abs_bps']:.2f} "
            f"({-reduction:+.1%}; paired {paired['mean_diff']:+.2f} [{paired['ci_low']:+.2f}, {paired['ci_high']:+.2f}]) | "
            f"{ratio('model')} | {ratio('model_blend')} | {spread.get('best_classical', '')} | {flex('vwap')} | "
            f"{flex('twap')} |")


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args(argv)
    files = sorted((RESULTS / "real_data").glob("real_data_*_holdout_*.json"))
    if not files:
        print("no real_data_*_holdout_*.json in benchmarks/results/real_data: run real_data.py --holdout first", file=sys.stderr)
        return 1
    lines = [
        "# Leave one symbol out: a universal model on symbols it never saw",
        "",
        "Each row: `python -m benchmarks.real_data --dataset <data> --holdout <symbol> --minutes 6 --seed 0`: one model "
        "trained and early-stopped on the OTHER symbols of the data set (their train and validation periods), then "
        "tested on the held-out symbol's test period (the same split dates as `real_data_<data>.md`). Details, "
        "budgets and every table: `real_data_<data>_holdout_<symbol>.md`. This page is written by "
        "`python -m benchmarks.loso_summary` from the committed JSON files.",
        "",
        "Fixed duration: VWAP tracking mean |diff| [bps] of the model vs the static curve (relative change, paired "
        "95 % CI of static - model clustered by day); spread ratio = the model's (or the validation-fitted blend's) "
        f"std of the signed diff over the best classical schedule's, day-bootstrap 95 % interval (target <= {TARGET}). "
        "Flexible: mean improvement [bps] over min durations 1..H, model vs the classical flexible rule (paired "
        "model - rule, 95 % CI), then model - rule per side.",
        "",
        "| data | held out | fixed: mean abs diff, model vs static [bps] | spread ratio, model | spread ratio, blend | "
        "best classical | flexible vs VWAP: model vs rule | flexible vs TWAP: model vs rule |",
        "|---|---|---|---|---|---|---|---|",
        *[row(p) for p in files],
        "",
    ]
    out = results_dir("loso_summary") / "leave_one_symbol_out.md"
    out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
