"""Plain ``model.fit`` on the real dev sets: does the seed's own recipe train a good tracker? (issue 25)

The seed's recipe, with plain Keras calls only: ``model.compile(optimizer=Adam(lr), loss=lem_loss)`` then
``model.fit([X, min_rate, max_rate], y, validation_data=..., epochs=N, batch_size=64)`` on the windows of
``benchmarks/real_data.py``'s SETUPS (same splits and strides; validation thinned to every 4th origin as there).
Training stops at the epoch cap or when the fit's process CPU time [s] (evaluation excluded) passes ``--cpu-budget``.

A recording callback (it changes nothing in training: it only reads the model) scores every epoch, the untrained
start included, on the validation windows: the fixed-duration VWAP tracking spread (std of the signed diff of the
fixed column's VWAP orders, both sides and targets [bps]), its ratio to the static curve's and to the best classical
schedule's (static curve or TWAP), the mean |diff| (``lems.training.selection_scores``, what ``lems train`` selects
on) and the mean flexible improvement [bps] against the classical rule's (:class:`lems.baselines.FlexibleRule`). It
keeps each epoch's weights in memory, so that the test split is scored only for the epochs a recipe keeps:

* ``last``: the seed page's recipe, the last epoch's weights;
* ``early_stopping``: ``keras.callbacks.EarlyStopping(monitor="val_loss", patience=3, restore_best_weights=True)``,
  replayed on the recorded ``val_loss`` (Keras' rule: stop once ``patience`` epochs pass without a lower value and
  restore the best epoch; Keras 3.15 restores the best epoch's weights also when the budget ends first);
* ``selection``: ``lems train``'s split selection replayed: the tracking weights of the epoch with the lowest
  validation mean |diff| (trained epochs only) and the flexible-only weights
  (``LargeExecutionModel.flexible_weight_masks``) of the epoch with the best validation flexible improvement, the
  untrained start included (no rule-threshold tuning: the same model and budget as the plain fits).

Also reported: whether ``val_loss``'s best epoch is "sound": among the epochs whose validation spread is within
``--tolerance`` (relative, default 2 %) of the best epoch's spread and whose flexible improvement is within the same
relative tolerance of the best (in bps of the rule's improvement; untrained start included for the flexible best).

Usage (repository root)::

    python -m benchmarks.plain_fit --dataset crypto --cpu-budget 360 --name base
    python -m benchmarks.plain_fit --dataset crypto --model tracking_loss_weight=0 --name no_aux

Writes ``benchmarks/results/plain_fit/<dataset>_<name>.md`` (command, commit, CPU seconds, per-epoch table,
recipe table) and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "jax")
ROOT = Path(__file__).resolve().parents[1]

import numpy as np

RESULTS = ROOT / "benchmarks" / "results" / "plain_fit"
DEFAULT_DATA = Path(os.environ.get("LEMS_DATA", ROOT.parent / "shared" / "data"))
VAL_STRIDE = 4
BATCH = 64


def model_inputs(windows):
    """``([X, min_rate, max_rate], y)`` float32 for ``model.fit`` (no trading limits, compact targets)."""
    from lems.data.targets import seed_targets
    from lems.execution import rate_columns

    lo, hi = rate_columns(len(windows), 0.0, 1.0, int(windows.n_ahead))
    x = [np.asarray(windows.X, np.float32), lo.astype(np.float32), hi.astype(np.float32)]
    return x, seed_targets(windows).astype(np.float32)


def loss_families(allocations, y) -> dict[str, float]:
    """Validation means of the two families of ``lem_loss``'s terms (percent units, smooth benchmark window, as
    the loss): ``flex_softplus`` (softplus(diff_buy - diff_sell), flexible columns), ``track_softplus``
    (softplus(|diff|), fixed column) and ``track_square`` (diff², fixed column; percent²)."""
    from lems.loss import seed_objective_terms

    flexible, tracking = seed_objective_terms(np.asarray(y, np.float64), np.asarray(allocations, np.float64))
    flexible, tracking = np.asarray(flexible), np.asarray(tracking)
    return {"flex_softplus": float(np.logaddexp(0.0, flexible).mean()),
            "track_softplus": float(np.logaddexp(0.0, tracking).mean()), "track_square": float((tracking ** 2).mean())}


class SplitScorer:
    """Scores allocations on one split against the classical schedules (computed once)."""

    def __init__(self, windows) -> None:
        from lems.data.targets import seed_targets
        from lems.baselines import TWAP, FlexibleRule, StaticVWAP

        self.windows, self.y = windows, seed_targets(windows)
        self.x = model_inputs(windows)[0]
        static = self.numbers(StaticVWAP().allocate(windows))
        twap = self.numbers(TWAP().allocate(windows))
        rule = self.numbers(FlexibleRule().allocate(windows))
        self.static_spread, self.twap_spread = static["spread"], twap["spread"]
        self.best_classical = min(self.static_spread, self.twap_spread)
        self.rule_flexible = rule["flexible"]

    def numbers(self, allocations) -> dict[str, float]:
        """Spread and mean |diff| of the fixed VWAP orders, mean flexible improvement [bps]."""
        from lems.execution import IS_VWAP_ORDER, seed_outcome
        from lems.training import selection_scores

        allocations = np.asarray(allocations, np.float64)
        horizon = allocations.shape[1]
        diff = seed_outcome(allocations, self.y).diff[:, horizon][:, IS_VWAP_ORDER] * 1e4
        totals = selection_scores(allocations, self.y)
        out = {"spread": float(np.std(diff.ravel(), ddof=1)), "abs_diff": totals["tracking"] / totals["n"],
               "flexible": totals["flexible"] / totals["n"]}
        return {**out, **loss_families(allocations, self.y)}

    def score(self, model) -> dict[str, float]:
        """The model's numbers with their ratios to the classical schedules."""
        out = self.numbers(model.predict(self.x, batch_size=512, verbose=0))
        out.update(ratio_static=out["spread"] / self.static_spread,
                   ratio_classical=out["spread"] / self.best_classical,
                   flex_minus_rule=out["flexible"] - self.rule_flexible)
        return out


