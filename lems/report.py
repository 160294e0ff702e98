"""Deprecated: the report moved to :mod:`lems.evaluation` (``backtest``: the costed backtest and stored
allocations; ``stats``: paired comparisons, the headline and the spread ratio; ``tca``: transaction-cost analysis;
``figures``; ``page``: :func:`~lems.evaluation.page.write_report`).

Importing this module warns (``DeprecationWarning``) and re-exports every name it had, so that lems 0.2 code keeps
working for one release.
"""

from lems.evaluation import backtest as _backtest
from lems.evaluation import cost_parameters as _cost_parameters
from lems.evaluation import figures as _figures
from lems.evaluation import frames as _frames
from lems.evaluation import page as _page
from lems.evaluation import stats as _stats
from lems.evaluation import tca as _tca
from lems.utils import reexport as _reexport

__all__ = [
    "ALMGREN_CHRISS",
    "CLUSTERS",
    "COSTED_COLUMNS",
    "FIGURES",
    "TCA_FIGURES",
    "PrecomputedPolicy",
    "allocate_and_backtest",
    "almgren_chriss_parameters",
    "costed_backtest",
    "frontier_table",
    "headline",
    "net_of_cost_table",
    "paired_comparison",
    "plot_allocation_curves",
    "plot_cost_curves",
    "plot_frontier",
    "plot_improvement_by_duration",
    "plot_improvement_distribution",
    "plot_orders",
    "read_frames",
    "select_sizes",
    "split_costed",
    "summary_table",
    "tca_table",
    "verdicts",
    "window_half_spread",
    "write_report",
]

_reexport(__name__, _backtest, _cost_parameters, _frames, _stats, _tca, _figures, _page,
          moved_to="lems.evaluation")
