"""lems.cli and lems.training: the quick demo end to end, error paths, train/evaluate/report, configs, budget."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lems.cli import main
from lems.training import Splits, TrainConfig, split_windows, train

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
def test_demo_quick_end_to_end(tmp_path):
    out = tmp_path / "demo"
    start = time.perf_counter()
    proc = _run_cli("demo", "--quick", "--out", str(out), "--seed", "1", timeout=240)
    duration = time.perf_counter() - start
    print(f"lems demo --quick took {duration:.1f} s")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert duration < 120, f"demo --quick took {duration:.0f} s (limit 120 s)"
    lines = proc.stdout.strip().splitlines()
    assert Path(lines[-1]) == out.resolve()  # the folder is printed last
    assert any("VWAP tracking error" in line for line in lines)
    for name in ("report.md", "summary.csv", "paired.csv", "headline.csv", "model.keras", "config.toml",
                 "history.csv", "improvement_by_duration.png", "improvement_distribution.png",
                 "allocation_curves.png", "example_orders.png"):
        assert (out / name).is_file(), name
    assert (out / "backtest.parquet").is_file() or (out / "backtest.csv").is_file()
    summary = pd.read_csv(out / "summary.csv")
    assert {"model", "twap", "static_vwap", "flexible_rule"} <= set(summary["policy"])
    assert np.isfinite(summary["mean"]).all()
    assert TrainConfig.load(out / "config.toml").n_ahead == 6
    assert "Traceback" not in proc.stderr


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


def test_error_missing_data_file(tmp_path):
    _assert_one_line_error(_run_cli("train", str(tmp_path / "nope.csv"), "--out", str(tmp_path / "o")),
                           "not found", "nope.csv")


def test_error_unreadable_data(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("hello,world\n1,2\n")
    _assert_one_line_error(_run_cli("train", str(bad), "--out", str(tmp_path / "o"), *_tiny_args()),
                           "bad.csv", "missing required column")


def test_error_infeasible_order(tmp_path):
    proc = _run_cli("train", "synthetic", "--max-rate", "0.01", "--n-ahead", "12", "--out", str(tmp_path / "o"))
    _assert_one_line_error(proc, "infeasible order")
    proc = _run_cli("demo", "--quick", "--minutes", "0", "--out", str(tmp_path / "d"))
    _assert_one_line_error(proc, "--minutes")


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


def test_error_usage_and_missing_inputs(tmp_path, capsys):
    _assert_one_line_error(_run_cli("demo", "--bogus"), "--bogus")
    _main_error(capsys, "train", fragments=("DATA",))
    _main_error(capsys, fragments=("choose a command",))
    _main_error(capsys, "evaluate", str(tmp_path / "m.keras"), "synthetic", fragments=("model file not found",))
    _main_error(capsys, "report", str(tmp_path / "f.parquet"), fragments=("frame file not found",))
    junk = tmp_path / "junk.csv"
    junk.write_text("a,b\n1,2\n")
    _main_error(capsys, "report", str(junk), "--out", str(tmp_path / "r"), fragments=("not a backtest frame",))
    not_model = tmp_path / "model.keras"
    not_model.write_text("not a zip")
    _main_error(capsys, "evaluate", str(not_model), "synthetic", "--out", str(tmp_path / "e"),
                fragments=("cannot load model",))


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
               *_tiny_args()])
    assert rc == 0
    assert Path(capsys.readouterr().out.strip().splitlines()[-1]) == train_dir.resolve()
    for name in ("model.keras", "config.toml", "config.json", "history.csv", "history.json"):
        assert (train_dir / name).is_file(), name
    saved = TrainConfig.load(train_dir / "config.toml")
    assert (saved.epochs, saved.stride, saved.n_ahead, saved.seed, saved.data) == (1, 2, 4, 3, [str(data)])
    history = pd.read_csv(train_dir / "history.csv")
    assert list(history["epoch"]) == [1] and np.isfinite(history["loss"]).all()

    eval_dir = tmp_path / "eval"
    rc = main(["evaluate", str(train_dir / "model.keras"), str(data), "--out", str(eval_dir), "--frame-format",
               "csv", "--max-rate", "0.5"])
    assert rc == 0
    frame = pd.read_csv(eval_dir / "backtest.csv")
    assert set(frame["policy"]) == {"model", "twap", "static_vwap", "flexible_rule"}
    assert frame["max_participation"].max() <= 0.5 + 1e-6  # the evaluation's limits were applied
    assert (eval_dir / "report.md").is_file() and (eval_dir / "example_orders.png").is_file()
    with pytest.raises(ValueError, match="infeasible"):
        TrainConfig(n_ahead=4, max_rate=0.2)
    assert main(["evaluate", str(train_dir / "model.keras"), str(data), "--max-rate", "0.2",
                 "--out", str(tmp_path / "e2")]) == 2

    report_dir = tmp_path / "report"
    assert main(["report", str(eval_dir / "backtest.csv"), "--out", str(report_dir), "--format", "html"]) == 0
    assert (report_dir / "report.html").is_file() and (report_dir / "summary.csv").is_file()


# --------------------------------------------------------------------------------------------------------
# lems.training: configs and the time budget
# --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".toml", ".yaml", ".json"])
def test_config_round_trip(tmp_path, suffix):
    config = TrainConfig(data=["a.csv", "b/"], tz="America/New_York", n_ahead=8, train_end="2021-03-01",
                         val_end=0.9, time_budget_s=30.5, max_windows=None, metrics=True, min_rate=0.01,
                         max_rate=0.25, kan_basis="bspline")
    path = config.save(tmp_path / f"config{suffix}")
    loaded = TrainConfig.load(path)
    assert loaded == config
    assert loaded.to_dict() == config.to_dict()


def test_config_validation_and_overrides():
    config = TrainConfig()
    assert config.replace(n_ahead="6", learning_rate="1e-3", patience=None).n_ahead == 6
    assert config.replace(time_budget_s="none").time_budget_s is None
    assert config.replace(weight_averaging="0.99").weight_averaging == 0.99
    assert TrainConfig.from_dict({"model": {"hidden-size": 16}, "seed": 4}).hidden_size == 16
    for bad, match in (({"n_ahead": 1}, "n_ahead"), ({"lookback": 2.5}, "lookback"), ({"train_end": 1.5}, "train_end"),
                       ({"train_end": 0.8, "val_end": 0.5}, "not be after"), ({"kan_basis": "cheb"}, "kan_basis"),
                       ({"min_rate": 0.5, "max_rate": 0.2}, "min_rate"), ({"epochs": True}, "epochs"),
                       ({"time_budget_s": -1}, "time_budget_s"), ({"train_end": "not a date"}, "train_end"),
                       ({"weight_averaging": 1.0}, "weight_averaging")):
        with pytest.raises(ValueError, match=match):
            TrainConfig.from_dict(bad)
    with pytest.raises(ValueError, match="unknown setting"):
        TrainConfig.from_dict({"epoch": 3})


def _tiny_config(**changes) -> TrainConfig:
    values = dict(synthetic_assets=2, synthetic_days=8, lookback=8, n_ahead=4, stride=2, hidden_size=4,
                  num_heads=1, num_embedding=2, fused_mlp_hidden_dim=4, batch_size=32, fast_compile=True)
    return TrainConfig(**{**values, **changes})


def test_train_stops_within_time_budget():
    config = _tiny_config(epochs=10_000, time_budget_s=2.0, patience=0, seed=5)
    start = time.perf_counter()
    result = train(config, verbose=0)
    elapsed = time.perf_counter() - start
    assert result.stopped_by == "time_budget"
    assert 1 <= result.epochs_run < 10_000
    assert len(result.history["loss"]) == result.epochs_run == len(result.history["wall_time_s"])
    # the budget is checked after every batch: training ends within one epoch (a few small steps plus the
    # validation pass) of the budget, compilation included
    last_epoch = np.diff([0.0, *result.history["wall_time_s"]]).max() if result.epochs_run > 1 else 60.0
    assert result.history["wall_time_s"][-1] <= config.time_budget_s + last_epoch + 1.0
    assert result.wall_time_s <= elapsed
    assert isinstance(result.windows, Splits) and len(result.windows.test) > 0
    assert np.isfinite(result.history["loss"]).all()


def test_split_windows_fractions_and_dates():
    from lems.data.synthetic import synthetic_market
    from lems.data.windows import make_windows

    windows = make_windows(synthetic_market(n_assets=2, n_days=10, seed=0), 8, 4, stride=3)
    splits = split_windows(_tiny_config(train_end=0.5, val_end=0.75), windows)
    assert splits.train.horizon_end.max() < splits.val.origin.min()
    assert splits.val.horizon_end.max() < splits.test.origin.min()
    n_origins = len(np.unique(windows.origin))
    assert abs(len(np.unique(splits.test.origin)) - 0.25 * n_origins) <= 2
    cut = windows.origin[len(windows) // 2]
    dated = split_windows(_tiny_config(train_end=str(cut), val_end=str(cut)), windows)
    assert len(dated.val) == 0 and dated.test.origin.min() >= cut
    with pytest.raises(ValueError, match="no training window"):
        split_windows(_tiny_config(train_end="2000-01-01", val_end="2000-01-02"), windows)


def test_train_runs_extra_callbacks_and_weight_averaging():
    import keras

    class Count(keras.callbacks.Callback):
        epochs = 0

        def on_epoch_end(self, epoch, logs=None):
            Count.epochs += 1

    result = train(_tiny_config(epochs=2, patience=0, seed=1, weight_averaging=0.9), verbose=0,
                   callbacks=[Count()])
    assert Count.epochs == result.epochs_run == 2
    assert result.model.optimizer.use_ema and np.isfinite(result.history["loss"]).all()


@pytest.mark.skipif(os.environ.get("KERAS_BACKEND", "jax") != "jax", reason="JAX compilation cache")
def test_compilation_cache_is_opt_in_and_set_process_wide(tmp_path):
    code = ("import lems, jax; from lems.training import enable_compilation_cache; "
            "assert not jax.config.jax_compilation_cache_dir; "
            f"p = enable_compilation_cache({str(tmp_path / 'cache')!r}); "
            "assert jax.config.jax_compilation_cache_dir == str(p) and p.is_dir(); print('ok')")
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    env.pop("LEMS_COMPILATION_CACHE", None)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
