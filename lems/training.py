"""Training a :class:`~lems.models.LargeExecutionModel` from a :class:`TrainConfig` (usable from Python and the CLI).

The pipeline is the library's own: bars (files read by :func:`lems.data.loaders.read_bars`, or the built-in
synthetic market) → leak-free windows (:func:`lems.data.windows.make_windows`) → purged time split
(:meth:`lems.data.windows.WindowSet.split`) → ``model.fit`` on ``[X, min_rate, max_rate]`` with
:func:`lems.loss.lem_loss`. After every epoch the validation windows are scored with the backtest's own
arithmetic (:func:`selection_scores`): the weights kept are those of the best epoch by the reported numbers
(fixed-column VWAP tracking error for the tracking weights, flexible improvement for the weights only the flexible
columns read), and training stops when neither improves (``patience``), at the epoch cap, after ``max_steps`` optimizer steps, or at the wall-clock budget.

The configuration has six sections (``data``, ``windows``, ``model``, ``limits``, ``training``, ``execution``),
one small dataclass each; TOML files mirror them. Every setting name is unique across sections, so the flat names of
lems 0.2 (and of the CLI flags) keep working: ``TrainConfig(lookback=24, epochs=3)``,
``config.replace(n_ahead=6)``, ``config.lookback`` (a read-only alias of ``config.windows.lookback``) and old
flat config files. The paths of the data are ``config.data.paths`` (flat name ``data``, as before).

``[execution]`` (:class:`ExecutionConfig`) states order sizes, a cost model and a participation cap; it is
frictionless by default (nothing changes). With a size and a cost model (or a cap, or a risk term), :func:`train`
fits the cost-aware loss (:func:`lems.loss.make_lem_loss`) on the extended targets of
:func:`lems.backtest.cost_targets` and selects the epoch on the validation numbers NET of costs.
``[data] stream = true`` trains on windows streamed from many symbols (:class:`lems.data.universe.SymbolUniverse`)
instead of materialised ones (:func:`stream_splits`).

Example:
    >>> from lems.training import TrainConfig, train
    >>> result = train(TrainConfig(max_steps=50, time_budget_s=60))  # synthetic market
    >>> result.model.save("model.keras")
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as _dt
import json
import math
import os
import sys
import time
import typing
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = [
    "CONFIG_SECTIONS",
    "DATA_SYNTHETIC",
    "SELECTIONS",
    "RULE_THRESHOLD_GRID",
    "BestWeights",
    "DataConfig",
    "ExecutionConfig",
    "LimitsConfig",
    "ModelConfig",
    "RulePriorTuning",
    "Splits",
    "StepBudget",
    "TimeBudget",
    "TrainConfig",
    "TrainResult",
    "TrainingConfig",
    "ValidationScores",
    "WindowConfig",
    "build_model",
    "build_windows",
    "conditions_from_settings",
    "cost_model_from_settings",
    "enable_compilation_cache",
    "evaluation_windows",
    "fast_compile",
    "fast_compile_enabled",
    "load_bars",
    "selection_scores",
    "set_fast_compile",
    "split_windows",
    "stream_splits",
    "train",
]

#: Value of ``data.paths`` that selects the built-in synthetic market.
DATA_SYNTHETIC = "synthetic"

#: Choices of ``training.selection``: the validation number that picks the kept weights and stops training.
SELECTIONS = ("tracking", "loss")

#: Bar length of the synthetic market when ``data.bar_minutes`` is unset [minutes].
_SYNTHETIC_BAR_MINUTES = 60


def _f(default: Any, doc: str) -> Any:
    """A dataclass field with its one-line documentation (units in brackets) in the metadata."""
    return field(default=default, metadata={"doc": doc})


# -------------------------------------------------------------------------------------------------------
# Sections
# -------------------------------------------------------------------------------------------------------
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
            (``max_windows // batch_size`` batches, a new shuffle each epoch); the validation windows are
            materialised for the selection scores.
    """

    paths: tuple[str, ...] = _f((DATA_SYNTHETIC,), "bar files/folders, or 'synthetic'")
    tz: str = _f("UTC", "local time zone of the calendar features")
    bar_minutes: float | None = _f(None, "bar length [minutes]; unset = inferred from the data (synthetic: 60)")
    synthetic_assets: int = _f(3, "synthetic market: number of assets")
    synthetic_days: int = _f(120, "synthetic market: calendar days [days]")
    synthetic_calendar: str = _f("24/7", "synthetic market: '24/7' or 'session'")
    stream: bool = _f(False, "train on windows streamed symbol block by symbol block (lems.data.universe), for "
                             "datasets of many symbols")

    def _check(self) -> None:
        if not self.paths:
            raise ValueError("config: data must name at least one file/folder, or 'synthetic'")
        self._at_least(1, "synthetic_assets", "synthetic_days")
        if self.synthetic_calendar not in ("24/7", "session"):
            raise ValueError(f"config: synthetic_calendar must be '24/7' or 'session', got {self.synthetic_calendar!r}")
        if self.bar_minutes is not None and not self.bar_minutes > 0:
            raise ValueError(f"config: bar_minutes must be > 0 minutes (or unset), got {self.bar_minutes}")

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
    """

    lookback: int = _f(48, "bars of history before the origin [bars]")
    n_ahead: int = _f(12, "horizon H of every order [bars]")
    stride: int = _f(1, "keep every stride-th origin [bars]")
    train_end: float | str = _f(0.7, "end of training: fraction of origin times, or a date")
    val_end: float | str = _f(0.85, "end of validation / start of test: fraction or date")
    max_windows: int | None = _f(None, "cap on training windows (seeded random subset) [windows]")

    def _check(self) -> None:
        self._at_least(2, "lookback", "n_ahead")
        self._at_least(1, "stride", "max_windows")
        ends = []
        for name in ("train_end", "val_end"):
            value = getattr(self, name)
            if isinstance(value, float) and not 0.0 < value < 1.0:
                raise ValueError(f"config: {name} as a fraction must be in (0, 1), got {value}")
            ends.append(value if isinstance(value, float) else _parse_date(name, value))
        if type(ends[0]) is type(ends[1]) and ends[0] > ends[1]:
            raise ValueError(f"config: train_end ({self.train_end}) must not be after val_end ({self.val_end})")


@dataclass(frozen=True)
class ModelConfig(_Section):
    """Size of the :class:`~lems.models.LargeExecutionModel`.

    Attributes:
        hidden_size: Width of the encoder [units].
        hidden_rnn_layer: Number of stacked TKAN layers.
        num_heads: Attention heads.
        num_embedding: Embedding width per input feature [units].
        fused_mlp_hidden_dim: Width of the allocation heads' first layer [units].
        kan_basis: ``"rbf"`` (fast) or ``"bspline"`` basis of the TKAN's KAN sub-layers.
        dropout: Dropout rate of the GRNs [fraction], in [0, 1).
        flexible_prior: What the flexible columns start from: ``"rule"`` (the classical flexible rule, which
            training corrects) or ``"none"`` (their base curve).
        symmetric_flexible: One flexible policy shared by buy and sell (mirrored state features).
        rule_decay: The rule prior's threshold shrinks with the time left as ``((H - s) / H) ** rule_decay``.
    """

    hidden_size: int = _f(32, "encoder width [units]")
    hidden_rnn_layer: int = _f(1, "stacked TKAN layers")
    num_heads: int = _f(4, "attention heads")
    num_embedding: int = _f(8, "embedding width per feature [units]")
    fused_mlp_hidden_dim: int = _f(32, "allocation heads' first layer [units]")
    kan_basis: str = _f("rbf", "'rbf' or 'bspline'")
    dropout: float = _f(0.0, "GRN dropout [fraction]")
    flexible_prior: str = _f("rule", "flexible columns start from 'rule' (the classical flexible rule) or 'none'")
    symmetric_flexible: bool = _f(True, "one flexible policy for buy and sell (mirrored price features)")
    rule_decay: float = _f(0.5, "rule prior's threshold x ((H - s) / H) ** rule_decay (0 = constant)")

    def _check(self) -> None:
        self._at_least(1, "hidden_size", "hidden_rnn_layer", "num_heads", "num_embedding", "fused_mlp_hidden_dim")
        if self.kan_basis not in ("rbf", "bspline"):
            raise ValueError(f"config: kan_basis must be 'rbf' or 'bspline', got {self.kan_basis!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"config: dropout must be in [0, 1), got {self.dropout}")
        if self.flexible_prior not in ("rule", "none"):
            raise ValueError(f"config: flexible_prior must be 'rule' or 'none', got {self.flexible_prior!r}")
        if not (math.isfinite(self.rule_decay) and self.rule_decay >= 0):
            raise ValueError(f"config: rule_decay must be a finite number >= 0, got {self.rule_decay}")


@dataclass(frozen=True)
class LimitsConfig(_Section):
    """Trading limits of every order (EXECUTION.md §2).

    Attributes:
        min_rate: Minimum traded per bar while the order is open [fraction of the order].
        max_rate: Maximum traded per bar [fraction of the order]; ``n_ahead * max_rate >= 1`` is required.
    """

    min_rate: float = _f(0.0, "minimum per bar [fraction of the order]")
    max_rate: float = _f(1.0, "maximum per bar [fraction of the order]")

    def _check(self) -> None:
        from lems.execution import check_rates

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
            ``None`` = off.
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

    def _check(self) -> None:
        self._at_least(1, "batch_size", "epochs", "max_steps", "weight_soup")
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


#: Value of ``execution.half_spread_bps`` that estimates the spread from the lookback's highs and lows.
SPREAD_ESTIMATED = "corwin-schultz"
#: Choices of ``execution.impact``: the temporary impact law.
IMPACT_LAWS = ("sqrt", "none")


@dataclass(frozen=True)
class ExecutionConfig(_Section):
    """Real-world execution: order sizes, the cost model, the participation cap (issue 11; EXECUTION.md §1).

    The defaults are frictionless: no size, no cost, no cap; every number is today's. With ``sizes``,
    ``lems evaluate`` adds the transaction-cost analysis (:func:`lems.report.costed_backtest`) and :func:`train`
    trains with the cost-aware loss (:func:`lems.loss.make_lem_loss`) for ``train_size``.

    Attributes:
        sizes: Order sizes [fraction of the EXPECTED horizon volume: lookback mean bar volume x H], each > 0
            (a desk trades 0.01 .. 0.3); empty = frictionless.
        train_size: The size the cost-aware loss trains for [fraction, > 0]; unset = the only one of ``sizes``.
        half_spread_bps: Half bid-ask spread paid on every unit [bps, >= 0]
            (:class:`lems.execution.SpreadCost`), or ``"corwin-schultz"`` to estimate it per window from the
            lookback's highs and lows (Corwin & Schultz 2012); unset = no spread cost.
        impact: Temporary impact law: ``"sqrt"`` (:class:`lems.execution.SquareRootImpact`, ``impact_coef *
            sigma * participation ** impact_delta`` per bar, sigma from the lookback) or ``"none"``.
        impact_coef: Coefficient of the temporary impact [dimensionless, >= 0]; 0 = none.
        impact_delta: Exponent of the participation in the temporary impact, in (0, 1] (0.5: square-root law).
        permanent_coef: Linear permanent impact [dimensionless, >= 0] (:class:`lems.execution.LinearPermanentImpact`,
            Almgren & Chriss): a bar's trading moves the price of LATER bars by ``coef * sigma * participation``.
        max_participation: Cap on the order's fill in each bar [fraction of the bar's market volume, (0, 1]];
            what cannot fill carries to later bars, the rest is reported unfilled; unset = no cap.
        require_completion: Reject a size that the cap cannot complete in expectation (``max_participation`` <
            the size).
        vwap_includes_order: The VWAP benchmark includes the order's own fills.
        arrival: Arrival price of the implementation shortfall: ``"close"`` (close of the last bar before the
            origin) or ``"reference"`` (its VWAP).
        risk_aversion: Cost-aware loss: weight of the risk term [loss units per percent^2 of the net diff], >= 0.
        ac_risk_aversion: The Almgren-Chriss baseline's lambda [per unit of the order's value: it minimises
            E + lambda Var of the shortfall as a fraction of the value], >= 0; its linear impact is matched to
            the cost model (:func:`lems.report.almgren_chriss_parameters`).
    """

    sizes: tuple[float, ...] = _f((), "order sizes [fraction of the expected horizon volume, > 0]; empty = "
                                      "frictionless")
    train_size: float | None = _f(None, "size the cost-aware loss trains for [fraction]; unset = the only size")
    half_spread_bps: float | str | None = _f(None, "half bid-ask spread paid per unit [bps, >= 0], or "
                                                   "'corwin-schultz' (estimated from the lookback); unset = none")
    impact: str = _f("sqrt", "temporary impact law: 'sqrt' (coef * sigma * participation^delta) or 'none'")
    impact_coef: float = _f(0.0, "temporary impact coefficient [dimensionless, >= 0]; 0 = none")
    impact_delta: float = _f(0.5, "exponent of the participation in the temporary impact, in (0, 1]")
    permanent_coef: float = _f(0.0, "linear permanent impact coefficient [dimensionless, >= 0]; shifts later bars")
    max_participation: float | None = _f(None, "cap per bar [fraction of the bar's market volume, (0, 1]]; "
                                               "unset = no cap")
    require_completion: bool = _f(False, "reject sizes the cap cannot complete in expectation")
    vwap_includes_order: bool = _f(False, "the VWAP benchmark includes the order's own fills")
    arrival: str = _f("close", "arrival price: 'close' (last close before the origin) or 'reference' (its VWAP)")
    risk_aversion: float = _f(0.0, "cost-aware loss: risk weight [loss units per percent^2], >= 0")
    ac_risk_aversion: float = _f(10.0, "Almgren-Chriss baseline lambda [per unit of the order's value], >= 0")

    def _check(self) -> None:
        from lems.execution import ARRIVAL_PRICES

        if any(not (s > 0) for s in self.sizes):
            raise ValueError(f"config: sizes must be fractions of the expected horizon volume in (0, inf), got "
                             f"{list(self.sizes)}")
        if self.train_size is not None and not self.train_size > 0:
            raise ValueError(f"config: train_size must be in (0, inf) (fraction of the expected horizon volume), "
                             f"got {self.train_size}")
        spread = self.half_spread_bps
        if isinstance(spread, str):
            if spread.lower().replace("_", "-") != SPREAD_ESTIMATED:
                raise ValueError(f"config: half_spread_bps must be a number in [0, inf) bps or "
                                 f"'{SPREAD_ESTIMATED}', got {spread!r}")
            object.__setattr__(self, "half_spread_bps", SPREAD_ESTIMATED)
        elif spread is not None and spread < 0:
            raise ValueError(f"config: half_spread_bps must be in [0, inf) bps or '{SPREAD_ESTIMATED}', got {spread}")
        if self.impact not in IMPACT_LAWS:
            raise ValueError(f"config: impact must be one of {IMPACT_LAWS}, got {self.impact!r}")
        for name in ("impact_coef", "permanent_coef", "risk_aversion", "ac_risk_aversion"):
            if getattr(self, name) < 0:
                raise ValueError(f"config: {name} must be in [0, inf), got {getattr(self, name)}")
        if not 0 < self.impact_delta <= 1:
            raise ValueError(f"config: impact_delta must be in (0, 1], got {self.impact_delta}")
        if self.arrival not in ARRIVAL_PRICES:
            raise ValueError(f"config: arrival must be one of {ARRIVAL_PRICES}, got {self.arrival!r}")
        try:
            self.conditions()  # the cap's range and, with require_completion, its feasibility for every size
            if not self.sizes:
                from lems.execution import check_participation_cap

                check_participation_cap(self.max_participation)
        except ValueError as exc:
            raise ValueError(f"config: {exc}") from None

    @property
    def costed(self) -> bool:
        """True when sizes are given: results net of costs beside the frictionless ones."""
        return bool(self.sizes)

    def cost_model(self):
        """The :class:`lems.execution.CostModel` of these settings (:class:`~lems.execution.NoCost` when none)."""
        from lems.execution import (
            CompositeCost,
            LinearPermanentImpact,
            NoCost,
            SpreadCost,
            SquareRootImpact,
        )

        parts = []
        if self.half_spread_bps is not None:
            fixed = self.half_spread_bps != SPREAD_ESTIMATED
            parts.append(SpreadCost(half_spread_bps=float(self.half_spread_bps) if fixed else None))
        if self.impact == "sqrt" and self.impact_coef > 0:
            parts.append(SquareRootImpact(coef=self.impact_coef, delta=self.impact_delta))
        if self.permanent_coef > 0:
            parts.append(LinearPermanentImpact(coef=self.permanent_coef))
        if not parts:
            return NoCost()
        return parts[0] if len(parts) == 1 else CompositeCost(tuple(parts))

    def conditions(self) -> list:
        """One :class:`lems.execution.ExecutionConditions` per size, in the order of ``sizes`` (empty: none)."""
        from lems.execution import ExecutionConditions, OrderSize

        model = self.cost_model()
        return [ExecutionConditions(OrderSize(participation=size), model, max_participation=self.max_participation,
                                    require_completion=self.require_completion,
                                    vwap_includes_order=self.vwap_includes_order, arrival=self.arrival)
                for size in self.sizes]

    def fixed_half_spread(self) -> float | None:
        """The stated half-spread [fraction of price]: 0.0 without spread, ``None`` when it is estimated."""
        if self.half_spread_bps is None:
            return 0.0
        return None if self.half_spread_bps == SPREAD_ESTIMATED else float(self.half_spread_bps) * 1e-4

    def training_size(self) -> float | None:
        """The size the cost-aware loss trains for: ``train_size``, else the only size; ``None`` when frictionless.

        Raises:
            ValueError: several sizes and no ``train_size``.
        """
        if self.train_size is not None:
            return self.train_size
        if len(self.sizes) > 1:
            raise ValueError(f"config: {len(self.sizes)} sizes {list(self.sizes)} and no train_size: set train_size "
                             "(the order size the cost-aware loss trains for, a fraction of the expected horizon "
                             "volume)")
        return self.sizes[0] if self.sizes else None

    def training_conditions(self):
        """The :class:`lems.execution.ExecutionConditions` that training scores orders under: :meth:`training_size`
        with the cost model and the cap; ``None`` (frictionless training, the default) without sizes, or when
        nothing costs (no cost model, no cap, no risk term).
        """
        from lems.execution import ExecutionConditions, OrderSize

        size = self.training_size()
        model = self.cost_model()
        if size is None or (model.is_free and self.max_participation is None and self.risk_aversion == 0):
            return None
        return ExecutionConditions(OrderSize(participation=size), model, max_participation=self.max_participation,
                                   vwap_includes_order=self.vwap_includes_order, arrival=self.arrival)

    def training_loss(self, max_rate: float = 1.0):
        """``lem_loss`` (frictionless, the default), or the cost-aware loss (:func:`lems.loss.make_lem_loss`) for
        :meth:`training_conditions`.

        Args:
            max_rate: the per-bar limit the model trains with [fraction of the order].
        """
        from lems.loss import lem_loss, make_lem_loss

        conditions = self.training_conditions()
        if conditions is None:
            return lem_loss
        return make_lem_loss(conditions.cost_model, order_participation=conditions.size.participation,
                             risk_aversion=self.risk_aversion, max_participation=self.max_participation,
                             max_rate=max_rate)


def cost_model_from_settings(settings: Mapping[str, Any] | ExecutionConfig):
    """The :class:`lems.execution.CostModel` of ``[execution]`` settings (a mapping of :class:`ExecutionConfig`
    fields, e.g. ``{"half_spread_bps": 2.0, "impact_coef": 1.0}``).

    Raises:
        ValueError: an unknown setting or a value outside its range (named, with the range).
    """
    return _execution_section(settings).cost_model()


def conditions_from_settings(settings: Mapping[str, Any] | ExecutionConfig) -> list:
    """One :class:`lems.execution.ExecutionConditions` per size of ``[execution]`` settings, e.g.
    ``{"sizes": [0.01, 0.05, 0.2], "half_spread_bps": "corwin-schultz", "impact": "sqrt", "impact_coef": 1.0,
    "max_participation": 0.1, "arrival": "close"}``.

    Raises:
        ValueError: an unknown setting or a value outside its range (named, with the range); a cap that cannot
            complete a size when ``require_completion``.
    """
    return _execution_section(settings).conditions()


def _execution_section(settings: Mapping[str, Any] | ExecutionConfig) -> ExecutionConfig:
    if isinstance(settings, ExecutionConfig):
        return settings
    if not isinstance(settings, Mapping):
        raise ValueError(f"execution settings must be a mapping, got {type(settings).__name__}")  # noqa: TRY004
    return TrainConfig(execution=dict(settings)).execution


#: The config's sections in file order: name -> dataclass.
CONFIG_SECTIONS: dict[str, type] = {"data": DataConfig, "windows": WindowConfig, "model": ModelConfig,
                                   "limits": LimitsConfig, "training": TrainingConfig, "execution": ExecutionConfig}
#: Section of every setting (names are unique across sections: the flat names of files, flags and aliases).
_SECTION_OF: dict[str, str] = {f.name: s for s, cls in CONFIG_SECTIONS.items() for f in dataclasses.fields(cls)}
#: Names of lems 0.2's flat config that were renamed inside their section, and aliases of the CLI's flags.
_RENAMED = {"data": "paths", "spread_bps": "half_spread_bps", "spread": "half_spread_bps"}


def _group_settings(values: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Settings sorted into their sections: the one place where flat names (old files, keyword arguments,
    CLI overrides) and section tables meet. ``-`` in names reads as ``_``.

    Raises:
        ValueError: unknown names (with the valid ones), a setting in the wrong section, a setting given twice.
    """
    grouped: dict[str, dict[str, Any]] = {s: {} for s in CONFIG_SECTIONS}
    for key, value in values.items():
        key = str(key).replace("-", "_")
        if key in CONFIG_SECTIONS and isinstance(value, Mapping):
            items = [(str(k).replace("-", "_"), v, key) for k, v in value.items()]
        elif key in CONFIG_SECTIONS and key not in _RENAMED:
            raise ValueError(f"config: [{key}] must be a table of settings, got {value!r}")
        else:
            items = [(key, value, None)]
        for name, item, table in items:
            name = _RENAMED.get(name, name)
            section = _SECTION_OF.get(name)
            if section is None:
                raise ValueError(f"config: unknown setting {name!r}; valid settings: {sorted(_SECTION_OF)}")
            if table is not None and table != section:
                raise ValueError(f"config: {name!r} belongs in [{section}], not [{table}]")
            if name in grouped[section]:
                raise ValueError(f"config: {name!r} is set twice")
            grouped[section][name] = item
    return grouped


