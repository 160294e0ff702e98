"""The classical fixed-duration schedules a model's VWAP tracking is compared with: :func:`classical_schedules`.

A desk compares a learned schedule with the strongest classical one it can build without a model: TWAP, the static
volume curve, and the two schedules fitted on validation windows, the static tilt (:class:`~lems.policies.StaticTilt`)
and the dynamic volume forecast (:class:`~lems.policies.DynamicVWAP`). ``lems evaluate``, ``lems demo`` and the
streamed-universe evaluation backtest all of them, and the headline's "best classical schedule" is the one with the
lowest spread on the validation windows (:func:`lems.evaluation.stats.headline_table`).
"""

from __future__ import annotations

import numpy as np

from lems.data.windows import WindowSet
from lems.policies.base import Policy
from lems.policies.classical import TWAP, StaticTilt, StaticVWAP
from lems.policies.dynamic import DynamicVWAP

__all__ = ["CLASSICAL_SCHEDULES", "TUNED_SCHEDULES", "classical_schedules"]

#: The classical fixed-duration schedules that are always there (policy labels): TWAP and the static volume curve.
CLASSICAL_SCHEDULES: tuple[str, ...] = ("twap", "static_vwap")
#: The classical fixed-duration schedules fitted on validation windows (policy labels): there when validation
#: windows are.
TUNED_SCHEDULES: tuple[str, ...] = ("static_tilt", "dynamic_vwap")


def classical_schedules(validation: WindowSet | None, n_days: int = 20) -> dict[str, Policy]:
    """The classical fixed-duration schedules by label, fitted on ``validation`` where they need a fit.

    Always ``twap`` (:class:`~lems.policies.TWAP`) and ``static_vwap`` (:class:`~lems.policies.StaticVWAP`); with
    validation windows also ``static_tilt`` (:meth:`StaticTilt.fit <lems.policies.StaticTilt.fit>`) and
    ``dynamic_vwap`` (:meth:`DynamicVWAP.fit <lems.policies.DynamicVWAP.fit>`), in that order
    (:data:`CLASSICAL_SCHEDULES`, then :data:`TUNED_SCHEDULES`).

    The fits read only the ``validation`` windows (their horizon bars and, through the static curve, bars before
    their origins): pass the validation split, never the windows that will be scored. Without validation windows
    (``None`` or empty) the two fitted schedules are left out, not fitted elsewhere. The static tilt is fitted on
    the validation windows with traded volume in their horizon (its fit needs a realised volume share); when no
    validation window has any, it is left out too.

    Args:
        validation: The validation windows, or ``None``.
        n_days: Past occurrences of each slot averaged into the static curve of every schedule [days / sessions].

    Returns:
        ``{label: policy}``, labels equal to the policies' names.
    """
    schedules: dict[str, Policy] = {"twap": TWAP(), "static_vwap": StaticVWAP(n_days=n_days)}
    if validation is None or len(validation) == 0:
        return schedules
    traded = np.asarray(validation.volumes, dtype=np.float64).sum(axis=1) > 0
    if traded.any():
        fitting = validation if traded.all() else validation.subset(traded)
        schedules["static_tilt"] = StaticTilt.fit(fitting, n_days=n_days)
    schedules["dynamic_vwap"] = DynamicVWAP.fit(validation, n_days=n_days)
    return schedules
