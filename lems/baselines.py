"""Deprecated: import from :mod:`lems.policies` (the policies) and :mod:`lems.data.estimates` (the market
estimates). This module re-exports their names for one release and warns on import."""

from __future__ import annotations

import warnings

from lems.data.estimates import (
    _bars_of,
    _lookback_rows,
    _per_asset,
    arrival_prices,
    expected_bar_volume,
    lookback_half_spread,
    lookback_volatility,
    static_volume_curve,
)
from lems.policies import (
    BASELINES,
    TWAP,
    AlmgrenChriss,
    FlexibleRule,
    ModelPolicy,
    Policy,
    ScheduleTable,
    StaticVWAP,
    almgren_chriss_cost,
    almgren_chriss_frontier,
    almgren_chriss_holdings,
    almgren_chriss_kappa,
    almgren_chriss_trades,
    window_keys,
)
from lems.policies.almgren_chriss import _ac_check
from lems.policies.base import _IS_BUY, _N_TARGETS, _N_TYPES, _check_windows, _columns, _rates, _to_seed_layout
from lems.policies.classical import _favourable, _rule_steps, _running_benchmarks, _type_weights

warnings.warn("lems.baselines is deprecated; import from lems.policies / lems.data.estimates", DeprecationWarning,
              stacklevel=2)

__all__ = [
    "BASELINES",
    "TWAP",
    "AlmgrenChriss",
    "FlexibleRule",
    "ModelPolicy",
    "Policy",
    "ScheduleTable",
    "StaticVWAP",
    "almgren_chriss_cost",
    "almgren_chriss_frontier",
    "almgren_chriss_holdings",
    "almgren_chriss_kappa",
    "almgren_chriss_trades",
    "arrival_prices",
    "expected_bar_volume",
    "lookback_half_spread",
    "lookback_volatility",
    "static_volume_curve",
    "window_keys",
]
