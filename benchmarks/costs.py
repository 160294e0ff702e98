"""Execution costs benchmark (issue 11): does the flexible-duration gain survive order size and market impact?

Setups (time splits with purging, docs/execution.md semantics, no trading limits):

* ``crypto_1h``: BTCUSDT + ETHUSDT 1h (Binance spot), ``n_ahead`` 12, lookback 48; train through 2020-06-30,
  validate 2020-07..2020-12, test 2021 (the split of ``benchmarks/real_data.py``).
* ``crypto_1m``: ALGO, DOT, LINK, LTC USDT-M perpetuals, 1-minute bars of February 2026, ``n_ahead`` 60, lookback
  120; train: windows ending before 2026-02-22 (three weeks), validate: 2026-02-22 .. 2026-02-24 (three days),
  test: origins from 2026-02-25 (four days). Windows every 5 minutes; training uses every 10th minute, validation
  and test every 15th (overlapping horizons are strongly dependent anyway). Confidence intervals cluster by origin day (1h) or
  origin hour (1m), all assets together.

Execution conditions (:class:`lems.execution.ExecutionConditions`): order sizes of 1 %, 5 % and 20 % of the
EXPECTED horizon volume (lookback mean bar volume x H, causal); cost model ``SquareRootImpact(coef=1.0,
delta=0.5) + SpreadCost(half_spread_bps=1.0)``: the square-root law applied bar by bar, ``c_s = sigma *
sqrt(q_s / V_s)`` with ``sigma`` the lookback's per-bar volatility (``Y = 1`` of Toth et al. 2011 per bar, i.e. the
impact of a bar's trading decays before the next bar: the low end of the metaorder law, which with ``coef =
sqrt(H)`` would be 3.5x (1h) to 7.7x (1m) larger), plus a fixed half-spread of 1 bp paid on every unit; no
participation cap; the VWAP benchmark is the market's (the order's own volume not included).

Policies: the frictionless model (``lem_loss``), the cost-aware model trained per size
(:func:`lems.loss.make_lem_loss` with the same cost model and that size, ``risk_aversion`` 0), TWAP, the static
volume curve, the flexible rule (threshold 0, static base) and Almgren-Chriss (linear temporary impact ``eta``
matched to the square-root cost of a uniform schedule at that size at the training median ``sigma``; ``lambda``
chosen per size on the validation mean implementation shortfall over a grid of urgencies ``kappa H``). Models:
the same small :class:`lems.models.LargeExecutionModel` for every size, Adam, a fixed step budget, and
:func:`lems.training.train`'s selection on the validation windows (scored net of the size's costs for a cost-aware
model): the rule prior's thresholds tuned before the first step (:class:`lems.training.RulePriorTuning`), the
tracking weights of the best validation tracking error and the flexible weights of the best validation flexible
improvement, the tuned start included (:class:`lems.training.BestWeights`); a wall-clock cap guards the budget on a
loaded machine. Epochs are numbered from 1; a flexible epoch of 0 is the tuned, untrained start.

Everything is chosen on validation; the test split only reports. Trained models and per-configuration results
are checkpointed under ``--work`` (a rerun resumes); the data is never copied into the repository.

Usage (from the repository root)::

    nohup python -m benchmarks.costs --dataset crypto_1h > /tmp/costs_1h.log 2>&1 &
    nohup python -m benchmarks.costs --dataset crypto_1m > /tmp/costs_1m.log 2>&1 &

Writes ``benchmarks/results/costs/costs_<dataset>.md`` and ``.csv`` (one row per condition x policy).
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
from lems.batching import PaddedBatches
from lems.data.estimates import lookback_half_spread, lookback_volatility
from lems.data.loaders import read_bars
from lems.data.targets import cost_targets
from lems.data.windows import make_windows
from lems.evaluation.backtest import backtest
from lems.evaluation.stats import clustered_mean_ci
from lems.execution import (
    IS_VWAP_ORDER,
    ExecutionConditions,
    OrderSize,
    SpreadCost,
    SquareRootImpact,
)
from lems.loss import lem_loss, make_lem_loss
from lems.policies import TWAP, AlmgrenChriss, FlexibleRule, ModelPolicy, StaticVWAP
from lems.training import (
    TRACKING_KEY,
    BestWeights,
    RulePriorTuning,
    StepBudget,
    TimeBudget,
    TrainConfig,
    ValidationScores,
    build_model,
)
from lems.utils import set_random_seed

RESULTS = results_dir("costs")
SIZES = (0.01, 0.05, 0.20)
IMPACT_COEF, IMPACT_DELTA, HALF_SPREAD_BPS = 1.0, 0.5, 1.0
#: Almgren-Chriss urgencies tried on validation: kappa * H (0 = TWAP).
AC_URGENCIES = (0.0, 0.5, 1.0, 2.0, 4.0)
FRICTIONLESS = "frictionless"
VWAP_TYPES, TWAP_TYPES = IS_VWAP_ORDER, ~IS_VWAP_ORDER  # masks over the seed layout's order types


@dataclass(frozen=True)
class Setup:
    """One data set of the benchmark (see the module docstring).

    Attributes:
        name: label. folder: sub-folder of ``--data``. symbols: file stems. n_ahead, lookback: bars.
        train_end, val_end: split dates (UTC). window_stride: origins kept when building windows [bars].
        train_stride, val_stride, test_stride: origins used (multiples of ``window_stride``) [bars].
        steps: default optimizer steps per model. epoch_steps: steps between validation passes.
        batch_size: default windows per step. cluster: origin-time bucket of the confidence intervals (pandas
            frequency: at least the horizon, so that overlapping horizons fall mostly in one cluster).
    """

    name: str
    folder: str
    symbols: tuple[str, ...]
    n_ahead: int
    lookback: int
    train_end: str
    val_end: str
    window_stride: int
    train_stride: int
    val_stride: int
    test_stride: int
    steps: int
    epoch_steps: int
    batch_size: int
    cluster: str


SETUPS = {
    "crypto_1h": Setup("crypto_1h", "crypto_1h", ("BTCUSDT", "ETHUSDT"), 12, 48, "2020-07-01", "2021-01-01",
                       1, 2, 4, 1, 600, 150, 128, "D"),
    "crypto_1m": Setup("crypto_1m", "crypto_1m", ("ALGOUSDT", "DOTUSDT", "LINKUSDT", "LTCUSDT"), 60, 120,
                       "2026-02-22", "2026-02-25", 5, 10, 15, 15, 160, 40, 64, "h"),
}


def cost_model():
    """The benchmark's cost model (module docstring)."""
    return SquareRootImpact(coef=IMPACT_COEF, delta=IMPACT_DELTA) + SpreadCost(half_spread_bps=HALF_SPREAD_BPS)


