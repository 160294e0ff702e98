"""Command line: ``lems demo | train | evaluate | report`` (also ``python -m lems``).

Every command takes ``--help``, ``--seed`` and ``--debug``. Errors (missing files, unreadable data, infeasible
orders, bad configs) end with exit code 2 and one line ``lems: error: ...`` on stderr; ``--debug`` shows the
traceback instead.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import json
import os
import sys
import time
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np

import lems.loss  # noqa: F401 - registers lem_loss (model files name it)
import lems.metrics  # noqa: F401 - registers the metrics
import lems.models  # noqa: F401 - registers the model and its layers
from lems import __version__

from lems.policies import FlexibleRule, ModelPolicy, classical_schedules, validation_parts
from lems.evaluation.backtest import PrecomputedPolicy, allocate_and_backtest, classical_frame, costed_backtest
from lems.evaluation.backtest import select_sizes, split_costed
from lems.evaluation.frames import read_frames
from lems.evaluation.page import spread_lines, verdicts, write_report
from lems.evaluation.stats import CLASSICAL_SCHEDULES, TUNED_SCHEDULES, headline, headline_table
from lems.evaluation.tca import tca_table
from lems.runtime import enable_compilation_cache, fast_compile_enabled, set_fast_compile
from lems.training import (
    CONFIG_SECTIONS,
    FLEXIBLE_KEY,
    TRACKING_KEY,
    TrainConfig,
    build_windows,
    conditions_from_settings,
    evaluation_parts,
    load_bars,
    split_windows,
    train,
)
from lems.training.universe_evaluation import universe_report, write_group_headlines

__all__ = ["build_parser", "main"]

_EXIT_ERROR = 2

#: Optimizer steps of ``lems demo`` (about 2 minutes of training on 2 CPU cores, 3 minutes in all) and of
#: ``lems demo --quick``: a fixed number of steps, so that ``--seed`` gives the same numbers on any machine load.
DEMO_STEPS, QUICK_DEMO_STEPS = 600, 24
#: File stem of the classical schedules' validation frame that ``lems evaluate`` writes beside its frame.
VALIDATION_STEM = "backtest_validation"


class CLIError(Exception):
    """A user-facing error (printed as one line, exit code 2)."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose usage errors are one line on stderr (exit code 2)."""

    def error(self, message: str):  # noqa: D401 - argparse API
        sys.stderr.write(f"lems: error: {message} (see '{self.prog} --help')\n")
        raise SystemExit(_EXIT_ERROR)


def _stamp() -> str:
    return _dt.datetime.now().strftime("%Y%m%d_%H%M%S")


def _say(*parts: Any) -> None:
    print(*parts, flush=True)


def _warn(message: str) -> None:
    sys.stderr.write(f"lems: warning: {message}\n")


# --------------------------------------------------------------------------------------------------------
# Parser
# --------------------------------------------------------------------------------------------------------
def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--seed", type=int, default=None, help="random seed (keras, numpy, data); default 0")
    common.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    common.add_argument("--fast-compile", action=argparse.BooleanOptionalAction, default=None,
                        help="JAX: lower XLA optimisation so the model compiles faster on CPU (each step then "
                             "runs ~3x slower: worth it for short runs); default: on for 'demo --quick' only")
    common.add_argument("--compile-cache", nargs="?", const="", default=None, metavar="DIR",
                        help="JAX: reuse compiled programs across runs from a disk cache (DIR, default "
                             "$LEMS_COMPILATION_CACHE or ~/.cache/lems/jax)")
    return common


def _report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("md", "html"), default="md", help="report page format (default md)")
    parser.add_argument("--cluster", choices=("window", "origin", "day", "week"), default="day",
                        help="clustering of the standard errors of paired comparisons (default: day of origin)")


#: Extra option strings of some settings (the brief names of the cost flags).
_FLAG_ALIASES = {"half_spread_bps": ("--spread-bps", "--spread")}