def _callback_base():
    import keras

    return keras.callbacks.Callback


class Recorder(_callback_base()):
    """Scores validation at every epoch (the untrained start as epoch 0), keeps the weights, and stops the fit
    once its CPU time outside this callback passes ``cpu_budget`` [s]."""

    def __init__(self, val: SplitScorer, val_data, cpu_budget: float) -> None:
        super().__init__()
        self.val, self.val_data, self.cpu_budget = val, val_data, float(cpu_budget)
        self.rows: list[dict[str, Any]] = []
        self.weights: list[list[np.ndarray]] = []
        self.eval_cpu = 0.0

    def _record(self, epoch: int, logs: dict[str, Any]) -> None:
        start = time.process_time()
        row = {"epoch": epoch, **{k: float(v) for k, v in logs.items()}, **self.val.score(self.model)}
        self.rows.append(row)
        self.weights.append(self.model.get_weights())
        self.eval_cpu += time.process_time() - start

    def on_train_begin(self, logs=None) -> None:
        self.cpu0 = time.process_time()
        start = time.process_time()
        val_loss = self.model.evaluate(*self.val_data, batch_size=BATCH, verbose=0, return_dict=True)["loss"]
        self.eval_cpu += time.process_time() - start
        self._record(0, {"val_loss": val_loss})

    def on_epoch_end(self, epoch, logs=None) -> None:
        self._record(epoch + 1, logs or {})
        self.rows[-1]["fit_cpu_s"] = self.fit_cpu
        if self.fit_cpu >= self.cpu_budget:
            self.model.stop_training = True

    @property
    def fit_cpu(self) -> float:
        return time.process_time() - self.cpu0 - self.eval_cpu


def early_stopping_epoch(val_loss: list[float], patience: int = 3) -> tuple[int, bool]:
    """Keras 3 ``EarlyStopping(restore_best_weights=True)`` replayed on ``val_loss`` of epochs ``1..n``: ``(kept
    epoch, stopped early)``; the best epoch's weights are restored at the end of training however it ends."""
    best, best_epoch, wait = np.inf, 0, 0
    for epoch, value in enumerate(val_loss, start=1):
        if value < best:
            best, best_epoch, wait = value, epoch, 0
            continue
        wait += 1
        if wait >= patience:
            return best_epoch, True
    return best_epoch, False


