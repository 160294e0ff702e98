"""The reference package (lems 0.1.1) vs ours on hourly crypto, at equal training budget.

One run answers three questions on BTCUSDT + ETHUSDT 1h (the split of ``real_data.py``: train through
2020-06, validate 2020-07..2020-12, test 2021):

1. **Look-ahead.** The reference decides bar ``t0 + s`` from ``X`` position ``lookback + s``, i.e. it sees the
   bar it trades in (EXECUTION.md §3). It is trained twice with the same budget and seed: ``published`` (its
   own ``full_generate`` windows) and ``shifted`` (``X`` moved one bar later, so decision ``s`` sees bars
   ``<= t0 + s - 1`` only). Both are scored on the same test orders by OUR :mod:`lems.execution` (through
   :func:`lems.backtest.backtest` and :class:`lems.baselines.ScheduleTable`); the difference is look-ahead.
2. **Quality at equal budget.** Our model (``real_data.py``'s crypto configuration) trained for the same
   wall-clock budget, beside the reference (both rows) and the classical baselines, on every test order.
3. **Time to quality** (issue 5): the training time our model needs to reach the leak-free reference's best
   out-of-sample (test) fixed-duration VWAP tracking error, as a ratio to the reference's own time to it.
   Both curves are the test tracking error of every 3rd test window at checkpoints; evaluation time is off
   both training clocks; compilation is on both.

The reference runs as a black box in its own virtual environment (``/work/refvenv``, ``pip install
lems==0.1.1``; override with ``LEMS_REF_PYTHON``) through ``benchmarks/reference_runner.py --curve-budget``.
Its input panels hold the actual bars of both assets (missing hours dropped, as our windows do); its
``vwap = notional / volume`` is undefined on zero-volume bars (it produces NaN features there), so those bars
get a volume of 1e-8 and the last bar VWAP as price in the reference's panels only. Targets and scores always
come from our own windows of the raw data.

Usage (from the repository root; data never copied)::

    python benchmarks/reference_crypto.py --budget 900 [--reference-npz /tmp/curve.npz]

Writes ``benchmarks/results/reference_crypto.md`` and ``reference_crypto_curve.csv``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import numpy as np
import pandas as pd

import real_data  # noqa: E402  (benchmarks/real_data.py: splits, our training, tables)
from reference_leak import align  # noqa: E402
from lems.execution import seed_outcome  # noqa: E402

REF_PYTHON = os.environ.get("LEMS_REF_PYTHON", "/work/refvenv/bin/python")
REF_LOOKBACK = 120
VARIANTS = {"shifted": "reference, shifted one bar (leak-free)", "published": "reference, as published (sees bar s)"}


# --------------------------------------------------------------------------------------------------------
# The reference's inputs and run
# --------------------------------------------------------------------------------------------------------
def reference_panels(files: list[Path], path: Path, split: str) -> None:
    """Wide volume / notional panels of the actual bars (see the module docstring) as the runner's ``.npz``."""
    vols, nots = {}, {}
    for f in files:
        frame = pd.read_csv(f, usecols=["timestamp", "volume", "quote_volume"])
        frame = frame.set_index(pd.to_datetime(frame["timestamp"], utc=True))
        price = (frame["quote_volume"] / frame["volume"].where(frame["volume"] > 0)).ffill().bfill()
        zero = frame["volume"] <= 0
        frame.loc[zero, "volume"] = 1e-8
        frame.loc[zero, "quote_volume"] = 1e-8 * price[zero]
        vols[f.stem], nots[f.stem] = frame["volume"], frame["quote_volume"]
    vol, notional = pd.DataFrame(vols).dropna(), pd.DataFrame(nots).dropna()
    np.savez(path, index_ns=vol.index.as_unit("ns").asi8, columns=np.asarray(vol.columns, dtype=str),
             volumes=vol.to_numpy(), notionals=notional.to_numpy(), lookback=REF_LOOKBACK, n_ahead=12,
             split_ns=pd.Timestamp(split, tz="UTC").value)


