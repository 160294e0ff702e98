"""The training configuration: :class:`TrainConfig` (six sections: ``data``, ``windows``, ``model``, ``limits``,
``training``, ``execution``), its files (TOML, YAML, JSON) and the ONE builder of execution conditions
(:func:`conditions_from_settings`).

Every setting name is unique across sections, so the flat names of lems 0.2 (and of the CLI flags) keep working:
``TrainConfig(lookback=24, epochs=3)``, ``config.replace(n_ahead=6)``, ``config.lookback`` (a read-only alias of
``config.windows.lookback``) and old flat config files. ``[model]`` is :class:`lems.models.LargeExecutionModel`'s
arguments (:class:`lems.training.sections.ModelConfig`; defaults: the model's, with the product preset
:data:`lems.training.sections.MODEL_PRESET`).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
import yaml

from lems.execution import (
    ARRIVAL_PRICES,
    TRANSIENT_KERNELS,
    CompositeCost,
    FeeCost,
    LinearPermanentImpact,
    NoCost,
    SpreadCost,
    SquareRootImpact,
    TransientImpact,
    check_rates,
    execution_conditions,
)
from lems.loss import lem_loss, make_lem_loss
from lems.training.sections import (
    DataConfig,
    LimitsConfig,
    ModelConfig,
    TrainingConfig,
    WindowConfig,
    _SYNTHETIC_BAR_MINUTES,
    _f,
    _Section,
)

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

__all__ = ["CONFIG_SECTIONS", "IMPACT_LAWS", "SPREAD_ESTIMATED", "ExecutionConfig", "TrainConfig",
           "conditions_from_settings", "cost_model_from_settings"]

#: Value of ``execution.half_spread_bps`` that estimates the spread from the lookback's highs and lows.
SPREAD_ESTIMATED = "corwin-schultz"
#: Choices of ``execution.impact``: the impact law (``"sqrt"``: per bar, no memory; ``"transient"``: with memory).
IMPACT_LAWS = ("sqrt", "transient", "none")


@dataclass(frozen=True)
class ExecutionConfig(_Section):
    """Real-world execution: order sizes, the cost model, the participation cap (issue 11; docs/execution.md §1).

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
        impact: Impact law: ``"sqrt"`` (:class:`lems.execution.SquareRootImpact`, ``impact_coef * sigma *
            participation ** impact_delta`` per bar, sigma from the lookback; no memory, so its cost depends on the
            bar length), ``"transient"`` (:class:`lems.execution.TransientImpact`: a propagator whose impact decays
            with the time since each child order, calibrated so that a uniform order moves the price by
            ``impact_coef * sigma_T * participation ** impact_delta`` at its horizon, whatever the bar length) or
            ``"none"``.
        impact_coef: Coefficient of the impact [dimensionless, >= 0]; 0 = none.
        impact_delta: Exponent of the participation in the impact, in (0, 1] (0.5: square-root law).
        impact_kernel: Decay kernel of the transient impact: ``"power"`` (``(1 + t / resilience_minutes) **
            -impact_beta``, Bouchaud et al.) or ``"exponential"`` (``exp(-t / resilience_minutes)``, Obizhaeva &
            Wang).
        resilience_minutes: Time scale of the transient impact's decay [minutes, > 0]: the power law's cutoff,
            the exponential's resilience time.
        impact_beta: Decay exponent of the power-law kernel, in (0, 1) (0.5: the square-root law at every
            duration).
        impact_bar_minutes: Bar length the transient impact integrates over [minutes, > 0]; unset = the data's
            ``bar_minutes`` (``resample_minutes`` when set; 60 for the synthetic market). Required for
            ``impact = "transient"`` when the data's bar length is inferred from files.
        fee_bps: Exchange fee of taker (aggressive) fills [bps of the notional, >= 0] (:class:`lems.execution.FeeCost`),
            a part of its own in the shortfall (``fee_bps``); 0 = none (crypto venues: about 2 to 10 bps).
        maker_fee_bps: Exchange fee of maker (passive) fills [bps, finite; negative: a rebate].
        maker_fraction: Share of each child order filled as maker, in [0, 1]; 0 (default) = all taker.
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
    impact: str = _f("sqrt", "impact law: 'sqrt' (coef * sigma * participation^delta per bar, no memory), "
                             "'transient' (decaying impact, square-root law at the horizon) or 'none'")
    impact_coef: float = _f(0.0, "impact coefficient [dimensionless, >= 0]; 0 = none")
    impact_delta: float = _f(0.5, "exponent of the participation in the impact, in (0, 1]")
    impact_kernel: str = _f("power", "transient impact decay kernel: 'power' or 'exponential'")
    resilience_minutes: float = _f(1.0, "transient impact decay time [minutes, > 0] (power: cutoff; "
                                        "exponential: resilience time)")
    impact_beta: float = _f(0.5, "transient impact power-law decay exponent, in (0, 1)")
    impact_bar_minutes: float | None = _f(None, "bar length of the transient impact [minutes]; unset = the data's")
    fee_bps: float = _f(0.0, "taker exchange fee per unit traded [bps of the notional, >= 0]; 0 = none")
    maker_fee_bps: float = _f(0.0, "maker exchange fee [bps, negative: a rebate]")
    maker_fraction: float = _f(0.0, "share of each child order filled as maker, in [0, 1]; 0 = all taker")
    permanent_coef: float = _f(0.0, "linear permanent impact coefficient [dimensionless, >= 0]; shifts later bars")
    max_participation: float | None = _f(None, "cap per bar [fraction of the bar's market volume, (0, 1]]; "
                                               "unset = no cap")
    require_completion: bool = _f(False, "reject sizes the cap cannot complete in expectation")
    vwap_includes_order: bool = _f(False, "the VWAP benchmark includes the order's own fills")
    arrival: str = _f("close", "arrival price: 'close' (last close before the origin) or 'reference' (its VWAP)")
    risk_aversion: float = _f(0.0, "cost-aware loss: risk weight [loss units per percent^2], >= 0")
    ac_risk_aversion: float = _f(10.0, "Almgren-Chriss baseline lambda [per unit of the order's value], >= 0")

    def _check(self) -> None:
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
        if not (0 <= self.fee_bps < float("inf")):
            raise ValueError(f"config: fee_bps must be in [0, inf) bps, got {self.fee_bps}")
        if not abs(self.maker_fee_bps) < float("inf"):
            raise ValueError(f"config: maker_fee_bps must be a finite number of bps, got {self.maker_fee_bps}")
        if not 0 <= self.maker_fraction <= 1:
            raise ValueError(f"config: maker_fraction must be in [0, 1], got {self.maker_fraction}")
        if (1 - self.maker_fraction) * self.fee_bps + self.maker_fraction * self.maker_fee_bps < 0:
            raise ValueError("config: the fee per unit is a net rebate: lower maker_fraction or raise maker_fee_bps")
        if self.impact_kernel not in TRANSIENT_KERNELS:
            raise ValueError(f"config: impact_kernel must be one of {TRANSIENT_KERNELS}, got {self.impact_kernel!r}")
        if not (0 < self.resilience_minutes < float("inf")):
            raise ValueError(f"config: resilience_minutes must be in (0, inf) minutes, got {self.resilience_minutes}")
        if not 0 < self.impact_beta < 1:
            raise ValueError(f"config: impact_beta must be in (0, 1), got {self.impact_beta}")
        if self.impact_bar_minutes is not None and not (0 < self.impact_bar_minutes < float("inf")):
            raise ValueError(f"config: impact_bar_minutes must be in (0, inf) minutes (or unset), got "
                             f"{self.impact_bar_minutes}")
        if self.arrival not in ARRIVAL_PRICES:
            raise ValueError(f"config: arrival must be one of {ARRIVAL_PRICES}, got {self.arrival!r}")
        try:
            conditions_from_settings(self, bar_minutes=60.0)  # the cap's range and, with require_completion, its feasibility for every size
            if not self.sizes:
                from lems.execution import check_participation_cap

                check_participation_cap(self.max_participation)
        except ValueError as exc:
            raise ValueError(f"config: {exc}") from None

    @property
    def costed(self) -> bool:
        """True when sizes are given: results net of costs beside the frictionless ones."""
        return bool(self.sizes)

    @property
    def transient(self) -> bool:
        """True when the settings charge the transient impact (which needs the bar length)."""
        return self.impact == "transient" and self.impact_coef > 0

    def bar_length(self) -> float | None:
        """The bar length the transient impact uses [minutes]: ``impact_bar_minutes``, else the data's (set by
        :class:`TrainConfig`), else ``None``."""
        if self.impact_bar_minutes is not None:
            return float(self.impact_bar_minutes)
        return getattr(self, "_data_bar_minutes", None)

    def cost_model(self, bar_minutes: float | None = None):
        """The :class:`lems.execution.CostModel` of these settings (:class:`~lems.execution.NoCost` when none).

        Args:
            bar_minutes: bar length for the transient impact [minutes] when the settings do not give one.

        Raises:
            ValueError: ``impact = "transient"`` with no bar length anywhere.
        """
        parts = []
        if self.half_spread_bps is not None:
            fixed = self.half_spread_bps != SPREAD_ESTIMATED
            parts.append(SpreadCost(half_spread_bps=float(self.half_spread_bps) if fixed else None))
        if self.impact == "sqrt" and self.impact_coef > 0:
            parts.append(SquareRootImpact(coef=self.impact_coef, delta=self.impact_delta))
        if self.transient:
            minutes = self.bar_length() if self.bar_length() is not None else bar_minutes
            if minutes is None:
                raise ValueError("config: impact = 'transient' needs the bar length: set impact_bar_minutes (or "
                                 "data.bar_minutes) [minutes]")
            parts.append(TransientImpact(bar_minutes=float(minutes), coef=self.impact_coef, delta=self.impact_delta,
                                         kernel=self.impact_kernel, resilience_minutes=self.resilience_minutes,
                                         beta=self.impact_beta))
        if self.permanent_coef > 0:
            parts.append(LinearPermanentImpact(coef=self.permanent_coef))
        fees = FeeCost(taker_bps=self.fee_bps, maker_bps=self.maker_fee_bps, maker_fraction=self.maker_fraction)
        if not fees.is_free:
            parts.append(fees)
        if not parts:
            return NoCost()
        return parts[0] if len(parts) == 1 else CompositeCost(tuple(parts))

    def conditions(self) -> list:
        """One :class:`lems.execution.ExecutionConditions` per size, in the order of ``sizes`` (empty: none)
        (:func:`conditions_from_settings`)."""
        return conditions_from_settings(self)

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
        size = self.training_size()
        if size is None or (self.cost_model().is_free and self.max_participation is None and self.risk_aversion == 0):
            return None
        return conditions_from_settings(self, sizes=[size])[0]

    def training_loss(self, max_rate: float = 1.0):
        """``lem_loss`` (frictionless, the default), or the cost-aware loss (:func:`lems.loss.make_lem_loss`) for
        :meth:`training_conditions`.

        Args:
            max_rate: the per-bar limit the model trains with [fraction of the order].
        """
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