def sound_epochs(rows: list[dict[str, Any]], tolerance: float) -> list[int]:
    """Trained epochs whose validation spread is within ``tolerance`` (relative) of the best trained epoch's and
    whose flexible improvement over the rule is within ``tolerance`` x |rule improvement| of the best epoch's
    (untrained start included)."""
    trained = [r for r in rows if r["epoch"] > 0]
    best_spread = min(r["spread"] for r in trained)
    best_flex = max(r["flexible"] for r in rows)
    slack = tolerance * abs(best_flex)
    return [r["epoch"] for r in trained
            if r["spread"] <= best_spread * (1 + tolerance) and r["flexible"] >= best_flex - slack]


def mixed_weights(model, tracking: list[np.ndarray], flexible: list[np.ndarray]) -> list[np.ndarray]:
    """``lems train``'s split selection: the flexible-only entries from ``flexible``, the rest from ``tracking``."""
    masks = model.flexible_weight_masks()
    return [t if m is None else np.where(m, f, t) for t, f, m in zip(tracking, flexible, masks)]


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], check=False, cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], check=False, cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return out.stdout.strip() + (" (+ uncommitted changes)" if dirty else "")
    except OSError:
        return "unknown"


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def build(args, setup, n_features: int):
    import keras

    import lems.loss
    from lems.models import LargeExecutionModel

    overrides = {k: parse_value(v) for k, _, v in (item.partition("=") for item in args.model)}
    model = LargeExecutionModel(lookback=setup.lookback, n_ahead=setup.n_ahead, hidden_size=args.hidden_size,
                                hidden_rnn_layer=1, num_heads=4, num_embedding=8, fused_mlp_hidden_dim=32,
                                **overrides)
    loss = getattr(lems.loss, args.loss)
    model.compile(optimizer=keras.optimizers.Adam(args.learning_rate), loss=loss)
    model.build([(None, setup.lookback + setup.n_ahead - 1, n_features), (None, 1), (None, 1)])
    return model, overrides


def run(args) -> dict[str, Any]:
    import keras
    from benchmarks.real_data import SETUPS, build_splits, data_files, thin

    setup = SETUPS[args.dataset]
    commit = git_commit()  # the code the run imports (read now, not after a long fit)
    wall0, cpu0 = time.perf_counter(), time.process_time()
    train_set, val_set, test_set = build_splits(data_files(args.data, setup), setup, setup.lookback)
    train_set, val_set = thin(train_set, args.train_stride or setup.train_stride), thin(val_set, VAL_STRIDE)
    if args.test_stride > 1:
        test_set = thin(test_set, args.test_stride)
    keras.utils.set_random_seed(args.seed)
    x_train, y_train = model_inputs(train_set)
    val_data = model_inputs(val_set)
    val, test = SplitScorer(val_set), SplitScorer(test_set)
    model, overrides = build(args, setup, x_train[0].shape[-1])
    recorder = Recorder(val, val_data, args.cpu_budget)
    model.fit(x_train, y_train, validation_data=val_data, epochs=args.epochs, batch_size=BATCH,
              callbacks=[recorder], verbose=args.verbose)
    rows = recorder.rows
    n = len(rows) - 1
    es_epoch, es_stopped = early_stopping_epoch([r["val_loss"] for r in rows[1:]])
    track_epoch = min(rows[1:], key=lambda r: r["abs_diff"])["epoch"]
    flex_epoch = max(rows, key=lambda r: r["flexible"])["epoch"]
    recipes = {"last": (n, recorder.weights[n]), "early_stopping": (es_epoch, recorder.weights[es_epoch]),
               "selection": (f"{track_epoch}/{flex_epoch}",
                             mixed_weights(model, recorder.weights[track_epoch], recorder.weights[flex_epoch]))}
    table = {}
    for name, (epoch, weights) in recipes.items():
        model.set_weights(weights)
        table[name] = {"epoch": epoch, "val": val.score(model), "test": test.score(model)}
    sound = sound_epochs(rows, args.tolerance)
    best_val_loss_epoch = min(rows[1:], key=lambda r: r["val_loss"])["epoch"]
    return {
        "command": "python -m benchmarks.plain_fit " + " ".join(shlex.quote(a) for a in args.argv),
        "commit": commit, "backend": keras.backend.backend(), "dataset": args.dataset, "name": args.name,
        "loss": args.loss, "model_overrides": overrides, "hidden_size": args.hidden_size,
        "learning_rate": args.learning_rate, "batch_size": BATCH, "seed": args.seed,
        "n_train": len(train_set), "n_val": len(val_set), "n_test": len(test_set),
        "fit_cpu_s": recorder.fit_cpu, "eval_cpu_s": recorder.eval_cpu, "epochs_run": n,
        "early_stopping": {"epoch": es_epoch, "stopped_early": es_stopped},
        "best_val_loss_epoch": best_val_loss_epoch, "sound_epochs": sound, "tolerance": args.tolerance,
        "val_loss_sound": best_val_loss_epoch in sound,
        "classical": {"val": {"static": val.static_spread, "twap": val.twap_spread, "rule_flex": val.rule_flexible},
                      "test": {"static": test.static_spread, "twap": test.twap_spread,
                               "rule_flex": test.rule_flexible}},
        "epochs": rows, "recipes": table,
        "total_wall_s": time.perf_counter() - wall0, "total_cpu_s": time.process_time() - cpu0,
    }