# -------------------------------------------------------------------------------------------------------
# The whole configuration
# -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True, init=False)
class TrainConfig:
    """Everything needed to build windows, a model and train it: six sections (immutable, validated).

    Construct it from sections, section mappings, or flat setting names (any mix; flat names win over the
    sections they belong to)::

        TrainConfig(windows=WindowConfig(lookback=24), training={"epochs": 3})
        TrainConfig(lookback=24, epochs=3, data=["bars/"])     # flat names (``data`` = data.paths)

    Every setting is also readable by its flat name (``config.lookback`` is ``config.windows.lookback``).

    Attributes:
        data: :class:`DataConfig`.
        windows: :class:`WindowConfig`.
        model: :class:`ModelConfig`.
        limits: :class:`LimitsConfig`.
        training: :class:`TrainingConfig`.
        execution: :class:`ExecutionConfig` (order sizes, cost model, participation cap; frictionless by default).

    Raises:
        ValueError: unknown settings, bad values, an infeasible order (``n_ahead * max_rate < 1``).
    """

    data: DataConfig
    windows: WindowConfig
    model: ModelConfig
    limits: LimitsConfig
    training: TrainingConfig
    execution: ExecutionConfig

    def __init__(self, data: Any = None, windows: Any = None, model: Any = None, limits: Any = None,
                 training: Any = None, execution: Any = None, **settings: Any) -> None:
        self._assign({"data": data, "windows": windows, "model": model, "limits": limits, "training": training,
                      "execution": execution}, settings)

    def _assign(self, given: dict[str, Any], settings: dict[str, Any]) -> None:
        """Set the sections: section instances in ``given`` (else defaults) updated by the other values."""
        bases = {name: value for name, value in given.items() if isinstance(value, CONFIG_SECTIONS[name])}
        loose = {name: value for name, value in given.items() if value is not None and name not in bases}
        grouped = _group_settings({**loose, **settings})
        for name, cls in CONFIG_SECTIONS.items():
            base = bases.get(name) or cls()
            object.__setattr__(self, name, dataclasses.replace(base, **grouped[name]) if grouped[name] else base)
        self.validate()

    def validate(self) -> None:
        """Checks across sections (each section checks itself when built).

        Raises:
            ValueError: an infeasible order for the horizon (``n_ahead * max_rate < 1``).
        """
        from lems.execution import check_rates

        n_ahead, min_rate, max_rate = self.windows.n_ahead, self.limits.min_rate, self.limits.max_rate
        try:
            check_rates(n_ahead, min_rate, max_rate)
        except ValueError as exc:
            raise ValueError(f"config: {exc} (n_ahead={n_ahead}, min_rate={min_rate:g}, max_rate={max_rate:g})") \
                from None

    @property
    def synthetic(self) -> bool:
        """True when the data is the built-in synthetic market."""
        return self.data.synthetic

    # ---------------------------------------------------------------------------------------------------
    # Dict / file round trip
    # ---------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, dict[str, Any]]:
        """Nested plain dict ``{section: {setting: value}}`` (JSON/YAML friendly; ``None`` when unset)."""
        return {name: getattr(self, name).to_dict() for name in CONFIG_SECTIONS}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Config from a dict: section tables, flat names (lems 0.2 files), or both.

        Raises:
            ValueError: unknown keys (named, with the valid ones) or bad values.
        """
        if not isinstance(values, Mapping):
            raise ValueError(f"config must be a mapping of settings, got {type(values).__name__}")
        return cls(**{str(k): v for k, v in values.items()})

    def replace(self, **changes: Any) -> TrainConfig:
        """A validated copy with some settings changed, by flat name or section (``None`` values are ignored)."""
        kept = {k: v for k, v in changes.items() if v is not None}
        given = {name: (kept.pop(name) if isinstance(kept.get(name), cls) else getattr(self, name))
                 for name, cls in CONFIG_SECTIONS.items()}
        copy = object.__new__(TrainConfig)
        copy._assign(given, kept)
        return copy

    @classmethod
    def load(cls, path: str | Path) -> TrainConfig:
        """Read a ``.toml`` (tomllib), ``.yaml``/``.yml`` (PyYAML) or ``.json`` config file.

        Sections or flat names (files of lems 0.2) are both accepted. Relative data paths are kept as written
        (relative to the working directory).

        Raises:
            ValueError: missing or unreadable file, unknown suffix, bad settings.
        """
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"config file not found: {path}")
        suffix = path.suffix.lower()
        if suffix not in (".toml", ".yaml", ".yml", ".json"):
            raise ValueError(f"config file must end in .toml, .yaml, .yml or .json, got {path.name}")
        import yaml

        try:
            text = path.read_text(encoding="utf-8")
            if suffix == ".toml":
                values = tomllib.loads(text)
            elif suffix == ".json":
                values = json.loads(text)
            else:
                values = yaml.safe_load(text) or {}
        except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise ValueError(f"unreadable config file {path}: {str(exc).splitlines()[0]}") from None
        return cls.from_dict(values)

    def save(self, path: str | Path) -> Path:
        """Write the config as TOML, YAML or JSON (by suffix), in sections; returns the path."""
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
        """The config as TOML (values written by ``tomli_w``), each setting after its documentation comment.

        Unset settings (``None``) are written as comments, so the file reads back to the same config.
        """
        import tomli_w

        lines = ["# lems training configuration (read with lems.training.TrainConfig.load)"]
        for name in CONFIG_SECTIONS:
            section = getattr(self, name)
            lines += ["", f"[{name}]"]
            for key, value in section.to_dict().items():
                lines.append(f"# {section.__dataclass_fields__[key].metadata['doc']}")
                lines.append(f"# {key} = (unset)" if value is None else tomli_w.dumps({key: value}).rstrip("\n"))
        return "\n".join(lines) + "\n"


def _alias(section: str, name: str) -> property:
    return property(lambda self: getattr(getattr(self, section), name),
                    doc=f"``{section}.{name}`` (read-only flat alias)")


for _name, _section in _SECTION_OF.items():
    setattr(TrainConfig, _name, _alias(_section, _name))
del _name, _section


def _parse_date(name: str, value: Any):
    import pandas as pd

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


# -------------------------------------------------------------------------------------------------------
# Data
# -------------------------------------------------------------------------------------------------------
def load_bars(config: TrainConfig):
    """The canonical bars frame of ``config.data`` (files/folders, or the synthetic market).

    Raises:
        ValueError: a missing path, unreadable or invalid data (from :func:`lems.data.loaders.read_bars`).
    """
    data = config.data
    if data.synthetic:
        from lems.data.synthetic import synthetic_market

        minutes = _SYNTHETIC_BAR_MINUTES if data.bar_minutes is None else data.bar_minutes
        if not float(minutes).is_integer():
            raise ValueError(f"config: the synthetic market needs a whole number of bar_minutes, got {minutes:g}")
        return synthetic_market(n_assets=data.synthetic_assets, n_days=data.synthetic_days,
                                bar_minutes=int(minutes), calendar=data.synthetic_calendar,
                                seed=config.training.seed)
    from lems.data.loaders import read_bars

    missing = [p for p in data.paths if not Path(p).exists()]
    if missing:
        raise ValueError(f"data not found: {', '.join(missing)}")
    return read_bars(list(data.paths), tz=None)


def build_windows(config: TrainConfig, bars=None):
    """Leak-free windows of ``bars`` (default: :func:`load_bars`) with the config's lookback, horizon, stride and
    bar length.

    Raises:
        ValueError: no valid window (data too short for ``lookback + n_ahead``), or invalid data.
    """
    from lems.data.windows import make_windows

    bars = load_bars(config) if bars is None else bars
    w = config.windows
    windows = make_windows(bars, w.lookback, w.n_ahead, tz=config.data.tz, stride=w.stride,
                           bar_minutes=config.data.bar_minutes)
    if len(windows) == 0:
        raise ValueError(f"no valid window: the data is shorter than lookback + n_ahead "
                         f"({w.lookback} + {w.n_ahead} bars) or has no volume")
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
    train_end = _split_time("train_end", config.windows.train_end, origins)
    val_end = max(_split_time("val_end", config.windows.val_end, origins), train_end)
    splits = Splits(*windows.split(train_end, val_end))
    if len(splits.train) == 0:
        raise ValueError(f"no training window before train_end={train_end} (is the data long enough?)")
    return splits


# -------------------------------------------------------------------------------------------------------
# Backend switches
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


# -------------------------------------------------------------------------------------------------------
# Model
# -------------------------------------------------------------------------------------------------------
def build_model(config: TrainConfig, n_features: int | None = None, steps_per_epoch: int | None = None):
    """A compiled :class:`~lems.models.LargeExecutionModel` (Adam; :func:`lems.loss.lem_loss`, or the cost-aware
    loss of ``config.execution``: :meth:`ExecutionConfig.training_loss`).

    Args:
        config: Hyperparameters.
        n_features: Channels of ``X``; when given, the model is built for that input shape.
        steps_per_epoch: Batches per epoch: with ``weight_averaging``, the averaged weights replace the model's
            every that many steps (default: only at the end of ``fit``).
    """
    import keras

    from lems.models import LargeExecutionModel

    w, m, t = config.windows, config.model, config.training
    model = LargeExecutionModel(lookback=w.lookback, n_ahead=w.n_ahead, **m.to_dict())
    metrics = None
    if t.metrics:
        from lems.metrics import ALL_METRICS

        metrics = list(ALL_METRICS)
        if config.execution.training_conditions() is not None:  # extended targets: the metrics read channels 0-1
            metrics = [_on_compact_targets(m) for m in metrics]
    averaging = t.weight_averaging
    optimizer = keras.optimizers.Adam(learning_rate=t.learning_rate, use_ema=averaging is not None,
                                      ema_momentum=averaging or 0.99,
                                      ema_overwrite_frequency=steps_per_epoch if averaging else None)
    model.compile(optimizer=optimizer, loss=config.execution.training_loss(config.limits.max_rate), metrics=metrics)
    if n_features is not None:
        model.build([(None, w.lookback + w.n_ahead - 1, n_features), (None, 1), (None, 1)])
    return model


def _on_compact_targets(metric):
    """``metric`` reading the compact part of extended targets (:func:`lems.loss.compact_targets`)."""
    from lems.loss import compact_targets

    def wrapped(y_true, y_pred):
        return metric(compact_targets(y_true), y_pred)

    wrapped.__name__ = getattr(metric, "__name__", "metric")
    return wrapped


# -------------------------------------------------------------------------------------------------------
# Selection on what is reported
# -------------------------------------------------------------------------------------------------------
#: Keys the validation scores add to the training logs and history (units: bps).
TRACKING_KEY, FLEXIBLE_KEY, SCORE_KEY = "val_tracking_error_bps", "val_flexible_improvement_bps", "val_selection_score"
_SCORE_CHUNK = 2048  # windows per forward pass and outcome computation (bounds the float64 temporaries)
_SCORE_CELLS = 2**23  # and at most this many bar x order cells (64 MiB of float64): long horizons, fewer windows


def selection_scores(allocations: np.ndarray, y: np.ndarray, costs: _NetScoring | None = None) -> dict[str, float]:
    """Sums of the reported numbers over windows (:func:`lems.execution.seed_outcome`, as the backtest).

    Args:
        allocations: ``(N, H, H+1, 4, 2)`` allocations of one chunk of windows.
        y: ``(N, H, 2)`` float64 targets (:func:`lems.backtest.seed_targets`).
        costs: score NET of costs instead (:func:`lems.execution.seed_execution`, as the costed backtest): the
            conditions with each window's inputs (rows of this chunk); ``None``: frictionless.

    Returns:
        ``tracking`` (sum over windows of the mean ``|diff|`` [bps] of the fixed column's VWAP orders, both
        sides and targets, as the report's headline), ``flexible`` (sum over windows of the mean improvement
        [bps] of the flexible columns, all min durations, sides, benchmarks and targets) and ``n`` (windows).
    """
    from lems.execution import IS_VWAP_ORDER

    horizon = allocations.shape[1]
    allocations = np.asarray(allocations, dtype=np.float64)
    out = _outcome(allocations, y, costs)
    tracking = np.abs(out.diff[:, horizon][:, IS_VWAP_ORDER]).reshape(len(y), -1).mean(axis=1) * 1e4
    flexible = out.improvement_bps[:, :horizon].reshape(len(y), -1).mean(axis=1)
    return {"tracking": float(tracking.sum()), "flexible": float(flexible.sum()), "n": len(y)}


def _outcome(allocations: np.ndarray, y: np.ndarray, costs: _NetScoring | None):
    """The :class:`lems.execution.ExecutionOutcome` of a chunk: frictionless, or net of ``costs``."""
    from lems.execution import seed_outcome

    return seed_outcome(allocations, y) if costs is None else costs.outcome(allocations, y)


class _NetScoring(NamedTuple):
    """Execution conditions with the per-window inputs of some windows (:func:`lems.backtest.execution_inputs`)."""

    conditions: Any
    inputs: Any
    max_rate: float

    @classmethod
    def of(cls, windows, conditions, max_rate: float) -> _NetScoring:
        from lems.backtest import execution_inputs

        return cls(conditions, execution_inputs(windows, conditions), float(max_rate))

    def rows(self, rows: np.ndarray) -> _NetScoring:
        """The same conditions for a subset of the windows."""
        inputs = self.inputs._replace(**{k: (None if v is None else v[rows]) for k, v in self.inputs._asdict().items()})
        return self._replace(inputs=inputs)

    def outcome(self, allocations: np.ndarray, y: np.ndarray):
        """The :class:`lems.execution.ExecutionOutcome` net of costs (fields ``(N, H+1, 4, 2)``)."""
        from lems.execution import seed_execution

        c, i = self.conditions, self.inputs
        return seed_execution(allocations, y, cost_model=c.cost_model, order_participation=i.realised_participation,
                              sigma=i.sigma, half_spread=i.half_spread, max_participation=c.max_participation,
                              max_rate=self.max_rate, vwap_includes_order=c.vwap_includes_order).outcome


def _callback_base():
    import keras

    return keras.callbacks.Callback


class ValidationScores(_callback_base()):
    """Keras callback: at every epoch end, score the validation windows as the backtest reports them.

    Adds to the epoch's logs (hence to the history): ``val_tracking_error_bps`` (mean ``|diff|`` of the fixed
    column's VWAP orders [bps], lower is better), ``val_flexible_improvement_bps`` (mean improvement of the
    flexible columns [bps], higher is better) and ``val_selection_score`` (the first minus the second [bps],
    lower is better).

    When the model's output is not finite (training diverged), the scores are NaN, a ``RuntimeWarning`` says
    so and training stops (:class:`BestWeights` then restores the best earlier epoch, if any).

    Args:
        windows: Validation :class:`lems.data.windows.WindowSet`.
        min_rate, max_rate: Trading limits [fraction of the order per bar].
        batch_size: Windows per forward pass.
        conditions: :class:`lems.execution.ExecutionConditions` to score the orders NET of costs, as the costed
            backtest does (a cost-aware model is selected on what it was trained for); ``None``: frictionless.

    Attributes:
        diverged_epoch: The epoch (0-based) whose output was not finite, or None.
    """

    def __init__(self, windows, min_rate: float, max_rate: float, batch_size: int = 512, conditions=None) -> None:
        super().__init__()
        from lems.backtest import seed_targets

        if len(windows) == 0:
            raise ValueError("ValidationScores needs at least one validation window")
        self.windows, self.min_rate, self.max_rate = windows, float(min_rate), float(max_rate)
        self.batch_size = int(batch_size)
        self._y = seed_targets(windows)
        self._costs = None if conditions is None else _NetScoring.of(windows, conditions, max_rate)
        self.diverged_epoch: int | None = None

    def _allocations(self, part) -> np.ndarray:
        """The model's ``(n, H, H+1, 4, 2)`` allocations on ``part`` (float64; NaN where training diverged)."""
        from lems.execution import rate_columns

        lo, hi = rate_columns(len(part), self.min_rate, self.max_rate, int(part.n_ahead))
        x = [np.asarray(part.X, dtype=np.float32), lo.astype(np.float32), hi.astype(np.float32)]
        return np.asarray(self.model.predict(x, batch_size=self.batch_size, verbose=0), dtype=np.float64)

    def subset(self, rows) -> ValidationScores:
        """The same scoring (limits, batch size, cost conditions) on some of the validation windows."""
        rows = np.asarray(rows)
        part = copy.copy(self)
        part.windows, part._y = self.windows.subset(rows), self._y[rows]
        part._costs = None if self._costs is None else self._costs.rows(rows)
        part.diverged_epoch = None
        return part

    def _chunks(self):
        """``(rows, allocations)`` per chunk of the validation windows (bounded memory)."""
        from lems.backtest import windows_per_chunk

        chunk = windows_per_chunk(int(self.windows.n_ahead), _SCORE_CELLS, cap=_SCORE_CHUNK)
        for lo in range(0, len(self.windows), chunk):
            rows = np.arange(lo, min(lo + chunk, len(self.windows)))
            part = self.windows if len(rows) == len(self.windows) else self.windows.subset(rows)
            yield rows, self._allocations(part)

    def _rows_costs(self, rows):
        return None if self._costs is None else self._costs.rows(rows)

    def scores(self) -> dict[str, float]:
        """The three numbers for the model's current weights (NaN when its output is not finite)."""
        total = {"tracking": 0.0, "flexible": 0.0, "n": 0}
        for rows, allocations in self._chunks():
            if not np.all(np.isfinite(allocations)):
                return dict.fromkeys((TRACKING_KEY, FLEXIBLE_KEY, SCORE_KEY), math.nan)
            for key, value in selection_scores(allocations, self._y[rows], self._rows_costs(rows)).items():
                total[key] += value
        tracking, flexible = total["tracking"] / total["n"], total["flexible"] / total["n"]
        return {TRACKING_KEY: tracking, FLEXIBLE_KEY: flexible, SCORE_KEY: tracking - flexible}

    def flexible_by_order(self) -> np.ndarray:
        """Mean validation improvement [bps] of each flexible order for the model's current weights.

        Returns:
            ``(M, H)`` float64: order model ``m`` (order type x target, in :data:`lems.execution.ORDER_TYPES` x
            :data:`lems.execution.TARGETS` order, as the decoder's models) and flexible column (min duration
            ``d = column + 1`` bars); all NaN when the model's output is not finite. Net of costs when the
            callback scores net of costs. Its mean over all entries is ``val_flexible_improvement_bps``.
        """
        horizon, total = int(self.windows.n_ahead), 0.0
        for rows, allocations in self._chunks():
            if not np.all(np.isfinite(allocations)):
                return np.full((allocations.shape[-2] * allocations.shape[-1], horizon), math.nan)
            out = _outcome(allocations, self._y[rows], self._rows_costs(rows))
            total = total + out.improvement_bps[:, :horizon].sum(axis=0)  # (H, types, targets)
        return (np.asarray(total) / len(self.windows)).reshape(horizon, -1).T

    def on_epoch_end(self, epoch, logs=None) -> None:
        scores = self.scores()
        if logs is not None:
            logs.update(scores)
        if math.isnan(scores[SCORE_KEY]):
            self.diverged_epoch = int(epoch)
            warnings.warn(f"epoch {epoch + 1}: the model's output on the validation windows is NaN or inf (training "
                          f"diverged): training stops; the best earlier epoch's weights are kept, if any",
                          RuntimeWarning, stacklevel=2)
            self.model.stop_training = True


