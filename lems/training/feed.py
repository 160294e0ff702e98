"""What training reads: bars, leak-free windows, the purged time split (materialised or streamed from a symbol
universe), and the fixed-shape batches ``model.fit`` consumes."""

from __future__ import annotations

import inspect
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from lems.batching import PaddedBatches
from lems.data import windows as data_windows  # called through the module: tests spy on make_windows
from lems.data.features import feature_names
from lems.data.loaders import read_bars
from lems.data.synthetic import synthetic_market
from lems.data.targets import cost_targets
from lems.data.universe import SymbolUniverse, UniverseWindows, default_cache_dir
from lems.training.config import TrainConfig
from lems.training.sections import _SYNTHETIC_BAR_MINUTES, _parse_date

__all__ = ["Splits", "UniverseParts", "build_windows", "evaluation_parts", "evaluation_windows", "holdout_request",
           "load_bars", "reading_progress", "split_windows", "stream_parts", "stream_splits"]


def load_bars(config: TrainConfig):
    """The canonical bars frame of ``config.data`` (files/folders, or the synthetic market).

    Raises:
        ValueError: a missing path, unreadable or invalid data (from :func:`lems.data.loaders.read_bars`).
    """
    data = config.data
    if data.synthetic:
        if data.resample_minutes is not None:
            raise ValueError("config: resample_minutes applies to bar files; the synthetic market takes bar_minutes")
        minutes = _SYNTHETIC_BAR_MINUTES if data.bar_minutes is None else data.bar_minutes
        if not float(minutes).is_integer():
            raise ValueError(f"config: the synthetic market needs a whole number of bar_minutes, got {minutes:g}")
        return synthetic_market(n_assets=data.synthetic_assets, n_days=data.synthetic_days,
                                bar_minutes=int(minutes), calendar=data.synthetic_calendar,
                                seed=config.training.seed)
    missing = [p for p in data.paths if not Path(p).exists()]
    if missing:
        raise ValueError(f"data not found: {', '.join(missing)}")
    minutes = None if data.resample_minutes is None else _whole_minutes(data.resample_minutes)
    return read_bars(list(data.paths), tz=None, bar_minutes=minutes)


def _whole_minutes(minutes: float) -> int:
    if not float(minutes).is_integer():
        raise ValueError(f"config: resample_minutes must be a whole number of minutes, got {minutes:g}")
    return int(minutes)


def build_windows(config: TrainConfig, bars=None):
    """Leak-free windows of ``bars`` (default: :func:`load_bars`) with the config's lookback, horizon, stride and
    bar length.

    Raises:
        ValueError: no valid window (data too short for ``lookback + n_ahead``), or invalid data.
    """
    bars = load_bars(config) if bars is None else bars
    w = config.windows
    windows = data_windows.make_windows(bars, w.lookback, w.n_ahead, tz=config.data.tz, stride=w.stride,
                                        bar_minutes=config.data.bar_minutes, **_cross_asset_option(config))
    if len(windows) == 0:
        raise ValueError(f"no valid window: the data is shorter than lookback + n_ahead "
                         f"({w.lookback} + {w.n_ahead} bars) or has no volume")
    return windows


def _cross_asset_option(config: TrainConfig) -> dict[str, bool]:
    """``{"cross_asset": True}`` when the config switches the market channels on, else nothing (so that window
    builders of older signatures, and spies in tests, keep working unchanged)."""
    return {"cross_asset": True} if config.windows.cross_asset else {}


class Splits(NamedTuple):
    """Purged time split of windows: ``train``, ``val``, ``test`` (:class:`lems.data.windows.WindowSet`)."""

    train: Any
    val: Any
    test: Any


def _split_time(name: str, value: float | str, origins: np.ndarray):
    if isinstance(value, float):
        position = min(int(value * len(origins)), len(origins) - 1)
        return pd.Timestamp(origins[position], tz="UTC")
    return _parse_date(name, value)