def _config_overrides(parser: argparse.ArgumentParser, skip: Sequence[str] = (),
                      sections: Sequence[str] | None = None) -> None:
    """One ``--setting-name`` option per :class:`TrainConfig` setting of ``sections`` (default: all), grouped by
    section (values are checked by the config)."""

    for section, cls in CONFIG_SECTIONS.items():
        if sections is not None and section not in sections:
            continue
        group = parser.add_argument_group(f"[{section}] settings (win over --config)")
        for f in dataclasses.fields(cls):
            if f.name in ("paths", "seed", "fast_compile", *skip):
                continue
            flags = ["--" + f.name.replace("_", "-"), *_FLAG_ALIASES.get(f.name, ())]
            if f.type in ("bool", bool):
                group.add_argument(*flags, dest=f"cfg_{f.name}", action=argparse.BooleanOptionalAction,
                                   default=None, help=f.metadata["doc"])
            elif str(f.type).startswith("tuple[float"):
                group.add_argument(*flags, dest=f"cfg_{f.name}", nargs="+", default=None, metavar="X",
                                   help=f.metadata["doc"])
            else:
                group.add_argument(*flags, dest=f"cfg_{f.name}", default=None, metavar=f.name.upper(),
                                   help=f.metadata["doc"])


def _no_cache_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-cache", dest="cfg_cache_dir", action="store_const", const="none",
                        help="streamed universe: do not read or write the per-symbol index cache")


def build_parser() -> argparse.ArgumentParser:
    """The ``lems`` argument parser with its four commands."""
    common = _common()
    parser = _Parser(prog="lems", description="Large Execution Models: learned, leak-free VWAP/TWAP execution.")

    parser.add_argument("--version", action="version", version=f"lems {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    demo = sub.add_parser("demo", parents=[common], help="synthetic market → train → backtest → report",
                          description="Build a synthetic 24/7 market, train a small model for a fixed number of "
                                      "optimizer steps (same --seed, same numbers on any machine), backtest it "
                                      "against TWAP, the static curve, the static tilt and dynamic VWAP (fitted on "
                                      "validation) and a flexible rule on the test split, and write a report "
                                      "(md + png + csv) into a folder printed at the end.")
    demo.add_argument("--quick", action="store_true", help="tiny model and few windows (about a minute, for CI)")
    demo.add_argument("--out", type=Path, default=None, help="output folder (default ./lems_demo_<timestamp>)")
    demo.add_argument("--steps", type=int, default=None,
                      help=f"optimizer steps (default {DEMO_STEPS}, about 3 minutes in all on 2 CPU cores; "
                           f"{QUICK_DEMO_STEPS} with --quick): the same numbers for the same --seed on any machine")
    demo.add_argument("--minutes", type=float, default=None,
                      help="train for a wall-clock budget [minutes] instead of a number of steps (results then "
                           "depend on the machine's speed and load)")
    demo.add_argument("--assets", type=int, default=None, help="synthetic assets (default 3, or 2 with --quick)")
    demo.add_argument("--days", type=int, default=None, help="synthetic days (default 120, or 21 with --quick)")
    _report_options(demo)
    demo.set_defaults(func=_cmd_demo)

    train = sub.add_parser("train", parents=[common], help="train a model on bar files",
                           description="Train a model on bar files/folders (or 'synthetic'); writes model.keras, "
                                       "config.toml/config.json and history.csv/history.json into --out.")
    train.add_argument("data", nargs="+", metavar="DATA", help="bar files or folders (read_bars), or 'synthetic'")
    train.add_argument("--config", type=Path, default=None, help="settings file (.toml, .yaml, .yml or .json)")
    train.add_argument("--out", type=Path, default=None, help="output folder (default ./lems_train_<timestamp>)")
    _config_overrides(train)
    _no_cache_option(train)
    train.set_defaults(func=_cmd_train)

    evaluate = sub.add_parser("evaluate", parents=[common], help="backtest a saved model against baselines",
                              description="Backtest MODEL.keras and the baselines (TWAP, static curve, static "
                                          "tilt and dynamic VWAP fitted on the validation windows, flexible rule) "
                                          "on windows of DATA; writes the frame (parquet or csv) and a report. "
                                          "Settings: --config, else config.toml beside the model, else defaults; "
                                          "the model's lookback and horizon always win.")
    evaluate.add_argument("model", type=Path, metavar="MODEL.keras", help="a model saved by 'lems train'")
    evaluate.add_argument("data", nargs="+", metavar="DATA", help="bar files or folders, or 'synthetic'")
    evaluate.add_argument("--config", type=Path, default=None, help="settings file (.toml, .yaml, .yml, .json)")
    evaluate.add_argument("--out", type=Path, default=None, help="output folder (default ./lems_eval_<timestamp>)")
    evaluate.add_argument("--split", choices=("test", "all"), default="test",
                          help="windows to evaluate: the test part of the config's split (default) or all")
    evaluate.add_argument("--frame-format", choices=("parquet", "csv"), default="parquet",
                          help="file format of the backtest frame (default parquet)")
    for name, doc in (("min-rate", "minimum per bar [fraction of the order]"),
                      ("max-rate", "maximum per bar [fraction of the order]"),
                      ("tz", "local time zone of the calendar features"), ("stride", "origin stride [bars]"),
                      ("bar-minutes", "bar length [minutes]; default: inferred from the data"),
                      ("resample-minutes", "aggregate the bars to this length [minutes] (as lems train)"),
                      ("holdout-symbols", "streamed universe: symbols scored as unseen (default: the list "
                                          "lems train saved in config.toml)"),
                      ("max-test-windows", "streamed universe: test windows scored per symbol group, evenly "
                                           "thinned per symbol [windows] (default 32768)")):
        evaluate.add_argument(f"--{name}", dest=f"cfg_{name.replace('-', '_')}", default=None, help=doc)
    _config_overrides(evaluate, sections=("execution",))
    _no_cache_option(evaluate)
    _report_options(evaluate)
    evaluate.set_defaults(func=_cmd_evaluate)

    report = sub.add_parser("report", parents=[common], help="backtest frames → report",
                            description="Write a report (page, figures, CSV tables) from backtest frames "
                                        "(.parquet or .csv written by 'lems evaluate' or 'lems demo'). Costed frames "
                                        "(backtest_costs.*) add the transaction-cost analysis; its [execution] "
                                        "settings (cost model, cap: for the text and the Almgren-Chriss frontier; "
                                        "sizes: which ones to show) come from --config, else config.toml beside "
                                        "the first frame, and the flags below.")
    report.add_argument("frames", nargs="+", type=Path, metavar="FRAME", help="backtest frame files")
    report.add_argument("--out", type=Path, default=None, help="output folder (default ./lems_report_<timestamp>)")
    report.add_argument("--model", default="model", help="label of the model policy (default 'model')")
    report.add_argument("--config", type=Path, default=None, help="settings file with the [execution] section")
    report.add_argument("--validation", type=Path, default=None, metavar="FRAME",
                        help="backtest frame of the classical schedules on validation windows, on which the best "
                             f"one is chosen for the spread ratio (default: {VALIDATION_STEM}.* beside the first "
                             "frame, written by 'lems evaluate'; else chosen on the scored frames, and said so)")
    _config_overrides(report, skip=("train_size", "risk_aversion"), sections=("execution",))
    _report_options(report)
    report.set_defaults(func=_cmd_report)
    return parser


