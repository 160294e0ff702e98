"""Training a :class:`~lems.models.LargeExecutionModel` from a :class:`TrainConfig` (usable from Python and the CLI).

The pipeline is the library's own: bars (files read by :func:`lems.data.loaders.read_bars`, or the built-in
synthetic market) → leak-free windows (:func:`lems.data.windows.make_windows`) → purged time split
(:meth:`lems.data.windows.WindowSet.split`) → ``model.fit`` on ``[X, min_rate, max_rate]`` with
:func:`lems.loss.lem_loss`, early stopping on ``val_loss`` (best weights restored) and a wall-clock budget.

Example:
    >>> from lems.training import TrainConfig, train
    >>> result = train(TrainConfig(epochs=2, time_budget_s=60))  # synthetic market
    >>> result.model.save("model.keras")
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import json
import math
import os
import time
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import tomllib

__all__ = [
    "DATA_SYNTHETIC",
    "Splits",
    "TimeBudget",
    "TrainConfig",
    "TrainResult",
    "build_model",
    "build_windows",
    "fast_compile",
    "fast_compile_enabled",
    "load_bars",
    "set_fast_compile",
    "split_windows",
    "train",
]

#: Value of ``TrainConfig.data`` that selects the built-in synthetic market.
DATA_SYNTHETIC = "synthetic"

_SECTIONS = ("data", "windows", "model", "limits", "training")


def _f(default: Any, section: str, doc: str, **kw) -> Any:
    """A dataclass field with its TOML section and one-line documentation in the metadata."""
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata={"section": section, "doc": doc}, **kw)
    return field(default=default, metadata={"section": section, "doc": doc}, **kw)


@dataclass
class TrainConfig:
    """Everything needed to build windows, a model and train it (units in brackets).

    Attributes:
        data: Bar files or folders read by :func:`lems.data.loaders.read_bars`, or ``["synthetic"]`` for the
            built-in synthetic market.
        tz: Local time zone of the calendar features (``"America/New_York"`` for US equities).
        synthetic_assets: Synthetic market: number of assets.
        synthetic_days: Synthetic market: calendar days [days].
        synthetic_calendar: Synthetic market: ``"24/7"`` or ``"session"``.
        lookback: Bars of history before the origin [bars].
        n_ahead: Horizon H of every order [bars].
        stride: Keep every ``stride``-th origin of each asset [bars].
        train_end: End of training: a fraction of the (unique, sorted) origin times in (0, 1), or a date.
        val_end: End of validation (start of test): a fraction in (train_end, 1) or a date.
        max_windows: Cap on the number of training windows (a seeded random subset); ``None`` keeps all.
        hidden_size: Width of the encoder [units].
        hidden_rnn_layer: Number of stacked TKAN layers.
        num_heads: Attention heads.
        num_embedding: Embedding width per input feature [units].
        fused_mlp_hidden_dim: Width of the allocation heads' first layer [units].
        kan_basis: ``"rbf"`` (fast) or ``"bspline"`` basis of the TKAN's KAN sub-layers.
        dropout: Dropout rate of the GRNs [fraction].
        min_rate: Minimum traded per bar while the order is open [fraction of the order].
        max_rate: Maximum traded per bar [fraction of the order]; ``n_ahead * max_rate >= 1`` is required.
        batch_size: Windows per gradient step.
        learning_rate: Adam learning rate.
        epochs: Maximum number of epochs.
        time_budget_s: Wall-clock budget of ``fit`` [seconds], compilation included; checked after every
            batch; ``None`` = no budget.
        patience: Epochs without a lower ``val_loss`` before stopping (best weights are restored);
            0 disables early stopping.
        metrics: Also compute the seed's ten metrics during training (slower to compile).
        fast_compile: JAX only: lower XLA's optimisation level while :func:`train` runs (restored after).
            Compiles faster on CPU; each step runs about 3x slower: for short runs.
        seed: Seed of Keras, numpy and the window subsampling.
    """

    data: list[str] = _f([DATA_SYNTHETIC], "data", "bar files/folders, or 'synthetic'")
    tz: str = _f("UTC", "data", "local time zone of the calendar features")
    synthetic_assets: int = _f(3, "data", "synthetic market: number of assets")
    synthetic_days: int = _f(120, "data", "synthetic market: calendar days [days]")
    synthetic_calendar: str = _f("24/7", "data", "synthetic market: '24/7' or 'session'")
    lookback: int = _f(48, "windows", "bars of history before the origin [bars]")
    n_ahead: int = _f(12, "windows", "horizon H of every order [bars]")
    stride: int = _f(1, "windows", "keep every stride-th origin [bars]")
    train_end: float | str = _f(0.7, "windows", "end of training: fraction of origin times, or a date")
    val_end: float | str = _f(0.85, "windows", "end of validation / start of test: fraction or date")
    max_windows: int | None = _f(None, "windows", "cap on training windows (seeded random subset)")
    hidden_size: int = _f(32, "model", "encoder width [units]")
    hidden_rnn_layer: int = _f(1, "model", "stacked TKAN layers")
    num_heads: int = _f(4, "model", "attention heads")
    num_embedding: int = _f(8, "model", "embedding width per feature [units]")
    fused_mlp_hidden_dim: int = _f(32, "model", "allocation heads' first layer [units]")
    kan_basis: str = _f("rbf", "model", "'rbf' or 'bspline'")
    dropout: float = _f(0.0, "model", "GRN dropout [fraction]")
    min_rate: float = _f(0.0, "limits", "minimum per bar [fraction of the order]")
    max_rate: float = _f(1.0, "limits", "maximum per bar [fraction of the order]")
    batch_size: int = _f(128, "training", "windows per gradient step")
    learning_rate: float = _f(2e-3, "training", "Adam learning rate")
    epochs: int = _f(20, "training", "maximum epochs")
    time_budget_s: float | None = _f(None, "training", "wall-clock budget of fit [s], compilation included")
    patience: int = _f(5, "training", "early-stopping patience on val_loss [epochs]; 0 = off")
    weight_averaging: float | None = _f(None, "training", "EMA momentum of the weights (e.g. 0.99), written into "
                                        "the model at every epoch end; unset = off")
    metrics: bool = _f(False, "training", "compute the seed's ten metrics while training")
    fast_compile: bool = _f(False, "training", "JAX: lower XLA optimisation (faster compile)")
    seed: int = _f(0, "training", "seed of keras, numpy and subsampling")

    def __post_init__(self) -> None:
        self.validate()

    # ---------------------------------------------------------------------------------------------------
    # Validation
    # ---------------------------------------------------------------------------------------------------
    def validate(self) -> None:
        """Coerce field types and check every value.

        Raises:
            ValueError: naming the first bad field (wrong type, out of range, infeasible order).
        """
        hints = typing.get_type_hints(TrainConfig)
        for f in dataclasses.fields(self):
            setattr(self, f.name, _coerce(f.name, getattr(self, f.name), hints[f.name]))
        positive = ("lookback", "n_ahead", "stride", "hidden_size", "hidden_rnn_layer", "num_heads",
                    "num_embedding", "fused_mlp_hidden_dim", "batch_size", "epochs", "synthetic_assets",
                    "synthetic_days")
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"config: {name} must be >= 1, got {getattr(self, name)}")
        if self.lookback < 2 or self.n_ahead < 2:
            raise ValueError(f"config: lookback and n_ahead must be >= 2 bars, got {self.lookback}, {self.n_ahead}")
        if not self.data:
            raise ValueError("config: data must name at least one file/folder, or 'synthetic'")
        if self.kan_basis not in ("rbf", "bspline"):
            raise ValueError(f"config: kan_basis must be 'rbf' or 'bspline', got {self.kan_basis!r}")
        if self.synthetic_calendar not in ("24/7", "session"):
            raise ValueError(f"config: synthetic_calendar must be '24/7' or 'session', got {self.synthetic_calendar!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"config: dropout must be in [0, 1), got {self.dropout}")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(f"config: learning_rate must be a positive number, got {self.learning_rate}")
        if self.patience < 0:
            raise ValueError(f"config: patience must be >= 0 (0 = no early stopping), got {self.patience}")
        if self.weight_averaging is not None and not 0.0 < self.weight_averaging < 1.0:
            raise ValueError(f"config: weight_averaging must be in (0, 1) (or unset), got {self.weight_averaging}")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ValueError(f"config: time_budget_s must be > 0 seconds (or unset), got {self.time_budget_s}")
        if self.max_windows is not None and self.max_windows < 1:
            raise ValueError(f"config: max_windows must be >= 1 (or unset), got {self.max_windows}")
        self._validate_split()
        from lems.execution import check_rates

        try:
            check_rates(self.n_ahead, self.min_rate, self.max_rate)
        except ValueError as exc:
            raise ValueError(f"config: {exc} (n_ahead={self.n_ahead}, min_rate={self.min_rate:g}, "
                             f"max_rate={self.max_rate:g})") from None

    def _validate_split(self) -> None:
        ends = []
        for name in ("train_end", "val_end"):
            value = getattr(self, name)
            if isinstance(value, float):
                if not 0.0 < value < 1.0:
                    raise ValueError(f"config: {name} as a fraction must be in (0, 1), got {value}")
            else:
                _parse_date(name, value)
            ends.append(value)
        if type(ends[0]) is type(ends[1]):
            first, second = (ends if isinstance(ends[0], float) else [_parse_date("", v) for v in ends])
            if first > second:
                raise ValueError(f"config: train_end ({ends[0]}) must not be after val_end ({ends[1]})")

    @property
    def synthetic(self) -> bool:
        """True when the data is the built-in synthetic market."""
        return [str(d).lower() for d in self.data] == [DATA_SYNTHETIC]

    # ---------------------------------------------------------------------------------------------------
    # Dict / file round trip
    # ---------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain dict of every field (JSON/TOML/YAML friendly; ``None`` for unset optional fields)."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), list) else v)
                for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Config from a dict; nested tables (TOML sections) are flattened, ``-`` in keys reads as ``_``.

        Raises:
            ValueError: unknown keys (named, with the valid ones) or bad values.
        """
        if not isinstance(values, dict):
            raise ValueError(f"config must be a mapping of settings, got {type(values).__name__}")
        flat: dict[str, Any] = {}
        for key, value in values.items():
            items = value.items() if isinstance(value, dict) else [(key, value)]
            for k, v in items:
                name = str(k).replace("-", "_")
                if name in flat:
                    raise ValueError(f"config: {name!r} is set twice")
                flat[name] = v
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(flat) - known)
        if unknown:
            raise ValueError(f"config: unknown setting(s) {unknown}; valid settings: {sorted(known)}")
        return cls(**flat)

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with some fields changed (``None`` values in ``changes`` are ignored)."""
        kept = {k: v for k, v in changes.items() if v is not None}
        return TrainConfig.from_dict({**self.to_dict(), **kept})

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read a ``.toml`` (tomllib), ``.yaml``/``.yml`` (PyYAML) or ``.json`` config file.

        Relative data paths are kept as written (relative to the working directory).

        Raises:
            ValueError: missing or unreadable file, unknown suffix, bad settings.
        """
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"config file not found: {path}")
        suffix = path.suffix.lower()
        try:
            text = path.read_text(encoding="utf-8")
            if suffix == ".toml":
                values = tomllib.loads(text)
            elif suffix in (".yaml", ".yml"):
                import yaml

                values = yaml.safe_load(text) or {}
            elif suffix == ".json":
                values = json.loads(text)
            else:
                raise ValueError(f"config file must end in .toml, .yaml, .yml or .json, got {path.name}")
        except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValueError(f"unreadable config file {path}: {exc}") from None
        except Exception as exc:  # yaml.YAMLError and friends
            if isinstance(exc, ValueError):
                raise
            raise ValueError(f"unreadable config file {path}: {str(exc).splitlines()[0]}") from None
        return cls.from_dict(values)

    def save(self, path: str | Path) -> Path:
        """Write the config as TOML, YAML or JSON (by suffix) and return the path."""
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix == ".toml":
            text = self.to_toml()
        elif suffix in (".yaml", ".yml"):
            import yaml

            text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        elif suffix == ".json":
            text = json.dumps(self.to_dict(), indent=2)
        else:
            raise ValueError(f"config file must end in .toml, .yaml, .yml or .json, got {path.name}")
        path.write_text(text, encoding="utf-8")
        return path

    def to_toml(self) -> str:
        """The config as TOML, in sections, each setting with its documentation as a comment.

        Unset optional settings (``None``) are written as comments, so the file reads back to the same
        config.
        """
        lines = ["# lems training configuration (read with lems.training.TrainConfig.load)"]
        for section in _SECTIONS:
            lines += ["", f"[{section}]"]
            for f in dataclasses.fields(self):
                if f.metadata["section"] != section:
                    continue
                value = getattr(self, f.name)
                doc = f.metadata["doc"]
                if value is None:
                    lines.append(f"# {f.name} = (unset)  # {doc}")
                else:
                    lines.append(f"{f.name} = {_toml_value(value)}  # {doc}")
        return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise ValueError(f"cannot write {value!r} to TOML")


