"""Where does the model's fixed-duration tracking gain come from, and where does it fall short? (issue 13)

Reads a model saved by ``benchmarks/real_data.py --save-model DIR`` and scores it on that script's splits (same
data set, validation windows thinned like early stopping, all test windows), next to TWAP and the static curve.
Three views of the spread (std of the signed fixed-duration VWAP diff [bps], both sides and targets):

* **average schedule vs reaction**: ``profile`` = the model's mean fixed-column schedule over the validation
  windows, used on every window as a static schedule (what the model does on average, with no reaction to the
  window); ``static_tilt`` = the static curve of each window reshaped by the model's average tilt (per step, the
  geometric mean over the validation windows of the model's allocation over the static curve's), for sets whose
  windows start at different times of a strong intraday curve (equities), where a plain average schedule mixes
  them. The model's ratio against these says what its per-window reaction adds on each split.
* **by day**: the test ratio per origin day (local time of the set), and weekdays against weekends.
* **tails**: the share of each schedule's variance carried by its 1 % and 0.1 % largest squared deviations,
  and the root mean square diff of the model and the best classical schedule on the 1 % of orders where the
  best classical schedule errs most, and on the rest.

Ratios are to the best classical schedule (TWAP or the static curve, the lower spread) on the same orders;
day-bootstrap 95 % intervals (origin days resampled, 500 draws). Nothing here is used to choose anything.

Usage (from the repository root)::

    python -m benchmarks.real_data --dataset crypto_1m --minutes 10 --seed 0 --save-model runs --out runs
    python -m benchmarks.tracking_anatomy --dataset crypto_1m --model runs/crypto_1m.keras \
        --trained-by "python -m benchmarks.real_data --dataset crypto_1m --minutes 10 --seed 0 --save-model runs"

Writes ``benchmarks/results/tracking_anatomy/tracking_anatomy_<dataset>.md``.
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
    span,
    thin,
)
from lems.evaluation.stats import (
    day_bootstrap_spreads,
    fixed_vwap_diffs,
    origin_days,
    with_fixed_column,
)
from lems.policies import TWAP, ModelPolicy, StaticVWAP

RESULTS = results_dir("tracking_anatomy")
CLASSICAL = ("twap", "static_vwap")
TAIL_FRACTIONS = (0.01, 0.001)


def average_shape(model_fixed: np.ndarray, static_fixed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The model's average schedule ``(1, H, 4, 2)`` (mean over windows: sums to one over steps) and its average
    log tilt of the static curve ``(1, H, 4, 2)`` (mean of ``log(model / static)`` per step), from fixed-column
    allocations ``(N, H, 4, 2)`` of the same windows."""
    tiny = 1e-12
    tilt = np.mean(np.log(np.maximum(model_fixed, tiny)) - np.log(np.maximum(static_fixed, tiny)), axis=0,
                   keepdims=True)
    return model_fixed.mean(axis=0, keepdims=True), tilt


def tilted(static_fixed: np.ndarray, log_tilt: np.ndarray) -> np.ndarray:
    """The static curve ``(N, H, 4, 2)`` reshaped by ``exp(log_tilt)`` per step, renormalised to sum to one."""
    shaped = static_fixed * np.exp(log_tilt - log_tilt.max(axis=1, keepdims=True))
    return shaped / shaped.sum(axis=1, keepdims=True)


