"""One model for a whole market, and the levers that might bound its edge (issues 23 and 27).

Each variant is what a user runs: ``lems train <folder> --stream --holdout-symbols 0.2`` (one model on ~80 % of the
symbols, purged time split, the same optimizer steps for every variant) then ``lems evaluate`` (the seen symbols'
test period and the held-out symbols', scored chunk by chunk, at most ``windows.max_test_windows`` windows per group,
evenly thinned per symbol). The numbers are the library's own headline (``universe_headline.json``: the
fixed-duration spread ratio to every classical schedule and to the best one, chosen on validation, with day-bootstrap
intervals; the flexible improvement over the rule per side) and the cost of the run (process CPU seconds and peak
RSS of each command, time from the command to its first progress line). Variants are also compared with the first one
(``base``) on the same unseen orders: the paired spread ratio ``variant / base`` with a day-bootstrap interval.

Variants (flags added to ``lems train``; :data:`VARIANTS`): ``base`` (the defaults), ``day_context`` (lookback of
one day instead of four hours), ``no_share_loss`` (the volume forecast's auxiliary loss on the realised remaining
shares off), ``share_loss_x4``, ``no_tracking_loss`` (the expected-tracking-error term off: ``lem_loss`` and the share
loss only), ``cross_asset`` (the market channels, where the library has them), ``bars_60m`` (the same files
aggregated to hourly bars, H = 12), ``h48`` (H = 48 at 5 minutes), ``double_steps`` (twice the steps: training
length).

Usage (from the repository root)::

    python -m benchmarks.universe --variants base no_share_loss day_context --steps 300 --tag ablation

Writes ``benchmarks/results/universe/<tag>.md`` and ``.json``; the runs' folders go to ``--work``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from benchmarks.common import DEFAULT_DATA, command_line, cpu_seconds, results_dir, write_result
from lems.evaluation.stats import spread_ratios

RESULTS = results_dir("universe")

#: Variant name -> (flags added to ``lems train``, what it tests).
VARIANTS: dict[str, tuple[list[str], str]] = {
    "base": ([], "lems train's defaults (lookback 48 = 4 hours, H 12, share and tracking losses on)"),
    "day_context": (["--lookback", "288"], "context: one day of 5-minute bars instead of four hours"),
    "no_share_loss": (["--forecast-loss-weight", "0"], "the volume forecast's auxiliary share loss off"),
    "share_loss_x4": (["--forecast-loss-weight", "4"], "the auxiliary share loss weighted 4x"),
    "no_tracking_loss": (["--tracking-loss-weight", "0"], "objective: lem_loss and the share loss only"),
    "cross_asset": (["--cross-asset"], "the rest of the market's volume surprise and return as inputs"),
    "bars_60m": (["--resample-minutes", "60"], "the same files aggregated to hourly bars (H 12 = 12 hours)"),
    "h48": (["--n-ahead", "48"], "H 48 (four hours) at 5 minutes"),
    "double_steps": ([], "twice the optimizer steps (training length)"),
}
#: The split of the 5-minute universe (issue 23): train to June, validation July, test from August 2024.
SPLIT = ("--train-end", "2024-06-30", "--val-end", "2024-08-01")


class Run:
    """One command's cost: process CPU seconds, peak RSS, wall seconds, first progress line, its output."""

    def __init__(self, argv: list[str], log: Path) -> None:
        start = time.perf_counter()
        env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "jax"), "PYTHONUNBUFFERED": "1"}
        self.first_progress_s = None
        with open(log, "w", encoding="utf-8") as sink:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
            for line in proc.stdout:
                sink.write(line)
                if self.first_progress_s is None and line.startswith("epoch 1: step"):
                    self.first_progress_s = time.perf_counter() - start
            _, status, usage = os.wait4(proc.pid, 0)
        self.wall_s = time.perf_counter() - start
        self.cpu_s = usage.ru_utime + usage.ru_stime
        self.peak_rss_gb = usage.ru_maxrss * 1024 / 1e9  # ru_maxrss is in KiB on Linux
        self.returncode = os.waitstatus_to_exitcode(status)
        if self.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({self.returncode}); see {log}")


def lems_cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "lems", *args]