class BestWeights(_callback_base()):
    """Keras callback: keep the weights of the best epoch by ``monitor`` (lower is better), stop after
    ``patience`` epochs without improvement, restore the best weights when training ends (however it ends:
    patience, epoch cap, step cap or time budget).

    With ``flexible`` (a :class:`ValidationScores` that runs before this callback) and a model that can name its
    flexible-only weights (``flexible_weight_masks()``, :class:`lems.models.LargeExecutionModel`), selection is
    split as it is reported: the weights are the best ``monitor`` epoch's, except the entries only the flexible
    columns read, which come from the epoch with the highest validation flexible improvement, the untrained
    weights included (scored before the first step: a model that starts from the classical rule keeps it unless
    training beats it on validation). Patience then counts epochs in which neither improved.

    With ``soup > 1`` (and ``flexible`` given, monitoring one of its scores), training ends with a greedy weight
    soup (Wortsman et al. 2022, "Model soups"): the ``soup`` best epochs by ``monitor`` are tried in that order
    and an epoch's weights join the uniform average of the kept ones only if the average then scores strictly
    better on validation; the soup replaces the best epoch's weights only when it beats them (at most
    ``soup - 1`` extra validation passes; ``soup`` copies of the weights are held while training).

    Args:
        monitor: Log key, e.g. ``"val_tracking_error_bps"``, ``"val_selection_score"`` or ``"val_loss"``.
        patience: Epochs without a strictly lower value before stopping; 0 = never stop early.
        flexible: The :class:`ValidationScores` whose flexible improvement selects the flexible weights, or None.
        soup: Epoch snapshots considered for the greedy soup; 1 = off (the best epoch's weights).

    Attributes:
        best: Best value seen.
        best_epoch: Its epoch (0-based); -1 before any.
        best_flexible: Best validation flexible improvement [bps] (split selection only, else None).
        untrained_flexible: Validation flexible improvement of the untrained weights [bps] (split selection only).
        best_flexible_epoch: Its epoch (0-based; -1: the untrained weights; None: no split selection).
        stopped_epoch: The epoch (0-based) at which patience ran out, or None.
        soup_epochs: Epochs (0-based, best first) whose weights were averaged into the kept weights:
            ``[best_epoch]`` when the soup did not beat the best epoch or is off; empty before training ends.
        soup_score: Validation ``monitor`` of the kept weights after the soup (``best`` when it did not help).
    """

    def __init__(self, monitor: str, patience: int = 0, flexible: ValidationScores | None = None,
                 soup: int = 1) -> None:
        super().__init__()
        if patience < 0:
            raise ValueError(f"patience must be >= 0 epochs, got {patience}")
        if int(soup) != soup or soup < 1:
            raise ValueError(f"soup must be an integer >= 1 (epoch snapshots; 1 = off), got {soup!r}")
        if soup > 1 and (flexible is None or monitor not in (TRACKING_KEY, SCORE_KEY)):
            raise ValueError(f"a weight soup (soup={soup}) scores its candidates with the ValidationScores passed "
                             f"as flexible=, on one of its keys ({TRACKING_KEY}, {SCORE_KEY}); got monitor "
                             f"{monitor!r}, flexible={flexible!r}")
        self.monitor, self.patience, self.flexible, self.soup = str(monitor), int(patience), flexible, int(soup)
        self._reset()

    def _reset(self) -> None:
        self.best, self.best_epoch, self.stopped_epoch = math.inf, -1, None
        self.best_flexible, self.best_flexible_epoch, self._flexible_weights, self._masks = None, None, None, None
        self.untrained_flexible = None
        self.wait, self._weights = 0, None
        self._snapshots: list[tuple[float, int, list]] = []  # (monitor value, epoch, weights), best first
        self.soup_epochs: list[int] = []
        self.soup_score: float | None = None

    def on_train_begin(self, logs=None) -> None:
        self._reset()
        masks = getattr(self.model, "flexible_weight_masks", None)
        if self.flexible is None or masks is None:
            return
        self._masks = masks()
        if not any(m is not None for m in self._masks):
            self._masks = None
            return
        score = self.untrained_flexible = self.flexible.scores()[FLEXIBLE_KEY]
        self.best_flexible, self.best_flexible_epoch = (score, -1) if math.isfinite(score) else (-math.inf, None)
        self._flexible_weights = self.model.get_weights()

    def on_epoch_end(self, epoch, logs=None) -> None:
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            raise ValueError(f"BestWeights: {self.monitor!r} is not in the epoch logs ({sorted(logs)})")
        improved = False
        if float(value) < self.best:  # NaN is never better
            self.best, self.best_epoch, improved = float(value), int(epoch), True
            self._weights = self.model.get_weights()
        if self.soup > 1 and math.isfinite(float(value)) and (len(self._snapshots) < self.soup
                                                              or float(value) < self._snapshots[-1][0]):
            weights = self._weights if self.best_epoch == int(epoch) else self.model.get_weights()
            self._snapshots.append((float(value), int(epoch), weights))
            self._snapshots = sorted(self._snapshots, key=lambda item: item[0])[:self.soup]
        flexible = logs.get(FLEXIBLE_KEY)
        if self._masks is not None and flexible is not None and float(flexible) > self.best_flexible:
            self.best_flexible, self.best_flexible_epoch, improved = float(flexible), int(epoch), True
            self._flexible_weights = self.model.get_weights()
        if improved:
            self.wait = 0
            return
        self.wait += 1
        if self.patience and self.wait >= self.patience:
            self.stopped_epoch = int(epoch)
            self.model.stop_training = True

    def on_train_end(self, logs=None) -> None:
        if self._weights is None:
            return
        self.soup_epochs, self.soup_score = [self.best_epoch], self.best
        weights = self._with_flexible(self._weights)
        if len(self._snapshots) > 1:
            weights = self._greedy_soup(weights)
        self._snapshots = []
        self.model.set_weights(weights)

    def _with_flexible(self, weights: list) -> list:
        """``weights`` with the flexible-only entries of the best flexible epoch (split selection)."""
        if self._masks is None or self._flexible_weights is None:
            return weights
        return [w if m is None else np.where(m, f, w) for w, f, m in zip(weights, self._flexible_weights, self._masks)]

    def _greedy_soup(self, best_weights: list) -> list:
        """Greedy uniform soup of the snapshots (best first), each kept only if validation improves."""
        kept, kept_weights = [self._snapshots[0][2]], best_weights
        for _, epoch, weights in self._snapshots[1:]:
            candidate = self._with_flexible(_mean_weights([*kept, weights]))
            self.model.set_weights(candidate)
            value = float(self.flexible.scores()[self.monitor])
            if value < self.soup_score:  # NaN is never better
                kept.append(weights)
                kept_weights, self.soup_score = candidate, value
                self.soup_epochs.append(epoch)
        return kept_weights


