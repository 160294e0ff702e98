"""The drivers of a session's decisions: a trained model's compiled per-step forward (:func:`model_shares`) and a
policy's plan re-scaled on what actually remains (:class:`_PolicyPlan`, the per-bar side of
:class:`lems.policies.Policy`)."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import keras
import numpy as np
import pandas as pd

from lems.batching import bucket_size
from lems.data.calendar import add_calendar
from lems.data.features import N_OBSERVED
from lems.data.online import OnlineWindow
from lems.data.validation import BAR_COLUMNS
from lems.data.windows import WindowSet
from lems.execution import OrderSpec
from lems.live._common import DONE_TOL

# --------------------------------------------------------------------------------------------------------
# The compiled per-step forward
# --------------------------------------------------------------------------------------------------------
class _LiveStep(keras.Model):
    """Proposal of one decoder step for every order of the seed layout, from an explicit live state.

    Inputs ``[X (B, W, F), step (B, 1), fills (B, H - 1)]``: the window as known at the open of bar ``step``,
    and the actual fills (fractions of the order) of the closed horizon bars (ignored from ``step`` on).
    Output ``(B, M, C)``: the share of what remains each order would trade now, before the limits
    (:meth:`lems.models.LargeExecutionModel.next_share`: the decoder's own step and replay). The wrapper only
    holds the compiled function, so that the model's saving is unaffected.
    """

    def __init__(self, lem: Any, **kwargs) -> None:
        super().__init__(**kwargs)
        self.lem = lem

    def call(self, inputs):
        return self.lem.next_share(inputs)


#: Compiled live steps of the most recently used models (id -> (model, step)); bounded, least recent evicted.
_LIVE_STEPS: "OrderedDict[int, tuple[Any, _LiveStep]]" = OrderedDict()
_LIVE_CACHE_SIZE = 4


def _live_step(model: Any, n_features: int | None = None) -> _LiveStep:
    """The compiled live step of ``model``: built on first use, cached for the last few models (sessions of the
    same model share one compiled function; nothing is attached to the model, so its saving is unaffected)."""
    hit = _LIVE_STEPS.get(id(model))
    if hit is not None and hit[0] is model:
        _LIVE_STEPS.move_to_end(id(model))
        return hit[1]
    if not model.built:
        n_features = N_OBSERVED + int(model.n_known_features) if n_features is None else int(n_features)
        model.build([(None, model.window_length, n_features), (None, 1), (None, 1)])
    step = _LiveStep(model, name=f"{model.name}_live_step")
    _LIVE_STEPS[id(model)] = (model, step)
    while len(_LIVE_STEPS) > _LIVE_CACHE_SIZE:
        _LIVE_STEPS.popitem(last=False)
    return step


def model_shares(model: Any, x: np.ndarray, step: np.ndarray, fills: np.ndarray, *, pad_to: int = 1) -> np.ndarray:
    """One compiled forward of the live step for a batch of sessions.

    Args:
        model: a LargeExecutionModel.
        x: ``(B, W, F)`` windows as known at each session's decision.
        step: ``(B,)`` the decision's bar of the horizon.
        fills: ``(B, H - 1)`` actual fills (fractions of the order) of the closed bars, zeros beyond.
        pad_to: pad the batch to at least this size (one compiled shape for a stream of varying batches); the
            batch is padded to a power of two in any case.

    Returns:
        ``(B, M, C)`` float64 shares of what remains, per order of the seed layout (M = order type x target,
        C = min-duration column).
    """
    n = x.shape[0]
    size = bucket_size(max(n, int(pad_to)))
    pad = size - n
    xs = np.concatenate([x, np.zeros((pad,) + x.shape[1:], x.dtype)]) if pad else x
    steps = np.r_[step, np.zeros(pad)].reshape(-1, 1).astype(np.float32)
    fl = np.concatenate([fills, np.zeros((pad, fills.shape[1]))]) if pad else fills
    out = _live_step(model, x.shape[-1]).predict_on_batch([xs.astype(np.float32), steps, fl.astype(np.float32)])
    out = np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float64)[:n]
    if not np.all(np.isfinite(out)):
        raise ValueError("model produced a non-finite proposal (check the model's weights and the bars)")
    return out




# --------------------------------------------------------------------------------------------------------
# Policies (baselines): the policy's plan, re-scaled on what actually remains
# --------------------------------------------------------------------------------------------------------
class _PolicyPlan:
    """Runs a :class:`~lems.policies.Policy` on a one-window :class:`WindowSet` at the order's origin.

    Horizon bars not yet closed carry the last known price and zero volume (a causal policy never reads them);
    their open times are the announced/inferred ones (the static volume curve needs their slots).
    """

    def __init__(self, policy: Any, history: pd.DataFrame, window: OnlineWindow, order: OrderSpec) -> None:
        self.policy, self.history, self.window, self.order = policy, history, window, order
        self._times: list[int] | None = None
        self._bars: pd.DataFrame | None = None

    def _calendar(self, times: list[int]) -> pd.DataFrame:
        """Calendar-enriched history + placeholder horizon bars at ``times`` (rebuilt when times change)."""
        if self._times != times:
            price = float(self.history["price"].iloc[-1])
            close = float(self.history["close"].iloc[-1])
            ahead = pd.DataFrame({"symbol": self.window.symbol, "timestamp": pd.to_datetime(np.array(times), utc=True),
                                  "open": close, "high": close, "low": close, "close": close, "volume": 0.0,
                                  "notional": 0.0, "notional_estimated": False, "price": price, "trades": np.nan})
            ext = pd.concat([self.history.loc[:, list(BAR_COLUMNS)], ahead], ignore_index=True)
            self._bars = add_calendar(ext, tz=self.window.tz, bar_minutes=self.window.bar_minutes)
            self._times = list(times)
        return self._bars

    def _windows(self, x: np.ndarray, times: list[int], prices: list[float], volumes: list[float]) -> WindowSet:
        """The one-window set at the origin: closed horizon bars' VWAPs and volumes, placeholders after."""
        h, ref = self.order.horizon, float(self.history["price"].iloc[-1])
        p, v = np.full((1, h), ref), np.zeros((1, h))
        p[0, :len(prices)], v[0, :len(volumes)] = prices, volumes
        y = np.stack([np.zeros((1, h)), np.ones((1, h))], axis=-1).astype(np.float32)
        utc = lambda t: pd.DatetimeIndex(pd.to_datetime(np.array([t], dtype=np.int64), utc=True))  # noqa: E731
        return WindowSet(X=x[None], y=y, origin=utc(times[0]), asset=np.array([self.window.symbol], dtype=object),
                         origin_index=np.array([len(self.history)]), reference_price=np.array([ref]), prices=p,
                         volumes=v, horizon_end=utc(times[-1]), lookback=self.window.lookback, n_ahead=h,
                         bars={self.window.symbol: self._calendar(times)})

    def plan(self, x: np.ndarray, times: list[int], prices: list[float], volumes: list[float]) -> np.ndarray:
        """The policy's allocations ``(H,)`` for this order, given the bars closed so far."""
        h, o = self.order.horizon, self.order
        out = np.asarray(self.policy.allocate(self._windows(x, times, prices, volumes), o.min_rate, o.max_rate),
                         dtype=np.float64)
        if out.shape != (1, h, h + 1, 4, 2) or not np.all(np.isfinite(out)):
            raise ValueError(f"policy returned allocations of shape {out.shape} (expected (1, {h}, {h + 1}, 4, 2), "
                             "finite)")
        return out[0, :, o.seed_column, o.order_type_index, o.target_index]


def _policy_share(plan: np.ndarray, step: int) -> float:
    """The plan's share of what remains at ``step`` (1 once the plan thinks it is done)."""
    left = 1.0 - float(plan[:step].sum())
    return 1.0 if left <= DONE_TOL else float(np.clip(plan[step] / left, 0.0, 1.0))