def conditions_from_settings(settings: Mapping[str, Any] | ExecutionConfig,
                             sizes: Sequence[float] | None = None, bar_minutes: float | None = None) -> list:
    """The ONE builder of :class:`lems.execution.ExecutionConditions` from ``[execution]`` settings: one per size,
    each with the settings' cost model, participation cap, ``require_completion``, ``vwap_includes_order`` and
    arrival price. Every caller (the config, training, ``lems evaluate``, ``lems report``) goes through it.

    Args:
        settings: an :class:`ExecutionConfig` or a mapping of its fields, e.g. ``{"sizes": [0.01, 0.05, 0.2],
            "half_spread_bps": "corwin-schultz", "impact": "sqrt", "impact_coef": 1.0, "max_participation": 0.1,
            "arrival": "close"}``.
        sizes: order sizes [fraction of the expected horizon volume] to build (e.g. the training size, or the size
            of a costed frame); default: the settings' ``sizes``.
        bar_minutes: bar length for a transient impact when the settings do not give one [minutes].

    Raises:
        ValueError: an unknown setting or a value outside its range (named, with the range); a cap that cannot
            complete a size when ``require_completion``.
    """
    execution = _execution_section(settings)
    model = execution.cost_model(bar_minutes)
    return execution_conditions(list(execution.sizes if sizes is None else sizes), cost_model=model,
                                max_participation=execution.max_participation,
                                require_completion=execution.require_completion,
                                vwap_includes_order=execution.vwap_includes_order, arrival=execution.arrival)