# --------------------------------------------------------------------------------------------------------
# Shared steps
# --------------------------------------------------------------------------------------------------------
def _apply_backend_options(args: argparse.Namespace, default_fast: bool) -> bool:

    fast = default_fast if args.fast_compile is None else bool(args.fast_compile)
    set_fast_compile(fast)
    if getattr(args, "compile_cache", None) is not None:

        enable_compilation_cache(args.compile_cache or None)
    return fast


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    return {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}


def _check_paths(paths: Sequence[str | Path], what: str) -> None:
    missing = [str(p) for p in paths if str(p).lower() != "synthetic" and not Path(p).exists()]
    if missing:
        raise CLIError(f"{what} not found: {', '.join(missing)}")


def _out_dir(out: Path | None, prefix: str) -> Path:
    """The output folder (checked now, created when the first file is written)."""
    path = Path(out) if out is not None else Path(f"{prefix}_{_stamp()}")
    if path.exists() and not path.is_dir():
        raise CLIError(f"output path exists and is not a folder: {path}")
    return path


def _parquet_errors() -> tuple[type[BaseException], ...]:
    """What ``to_parquet`` raises when parquet cannot be written but CSV can: no engine, or a type the engine
    cannot store (disk errors are not in it: CSV would fail the same way)."""
    try:
        import pyarrow  # lazily: only to name its error type when a parquet write fails
    except ImportError:
        return (ImportError,)
    return (ImportError, pyarrow.ArrowException)