def _parse_date(name: str, value: Any):
    import pandas as pd

    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ValueError(f"config: {name} must be a fraction in (0, 1) or a date, got {value!r}") from None
    if ts is pd.NaT:
        raise ValueError(f"config: {name} must be a fraction in (0, 1) or a date, got {value!r}")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """``value`` converted to the field's type, or ``ValueError`` naming the field."""
    args = set(typing.get_args(hint)) or {hint}
    if isinstance(value, str) and value.lower() in ("none", "null", "") and type(None) in args:
        value = None
    if value is None:
        if type(None) in args:
            return None
        raise ValueError(f"config: {name} must be set")
    if name == "data":
        items = [value] if isinstance(value, (str, Path)) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(v, (str, Path)) for v in items):
            raise ValueError(f"config: data must be a path or a list of paths, got {value!r}")
        return [str(v) for v in items]
    if isinstance(value, (_dt.date, _dt.datetime)) and str in args:
        return value.isoformat()
    if bool in args:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ValueError(f"config: {name} must be true or false, got {value!r}")
    if isinstance(value, bool):
        raise ValueError(f"config: {name} must be a number, got {value!r}")
    if int in args:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"config: {name} must be an integer, got {value!r}") from None
        if not number.is_integer():
            raise ValueError(f"config: {name} must be an integer, got {value!r}")
        return int(number)
    if float in args:
        try:
            number = float(value)
        except (TypeError, ValueError):
            if str in args:  # a date (train_end / val_end)
                return str(value)
            raise ValueError(f"config: {name} must be a number, got {value!r}") from None
        if not math.isfinite(number):
            raise ValueError(f"config: {name} must be finite, got {value!r}")
        return number
    if str in args:
        return str(value)
    return value


