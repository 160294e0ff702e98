"""Real-data quality benchmark: the LargeExecutionModel vs classical schedules on hourly crypto and equities.

Setups (one model per data set, trained on all its assets, time split with purging, docs/execution.md semantics):

* ``crypto``: BTCUSDT + ETHUSDT 1h (Binance spot), tz UTC, ``n_ahead`` 12 bars, lookback 48 bars;
  train through 2020-06-30, validate 2020-07..2020-12, test 2021 (to the end of the data).
* ``equities``: SPY, AAPL, IBM, AIG, BAC 1h regular session, tz America/New_York, ``n_ahead`` 7 bars (one
  session), lookback 35 bars (5 sessions); train through 2015, validate 2016-2017, test 2018 onwards.
* ``crypto_1m``: ALGO, DOT, LINK, LTC USDT perpetuals 1m (Binance futures, 2026-02), tz UTC, ``n_ahead`` 30 bars,
  lookback 60 bars; train 02-01..02-15, validate 02-16..02-20, test 02-21 onwards (every 10th origin evaluated).

``--holdout SYMBOL`` trains and validates on the other symbols and tests on SYMBOL alone (leave one symbol out).

Training: :func:`lems.training.train` (Adam, :func:`lems.loss.lem_loss`, early stopping on the validation
loss with the best weights restored, and a wall-clock budget, compilation included). Training windows are
thinned to every ``--train-stride``-th origin of each asset; early stopping reads every ``--val-stride``-th
validation window. The test split is never thinned and never used to choose anything.

Evaluation on the test split with :func:`lems.evaluation.backtest.backtest`: model vs TWAP, StaticVWAP and FlexibleRule,
every order type, target and min duration, no trading limits (``min_rate`` 0, ``max_rate`` 1). Headlines:

1. fixed duration (track), VWAP benchmark: tracking error ``|diff|`` [bps]: mean, std, P95, and the model's
   relative reduction [%] vs each baseline, with a paired 95 % interval (clustered by origin day); the spread
   (std of the signed diff [bps]) and the model's spread ratio to each policy with a paired day-block bootstrap
   95 % interval; the volume-curve error (mean |cumulative allocation - cumulative realised volume share|) of
   every schedule, the model's dynamic volume forecast used alone as a schedule (``dynamic_forecast``) included;
2. flexible duration (beat): mean improvement [bps] per min duration and benchmark, model vs FlexibleRule vs
   TWAP, with the paired 95 % interval of model minus FlexibleRule (clustered by origin day).

With ``--variant NAME:key=value,...`` (repeatable) several configurations are trained, each with the full
``--minutes`` budget, and the one with the lowest validation tracking spread (fixed column, VWAP) is evaluated on
the test split; the tuning table (validation numbers only) goes into the Markdown results. Keys are
:class:`lems.training.TrainConfig` fields, or ``model.<arg>`` for a :class:`lems.models.LargeExecutionModel`
argument that the config does not carry (e.g. ``model.volume_forecast=false``).

Usage (from the repository root)::

    python -m benchmarks.real_data --dataset crypto --minutes 12 --seed 0
    python -m benchmarks.real_data --dataset equities --data ../shared/data --minutes 12

Writes ``benchmarks/results/real_data/real_data_<dataset>.md`` and ``.csv`` (the full distribution table of
:func:`lems.evaluation.backtest.summary`), ``real_data_<dataset>.json`` (the README's numbers, read by
``benchmarks/render_readme.py``) and ``real_data_<dataset>_duration.png``. ``--summary-only`` rebuilds the
JSON of a committed run from its ``.csv`` and ``.md`` without training.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np
import pandas as pd

from benchmarks.common import (
    DEFAULT_DATA,
    command_line,
    md_table,
    provenance_fields,
    results_dir,
    span,
    thin,
)
from lems.data.loaders import read_bars
from lems.data.targets import seed_targets
from lems.data.windows import make_windows
from lems.evaluation.backtest import backtest, summary
from lems.evaluation.figures import plot_improvement_by_duration
from lems.evaluation.stats import paired_comparison, spread_ratios
from lems.policies import (
    TWAP,
    FlexibleRule,
    ForecastSchedule,
    ModelPolicy,
    StaticVWAP,
    fit_blended_policy,
)
from lems.training import Splits, TrainConfig, train

RESULTS = results_dir("real_data")
POLICY_ORDER = ("model", "static_vwap", "flexible_rule", "twap")


@dataclass(frozen=True)
class DataSetup:
    """One real-data benchmark setup.

    Attributes:
        name: Data set label.
        folder: Sub-folder of ``--data`` holding one CSV per symbol.
        symbols: Symbols (file stems) read.
        tz: Local time zone of the calendar features.
        n_ahead: Horizon H [bars].
        lookback: Lookback [bars].
        train_end: First origin time NOT in training (windows whose last bar starts before it train).
        val_end: Start of the test split (validation: origin >= train_end and last bar < val_end).
        train_stride: Default thinning of training origins per asset [bars].
        test_stride: Thinning of the test origins per asset [bars] (1: every window; minute bars: fewer, so that
            the backtest frame fits in memory).
        bar_label: Bar length, for the report.
    """

    name: str
    folder: str
    symbols: tuple[str, ...]
    tz: str
    n_ahead: int
    lookback: int
    train_end: str
    val_end: str
    train_stride: int
    test_stride: int = 1
    bar_label: str = "1h"


# Training strides: every window on the hourly sets (validation spread lower than with every 2nd / 4th origin:
# crypto 18.85 vs 20.09 bps, equities 13.98 vs 14.20 bps, same seed and budget); every 4th on minute bars, where an
# epoch over every window would take most of the budget.
SETUPS: dict[str, DataSetup] = {
    "crypto": DataSetup("crypto", "crypto_1h", ("BTCUSDT", "ETHUSDT"), "UTC", 12, 48,
                        "2020-07-01", "2021-01-01", 1),
    "equities": DataSetup("equities", "equities_1h", ("SPY", "AAPL", "IBM", "AIG", "BAC"), "America/New_York",
                          7, 35, "2016-01-01", "2018-01-01", 1),
    "crypto_1m": DataSetup("crypto_1m", "crypto_1m", ("ALGOUSDT", "DOTUSDT", "LINKUSDT", "LTCUSDT"), "UTC", 30, 60,
                           "2026-02-16", "2026-02-21", 4, test_stride=10, bar_label="1m"),
}


# --------------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------------
def data_files(data_root: Path, setup: DataSetup) -> list[Path]:
    """The setup's CSV files under ``data_root``; exits with a clear message when they are absent."""
    folder = Path(data_root) / setup.folder
    files = [folder / f"{s}.csv" for s in setup.symbols]
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        sys.exit(f"real_data: data not found ({', '.join(missing)}). Pass --data pointing at the folder that "
                 f"holds {setup.folder}/ (see ../shared/data/README.md); the data is never part of the repo.")
    return files


