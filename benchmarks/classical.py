"""How strong are the classical fixed-duration schedules once tuned? TWAP, the static curve, the static tilt and the
dynamic VWAP (both fitted on validation) on every real data set, test split (issues 23 and 27).

The model's headline is a ratio to "the best classical schedule"; a desk builds the strongest one it can without a
model. This script measures, per data set, the fixed-duration VWAP tracking spread (std of the signed diff of the
fixed column's VWAP orders, both sides and targets [bps]) on the TEST split of:

* ``twap``, ``static_vwap`` (the static volume curve, 20-day mean per slot);
* ``static_tilt``: the curve reshaped per horizon step (:class:`lems.policies.StaticTilt`);
* ``dynamic_vwap``: the curve times a persistent volume deviation re-estimated at every bar
  (:class:`lems.policies.DynamicVWAP`, Białkowski–Darolles–Le Fol style), ``(rho, lambda)`` fitted.

The schedules are the library's (:func:`lems.policies.classical_schedules`): one fit per data set on the pooled
windows of all its symbols in the first half of the validation period (as a universe model is trained once), the
best schedule chosen on the second half (:func:`lems.policies.validation_parts`), as ``lems evaluate`` does.
Ratios to the static curve with a paired day-bootstrap 95 % interval (:func:`lems.evaluation.stats.spread_ratio`,
origin days resampled, 500 draws). The test split never chooses. No model is trained here: the model's own numbers are in ``real_data`` and the universe
results.

Usage (from the repository root)::

    python -m benchmarks.classical                     # every data set found under ../shared/data
    python -m benchmarks.classical --sets crypto_1h equities_1h

Writes ``benchmarks/results/classical/classical.md``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import (
    BAR_SETS,
    DEFAULT_DATA,
    BarSet,
    command_line,
    cpu_seconds,
    md_table,
    results_dir,
    set_windows,
    write_result,
)
from lems.evaluation.stats import fixed_vwap_diffs, origin_days, spread_ratio
from lems.policies import classical_schedules, validation_parts

RESULTS = results_dir("classical")
def spreads_of(policies: dict, windows) -> dict[str, np.ndarray]:
    """Signed fixed-duration VWAP diffs [bps] ``(N, 4)`` of each policy on ``windows``."""
    return {name: fixed_vwap_diffs(policy.allocate(windows), windows) for name, policy in policies.items()}


def run_set(data: Path, spec: BarSet, max_fit_windows: int) -> dict:
    """The library's classical schedules (:func:`lems.policies.classical_schedules`: the tuned ones fitted on the
    first half of the validation period, at most ``max_fit_windows`` evenly spaced windows of it), the best one chosen
    on the second half, the test windows scored chunk by chunk; the set's table row data."""
    start = cpu_seconds()
    val, test = set_windows(data, spec)
    _, choice = validation_parts(val)
    schedules = classical_schedules(evenly(val, 2 * max_fit_windows))  # fits on the first half of it
    choice_spread = {k: float(np.std(v, ddof=1)) for k, v in scored(schedules, choice).items()}
    diffs = scored(schedules, test)
    day = origin_days(test.origin, spec.tz)
    ratios = {k: spread_ratio(diffs[k], diffs["static_vwap"], day) for k in schedules}
    best = min(choice_spread, key=choice_spread.get)
    dynamic = schedules["dynamic_vwap"]
    return {"spec": spec, "symbols": len(set(np.asarray(test.asset))), "val_windows": len(val),
            "test_windows": len(test), "choice_spread": choice_spread, "ratios": ratios, "best": best,
            "rho": dynamic.rho, "level_weight": dynamic.level_weight, "cpu_s": cpu_seconds() - start}


def evenly(windows, at_most: int):
    """At most ``at_most`` evenly spaced windows of ``windows`` (all of them when fewer)."""
    if len(windows) <= at_most:
        return windows
    return windows.subset(np.linspace(0, len(windows) - 1, at_most).astype(int))


def scored(policies: dict, windows, chunk: int = 20_000) -> dict[str, np.ndarray]:
    """:func:`spreads_of` in chunks of ``chunk`` windows (the allocations of a chunk only are held)."""
    parts = [spreads_of(policies, windows.subset(np.arange(i, min(i + chunk, len(windows)))))
             for i in range(0, len(windows), chunk)]
    return {k: np.concatenate([p[k] for p in parts]) for k in policies}


def table(results: list[dict]) -> pd.DataFrame:
    rows = []
    for r in results:
        spec, ratios = r["spec"], r["ratios"]
        row = {"data (test from)": f"{spec.name}, H = {spec.n_ahead} ({spec.test_start})", "symbols": r["symbols"],
               "test windows": r["test_windows"]}
        row["static curve spread [bps]"] = f"{ratios['static_vwap']['policy_spread_bps']:.2f}"
        for name in ("twap", "static_tilt", "dynamic_vwap"):
            q = ratios[name]
            row[f"{name} / static"] = f"{q['ratio']:.3f} [{q['ci_low']:.3f}, {q['ci_high']:.3f}]"
        row["dynamic (rho, lambda)"] = f"{r['rho']:g}, {r['level_weight']:g}"
        row["best on validation (2nd half)"] = r["best"]
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the folder holding the data sets")
    p.add_argument("--sets", nargs="+", default=list(BAR_SETS), choices=list(BAR_SETS))
    p.add_argument("--max-fit-windows", type=int, default=20_000,
                   help="at most this many windows of the fitting half, evenly spaced, for the tilt and dynamic VWAP")
    args = p.parse_args(argv)
    results = []
    for name in args.sets:
        spec = BAR_SETS[name]
        if not (args.data / spec.folder).is_dir():
            print(f"{name}: no data under {args.data / spec.folder}, skipped")
            continue
        t0 = time.time()
        results.append(run_set(args.data, spec, args.max_fit_windows))
        r = results[-1]
        print(f"{name}: {r['test_windows']} test windows, {r['cpu_s']:.0f} CPU s ({time.time() - t0:.0f} s wall); "
              + ", ".join(f"{k} {v['ratio']:.3f}" for k, v in r["ratios"].items()), flush=True)
    body = [("Test split; spread = std of the signed fixed-duration VWAP diff [bps] (both sides and targets); "
             "ratios to the static curve on the same orders with day-bootstrap 95 % intervals; `static_tilt` and "
             "`dynamic_vwap` fitted on the pooled windows of the first half of each set's validation period; best = "
             "lowest spread on the second half."),
            "", md_table(table(results)), ""]
    out = write_result(RESULTS / "classical.md", "The tuned classical schedules on real data (test split)",
                       command_line("classical", argv), body)
    print(out)


if __name__ == "__main__":
    main()