# -------------------------------------------------------------------------------------------------------
# Data
# -------------------------------------------------------------------------------------------------------
def load_bars(config: TrainConfig):
    """The canonical bars frame of ``config.data`` (files/folders, or the synthetic market).

    Raises:
        ValueError: a missing path, unreadable or invalid data (from :func:`lems.data.loaders.read_bars`).
    """
    if config.synthetic:
        from lems.data.synthetic import synthetic_market

        return synthetic_market(n_assets=config.synthetic_assets, n_days=config.synthetic_days,
                                calendar=config.synthetic_calendar, seed=config.seed)
    from lems.data.loaders import read_bars

    missing = [p for p in config.data if not Path(p).exists()]
    if missing:
        raise ValueError(f"data not found: {', '.join(missing)}")
    return read_bars(list(config.data), tz=None)


def build_windows(config: TrainConfig, bars=None):
    """Leak-free windows of ``bars`` (default: :func:`load_bars`) with the config's lookback, horizon, stride.

    Raises:
        ValueError: no valid window (data too short for ``lookback + n_ahead``), or invalid data.
    """
    from lems.data.windows import make_windows

    bars = load_bars(config) if bars is None else bars
    windows = make_windows(bars, config.lookback, config.n_ahead, tz=config.tz, stride=config.stride)
    if len(windows) == 0:
        raise ValueError(f"no valid window: the data is shorter than lookback + n_ahead "
                         f"({config.lookback} + {config.n_ahead} bars) or has no volume")
    return windows