def conditions(size: float):
    """Execution conditions of one order size (fraction of the expected horizon volume)."""
    return ExecutionConditions(OrderSize(participation=size), cost_model())


def size_tag(size: float | None) -> str:
    return FRICTIONLESS if size is None else f"size_{size * 100:g}pct"


# --------------------------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------------------------
def build_splits(data_root: Path, setup: Setup):
    """``(train, val, test)`` WindowSets, thinned as the setup says."""

    files = [Path(data_root) / setup.folder / f"{s}.csv" for s in setup.symbols]
    missing = [str(p) for p in files if not p.is_file()]
    if missing:
        sys.exit(f"costs: data not found ({', '.join(missing)}); pass --data (the data is never part of the repo)")
    windows = make_windows(read_bars([str(p) for p in files]), setup.lookback, setup.n_ahead, tz="UTC",
                           stride=setup.window_stride)
    train, val, test = windows.split(setup.train_end, setup.val_end)
    return thin(train, setup.train_stride), thin(val, setup.val_stride), thin(test, setup.test_stride)


# --------------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------------
def model_config(args: argparse.Namespace, setup: Setup):
    return TrainConfig(lookback=setup.lookback, n_ahead=setup.n_ahead, hidden_size=args.hidden_size,
                       hidden_rnn_layer=1, num_heads=2, num_embedding=4, fused_mlp_hidden_dim=16, kan_basis="rbf",
                       batch_size=batch_size(args, setup), learning_rate=args.learning_rate, seed=args.seed)


def batch_size(args: argparse.Namespace, setup: Setup) -> int:
    return args.batch_size or setup.batch_size


def loss_for(size: float | None):
    """``lem_loss`` (frictionless) or the cost-aware loss of one order size."""
    return lem_loss if size is None else make_lem_loss(cost_model(), order_participation=size)


