"""Training a :class:`~lems.models.LargeExecutionModel` from a :class:`TrainConfig` (usable from Python and the CLI).

The pipeline is the library's own: bars (files read by :func:`lems.data.loaders.read_bars`, or the built-in
synthetic market) → leak-free windows (:func:`lems.data.windows.make_windows`) → purged time split
(:meth:`lems.data.windows.WindowSet.split`) → ``model.fit`` on ``[X, min_rate, max_rate]`` with
:func:`lems.loss.lem_loss`. After every epoch the validation windows are scored with the backtest's own
arithmetic (:func:`selection_scores`): the weights kept are those of the best epoch by the reported numbers
(fixed-column VWAP tracking error for the tracking weights, flexible improvement for the weights only the flexible
columns read), and training stops when neither improves (``patience``), at the epoch cap, after ``max_steps``
optimizer steps, or at the wall-clock budget.

Modules:

- :mod:`lems.training.sections` and :mod:`lems.training.config`: the configuration (six sections; ``[model]`` is
  :class:`~lems.models.LargeExecutionModel`'s arguments with one set of defaults) and the one builder of execution
  conditions (:func:`conditions_from_settings`).
- :mod:`lems.training.feed`: bars, windows, splits (materialised or streamed), batches.
- :mod:`lems.training.selection`: the callbacks that score, select, tune the rule prior and keep budgets.
- :mod:`lems.training.trainer`: :func:`build_model` and :func:`train` (open: own windows, loss, targets, cost
  conditions, model arguments, callbacks). (Not ``train.py``: the package's name ``train`` is the function.)

``[execution]`` (:class:`ExecutionConfig`) states order sizes, a cost model and a participation cap; it is
frictionless by default. With a size and a cost model (or a cap, or a risk term), :func:`train` fits the cost-aware
loss (:func:`lems.loss.make_lem_loss`) on the extended targets of :func:`lems.data.targets.cost_targets` and selects
the epoch on the validation numbers NET of costs. ``[data] stream = true`` trains on windows streamed from many
symbols (:class:`lems.data.universe.SymbolUniverse`) instead of materialised ones (:func:`stream_splits`).

Every name of lems 0.2's ``lems/training.py`` is importable from here (the backend switches now live in
:mod:`lems.runtime`).

Example:
    >>> from lems.training import TrainConfig, train
    >>> result = train(TrainConfig(max_steps=50, time_budget_s=60))  # synthetic market
    >>> result.model.save("model.keras")
"""

from lems import runtime as _runtime
from lems.training import config as _config
from lems.training import feed as _feed
from lems.training import sections as _sections
from lems.training import selection as _selection
from lems.training import trainer as _trainer
from lems.utils import reexport as _reexport

__all__ = [
    "CONFIG_SECTIONS",
    "DATA_SYNTHETIC",
    "MODEL_PRESET",
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
    "StepProgress",
    "SYMBOL_WEIGHTINGS",
    "UniverseParts",
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
    "evaluation_parts",
    "evaluation_windows",
    "fast_compile",
    "fast_compile_enabled",
    "load_bars",
    "selection_scores",
    "set_fast_compile",
    "split_windows",
    "stream_parts",
    "stream_splits",
    "validation_part",
    "train",
]

_reexport(__name__, _runtime, _sections, _config, _feed, _selection, _trainer)
