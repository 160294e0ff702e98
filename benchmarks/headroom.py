"""What bounds fixed-duration VWAP tracking? The exact decomposition of the diff, the share-forecast R² per step and
the ladder of non-causal share forecasts, per schedule, on the test split of real data (issue 27, deliverable 4).

For the fixed-duration VWAP quantity order (``--side``, default buy) of every test window, schedule ``x``, realised
volume shares ``w`` and price deviations ``d = p / VWAP - 1``, the diff is exactly ``sum_s (x_s - w_s) d_s``
(:mod:`lems.evaluation.decomposition`). Per data set and schedule (TWAP, the static curve, the static tilt, the
dynamic VWAP and, with ``--model``, a saved LargeExecutionModel):

1. the decomposition summary: spread (std of the diff, ddof 1) [bps] and its ratio to the static curve's, share-error
   RMS [fraction of the order per bar], price-deviation dispersion [bps], the effective correlation (the covariance
   term: ``rms diff = H * share RMS * dispersion * correlation``), bias [bps];
2. per horizon step: share-error RMS [fraction of the order], the step's fraction of the diff's variance
   (``cov(c_s, diff) / var(diff)``, sums to 1) and the out-of-sample R² of the schedule's implied share of the
   remaining volume (:func:`lems.evaluation.decomposition.share_r2`) against the static curve's (0: as good as the
   static curve) and against the hindsight mean of the scored windows;
3. the ladder: rung ``k = 0 .. H`` knows the realised shares of the next ``k`` bars (rung 0 is the static curve, rung
   ``H`` tracks exactly); ``spread_vs_static`` = rung spread / static curve spread, so ``1 - spread_vs_static`` is
   the share of the static curve's spread a ``k``-bar perfect forecast removes (both rung definitions,
   :func:`lems.evaluation.decomposition.ladder_schedule`'s ``mass``).

Splits and horizons are those of ``benchmarks/classical.py`` (``tests/test_headroom_benchmark.py`` checks it). The
tuned schedules are :func:`lems.policies.classical_schedules` of the validation windows (fitted on the first half of
the validation period, as ``lems evaluate`` does; at most ``2 * --max-fit-windows`` evenly spaced validation
windows). The classical schedules trade the same ``x`` on both sides. The R² of a causal schedule's implied forecast
is its forecast at each decision (the dynamic VWAP's ``shares``, unclipped at ``max_rate = 1``).

Usage (from the repository root)::

    python -m benchmarks.headroom --sets crypto_1h binance_5m_2024
    python -m benchmarks.headroom --sets crypto_1h --model runs/crypto_1h.keras

Writes ``benchmarks/results/headroom/<set>.md`` and ``<set>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np
import pandas as pd

from benchmarks.common import (
    BAR_SETS,
    DEFAULT_DATA,
    BarSet,
    command_line,
    cpu_seconds,
    md_table,
    provenance,
    results_dir,
    set_windows,
    span,
)
from lems.evaluation.decomposition import (
    TrackingInputs,
    ladder,
    share_r2,
    static_shares,
    tracking_decomposition,
    tracking_inputs,
)
from lems.policies import ModelPolicy, classical_schedules

RESULTS = results_dir("headroom")
def chunked_inputs(policy, windows, side: str = "buy", chunk: int = 20_000) -> TrackingInputs:
    """:func:`tracking_inputs` of ``policy`` in chunks of ``chunk`` windows (one chunk's allocations held)."""
    parts = [tracking_inputs(policy, windows.subset(np.arange(i, min(i + chunk, len(windows)))), side=side)
             for i in range(0, len(windows), chunk)]
    return TrackingInputs(*(np.concatenate(a) for a in zip(*parts)))


def headroom(policies: dict, windows, side: str = "buy", n_days: int = 20, chunk: int = 20_000) -> dict:
    """The numbers of one data set (module docstring): DataFrames ``summary`` (one row per schedule),
    ``share_rms``, ``variance_fraction`` (step x schedule), ``r2_vs_static``, ``r2_vs_mean`` (step ``0 .. H-2`` x
    schedule) and ``ladder`` (one row per rung). ``policies`` must hold ``static_vwap``."""
    inputs = {name: chunked_inputs(p, windows, side, chunk) for name, p in policies.items()}
    w, d = inputs["static_vwap"].w, inputs["static_vwap"].d
    curve = static_shares(windows, n_days)
    parts = {name: tracking_decomposition(i.x, w, d) for name, i in inputs.items()}
    static = parts["static_vwap"].spread
    summary = pd.DataFrame({n: {**p.summary(), "spread_vs_static": p.spread / static} for n, p in parts.items()}).T
    steps = {n: p.per_step() for n, p in parts.items()}
    out = {"summary": summary.rename_axis("schedule")}
    for column in ("share_rms", "variance_fraction"):
        out[column] = pd.DataFrame({n: s[column] for n, s in steps.items()}).rename_axis("step")
    out["r2_vs_static"] = pd.DataFrame({n: share_r2(i.x, w, curve) for n, i in inputs.items()}).rename_axis("step")
    out["r2_vs_mean"] = pd.DataFrame({n: share_r2(i.x, w) for n, i in inputs.items()}).rename_axis("step")
    rungs = ladder(curve, w, d)
    rungs["removable"] = 1.0 - rungs["spread_vs_static"]
    rungs["spread_vs_static (static mass)"] = ladder(curve, w, d, mass="static")["spread_vs_static"]
    out["ladder"] = rungs.set_index("k")
    out["static_curve_gap"] = float(np.max(np.abs(inputs["static_vwap"].x - curve)))  # x of StaticVWAP vs the curve
    return out


def load_model(path: Path):
    """A saved ``.keras`` LargeExecutionModel as a :class:`lems.policies.ModelPolicy` (``lookback``, ``n_ahead``)."""
    import keras

    import lems.models  # noqa: F401  (registers LargeExecutionModel for loading)

    model = keras.models.load_model(path, compile=False)
    return ModelPolicy(model, batch_size=2048, name="model"), int(model.lookback), int(model.n_ahead)


def run_set(data: Path, spec: BarSet, args, argv) -> tuple[str, str]:
    """Fit and score one set: the text of its ``.md`` and ``.json`` (written by :func:`main` once every set is
    scored, so that the provenance's commit is read before any result file changes)."""
    start = cpu_seconds()
    val, test = set_windows(data, spec)
    step = max(1, -(-len(val) // (2 * args.max_fit_windows)))  # ceil: at most 2 * max_fit_windows
    policies = dict(classical_schedules(val.subset(np.arange(0, len(val), step)) if step > 1 else val))
    dyn = policies["dynamic_vwap"]
    if args.model is not None:
        policies["model"], lookback, n_ahead = load_model(args.model)
        if (lookback, n_ahead) != (spec.lookback, spec.n_ahead):
            raise SystemExit(f"{args.model}: lookback {lookback}, H {n_ahead}; {spec.name} needs {spec.lookback}, "
                             f"{spec.n_ahead}")
    del val
    res = headroom(policies, test, side=args.side)
    cpu_s = cpu_seconds() - start
    symbols = sorted(set(np.asarray(test.asset)))
    meta = {"set": asdict(spec), "side": args.side, "test_windows": len(test), "test_span": span(test),
            "symbols": symbols, "dynamic_vwap": {"rho": dyn.rho, "level_weight": dyn.level_weight},
            "fit_windows_step": step, "static_curve_gap": res["static_curve_gap"], "cpu_seconds": cpu_s}
    command = command_line("headroom", argv)
    head = provenance(command, cpu_s)
    subset = f"1 file in {spec.symbol_step} of the folder in sorted order, " if spec.symbol_step > 1 else ""
    lines = [f"# What bounds fixed-duration VWAP tracking: {spec.name}, H = {spec.n_ahead}, test split", "", *head, "",
             (f"Test windows: {len(test)} ({span(test)}), {len(symbols)} symbols ({subset}origin stride "
             f"{spec.stride}); {args.side} quantity order, fixed duration. Dynamic VWAP fitted (rho, lambda) = "
             f"({dyn.rho:g}, {dyn.level_weight:g}) on the first half of validation (from {spec.val_start}, 1 window "
             f"in {step}). Diffs and spreads in bps, shares in fractions of the order."), "",
             "## 1. Decomposition summary", "",
             ("`spread_vs_static`: spread over the static curve's; `effective_correlation`: the covariance term "
             "(`rms_diff = H * share_rms * price_dispersion * effective_correlation`)."), "",
             md_table(res["summary"].drop(columns="n_windows"), 4), "",
             "## 2. Per horizon step", "", "Share-error RMS per step [fraction of the order]:", "",
             md_table(res["share_rms"], 4), "",
             "Fraction of the diff's variance per step (`cov(c_s, diff) / var(diff)`, sums to 1):", "",
             md_table(res["variance_fraction"], 3), "",
             ("Out-of-sample R² of the implied share of the remaining volume, against the static curve (0 = as good "
             "as the static curve; the last step has none):"), "", md_table(res["r2_vs_static"], 4), "",
             "The same R² against the hindsight mean of the scored windows' remaining shares:", "",
             md_table(res["r2_vs_mean"], 4), "",
             "## 3. Ladder of non-causal share forecasts", "",
             ("Rung k knows the realised shares of the next k bars (realised mass; last column: the static-mass "
             "definition). `removable` = 1 - `spread_vs_static`: the share of the static curve's spread a k-bar "
             "perfect forecast removes."), "",
             md_table(res["ladder"].drop(columns=["n_windows", "mean_correlation"]), 4), ""]
    tables = {k: json.loads(v.to_json(orient="index")) for k, v in res.items() if isinstance(v, pd.DataFrame)}
    s = res["summary"]["spread_vs_static"]
    print(f"{spec.name}: {len(test)} windows, {cpu_s:.0f} CPU s; spread / static: "
          + ", ".join(f"{k} {v:.3f}" for k, v in s.items()), flush=True)
    return "\n".join(lines), json.dumps({"provenance": head, **meta, **tables}, indent=1) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the folder holding the data sets")
    p.add_argument("--sets", nargs="+", default=["crypto_1h", "binance_5m_2024"], choices=list(BAR_SETS))
    p.add_argument("--model", type=Path, default=None, help="a saved .keras LargeExecutionModel to score too")
    p.add_argument("--side", default="buy", choices=("buy", "sell"), help="the side of the quantity order scored")
    p.add_argument("--max-fit-windows", type=int, default=20_000,
                   help="about this many windows of the fitting half of validation, evenly spaced")
    args = p.parse_args(argv)
    texts = {}
    for name in args.sets:
        if not (args.data / BAR_SETS[name].folder).is_dir():
            print(f"{name}: no data under {args.data / BAR_SETS[name].folder}, skipped")
            continue
        texts[name] = run_set(args.data, BAR_SETS[name], args, argv)
    for name, (md, js) in texts.items():
        (RESULTS / f"{name}.md").write_text(md)
        (RESULTS / f"{name}.json").write_text(js)
        print(RESULTS / f"{name}.md")


if __name__ == "__main__":
    main()
