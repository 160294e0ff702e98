"""Train a LargeExecutionModel on hourly US equity bars (regular session) and compare it with classical
schedules.

Same pipeline as ``examples/crypto.py`` with equity defaults: New York calendar, one-session orders
(7 hourly bars), 5 sessions of lookback::

    python examples/equities.py ../shared/data/equities_1h --train-end 2016-01-01 --val-end 2018-01-01 \
        --minutes 5
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from crypto import parse_args, run

if __name__ == "__main__":
    run(parse_args(tz="America/New_York", n_ahead=7, lookback=35, train_end="2016-01-01",
                   val_end="2018-01-01", description=__doc__.split("\n\n")[0]))
