"""How much of the model's flexible gain a better-tuned classical rule also gets (no training, a few minutes).

The real-data reports compare the model's flexible (min-duration) columns with ``FlexibleRule(threshold=0)``.
The model's flexible columns START from a soft version of that rule at ``RULE_THRESHOLD`` (0.1 lookback
volatilities, ``lems.layers.decoder``), and on some sets validation keeps that start. This script asks whether
the classical rule alone, with its threshold chosen honestly, closes the gap:

* ``rule_0``: ``FlexibleRule(0)``, the reports' baseline;
* ``rule_prior``: ``FlexibleRule(RULE_THRESHOLD)``, the rule at the prior's initial threshold;
* ``rule_tuned``: ``FlexibleRule(t)`` with ``t`` from a grid chosen on the validation windows (every 4th
  origin, as ``real_data.py`` selects epochs) by the mean flexible improvement over sides, benchmarks, targets
  and min durations;
* ``rule_tuned_decay``: the same with the threshold shrinking like the square root of the time left,
  ``FlexibleRule(t, decay=RULE_DECAY)`` (the shape of the model's rule prior), ``t`` tuned the same way.

Per test set and side (vs VWAP and TWAP): the rules' mean improvement [bps], the paired difference to ``rule_0``
with a 95 % CI clustered by origin day, and the model's mean from the committed ``real_data_<set>.json``
(its paired interval against ``rule_0`` is there too; the model's per-order outcomes are not committed, so the
model minus ``rule_tuned`` is a difference of means on the same orders, without an interval).

Usage (from the repository root): ``python -m benchmarks.rule_thresholds [--dataset crypto ...]``; writes
``benchmarks/results/rule_thresholds/rule_thresholds.md``. Needs ``../shared/data``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import pandas as pd

from benchmarks.common import (
    DEFAULT_DATA,
    command_line,
    md_table,
    provenance,
    results_dir,
    thin,
)
from benchmarks.real_data import SETUPS, build_splits, data_files
from lems.evaluation.backtest import backtest
from lems.evaluation.stats import paired_comparison
from lems.layers.decoder import RULE_DECAY, RULE_THRESHOLD
from lems.policies import FlexibleRule

RESULTS = results_dir("rule_thresholds")

#: Thresholds tried on validation [lookback volatilities].
GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0)
VAL_STRIDE = 4


def flexible_mean(frame: pd.DataFrame) -> pd.Series:
    """Mean flexible improvement [bps] per policy (all sides, benchmarks, targets, min durations)."""
    flex = frame[frame["objective"] == "beat"]
    return flex.groupby("policy", observed=True)["improvement_bps"].mean()


def run(name: str, data: Path) -> tuple[pd.DataFrame, dict]:

    setup = SETUPS[name]
    _, val_set, test_set = build_splits(data_files(data, setup), setup, setup.lookback)
    candidates = {f"t={t:g}": FlexibleRule(t) for t in GRID}
    candidates.update({f"decay t={t:g}": FlexibleRule(t, decay=RULE_DECAY) for t in GRID})
    val_scores = flexible_mean(backtest(candidates, thin(val_set, VAL_STRIDE)))
    constant = val_scores[[k for k in val_scores.index if not k.startswith("decay")]]
    decayed = val_scores[[k for k in val_scores.index if k.startswith("decay")]]
    tuned = float(constant.idxmax().removeprefix("t="))
    tuned_decay = float(decayed.idxmax().removeprefix("decay t="))
    policies = {"rule_0": FlexibleRule(0.0), "rule_prior": FlexibleRule(RULE_THRESHOLD),
                "rule_tuned": FlexibleRule(tuned), "rule_tuned_decay": FlexibleRule(tuned_decay, decay=RULE_DECAY)}
    test = backtest(policies, test_set)
    test = test[test["objective"] == "beat"]
    means = test.groupby(["benchmark", "side", "policy"], observed=True)["improvement_bps"].mean().unstack("policy")
    rows = []
    model = json.loads((RESULTS / f"real_data_{name}.json").read_text(encoding="utf-8"))
    for rule in ("rule_prior", "rule_tuned", "rule_tuned_decay"):
        paired = paired_comparison(test, rule, "rule_0", by=("benchmark", "side"), cluster="day")
        for _, r in paired[paired["objective"] == "beat"].iterrows():
            benchmark, side = str(r["benchmark"]), str(r["side"])
            theirs = model["flexible_vs_rule_by_side"][benchmark][side]
            rows.append({"data": name, "benchmark": benchmark, "side": side, "rule": rule,
                         "rule_mean": means.loc[(benchmark, side), rule],
                         "rule_minus_rule_0": r["mean_diff"], "ci_low": r["ci_low"], "ci_high": r["ci_high"],
                         "model_mean": theirs["model"], "model_minus_rule_0": theirs["mean_diff"],
                         "model_minus_this_rule": theirs["model"] - means.loc[(benchmark, side), rule]})
    return pd.DataFrame(rows), {"data": name, "tuned_threshold": tuned, "tuned_threshold_decay": tuned_decay,
                                **{k: round(float(v), 3) for k, v in val_scores.items()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", action="append", choices=list(SETUPS), default=None)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = p.parse_args(argv)
    start = time.perf_counter()
    tables, choices = [], []
    for name in args.dataset or list(SETUPS):
        table, choice = run(name, args.data)
        tables.append(table)
        choices.append(choice)
        print(md_table(table), flush=True)
    lines = ["# Is the model's flexible gain a better rule threshold?", "", __doc__.split("\n\n", 1)[1].split(
        "Usage")[0].strip(), "",
             "## Thresholds on validation (mean flexible improvement [bps]; the highest is `rule_tuned`)", "",
             md_table(pd.DataFrame(choices)), "",
             "## Test, per benchmark and side [bps]", "", md_table(pd.concat(tables, ignore_index=True)), "",
             f"{time.perf_counter() - start:.0f} s wall.", "", *provenance(command_line("rule_thresholds", argv)), ""]
    out = RESULTS / "rule_thresholds.md"
    out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
