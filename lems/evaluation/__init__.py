"""Evaluation stage: backtests of policies on windows and what is reported from them.

- :mod:`lems.evaluation.backtest`: ``backtest`` (not re-exported here: the name is the module's), :func:`summary`, the costed backtest of order sizes.
- :mod:`lems.evaluation.stats`: paired comparisons with clustered intervals, the headline numbers and the
  fixed-duration spread ratio with its day-bootstrap interval (:func:`headline_table`).
- :mod:`lems.evaluation.tca`: transaction-cost analysis and the Almgren-Chriss frontier.
- :mod:`lems.evaluation.figures`: the report's figures. :mod:`lems.evaluation.page`: the report page.
"""

from lems.evaluation.backtest import (
    FRAME_COLUMNS,
    TCA_COLUMNS,
    PrecomputedPolicy,
    allocate_and_backtest,
    costed_backtest,
    summary,
)
from lems.evaluation.frames import read_frames
from lems.evaluation.page import write_report
from lems.evaluation.stats import headline, headline_table, paired_comparison, spread_ratio, spread_ratios

__all__ = ["FRAME_COLUMNS", "TCA_COLUMNS", "PrecomputedPolicy", "allocate_and_backtest",
           "costed_backtest", "headline", "headline_table", "paired_comparison", "read_frames", "spread_ratio",
           "spread_ratios", "summary", "write_report"]