class Splits(NamedTuple):
    """Purged time split of windows: ``train``, ``val``, ``test`` (:class:`lems.data.windows.WindowSet`)."""

    train: Any
    val: Any
    test: Any


def _split_time(name: str, value: float | str, origins: np.ndarray):
    import pandas as pd

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
    train_end = _split_time("train_end", config.train_end, origins)
    val_end = max(_split_time("val_end", config.val_end, origins), train_end)
    splits = Splits(*windows.split(train_end, val_end))
    if len(splits.train) == 0:
        raise ValueError(f"no training window before train_end={train_end} (is the data long enough?)")
    return splits


# -------------------------------------------------------------------------------------------------------
# Model and training
# -------------------------------------------------------------------------------------------------------
def set_fast_compile(enabled: bool = True) -> bool:
    """JAX only, process-wide: lower XLA's optimisation level (``jax_disable_most_optimizations``).

    Compilation of the model's train step is faster on CPU (seconds to tens of seconds saved); each step
    then runs about 3x slower, so it pays off for short runs only. No effect on other backends.

    Returns:
        The previous setting (False on other backends), to restore it later.
    """
    import keras

    if keras.backend.backend() != "jax":
        return False
    import jax

    previous = bool(jax.config.read("jax_disable_most_optimizations"))
    jax.config.update("jax_disable_most_optimizations", bool(enabled))
    return previous