def batches(windows, targets: np.ndarray, batch_size: int, shuffle: bool, seed: int):
    n = len(windows)
    x = (np.asarray(windows.X, np.float32), np.zeros((n, 1), np.float32), np.ones((n, 1), np.float32))
    return PaddedBatches(x, targets.astype(np.float32), batch_size, shuffle=shuffle, seed=seed,
                         drop_remainder=shuffle)


def train_model(args, setup: Setup, splits, targets, size: float | None, work: Path):
    """Train (or reload from ``work``) the model of one size; returns ``(model, info)``."""
    import keras

    path, info_path = work / f"{setup.name}_{size_tag(size)}.keras", work / f"{setup.name}_{size_tag(size)}.json"
    if path.is_file() and info_path.is_file():
        return keras.models.load_model(path, compile=False), json.loads(info_path.read_text())
    train, val, _ = splits
    set_random_seed(args.seed)
    config = model_config(args, setup)
    model = build_model(config, n_features=train.X.shape[-1])
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate), loss=loss_for(size))
    # train()'s selection: validation scored as reported (net of this size's costs for a cost-aware model), the
    # rule prior's thresholds tuned on it before the first step, tracking and flexible weights kept separately.
    scores = ValidationScores(val, 0.0, 1.0, batch_size=256, conditions=None if size is None else conditions(size))
    tuning = RulePriorTuning(scores)
    best = BestWeights(TRACKING_KEY, patience=args.patience, flexible=scores)
    steps = args.steps or setup.steps
    budgets = [StepBudget(steps), TimeBudget(args.max_minutes * 60.0)]
    start = time.perf_counter()
    history = model.fit(batches(train, targets[0], batch_size(args, setup), True, args.seed),
                        validation_data=batches(val, targets[1], 256, False, 0), epochs=10_000,
                        steps_per_epoch=setup.epoch_steps, callbacks=[scores, tuning, best, *budgets], verbose=2)
    thresholds = tuning.thresholds
    info = {"size": size, "loss": repr(loss_for(size)) if size is not None else "lem_loss",
            "fit_s": time.perf_counter() - start, "steps": budgets[0].steps, "step_budget": steps,
            "stopped_by_time": budgets[1].triggered, "epochs": len(history.history["loss"]),
            "best_tracking_epoch": best.best_epoch + 1, "best_val_tracking_bps": best.best,
            "best_flexible_epoch": (None if best.best_flexible_epoch is None else best.best_flexible_epoch + 1),
            "untrained_val_flexible_bps": best.untrained_flexible, "best_val_flexible_bps": best.best_flexible,
            "rule_thresholds_median": None if thresholds is None else float(np.median(thresholds))}
    model.save(path)
    info_path.write_text(json.dumps(info))
    return model, info


# --------------------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------------------
def window_numbers(frame: pd.DataFrame, n: int, horizon: int) -> dict[str, np.ndarray]:
    """Per-window numbers [bps] of one policy's backtest frame (rows in C order of ``(n, H+1, 4, 2)``).

    ``flex_*``: flexible columns (all min durations), ``fixed_*``: the fixed column; ``vwap``: the VWAP order types
    (both sides, both targets); ``*_shortfall``: implementation shortfall vs arrival of the same orders (positive =
    cost); ``*_buy_shortfall``: the buy / quantity order alone (its dispersion is the risk).
    """
    def cube(column: str) -> np.ndarray:
        return frame[column].to_numpy(np.float64).reshape(n, horizon + 1, 4, 2)

    imp = cube("improvement_bps")
    out = {"flex_vwap_imp": imp[:, :horizon][:, :, VWAP_TYPES].mean(axis=(1, 2, 3)),
           "flex_twap_imp": imp[:, :horizon][:, :, TWAP_TYPES].mean(axis=(1, 2, 3)),
           "fixed_vwap_imp": imp[:, horizon][:, VWAP_TYPES].mean(axis=(1, 2)),
           "fixed_vwap_te": cube("tracking_error_bps")[:, horizon][:, VWAP_TYPES].mean(axis=(1, 2)),
           "fixed_buy_vwap_diff": frame["diff"].to_numpy().reshape(n, horizon + 1, 4, 2)[:, horizon, 0, 0] * 1e4}
    if "shortfall_bps" in frame:
        for name, column in (("shortfall", "shortfall_bps"), ("impact", "impact_bps")):
            values = cube(column)
            out[f"flex_{name}"] = values[:, :horizon][:, :, VWAP_TYPES].mean(axis=(1, 2, 3))
            out[f"fixed_{name}"] = values[:, horizon][:, VWAP_TYPES].mean(axis=(1, 2))
        shortfall = cube("shortfall_bps")
        out["fixed_buy_shortfall"] = shortfall[:, horizon, 0, 0]
        out["flex_buy_shortfall"] = shortfall[:, :horizon, 0, 0].mean(axis=1)
    return out