def run_reference(files: list[Path], setup, budget: float, every: float, seed: int, out: Path) -> None:
    """Train the reference (both variants) through its runner; results in ``out`` (``.npz``)."""
    with tempfile.TemporaryDirectory(prefix="lems_refcrypto_") as tmp:
        panels = Path(tmp) / "panels.npz"
        reference_panels(files, panels, setup.train_end)
        cmd = [REF_PYTHON, str(HERE / "reference_runner.py"), "--panels", str(panels), "--out", str(out),
               "--curve-budget", str(budget), "--eval-every", str(every), "--seed", str(seed)]
        proc = subprocess.run(cmd, cwd=tmp, text=True, check=False)
        if proc.returncode != 0:
            raise SystemExit("reference runner failed (see its output above)")


# --------------------------------------------------------------------------------------------------------
# Matching the reference's rows to our windows
# --------------------------------------------------------------------------------------------------------
def match_rows(ref: dict, windows, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, float]:
    """Reference eval rows of ``windows`` (same asset, origin): ``(ref_rows, window_rows, offset, corr)``
    (see :func:`reference_leak.align`)."""
    our_dates = pd.DatetimeIndex(windows.origin).tz_convert("UTC").as_unit("ns").asi8
    return align(ref["dates_ns"], ref["y_eval"], our_dates, y, 3_600_000_000_000, ref_assets=ref["assets"],
                 our_assets=windows.asset)


def fixed_vwap_error(fixed: np.ndarray, y: np.ndarray) -> float:
    """Mean |diff| [bps] of the fixed-duration VWAP orders (both sides and targets).

    Args:
        fixed: ``(N, H, 4, 2)`` allocations of the fixed column (min duration H).
        y: ``(N, H, 2)`` compact targets of the same windows.
    """
    n, horizon = fixed.shape[:2]
    full = np.broadcast_to(fixed[:, :, None], (n, horizon, horizon + 1, 4, 2)).astype(np.float64)
    diff = np.asarray(seed_outcome(full, y).diff)[:, horizon, [0, 2], :]
    return float(np.abs(diff).mean() * 1e4)