def fast_compile_enabled() -> bool:
    """Whether :func:`set_fast_compile` is on (always False on backends other than JAX)."""
    import keras

    if keras.backend.backend() != "jax":
        return False
    import jax

    return bool(jax.config.read("jax_disable_most_optimizations"))


def enable_compilation_cache(path: str | Path | None = None) -> Path | None:
    """JAX only, process-wide: keep compiled XLA programs on disk and reuse them in later processes.

    The second run of the same model, batch size and backend skips most of its compilation (measured ~3x
    faster to the first trained batch, ``benchmarks/PROFILE.md``). Opt-in because the cache grows on disk.

    Args:
        path: Cache folder; default ``$LEMS_COMPILATION_CACHE`` or ``~/.cache/lems/jax``.

    Returns:
        The cache folder, or None on backends other than JAX (no effect there).
    """
    import keras

    if keras.backend.backend() != "jax":
        return None
    import jax

    folder = Path(path or os.environ.get("LEMS_COMPILATION_CACHE") or Path.home() / ".cache" / "lems" / "jax")
    folder = folder.expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder


@contextlib.contextmanager
def fast_compile(enabled: bool = True):
    """Context manager: :func:`set_fast_compile` inside, the previous setting restored on exit.

    ``enabled=False`` leaves the current setting alone (it never turns a process-wide choice off).
    """
    if not enabled:
        yield
        return
    previous = set_fast_compile(True)
    try:
        yield
    finally:
        set_fast_compile(previous)