def evaluate(policy, windows, size: float | None) -> dict[str, np.ndarray]:
    """Per-window numbers of one policy on windows, frictionless (``size`` None) or net of costs."""
    frame = backtest({"p": policy}, windows, conditions=None if size is None else conditions(size))
    return window_numbers(frame, len(windows), int(windows.n_ahead))


def ac_eta(size: float, sigma: float, horizon: int) -> float:
    """Linear temporary impact matching the square-root cost of a uniform schedule of ``size``.

    A uniform schedule trades ``n = 1/H`` per bar at participation ``size`` (constant volume), paying
    ``coef sigma sqrt(size)``; the Almgren-Chriss cost ``eta n`` matches it with ``eta = coef sigma sqrt(size) H``.
    """
    return IMPACT_COEF * sigma * np.sqrt(size) * horizon


def ac_lambda(urgency: float, sigma: float, eta: float, horizon: int) -> float:
    """Risk aversion giving ``kappa H = urgency`` (inverse of :func:`lems.policies.almgren_chriss_kappa`)."""
    kappa = urgency / horizon
    return float((2.0 * np.sinh(kappa / 2.0)) ** 2 * eta / sigma**2)


def choose_ac(val, size: float, sigma: float) -> tuple[Any, pd.DataFrame]:
    """Almgren-Chriss for one size: ``lambda`` with the lowest validation mean shortfall (fixed VWAP orders)."""
    horizon = int(val.n_ahead)
    eta = ac_eta(size, sigma, horizon)
    rows, best = [], None
    for urgency in AC_URGENCIES:
        lam = ac_lambda(urgency, sigma, eta, horizon)
        policy = AlmgrenChriss(risk_aversion=lam, eta=eta, name="almgren_chriss")
        numbers = evaluate(policy, val, size)
        rows.append({"size": size, "kappa_H": urgency, "risk_aversion": lam, "eta": eta,
                     "val_shortfall_mean_bps": numbers["fixed_shortfall"].mean(),
                     "val_buy_shortfall_std_bps": numbers["fixed_buy_shortfall"].std()})
        if best is None or rows[-1]["val_shortfall_mean_bps"] < best[0]:
            best = (rows[-1]["val_shortfall_mean_bps"], policy)
    return best[1], pd.DataFrame(rows)


def summarise(numbers: dict[str, np.ndarray], days: np.ndarray) -> dict[str, float]:
    """Means over windows, risks (std of the buy orders) and the 95 % half-width of the flexible gain."""
    out = {}
    for key, values in numbers.items():
        if "buy" in key:
            out[key.replace("buy_", "") + "_std"] = float(np.std(values, ddof=1))
        else:
            out[key] = float(values.mean())
    ci = clustered_mean_ci(numbers["flex_vwap_imp"], days)
    out["flex_vwap_imp_ci95"] = ci["ci_high"] - ci["mean"]
    return out


def paired(a: np.ndarray, b: np.ndarray, days: np.ndarray) -> str:
    """``mean [low, high]`` of the per-window paired difference ``a - b`` (clustered by origin time) [bps]."""
    ci = clustered_mean_ci(a - b, days)
    return f"{ci['mean']:+.2f} [{ci['ci_low']:+.2f}, {ci['ci_high']:+.2f}]"


# --------------------------------------------------------------------------------------------------------
# Tables
# --------------------------------------------------------------------------------------------------------
POLICY_ORDER = ("model_cost", "model_free", "flexible_rule", "almgren_chriss", "static_vwap", "twap")
TABLE_COLUMNS = {
    "flex_vwap_imp": "flex vs VWAP: mean imp [bps]", "flex_vwap_imp_ci95": "± 95 %",
    "flex_shortfall": "flex vs arrival: mean IS [bps]", "flex_impact": "flex: impact [bps]",
    "fixed_vwap_imp": "fixed vs VWAP: mean imp [bps]", "fixed_vwap_te": "fixed vs VWAP: mean |diff| [bps]",
    "fixed_shortfall": "fixed vs arrival: mean IS [bps]", "fixed_shortfall_std": "fixed IS std (buy) [bps]",
    "fixed_impact": "fixed: impact [bps]",
}


