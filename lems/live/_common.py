"""What the live modules share: the session's tolerances, its error, the child order and small conversions."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import pandas as pd

from lems.data.calendar import to_utc_ns
from lems.execution import WINDOW_TOL

#: Remaining fraction of the order under which the order counts as complete.
DONE_TOL = 1e-9
#: A child order leaving less than this fraction of the order behind takes it all (no dust left).
DUST_TOL = WINDOW_TOL
#: Fill excess over the child order tolerated as float noise (fraction of the order); clipped to the child.
FILL_TOL = 1e-9
#: Lookback [bars] of a policy-driven session when none is given.
DEFAULT_POLICY_LOOKBACK = 120
_FORMAT_VERSION = 2
#: Saved formats :meth:`ExecutionSession.from_json` reads (version 1: no fill prices, cap or arrival price).
_READABLE_VERSIONS = (1, 2)
_NS_PER_MINUTE = 60_000_000_000


class SessionError(ValueError):
    """A call the session must refuse (bad bar, bad fill, wrong order of calls); its state is unchanged."""


class ChildOrder(NamedTuple):
    """The child order for the coming bar.

    Attributes:
        timestamp: open time of the bar (UTC).
        step: bar of the horizon, 0-based (bars since the order's first bar).
        fraction: fraction of the parent order to trade in the bar.
        units: ``fraction * size`` (shares/coins for a quantity target, currency for a notional target).
        remaining: fraction of the order still to trade before this child order.
        bars_left: bars left in the horizon, this one included.
    """

    timestamp: pd.Timestamp
    step: int
    fraction: float
    units: float
    remaining: float
    bars_left: int


# --------------------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------------------
def _to_ns(value: Any, what: str) -> int:
    """An aware timestamp as UTC nanoseconds (:func:`lems.data.calendar.to_utc_ns`); errors as SessionError."""
    try:
        return to_utc_ns(value, naive_is_utc=False, what=what)
    except ValueError as exc:
        raise SessionError(str(exc)) from exc


def _ts(ns: int) -> pd.Timestamp:
    return pd.Timestamp(int(ns), unit="ns", tz="UTC")


def _finite(value: Any, what: str) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError) as exc:
        raise SessionError(f"{what} must be a number, got {value!r}") from exc
    if not math.isfinite(out):
        raise SessionError(f"{what} must be finite, got {value!r}")
    return out


def _is_model(obj: Any) -> bool:
    return all(hasattr(obj, a) for a in ("encode", "decoder", "lookback", "n_ahead"))


def _unwrap(model: Any) -> tuple[Any, bool]:
    """``(driver, is_model)``: a LargeExecutionModel (also inside a ModelPolicy) or a Policy."""
    if _is_model(model):
        return model, True
    inner = getattr(model, "model", None)
    if inner is not None and _is_model(inner):
        return inner, True
    if callable(getattr(model, "allocate", None)):
        return model, False
    raise ValueError("model must be a LargeExecutionModel or a Policy (an object with an allocate() method)")