def schedules(model, windows) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Signed fixed VWAP diffs [bps] ``(N, 4)`` of the model, TWAP and the static curve, and the fixed-column
    allocations ``(N, H, 4, 2)`` of the model and of the static curve."""
    allocations, static = ModelPolicy(model).allocate(windows), StaticVWAP().allocate(windows)
    diffs = {"model": fixed_vwap_diffs(allocations, windows),
             "twap": fixed_vwap_diffs(TWAP().allocate(windows), windows),
             "static_vwap": fixed_vwap_diffs(static, windows)}
    return diffs, np.asarray(allocations[:, :, -1]), np.asarray(static[:, :, -1])


def shape_diffs(windows, static_fixed: np.ndarray, shape: tuple[np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
    """Signed fixed VWAP diffs [bps] ``(N, 4)`` of the profile and of the tilted static curve (``shape`` =
    :func:`average_shape`'s ``(profile, log_tilt)``) as static schedules; ``static_fixed``: the windows' static
    curve ``(N, H, 4, 2)``."""
    profile, log_tilt = shape
    fixed = np.broadcast_to(profile, (len(windows), *profile.shape[1:]))
    return {"profile": fixed_vwap_diffs(with_fixed_column(fixed), windows),
            "static_tilt": fixed_vwap_diffs(with_fixed_column(tilted(static_fixed, log_tilt)), windows)}


def spread_ratios(diffs: dict[str, np.ndarray], days: np.ndarray, n_boot: int = 500,
                  seed: int = 0) -> pd.DataFrame:
    """Per schedule: spread [bps], ratio to the best classical spread, and its day-bootstrap 95 % interval.

    One bootstrap for all schedules (:func:`lems.evaluation.stats.day_bootstrap_spreads`: the same resampled
    origin days for every spread; all orders of a window together)."""
    names = list(diffs)
    spreads = {k: float(np.std(v, ddof=1)) for k, v in diffs.items()}
    best = min(CLASSICAL, key=spreads.get)
    per_window = int(np.asarray(diffs[best]).reshape(len(days), -1).shape[1])
    values = np.stack([np.asarray(diffs[k]).ravel() for k in names], axis=1)
    draws = day_bootstrap_spreads(values, np.repeat(days, per_window), n_boot, seed)
    ratios = draws / draws[:, [names.index(best)]]
    lows, highs = np.quantile(ratios, 0.025, axis=0), np.quantile(ratios, 0.975, axis=0)
    return pd.DataFrame({
        "spread_bps": spreads, "mean_abs_bps": {k: float(np.mean(np.abs(v))) for k, v in diffs.items()},
        "ratio_to_best_classical": {k: spreads[k] / spreads[best] for k in diffs},
        "ci_low": dict(zip(names, map(float, lows))),
        "ci_high": dict(zip(names, map(float, highs))),
    }).rename_axis(f"schedule (best classical: {best})")


def group_ratios(diffs: dict[str, np.ndarray], groups: np.ndarray) -> pd.DataFrame:
    """Spreads [bps] and the model's ratio to the best classical schedule within each group of windows."""
    rows = []
    for label in pd.unique(groups):
        mask = groups == label
        spreads = {k: float(np.std(v[mask], ddof=1)) for k, v in diffs.items()}
        best = min(spreads[c] for c in CLASSICAL)
        rows.append({"group": label, "windows": int(mask.sum()), **{f"{k}_spread": s for k, s in spreads.items()},
                     **{f"{k}_ratio": spreads[k] / best for k in ("model", "profile", "static_tilt") if k in spreads}})
    return pd.DataFrame(rows).set_index("group")


def tail_table(diffs: dict[str, np.ndarray]) -> pd.DataFrame:
    """Share of each schedule's variance from its largest squared deviations, and the RMS diff [bps] of the model
    and the best classical schedule on the 1 % of orders where the latter errs most, and on the rest."""
    best = min(CLASSICAL, key=lambda k: np.std(diffs[k], ddof=1))
    rows = {}
    for k, v in diffs.items():
        v = v.ravel()
        squares = np.sort((v - v.mean()) ** 2)[::-1]
        rows[k] = {f"variance_share_top_{f:g}": float(squares[: max(1, int(len(v) * f))].sum() / squares.sum())
                   for f in TAIL_FRACTIONS}
    classical = diffs[best].ravel()
    top = np.zeros(classical.size, bool)
    top[np.argsort(-np.abs(classical))[: max(1, classical.size // 100)]] = True
    for k, v in diffs.items():
        v = v.ravel()
        rows[k]["rms_on_classical_top_1pct"] = float(np.sqrt(np.mean(v[top] ** 2)))
        rows[k]["rms_on_the_rest"] = float(np.sqrt(np.mean(v[~top] ** 2)))
    return pd.DataFrame(rows).T.rename_axis(f"schedule (top orders of {best})")


def main(argv: list[str] | None = None) -> None:
    import keras

    import lems.models  # noqa: F401  (registers the model for loading)

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dataset", choices=list(real_data.SETUPS), default="crypto")
    p.add_argument("--model", type=Path, required=True, help="a .keras file saved by real_data.py --save-model")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--trained-by", default="", help="the command that trained and saved the model (recorded)")
    p.add_argument("--val-stride", type=int, default=real_data.parse_args([]).val_stride)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)
    command = command_line("tracking_anatomy", argv)
    t0 = time.perf_counter()
    setup = real_data.SETUPS[args.dataset]
    model = keras.saving.load_model(args.model)
    _, val_set, test_set = real_data.build_splits(real_data.data_files(args.data, setup), setup, model.lookback)
    val_set = thin(val_set, args.val_stride)
    val_diffs, val_fixed, val_static = schedules(model, val_set)
    shape = average_shape(val_fixed, val_static)
    val_diffs.update(shape_diffs(val_set, val_static, shape))
    test_diffs, _, test_static = schedules(model, test_set)
    test_diffs.update(shape_diffs(test_set, test_static, shape))
    profile, log_tilt = shape
    val_days, test_days = origin_days(val_set.origin, setup.tz), origin_days(test_set.origin, setup.tz)
    day_label = np.array([f"{pd.Timestamp(d):%Y-%m-%d %a}" for d in test_days])
    weekend = np.where(pd.DatetimeIndex(test_days).day_of_week >= 5, "weekend", "weekday")
    horizon = int(test_set.n_ahead)
    profile_row = profile[0, :, 0, 0] * horizon  # the buy-VWAP quantity order's, relative to uniform
    lines = [
        f"# Tracking anatomy: {args.dataset}", "",
        *provenance(command),
        f"- **model**: `{args.model.name}` (lookback {model.lookback}, H {horizon})"
        + (f", trained and saved by `{args.trained_by}`" if args.trained_by else ""),
        f"- **validation**: {len(val_set)} windows (every {args.val_stride}-th origin, as early stopping); "
        f"**test**: {len(test_set)} windows ({span(test_set)})",
        f"- **profile**: the model's mean fixed-column schedule over the validation windows, as a static "
        f"schedule; buy-VWAP quantity order, relative to uniform: {np.array2string(profile_row, precision=2)}; "
        f"its tilt of the static curve (exp of the mean log ratio): "
        f"{np.array2string(np.exp(log_tilt[0, :, 0, 0]), precision=2)}",
        f"- **total wall time**: {time.perf_counter() - t0:.0f} s", "",
        "## Spread on each split (ratio to the best classical schedule, day-bootstrap 95 % interval)", "",
        "### Validation", "", md_table(spread_ratios(val_diffs, val_days), 3), "",
        "### Test", "", md_table(spread_ratios(test_diffs, test_days), 3), "",
        "## Test by origin day", "", md_table(group_ratios(test_diffs, day_label), 3), "",
        md_table(group_ratios(test_diffs, weekend), 3), "",
        "## Tails", "", "### Validation", "", md_table(tail_table(val_diffs), 3), "",
        "### Test", "", md_table(tail_table(test_diffs), 3), "",
    ]
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"tracking_anatomy_{args.dataset}.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines), flush=True)
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()