def condition_table(results: pd.DataFrame, condition: str) -> pd.DataFrame:
    part = results[results["condition"] == condition].set_index("policy")
    cols = [c for c in TABLE_COLUMNS if c in part and part[c].notna().any()]
    order = [p for p in POLICY_ORDER if p in part.index]
    return part.loc[order, cols].rename(columns=TABLE_COLUMNS)


GAIN_POLICIES = ("model_cost", "model_free", "flexible_rule")


def gains(numbers: dict[str, dict[str, np.ndarray]], days: np.ndarray) -> dict[str, dict[str, float]]:
    """Flexible gain over TWAP vs VWAP [bps] of each flexible policy at one condition, with its 95 % interval.

    Gain = the policy's flexible improvement vs VWAP minus TWAP's on the same window (TWAP pays its own costs at
    the same size), averaged over windows; the interval is clustered by origin time (``Setup.cluster``).
    """
    twap = numbers["twap"]["flex_vwap_imp"]
    return {p: clustered_mean_ci(numbers[p]["flex_vwap_imp"] - twap, days) for p in GAIN_POLICIES if p in numbers}


def survival_table(gain_rows: dict[str, dict[str, dict[str, float]]]) -> pd.DataFrame:
    """Gain [95 % CI] per condition and the share of the frictionless gain that survives [%].

    Survival = gain / the FRICTIONLESS gain of the frictionless model (reference of both models) or of the rule.
    """
    free = gain_rows[FRICTIONLESS]
    reference = {"model_free": free["model_free"]["mean"], "model_cost": free["model_free"]["mean"],
                 "flexible_rule": free["flexible_rule"]["mean"]}
    rows = []
    for condition, by_policy in gain_rows.items():
        row = {"condition": condition}
        for policy in GAIN_POLICIES:
            if policy in by_policy:
                ci = by_policy[policy]
                row[f"{policy} gain [bps]"] = f"{ci['mean']:+.2f} [{ci['ci_low']:+.2f}, {ci['ci_high']:+.2f}]"
                ok = reference[policy] > 0  # a share of a frictionless LOSS means nothing
                row[f"{policy} survives [%]"] = 100.0 * ci["mean"] / reference[policy] if ok else np.nan
        rows.append(row)
    return pd.DataFrame(rows).set_index("condition")


def verdict(gain_rows: dict[str, dict[str, dict[str, float]]]) -> str:
    """Plain sentences: at each size, does any flexible policy still beat TWAP significantly?"""
    sentences = []
    for condition, by_policy in gain_rows.items():
        if condition == FRICTIONLESS:
            continue
        size = condition.split("_")[1].replace("pct", " %")
        best = max(by_policy, key=lambda p: by_policy[p]["ci_low"])  # the most surely positive gain
        ci = by_policy[best]
        if ci["ci_low"] > 0:
            sentences.append(f"At {size}, the flexible gain survives: {best} keeps {ci['mean']:+.2f} bps over TWAP "
                             f"(95 % CI [{ci['ci_low']:+.2f}, {ci['ci_high']:+.2f}]).")
        else:
            sentences.append(f"At {size}, the flexible gain VANISHES: no flexible policy beats TWAP significantly "
                             f"(best {best}: {ci['mean']:+.2f} bps, 95 % CI [{ci['ci_low']:+.2f}, "
                             f"{ci['ci_high']:+.2f}]).")
    return " ".join(sentences)