def build_model(config: TrainConfig, n_features: int | None = None, steps_per_epoch: int | None = None):
    """A compiled :class:`~lems.models.LargeExecutionModel` (Adam, :func:`lems.loss.lem_loss`).

    Args:
        config: Hyperparameters.
        n_features: Channels of ``X``; when given, the model is built for that input shape.
        steps_per_epoch: Batches per epoch: with ``config.weight_averaging``, the averaged weights replace the
            model's every that many steps (default: only at the end of ``fit``).
    """
    import keras

    from lems.loss import lem_loss
    from lems.models import LargeExecutionModel

    model = LargeExecutionModel(
        lookback=config.lookback, n_ahead=config.n_ahead, hidden_size=config.hidden_size,
        hidden_rnn_layer=config.hidden_rnn_layer, num_heads=config.num_heads, num_embedding=config.num_embedding,
        fused_mlp_hidden_dim=config.fused_mlp_hidden_dim, kan_basis=config.kan_basis, dropout=config.dropout,
    )
    metrics = None
    if config.metrics:
        from lems.metrics import ALL_METRICS

        metrics = list(ALL_METRICS)
    averaging = config.weight_averaging
    optimizer = keras.optimizers.Adam(learning_rate=config.learning_rate, use_ema=averaging is not None,
                                      ema_momentum=averaging or 0.99,
                                      ema_overwrite_frequency=steps_per_epoch if averaging else None)
    model.compile(optimizer=optimizer, loss=lem_loss, metrics=metrics)
    if n_features is not None:
        model.build([(None, config.lookback + config.n_ahead - 1, n_features), (None, 1), (None, 1)])
    return model


def _callback_base():
    import keras

    return keras.callbacks.Callback


class TimeBudget(_callback_base()):
    """Keras callback: stop training once ``budget_s`` seconds of wall-clock time have passed.

    The clock starts at ``on_train_begin`` (so compilation counts) and is checked after every batch; the
    epoch's validation pass still runs after a stop, so early stopping can restore the best weights.

    Args:
        budget_s: Budget [seconds], > 0.

    Attributes:
        triggered: True once the budget stopped training.
        elapsed_s: Seconds since the start of training at the last check.
    """

    def __init__(self, budget_s: float) -> None:
        super().__init__()
        if not budget_s > 0:
            raise ValueError(f"time budget must be > 0 seconds, got {budget_s}")
        self.budget_s = float(budget_s)
        self.triggered = False
        self.elapsed_s = 0.0
        self._start = time.perf_counter()

    def on_train_begin(self, logs=None) -> None:
        self._start = time.perf_counter()
        self.triggered = False

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.elapsed_s = time.perf_counter() - self._start
        if self.elapsed_s >= self.budget_s:
            self.triggered = True
            self.model.stop_training = True


class _EpochClock(_callback_base()):
    """Records the wall-clock time [s] since the start of training at each epoch end."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []
        self._start = time.perf_counter()

    def on_train_begin(self, logs=None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None) -> None:
        self.times.append(time.perf_counter() - self._start)


def _full_batches(windows, config: TrainConfig, shuffle: bool, seed: int):
    """``((X, min_rate, max_rate), y, weight)`` batches of one fixed size (the remainder is dropped, re-drawn
    each epoch when shuffling), so that the train step compiles once."""
    from lems.batching import PaddedBatches

    n = len(windows)
    x = (np.asarray(windows.X, dtype=np.float32), np.full((n, 1), config.min_rate, dtype=np.float32),
         np.full((n, 1), config.max_rate, dtype=np.float32))
    return PaddedBatches(x, np.asarray(windows.y, dtype=np.float32), config.batch_size, shuffle=shuffle, seed=seed,
                         drop_remainder=True)


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: The trained model (best ``val_loss`` weights when early stopping ran).
        history: Per-epoch logs: ``loss``, ``val_loss`` (when there is a validation set), metrics, and
            ``wall_time_s`` (seconds since the start of training at each epoch end).
        config: The config used.
        windows: The :class:`Splits` (train, val, test).
        wall_time_s: Wall-clock time of ``fit`` [seconds].
        epochs_run: Epochs started.
        stopped_by: ``"epochs"``, ``"early_stopping"`` or ``"time_budget"``.
    """

    model: Any
    history: dict[str, list[float]]
    config: TrainConfig
    windows: Splits
    wall_time_s: float
    epochs_run: int
    stopped_by: str

    def history_frame(self):
        """The history as a DataFrame, one row per epoch (``epoch`` from 1)."""
        import pandas as pd

        frame = pd.DataFrame(self.history)
        frame.insert(0, "epoch", np.arange(1, len(frame) + 1))
        return frame


