"""Live execution: a bar-by-bar :class:`ExecutionSession` that a trading system can drive.

A session executes ONE parent order (an :class:`~lems.execution.OrderSpec` plus its total size in the order's
units: shares/coins for a quantity target, quote currency for a notional target) on one symbol, with a trained
:class:`~lems.models.LargeExecutionModel` (or any :class:`~lems.policies.Policy`):

.. code-block:: python

    session = ExecutionSession(model, order, size=50_000, history=bars_before_the_order)
    while not session.ended:
        if not session.complete:
            child = session.next_allocation()          # the child order for the coming bar
            ...                                         # send child.units to the market
        session.on_bar_close(bar, filled_units=done)   # the realised bar and the actual fill
    result = session.outcome()                         # lems.execution.execution_outcome

Information (docs/execution.md §3): the decision for horizon bar ``s`` builds the model's window ``X`` exactly as
:func:`lems.data.windows.make_windows` would for the order's origin (:class:`lems.data.online.OnlineWindow`: same
features, same per-window normalisation from the lookback only, same causal seasonal profile), with the bars not
yet closed left as zeros, and the known-ahead features of the coming bar from its open time (and the static volume
curve from the open times of the horizon's bars: inferred on 24/7 markets, ``horizon_times`` from the exchange
calendar on session markets). The decoder's own state (remaining fraction, own achieved price) is fed the ACTUAL
fills, through the decoder's per-step API (:meth:`lems.layers.decoder.AllocationDecoder.step_share`), so a session
replayed with exact fills gives the model's batch allocations, and a session whose fills differ re-plans on what
really remains.

Limits (docs/execution.md §2): every child order goes through :func:`lems.execution.allocate_step` with the actual
remaining fraction and bars left (forced catch-up when behind), and is never above ``max_rate`` nor above the
remaining. Fills are valued at the bar VWAP (docs/execution.md §1).

Modules: :mod:`~lems.live.session` (:class:`ExecutionSession`, save and restore), :mod:`~lems.live.replay`
(:func:`schedule`: many orders on historical bars); the decision drivers (a model's compiled step, a policy's
plan) live in ``lems.live._plan``.
"""

from __future__ import annotations

from lems.data.online import OnlineWindow as _Window  # the live window (data stage), under its old private name
from lems.live._common import (
    _FORMAT_VERSION,
    _NS_PER_MINUTE,
    _READABLE_VERSIONS,
    DEFAULT_POLICY_LOOKBACK,
    DONE_TOL,
    DUST_TOL,
    FILL_TOL,
    ChildOrder,
    SessionError,
    _finite,
    _is_model,
    _to_ns,
    _ts,
    _unwrap,
)
from lems.live._plan import (
    _LIVE_CACHE_SIZE,
    _LIVE_STEPS,  # module state: the same cache object as lems.live._plan's
    _live_step,
    _LiveStep,
    _policy_share,
    _PolicyPlan,
    model_shares,
)
from lems.live.replay import (
    _ORDER_DEFAULTS,
    _bar_at,
    _batch_shares,
    _order_rows,
    _replay,
    _replay_times,
    _symbol_calendars,
    schedule,
)
from lems.live.session import ExecutionSession, _frame_from_dict, _frame_to_dict, _Request

__all__ = ["ChildOrder", "ExecutionSession", "SessionError", "model_shares", "schedule"]