#: Candidate validation losses, from the per-epoch family means of the same validation predictions.
SIGNALS = {
    "lem_loss (seed: mean over all terms)": lambda r, h: (4 * h * r["flex_softplus"] + 8 * r["track_softplus"])
    / (4 * h + 8),
    "families balanced, tracking softplus(abs diff)": lambda r, h: 0.5 * (r["flex_softplus"] + r["track_softplus"]),
    "balanced_lem_loss (families balanced, tracking diff²)": lambda r, h: 0.5 * (r["flex_softplus"]
                                                                                 + r["track_square"]),
    "tracking diff² alone": lambda r, h: r["track_square"],
}


def signal_lines(result: dict[str, Any], horizon: int) -> list[str]:
    """Best epoch of each candidate validation loss (post hoc) and whether it is among the sound epochs."""
    rows = [r for r in result["epochs"] if r["epoch"] > 0]
    lines = ["| validation loss | best epoch | its spread ÷ best epoch's | sound |", "|---|---|---|---|"]
    best_spread = min(r["spread"] for r in rows)
    for name, fn in SIGNALS.items():
        best = min(rows, key=lambda r: fn(r, horizon))
        lines.append(f"| {name} | {best['epoch']} | {best['spread'] / best_spread:.3f} | "
                     f"{best['epoch'] in result['sound_epochs']} |")
    return lines


