"""The sections of the training configuration (except ``[execution]``, :mod:`lems.training.config`): one small
frozen dataclass each, values converted to the declared types and range-checked (``ValueError`` naming the
setting).

``[model]`` (:class:`ModelConfig`) IS :class:`lems.models.LargeExecutionModel`'s arguments: its fields are generated
from the model's signature (names, types, documentation), so every argument is reachable from a config file and
the CLI, and the defaults have one source: the model's signature, with the product's training preset
:data:`MODEL_PRESET` on top (a small model that trains in minutes on a CPU).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import inspect
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from lems.execution import check_rates
from lems.models import LargeExecutionModel

__all__ = ["DATA_SYNTHETIC", "MODEL_PRESET", "SELECTIONS", "DataConfig", "LimitsConfig", "ModelConfig",
           "TrainingConfig", "WindowConfig", "model_argument_defaults"]

#: Value of ``data.paths`` that selects the built-in synthetic market.
DATA_SYNTHETIC = "synthetic"
#: Choices of ``training.selection``: the validation number that picks the kept weights and stops training.
SELECTIONS = ("tracking", "loss")
#: Weightings of a streamed universe's training windows (:meth:`lems.data.universe.UniverseWindows.batches`).
SYMBOL_WEIGHTINGS = ("window", "symbol", "notional")
#: Bar length of the synthetic market when ``data.bar_minutes`` is unset [minutes].
_SYNTHETIC_BAR_MINUTES = 60


def _f(default: Any, doc: str) -> Any:
    """A dataclass field with its one-line documentation (units in brackets) in the metadata."""
    return field(default=default, metadata={"doc": doc})


class _Section:
    """Base of the config sections: values converted to the declared types, then checked (``ValueError``)."""

    def __post_init__(self) -> None:
        hints = typing.get_type_hints(type(self))
        for f in dataclasses.fields(self):
            object.__setattr__(self, f.name, _coerce(f.name, getattr(self, f.name), hints[f.name]))
        self._check()

    def _check(self) -> None:
        """Range checks of the section (subclasses)."""

    def _at_least(self, minimum: int, *names: str) -> None:
        for name in names:
            value = getattr(self, name)
            if value is not None and value < minimum:
                raise ValueError(f"config: {name} must be >= {minimum}, got {value}")

    def to_dict(self) -> dict[str, Any]:
        """The section as a plain dict (lists for sequences, ``None`` for unset settings)."""
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}


@dataclass(frozen=True)
class DataConfig(_Section):
    """Where the bars come from.

    Attributes:
        paths: Bar files or folders read by :func:`lems.data.loaders.read_bars`, or ``("synthetic",)`` for the
            built-in synthetic market.
        tz: Local time zone of the calendar features (``"America/New_York"`` for US equities).
        bar_minutes: Nominal bar length [minutes]; unset: inferred from the data (the modal spacing), 60 for the
            synthetic market. Set it when the data cannot tell (e.g. one bar per symbol).
        synthetic_assets: Synthetic market: number of assets.
        synthetic_days: Synthetic market: calendar days [days].
        synthetic_calendar: Synthetic market: ``"24/7"`` or ``"session"``.
        stream: Train on windows gathered on the fly, symbol block by symbol block
            (:class:`lems.data.universe.SymbolUniverse`), instead of materialising every window: for a folder or
            Parquet dataset of many symbols (memory grows with the block, not the universe). Never switched on
            automatically. ``max_windows`` then caps the optimizer steps per epoch
            (``max_windows // batch_size`` batches, a new shuffle each epoch); at most
            ``training.max_val_windows`` validation windows are materialised for the selection scores.
        resample_minutes: Aggregate the bars to this length before windowing [minutes] (volume and notional
            summed, OHLC kept, nothing invented across gaps: :func:`lems.data.loaders.read_bars`'s
            ``bar_minutes``); unset: the files' own bars. ``bar_minutes`` stays the nominal length of the bars
            the windows are built from (set both to the same value, or leave ``bar_minutes`` unset).
        cache_dir: Folder of the streamed universe's per-symbol index cache: ``"default"``
            (:func:`lems.data.universe.default_cache_dir`), a path, or ``"none"`` (no cache; ``--no-cache``).
    """

    paths: tuple[str, ...] = _f((DATA_SYNTHETIC,), "bar files/folders, or 'synthetic'")
    tz: str = _f("UTC", "local time zone of the calendar features")
    bar_minutes: float | None = _f(None, "bar length [minutes]; unset = inferred from the data (synthetic: 60)")
    synthetic_assets: int = _f(3, "synthetic market: number of assets")
    synthetic_days: int = _f(120, "synthetic market: calendar days [days]")
    synthetic_calendar: str = _f("24/7", "synthetic market: '24/7' or 'session'")
    stream: bool = _f(False, "train on windows streamed symbol block by symbol block (lems.data.universe), for "
                             "datasets of many symbols")
    resample_minutes: float | None = _f(None, "aggregate the bars to this length before windowing [minutes]; "
                                              "unset = the files' bars")
    cache_dir: str | None = _f("default", "streamed universe: per-symbol index cache folder, 'default' "
                                          "(~/.cache/lems/universe or $LEMS_CACHE_DIR) or 'none'")

    def _check(self) -> None:
        if not self.paths:
            raise ValueError("config: data must name at least one file/folder, or 'synthetic'")
        self._at_least(1, "synthetic_assets", "synthetic_days")
        if self.synthetic_calendar not in ("24/7", "session"):
            raise ValueError(f"config: synthetic_calendar must be '24/7' or 'session', got {self.synthetic_calendar!r}")
        if self.bar_minutes is not None and not self.bar_minutes > 0:
            raise ValueError(f"config: bar_minutes must be > 0 minutes (or unset), got {self.bar_minutes}")
        if self.resample_minutes is not None and not (math.isfinite(self.resample_minutes)
                                                      and self.resample_minutes > 0):
            raise ValueError(f"config: resample_minutes must be > 0 minutes (or unset), got {self.resample_minutes}")

    @property
    def synthetic(self) -> bool:
        """True when the data is the built-in synthetic market."""
        return [p.lower() for p in self.paths] == [DATA_SYNTHETIC]


@dataclass(frozen=True)
class WindowConfig(_Section):
    """How bars become order windows, and the purged time split.

    Attributes:
        lookback: Bars of history before the origin [bars], >= 2.
        n_ahead: Horizon H of every order [bars], >= 2.
        stride: Keep every ``stride``-th origin of each asset [bars].
        train_end: End of training: a fraction of the (unique, sorted) origin times in (0, 1), or a date.
        val_end: End of validation (start of test): a fraction in (train_end, 1) or a date.
        max_windows: Cap on the number of training windows (a seeded random subset); ``None`` keeps all.
        holdout_symbols: Streamed universe: symbols that never enter training or validation and are scored on the
            test period as unseen (:meth:`lems.data.universe.SymbolUniverse.split_symbols`, stratified by
            liquidity tercile): a fraction such as ``"0.2"`` or a comma list of names; ``lems train`` saves the
            chosen list, so ``lems evaluate`` scores exactly those symbols. Unset: none held out.
        holdout_seed: Seed of the held-out draw; ``None`` = the training seed.
        max_test_windows: Streamed universe: at most this many test windows per symbol group (seen, unseen) are
            scored by ``lems evaluate``, evenly thinned per symbol in time (:meth:`UniverseWindows.thin_to`), so
            that its memory stays bounded whatever the universe's size [windows]; ``None`` scores every window.
        cross_asset: Add the market (cross-asset) observed channels: at each bar, the mean volume surprise and
            normalised return of the OTHER symbols of the data at the same bar time
            (:data:`lems.data.features.MARKET_FEATURES`); off: every symbol sees only its own bars. ``lems
            evaluate`` reads it from the saved config (the model's input channels depend on it).
    """

    lookback: int = _f(48, "bars of history before the origin [bars]")
    n_ahead: int = _f(12, "horizon H of every order [bars]")
    stride: int = _f(1, "keep every stride-th origin [bars]")
    train_end: float | str = _f(0.7, "end of training: fraction of origin times, or a date")
    val_end: float | str = _f(0.85, "end of validation / start of test: fraction or date")
    max_windows: int | None = _f(None, "cap on training windows (seeded random subset) [windows]")
    holdout_symbols: str | None = _f(None, "streamed universe: symbols never trained or validated on, scored "
                                           "as unseen: a fraction (e.g. 0.2) or a comma list; the saved config "
                                           "holds the chosen list")
    holdout_seed: int | None = _f(None, "seed of the held-out draw; unset = the training seed")
    max_test_windows: int | None = _f(32768, "streamed universe: test windows lems evaluate scores per symbol "
                                             "group (seen, unseen), evenly thinned per symbol; unset = all "
                                             "[windows]")
    cross_asset: bool = _f(False, "add the market channels: the other symbols' mean volume surprise and "
                                  "normalised return at each bar (lems.data.features.MARKET_FEATURES)")

    def _check(self) -> None:
        self._at_least(2, "lookback", "n_ahead")
        self._at_least(1, "stride", "max_windows", "max_test_windows")
        ends = []
        for name in ("train_end", "val_end"):
            value = getattr(self, name)
            if isinstance(value, float) and not 0.0 < value < 1.0:
                raise ValueError(f"config: {name} as a fraction must be in (0, 1), got {value}")
            ends.append(value if isinstance(value, float) else _parse_date(name, value))
        if type(ends[0]) is type(ends[1]) and ends[0] > ends[1]:
            raise ValueError(f"config: train_end ({self.train_end}) must not be after val_end ({self.val_end})")


#: The product's training preset: the [model] defaults of ``lems train`` / :class:`TrainConfig` that differ from
#: :class:`lems.models.LargeExecutionModel`'s own (the lems 0.1.1 API: hidden 200, 2 TKAN layers, 8 heads, embedding
#: 20, heads' first layer 64). ``lems train`` trains a small model that fits the hourly data sets in minutes on a
#: CPU (benchmarks/real_data.py trains these sizes); ``lems train`` keeps the weights of its best validation epoch
#: itself, so the model's weight averaging is off there (``[training] weight_averaging`` sets an EMA momentum of its
#: own; with the selection, averaging was slightly worse on hourly crypto: benchmarks/results/tracking_selection).
#: Every other argument keeps the model's default. The one dict of overrides; everything else comes from the
#: model's signature.
MODEL_PRESET: dict[str, Any] = {"hidden_size": 32, "hidden_rnn_layer": 1, "num_heads": 4, "num_embedding": 8,
                                "fused_mlp_hidden_dim": 32, "weight_average_span": None}
#: Arguments of the model that are not [model] settings: the window shape comes from ``[windows]``.
_NOT_MODEL_SETTINGS = ("self", "lookback", "n_ahead", "kwargs")


def model_argument_defaults() -> dict[str, Any]:
    """:class:`lems.models.LargeExecutionModel`'s constructor arguments and their defaults (its signature), window
    shape excluded."""
    signature = inspect.signature(LargeExecutionModel.__init__)
    return {name: p.default for name, p in signature.parameters.items() if name not in _NOT_MODEL_SETTINGS}


def _argument_docs(cls: type) -> dict[str, str]:
    """First sentence of each argument's documentation in the ``Args:`` section of ``cls``'s docstring."""
    text = inspect.getdoc(cls) or ""
    block = text.split("Args:", 1)[-1].split("\n\n", 1)[0]
    docs = {}
    for match in re.finditer(r"^    (\w+): (.*(?:\n {8}.*)*)", block, flags=re.M):
        words = " ".join(match.group(2).split())
        docs[match.group(1)] = re.split(r"(?<=[a-z0-9)])\. ", words, maxsplit=1)[0].rstrip(".")
    return docs


def _check_model(self) -> None:
    """Range checks of the [model] settings the config can do without building the model (the model checks the
    rest when it is built)."""
    self._at_least(1, "hidden_size", "hidden_rnn_layer", "num_heads", "num_embedding", "fused_mlp_hidden_dim",
                   "train_columns")
    self._at_least(0, "n_known_features")
    if self.kan_basis not in ("rbf", "bspline"):
        raise ValueError(f"config: kan_basis must be 'rbf' or 'bspline', got {self.kan_basis!r}")
    if not 0.0 <= self.dropout < 1.0:
        raise ValueError(f"config: dropout must be in [0, 1), got {self.dropout}")
    if self.flexible_prior not in ("rule", "none"):
        raise ValueError(f"config: flexible_prior must be 'rule' or 'none', got {self.flexible_prior!r}")
    if self.tracking_loss_pooling not in ("window", "batch"):
        raise ValueError(f"config: tracking_loss_pooling must be 'window' or 'batch', got "
                         f"{self.tracking_loss_pooling!r}")
    span = self.weight_average_span
    if span is not None and not (math.isfinite(span) and 0 < span <= 1):
        raise ValueError(f"config: weight_average_span must be in (0, 1] epochs (or unset), got {span}")
    for name in ("rule_decay", "tracking_loss_weight", "forecast_loss_weight", "max_scale_factor"):
        if not (math.isfinite(getattr(self, name)) and getattr(self, name) >= 0):
            raise ValueError(f"config: {name} must be a finite number >= 0, got {getattr(self, name)}")


def _model_section() -> type:
    """:class:`ModelConfig`, generated from the model's signature with :data:`MODEL_PRESET` as its defaults."""
    hints = typing.get_type_hints(LargeExecutionModel.__init__)
    docs = _argument_docs(LargeExecutionModel)
    defaults = {**model_argument_defaults(), **MODEL_PRESET}
    unknown = sorted((set(MODEL_PRESET) | set(model_argument_defaults())) - set(hints))
    if unknown:  # pragma: no cover - a preset naming an argument the model no longer has
        raise TypeError(f"MODEL_PRESET / LargeExecutionModel arguments out of step: {unknown}")
    fields = [(name, hints[name], _f(default, docs.get(name, name))) for name, default in defaults.items()]
    doc = ("The [model] section: :class:`lems.models.LargeExecutionModel`'s arguments (every one but the window "
           "shape, which ``[windows]`` sets), with the model's defaults except :data:`MODEL_PRESET`.\n\n"
           "Attributes:\n" + "\n".join(f"    {name}: {docs.get(name, name)}" for name in defaults))
    return dataclasses.make_dataclass("ModelConfig", fields, bases=(_Section,), frozen=True,
                                      namespace={"_check": _check_model, "__doc__": doc,
                                                 "__module__": __name__})


ModelConfig = _model_section()


@dataclass(frozen=True)
class LimitsConfig(_Section):
    """Trading limits of every order (docs/execution.md §2).

    Attributes:
        min_rate: Minimum traded per bar while the order is open [fraction of the order].
        max_rate: Maximum traded per bar [fraction of the order]; ``n_ahead * max_rate >= 1`` is required.
    """

    min_rate: float = _f(0.0, "minimum per bar [fraction of the order]")
    max_rate: float = _f(1.0, "maximum per bar [fraction of the order]")

    def _check(self) -> None:
        try:
            check_rates(None, self.min_rate, self.max_rate)
        except ValueError as exc:
            raise ValueError(f"config: {exc}") from None


@dataclass(frozen=True)
class TrainingConfig(_Section):
    """Optimisation, stopping and selection.

    Training stops at the first of: ``epochs``, ``max_steps`` optimizer steps, ``time_budget_s`` seconds, or
    ``patience`` epochs without a better validation score. The kept weights are those of the best validation
    epoch (``selection``); without validation windows, the last ones.

    Attributes:
        batch_size: Windows per gradient step.
        learning_rate: Adam learning rate.
        epochs: Maximum number of epochs (high by default: patience, steps or the budget stop first).
        max_steps: Maximum number of optimizer steps (a machine-independent budget); ``None`` = no cap.
        time_budget_s: Wall-clock budget of ``fit`` [seconds], compilation included; checked after every
            batch; ``None`` = no budget. Results then depend on the machine's speed and load.
        patience: Epochs without a better validation score before stopping; 0 = never stop early (the best
            epoch's weights are still kept).
        selection: ``"tracking"``: selection is split as the numbers are reported: the weights of the epoch with
            the lowest validation VWAP tracking error of the fixed column [bps], except the weights only the
            flexible columns read, which come from the epoch (or the untrained start) with the highest
            validation mean flexible improvement [bps] (both as the backtest reports them;
            :class:`BestWeights`); ``"loss"``: the validation ``lem_loss``.
        weight_averaging: EMA momentum of the weights (e.g. 0.99), written into the model at every epoch end;
            ``None`` = off (then ``[model] weight_average_span``, off in the preset, applies).
        weight_soup: With ``selection="tracking"``: the tracking weights are a greedy soup of up to this many
            best validation epochs, each averaged in only if the validation tracking error improves, kept only
            if it beats the best epoch (:class:`BestWeights`); 1 = the best epoch's weights.
        tune_rule_prior: Before the first step, set the thresholds of the flexible columns' rule prior
            (``flexible_prior="rule"``) to the values of :data:`RULE_THRESHOLD_GRID` [lookback volatilities] with
            the highest validation flexible improvement, per flexible policy and min duration
            (:class:`RulePriorTuning`); selection then keeps that tuned start unless training beats it.
        metrics: Also compute the seed's ten metrics during training (slower to compile).
        fast_compile: JAX only: lower XLA's optimisation level while :func:`train` runs (restored after).
            Compiles faster on CPU; each step runs about 3x slower: for short runs.
        seed: Seed of Keras, numpy, the window subsampling and the synthetic market.
        symbol_weighting: Streamed universe: weight of each symbol's training windows
            (:meth:`lems.data.universe.UniverseWindows.symbol_weights`): ``"window"`` (every window 1: a symbol
            counts by its number of windows), ``"symbol"`` (every symbol the same total) or ``"notional"`` (in
            proportion to its median daily notional over the training period).
        max_val_windows: At most this many validation windows are scored for selection and ``val_loss``
            (a streamed validation part is thinned evenly per symbol, :meth:`UniverseWindows.thin_to`; a
            materialised one keeps evenly spaced rows) [windows]: bounds the memory and the time of each
            validation pass on a large universe.
    """

    batch_size: int = _f(128, "windows per gradient step")
    learning_rate: float = _f(2e-3, "Adam learning rate")
    epochs: int = _f(1000, "maximum epochs")
    max_steps: int | None = _f(None, "maximum optimizer steps (machine-independent budget); unset = no cap")
    time_budget_s: float | None = _f(None, "wall-clock budget of fit [s], compilation included; unset = none")
    patience: int = _f(10, "epochs without a better validation score before stopping; 0 = never early")
    selection: str = _f("tracking", "validation score that keeps weights and stops: 'tracking' "
                                    "(fixed-column tracking error [bps] for the tracking weights, flexible "
                                    "improvement [bps] for the flexible ones) or 'loss'")
    weight_averaging: float | None = _f(None, "EMA momentum of the weights (e.g. 0.99) written into the model "
                                              "at every epoch end; unset = off")
    weight_soup: int = _f(1, "tracking weights: greedy soup of up to this many best validation epochs "
                             "(each kept only if validation improves); 1 = the best epoch")
    tune_rule_prior: bool = _f(True, "set the flexible rule prior's thresholds on validation before training")
    metrics: bool = _f(False, "compute the seed's ten metrics while training")
    fast_compile: bool = _f(False, "JAX: lower XLA optimisation (faster compile, slower steps)")
    seed: int = _f(0, "seed of keras, numpy, subsampling and the synthetic market")
    symbol_weighting: str = _f("window", "streamed universe: weight of each symbol's training windows: "
                                         "'window' (each window 1), 'symbol' (each symbol equal) or 'notional'")
    max_val_windows: int = _f(65536, "validation windows scored for selection (evenly thinned per symbol "
                                     "beyond this) [windows]")

    def _check(self) -> None:
        self._at_least(1, "batch_size", "epochs", "max_steps", "weight_soup", "max_val_windows")
        if self.symbol_weighting not in SYMBOL_WEIGHTINGS:
            raise ValueError(f"config: symbol_weighting must be one of {SYMBOL_WEIGHTINGS}, got "
                             f"{self.symbol_weighting!r}")
        self._at_least(0, "patience")
        if not (self.learning_rate > 0 and math.isfinite(self.learning_rate)):
            raise ValueError(f"config: learning_rate must be a positive number, got {self.learning_rate}")
        if self.time_budget_s is not None and not self.time_budget_s > 0:
            raise ValueError(f"config: time_budget_s must be > 0 seconds (or unset), got {self.time_budget_s}")
        if self.weight_averaging is not None and not 0.0 < self.weight_averaging < 1.0:
            raise ValueError(f"config: weight_averaging must be in (0, 1) (or unset), got {self.weight_averaging}")
        if self.selection not in SELECTIONS:
            raise ValueError(f"config: selection must be one of {SELECTIONS}, got {self.selection!r}")
        if self.weight_soup > 1 and self.selection != "tracking":
            raise ValueError(f"config: weight_soup > 1 scores its candidates on the validation tracking error: it "
                             f"needs selection='tracking', got {self.selection!r}")


def _parse_date(name: str, value: Any):
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise ValueError(f"config: {name} must be a fraction in (0, 1) or a date, got {value!r}") from None
    if ts is pd.NaT:
        raise ValueError(f"config: {name} must be a fraction in (0, 1) or a date, got {value!r}")
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _number_tuple(name: str, value: Any) -> tuple[float, ...]:
    """A number or a list of numbers (CLI strings accepted) as a tuple of finite floats."""
    items = list(value) if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        try:
            number = float(item) if not isinstance(item, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise ValueError(f"config: {name} must be a number or a list of finite numbers, got {value!r}")
        out.append(number)
    return tuple(out)


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """``value`` converted to the declared type ``hint`` (CLI strings, YAML's ``1e-3`` strings, TOML dates), or
    ``ValueError`` naming the setting."""
    args = set(typing.get_args(hint)) or {hint}
    if isinstance(value, str) and value.lower() in ("none", "null", "") and type(None) in args:
        value = None
    if value is None:
        if type(None) in args:
            return None
        raise ValueError(f"config: {name} must be set")
    if typing.get_origin(hint) is tuple and typing.get_args(hint)[0] is float:  # the order sizes
        return _number_tuple(name, value)
    if typing.get_origin(hint) is tuple:  # the data paths
        items = [value] if isinstance(value, (str, Path)) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(v, (str, Path)) for v in items):
            raise ValueError(f"config: data must be a path or a list of paths, got {value!r}")
        return tuple(str(v) for v in items)
    if isinstance(value, (_dt.date, _dt.datetime)) and str in args:
        return value.isoformat()
    if bool in args:
        text = str(value).lower()
        if isinstance(value, bool) or (isinstance(value, str) and text in ("true", "false", "1", "0", "yes", "no")):
            return value if isinstance(value, bool) else text in ("true", "1", "yes")
        raise ValueError(f"config: {name} must be true or false, got {value!r}")
    if (int in args or float in args) and not isinstance(value, bool):
        try:
            number = float(value)
        except (TypeError, ValueError):
            number = None
        if number is not None and not math.isfinite(number):
            raise ValueError(f"config: {name} must be finite, got {value!r}")
        if number is not None and int in args:
            if not number.is_integer():
                raise ValueError(f"config: {name} must be an integer, got {value!r}")
            return int(number)
        if number is not None:
            return number
    if str in args and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)  # a date (train_end / val_end) or a name
    kind = "an integer" if int in args else "a number" if float in args else "a string"
    raise ValueError(f"config: {name} must be {kind}, got {value!r}")