def split_windows(config: TrainConfig, windows) -> Splits:
    """Train / validation / test split by origin time, purged (no horizon crosses a boundary).

    Fractions refer to the sorted unique origin times of ``windows`` (so all assets share the boundaries).

    Raises:
        ValueError: an empty training set.
    """
    if len(windows) == 0:
        raise ValueError("no windows to split")
    origins = np.unique(windows.origin.tz_convert("UTC").tz_localize(None).to_numpy())
    train_end = _split_time("train_end", config.windows.train_end, origins)
    val_end = max(_split_time("val_end", config.windows.val_end, origins), train_end)
    splits = Splits(*windows.split(train_end, val_end))
    if len(splits.train) == 0:
        raise ValueError(f"no training window before train_end={train_end} (is the data long enough?)")
    return splits


def _batches(windows, config: TrainConfig, shuffle: bool, seed: int, costed: bool = False, y=None):
    """``((X, min_rate, max_rate), y, weight)`` batches of one fixed size, so that each step compiles once.

    Training (``shuffle``) drops the remainder (re-drawn each epoch); validation pads its last batch with
    zero-weight rows, so every validation window counts. ``costed``: the extended targets ``(N, H, 5)`` of the
    cost-aware loss (:func:`lems.data.targets.cost_targets`), else the compact ``windows.y``; ``y``: the caller's
    own targets ``(N, H, C)`` for these windows (e.g. extended targets of a loss of its own).
    """
    n, limits = len(windows), config.limits
    x = (np.asarray(windows.X, dtype=np.float32), np.full((n, 1), limits.min_rate, dtype=np.float32),
         np.full((n, 1), limits.max_rate, dtype=np.float32))
    if y is not None:
        if len(y) != n:
            raise ValueError(f"targets must have one row per window: {len(y)} rows for {n} windows")
    elif costed:
        y = cost_targets(windows, half_spread=config.execution.fixed_half_spread())
    else:
        y = windows.y
    return PaddedBatches(x, np.asarray(y, dtype=np.float32), config.training.batch_size, shuffle=shuffle,
                         seed=seed, drop_remainder=shuffle)


def _streamed(part) -> bool:
    """True for the windows of a :class:`lems.data.universe.SymbolUniverse` (served on the fly)."""
    return isinstance(part, UniverseWindows)