def write_results(out: Path, setup: Setup, meta: dict[str, Any], results: pd.DataFrame, gain_rows: dict,
                  pairs: pd.DataFrame, ac_table: pd.DataFrame, trainings: pd.DataFrame) -> None:
    out.mkdir(parents=True, exist_ok=True)
    results.to_csv(out / f"costs_{setup.name}.csv", index=False, float_format="%.6g")
    survival = survival_table(gain_rows)
    cluster = {"D": "day", "h": "hour"}.get(setup.cluster, setup.cluster)
    lines = [f"# Execution costs benchmark: {setup.name}", ""] + [f"- **{k}**: {v}" for k, v in meta.items()]
    lines += ["", "## How much of the frictionless flexible gain survives", "",
              ("Gain = mean flexible-duration improvement vs VWAP (all min durations, both sides, both targets, VWAP "
               "order types) minus TWAP's on the same window at the same order size and costs [bps, 95 % CI clustered "
               f"by origin {cluster}]; survives = gain / the frictionless gain of the frictionless model (`model_free`, also "
               "the reference of `model_cost`) or of the rule itself."), "",
              md_table(survival), "", verdict(gain_rows), "",
              f"## Paired differences on the test windows (flexible vs VWAP, mean [95 % CI, origin-{cluster} clusters], bps)", "",
              md_table(pairs), ""]
    for condition in [FRICTIONLESS] + [size_tag(s) for s in SIZES]:
        if (results["condition"] == condition).any():
            title = "frictionless (no size, no costs)" if condition == FRICTIONLESS else (
                f"order of {condition.split('_')[1].replace('pct', ' %')} of the expected horizon volume, net of costs")
            lines += [f"## {title}", "", md_table(condition_table(results, condition)), ""]
    lines += [("Columns: improvement (positive = better for the trader, both sides), implementation shortfall vs "
               "arrival (IS, positive = cost), its Perold impact part, VWAP tracking error of the fixed column, and "
               "the standard deviation of the buy order's IS (risk)."), "",
              "## Almgren-Chriss: lambda chosen on validation (lowest mean IS of the fixed orders)", "",
              md_table(ac_table, 4), "", "## Training (validation scores, as selected)", "", md_table(trainings, 4), ""]
    (out / f"costs_{setup.name}.md").write_text("\n".join(lines), encoding="utf-8")


# --------------------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", choices=[*SETUPS, "both"], default="both")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--work", type=Path, default=Path("/tmp/lems_costs"), help="checkpoints (models, results)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps per model (default per data set)")
    p.add_argument("--max-minutes", type=float, default=5.0, help="wall-clock cap per model [minutes]")
    p.add_argument("--hidden-size", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=None, help="windows per step (default per data set)")
    p.add_argument("--learning-rate", type=float, default=3e-3)
    p.add_argument("--patience", type=int, default=4, help="validation passes without improvement")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS)
    return p.parse_args(argv)


def checkpointed(path: Path, compute):
    """``compute()`` once; its result (a JSON-able dict of lists) is kept at ``path``."""
    if path.is_file():
        return {k: np.asarray(v) for k, v in json.loads(path.read_text()).items()}
    value = compute()
    path.write_text(json.dumps({k: np.asarray(v).tolist() for k, v in value.items()}))
    return value


