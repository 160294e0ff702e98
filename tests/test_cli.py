"""lems.cli: the quick demo end to end, error paths, train/evaluate/report, the headline in words.

The config and training tests are in tests/test_training.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lems.cli import main
from lems.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def _run_cli(*args: str, cwd: Path | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m lems ARGS`` in a subprocess, with the repository importable."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("KERAS_BACKEND", "jax")
    return subprocess.run([sys.executable, "-m", "lems", *args], capture_output=True, text=True, env=env,
                          cwd=cwd or ROOT, timeout=timeout)


def _tiny_args() -> list[str]:
    """Overrides for a model that compiles and trains in seconds."""
    return ["--lookback", "8", "--n-ahead", "4", "--hidden-size", "4", "--num-heads", "1", "--num-embedding", "2",
            "--fused-mlp-hidden-dim", "4", "--batch-size", "64", "--epochs", "1", "--fast-compile"]


# --------------------------------------------------------------------------------------------------------
# The quick demo, end to end (subprocess)
# --------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_demo_quick_end_to_end(tmp_path):
    out = tmp_path / "demo"
    start = time.perf_counter()
    proc = _run_cli("demo", "--quick", "--out", str(out), "--seed", "1", timeout=240)
    duration = time.perf_counter() - start
    print(f"lems demo --quick took {duration:.1f} s")
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert Path(lines[-1]) == out.resolve()  # the folder is printed last
    assert any("VWAP tracking error" in line for line in lines)
    for name in ("report.md", "summary.csv", "paired.csv", "headline.csv", "model.keras", "config.toml",
                 "history.csv", "improvement_by_duration.png", "improvement_distribution.png",
                 "allocation_curves.png", "example_orders.png"):
        assert (out / name).is_file(), name
    assert (out / "backtest.parquet").is_file() or (out / "backtest.csv").is_file()
    summary = pd.read_csv(out / "summary.csv")
    assert {"model", "twap", "static_vwap", "static_tilt", "dynamic_vwap", "flexible_rule"} <= set(summary["policy"])
    assert np.isfinite(summary["mean"]).all()
    assert TrainConfig.load(out / "config.toml").n_ahead == 6
    assert "Traceback" not in proc.stderr
    assert any("optimizer steps" in line for line in lines)
    assert any(line.startswith("in words:") for line in lines)


# --------------------------------------------------------------------------------------------------------
# Error paths: exit code 2, one line on stderr, no traceback
# --------------------------------------------------------------------------------------------------------
def _assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("lems: error: ")]
    assert len(errors) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


@pytest.mark.slow
def test_error_missing_data_file(tmp_path):
    _assert_one_line_error(_run_cli("train", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o")),
                           "not found", "nope.csv")


@pytest.mark.slow
def test_error_unreadable_data(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("hello,world\n1,2\n")
    _assert_one_line_error(_run_cli("train", str(bad), "--out", str(tmp_path / "o"), *_tiny_args()),
                           "bad.csv", "missing required column")


@pytest.mark.slow
def test_error_infeasible_order(tmp_path):
    proc = _run_cli("train", "synthetic", "--max-rate", "0.01", "--n-ahead", "12", "--out", str(tmp_path / "o"))
    _assert_one_line_error(proc, "infeasible order")
    proc = _run_cli("demo", "--quick", "--minutes", "0", "--out", str(tmp_path / "d"))
    _assert_one_line_error(proc, "--minutes")


def test_demo_trains_a_fixed_number_of_steps_unless_given_minutes(capsys):
    from lems.cli import DEMO_STEPS, QUICK_DEMO_STEPS, _demo_config, build_parser

    parser = build_parser()
    default = _demo_config(parser.parse_args(["demo"])).training
    assert (default.max_steps, default.time_budget_s) == (DEMO_STEPS, None)
    assert _demo_config(parser.parse_args(["demo", "--quick"])).max_steps == QUICK_DEMO_STEPS
    assert _demo_config(parser.parse_args(["demo", "--steps", "50"])).max_steps == 50
    timed = _demo_config(parser.parse_args(["demo", "--minutes", "1.5"])).training
    assert (timed.max_steps, timed.time_budget_s) == (None, 90.0)
    _main_error(capsys, "demo", "--steps", "5", "--minutes", "1", fragments=("--steps or --minutes",))
    _main_error(capsys, "demo", "--steps", "0", fragments=("--steps",))


def _main_error(capsys, *args: str, fragments: tuple[str, ...] = ()) -> None:
    """In process: ``main(args)`` returns 2 and prints exactly one ``lems: error:`` line on stderr."""
    capsys.readouterr()
    try:
        rc = main(list(args))
    except SystemExit as exc:  # argparse usage errors
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("lems: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.slow
def test_error_bad_config(tmp_path, capsys):
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[model]\nhidden_sise = 8\n")
    _assert_one_line_error(_run_cli("train", "synthetic", "--config", str(unknown)), "unknown setting",
                           "hidden_sise")
    broken = tmp_path / "broken.yaml"
    broken.write_text("lookback: [1, 2\n")
    _main_error(capsys, "train", "synthetic", "--config", str(broken), fragments=("unreadable config",))
    wrong_type = tmp_path / "wrong.toml"
    wrong_type.write_text("epochs = 'many'\n")
    _main_error(capsys, "train", "synthetic", "--config", str(wrong_type), fragments=("epochs",))
    _main_error(capsys, "train", "synthetic", "--config", str(tmp_path / "none.toml"),
                fragments=("config file not found",))
    _main_error(capsys, "train", "synthetic", "--n-ahead", "twelve", fragments=("n_ahead",))


@pytest.mark.slow
def test_error_usage_and_missing_inputs(tmp_path, capsys):
    _assert_one_line_error(_run_cli("demo", "--bogus"), "--bogus")
    _main_error(capsys, "train", fragments=("DATA",))
    _main_error(capsys, fragments=("choose a command",))
    _main_error(capsys, "evaluate", str(tmp_path / "m.keras"), "synthetic", fragments=("model file not found",))
    _main_error(capsys, "report", str(tmp_path / "f.parquet"), fragments=("frame file not found",))
    junk = tmp_path / "junk.csv"
    junk.write_text("a,b\n1,2\n")
    _main_error(capsys, "report", str(junk), "--out", str(tmp_path / "r"), fragments=("not a backtest frame",))
    not_model = tmp_path / "x.keras"
    not_model.write_bytes(b"\x00garbage bytes\xff")
    _main_error(capsys, "evaluate", str(not_model), "synthetic", "--out", str(tmp_path / "e"),
                fragments=("cannot load model", "not a valid .keras model file", "x.keras"))
    import zipfile

    empty_zip = tmp_path / "empty.keras"
    with zipfile.ZipFile(empty_zip, "w") as archive:
        archive.writestr("readme.txt", "no model here")
    _main_error(capsys, "evaluate", str(empty_zip), "synthetic", "--out", str(tmp_path / "e"),
                fragments=("not a valid .keras model file", "config.json"))


@pytest.mark.slow
def test_debug_shows_traceback_and_help_works(capsys):
    proc = _run_cli("train", "synthetic", "--max-rate", "0.01", "--debug")
    assert proc.returncode != 0 and "Traceback" in proc.stderr
    for command in ([], ["demo"], ["train"], ["evaluate"], ["report"]):
        with pytest.raises(SystemExit) as exit_info:
            main([*command, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert "usage: lems" in out
        if command:
            assert "--seed" in out and "--debug" in out


# --------------------------------------------------------------------------------------------------------
# train -> evaluate -> report (in process)
# --------------------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_train_evaluate_report_commands(tmp_path, capsys):
    from lems.data.synthetic import synthetic_market

    data = tmp_path / "bars"
    data.mkdir()
    bars = synthetic_market(n_assets=2, n_days=10, seed=2)
    for symbol, part in bars.groupby("symbol"):
        part.drop(columns=["symbol", "price", "notional_estimated"]).to_csv(data / f"{symbol}.csv", index=False)
    config = tmp_path / "train.yaml"
    config.write_text("training:\n  epochs: 3\n  patience: 1\nwindows:\n  stride: 2\n")
    train_dir = tmp_path / "train"
    rc = main(["train", str(data), "--config", str(config), "--out", str(train_dir), "--seed", "3",
               "--bar-minutes", "60", *_tiny_args()])
    assert rc == 0
    assert Path(capsys.readouterr().out.strip().splitlines()[-1]) == train_dir.resolve()
    for name in ("model.keras", "config.toml", "config.json", "history.csv", "history.json"):
        assert (train_dir / name).is_file(), name
    saved = TrainConfig.load(train_dir / "config.toml")
    assert (saved.epochs, saved.stride, saved.n_ahead, saved.seed, saved.data.paths) == (1, 2, 4, 3, (str(data),))
    assert saved.bar_minutes == 60.0  # --bar-minutes reached the config
    history = pd.read_csv(train_dir / "history.csv")
    assert list(history["epoch"]) == [1] and np.isfinite(history["loss"]).all()
    assert {"val_tracking_error_bps", "val_flexible_improvement_bps"} <= set(history.columns)
    info = json.loads((train_dir / "history.json").read_text())
    assert info["soup_epochs"] == [info["best_epoch"]] == [1]  # weight_soup off by default: the best epoch

    eval_dir = tmp_path / "eval"
    capsys.readouterr()
    rc = main(["evaluate", str(train_dir / "model.keras"), str(data), "--out", str(eval_dir), "--frame-format",
               "csv", "--max-rate", "0.5"])
    assert rc == 0
    frame = pd.read_csv(eval_dir / "backtest.csv")
    # the classical schedules: TWAP, the static curve and the two fitted on the validation windows
    classical = {"twap", "static_vwap", "static_tilt", "dynamic_vwap"}
    assert set(frame["policy"]) == {"model", "flexible_rule", *classical}
    assert set(pd.read_csv(eval_dir / "backtest_validation.csv")["policy"]) == classical
    out = capsys.readouterr().out
    assert "best classical schedule (TWAP, static curve, static tilt, dynamic VWAP; chosen on validation)" in out
    assert "dynamic_vwap" in out.split("per schedule:")[1] and "static_tilt" in out.split("per schedule:")[1]
    headline_json = json.loads((eval_dir / "headline.json").read_text())
    assert {row["baseline"] for row in headline_json["spread"]} == classical
    assert set(headline_json["best"]["selection_spreads_bps"]) == classical
    assert "dynamic_vwap" in (eval_dir / "report.md").read_text()
    assert frame["max_participation"].max() <= 0.5 + 1e-6  # the evaluation's limits were applied
    assert (eval_dir / "report.md").is_file() and (eval_dir / "example_orders.png").is_file()
    with pytest.raises(ValueError, match="infeasible"):
        TrainConfig(n_ahead=4, max_rate=0.2)
    assert main(["evaluate", str(train_dir / "model.keras"), str(data), "--max-rate", "0.2",
                 "--out", str(tmp_path / "e2")]) == 2

    report_dir = tmp_path / "report"
    assert main(["report", str(eval_dir / "backtest.csv"), "--out", str(report_dir), "--format", "html"]) == 0
    assert (report_dir / "report.html").is_file() and (report_dir / "summary.csv").is_file()
    reported = capsys.readouterr().out  # the headline from the frames, the best chosen on the validation frame
    assert "static tilt, dynamic VWAP; chosen on validation)" in reported and "dynamic_vwap" in reported

    # net of costs: sizes, a cost model and a cap on the command line
    costs_dir = tmp_path / "costs"
    capsys.readouterr()
    rc = main(["evaluate", str(train_dir / "model.keras"), str(data), "--out", str(costs_dir), "--frame-format", "csv",
               "--max-rate", "0.5", "--sizes", "0.01", "0.2", "--spread-bps", "1", "--impact-coef", "1",
               "--max-participation", "0.5"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "order of 20 % of the expected horizon volume: model" in out and "almgren_chriss" in out
    costs = pd.read_csv(costs_dir / "backtest_costs.csv")
    assert sorted(costs["order_size"].unique()) == [0.01, 0.2]
    assert set(costs["policy"]) == {"model", "flexible_rule", "almgren_chriss", *classical}
    assert costs["peak_bar_participation"].max() <= 0.5 + 1e-9  # the cap
    assert pd.read_csv(costs_dir / "backtest.csv").equals(frame)  # the frictionless frame as before
    text = (costs_dir / "report.md").read_text()
    assert "## Net of costs" in text and "almgren_chriss_frontier.png" in text and "cost_curves.png" in text
    assert TrainConfig.load(costs_dir / "config.toml").execution.sizes == (0.01, 0.2)
    # lems report: the costed frame, its settings from the config.toml beside it, one size shown
    rc = main(["report", str(costs_dir / "backtest.csv"), str(costs_dir / "backtest_costs.csv"), "--sizes", "0.2",
               "--out", str(tmp_path / "report_costs")])
    assert rc == 0
    tca = pd.read_csv(tmp_path / "report_costs" / "tca.csv")
    assert list(tca["order_size"].unique()) == [0.2] and (tmp_path / "report_costs" / "frontier.csv").is_file()


def test_cost_flags_bad_input_exit_2_with_one_line(tmp_path, capsys):
    """Sizes, costs and the cap: a ValueError naming the setting and its range, before any model or data work."""
    model = str(tmp_path / "m.keras")
    for flags, fragments in (
        (["--spread-bps", "-1"], ("half_spread_bps must be in [0, inf) bps",)),
        (["--spread", "wide"], ("half_spread_bps must be a number in [0, inf) bps or 'corwin-schultz'",)),
        (["--sizes", "0.05", "0"], ("sizes must be", "in (0, inf)")),
        (["--sizes", "-0.1"], ("sizes must be", "in (0, inf)")),
        (["--max-participation", "0"], ("max_participation must be in (0, 1]",)),
        (["--max-participation", "1.5"], ("max_participation must be in (0, 1]",)),
        (["--impact-coef", "-1"], ("impact_coef must be in [0, inf)",)),
        (["--impact-delta", "2"], ("impact_delta must be in (0, 1]",)),
        (["--sizes", "0.2", "--max-participation", "0.1", "--require-completion"],
         ("infeasible order", "max_participation 0.1", "0.2 of the expected horizon volume")),
    ):
        _main_error(capsys, "evaluate", model, "synthetic", *flags, fragments=fragments)
    _main_error(capsys, "train", "synthetic", "--sizes", "0", fragments=("sizes must be",))
    _main_error(capsys, "train", "synthetic", "--max-participation", "2", fragments=("max_participation",))
    from lems.baselines import TWAP

    frame = tmp_path / "frame.csv"
    _frame_with_model(TWAP()).to_csv(frame, index=False)
    _main_error(capsys, "report", str(frame), "--sizes", "0.05", "--out", str(tmp_path / "r"),
                fragments=("no costed orders",))


def test_cost_flags_reach_the_config():
    from lems.cli import _train_config, build_parser

    args = build_parser().parse_args(["evaluate", "m.keras", "synthetic", "--sizes", "0.01", "0.05", "--spread",
                                      "corwin-schultz", "--impact-coef", "0.5", "--permanent-coef", "0.1",
                                      "--max-participation", "0.3", "--arrival", "reference"])
    args.config = None
    execution = _train_config(args, ["synthetic"]).execution
    assert execution.sizes == (0.01, 0.05) and execution.half_spread_bps == "corwin-schultz"
    assert (execution.impact_coef, execution.permanent_coef, execution.max_participation, execution.arrival) == \
        (0.5, 0.1, 0.3, "reference")
    train = build_parser().parse_args(["train", "synthetic", "--sizes", "0.05", "--half-spread-bps", "2",
                                       "--train-size", "0.05", "--risk-aversion", "0.1", "--stream"])
    train.config = None
    config = _train_config(train, ["synthetic"])
    assert config.execution.half_spread_bps == 2.0 and config.execution.risk_aversion == 0.1 and config.data.stream


# --------------------------------------------------------------------------------------------------------
# Fallbacks that say what happened, and the headline in words
# --------------------------------------------------------------------------------------------------------
def test_parquet_failure_falls_back_to_csv_with_a_warning(tmp_path, capsys, monkeypatch):
    from lems import cli

    def no_engine(self, *args, **kwargs):
        raise ImportError("Unable to find a usable engine")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", no_engine)
    path = cli._save_frame(pd.DataFrame({"a": [1, 2]}), tmp_path, "parquet")
    assert path.name == "backtest.csv" and pd.read_csv(path)["a"].tolist() == [1, 2]
    err = capsys.readouterr().err
    assert "lems: warning: cannot write parquet (ImportError: Unable to find a usable engine)" in err

    def disk_full(self, *args, **kwargs):
        raise OSError("No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", disk_full)
    with pytest.raises(OSError, match="No space"):  # not a parquet problem: no silent fallback
        cli._save_frame(pd.DataFrame({"a": [1]}), tmp_path / "o", "parquet")


def _frame_with_model(model_policy):
    from lems.backtest import backtest
    from lems.baselines import TWAP, FlexibleRule, StaticVWAP
    from lems.data.synthetic import synthetic_market
    from lems.data.windows import make_windows

    windows = make_windows(synthetic_market(n_assets=2, n_days=20, seed=1), 24, 6, stride=3)
    return backtest({"model": model_policy, "twap": TWAP(), "static_vwap": StaticVWAP(),
                     "flexible_rule": FlexibleRule()}, windows)


def test_headline_says_in_words_where_the_baselines_are_better(capsys):
    from lems.baselines import TWAP
    from lems.cli import _print_headline

    _print_headline(_frame_with_model(TWAP()))  # a "model" with no skill: TWAP itself
    out = capsys.readouterr().out
    assert "the static volume curve tracks VWAP better than the model" in out
    assert "the classical flexible rule is better than the model" in out
    assert "no edge over it" in out


def test_verdicts_name_the_model_edge_when_it_has_one():
    from lems.report import verdicts

    fixed = pd.DataFrame({"policy": ["model", "static_vwap", "twap"], "vwap_tracking_error_bps": [8.0, 10.0, 12.0],
                          "mean_diff": [0.0, 2.0, 4.0], "ci_low": [0.0, 1.0, -0.5], "ci_high": [0.0, 3.0, 8.5],
                          "significant": [False, True, False], "model_improvement_pct": [0.0, 20.0, 33.3]})
    flexible = pd.DataFrame({"benchmark": ["vwap", "vwap", "twap", "twap"],
                             "policy": ["model", "flexible_rule", "model", "flexible_rule"],
                             "mean_improvement_bps": [6.0, 5.0, 1.0, 3.0], "mean_diff": [0.0, 1.0, 0.0, -2.0],
                             "ci_low": [0.0, 0.2, 0.0, -3.0], "ci_high": [0.0, 1.8, 0.0, -1.0],
                             "significant": [False, True, False, True]})
    lines = verdicts({"fixed": fixed, "flexible": flexible})
    assert lines[0].startswith("Fixed duration: the model tracks VWAP 20.0 % better than the static volume curve "
                               "(significant")
    assert "33.3 % better than TWAP (not significant" in lines[1]
    assert lines[2].startswith("Flexible duration vs VWAP: the model beats the classical flexible rule by 1.00 bps")
    assert lines[3].startswith("Flexible duration vs TWAP: the classical flexible rule is better than the model by "
                               "2.00 bps (significant")