# --------------------------------------------------------------------------------------------------------
# Our curve
# --------------------------------------------------------------------------------------------------------
def curve_callback(windows, y: np.ndarray):
    """Keras callback: before training and at every epoch end, the fixed-duration test tracking error of
    ``windows`` and the training time so far (evaluation time excluded)."""
    import keras

    from lems.baselines import ModelPolicy

    class Curve(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start, self.paused, self.points = time.perf_counter(), 0.0, []
            self.on_epoch_end(-1)  # the untrained model: the static curve for VWAP orders, by construction

        def on_epoch_end(self, epoch, logs=None):
            pause = time.perf_counter()
            trained = pause - self.start - self.paused
            alloc = ModelPolicy(self.model).allocate(windows)
            self.points.append((trained, fixed_vwap_error(alloc[:, :, -1], y)))
            self.paused += time.perf_counter() - pause

    return Curve()


def time_to_quality(ref_curve: pd.DataFrame, our_curve: pd.DataFrame) -> dict[str, float]:
    """Seconds of training for each to reach the leak-free reference's best test tracking error."""
    best = ref_curve.loc[ref_curve["test_te_bps"].idxmin()]
    reached = our_curve[our_curve["test_te_bps"] <= best["test_te_bps"]]
    ours = float(reached["train_s"].iloc[0]) if len(reached) else float("nan")
    return {"reference_best_bps": float(best["test_te_bps"]), "reference_s": float(best["train_s"]),
            "ours_s": ours, "ratio": ours / float(best["train_s"])}


# --------------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data", type=Path, default=real_data.DEFAULT_DATA)
    p.add_argument("--budget", type=float, default=900.0, help="training seconds per model (each)")
    p.add_argument("--eval-every", type=float, default=60.0, help="reference checkpoint period [s]")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--reference-npz", type=Path, default=None,
                   help="reuse a finished reference run (the runner's output); default: run it now")
    p.add_argument("--ours-budget", type=float, default=None, help="our training seconds (default: --budget)")
    p.add_argument("--learning-rate", type=float, default=5e-3)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--out", type=Path, default=real_data.RESULTS)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    command = "python benchmarks/reference_crypto.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    t0 = time.perf_counter()
    setup = real_data.SETUPS["crypto"]
    files = real_data.data_files(args.data, setup)
    npz = args.reference_npz or Path(tempfile.mkdtemp(prefix="lems_ref_")) / "curve.npz"
    if args.reference_npz is None:
        run_reference(files, setup, args.budget, args.eval_every, args.seed, npz)
    with np.load(npz) as d:
        ref = {k: d[k] for k in d.files}

    from lems.backtest import backtest, seed_targets
    from lems.baselines import TWAP, FlexibleRule, ModelPolicy, ScheduleTable, StaticVWAP

    train_set, val_set, test_set = real_data.build_splits(files, setup, setup.lookback)
    y_test = seed_targets(test_set)
    ref_rows, win_rows, offset, corr = match_rows(ref, test_set, y_test)
    if len(np.unique(win_rows)) != len(test_set):
        print(f"note: {len(test_set) - len(np.unique(win_rows))} test windows have no reference row; scored "
              "on the common windows only", flush=True)
    test_set = test_set.subset(np.sort(win_rows))
    y_test = seed_targets(test_set)
    ref_rows, win_rows, offset, corr = match_rows(ref, test_set, y_test)

    # Learning curves on the checkpoint rows (every 3rd reference eval row) that are test windows.
    window_of = np.full(len(ref["assets"]), -1)
    window_of[ref_rows] = win_rows
    in_test = window_of[ref["ckpt_rows"]] >= 0
    curve_windows = test_set.subset(window_of[ref["ckpt_rows"]][in_test])
    y_curve = seed_targets(curve_windows)
    rows = []
    for name in VARIANTS:
        for t, fixed in zip(ref[f"ckpt_times_{name}"], ref[f"ckpt_fixed_{name}"]):
            rows.append({"model": f"reference_{name}", "train_s": float(t),
                         "test_te_bps": fixed_vwap_error(fixed[in_test], y_curve)})
    for name, policy in (("static_vwap", StaticVWAP()), ("twap", TWAP())):
        rows.append({"model": name, "train_s": 0.0,
                     "test_te_bps": fixed_vwap_error(policy.allocate(curve_windows)[:, :, -1], y_curve)})

    reference_policies = {}
    for name in VARIANTS:
        alloc = ref[f"alloc_{name}"][ref_rows].astype(np.float64)
        alloc /= alloc.sum(axis=1, keepdims=True)  # float32 output of the reference: sums within 1e-6
        table = ScheduleTable(alloc, test_set.asset[win_rows], test_set.origin[win_rows], name=f"reference_{name}")
        table.allocate(test_set)  # every test window present, invariants hold: checked before training ours
        reference_policies[f"reference_{name}"] = table
    print(pd.DataFrame(rows).to_string(), flush=True)

    # Ours: the real_data crypto configuration, same budget.
    cfg = real_data.base_config(argparse.Namespace(lookback=None, hidden_size=32, batch_size=args.batch_size,
                                                   learning_rate=args.learning_rate, epochs=1000, patience=3,
                                                   minutes=(args.ours_budget or args.budget) / 60.0,
                                                   seed=args.seed,
                                                   fast_compile=False), setup, files)
    from lems.training import Splits, train

    curve = curve_callback(curve_windows, y_curve)
    result = train(cfg, windows=Splits(real_data.thin(train_set, setup.train_stride), real_data.thin(val_set, 4),
                                       test_set), verbose=2, callbacks=[curve])
    rows += [{"model": "ours", "train_s": t, "test_te_bps": te} for t, te in curve.points]
    curves = pd.DataFrame(rows)
    ttq = time_to_quality(curves[curves["model"] == "reference_shifted"], curves[curves["model"] == "ours"])

    # Every test order: ours, the reference (both), the classical baselines.
    policies = {"model": ModelPolicy(result.model), "static_vwap": StaticVWAP(), "flexible_rule": FlexibleRule(),
                "twap": TWAP()}
    policies.update(reference_policies)
    frame = backtest(policies, test_set)
    write(args, command, ref, result, curves, ttq, frame, offset, corr, time.perf_counter() - t0)