def _save_frame(frame, out: Path, fmt: str, stem: str = "backtest") -> Path:
    """Write the backtest frame as parquet (falling back to CSV, with a warning naming the error) or CSV."""
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        path = out / f"{stem}.parquet"
        try:
            frame.to_parquet(path, index=False)
            return path
        except _parquet_errors() as exc:
            path.unlink(missing_ok=True)
            _warn(f"cannot write parquet ({type(exc).__name__}: {' '.join(str(exc).split())}); writing CSV instead")
    path = out / f"{stem}.csv"
    frame.to_csv(path, index=False)
    return path


def _save_training(result, out: Path) -> None:


    out.mkdir(parents=True, exist_ok=True)
    result.model.save(out / "model.keras")
    result.config.save(out / "config.toml")
    result.config.save(out / "config.json")
    result.history_frame().to_csv(out / "history.csv", index=False)
    info = {"history": result.history, "wall_time_s": result.wall_time_s, "epochs_run": result.epochs_run,
            "stopped_by": result.stopped_by, "best_epoch": result.best_epoch, "selected_by": result.monitor,
            "best_flexible_epoch": result.best_flexible_epoch, "soup_epochs": result.soup_epochs,
            "untrained_flexible_bps": result.untrained_flexible_bps,
            "rule_prior_thresholds": (None if result.rule_prior_thresholds is None
                                      else np.round(result.rule_prior_thresholds, 4).tolist()),
            "windows": {k: len(v) for k, v in result.windows._asdict().items()}}
    (out / "history.json").write_text(json.dumps(info, indent=2), encoding="utf-8")


def _model_policy(model, n_windows: int):
    # one forward pass shape where possible: every new batch shape costs a compilation
    return ModelPolicy(model, batch_size=max(1, n_windows if n_windows <= 4096 else 2048), name="model")


def _evaluate(model, windows, min_rate: float, max_rate: float, schedules=None):
    """The model, the classical ``schedules`` (:func:`classical_schedules`; default TWAP and the static curve) and
    the flexible rule on ``windows``: ``(frame, allocations)``."""
    if len(windows) == 0:
        raise CLIError("no window to evaluate (the test split is empty: is the data long enough?)")
    schedules = classical_schedules(None) if schedules is None else schedules
    policies = [_model_policy(model, len(windows)), *schedules.values(), FlexibleRule()]
    return allocate_and_backtest(policies, windows, min_rate=min_rate, max_rate=max_rate)


def _print_spread(table) -> None:
    """The spread ratios and the flexible improvement over the rule per side (:func:`spread_lines`)."""
    for line in spread_lines(table):
        _say("  " + line.replace("**", ""))


def _print_headline(frame) -> None:

    tables = headline(frame)
    fixed = tables["fixed"].set_index("policy")
    if "model" in fixed.index:
        parts = [f"{p} {fixed.loc[p, 'vwap_tracking_error_bps']:.2f}" for p in fixed.index
                 if p in ("model", *CLASSICAL_SCHEDULES, *TUNED_SCHEDULES)]
        line = "  fixed duration, VWAP tracking error [bps, lower is better]: " + ", ".join(parts)
        if "model_improvement_pct" in fixed.columns:
            relative = [f"{abs(fixed.loc[p, 'model_improvement_pct']):.1f} % "
                        f"{'lower' if fixed.loc[p, 'model_improvement_pct'] >= 0 else 'higher'} than {p}"
                        for p in (*CLASSICAL_SCHEDULES, *TUNED_SCHEDULES) if p in fixed.index]
            line += (" (model " + ", ".join(relative) + ")") if relative else ""
        _say(line)
    flex = tables["flexible"]
    for bench in ("vwap", "twap"):
        sub = flex[flex["benchmark"] == bench].set_index("policy")
        parts = [f"{p} {sub.loc[p, 'mean_improvement_bps']:+.2f}" for p in sub.index
                 if p in ("model", "flexible_rule", "twap")]
        if parts:
            _say(f"  flexible duration vs {bench.upper()}, mean improvement [bps, higher is better]: "
                 + ", ".join(parts))
    if "model" in fixed.index:
        _say("in words:")
        for line in verdicts(tables, "model"):
            _say(f"  {line}")