def run_variant(name: str, data: Path, work: Path, steps: int, seed: int, max_val_windows: int,
                max_test_windows: int) -> dict[str, Any]:
    """Train and evaluate one variant; its costs and headline."""
    flags, _ = VARIANTS[name]
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    n_steps = 2 * steps if name == "double_steps" else steps
    train = Run(lems_cli("train", str(data), "--stream", "--holdout-symbols", "0.2", *SPLIT, "--max-steps",
                         str(n_steps), "--max-val-windows", str(max_val_windows), "--seed", str(seed),
                         "--out", str(folder), *flags), folder / "train.log")
    evaluate = Run(lems_cli("evaluate", str(folder / "model.keras"), str(data), "--out", str(folder / "eval"),
                            "--max-test-windows", str(max_test_windows)), folder / "evaluate.log")
    history = pd.read_csv(folder / "history.csv")
    headline = json.loads((folder / "eval" / "universe_headline.json").read_text(encoding="utf-8"))
    return {"variant": name, "flags": " ".join(flags), "steps": n_steps,
            "train": {"cpu_s": train.cpu_s, "wall_s": train.wall_s, "peak_rss_gb": train.peak_rss_gb,
                      "first_progress_s": train.first_progress_s},
            "evaluate": {"cpu_s": evaluate.cpu_s, "wall_s": evaluate.wall_s, "peak_rss_gb": evaluate.peak_rss_gb},
            "validation": history.iloc[-1].to_dict(), "headline": headline, "folder": str(folder)}


def model_diffs(folder: Path, group: str) -> pd.DataFrame:
    """The model's fixed-duration VWAP orders of one symbol group (``seen``/``unseen``) of a variant's evaluation,
    keyed by asset and origin (windows of variants with another lookback are numbered differently)."""
    frame = pd.read_parquet(folder / "eval" / "backtest.parquet",
                            columns=["policy", "symbols", "window", "asset", "origin", "side", "target", "benchmark",
                                     "objective", "min_duration", "diff", "improvement_bps", "tracking_error_bps"])
    rows = frame[(frame["policy"] == "model") & (frame["symbols"] == group) & (frame["objective"] == "track")
                 & (frame["benchmark"] == "vwap")]
    return rows.assign(asset=rows["asset"].astype(str))


def paired_to_base(base: Path, other: Path, name: str, group: str) -> dict[str, float]:
    """Spread ratio ``variant / base`` on the orders both scored, day-bootstrap interval."""
    keys = ["asset", "origin", "side", "target"]
    left, right = model_diffs(other, group), model_diffs(base, group)
    common = left[keys].merge(right[keys], on=keys)
    parts = []
    for label, rows in ((name, left), ("base", right)):
        kept = rows.merge(common, on=keys)
        codes = kept.groupby(["asset", "origin"], sort=True).ngroup()
        parts.append(kept.assign(policy=label, window=codes.to_numpy()))
    frame = pd.concat(parts, ignore_index=True)
    frame["policy"] = pd.Categorical(frame["policy"], categories=[name, "base"])
    table = spread_ratios(frame, model=name, baselines=["base"])
    return table.iloc[0][["ratio", "ci_low", "ci_high"]].to_dict() | {"orders": int(len(common))}


def _group_row(record: dict[str, Any], group: str) -> dict[str, Any]:
    table = record["headline"].get(group)
    if table is None:
        return {}
    spread = {row["baseline"]: row for row in table["spread"]}
    best = table["best"]
    flexible = {(row["benchmark"], row["side"]): row for row in table["flexible"]}
    out = {"static": spread.get("static_vwap", {}).get("ratio"),
           "static_ci": (spread.get("static_vwap", {}).get("ci_low"), spread.get("static_vwap", {}).get("ci_high")),
           "best": best["ratio"], "best_ci": (best["ci_low"], best["ci_high"]), "best_name": best["baseline"],
           "model_spread_bps": best["model_spread_bps"]}
    for (benchmark, side), row in flexible.items():
        if benchmark == "vwap":
            out[f"flex_{side}"] = (row["mean_diff"], row["ci_low"], row["ci_high"])
    return out