def _execution_section(settings: Mapping[str, Any] | ExecutionConfig) -> ExecutionConfig:
    if isinstance(settings, ExecutionConfig):
        return settings
    if not isinstance(settings, Mapping):
        raise ValueError(f"execution settings must be a mapping, got {type(settings).__name__}")  # noqa: TRY004
    section = dataclasses.replace(TrainConfig(execution=dict(settings)).execution)
    object.__setattr__(section, "_data_bar_minutes", None)  # no data here: a transient impact states its bars
    return section


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
        data = self.data
        minutes = data.resample_minutes or data.bar_minutes or (_SYNTHETIC_BAR_MINUTES if data.synthetic else None)
        execution = dataclasses.replace(self.execution)  # a copy: the data's bar length is this config's
        object.__setattr__(execution, "_data_bar_minutes", None if minutes is None else float(minutes))
        object.__setattr__(self, "execution", execution)
        self.validate()

    def validate(self) -> None:
        """Checks across sections (each section checks itself when built).

        Raises:
            ValueError: an infeasible order for the horizon (``n_ahead * max_rate < 1``).
        """
        n_ahead, min_rate, max_rate = self.windows.n_ahead, self.limits.min_rate, self.limits.max_rate
        if self.execution.transient and self.execution.bar_length() is None:
            raise ValueError("config: impact = 'transient' needs the bar length: set impact_bar_minutes or "
                             "bar_minutes [minutes] (the data's bar length is inferred only when the files are read)")
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