def markdown(result: dict[str, Any]) -> str:
    c = result["classical"]
    lines = [f"# Plain fit: {result['dataset']} / {result['name']}", "",
             f"- **command**: `{result['command']}`", f"- **commit**: {result['commit']}; backend {result['backend']}",
             f"- **model**: LargeExecutionModel(hidden_size={result['hidden_size']}, hidden_rnn_layer=1, num_heads=4, "
             f"num_embedding=8, fused_mlp_hidden_dim=32, overrides {result['model_overrides']}); loss "
             f"`{result['loss']}`; Adam {result['learning_rate']}, batch {result['batch_size']}, seed {result['seed']}",
             f"- **windows**: train {result['n_train']}, validation {result['n_val']} (every {VAL_STRIDE}th), "
             f"test {result['n_test']}",
             f"- **budget**: {result['epochs_run']} epochs in {result['fit_cpu_s']:.0f} CPU s of fit "
             f"(+ {result['eval_cpu_s']:.0f} CPU s of per-epoch scoring); total {result['total_cpu_s']:.0f} CPU s, "
             f"{result['total_wall_s']:.0f} s wall (2-core machine shared with other jobs)",
             f"- **classical spread [bps]**: validation static {c['val']['static']:.2f}, TWAP {c['val']['twap']:.2f}; "
             f"test static {c['test']['static']:.2f}, TWAP {c['test']['twap']:.2f}. Rule's flexible improvement "
             f"[bps]: validation {c['val']['rule_flex']:.2f}, test {c['test']['rule_flex']:.2f}",
             f"- **val_loss**: best epoch {result['best_val_loss_epoch']}; EarlyStopping(patience 3) keeps epoch "
             f"{result['early_stopping']['epoch']} (stopped early: {result['early_stopping']['stopped_early']}); "
             f"epochs within {result['tolerance']:.0%} of the best validation spread and flexible improvement: "
             f"{result['sound_epochs']}: val_loss sound: **{result['val_loss_sound']}**", "",
             "## Recipes", "",
             "| recipe | epoch | val spread | val ÷ static | val ÷ best classical | val flex − rule [bps] "
             "| test spread | test ÷ static | test ÷ best classical | test flex − rule [bps] |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in result["recipes"].items():
        v, t = r["val"], r["test"]
        lines.append(f"| {name} | {r['epoch']} | {v['spread']:.2f} | {v['ratio_static']:.3f} | "
                     f"{v['ratio_classical']:.3f} | {v['flex_minus_rule']:+.2f} | {t['spread']:.2f} | "
                     f"{t['ratio_static']:.3f} | {t['ratio_classical']:.3f} | {t['flex_minus_rule']:+.2f} |")
    from benchmarks.real_data import SETUPS

    lines += ["", "## Which validation loss would pick a sound epoch (post hoc, same validation predictions)", "",
              "Each candidate's value per epoch is rebuilt from the recorded validation means of the two families "
              "(smooth benchmark window, as the loss).", "", *signal_lines(result, SETUPS[result["dataset"]].n_ahead)]
    lines += ["", "## Epochs (validation)", "",
              "| epoch | loss | val_loss | spread | ÷ static | ÷ best classical | mean abs diff | flex − rule [bps] "
              "| fit CPU s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in result["epochs"]:
        lines.append(f"| {r['epoch']} | {r.get('loss', float('nan')):.5f} | {r['val_loss']:.5f} | {r['spread']:.2f} | "
                     f"{r['ratio_static']:.3f} | {r['ratio_classical']:.3f} | {r['abs_diff']:.2f} | "
                     f"{r['flex_minus_rule']:+.2f} | {r.get('fit_cpu_s', 0):.0f} |")
    return "\n".join(lines) + "\n"


def summary(out: Path) -> str:
    """One table of every run's recipes under ``out`` (``<dataset>_<name>.json``)."""
    lines = ["# Plain fit: summary", "", "Generated by `python -m benchmarks.plain_fit --summary` from the runs' JSON "
             "files beside it (each run's own Markdown has its command, commit, CPU seconds and epochs).", "",
             "| run | recipe | epoch | val ÷ static | val ÷ best classical | val flex − rule [bps] | test ÷ static "
             "| test ÷ best classical | test flex − rule [bps] | val_loss sound | fit CPU s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for path in sorted(out.glob("*.json")):
        result = json.loads(path.read_text())
        for name, r in result["recipes"].items():
            v, t = r["val"], r["test"]
            lines.append(f"| {path.stem} | {name} | {r['epoch']} | {v['ratio_static']:.3f} | {v['ratio_classical']:.3f} "
                         f"| {v['flex_minus_rule']:+.2f} | {t['ratio_static']:.3f} | {t['ratio_classical']:.3f} | "
                         f"{t['flex_minus_rule']:+.2f} | {result['val_loss_sound']} | {result['fit_cpu_s']:.0f} |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    from benchmarks.real_data import SETUPS

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", choices=list(SETUPS), default="crypto")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--name", default="base")
    p.add_argument("--loss", default="lem_loss", help="a loss of lems.loss, by name")
    p.add_argument("--model", action="append", default=[], help="LargeExecutionModel argument key=value (JSON)")
    p.add_argument("--hidden-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--cpu-budget", type=float, default=360.0, help="process CPU seconds of fit (scoring excluded)")
    p.add_argument("--tolerance", type=float, default=0.02)
    p.add_argument("--train-stride", type=int, default=None, help="thin training origins (default: the SETUP's)")
    p.add_argument("--test-stride", type=int, default=1, help="thin the test split further (per-asset origins)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--verbose", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS)
    p.add_argument("--summary", action="store_true", help="no training: write README.md of the runs in --out")
    args = p.parse_args(argv)
    args.argv = argv
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.summary:
        for path in sorted(args.out.glob("*.json")):  # re-render each run's Markdown from its JSON
            path.with_suffix(".md").write_text(markdown(json.loads(path.read_text())))
        (args.out / "README.md").write_text(summary(args.out))
        return
    result = run(args)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"{args.dataset}_{args.name}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1, default=float))
    stem.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
