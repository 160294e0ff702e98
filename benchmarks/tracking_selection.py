"""Does a greedy weight soup of the best validation epochs track better than the best epoch alone? (issue 13)

For each seed, one model is trained as ``benchmarks/real_data.py`` trains it (same data set, splits, config and
budget) with ``training.weight_soup = --soup``; a callback records the weights at every epoch end. Two tracking
columns are then scored side by side on the SAME test windows, from the same training run:

* ``best``: the weights of the epoch with the lowest validation tracking error (``weight_soup = 1``);
* ``soup``: what :func:`lems.training.train` kept: the greedy soup (:class:`lems.training.BestWeights`), which is
  the best epoch itself when no average beat it on validation.

A third column, ``spread``, is the epoch with the lowest validation SPREAD (std of the signed diff) instead of
mean ``|diff|``: what selecting on the headline's other number would keep. Every epoch's validation and test
numbers are listed. Last, the seed ensemble: the mean of all seeds' best-epoch fixed-column allocations (what
averaging the members' schedules would give, at the members' total training cost). Reported per seed and pooled
over seeds: the spread (std of the signed fixed-duration VWAP diff [bps]) and mean
``|diff|`` of both, TWAP and the static curve, and the spread ratio to the best classical baseline; validation
numbers of the same columns beside them. The seed-to-seed spread of the ratio is the run-to-run noise the issue
asks about. Nothing is chosen on test.

Usage (from the repository root)::

    python -m benchmarks.tracking_selection --dataset crypto --seeds 0 1 2 --soup 5 --minutes 6

Writes ``benchmarks/results/tracking_selection/tracking_selection_<dataset>.md``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np
import pandas as pd

from benchmarks import real_data
from benchmarks.common import (
    DEFAULT_DATA,
    command_line,
    md_table,
    provenance,
    results_dir,
    thin,
)
from lems.evaluation.stats import fixed_vwap_diffs, with_fixed_column
from lems.policies import TWAP, ModelPolicy, StaticVWAP
from lems.training import Splits, train

RESULTS = results_dir("tracking_selection")


def epoch_recorder():
    """A Keras callback keeping ``get_weights()`` at every epoch end (``.weights[e]`` for epoch ``e`` from 0)."""
    import keras

    class Recorder(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.weights: list[list[np.ndarray]] = []

        def on_epoch_end(self, epoch, logs=None) -> None:
            self.weights.append(self.model.get_weights())

    return Recorder()


def classical_diffs(windows) -> dict[str, np.ndarray]:
    """Signed fixed VWAP diffs [bps] of TWAP and the static curve (the same for every seed)."""
    return {"twap": fixed_vwap_diffs(TWAP().allocate(windows), windows),
            "static_vwap": fixed_vwap_diffs(StaticVWAP().allocate(windows), windows)}


def best_classical_spread(classical: dict[str, np.ndarray]) -> float:
    return min(float(np.std(d, ddof=1)) for d in classical.values())


def column_scores(model, best_weights: list, windows, classical: dict[str, np.ndarray]):
    """Signed fixed VWAP diffs [bps] of the soup (the model as kept), the best epoch and ``classical``, and the
    best epoch's fixed-column allocations ``(N, H, 4, 2)``."""
    kept = model.get_weights()
    diffs = {"soup": fixed_vwap_diffs(ModelPolicy(model).allocate(windows), windows)}
    model.set_weights(best_weights)
    best = ModelPolicy(model).allocate(windows)
    diffs["best"] = fixed_vwap_diffs(best, windows)
    model.set_weights(kept)
    return {**diffs, **classical}, np.array(best[:, :, -1])


def ensemble_ratio(fixed_columns: list[np.ndarray], windows, classical_spread: float) -> float:
    """Spread ratio of the seed ensemble: the mean of the members' fixed-column allocations (a convex combination
    of feasible schedules, hence feasible), scored like the members."""
    mean = np.mean(fixed_columns, axis=0)  # (N, H, 4, 2)
    return float(np.std(fixed_vwap_diffs(with_fixed_column(mean), windows), ddof=1) / classical_spread)


def per_epoch(model, snapshots: list, parts: dict[str, tuple]) -> pd.DataFrame:
    """Fixed-column VWAP tracking of every epoch's weights on each part (``name -> (windows, best classical
    spread)``); the model is restored after."""
    kept, rows = model.get_weights(), []
    for epoch, weights in enumerate(snapshots):
        model.set_weights(weights)
        row = {"epoch": epoch + 1}
        for name, (w, classical) in parts.items():
            d = fixed_vwap_diffs(ModelPolicy(model).allocate(w), w)
            row[f"{name}_mean_abs"], row[f"{name}_spread"] = float(np.mean(np.abs(d))), float(np.std(d, ddof=1))
            row[f"{name}_ratio"] = row[f"{name}_spread"] / classical
        rows.append(row)
    model.set_weights(kept)
    return pd.DataFrame(rows)


def summarise(diffs: dict[str, np.ndarray]) -> dict[str, float]:
    """Spread and mean |diff| [bps] per column, and the two model columns' spread over the best classical."""
    row = {}
    for name, d in diffs.items():
        row[f"{name}_spread"] = float(np.std(d, ddof=1))
        row[f"{name}_mean_abs"] = float(np.mean(np.abs(d)))
    classical = min(row["twap_spread"], row["static_vwap_spread"])  # best_classical_spread of the same diffs
    row["best_ratio"], row["soup_ratio"] = row["best_spread"] / classical, row["soup_spread"] / classical
    return row