def _training_summary(result) -> str:
    """One line: epochs, steps or time, why training stopped, and the kept epoch with its validation scores."""


    line = f"{result.epochs_run} epoch(s) in {result.wall_time_s:.0f} s, stopped by {result.stopped_by}"
    if result.best_epoch is None:
        return line + "; last weights kept (no validation windows)"
    k = result.best_epoch - 1
    scores = (f"validation tracking error {result.history[TRACKING_KEY][k]:.2f} bps, flexible improvement "
              f"{result.history[FLEXIBLE_KEY][k]:+.2f} bps") if TRACKING_KEY in result.history else ""
    line += f"; kept epoch {result.best_epoch} (best {result.monitor}: {scores})"
    if result.best_flexible_epoch is not None:
        k = result.best_flexible_epoch - 1
        start = "the untrained start" if result.rule_prior_thresholds is None else (
            f"the validation-tuned rule prior ({result.untrained_flexible_bps:+.2f} bps, thresholds "
            f"{np.min(result.rule_prior_thresholds):g}..{np.max(result.rule_prior_thresholds):g} sigma)")
        flexible = (start if k < 0 else
                    f"epoch {k + 1}, validation flexible improvement {result.history[FLEXIBLE_KEY][k]:+.2f} bps")
        line += f"; flexible weights from {flexible}"
    return line


# --------------------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------------------
def _demo_budget(args: argparse.Namespace) -> dict[str, Any]:
    """``max_steps`` (default) or ``time_budget_s`` (``--minutes``) of the demo's training."""
    if args.minutes is not None and not args.minutes > 0:
        raise CLIError(f"--minutes must be > 0, got {args.minutes:g}")
    if args.steps is not None and args.steps < 1:
        raise CLIError(f"--steps must be >= 1, got {args.steps}")
    if args.minutes is not None and args.steps is not None:
        raise CLIError("choose --steps or --minutes, not both")
    if args.minutes is not None:
        return {"time_budget_s": args.minutes * 60.0}
    return {"max_steps": args.steps or (QUICK_DEMO_STEPS if args.quick else DEMO_STEPS)}


def _demo_config(args: argparse.Namespace):

    seed = 0 if args.seed is None else args.seed
    budget = _demo_budget(args)
    if args.quick:
        return TrainConfig(
            synthetic_assets=args.assets or 2, synthetic_days=args.days or 21, lookback=24, n_ahead=6,
            train_end=0.6, val_end=0.8, max_windows=512, hidden_size=8, num_heads=2, num_embedding=4,
            fused_mlp_hidden_dim=8, batch_size=64, learning_rate=5e-3, patience=2, seed=seed, **budget)
    # the settings of the real-data benchmarks (benchmarks/real_data.py): chosen on this market's validation
    # split among lr 5e-4 / 2e-3 / 5e-3, batch 128 / 256, dropout 0 / 0.1: the flexible heads need the larger
    # steps to learn when to finish early (with lr 5e-4 they stayed at 0)
    return TrainConfig(synthetic_assets=args.assets or 3, synthetic_days=args.days or 120, learning_rate=5e-3,
                       batch_size=256, dropout=0.0, patience=10, seed=seed, **budget)


def _budget_words(config) -> str:
    t = config.training
    if t.max_steps is not None:
        return f"{t.max_steps} optimizer steps"
    return f"budget {t.time_budget_s:.0f} s"


