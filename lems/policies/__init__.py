"""Execution policies: windows and trading limits in, seed-layout allocations out (docs/execution.md §5).

Modules: :mod:`~lems.policies.base` (the :class:`Policy` protocol, batch and per-bar sides),
:mod:`~lems.policies.classical` (TWAP, the static volume curve, the static tilt, the flexible rule),
:mod:`~lems.policies.dynamic` (:class:`DynamicVWAP`: the static curve times a persistent volume deviation re-estimated
at every bar, fitted on validation windows), :mod:`~lems.policies.almgren_chriss`, :mod:`~lems.policies.model` (a
trained model), :mod:`~lems.policies.forecast` (:class:`ForecastSchedule`: a trained model's volume forecast alone),
:mod:`~lems.policies.blend` (forecast combination of fixed-duration schedules), :mod:`~lems.policies.schedules`
(:func:`classical_schedules`: the classical fixed-duration schedules a model is compared with, the tuned ones fitted
on validation windows) and :mod:`~lems.policies.stored` (allocations computed elsewhere). The market estimates the
policies read (volatility, static volume curve, ...) are data: :mod:`lems.data.estimates`.
"""

from __future__ import annotations

from lems.policies.almgren_chriss import (
    AlmgrenChriss,
    almgren_chriss_cost,
    almgren_chriss_frontier,
    almgren_chriss_holdings,
    almgren_chriss_kappa,
    almgren_chriss_trades,
)
from lems.policies.base import Policy
from lems.policies.blend import (
    BlendedPolicy,
    fit_blend_weights,
    fit_blended_policy,
    simplex_min_second_moment,
)
from lems.policies.classical import TWAP, FlexibleRule, StaticTilt, StaticVWAP
from lems.policies.dynamic import DynamicVWAP
from lems.policies.forecast import ForecastSchedule
from lems.policies.model import ModelPolicy
from lems.policies.schedules import (
    CLASSICAL_SCHEDULES,
    FIT_SHARE,
    TUNED_SCHEDULES,
    classical_schedules,
    validation_parts,
)
from lems.policies.stored import PrecomputedPolicy, ScheduleTable, window_keys

#: The classical baselines by name (classes; instantiate with their defaults or parameters). :class:`StaticTilt`
#: and :class:`DynamicVWAP` are not among them: they must be fitted (:meth:`StaticTilt.fit`,
#: :meth:`DynamicVWAP.fit`) on validation windows first (:func:`classical_schedules` does both).
BASELINES: dict[str, type] = {"twap": TWAP, "static_vwap": StaticVWAP, "flexible_rule": FlexibleRule,
                              "almgren_chriss": AlmgrenChriss}

__all__ = [
    "BASELINES",
    "CLASSICAL_SCHEDULES",
    "FIT_SHARE",
    "TUNED_SCHEDULES",
    "TWAP",
    "AlmgrenChriss",
    "BlendedPolicy",
    "DynamicVWAP",
    "FlexibleRule",
    "ForecastSchedule",
    "ModelPolicy",
    "Policy",
    "PrecomputedPolicy",
    "ScheduleTable",
    "StaticTilt",
    "StaticVWAP",
    "almgren_chriss_cost",
    "almgren_chriss_frontier",
    "almgren_chriss_holdings",
    "almgren_chriss_kappa",
    "almgren_chriss_trades",
    "classical_schedules",
    "fit_blend_weights",
    "fit_blended_policy",
    "simplex_min_second_moment",
    "validation_parts",
    "window_keys",
]