def build_splits(files: list[Path], setup: DataSetup, lookback: int, holdout: str | None = None):
    """Leak-free windows of all files, split in time (purged): ``(train, val, test)`` WindowSets.

    The test split keeps every ``setup.test_stride``-th origin per asset. With ``holdout``, train and validation
    hold the other symbols only and the test split that symbol only (leave one symbol out).
    """

    bars = read_bars([str(p) for p in files])
    windows = make_windows(bars, lookback, setup.n_ahead, tz=setup.tz)
    train_set, val_set, test_set = windows.split(setup.train_end, setup.val_end)
    test_set = thin(test_set, setup.test_stride)
    if holdout is not None:
        if holdout not in setup.symbols:
            raise ValueError(f"--holdout {holdout!r} is not a symbol of {setup.name} {setup.symbols}")
        train_set, val_set = (w.subset(np.asarray(w.asset) != holdout) for w in (train_set, val_set))
        test_set = test_set.subset(np.asarray(test_set.asset) == holdout)
    return train_set, val_set, test_set


# --------------------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------------------
def base_config(args: argparse.Namespace, setup: DataSetup, files: list[Path]):
    """The :class:`lems.training.TrainConfig` of the command line (before variants)."""
    return TrainConfig(
        data=[str(p) for p in files], tz=setup.tz, lookback=args.lookback or setup.lookback,
        n_ahead=setup.n_ahead, stride=1, train_end=setup.train_end, val_end=setup.val_end,
        hidden_size=args.hidden_size, hidden_rnn_layer=1, num_heads=4, num_embedding=8, fused_mlp_hidden_dim=32,
        kan_basis="rbf", batch_size=args.batch_size, learning_rate=args.learning_rate, epochs=args.epochs,
        time_budget_s=args.minutes * 60.0, max_steps=args.max_steps, patience=args.patience, seed=args.seed,
        fast_compile=args.fast_compile,
    )


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """``"name:key=value,key=value"`` -> ``(name, {key: value})`` (values parsed as JSON when possible)."""
    name, _, body = text.partition(":")
    changes: dict[str, Any] = {}
    for item in filter(None, body.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"variant {text!r}: expected key=value, got {item!r}")
        try:
            changes[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            changes[key.strip()] = value.strip()
    return name.strip() or "variant", changes


def split_changes(changes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(TrainConfig changes, LargeExecutionModel overrides)`` of a variant (``model.<arg>`` keys)."""
    model = {k[len("model."):]: v for k, v in changes.items() if k.startswith("model.")}
    return {k: v for k, v in changes.items() if not k.startswith("model.")}, model


def train_one(config, splits, train_stride: int, val_stride: int, verbose: int,
              overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train one configuration; returns the model, history and validation numbers."""
    train_set, val_set, test_set = splits
    fit_splits = Splits(thin(train_set, train_stride), thin(val_set, val_stride), test_set)
    start, cpu = time.perf_counter(), time.process_time()
    result = train(config, windows=fit_splits, verbose=verbose, model_args=overrides or None)
    val_loss = result.history.get("val_loss", [float("nan")])
    best_epoch = result.best_epoch or 0  # kept by train(): the tracking weights' epoch
    return {
        "model": result.model, "history": result.history, "stopped_by": result.stopped_by,
        "epochs_run": result.epochs_run, "fit_wall_s": result.wall_time_s,
        "train_wall_s": time.perf_counter() - start, "train_cpu_s": time.process_time() - cpu,
        "best_epoch": best_epoch,
        # the flexible-only weights' epoch (0: the untrained start) and the untrained validation flexible gain
        "best_flexible_epoch": result.best_flexible_epoch,
        "val_flex_untrained": (float("nan") if result.untrained_flexible_bps is None
                               else float(result.untrained_flexible_bps)),
        "best_val_loss": float(val_loss[best_epoch - 1]) if best_epoch else float("nan"),
        "rule_prior": _threshold_words(result.rule_prior_thresholds),
        "n_train": len(fit_splits.train), "n_val_fit": len(fit_splits.val),
    }


def _threshold_words(thresholds) -> str:
    """The rule prior's validation-tuned thresholds (``TrainResult.rule_prior_thresholds``), in a few words."""
    if thresholds is None:
        return "not tuned"
    t = np.asarray(thresholds)
    return (f"tuned on validation before training: median {np.median(t):g}, range {t.min():g}..{t.max():g} "
            f"lookback volatilities over {t.shape[0]} policies x {t.shape[1]} min durations")


def _flexible_epoch_words(epoch: int | None) -> str:
    """Where the kept flexible-only weights come from (``TrainResult.best_flexible_epoch``)."""
    if epoch is None:
        return "the same epoch"
    return "the untrained start (the rule prior)" if epoch == 0 else f"epoch {epoch}"


def validation_tracking(model, val_set) -> dict[str, float]:
    """Fixed-column VWAP tracking error [bps: mean |diff| and spread, the std of the signed diff] of model /
    static VWAP / TWAP, and the model's flexible improvement, on the validation split (the choice of variant)."""

    frame = backtest({"model": ModelPolicy(model), "static_vwap": StaticVWAP(), "twap": TWAP()}, val_set)
    fixed = frame[(frame["objective"] == "track") & (frame["benchmark"] == "vwap")]
    te = fixed.groupby("policy", observed=True)["tracking_error_bps"].mean()
    spread = (fixed["diff"] * 1e4).groupby(fixed["policy"], observed=True).std()
    flex = frame[frame["objective"] == "beat"]
    imp = flex.groupby("policy", observed=True)["improvement_bps"].mean()
    best_classical = min(spread["static_vwap"], spread["twap"])
    return {"val_te_model": float(te["model"]), "val_te_static": float(te["static_vwap"]),
            "val_te_twap": float(te["twap"]), "val_te_reduction_pct": float((1 - te["model"] / te["static_vwap"])
                                                                             * 100),
            "val_spread_model": float(spread["model"]), "val_spread_ratio": float(spread["model"] / best_classical),
            "val_flex_imp_model": float(imp["model"]), "val_flex_imp_twap": float(imp["twap"])}


# --------------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------------
def blend_weights(blend, benchmark: str) -> str:
    """The blend's non-zero weights for one benchmark's order types, for the report."""
    weights = dict(zip(blend.policies, blend.weights[benchmark]))
    return ", ".join(f"{k} {v:.3f}" for k, v in weights.items() if v > 0)


def forecast_parameters(model) -> str:
    """The trained volume forecast's scalar parameters, for the report."""
    forecast = getattr(getattr(model, "decoder", None), "forecast", None)
    if forecast is None:
        return "none (static prior)"
    values = forecast.parameters()
    return ", ".join(f"{k} {np.array2string(np.atleast_1d(v), precision=3, separator=' ')}" for k, v in values.items())


def blend_components(model) -> dict[str, Any]:
    """The schedules the blend combines: the model, its volume forecast alone, the static curve and TWAP."""
    components = {"model": ModelPolicy(model), "static_vwap": StaticVWAP(), "twap": TWAP()}
    if getattr(model, "volume_forecast", False):
        components["dynamic_forecast"] = ForecastSchedule(model)
    return components


def fit_blend(model, val_set):
    """:class:`lems.policies.BlendedPolicy` ``model_blend``: the fixed-duration schedules of :func:`blend_components`
    combined with the weights of least mean square tracking error on the VALIDATION windows; flexible columns: the
    model's."""
    return fit_blended_policy(blend_components(model), val_set, flexible_from="model", name="model_blend")


def evaluate(model, test_set, blend=None) -> pd.DataFrame:
    """Backtest frame of the model, its volume forecast alone, the validation-fitted blend and the classical
    baselines on the test windows (no trading limits)."""

    policies = {**blend_components(model), "flexible_rule": FlexibleRule()}
    if blend is not None:
        policies["model_blend"] = blend
    order = [p for p in (*POLICY_ORDER, "dynamic_forecast", "model_blend") if p in policies]
    return backtest({p: policies[p] for p in order}, test_set)


def curve_error(policies: dict[str, Any], test_set) -> pd.DataFrame:
    """Volume-curve error of each schedule: mean over windows and decisions ``s = 0 .. H-2`` of ``|cumulative
    allocation - cumulative realised volume share|`` after bar ``s`` [percent of the order], for the fixed-duration
    buy-VWAP quantity order (what drives the VWAP tracking error), with its ratio to the static curve's."""
    realised = np.cumsum(seed_targets(test_set)[:, :, 0], axis=1)[:, :-1]
    rows = {}
    for name, policy in policies.items():
        fixed = np.asarray(policy.allocate(test_set), np.float64)[:, :, -1, 0, 0]
        rows[name] = {"cum_share_error_pct": float(np.abs(np.cumsum(fixed, axis=1)[:, :-1] - realised).mean() * 100)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table["ratio_to_static"] = table["cum_share_error_pct"] / table.loc["static_vwap", "cum_share_error_pct"]
    table.index.name = "policy"
    return table


def spread_ratio_ci(frame: pd.DataFrame, model: str = "model", n_boot: int = 500, seed: int = 0,
                    alpha: float = 0.05) -> pd.DataFrame:
    """Spread (std of the signed fixed-duration VWAP diff [bps]) of every policy, and the model's spread over each
    policy's with its day-bootstrap 95 % interval (:func:`lems.evaluation.stats.spread_ratios`: origin days
    resampled, all orders of a day together), one row per policy, the model's own row at ratio 1."""
    ratios = spread_ratios(frame, model, n_boot=n_boot, seed=seed, alpha=alpha).set_index("baseline")
    table = pd.DataFrame({"spread_bps": ratios["spread_bps"], "model_spread_ratio": ratios["ratio"],
                          "ratio_ci_low": ratios["ci_low"], "ratio_ci_high": ratios["ci_high"]})
    own = float(ratios["model_spread_bps"].iloc[0])
    table.loc[model] = [own, 1.0, 1.0, 1.0]  # the model's own row (ratio to itself), as the tables list it
    table.index.name = "policy"
    return table


def fixed_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Fixed-duration VWAP tracking error [bps] per policy (both sides and targets), model's reduction [%]."""
    rows = frame[(frame["objective"] == "track") & (frame["benchmark"] == "vwap")]
    g = rows.groupby("policy", observed=True)["tracking_error_bps"]
    table = pd.DataFrame({"mean_bps": g.mean(), "std_bps": g.std(), "median_bps": g.median(),
                          "p95_bps": g.quantile(0.95), "orders": g.size()})
    table.index = table.index.astype(str)
    model_mean = table.loc["model", "mean_bps"]
    table["model_reduction_pct"] = (1 - model_mean / table["mean_bps"]) * 100
    paired = paired_comparison(frame, "model", by=("benchmark",), cluster="day")
    paired = paired[(paired["objective"] == "track") & (paired["benchmark"] == "vwap")].set_index("baseline")
    table["paired_diff_bps"] = paired["mean_diff"]
    table["ci_low"], table["ci_high"] = paired["ci_low"], paired["ci_high"]
    table = table.join(spread_ratio_ci(frame))
    if "model_blend" in table.index:
        blend = spread_ratio_ci(frame, model="model_blend")
        table["blend_spread_ratio"] = blend["model_spread_ratio"]
        table["blend_ratio_ci_low"], table["blend_ratio_ci_high"] = blend["ratio_ci_low"], blend["ratio_ci_high"]
    return table.reindex([p for p in POLICY_ORDER if p in table.index]
                         + [p for p in table.index if p not in POLICY_ORDER])


def flexible_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Flexible-duration mean improvement [bps] per benchmark × min duration: model, FlexibleRule, TWAP,
    static VWAP, and the paired model - FlexibleRule difference with its 95 % interval (day clusters)."""
    flex = frame[frame["objective"] == "beat"]
    means = (flex.groupby(["benchmark", "min_duration", "policy"], observed=True)["improvement_bps"].mean()
             .unstack("policy"))
    means.columns = means.columns.astype(str)
    paired = paired_comparison(frame, "model", "flexible_rule", by=("benchmark", "min_duration"), cluster="day")
    paired = paired[paired["objective"] == "beat"].copy()
    paired["benchmark"] = paired["benchmark"].astype(str)
    paired = paired.set_index(["benchmark", "min_duration"])[["mean_diff", "ci_low", "ci_high", "significant"]]
    means.index = pd.MultiIndex.from_arrays([means.index.get_level_values(0).astype(str),
                                             means.index.get_level_values(1)], names=["benchmark", "min_duration"])
    cols = [p for p in POLICY_ORDER if p in means.columns]
    return means[cols].join(paired.add_prefix("model_minus_rule_"))


def flexible_by_side(frame: pd.DataFrame) -> pd.DataFrame:
    """Flexible improvement [bps] pooled over min durations, per benchmark and side, with the paired model -
    FlexibleRule interval (day clusters)."""
    flex = frame[frame["objective"] == "beat"]
    means = (flex.groupby(["benchmark", "side", "policy"], observed=True)["improvement_bps"].mean()
             .unstack("policy"))
    means.columns = means.columns.astype(str)
    means.index = pd.MultiIndex.from_arrays([means.index.get_level_values(i).astype(str) for i in range(2)],
                                            names=["benchmark", "side"])
    paired = paired_comparison(frame, "model", "flexible_rule", by=("benchmark", "side"), cluster="day")
    paired = paired[paired["objective"] == "beat"].copy()
    paired.index = pd.MultiIndex.from_arrays([paired["benchmark"].astype(str), paired["side"].astype(str)],
                                             names=["benchmark", "side"])
    cols = [p for p in ("model", "flexible_rule", "twap") if p in means.columns]
    return means[cols].join(paired[["mean_diff", "ci_low", "ci_high"]].add_prefix("model_minus_rule_"))


def pooled_flexible(frame: pd.DataFrame) -> pd.DataFrame:
    """Flexible improvement [bps] pooled over all min durations, per benchmark, with the paired interval."""
    flex = frame[frame["objective"] == "beat"]
    means = flex.groupby(["benchmark", "policy"], observed=True)["improvement_bps"].mean().unstack("policy")
    means.index, means.columns = means.index.astype(str), means.columns.astype(str)
    paired = paired_comparison(frame, "model", "flexible_rule", by=("benchmark",), cluster="day")
    paired = paired[paired["objective"] == "beat"].copy()
    paired.index = paired["benchmark"].astype(str)
    cols = [p for p in POLICY_ORDER if p in means.columns]
    return means[cols].join(paired[["mean_diff", "ci_low", "ci_high"]].add_prefix("model_minus_rule_"))


# --------------------------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------------------------
def verdict(fixed: pd.DataFrame) -> str:
    """One plain sentence on the fixed-duration VWAP headline."""
    red = fixed.loc["static_vwap", "model_reduction_pct"]
    lo, hi = fixed.loc["static_vwap", "ci_low"], fixed.loc["static_vwap", "ci_high"]
    m, s = fixed.loc["model", "mean_bps"], fixed.loc["static_vwap", "mean_bps"]
    if lo > 0:
        word = "beats"
    elif hi < 0:
        word = "does NOT beat (is worse than)"
    else:
        word = "does NOT significantly beat"
    return (f"The model {word} the static VWAP curve on fixed-duration VWAP tracking: mean |diff| {m:.2f} bps vs "
            f"{s:.2f} bps ({red:+.1f} % reduction; paired static - model {fixed.loc['static_vwap', 'paired_diff_bps']:+.2f}"
            f" bps, 95 % CI [{lo:+.2f}, {hi:+.2f}]). Reference bar: 18-25 % below the static curve on hourly crypto "
            f"at H=12.")


def spread_verdict(fixed: pd.DataFrame, target: float = 0.70, model: str = "model") -> str:
    """One sentence on the spread target (``model``'s spread <= ``target`` x the best classical baseline's)."""
    classical = [p for p in ("static_vwap", "twap") if p in fixed.index]
    best = min(classical, key=lambda p: fixed.loc[p, "spread_bps"])
    prefix = "" if model == "model" else "blend_"
    ratio = fixed.loc[best, f"{prefix}spread_ratio" if prefix else "model_spread_ratio"]
    lo, hi = fixed.loc[best, f"{prefix}ratio_ci_low"], fixed.loc[best, f"{prefix}ratio_ci_high"]
    reached = "reaches" if ratio <= target else f"misses (by {ratio / target - 1:+.1%} of the target ratio)"
    return (f"Spread (std of the signed diff): {model} {fixed.loc[model, 'spread_bps']:.2f} bps vs best classical "
            f"baseline ({best}) {fixed.loc[best, 'spread_bps']:.2f} bps: ratio {ratio:.3f} (95 % day-bootstrap "
            f"[{lo:.3f}, {hi:.3f}]); the target <= {target:.2f} x: {model} {reached}.")


def write_results(out: Path, name: str, meta: dict[str, Any], fixed: pd.DataFrame, flex: pd.DataFrame,
                  pooled: pd.DataFrame, tuning: pd.DataFrame, frame: pd.DataFrame,
                  curves: pd.DataFrame | None = None, by_side: pd.DataFrame | None = None) -> None:
    """Markdown page, CSV distribution table and a PNG of improvement vs min duration."""
    out.mkdir(parents=True, exist_ok=True)
    summary(frame).to_csv(out / f"real_data_{name}.csv", index=False, float_format="%.6g")
    png = out / f"real_data_{name}_duration.png"
    try:
        plot_improvement_by_duration(frame, png)
    except (ImportError, OSError, RuntimeError, ValueError) as exc:  # figures are optional
        print(f"figure skipped: {exc}", file=sys.stderr)
        png = None
    lines = [f"# Real-data benchmark: {name}", ""]
    lines += [f"- **{k}**: {v}" for k, v in meta.items()]
    lines += ["", "## Headline 1: fixed duration (track), VWAP tracking error |diff| [bps]", "",
              ("Test split, both sides and both targets pooled; `paired_diff_bps` = baseline - model on the same "
               "orders (positive = model tracks better), 95 % CI clustered by origin day. `spread_bps` = std of "
               "the signed diff; `model_spread_ratio` = model spread / policy spread, 95 % interval from a paired "
               "bootstrap of origin days (500 draws). `dynamic_forecast` = the model's volume forecast used alone "
               "as a schedule (no learned heads)."), "",
              md_table(fixed), "", verdict(fixed), "", spread_verdict(fixed), ""]
    if "model_blend" in fixed.index:
        lines += [spread_verdict(fixed, model="model_blend"), ""]
    if curves is not None:
        lines += ["### Volume-curve error of each schedule (fixed duration, buy-VWAP quantity order)", "",
                  ("Mean over test windows and bars s = 0 .. H-2 of |cumulative allocation - cumulative realised "
                   "volume share| [% of the order]; `ratio_to_static` < 1: a better forecast of the realised curve "
                   "than the static one."), "", md_table(curves, 3), ""]
    lines += ["## Headline 2: flexible duration (beat), mean improvement [bps] per min duration", "",
              ("Both sides and both targets pooled; `model_minus_rule_*` = paired model - FlexibleRule with a 95 % "
               "CI clustered by origin day. Notional-target orders vs TWAP earn a small positive 'improvement' "
               "with no skill (harmonic vs arithmetic mean): compare with the TWAP column."), "",
              md_table(flex), "", "Pooled over all min durations:", "", md_table(pooled), ""]
    if by_side is not None:
        lines += ["Pooled over all min durations, per side:", "", md_table(by_side), ""]
    if png is not None:
        lines += [f"![improvement by min duration]({png.name})", ""]
    lines += ["## Configurations tried (validation numbers only; chosen by lowest validation spread of the fixed VWAP "
              "column)", "",
              md_table(tuning, 3), "",
              (f"Full distribution table (mean, std, median, P5, P95, Q25, Q75 per policy x side x benchmark x "
               f"target x min duration x objective): `real_data_{name}.csv`."), ""]
    (out / f"real_data_{name}.md").write_text("\n".join(lines), encoding="utf-8")


# --------------------------------------------------------------------------------------------------------
# Machine-readable summary (read by benchmarks/render_readme.py)
# --------------------------------------------------------------------------------------------------------
def _pooled_stats(groups: pd.DataFrame, mean: pd.Series, std: pd.Series) -> tuple[float, float]:
    """Mean and std (ddof=1) of the union of groups given their counts, means and stds."""
    n = groups["count"].to_numpy(np.float64)
    m, sd = mean.to_numpy(np.float64), std.to_numpy(np.float64)
    total = n.sum()
    grand = float((n * m).sum() / total)
    ss = float(((n - 1) * sd ** 2).sum() + (n * (m - grand) ** 2).sum())
    return grand, float(np.sqrt(ss / (total - 1)))


def headline_summary(setup: DataSetup, table: pd.DataFrame, fixed_ci: pd.DataFrame,
                     rule_ci: pd.DataFrame, by_side: pd.DataFrame | None = None) -> dict[str, Any]:
    """The README's numbers of one data set, from the committed kinds of tables only.

    Args:
        setup: The data set.
        table: :func:`lems.evaluation.backtest.summary` of the test frame (the ``real_data_<name>.csv`` file).
        fixed_ci: Per baseline, ``paired_diff_bps``, ``ci_low``, ``ci_high`` of the fixed VWAP |diff| (baseline -
            model, :func:`fixed_table`).
        rule_ci: Per benchmark, ``model_minus_rule_mean_diff``, ``_ci_low``, ``_ci_high`` of the pooled flexible
            improvement (:func:`pooled_flexible`).
        by_side: :func:`flexible_by_side` (per benchmark and side), or None (older results without it).

    Returns:
        ``fixed``: per policy ``mean_abs_bps`` and ``std_diff_bps`` (std of the signed diff, pooled exactly from
        the per-group means and stds: ``diff = -improvement`` for buys, ``+improvement`` for sells);
        ``fixed_paired``: per baseline the paired interval and ``significant``; ``flexible``: per benchmark and
        policy the pooled mean improvement [bps]; ``flexible_vs_rule``: per benchmark the paired interval;
        ``flexible_vs_rule_by_side``: per benchmark and side, the model's and the rule's mean and the paired
        interval (when ``by_side`` is given).
    """
    def significant(low: float, high: float) -> bool:
        return bool(low > 0 or high < 0)

    track = table[(table["objective"] == "track") & (table["benchmark"] == "vwap")]
    fixed = {}
    for policy, rows in track.groupby("policy", sort=False):
        sign = np.where(rows["side"] == "buy", -1.0, 1.0)
        mean_abs, _ = _pooled_stats(rows, rows["tracking_error_bps_mean"], rows["tracking_error_bps_std"])
        _, std = _pooled_stats(rows, rows["improvement_bps_mean"] * sign, rows["improvement_bps_std"])
        fixed[str(policy)] = {"mean_abs_bps": mean_abs, "std_diff_bps": std, "orders": int(rows["count"].sum())}
    flex = table[table["objective"] == "beat"]
    flexible: dict[str, dict[str, float]] = {}
    for (benchmark, policy), rows in flex.groupby(["benchmark", "policy"], sort=False):
        flexible.setdefault(str(benchmark), {})[str(policy)] = float(
            (rows["improvement_bps_mean"] * rows["count"]).sum() / rows["count"].sum())
    sides = {}
    for (benchmark, side), r in ([] if by_side is None else by_side.iterrows()):
        sides.setdefault(str(benchmark), {})[str(side)] = {
            "model": float(r["model"]), "flexible_rule": float(r["flexible_rule"]),
            "mean_diff": float(r["model_minus_rule_mean_diff"]), "ci_low": float(r["model_minus_rule_ci_low"]),
            "ci_high": float(r["model_minus_rule_ci_high"]),
            "significant": significant(r["model_minus_rule_ci_low"], r["model_minus_rule_ci_high"])}
    return {
        "dataset": setup.name, "symbols": list(setup.symbols), "n_ahead": setup.n_ahead,
        "test_start": setup.val_end, "fixed": fixed,
        "fixed_paired": {str(b): {"mean_diff": float(r["paired_diff_bps"]), "ci_low": float(r["ci_low"]),
                                  "ci_high": float(r["ci_high"]),
                                  "significant": significant(r["ci_low"], r["ci_high"])}
                         for b, r in fixed_ci.dropna(subset=["ci_low"]).iterrows()},
        "spread": spread_summary(fixed_ci),
        "flexible": flexible,
        "flexible_vs_rule": {str(b): {"mean_diff": float(r["model_minus_rule_mean_diff"]),
                                      "ci_low": float(r["model_minus_rule_ci_low"]),
                                      "ci_high": float(r["model_minus_rule_ci_high"]),
                                      "significant": significant(r["model_minus_rule_ci_low"],
                                                                 r["model_minus_rule_ci_high"])}
                             for b, r in rule_ci.iterrows()},
        **({"flexible_vs_rule_by_side": sides} if sides else {}),
    }


def write_summary(out: Path, name: str, summary: dict[str, Any]) -> Path:
    """``real_data_<name>.json``."""
    path = out / f"real_data_{name}.json"
    path.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return path


def read_md_table(text: str, first_column: str) -> pd.DataFrame:
    """The first Markdown table of ``text`` (as written by :func:`md_table`) whose first column is
    ``first_column``, indexed by it; numeric cells parsed, empty cells NaN."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and cells[0] == first_column:
            body = []
            for row in lines[i + 2:]:
                if not row.startswith("|"):
                    break
                body.append([c.strip() for c in row.strip().strip("|").split("|")])
            frame = pd.DataFrame(body, columns=cells).set_index(first_column).replace("", np.nan)
            for col in frame.columns:
                numbers = pd.to_numeric(frame[col], errors="coerce")
                if numbers.notna().sum() == frame[col].notna().sum():  # every filled cell is a number
                    frame[col] = numbers
            return frame
    raise ValueError(f"no table with first column {first_column!r}")


def spread_summary(fixed_ci: pd.DataFrame) -> dict[str, Any]:
    """The spread target's numbers: the best classical baseline and the model's (and the blend's) spread ratio to it
    with its day-bootstrap interval (empty when the table has no spread columns)."""
    if "spread_bps" not in fixed_ci.columns:
        return {}
    classical = [p for p in ("static_vwap", "twap") if p in fixed_ci.index]
    best = min(classical, key=lambda p: float(fixed_ci.loc[p, "spread_bps"]))
    out = {"best_classical": best, "best_classical_bps": float(fixed_ci.loc[best, "spread_bps"])}
    for who, prefix in (("model", "model_spread_ratio"), ("model_blend", "blend_spread_ratio")):
        if prefix in fixed_ci.columns and who in fixed_ci.index:
            low, high = ("ratio_ci_low", "ratio_ci_high") if who == "model" else ("blend_ratio_ci_low",
                                                                                   "blend_ratio_ci_high")
            out[who] = {"spread_bps": float(fixed_ci.loc[who, "spread_bps"]),
                        "ratio": float(fixed_ci.loc[best, prefix]), "ci_low": float(fixed_ci.loc[best, low]),
                        "ci_high": float(fixed_ci.loc[best, high])}
    return out


def summary_from_results(out: Path, setup: DataSetup) -> dict[str, Any]:
    """Rebuild the summary of a committed run without retraining: distribution table from
    ``real_data_<name>.csv``; the paired intervals (per-order data, not committed) from the two tables of
    ``real_data_<name>.md`` that hold them (2 decimals)."""
    table = pd.read_csv(out / f"real_data_{setup.name}.csv")
    text = (out / f"real_data_{setup.name}.md").read_text(encoding="utf-8")
    fixed_ci = read_md_table(text, "policy")
    keep = [c for c in fixed_ci.columns if c in ("paired_diff_bps", "ci_low", "ci_high", "spread_bps")
            or "ratio" in c]
    fixed_ci = fixed_ci[keep]
    rule_ci = read_md_table(text.split("Pooled over all min durations:")[1], "benchmark")
    by_side = None
    if "Pooled over all min durations, per side:" in text:
        by_side = read_md_table(text.split("Pooled over all min durations, per side:")[1], "benchmark")
        by_side = by_side.set_index("side", append=True)
    return headline_summary(setup, table, fixed_ci, rule_ci, by_side)


# --------------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", choices=[*SETUPS, "both"], default="both", help="'both': crypto and equities")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA,
                   help="folder holding crypto_1h/, equities_1h/ and crypto_1m/")
    p.add_argument("--minutes", type=float, default=12.0, help="wall-clock training budget per configuration")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lookback", type=int, default=None, help="bars (default: 48 crypto, 35 equities)")
    p.add_argument("--hidden-size", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--learning-rate", type=float, default=2e-3)
    p.add_argument("--epochs", type=int, default=100, help="max epochs (the budget usually stops first)")
    p.add_argument("--max-steps", type=int, default=None,
                   help="max optimizer steps (a machine-independent budget; --minutes stays a wall-clock cap)")
    p.add_argument("--patience", type=int, default=3, help="early-stopping patience [epochs]")
    p.add_argument("--train-stride", type=int, default=None, help="thin training origins (default per set)")
    p.add_argument("--val-stride", type=int, default=4, help="thin validation origins used for early stopping")
    p.add_argument("--fast-compile", action="store_true", help="JAX: lower XLA optimisation (faster compile)")
    p.add_argument("--variant", action="append", default=[],
                   help="extra configuration 'name:key=value,...' (TrainConfig fields, or model.<arg> for a "
                        "LargeExecutionModel argument), trained with the same budget; the lowest validation spread "
                        "of the fixed VWAP column is evaluated on test")
    p.add_argument("--save-model", type=Path, default=None, help="folder: save the chosen model as <name>.keras")
    p.add_argument("--holdout", default=None, help="leave one symbol out: train/validate without it, test on it")
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--verbose", type=int, default=2)
    p.add_argument("--summary-only", action="store_true",
                   help="no training: rebuild real_data_<name>.json from the committed .csv and .md in --out")
    return p.parse_args(argv)


def run_dataset(args: argparse.Namespace, setup: DataSetup, command: str) -> None:
    """Train, choose on validation, evaluate on test, write the results of one data set."""
    t0, cpu0 = time.perf_counter(), time.process_time()
    files = data_files(args.data, setup)
    config = base_config(args, setup, files)
    stride = args.train_stride or setup.train_stride
    variants = [("base", {})] + [parse_variant(v) for v in args.variant]
    cache: dict[int, tuple] = {}
    trials, best = [], None
    label = setup.name if args.holdout is None else f"{setup.name}_holdout_{args.holdout}"
    for name, changes in variants:
        config_changes, overrides = split_changes(changes)
        cfg = config.replace(**config_changes)
        if cfg.lookback not in cache:
            cache[cfg.lookback] = build_splits(files, setup, cfg.lookback, args.holdout)
        splits = cache[cfg.lookback]
        print(f"[{label}] {name}: windows train/val/test = {[len(s) for s in splits]}", flush=True)
        run = train_one(cfg, splits, stride, args.val_stride, args.verbose, overrides)
        run.update(validation_tracking(run["model"], thin(splits[1], args.val_stride)))
        trials.append({"variant": name, "changes": json.dumps(changes) if changes else "(base)",
                       **{k: run[k] for k in ("best_val_loss", "best_epoch", "best_flexible_epoch",
                                              "val_flex_untrained", "rule_prior", "epochs_run", "stopped_by",
                                              "fit_wall_s", "train_cpu_s", "n_train", "val_te_model",
                                              "val_te_static", "val_te_reduction_pct", "val_spread_model",
                                              "val_spread_ratio", "val_flex_imp_model")}})
        print(f"[{label}] {name}: {trials[-1]}", flush=True)
        if best is None or run["val_spread_model"] < best[2]["val_spread_model"]:
            best = (name, cfg, run, splits)
    name, cfg, run, (train_set, val_set, test_set) = best
    blend = fit_blend(run["model"], thin(val_set, args.val_stride))
    frame = evaluate(run["model"], test_set, blend)
    fixed, flex, pooled = fixed_table(frame), flexible_table(frame), pooled_flexible(frame)
    by_side = flexible_by_side(frame)
    schedules = {"model": ModelPolicy(run["model"]), "static_vwap": StaticVWAP(), "twap": TWAP()}
    if getattr(run["model"], "volume_forecast", False):
        schedules["dynamic_forecast"] = ForecastSchedule(run["model"])
    schedules["model_blend"] = blend
    curves = curve_error(schedules, test_set)
    tuning = pd.DataFrame(trials).set_index("variant")
    meta = {
        "command": f"`{command}`", **provenance_fields(),
        "data": f"{', '.join(setup.symbols)} ({setup.folder}, {setup.bar_label} bars), tz {setup.tz}"
                + ("" if args.holdout is None else f"; leave one symbol out: {args.holdout} only in test, never "
                                                   f"in training or validation"),
        "windows (lookback, n_ahead)": f"{cfg.lookback}, {cfg.n_ahead} bars; no trading limits (min_rate 0, "
                                       f"max_rate 1)",
        "train": f"{len(train_set)} windows ({span(train_set)}), every {stride}-th origin per asset used: "
                 f"{run['n_train']}",
        "validation": f"{len(val_set)} windows ({span(val_set)}); early stopping on every {args.val_stride}-th: "
                      f"{run['n_val_fit']}",
        "test": f"{len(test_set)} windows ({span(test_set)}), "
                + ("all evaluated" if setup.test_stride == 1 else f"every {setup.test_stride}-th origin per asset"),
        "model": f"LargeExecutionModel(hidden_size={cfg.hidden_size}, hidden_rnn_layer={cfg.hidden_rnn_layer}, "
                 f"num_heads={cfg.num_heads}, num_embedding={cfg.num_embedding}, fused_mlp_hidden_dim="
                 f"{cfg.fused_mlp_hidden_dim}, kan_basis={cfg.kan_basis!r}, use_prior=True, volume_forecast="
                 f"{getattr(run['model'], 'volume_forecast', False)}, forecast_loss_weight="
                 f"{getattr(run['model'], 'forecast_loss_weight', 0):g}, tracking_loss_weight="
                 f"{getattr(run['model'], 'tracking_loss_weight', 0):g})",
        "training": f"Adam lr {cfg.learning_rate:g}, batch {cfg.batch_size}, lem_loss (+ the model's auxiliary "
                    f"training losses), patience {cfg.patience} epochs on train()'s validation scores "
                    f"({cfg.selection}: tracking error for the tracking weights, flexible improvement for the "
                    f"flexible-only ones), seed {cfg.seed}, budget {cfg.max_steps or 'no cap on'} steps and "
                    f"{args.minutes:g} min wall clock per configuration (2-core CPU shared with other jobs, "
                    f"JAX {'fast compile' if cfg.fast_compile else 'default XLA'})",
        "chosen configuration": f"{name} (lowest validation spread {run['val_spread_model']:.2f} bps; best "
                                f"weights and early stopping by train()'s validation scores: tracking weights of epoch "
                                f"{run['best_epoch']} of {run['epochs_run']}, flexible-only weights of "
                                f"{_flexible_epoch_words(run.get('best_flexible_epoch'))}, stopped by {run['stopped_by']}, fit {run['fit_wall_s']:.0f} s "
                                f"wall, {run['train_cpu_s']:.0f} s CPU)",
        "rule prior thresholds": run["rule_prior"],
        "baselines": "TWAP (uniform), StaticVWAP(n_days=20) (causal seasonal volume curve), "
                     "FlexibleRule(threshold=0, base='static')",
        "volume forecast (trained)": forecast_parameters(run["model"]),
        "model_blend": (f"fixed-duration VWAP orders: {blend_weights(blend, 'vwap')} (weights of least mean square "
                        f"tracking error on the {len(thin(val_set, args.val_stride))} validation windows used for early "
                        "stopping, lems.policies.blend); flexible columns: the model's"),
        "total wall time": f"{time.perf_counter() - t0:.0f} s ({time.process_time() - cpu0:.0f} s CPU, all threads)",
    }
    write_results(args.out, label, meta, fixed, flex, pooled, tuning, frame, curves, by_side)
    if args.save_model is not None:
        args.save_model.mkdir(parents=True, exist_ok=True)
        run["model"].save(args.save_model / f"{label}.keras")
    write_summary(args.out, label, headline_summary(setup, summary(frame), fixed, pooled, by_side))
    print(f"[{label}] fixed VWAP tracking error (bps):\n{fixed.round(3).to_string()}", flush=True)
    print(f"[{label}] volume-curve error:\n{curves.round(4).to_string()}", flush=True)
    print(f"[{label}] flexible improvement (bps), per side:\n{by_side.round(3).to_string()}", flush=True)
    print(f"[{label}] wrote {args.out / f'real_data_{label}.md'}", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    command = command_line("real_data", argv)
    names = ["crypto", "equities"] if args.dataset == "both" else [args.dataset]
    if args.summary_only:
        for name in names:
            print(f"wrote {write_summary(args.out, name, summary_from_results(args.out, SETUPS[name]))}")
        return
    for name in names:
        data_files(args.data, SETUPS[name])  # fail fast, before any training
    for name in names:
        run_dataset(args, SETUPS[name], command)


if __name__ == "__main__":
    main()