def _mean_weights(snapshots: list[list]) -> list:
    """Entry-wise mean of several ``get_weights()`` lists (non-float entries, e.g. counters, from the first)."""
    return [np.mean(np.stack(entries), axis=0).astype(entries[0].dtype)
            if np.issubdtype(entries[0].dtype, np.floating) else entries[0]
            for entries in zip(*snapshots)]


#: Thresholds of the flexible rule prior tried on validation before training [lookback volatility units]
#: (:class:`RulePriorTuning`): from "finish on any favourable price" to "only on a 3-sigma move" (at the
#: horizon's start; the model's ``rule_decay`` shrinks them as time runs out).
RULE_THRESHOLD_GRID = (0.1, 0.15, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0, 1.5, 2.0, 3.0)


class RulePriorTuning(_callback_base()):
    """Keras callback: before the first step, tune the thresholds of the flexible columns' rule prior.

    A model whose flexible columns start from the classical rule (``flexible_prior="rule"``) starts from one
    threshold for every order and min duration. This callback scores the untrained model on the validation
    windows at each threshold of ``grid`` and keeps, per flexible policy and min duration, the grid value with the
    highest mean validation flexible improvement (averaged over the policy's orders, i.e. buy and sell for a
    symmetric decoder, and over ``smooth`` neighbouring min durations on each side, so that one noisy column
    does not pick its own). The tuned rule is then the untrained start that :class:`BestWeights` scores as a
    candidate: training must beat it on validation to replace it. It reads validation windows only (no test
    data) and changes nothing when the model has no rule prior.

    Args:
        scores: The :class:`ValidationScores` of the run (its windows, limits and cost conditions).
        grid: Thresholds tried [lookback volatility units], each finite.
        smooth: Neighbouring min durations averaged on each side of a column (0 = each column alone).
        max_windows: Score at most this many validation windows (evenly spaced over the split, so every asset
            and period keeps its share): the grid costs ``len(grid)`` validation passes before the first step.

    Attributes:
        table: ``(len(grid), n_flexible_models, H)`` mean validation improvement [bps] per threshold, policy and
            column, after the run (None before or without a rule prior).
        thresholds: The chosen ``(n_flexible_models, H)`` thresholds, or None.
    """

    def __init__(self, scores: ValidationScores, grid=RULE_THRESHOLD_GRID, smooth: int = 1,
                 max_windows: int = 8192) -> None:
        super().__init__()
        if int(max_windows) != max_windows or max_windows < 1:
            raise ValueError(f"max_windows must be an integer >= 1, got {max_windows!r}")
        n = len(scores.windows)
        if n > max_windows:  # evenly spaced rows
            scores = scores.subset(np.unique(np.linspace(0, n - 1, int(max_windows)).round().astype(int)))
        grid = tuple(float(g) for g in grid)
        if not grid or not all(math.isfinite(g) for g in grid):
            raise ValueError(f"grid must be a non-empty sequence of finite thresholds, got {grid!r}")
        if int(smooth) != smooth or smooth < 0:
            raise ValueError(f"smooth must be an integer >= 0 (min durations), got {smooth!r}")
        self.scores, self.grid, self.smooth = scores, grid, int(smooth)
        self.table, self.thresholds = None, None

    def on_train_begin(self, logs=None) -> None:
        from lems.layers.decoder import RULE_THRESHOLD

        decoder = getattr(self.model, "decoder", None)
        if getattr(decoder, "flexible_prior", None) != "rule":
            return
        self.scores.set_model(self.model)  # a subset's copy of the run's scores may not be wired yet
        policy = decoder.flexible_policy_of_order()
        n_policies = decoder.n_flexible_models
        table = []
        for threshold in self.grid:
            decoder.rule_thresholds = threshold
            by_order = self.scores.flexible_by_order()  # (M, H)
            by_policy = np.stack([by_order[policy == f].mean(axis=0) for f in range(n_policies)])
            table.append(_smooth_columns(by_policy, self.smooth))
        self.table = np.stack(table)
        if not np.all(np.isfinite(self.table)):
            decoder.rule_thresholds = RULE_THRESHOLD
            warnings.warn("RulePriorTuning: the untrained model's validation output is not finite; the rule "
                          "prior keeps its initial thresholds", RuntimeWarning, stacklevel=2)
            self.table = None
            return
        self.thresholds = np.asarray(self.grid)[np.argmax(self.table, axis=0)]
        decoder.rule_thresholds = self.thresholds