def _training_batches(config: TrainConfig, splits: Splits, costed: bool,
                      targets: tuple[Any, Any] | None = None) -> tuple[Any, Any, int]:
    """``(train batches, validation batches or None, feature channels)`` of materialised or streamed splits;
    ``targets``: the caller's ``(train, validation)`` targets of the materialised splits."""
    t, limits = config.training, config.limits
    if not _streamed(splits.train):
        y_train, y_val = (None, None) if targets is None else targets
        rows = _subsample_rows(len(splits.train), config.windows.max_windows, t.seed)
        train_set = splits.train if rows is None else splits.train.subset(rows)
        if y_train is not None and rows is not None:
            y_train = np.asarray(y_train)[rows]
        val = (_batches(splits.val, config, shuffle=False, seed=0, costed=costed, y=y_val) if len(splits.val)
               else None)
        return (_batches(train_set, config, shuffle=True, seed=t.seed, costed=costed, y=y_train), val,
                train_set.X.shape[-1])
    if targets is not None:
        raise ValueError("targets of one's own need materialised windows (a WindowSet split), not streamed ones")
    if costed:
        raise ValueError("config: cost-aware training (execution sizes with a cost model, a cap or a risk term) "
                         "needs the per-window cost inputs of lems.data.targets.cost_targets, which streamed batches "
                         "do not carry: set stream = false, or train frictionless (no sizes)")
    rates = {"min_rate": limits.min_rate, "max_rate": limits.max_rate}
    num = None
    if config.windows.max_windows is not None:
        num = min(max(config.windows.max_windows // t.batch_size, 1), len(splits.train) // t.batch_size) or None
    data = splits.train.batches(t.batch_size, shuffle=True, seed=t.seed, drop_remainder=True, num_batches=num,
                                weighting=t.symbol_weighting, **rates)
    val = (validation_part(config, splits.val).batches(t.batch_size, shuffle=False, **rates) if len(splits.val)
           else None)
    return data, val, len(feature_names(config.windows.cross_asset))


def validation_part(config: TrainConfig, val):
    """The validation windows training scores: all of them up to ``training.max_val_windows``, else a streamed
    part thinned evenly per symbol (:meth:`UniverseWindows.thin_to`) or evenly spaced rows of a materialised one."""
    cap = config.training.max_val_windows
    if len(val) <= cap:
        return val
    if _streamed(val):
        return val.thin_to(cap)
    return val.subset(np.unique(np.linspace(0, len(val) - 1, cap).round().astype(int)))


def stream_splits(config: TrainConfig, progress: Callable[[int, int, float], None] | None = None) -> Splits:
    """The config's purged time split as streamed parts (:class:`lems.data.universe.UniverseWindows`).

    The source is the one data path (a folder of files or sub-folders per symbol, or a Parquet dataset
    partitioned by symbol or with a symbol column), the list of paths, or the synthetic market's bars.
    Fractions of ``train_end`` / ``val_end`` refer to the distinct origin times of all symbols, as
    :func:`split_windows`. With ``windows.holdout_symbols`` the held-out symbols are left out of all three
    parts (:func:`stream_parts` also returns them and their test windows).

    Args:
        config: Settings.
        progress: Called as ``progress(symbols_read, n_symbols, seconds)`` while the symbols are scanned
            (e.g. :func:`reading_progress`).

    Raises:
        ValueError: missing data, no valid window, an empty training part.
    """
    return stream_parts(config, progress).splits


class UniverseParts(NamedTuple):
    """A streamed universe's parts: the time split of the seen symbols, and the held-out symbols.

    Attributes:
        splits: :class:`Splits` of the seen symbols (train, validation, test).
        unseen: Test-period windows of the held-out symbols, or None when none is held out.
        holdout: The held-out symbols, sorted (empty when none).
        liquidity: Symbol -> median daily notional over the training period [quote currency], every symbol.
    """

    splits: Splits
    unseen: Any
    holdout: tuple[str, ...]
    liquidity: dict[str, float]


def holdout_request(config: TrainConfig) -> float | list[str] | None:
    """``windows.holdout_symbols`` as :meth:`SymbolUniverse.split_symbols` takes it: a fraction, a list, or None.

    Raises:
        ValueError: an empty list or a fraction outside ``[0, 1)``.
    """
    value = config.windows.holdout_symbols
    if value is None or not str(value).strip():
        return None
    text = str(value).strip()
    try:
        fraction = float(text)
    except ValueError:
        names = [name.strip() for name in text.split(",") if name.strip()]
        if not names:
            raise ValueError(f"config: holdout_symbols must be a fraction or a comma list of symbols, got "
                             f"{value!r}") from None
        return names
    if not (math.isfinite(fraction) and 0.0 <= fraction < 1.0):
        raise ValueError(f"config: holdout_symbols as a fraction must be in [0, 1), got {value!r}")
    return fraction or None


def stream_parts(config: TrainConfig, progress: Callable[[int, int, float], None] | None = None) -> UniverseParts:
    """:func:`stream_splits` with the held-out symbols (``windows.holdout_symbols``, drawn with
    ``windows.holdout_seed``, default the training seed) and their test windows.

    Raises:
        ValueError: as :func:`stream_splits`; a held-out symbol the data does not have.
    """
    w = config.windows
    universe = _universe(config)
    holdout = holdout_request(config)
    if holdout is None:
        parts = universe.split(w.train_end, w.val_end, progress=progress)
        train = parts[0]
        liquidity = {} if train.liquidity is None else dict(zip(train.symbols, train.liquidity.tolist()))
        result = UniverseParts(Splits(*parts), None, (), liquidity)
    else:
        seed = config.training.seed if w.holdout_seed is None else w.holdout_seed
        split = universe.split_symbols(w.train_end, w.val_end, holdout=holdout, seed=seed, progress=progress)
        result = UniverseParts(Splits(split.train, split.val, split.test), split.unseen, tuple(split.holdout),
                               dict(split.liquidity))
    if len(result.splits.train) == 0:
        raise ValueError(f"no training window before train_end={w.train_end} (is the data long enough?)")
    if w.cross_asset:
        universe.market(progress)  # the market channels' pass over every symbol (or its cache), reported here
    return result


def reading_progress(every_s: float = 10.0, stream=None) -> Callable[[int, int, float], None]:
    """A ``progress(done, total, seconds)`` callback that prints ``reading symbols 40/102 (13 s)`` lines: the
    first and the last symbol, and at most one line per ``every_s`` seconds between [seconds]."""
    last = [-math.inf]

    def progress(done: int, total: int, seconds: float) -> None:
        now = time.perf_counter()
        if done in (1, total) or now - last[0] >= every_s:
            last[0] = now
            print(f"reading symbols {done}/{total} ({seconds:.0f} s)", file=stream or sys.stdout, flush=True)

    return progress


def _universe(config: TrainConfig):
    """The :class:`lems.data.universe.SymbolUniverse` of the config's data, lookback, horizon, stride, bar
    aggregation and index cache."""
    d, w = config.data, config.windows
    if d.synthetic:
        source = load_bars(config)
    else:
        missing = [p for p in d.paths if not Path(p).exists()]
        if missing:
            raise ValueError(f"data not found: {', '.join(missing)}")
        source = d.paths[0] if len(d.paths) == 1 else list(d.paths)
    options: dict[str, Any] = {}
    if d.resample_minutes is not None:
        if "resample_minutes" not in inspect.signature(SymbolUniverse).parameters:
            raise ValueError("config: resample_minutes on a streamed universe needs a SymbolUniverse that "
                             "aggregates bars (resample_minutes=); this lems version does not: set stream = false")
        options["resample_minutes"] = _whole_minutes(d.resample_minutes)
    cache = _cache_dir(d.cache_dir)
    return SymbolUniverse(source, w.lookback, w.n_ahead, tz=d.tz, stride=w.stride, bar_minutes=d.bar_minutes,
                          cache_dir=cache, **options, **_cross_asset_option(config))


def _cache_dir(value: str | None) -> Path | None:
    """``data.cache_dir`` as a folder: ``"default"`` -> :func:`default_cache_dir`, None / ``"none"`` -> None."""
    if value is None or str(value).lower() == "none":
        return None
    return default_cache_dir() if str(value).lower() == "default" else Path(value).expanduser()


def evaluation_windows(config: TrainConfig, split: str = "test"):
    """The windows to backtest, materialised: the test part of the config's split (``"test"``) or all (``"all"``).

    With ``data.stream`` only that part is materialised, from the symbol universe (the one data path may then be
    a Parquet dataset partitioned by symbol).

    Raises:
        ValueError: an unknown ``split``, no window, anything :func:`build_windows` or :func:`stream_splits` raise.
    """
    return evaluation_parts(config, split, validation=False)[0]


def evaluation_parts(config: TrainConfig, split: str = "test", validation: bool = True):
    """``(windows to backtest, validation windows or None)``: :func:`evaluation_windows`' part, and with
    ``validation`` the config's validation part too (``None`` for ``split="all"``, whose windows include it, or
    when it is empty). The windows are built once.

    Raises:
        ValueError: as :func:`evaluation_windows`.
    """
    if split not in ("test", "all"):
        raise ValueError(f"split must be 'test' or 'all', got {split!r}")
    index = 2 if split == "test" else None
    if not config.data.stream:
        windows = build_windows(config)
        if index is None:
            return windows, None
        parts = split_windows(config, windows)
        val = parts.val if validation and index == 2 and len(parts.val) else None
        return parts[index], val
    w = config.windows
    universe = _universe(config)
    parts = universe.split(w.train_end, w.val_end) if index is not None else None
    part = parts[index] if parts is not None else universe.windows()
    if len(part) == 0:
        raise ValueError(f"no {part.name} window in the data (is it long enough for lookback + n_ahead?)")
    val = parts[1].to_window_set() if validation and index == 2 and len(parts[1]) else None
    return part.to_window_set(), val


def _subsample_rows(n: int, max_windows: int | None, seed: int) -> np.ndarray | None:
    """Sorted rows of a seeded random subset of ``max_windows`` of ``n`` windows, or None to keep all."""
    if max_windows is None or n <= max_windows:
        return None
    return np.sort(np.random.default_rng(seed).choice(n, size=max_windows, replace=False))


def _subsample(windows, max_windows: int | None, seed: int):
    rows = _subsample_rows(len(windows), max_windows, seed)
    return windows if rows is None else windows.subset(rows)


def _check_splits(config: TrainConfig, splits: Splits) -> None:
    w = config.windows
    for part in splits:
        shape = part.universe if _streamed(part) else part
        if (shape.lookback, shape.n_ahead) != (w.lookback, w.n_ahead):
            raise ValueError(f"windows have lookback={shape.lookback}, n_ahead={shape.n_ahead}; the config has "
                             f"{w.lookback}, {w.n_ahead}")