def run_seed(args: argparse.Namespace, seed: int, splits, val_fit, classical: dict) -> dict[str, object]:
    rd_args = real_data.parse_args(["--dataset", args.dataset, "--minutes", str(args.minutes), "--seed", str(seed),
                                    "--data", str(args.data)])
    setup = real_data.SETUPS[args.dataset]
    config = real_data.base_config(rd_args, setup, real_data.data_files(args.data, setup))
    config = config.replace(weight_soup=args.soup, weight_averaging=args.weight_averaging)
    train_set, _, test_set = splits
    recorder = epoch_recorder()
    start = time.perf_counter()
    result = train(config, windows=Splits(thin(train_set, setup.train_stride), val_fit, test_set), verbose=0,
                   callbacks=[recorder])
    wall = time.perf_counter() - start
    best_weights = recorder.weights[result.best_epoch - 1]
    row: dict[str, object] = {"seed": seed, "epochs": result.epochs_run, "best_epoch": result.best_epoch,
                              "soup_epochs": " ".join(map(str, result.soup_epochs)), "fit_s": round(wall)}
    test_diffs, row["fixed_test"] = column_scores(result.model, best_weights, test_set, classical["test"])
    val_diffs, row["fixed_val"] = column_scores(result.model, best_weights, val_fit, classical["val"])
    test, val = summarise(test_diffs), summarise(val_diffs)
    row.update({f"test_{k}": v for k, v in test.items()})
    row.update({f"val_{k}": v for k, v in val.items()})
    epochs = per_epoch(result.model, recorder.weights,
                       {name: (w, best_classical_spread(classical[name]))
                        for name, w in (("val", val_fit), ("test", test_set))})
    epochs.insert(0, "seed", seed)
    by_spread = int(epochs["val_spread"].idxmin())
    row.update({"spread_epoch": by_spread + 1, "test_spread_selected_ratio": epochs.loc[by_spread, "test_ratio"],
                "val_spread_selected_ratio": epochs.loc[by_spread, "val_ratio"]})
    row["epoch_table"] = epochs
    print(f"[tracking_selection {args.dataset}] seed {seed}: "
          f"{ {k: v for k, v in row.items() if not k.startswith('fixed_') and k != 'epoch_table'} }", flush=True)
    return row


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=list(real_data.SETUPS), default="crypto")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--soup", type=int, default=5, help="epoch snapshots tried by the greedy soup")
    p.add_argument("--minutes", type=float, default=6.0, help="wall-clock training budget per seed")
    p.add_argument("--weight-averaging", type=float, default=None,
                   help="training.weight_averaging (EMA momentum of the weights, written in at every epoch end)")
    p.add_argument("--tag", default="", help="suffix of the result file name")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    command = command_line("tracking_selection", argv)
    setup = real_data.SETUPS[args.dataset]
    splits = real_data.build_splits(real_data.data_files(args.data, setup), setup, setup.lookback)
    t0 = time.perf_counter()
    val_fit = thin(splits[1], real_data.parse_args([]).val_stride)
    classical = {"val": classical_diffs(val_fit), "test": classical_diffs(splits[2])}
    runs = [run_seed(args, seed, splits, val_fit, classical) for seed in args.seeds]
    epoch_tables = pd.concat([run.pop("epoch_table") for run in runs], ignore_index=True)
    fixed = {part: [run.pop(f"fixed_{part}") for run in runs] for part in ("val", "test")}
    rows = pd.DataFrame(runs).set_index("seed")
    ensemble = {f"{part}_seed_ensemble_ratio": ensemble_ratio(fixed[part], windows,
                                                              best_classical_spread(classical[part]))
                for part, windows in (("val", val_fit), ("test", splits[2]))} if len(runs) > 1 else {}
    ratios = rows[["val_best_ratio", "val_soup_ratio", "val_spread_selected_ratio", "test_best_ratio",
                   "test_soup_ratio", "test_spread_selected_ratio"]]
    pooled = pd.DataFrame({"mean": ratios.mean(), "std over seeds": ratios.std(ddof=1) if len(rows) > 1 else np.nan})
    for key, value in ensemble.items():
        pooled.loc[key, "mean"] = value  # one number: the ensemble of all seeds' best-epoch models
    columns = ["epochs", "best_epoch", "soup_epochs", "spread_epoch", "fit_s", "val_best_ratio", "val_soup_ratio",
               "test_best_spread", "test_soup_spread", "test_twap_spread", "test_static_vwap_spread",
               "test_best_mean_abs", "test_soup_mean_abs", "test_best_ratio", "test_soup_ratio",
               "test_spread_selected_ratio"]
    lines = [f"# Tracking selection: best epoch, weight soup, spread selection, seed ensemble: {args.dataset}", "",
             *provenance(command),
             f"- **setup**: as `benchmarks/real_data.py --dataset {args.dataset}` (same splits, model, optimizer, "
             f"train stride {setup.train_stride}), {args.minutes:g} min wall-clock budget per seed, "
             f"`weight_soup={args.soup}`, `weight_averaging={args.weight_averaging}`; test windows: {len(splits[2])}",
             "- **columns**: `best` = weights of the epoch with the lowest validation tracking error; `soup` = "
             "what train() kept (greedy soup, the best epoch when no average beat it on validation); spreads "
             "and mean |diff| in bps on the fixed column's VWAP orders (both sides and targets); ratio = spread / "
             "the best classical spread (TWAP or static curve) on the same windows",
             f"- **total wall time**: {time.perf_counter() - t0:.0f} s (2-core shared CPU)", "",
             "## Per seed", "", md_table(rows[columns], 3), "",
             "## Spread ratio to the best classical baseline, over seeds", "", md_table(pooled.rename_axis("ratio"), 3),
             "", "## Every epoch (validation: the thinned split train() selects on)", "",
             md_table(epoch_tables.set_index("seed"), 3), ""]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"tracking_selection_{args.dataset}{args.tag}.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()