def _subsample(windows, max_windows: int | None, seed: int):
    if max_windows is None or len(windows) <= max_windows:
        return windows
    rows = np.sort(np.random.default_rng(seed).choice(len(windows), size=max_windows, replace=False))
    return windows.subset(rows)


def train(config: TrainConfig | None = None, windows=None, verbose: int = 1, callbacks=()) -> TrainResult:
    """Train a model on the config's data (or on ``windows``), with early stopping and a time budget.

    Args:
        config: Settings (default :class:`TrainConfig`: synthetic market, small model).
        windows: Prebuilt windows (a :class:`lems.data.windows.WindowSet`, split here by the config, or a
            :class:`Splits`); default: built from ``config.data``.
        verbose: Keras verbosity (1: progress bar per epoch, 2: one line per epoch, 0: silent).
        callbacks: Extra Keras callbacks, run after the built-in ones (early stopping, time budget, clock).

    Returns:
        A :class:`TrainResult`.

    Raises:
        ValueError: bad config, unreadable data, no training window.
    """
    import keras

    from lems.utils import set_random_seed

    config = TrainConfig() if config is None else config
    config.validate()
    if windows is None:
        windows = build_windows(config)  # data errors surface before any model work
    set_random_seed(config.seed)
    splits = windows if isinstance(windows, Splits) else split_windows(config, windows)
    for part in splits:
        if (part.lookback, part.n_ahead) != (config.lookback, config.n_ahead):
            raise ValueError(f"windows have lookback={part.lookback}, n_ahead={part.n_ahead}; the config has "
                             f"{config.lookback}, {config.n_ahead}")
    train_set = _subsample(splits.train, config.max_windows, config.seed)
    data = _full_batches(train_set, config, shuffle=True, seed=config.seed)
    has_val = len(splits.val) > 0
    val = _full_batches(splits.val, config, shuffle=False, seed=0) if has_val else None
    model = build_model(config, n_features=train_set.X.shape[-1], steps_per_epoch=len(data))
    extra_callbacks, callbacks, budget, clock = list(callbacks), [], None, _EpochClock()
    early = None
    if has_val and config.patience > 0:
        early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience,
                                              restore_best_weights=True, verbose=int(verbose > 0))
        callbacks.append(early)
    if config.time_budget_s is not None:
        budget = TimeBudget(config.time_budget_s)
        callbacks.append(budget)
    callbacks.append(clock)
    callbacks += extra_callbacks
    start = time.perf_counter()
    with fast_compile(config.fast_compile):
        fitted = model.fit(data, validation_data=val, epochs=config.epochs, callbacks=callbacks, verbose=verbose)
    wall = time.perf_counter() - start
    history = {k: [float(v) for v in values] for k, values in fitted.history.items()}
    history["wall_time_s"] = [float(t) for t in clock.times]
    stopped_by = ("time_budget" if budget is not None and budget.triggered
                  else "early_stopping" if early is not None and early.stopped_epoch > 0 else "epochs")
    return TrainResult(model=model, history=history, config=config, windows=splits, wall_time_s=wall,
                       epochs_run=len(clock.times), stopped_by=stopped_by)
