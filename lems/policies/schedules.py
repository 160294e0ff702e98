"""The classical fixed-duration schedules a model's VWAP tracking is compared with: :func:`classical_schedules`.

A desk compares a learned schedule with the strongest classical one it can build without a model: TWAP, the static
volume curve, and the two schedules fitted on validation windows, the static tilt (:class:`~lems.policies.StaticTilt`)
and the dynamic volume forecast (:class:`~lems.policies.DynamicVWAP`). ``lems evaluate``, ``lems demo`` and the
streamed-universe evaluation backtest all of them, and the headline's "best classical schedule" is the one with the
lowest spread on the later part of the validation windows (:func:`validation_parts`,
:func:`lems.evaluation.stats.headline_table`).
"""

from __future__ import annotations

import numpy as np

from lems.data.windows import WindowSet
from lems.policies.base import Policy
from lems.policies.classical import TWAP, StaticTilt, StaticVWAP
from lems.policies.dynamic import DynamicVWAP

__all__ = ["CLASSICAL_SCHEDULES", "FIT_SHARE", "TUNED_SCHEDULES", "classical_schedules", "validation_parts"]

#: The classical fixed-duration schedules that are always there (policy labels): TWAP and the static volume curve.
CLASSICAL_SCHEDULES: tuple[str, ...] = ("twap", "static_vwap")
#: The classical fixed-duration schedules fitted on validation windows (policy labels): there when validation
#: windows are.
TUNED_SCHEDULES: tuple[str, ...] = ("static_tilt", "dynamic_vwap")
#: Share of the validation period (the earliest origins) the tuned schedules are fitted on; the best classical
#: schedule is chosen on the rest, so that a fitted schedule's choosing spread is out of sample. Fitted and chosen
#: on the same windows, the dynamic VWAP's choosing spread could never be above the static curve's (``rho = 0``, the
#: static curve, is on its grid).
FIT_SHARE = 0.5


def validation_parts(validation: WindowSet | None) -> tuple[WindowSet | None, WindowSet | None]:
    """The validation windows cut in time: ``(fit, choice)``.

    ``fit``: the windows whose whole horizon ends before the cut (the origin quantile :data:`FIT_SHARE`), what the
    tuned schedules are fitted on (:func:`classical_schedules`); ``choice``: the windows from the cut on, where the
    best classical schedule is chosen (pass them to :func:`lems.evaluation.backtest.classical_frame`). Windows that
    straddle the cut are in neither (purged, as :meth:`lems.data.windows.WindowSet.split`). ``(None, None)`` without
    validation windows.
    """
    if validation is None or len(validation) == 0:
        return None, None
    origins = np.sort(validation.origin.as_unit("ns").asi8)
    cut = origins[min(len(origins) - 1, int(len(origins) * FIT_SHARE))]
    fit, choice = validation.split(np.datetime64(int(cut), "ns"))
    return fit, choice


def classical_schedules(validation: WindowSet | None, n_days: int = 20) -> dict[str, Policy]:
    """The classical fixed-duration schedules by label, fitted on ``validation`` where they need a fit.

    Always ``twap`` (:class:`~lems.policies.TWAP`) and ``static_vwap`` (:class:`~lems.policies.StaticVWAP`); with
    validation windows also ``static_tilt`` (:meth:`StaticTilt.fit <lems.policies.StaticTilt.fit>`) and
    ``dynamic_vwap`` (:meth:`DynamicVWAP.fit <lems.policies.DynamicVWAP.fit>`), in that order
    (:data:`CLASSICAL_SCHEDULES`, then :data:`TUNED_SCHEDULES`).

    The fits read only the earlier part of the ``validation`` windows (:func:`validation_parts`: their horizon bars
    and, through the static curve, bars before their origins); the best schedule is then chosen on the later part.
    Pass the validation split, never the windows that will be scored. Without validation windows to fit on
    (``None``, empty, or none ending before the cut) the two fitted schedules are left out, not fitted elsewhere.
    The static tilt is fitted on the fitting windows with traded volume in their horizon (its fit needs a realised
    volume share); when none has any, it is left out too.

    Args:
        validation: The validation windows, or ``None``.
        n_days: Past occurrences of each slot averaged into the static curve of every schedule [days / sessions].

    Returns:
        ``{label: policy}``, labels equal to the policies' names.
    """
    schedules: dict[str, Policy] = {"twap": TWAP(), "static_vwap": StaticVWAP(n_days=n_days)}
    validation, _ = validation_parts(validation)
    if validation is None or len(validation) == 0:
        return schedules
    traded = np.asarray(validation.volumes, dtype=np.float64).sum(axis=1) > 0
    if traded.any():
        fitting = validation if traded.all() else validation.subset(traded)
        schedules["static_tilt"] = StaticTilt.fit(fitting, n_days=n_days)
    schedules["dynamic_vwap"] = DynamicVWAP.fit(validation, n_days=n_days)
    return schedules
