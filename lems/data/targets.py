"""Training and scoring targets of windows: the compact seed targets, the cost inputs of a costed execution and the
extended targets of the cost-aware loss (data stage: imports :mod:`lems.execution` and :mod:`lems.data` only).

Every number is causal except what a target is by definition (the horizon's realised volumes and prices): the
volatility, spread and expected volume come from each window's lookback.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from lems.data.estimates import arrival_prices, expected_bar_volume, lookback_half_spread, lookback_volatility
from lems.data.windows import WindowSet
from lems.execution import ORDER_TYPES, TARGETS, ExecutionConditions, check_participation_cap

__all__ = ["ExecutionInputs", "cost_targets", "execution_inputs", "seed_targets", "windows_per_chunk"]


def windows_per_chunk(horizon: int, cells: int, cap: int | None = None) -> int:
    """Windows whose seed-layout arrays ``(n, H, H+1, 4, 2)`` hold at most ``cells`` cells (at least 1; at most
    ``cap`` when given): the chunk size that keeps long horizons within a memory bound."""
    per_window = horizon * (horizon + 1) * len(ORDER_TYPES) * len(TARGETS)
    chunk = max(1, cells // per_window)
    return chunk if cap is None else min(chunk, cap)


def seed_targets(windows: WindowSet) -> np.ndarray:
    """Compact targets ``(N, H, 2)`` float64: [volume share, price / reference price].

    The definition of ``windows.y``, rebuilt in float64 from the raw horizon ``prices``, ``volumes`` and
    ``reference_price`` (no float32 rounding in the backtest).

    Raises:
        ValueError: shapes inconsistent with ``windows.y``, non-finite or non-positive prices.
    """
    n, horizon = len(windows), int(windows.n_ahead)
    prices = np.asarray(windows.prices, dtype=np.float64)
    volumes = np.asarray(windows.volumes, dtype=np.float64)
    ref = np.asarray(windows.reference_price, dtype=np.float64)
    if prices.shape != (n, horizon) or volumes.shape != (n, horizon) or ref.shape != (n,):
        raise ValueError(f"windows.prices/volumes must be ({n}, {horizon}) and reference_price ({n},), got "
                         f"{prices.shape}, {volumes.shape}, {ref.shape}")
    if not (np.all(np.isfinite(prices)) and np.all(prices > 0) and np.all(np.isfinite(ref)) and np.all(ref > 0)):
        raise ValueError("windows.prices and windows.reference_price must be finite and positive")
    if not (np.all(np.isfinite(volumes)) and np.all(volumes >= 0)):
        raise ValueError("windows.volumes must be finite and non-negative")
    total = volumes.sum(axis=1, keepdims=True)
    share = volumes / np.where(total > 0, total, 1.0)
    return np.stack([share, prices / ref[:, None]], axis=-1)


class ExecutionInputs(NamedTuple):
    """Per-window inputs of a costed execution, all causal except the realised horizon volume (``(N,)``).

    Attributes:
        quantity: order quantity [units] (:meth:`lems.execution.OrderSize.quantity_for`).
        order_participation: quantity over the EXPECTED horizon volume (lookback mean bar volume x H).
        realised_participation: quantity over the REALISED horizon volume (what the fills meet).
        sigma: lookback volatility per bar [fraction] (:func:`lems.baselines.lookback_volatility`), or ``None``
            when the cost model does not need it.
        half_spread: lookback Corwin-Schultz half-spread [fraction] (:func:`lems.baselines.lookback_half_spread`),
            or ``None`` when the cost model does not need it.
        arrival: arrival price [quote currency] (:func:`lems.baselines.arrival_prices`).
    """

    quantity: np.ndarray
    order_participation: np.ndarray
    realised_participation: np.ndarray
    sigma: np.ndarray | None
    half_spread: np.ndarray | None
    arrival: np.ndarray


def execution_inputs(windows: WindowSet, conditions: ExecutionConditions) -> ExecutionInputs:
    """Size, volatility, spread and arrival price of each window's order under ``conditions``.

    Raises:
        ValueError: a cap that cannot complete some window's order in expectation when
            ``conditions.require_completion``; bars missing what an estimate needs.
    """
    if not isinstance(conditions, ExecutionConditions):
        raise ValueError(f"conditions must be an lems.execution.ExecutionConditions, got {type(conditions).__name__}")
    horizon = int(windows.n_ahead)
    expected = expected_bar_volume(windows) * horizon if len(windows) else np.zeros(0)
    quantity = conditions.size.quantity_for(expected)
    participation = quantity / np.where(expected > 0, expected, 1.0)
    check_participation_cap(conditions.max_participation, participation,
                            require_completion=conditions.require_completion)
    realised_volume = np.asarray(windows.volumes, dtype=np.float64).sum(axis=1)
    if np.any(realised_volume <= 0):
        raise ValueError("every window needs traded volume in its horizon")
    model = conditions.cost_model
    return ExecutionInputs(
        quantity=quantity,
        order_participation=participation,
        realised_participation=quantity / realised_volume,
        sigma=lookback_volatility(windows) if model.needs_sigma else None,
        half_spread=lookback_half_spread(windows) if model.needs_half_spread else None,
        arrival=arrival_prices(windows, conditions.arrival),
    )


def cost_targets(windows: WindowSet, *, half_spread: float | None = None) -> np.ndarray:
    """Extended targets ``(N, H, 5)`` float64 for a cost-aware loss (:func:`lems.loss.make_lem_loss`).

    Channels :data:`lems.loss.TARGET_CHANNELS`: the compact two of :func:`seed_targets` (volume share, price /
    reference price), then per window, repeated on every step: ``sigma`` (:func:`lems.baselines.lookback_volatility`,
    fraction per bar), ``half_spread`` (fraction of price) and ``volume_ratio`` (expected horizon volume,
    :func:`lems.baselines.expected_bar_volume` x H, over the realised horizon volume). The same causal estimates as
    :func:`execution_inputs`, so that the loss costs a window as the backtest does.

    Args:
        windows: the windows.
        half_spread: a fixed half-spread [fraction of price, >= 0] for every window; ``None``: the Corwin-Schultz
            estimate over each lookback (:func:`lems.baselines.lookback_half_spread`; needs ``high``/``low``).

    Raises:
        ValueError: a negative or non-finite ``half_spread``, a window without volume in its lookback or horizon,
            anything :func:`seed_targets` rejects.
    """
    y = seed_targets(windows)
    n, horizon = y.shape[0], y.shape[1]
    if half_spread is not None and not (np.isfinite(half_spread) and half_spread >= 0):
        raise ValueError(f"half_spread must be a fraction of price in [0, inf) or None, got {half_spread!r}")
    if n == 0:
        return np.zeros((0, horizon, 5))
    realised = np.asarray(windows.volumes, dtype=np.float64).sum(axis=1)
    if np.any(realised <= 0):
        raise ValueError("every window needs traded volume in its horizon")
    spread = lookback_half_spread(windows) if half_spread is None else np.full(n, float(half_spread))
    extra = np.stack([lookback_volatility(windows), spread, expected_bar_volume(windows) * horizon / realised], -1)
    return np.concatenate([y, np.broadcast_to(extra[:, None, :], (n, horizon, extra.shape[-1]))], axis=-1)