def _ci(value, ci) -> str:
    return "n/a" if value is None else f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def report(records: list[dict[str, Any]], paired: dict[str, dict[str, dict]], args) -> list[str]:
    lines = [f"Data: `{args.data}` (5-minute bars); split train to 2024-06-30, validation July, test from 2024-08-01; "
             f"20 % of the symbols held out (never trained or validated on). {args.steps} optimizer steps per "
             f"variant (`double_steps`: {2 * args.steps}), batch and model of `lems train`'s defaults, seed "
             f"{args.seed}, validation {args.max_val_windows} windows. Test: at most {args.max_test_windows} "
             "windows per group, evenly thinned per symbol. Ratios are fixed-duration VWAP spreads (std of the "
             "signed diff) over the schedule's, 95 % day-bootstrap intervals; `best` is the classical schedule with "
             "the lowest spread on the second half of validation (named). Flexible: model - tuned rule [bps], "
             "clustered 95 % interval. CPU: process CPU seconds of the command (all threads); RSS: its peak.", ""]
    for group in ("unseen", "seen"):
        lines += [f"## {group} symbols, test period", "",
                  "| variant | vs static curve | vs best classical | best | model spread bps | flexible buy bps | "
                  "flexible sell bps | paired vs base |", "|---|---|---|---|---|---|---|---|"]
        for record in records:
            row = _group_row(record, group)
            if not row:
                continue
            flex = [f"{row[k][0]:+.2f} [{row[k][1]:+.2f}, {row[k][2]:+.2f}]" if k in row else "n/a"
                    for k in ("flex_buy", "flex_sell")]
            pair = paired.get(record["variant"], {}).get(group)
            pair_text = "-" if pair is None else f"{pair['ratio']:.3f} [{pair['ci_low']:.3f}, {pair['ci_high']:.3f}]"
            lines.append(f"| {record['variant']} | {_ci(row['static'], row['static_ci'])} | "
                         f"{_ci(row['best'], row['best_ci'])} | {row['best_name']} | {row['model_spread_bps']:.2f} | "
                         f"{flex[0]} | {flex[1]} | {pair_text} |")
        lines.append("")
    lines += ["## Cost of each run and validation", "",
              "| variant | flags | steps | train CPU s | train wall s | first progress s | train peak RSS GB | "
              "evaluate CPU s | evaluate peak RSS GB | val tracking error bps | val flexible improvement bps |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        t, e, v = r["train"], r["evaluate"], r["validation"]
        first = "n/a" if t["first_progress_s"] is None else f"{t['first_progress_s']:.0f}"
        lines.append(f"| {r['variant']} | `{r['flags']}` | {r['steps']} | {t['cpu_s']:.0f} | {t['wall_s']:.0f} | "
                     f"{first} | {t['peak_rss_gb']:.2f} | {e['cpu_s']:.0f} | {e['peak_rss_gb']:.2f} | "
                     f"{v.get('val_tracking_error_bps', float('nan')):.3f} | "
                     f"{v.get('val_flexible_improvement_bps', float('nan')):+.3f} |")
    lines += ["", "Variants: " + "; ".join(f"`{r['variant']}`: {VARIANTS[r['variant']][1]}" for r in records), ""]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA / "binance_5m_2024")
    parser.add_argument("--variants", nargs="+", default=["base"], choices=sorted(VARIANTS))
    parser.add_argument("--steps", type=int, default=300, help="optimizer steps per variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-val-windows", type=int, default=16384)
    parser.add_argument("--max-test-windows", type=int, default=16384, help="per symbol group")
    parser.add_argument("--work", type=Path, default=Path("/tmp/lems_universe"))
    parser.add_argument("--tag", default="universe")
    parser.add_argument("--reuse", action="store_true", help="read variants already run in --work")
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"no data at {args.data}: nothing to run", file=sys.stderr)
        return 0
    start_cpu = cpu_seconds()
    records = []
    for name in args.variants:
        record_path = args.work / name / "record.json"
        if args.reuse and record_path.is_file():
            records.append(json.loads(record_path.read_text(encoding="utf-8")))
            continue
        print(f"variant {name} ...", flush=True)
        record = run_variant(name, args.data, args.work, args.steps, args.seed, args.max_val_windows,
                             args.max_test_windows)
        record_path.write_text(json.dumps(record, indent=2, default=str), encoding="utf-8")
        records.append(record)
    paired: dict[str, dict[str, dict]] = {}
    base = next((Path(r["folder"]) for r in records if r["variant"] == "base"), None)
    for record in records:
        if base is None or record["variant"] == "base":
            continue
        paired[record["variant"]] = {group: paired_to_base(base, Path(record["folder"]), record["variant"], group)
                                     for group in ("unseen", "seen")}
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = cpu_seconds() - start_cpu + children.ru_utime + children.ru_stime
    command = command_line("universe", argv)
    lines = report(records, paired, args)
    md = write_result(RESULTS / f"{args.tag}.md", "One model for the 5-minute universe: headline and levers",
                      command, lines, cpu_s)
    (RESULTS / f"{args.tag}.json").write_text(json.dumps({"command": command, "records": records, "paired": paired},
                                                         indent=2, default=str), encoding="utf-8")
    print(md.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
