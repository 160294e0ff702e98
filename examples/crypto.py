"""Train a LargeExecutionModel on hourly crypto bars and compare it with classical schedules.

Point it at your own files (Binance kline CSV/zip, or any OHLCV CSV/Parquet with a header that
:func:`lems.data.loaders.read_bars` reads; one file per symbol, symbol = file stem)::

    python examples/crypto.py ../shared/data/crypto_1h/BTCUSDT.csv ../shared/data/crypto_1h/ETHUSDT.csv \
        --train-end 2020-07-01 --val-end 2021-01-01 --minutes 5

One model is trained on all files (time split: train before ``--train-end``, validate until ``--val-end``,
test after it), with early stopping on the validation loss and a wall-clock budget; the test split is then
backtested against TWAP, the static VWAP curve and a flexible-duration rule, and the headline table printed:
fixed-duration VWAP tracking error [bps] and flexible-duration mean improvement [bps] (positive = better).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing


def parse_args(argv: list[str] | None = None, *, tz: str = "UTC", n_ahead: int = 12, lookback: int = 48,
               train_end: str = "2020-07-01", val_end: str = "2021-01-01",
               description: str | None = None) -> argparse.Namespace:
    """Command line (defaults: hourly crypto, 12-bar orders)."""
    p = argparse.ArgumentParser(description=description or __doc__.split("\n\n")[0])
    p.add_argument("paths", nargs="+", help="bar files or folders (one symbol per file)")
    p.add_argument("--tz", default=tz, help="time zone of the calendar features")
    p.add_argument("--n-ahead", type=int, default=n_ahead, help="order horizon H [bars]")
    p.add_argument("--lookback", type=int, default=lookback, help="history before the origin [bars]")
    p.add_argument("--train-end", default=train_end, help="end of training (date, UTC)")
    p.add_argument("--val-end", default=val_end, help="end of validation = start of test (date, UTC)")
    p.add_argument("--minutes", type=float, default=5.0, help="wall-clock training budget [minutes]")
    p.add_argument("--train-stride", type=int, default=2, help="use every k-th training origin per asset")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> None:
    """Read, window, train, backtest on the test split and print the headline tables."""
    import numpy as np
    import pandas as pd

    from lems.data.loaders import read_bars
    from lems.data.windows import make_windows
    from lems.evaluation.backtest import backtest
    from lems.evaluation.stats import headline
    from lems.policies import TWAP, FlexibleRule, ModelPolicy, StaticVWAP
    from lems.training import Splits, TrainConfig, train

    bars = read_bars(args.paths)
    windows = make_windows(bars, args.lookback, args.n_ahead, tz=args.tz)
    train_set, val_set, test_set = windows.split(args.train_end, args.val_end)
    if min(len(train_set), len(val_set), len(test_set)) == 0:
        raise SystemExit(f"empty split (train/val/test = {len(train_set)}/{len(val_set)}/{len(test_set)} "
                         "windows): check --train-end and --val-end against the data's dates")
    train_set = train_set.subset(np.asarray(train_set.origin_index) % args.train_stride == 0)
    print(f"windows: train {len(train_set)}, validation {len(val_set)}, test {len(test_set)}")
    config = TrainConfig(data=[str(p) for p in args.paths], tz=args.tz, lookback=args.lookback,
                         n_ahead=args.n_ahead, hidden_size=32, num_heads=4, num_embedding=8,
                         fused_mlp_hidden_dim=32, epochs=100, patience=3, time_budget_s=args.minutes * 60,
                         seed=args.seed)
    result = train(config, windows=Splits(train_set, val_set, test_set), verbose=2)
    print(f"trained {result.epochs_run} epochs in {result.wall_time_s:.0f} s (stopped by {result.stopped_by})")
    policies = {"model": ModelPolicy(result.model), "static_vwap": StaticVWAP(),
                "flexible_rule": FlexibleRule(), "twap": TWAP()}
    tables = headline(backtest(policies, test_set), model="model")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print("\nFixed duration, VWAP tracking error [bps] (lower is better):")
        print(tables["fixed"].round(3).to_string(index=False))
        print("\nFlexible duration, mean improvement [bps] (higher is better):")
        print(tables["flexible"].round(3).to_string(index=False))


if __name__ == "__main__":
    run(parse_args())