def _smooth_columns(values: np.ndarray, width: int) -> np.ndarray:
    """Mean over the ``width`` neighbouring columns on each side (last axis; fewer at the edges)."""
    if width == 0:
        return values
    cumulative = np.concatenate([np.zeros(values.shape[:-1] + (1,)), np.cumsum(values, axis=-1)], axis=-1)
    n = values.shape[-1]
    lo, hi = np.maximum(np.arange(n) - width, 0), np.minimum(np.arange(n) + width + 1, n)
    return (cumulative[..., hi] - cumulative[..., lo]) / (hi - lo)


# -------------------------------------------------------------------------------------------------------
# Budgets and clock
# -------------------------------------------------------------------------------------------------------
class TimeBudget(_callback_base()):
    """Keras callback: stop training once ``budget_s`` seconds of wall-clock time have passed.

    The clock starts at ``on_train_begin`` (so compilation counts) and is checked after every batch; the
    epoch's validation pass still runs after a stop, so the best weights can be chosen and restored.

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


class StepBudget(_callback_base()):
    """Keras callback: stop training after exactly ``max_steps`` optimizer steps (the same on every machine).

    The epoch's validation pass still runs after the stop.

    Args:
        max_steps: Steps [batches], >= 1.

    Attributes:
        triggered: True once the budget stopped training.
        steps: Optimizer steps taken.
    """

    def __init__(self, max_steps: int) -> None:
        super().__init__()
        if int(max_steps) != max_steps or max_steps < 1:
            raise ValueError(f"max_steps must be an integer >= 1, got {max_steps}")
        self.max_steps, self.steps, self.triggered = int(max_steps), 0, False

    def on_train_begin(self, logs=None) -> None:
        self.steps, self.triggered = 0, False

    def on_train_batch_end(self, batch, logs=None) -> None:
        self.steps += 1
        if self.steps >= self.max_steps:
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


# -------------------------------------------------------------------------------------------------------
# Training
# -------------------------------------------------------------------------------------------------------
def _batches(windows, config: TrainConfig, shuffle: bool, seed: int, costed: bool = False):
    """``((X, min_rate, max_rate), y, weight)`` batches of one fixed size, so that each step compiles once.

    Training (``shuffle``) drops the remainder (re-drawn each epoch); validation pads its last batch with
    zero-weight rows, so every validation window counts. ``costed``: the extended targets ``(N, H, 5)`` of the
    cost-aware loss (:func:`lems.backtest.cost_targets`), else the compact ``windows.y``.
    """
    from lems.batching import PaddedBatches

    n, limits = len(windows), config.limits
    x = (np.asarray(windows.X, dtype=np.float32), np.full((n, 1), limits.min_rate, dtype=np.float32),
         np.full((n, 1), limits.max_rate, dtype=np.float32))
    if costed:
        from lems.backtest import cost_targets

        y = cost_targets(windows, half_spread=config.execution.fixed_half_spread())
    else:
        y = windows.y
    return PaddedBatches(x, np.asarray(y, dtype=np.float32), config.training.batch_size, shuffle=shuffle,
                         seed=seed, drop_remainder=shuffle)


def _streamed(part) -> bool:
    """True for the windows of a :class:`lems.data.universe.SymbolUniverse` (served on the fly)."""
    from lems.data.universe import UniverseWindows

    return isinstance(part, UniverseWindows)


def _training_batches(config: TrainConfig, splits: Splits, costed: bool) -> tuple[Any, Any, int]:
    """``(train batches, validation batches or None, feature channels)`` of materialised or streamed splits."""
    t, limits = config.training, config.limits
    if not _streamed(splits.train):
        train_set = _subsample(splits.train, config.windows.max_windows, t.seed)
        val = _batches(splits.val, config, shuffle=False, seed=0, costed=costed) if len(splits.val) else None
        return _batches(train_set, config, shuffle=True, seed=t.seed, costed=costed), val, train_set.X.shape[-1]
    from lems.data.features import FEATURE_NAMES

    if costed:
        raise ValueError("config: cost-aware training (execution sizes with a cost model, a cap or a risk term) "
                         "needs the per-window cost inputs of lems.backtest.cost_targets, which streamed batches "
                         "do not carry: set stream = false, or train frictionless (no sizes)")
    rates = {"min_rate": limits.min_rate, "max_rate": limits.max_rate}
    num = None
    if config.windows.max_windows is not None:
        num = min(max(config.windows.max_windows // t.batch_size, 1), len(splits.train) // t.batch_size) or None
    data = splits.train.batches(t.batch_size, shuffle=True, seed=t.seed, drop_remainder=True, num_batches=num,
                                **rates)
    val = splits.val.batches(t.batch_size, shuffle=False, **rates) if len(splits.val) else None
    return data, val, len(FEATURE_NAMES)


def stream_splits(config: TrainConfig) -> Splits:
    """The config's purged time split as streamed parts (:class:`lems.data.universe.UniverseWindows`).

    The source is the one data path (a folder of files or sub-folders per symbol, or a Parquet dataset
    partitioned by symbol or with a symbol column), the list of paths, or the synthetic market's bars.
    Fractions of ``train_end`` / ``val_end`` refer to the distinct origin times of all symbols, as
    :func:`split_windows`.

    Raises:
        ValueError: missing data, no valid window, an empty training part.
    """
    w = config.windows
    splits = Splits(*_universe(config).split(w.train_end, w.val_end))
    if len(splits.train) == 0:
        raise ValueError(f"no training window before train_end={w.train_end} (is the data long enough?)")
    return splits


def _universe(config: TrainConfig):
    """The :class:`lems.data.universe.SymbolUniverse` of the config's data, lookback, horizon and stride."""
    from lems.data.universe import SymbolUniverse

    d, w = config.data, config.windows
    if d.synthetic:
        source = load_bars(config)
    else:
        missing = [p for p in d.paths if not Path(p).exists()]
        if missing:
            raise ValueError(f"data not found: {', '.join(missing)}")
        source = d.paths[0] if len(d.paths) == 1 else list(d.paths)
    return SymbolUniverse(source, w.lookback, w.n_ahead, tz=d.tz, stride=w.stride, bar_minutes=d.bar_minutes)


