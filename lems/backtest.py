"""Deprecated: the backtest moved to :mod:`lems.evaluation.backtest` and its targets to :mod:`lems.data.targets`.

Importing this module warns (``DeprecationWarning``) and re-exports every name it had, so that lems 0.2 code keeps
working for one release.
"""

from lems.data import targets as _targets
from lems.evaluation import backtest as _backtest
from lems.utils import reexport as _reexport

__all__ = ["FRAME_COLUMNS", "GROUP_COLUMNS", "SUMMARY_STATS", "TCA_COLUMNS", "backtest", "cost_targets",
           "execution_inputs", "seed_targets", "summary", "windows_per_chunk"]

_reexport(__name__, _targets, _backtest, moved_to="lems.evaluation.backtest (targets: lems.data.targets)")