def write(args, command, ref, result, curves, ttq, frame, offset, corr, wall) -> None:
    """Markdown page and the learning-curve CSV."""
    fixed = real_data.fixed_table(frame)
    flex = frame[frame["objective"] == "beat"]
    pooled = flex.groupby(["benchmark", "policy"], observed=True)["improvement_bps"].mean().unstack("benchmark")
    pooled.index = pooled.index.astype(str)
    pooled.columns = [f"improvement_vs_{c}_bps" for c in pooled.columns.astype(str)]
    twap = pooled.loc["twap"]
    gain = (pooled - twap).add_suffix("_over_twap")
    pub = gain.loc["reference_published"].mean()
    shf = gain.loc["reference_shifted"].mean()
    share = (pub - shf) / pub if pub > 0 else float("nan")
    args.out.mkdir(parents=True, exist_ok=True)
    curves.to_csv(args.out / "reference_crypto_curve.csv", index=False, float_format="%.4f")
    best = curves.groupby("model")["test_te_bps"].min()
    lines = [
        "# The reference package (lems 0.1.1) vs ours on hourly crypto, equal training budget", "",
        f"- **command**: `{command}`",
        f"- **data**: BTCUSDT + ETHUSDT 1h; train through 2020-06, validate 2020-07..12, test 2021 "
        f"({len(frame[frame['policy'] == 'model']) // (13 * 8)} test windows common to both packages; the "
        f"reference's rows matched on (asset, origin) with a date offset of {offset} bar(s), volume-share "
        f"correlation {corr:.4f})",
        f"- **budget**: reference {float(ref['budget_s']):.0f} s of training per variant, ours "
        f"{args.ours_budget or args.budget:.0f} s, on this 2-core shared CPU, compilation included, evaluation "
        "excluded; JAX backend for both",
        f"- **reference**: LargeExecutionModel(lookback=120, n_ahead=12, hidden_size=32, hidden_rnn_layer=1, "
        f"num_heads=4, num_embedding=8, fused_mlp_hidden_dim=32) = {int(ref['params_shifted']):,} parameters, "
        f"Adam 1e-3, batch 64, seed {args.seed}; loss first -> last chunk: shifted "
        f"{ref['loss_shifted'][0]:.4f} -> {ref['loss_shifted'][-1]:.4f}, published "
        f"{ref['loss_published'][0]:.4f} -> {ref['loss_published'][-1]:.4f}; samples seen: shifted "
        f"{len(ref['loss_shifted']) * 640:,}, published {len(ref['loss_published']) * 640:,} (chunks of 10 batches "
        "of 64; the two variants ran one after the other on the shared machine, so their step counts differ)",
        f"- **ours**: {result.config.hidden_size=}, lookback {result.config.lookback}, "
        f"{result.model.count_params():,} parameters, Adam {result.config.learning_rate:g}, batch "
        f"{result.config.batch_size}, {result.epochs_run} epochs, stopped by {result.stopped_by}",
        f"- **total wall time**: {wall / 60:.1f} min", "",
        "## Fixed duration: VWAP tracking error |diff| [bps], every test order", "",
        "`paired_diff_bps` = policy - model on the same orders (positive: our model tracks better), 95 % CI "
        "clustered by origin day.", "", real_data.md_table(fixed), "",
        "## Flexible duration: improvement [bps], pooled over min durations 1..H, sides and targets", "",
        real_data.md_table(pooled.join(gain)), "",
        f"Look-ahead: the reference's mean flexible gain over the TWAP schedule is {pub:+.2f} bps as published and "
        f"{shf:+.2f} bps when it may not see the bar it trades in"
        + (f": **{share:.0%} of its published flexible gain is look-ahead**." if np.isfinite(share) else
           " (no published gain to explain)."), "",
        "## Time to quality (issue 5)", "",
        f"Best test tracking error of the leak-free reference over its run: {ttq['reference_best_bps']:.2f} bps, "
        f"reached after {ttq['reference_s']:.0f} s of training. Ours reached it after "
        f"{ttq['ours_s']:.0f} s: ratio **{ttq['ratio']:.3f}** (target <= 0.1). Best of each over the run "
        "(every 3rd test window): " + ", ".join(f"{k} {v:.2f}" for k, v in best.items()) + " bps. "
        "Curves: `reference_crypto_curve.csv`.", "",
    ]
    (args.out / "reference_crypto.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines), flush=True)


if __name__ == "__main__":
    main()