def evaluation_windows(config: TrainConfig, split: str = "test"):
    """The windows to backtest, materialised: the test part of the config's split (``"test"``) or all (``"all"``).

    With ``data.stream`` only that part is materialised, from the symbol universe (the one data path may then be
    a Parquet dataset partitioned by symbol).

    Raises:
        ValueError: an unknown ``split``, no window, anything :func:`build_windows` or :func:`stream_splits` raise.
    """
    if split not in ("test", "all"):
        raise ValueError(f"split must be 'test' or 'all', got {split!r}")
    if not config.data.stream:
        windows = build_windows(config)
        return split_windows(config, windows).test if split == "test" else windows
    w = config.windows
    universe = _universe(config)
    part = universe.split(w.train_end, w.val_end)[2] if split == "test" else universe.windows()
    if len(part) == 0:
        raise ValueError(f"no {part.name} window in the data (is it long enough for lookback + n_ahead?)")
    return part.to_window_set()


@dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
        model: The trained model (the best validation epoch's weights when there is a validation set).
        history: Per-epoch logs: ``loss``, ``val_loss``, ``val_tracking_error_bps``,
            ``val_flexible_improvement_bps``, ``val_selection_score`` (when there is a validation set), metrics,
            and ``wall_time_s`` (seconds since the start of training at each epoch end).
        config: The config used.
        windows: The :class:`Splits` (train, val, test).
        wall_time_s: Wall-clock time of ``fit`` [seconds].
        epochs_run: Epochs started.
        stopped_by: ``"epochs"``, ``"early_stopping"``, ``"max_steps"``, ``"time_budget"`` or ``"diverged"`` (the
            validation output became NaN or inf).
        best_epoch: Epoch (from 1) whose weights were kept; None without validation (last weights kept).
        monitor: History key that chose ``best_epoch`` (``"val_tracking_error_bps"`` or ``"val_loss"``), or None.
        best_flexible_epoch: Epoch (from 1; 0 = the untrained weights) whose flexible-only weights were kept
            (split selection, :class:`BestWeights`), or None.
        untrained_flexible_bps: Validation flexible improvement of the untrained model [bps] (split selection;
            with ``tune_rule_prior``, of the tuned rule prior), or None.
        rule_prior_thresholds: The rule prior's ``(n_flexible_models, H)`` thresholds chosen on validation before
            training [lookback volatility units] (:class:`RulePriorTuning`), or None when not tuned.
        soup_epochs: Epochs (from 1, best first) averaged into the kept tracking weights (``weight_soup``;
            ``[best_epoch]`` when the soup did not beat it), or None without validation.
    """

    model: Any
    history: dict[str, list[float]]
    config: TrainConfig
    windows: Splits
    wall_time_s: float
    epochs_run: int
    stopped_by: str
    best_epoch: int | None = None
    monitor: str | None = None
    best_flexible_epoch: int | None = None
    untrained_flexible_bps: float | None = None
    rule_prior_thresholds: np.ndarray | None = None
    soup_epochs: list[int] | None = None

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


def _check_splits(config: TrainConfig, splits: Splits) -> None:
    w = config.windows
    for part in splits:
        shape = part.universe if _streamed(part) else part
        if (shape.lookback, shape.n_ahead) != (w.lookback, w.n_ahead):
            raise ValueError(f"windows have lookback={shape.lookback}, n_ahead={shape.n_ahead}; the config has "
                             f"{w.lookback}, {w.n_ahead}")


def _selection_callbacks(config: TrainConfig, val) -> tuple[list, BestWeights | None]:
    """Validation scoring (net of costs for a cost-aware model) and best-weights selection, or a warning when
    there is no validation window."""
    t = config.training
    if len(val) == 0:
        warnings.warn("no validation window (train_end..val_end is empty): early stopping and best-weights "
                      "selection are off, the last epoch's weights are kept", UserWarning, stacklevel=3)
        return [], None
    if _streamed(val):
        val = val.to_window_set()
    scores = ValidationScores(val, config.limits.min_rate, config.limits.max_rate,
                              batch_size=max(t.batch_size, 256), conditions=config.execution.training_conditions())
    tuning = [RulePriorTuning(scores)] if t.tune_rule_prior else []  # runs before BestWeights scores the start
    if t.selection == "tracking":  # tracking weights on tracking, flexible weights on flexible improvement
        best = BestWeights(TRACKING_KEY, patience=t.patience, flexible=scores, soup=t.weight_soup)
    else:
        best = BestWeights("val_loss", patience=t.patience)
    return [scores, *tuning, best], best


def _stopped_by(budgets: dict[str, Any], selection: list) -> str:
    if any(getattr(cb, "diverged_epoch", None) is not None for cb in selection):
        return "diverged"
    best = next((cb for cb in selection if isinstance(cb, BestWeights)), None)
    for name, budget in budgets.items():
        if budget is not None and budget.triggered:
            return name
    return "early_stopping" if best is not None and best.stopped_epoch is not None else "epochs"


def train(config: TrainConfig | None = None, windows=None, verbose: int = 1, callbacks=()) -> TrainResult:
    """Train a model on the config's data (or on ``windows``), keeping the best validation epoch's weights.

    Training stops at the first of: the epoch cap, ``max_steps``, the time budget, or ``patience`` epochs
    without a better validation score (``training.selection``). Without validation windows a warning says that
    selection and early stopping are off.

    Args:
        config: Settings (default :class:`TrainConfig`: synthetic market, small model).
        windows: Prebuilt windows (a :class:`lems.data.windows.WindowSet`, split here by the config, or a
            :class:`Splits` of window sets or of :class:`lems.data.universe.UniverseWindows`, streamed); default:
            built from ``config.data`` (streamed with ``data.stream``, :func:`stream_splits`). With
            ``config.execution`` sizes and a cost model, the loss is the cost-aware one on extended targets and the
            validation scores are net of costs (:meth:`ExecutionConfig.training_conditions`).
        verbose: Keras verbosity (1: progress bar per epoch, 2: one line per epoch, 0: silent).
        callbacks: Extra Keras callbacks, run after the built-in ones (scores, selection, budgets, clock).

    Returns:
        A :class:`TrainResult`.

    Raises:
        ValueError: bad config, unreadable data, no training window, several sizes without ``train_size``,
            cost-aware training on streamed windows.
    """
    from lems.utils import set_random_seed

    config = TrainConfig() if config is None else config
    config.validate()
    t = config.training
    config.execution.training_size()  # several sizes and no train_size: say so before any data work
    if windows is None:  # data errors surface before any model work
        windows = stream_splits(config) if config.data.stream else build_windows(config)
    set_random_seed(t.seed)
    splits = windows if isinstance(windows, Splits) else split_windows(config, windows)
    _check_splits(config, splits)
    data, val, n_features = _training_batches(config, splits, config.execution.training_conditions() is not None)
    model = build_model(config, n_features=n_features, steps_per_epoch=len(data))
    selection, best = _selection_callbacks(config, splits.val)
    budgets = {"time_budget": TimeBudget(t.time_budget_s) if t.time_budget_s is not None else None,
               "max_steps": StepBudget(t.max_steps) if t.max_steps is not None else None}
    clock = _EpochClock()
    all_callbacks = [*selection, *filter(None, budgets.values()), clock, *callbacks]
    start = time.perf_counter()
    with fast_compile(t.fast_compile):
        fitted = model.fit(data, validation_data=val, epochs=t.epochs, callbacks=all_callbacks, verbose=verbose)
    wall = time.perf_counter() - start
    history = {k: [float(v) for v in values] for k, values in fitted.history.items()}
    history["wall_time_s"] = [float(x) for x in clock.times]
    kept = best is not None and best.best_epoch >= 0
    return TrainResult(model=model, history=history, config=config, windows=splits, wall_time_s=wall,
                       epochs_run=len(clock.times), stopped_by=_stopped_by(budgets, selection),
                       best_epoch=best.best_epoch + 1 if kept else None, monitor=best.monitor if kept else None,
                       best_flexible_epoch=(best.best_flexible_epoch + 1 if kept and best.best_flexible_epoch is not None
                                            else None),
                       untrained_flexible_bps=best.untrained_flexible if best is not None else None,
                       rule_prior_thresholds=next((cb.thresholds for cb in selection
                                                   if isinstance(cb, RulePriorTuning)), None),
                       soup_epochs=[e + 1 for e in best.soup_epochs] if kept else None)