def _cmd_demo(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    config = _demo_config(args)
    out = _out_dir(args.out, "lems_demo")
    fast = _apply_backend_options(args, default_fast=bool(args.quick))
    config = config.replace(fast_compile=fast)  # recorded in config.toml

    _say(f"lems demo{' --quick' if args.quick else ''}: synthetic 24/7 market, {config.synthetic_assets} assets × "
         f"{config.synthetic_days} days of hourly bars, seed {config.seed}")
    windows = build_windows(config, load_bars(config))
    splits = split_windows(config, windows)
    _say(f"[1/3] windows: lookback {config.lookback} bars, horizon {config.n_ahead} bars; train {len(splits.train)}"
         f", validation {len(splits.val)}, test {len(splits.test)} (purged time split)")
    _say(f"[2/3] training ({_budget_words(config)}, selection on validation {config.selection}"
         f"{', fast compile' if fast else ''})...")
    result = train(config, windows=splits, verbose=1 if sys.stdout.isatty() else 2)
    _say(f"      {_training_summary(result)}")
    schedules = classical_schedules(splits.val)  # the tuned ones fitted on the validation windows
    _say(f"[3/3] backtest on {len(splits.test)} test windows against {', '.join(schedules)}, flexible rule...")
    frame, allocations = _evaluate(result.model, splits.test, config.min_rate, config.max_rate, schedules)
    _save_training(result, out)
    _save_frame(frame, out, "parquet")

    meta = {"data": f"synthetic 24/7 market ({config.synthetic_assets} assets, {config.synthetic_days} days, "
                    f"seed {config.seed})",
            "training": f"{_budget_words(config)}; {_training_summary(result)}"}
    page = write_report(frame, out, allocations=allocations, windows=splits.test, format=args.format,
                        cluster=args.cluster, title="lems demo: learned execution on a synthetic market", meta=meta,
                        seed=config.seed, validation=classical_frame(schedules, validation_parts(splits.val)[1],
                                                                     min_rate=config.min_rate, max_rate=config.max_rate))
    _say("headline (test split):")
    _print_headline(frame)
    _say(f"report: {page}")
    _say(f"done in {time.perf_counter() - start:.0f} s; files in:")
    _say(str(out.resolve()))
    return 0


def _train_config(args: argparse.Namespace, data: Sequence[str] | None):

    config = TrainConfig.load(args.config) if args.config is not None else TrainConfig()
    changes = _overrides(args)
    if data is not None:
        changes["data"] = list(data)
    if args.seed is not None:
        changes["seed"] = args.seed
    if args.fast_compile is not None:
        changes["fast_compile"] = bool(args.fast_compile)
    return config.replace(**changes)


def _cmd_train(args: argparse.Namespace) -> int:
    if args.config is not None:
        _check_paths([args.config], "config file")
    config = _train_config(args, [str(p) for p in args.data])
    _check_paths(config.data.paths, "data")
    out = _out_dir(args.out, "lems_train")
    _apply_backend_options(args, default_fast=config.fast_compile)

    _say(f"lems train: data {', '.join(config.data.paths)}; lookback {config.lookback}, horizon {config.n_ahead} "
         f"bars")
    result = train(config, verbose=1 if sys.stdout.isatty() else 2)
    _save_training(result, out)
    _say(_training_summary(result))
    _say("model, config and history in:")
    _say(str(out.resolve()))
    return 0


def _load_model(path: Path):
    _check_paths([path], "model file")
    if not zipfile.is_zipfile(path):
        raise CLIError(f"cannot load model {path}: not a valid .keras model file (not a zip archive)")
    try:
        return keras.models.load_model(path, compile=False)
    except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise CLIError(f"cannot load model {path}: not a valid .keras model file ({reason})") from None


def _cmd_evaluate(args: argparse.Namespace) -> int:
    config_path = args.config
    if config_path is None and (args.model.parent / "config.toml").is_file():
        config_path = args.model.parent / "config.toml"
    if config_path is not None:
        _check_paths([config_path], "config file")
    args.config = config_path
    config = _train_config(args, [str(p) for p in args.data])
    _check_paths(config.data.paths, "data")
    _apply_backend_options(args, default_fast=config.fast_compile)
    model = _load_model(args.model)
    lookback, n_ahead = getattr(model, "lookback", None), getattr(model, "n_ahead", None)
    if lookback is None or n_ahead is None:
        raise CLIError(f"{args.model} is not a LargeExecutionModel (no lookback / n_ahead)")
    config = config.replace(lookback=int(lookback), n_ahead=int(n_ahead))
    out = _out_dir(args.out, "lems_eval")
    if config.data.stream and args.split == "test":
        return _evaluate_universe(args, config, model, out)
    windows, val_windows = evaluation_parts(config, args.split)
    _say(f"lems evaluate: {len(windows)} windows ({args.split}), horizon {n_ahead} bars, limits "
         f"[{config.min_rate:g}, {config.max_rate:g}] of the order per bar")
    schedules = classical_schedules(val_windows)  # the tuned ones fitted on the validation windows only
    frame, allocations = _evaluate(model, windows, config.min_rate, config.max_rate, schedules)
    frame_path = _save_frame(frame, out, args.frame_format)
    validation = classical_frame(schedules, validation_parts(val_windows)[1], min_rate=config.min_rate,
                                 max_rate=config.max_rate)  # the best one is chosen on the part not fitted on
    if validation is not None:
        _save_frame(validation, out, args.frame_format, stem=VALIDATION_STEM)
    spread = headline_table(frame, validation=validation, cluster=args.cluster)
    costs, conditions = _costed(config, windows, allocations)
    costs_path = None if costs is None else _save_frame(costs, out, args.frame_format, stem="backtest_costs")
    config.save(out / "config.toml")
    meta = {"model": str(args.model), "data": ", ".join(config.data.paths), "windows": args.split}
    page = write_report(frame, out, allocations=allocations, windows=windows, format=args.format,
                        cluster=args.cluster, meta=meta, seed=config.seed, costs=costs, conditions=conditions,
                        ac_risk_aversion=config.execution.ac_risk_aversion, spread=spread)
    _print_headline(frame)
    _print_spread(spread)
    if costs is not None:
        _print_costs(costs)
    _say(f"frame: {frame_path}")
    if costs_path is not None:
        _say(f"costed frame: {costs_path}")
    _say(f"report: {page}")
    _say(str(out.resolve()))
    return 0


def _evaluate_universe(args: argparse.Namespace, config, model, out: Path) -> int:
    """``lems evaluate`` on a streamed universe: test windows scored chunk by chunk, the held-out symbols apart
    (unseen), the headline per group (seen / unseen / liquidity tercile)."""
    if config.execution.costed:
        _warn("streamed evaluation scores frictionless orders only: the [execution] costs are not applied")
    result = universe_report(config, lambda chunk, fitted: _evaluate(model, chunk, config.min_rate, config.max_rate,
                                                                     fitted)[0],
                             cluster=args.cluster, seed=config.seed, policies={"model": _model_policy(model, 2048)})
    _say(f"lems evaluate: streamed universe, test period of {len(result.symbols['seen'])} seen and "
         f"{len(result.symbols['unseen'])} held-out symbols, horizon {config.n_ahead} bars")
    frame_path = _save_frame(result.frame, out, args.frame_format)
    if result.validation is not None:
        _save_frame(result.validation, out, args.frame_format, stem=VALIDATION_STEM)
    md, _ = write_group_headlines(result.tables, out, result.symbols, result.decomposition)
    config.save(out / "config.toml")
    meta = {"model": str(args.model), "data": ", ".join(config.data.paths), "windows": "test (seen symbols)"}
    page = write_report(result.frames["seen"], out, format=args.format, cluster=args.cluster, meta=meta,
                        seed=config.seed, spread=result.tables["seen"])
    for name, table in result.tables.items():
        _say(f"{name}:")
        _print_spread(table)
    _say(f"frame: {frame_path}\nby symbol group: {md}\nreport (seen symbols): {page}\n{out.resolve()}")
    return 0


def _costed(config, windows, allocations: dict) -> tuple[Any, Any]:
    """``(costed frame, conditions of the first size)`` of the config's [execution] sizes, or ``(None, None)``."""
    execution = config.execution
    if not execution.costed:
        return None, None

    conditions = execution.conditions()
    _say(f"net of costs: order sizes {', '.join(f'{s:g}' for s in execution.sizes)} of the expected horizon volume, "
         f"cost model {execution.cost_model()!r}, cap {execution.max_participation}")
    policies = [PrecomputedPolicy(name, alloc, windows) for name, alloc in allocations.items()]
    costs = costed_backtest(policies, windows, conditions, min_rate=config.min_rate, max_rate=config.max_rate,
                            ac_risk_aversion=execution.ac_risk_aversion)
    return costs, conditions[0]


def _print_costs(costs) -> None:
    """Per size: the fixed-duration implementation shortfall vs arrival of every policy."""

    table = tca_table(costs)
    _say("net of costs, fixed-duration implementation shortfall vs arrival [bps, lower is better]:")
    for size, part in table.groupby("order_size", sort=True):
        numbers = ", ".join(f"{row.policy} {row.is_bps:.2f}" for row in part.itertuples(index=False))
        _say(f"  order of {size * 100:g} % of the expected horizon volume: {numbers}")


def _report_execution(args: argparse.Namespace):
    """The [execution] settings of ``lems report``: --config, else config.toml beside the first frame, then the
    flags."""

    path = args.config
    if path is None and (args.frames[0].parent / "config.toml").is_file():
        path = args.frames[0].parent / "config.toml"
    if path is not None:
        _check_paths([path], "config file")
    config = TrainConfig.load(path) if path is not None else TrainConfig()
    return config.replace(**_overrides(args)).execution


def _report_costs(frame, execution) -> tuple[Any, Any, Any]:
    """``(frictionless rows, costed rows of the stated sizes or None, conditions or None)``."""
    free, costed = split_costed(frame)
    if costed is None:
        if execution.costed:
            raise CLIError("sizes given, but the frames hold no costed orders: pass backtest_costs.parquet written "
                           "by 'lems evaluate --sizes ...'")
        return free, None, None
    if len(free) == 0:
        raise CLIError("only costed frames given: pass the frictionless frame too (backtest.parquet beside "
                       "backtest_costs.parquet)")
    costed = select_sizes(costed, execution.sizes or None)
    model = execution.cost_model()
    if model.is_free and execution.max_participation is None:
        return free, costed, None  # nothing stated: the page says so, no frontier
    size = float(costed["order_size"].iloc[0])
    return free, costed, conditions_from_settings(execution, sizes=[size])[0]


def _report_validation(args: argparse.Namespace):
    """The classical schedules' validation frame: --validation, else ``backtest_validation.*`` written by
    ``lems evaluate`` beside the first frame, else None (the best schedule is then chosen on the scored frames)."""
    path = args.validation
    if path is None:
        beside = [args.frames[0].parent / f"{VALIDATION_STEM}.{ext}" for ext in ("parquet", "csv")]
        path = next((p for p in beside if p.is_file() and p not in args.frames), None)
    if path is None:
        return None
    _check_paths([path], "validation frame")
    return read_frames([path])


def _cmd_report(args: argparse.Namespace) -> int:
    _check_paths(args.frames, "frame file")
    given = [p for p in args.frames if Path(p).stem == VALIDATION_STEM]
    if given and args.validation is None:  # e.g. 'lems report out/*.parquet': that file is the validation frame
        args.validation = given[0]
    args.frames = [p for p in args.frames if Path(p).stem != VALIDATION_STEM]
    if not args.frames:
        raise CLIError(f"only the validation frame {given[0]} was given: pass the scored frame (backtest.parquet)")

    execution = _report_execution(args)
    frame, costs, conditions = _report_costs(read_frames(args.frames), execution)
    out = _out_dir(args.out, "lems_report")
    policies = set(frame["policy"].astype(str))
    spread = None
    if args.model in policies and policies & set(CLASSICAL_SCHEDULES) and "diff" in frame.columns:
        spread = headline_table(frame, args.model, validation=_report_validation(args), cluster=args.cluster)
        for line in spread_lines(spread, args.model):
            _say("  " + line.replace("**", ""))
    page = write_report(frame, out, format=args.format, model=args.model, cluster=args.cluster,
                        meta={"frames": ", ".join(map(str, args.frames))}, costs=costs, conditions=conditions,
                        ac_risk_aversion=execution.ac_risk_aversion, spread=spread)
    _say(f"report: {page}")
    _say(str(out.resolve()))
    return 0


# --------------------------------------------------------------------------------------------------------
# Entry point
# --------------------------------------------------------------------------------------------------------
def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, (CLIError, ValueError)) else f"{type(exc).__name__}: {text}"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``lems`` command line; returns the exit code (0 ok, 2 error)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow's C++ logs (if imported) quiet
    if os.environ.get("KERAS_BACKEND", "jax") != "tensorflow":
        # Keras' .keras saving imports TensorFlow when it is installed; TF computes nothing here, so its oneDNN
        # start-up notice is noise
        os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        sys.stderr.write("lems: error: choose a command: demo, train, evaluate or report (see 'lems --help')\n")
        return _EXIT_ERROR

    previous = fast_compile_enabled()  # commands choose their own setting; restored on return
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        sys.stderr.write("lems: interrupted\n")
        return 130
    except Exception as exc:  # every failure: one line, unless --debug
        if args.debug:
            raise
        sys.stderr.write(f"lems: error: {_one_line(exc)}\n")
        return _EXIT_ERROR
    finally:
        set_fast_compile(previous)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