def run_dataset(args: argparse.Namespace, setup: Setup, command: str) -> None:

    t0 = time.perf_counter()
    work = args.work / setup.name
    work.mkdir(parents=True, exist_ok=True)
    splits = build_splits(args.data, setup)
    train, val, test = splits
    print(f"[{setup.name}] windows train/val/test = {[len(s) for s in splits]}", flush=True)
    targets = [cost_targets(s, half_spread=HALF_SPREAD_BPS * 1e-4) for s in (train, val)]
    models, trainings = {}, []
    for size in (None, *SIZES):
        model, info = train_model(args, setup, splits, targets, size, work)
        models[size] = model
        trainings.append({"model": size_tag(size), **{k: v for k, v in info.items() if k not in ("size", "loss")}})
        print(f"[{setup.name}] trained {size_tag(size)}: {info}", flush=True)
    sigma = float(np.median(lookback_volatility(train)))
    days = np.asarray(test.origin.floor(setup.cluster).asi8)  # cluster of the intervals
    classical = {"twap": TWAP(), "static_vwap": StaticVWAP(), "flexible_rule": FlexibleRule()}
    rows, pairs, ac_tables, gain_rows = [], [], [], {}
    for size in (None, *SIZES):
        tag = size_tag(size)
        policies = {"model_free": ModelPolicy(models[None])}
        if size is not None:
            policies["model_cost"] = ModelPolicy(models[size])
            ac, table = choose_ac(val, size, sigma)
            ac_tables.append(table)
            policies["almgren_chriss"] = ac
        policies.update(classical)
        numbers = {}
        for name, policy in policies.items():
            numbers[name] = checkpointed(work / f"{tag}_{name}.json", lambda p=policy, s=size: evaluate(p, test, s))
            rows.append({"condition": tag, "policy": name, **summarise(numbers[name], days)})
            print(f"[{setup.name}] {tag} {name}: {rows[-1]}", flush=True)
        gain_rows[tag] = gains(numbers, days)
        for a, b in (("model_cost", "flexible_rule"), ("model_cost", "model_free"), ("model_free", "flexible_rule"),
                     ("model_cost", "almgren_chriss")):
            if a in numbers and b in numbers:
                pairs.append({"condition": tag, "comparison": f"{a} - {b}",
                              "flex vs VWAP [bps]": paired(numbers[a]["flex_vwap_imp"], numbers[b]["flex_vwap_imp"],
                                                           days)})
    results = pd.DataFrame(rows)
    pair_table = pd.DataFrame(pairs).pivot(index="comparison", columns="condition", values="flex vs VWAP [bps]")
    pair_table = pair_table[[c for c in [FRICTIONLESS] + [size_tag(s) for s in SIZES] if c in pair_table]]
    spread_cs = np.median(lookback_half_spread(test)) * 1e4
    meta = {
        "command": f"`{command}`", **provenance_fields(),
        "data": f"{', '.join(setup.symbols)} ({setup.folder}), UTC; n_ahead {setup.n_ahead}, lookback "
                f"{setup.lookback} bars; no trading limits, no participation cap",
        "train": f"{len(train)} windows ({span(train)}), one origin every {setup.train_stride} bar(s) per asset",
        "validation": f"{len(val)} windows ({span(val)}), one origin every {setup.val_stride} bar(s) per asset",
        "test": f"{len(test)} windows ({span(test)}), one origin every {setup.test_stride} bar(s) per asset",
        "costs": f"SquareRootImpact(coef={IMPACT_COEF}, delta={IMPACT_DELTA}) + SpreadCost(half_spread_bps="
                 f"{HALF_SPREAD_BPS}); sigma per window from its lookback (median on train {sigma * 1e4:.1f} bps per "
                 f"bar); for reference, the Corwin-Schultz half-spread of the test lookbacks has median "
                 f"{spread_cs:.1f} bps (not used: high-low ranges of short bars are dominated by volatility)",
        "order sizes": ", ".join(f"{s:.0%}" for s in SIZES) + " of the expected horizon volume (lookback mean bar "
                       "volume x H); the VWAP benchmark is the market's (own volume excluded)",
        "models": f"LargeExecutionModel(hidden_size={args.hidden_size}, hidden_rnn_layer=1, num_heads=2, "
                  f"num_embedding=4, fused_mlp_hidden_dim=16, kan_basis='rbf'); Adam lr {args.learning_rate:g}, "
                  f"batch {batch_size(args, setup)}, {args.steps or setup.steps} steps (validation every "
                  f"{setup.epoch_steps}; train()'s selection: rule prior tuned on validation, tracking weights of the best "
                  f"validation tracking error, flexible weights of the best validation flexible improvement, "
                  f"untrained start included, both net of the size's costs for `model_cost`; patience "
                  f"{args.patience}), cap "
                  f"{args.max_minutes:g} min, seed {args.seed}; `model_free`: lem_loss; `model_cost`: "
                  "make_lem_loss(cost model above, order_participation=size), one model per size",
        "baselines": "TWAP, StaticVWAP(n_days=20), FlexibleRule(threshold=0, base='static'), AlmgrenChriss (eta "
                     "matched to the uniform schedule's square-root cost, lambda from validation)",
        "total wall time": f"{time.perf_counter() - t0:.0f} s (2-core shared CPU)",
    }
    write_results(args.out, setup, meta, results, gain_rows, pair_table, pd.concat(ac_tables).set_index("size"),
                  pd.DataFrame(trainings).set_index("model"))
    print(f"[{setup.name}] wrote {args.out / f'costs_{setup.name}.md'}", flush=True)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    command = command_line("costs", argv)
    for name in (list(SETUPS) if args.dataset == "both" else [args.dataset]):
        run_dataset(args, SETUPS[name], command)


if __name__ == "__main__":
    main()
