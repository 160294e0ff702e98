"""The seed layout ``(batch, H, H + 1, 4, 2)`` = step × min-duration column × order type × target: its per-column
constants and the compact layouts that score a subset of its columns (:func:`seed_columns`).
"""

from __future__ import annotations

import contextlib
from typing import Any, NamedTuple

import numpy as np

from lems.execution._ops import _cast_like

def seed_min_durations(horizon: int) -> np.ndarray:
    """Min duration d of each column of the seed layout: ``1 .. H`` for the flexible columns, ``H`` last."""
    return np.concatenate([np.arange(1, horizon + 1), [horizon]]).astype(np.float32)


def _seed_axes(horizon: int, dtype) -> dict[str, np.ndarray]:
    """Per-column / order-type / target constants shaped to broadcast on ``(B, H, H+1, 4, 2)``."""
    return {
        "min_duration": seed_min_durations(horizon).astype(dtype).reshape(1, 1, horizon + 1, 1, 1),
        "notional": np.array([0.0, 1.0], dtype=dtype).reshape(1, 1, 1, 1, 2),
        "side": np.array([1.0, 1.0, -1.0, -1.0], dtype=dtype).reshape(1, 1, 1, 4, 1),
        "is_vwap": np.array([1.0, 0.0, 1.0, 0.0], dtype=dtype).reshape(1, 1, 1, 4, 1),
    }


class SeedColumns(NamedTuple):
    """A subset of the seed layout's ``H + 1`` min-duration columns: a *compact layout* ``(B, H, K + 1, 4, 2)``.

    Training at long horizons scores a stratified sample of the flexible columns (and always the fixed one)
    instead of all ``H + 1`` (:meth:`lems.models.LargeExecutionModel.sample_columns`); every function of this
    module that reads the seed layout accepts the compact one while :func:`seed_columns` says which columns it
    holds.

    Attributes:
        index: ``(K + 1,)`` int column indices into ``0 .. H`` (flexible ones first, the fixed column ``H`` last).
        weight: ``(K + 1,)`` float: how many columns of the full layout each one stands for (the size of its
            stratum; 1 for the fixed column): a column-weighted mean over the compact layout is an unbiased
            estimate of the plain mean over the full one.
    """

    index: Any
    weight: Any


#: The stack of active :func:`seed_columns` blocks (innermost last). Module state: this list is the only copy
#: (``lems.execution._ACTIVE_COLUMNS`` is the same object) and is only mutated in place, never rebound.
_ACTIVE_COLUMNS: list[SeedColumns] = []


@contextlib.contextmanager
def seed_columns(index, weight=None):
    """Within the block, a seed-layout array with fewer than ``H + 1`` columns holds the columns ``index``.

    Args:
        index: ``(K + 1,)`` column indices (the fixed column ``H`` last); a backend tensor or a numpy array.
        weight: ``(K + 1,)`` stratum sizes (see :class:`SeedColumns`); default ones.
    """
    if weight is None:
        weight = np.ones(tuple(index.shape), np.float32)
    _ACTIVE_COLUMNS.append(SeedColumns(index, weight))
    try:
        yield _ACTIVE_COLUMNS[-1]
    finally:
        _ACTIVE_COLUMNS.pop()


def layout_columns(horizon: int, n_columns: int) -> SeedColumns | None:
    """The columns of a seed-layout array with ``n_columns`` columns: ``None`` for the full layout (``H + 1``).

    Raises:
        ValueError: a compact layout outside a matching :func:`seed_columns` block.
    """
    if n_columns == horizon + 1:
        return None
    if not _ACTIVE_COLUMNS or _ACTIVE_COLUMNS[-1].index.shape[0] != n_columns:
        raise ValueError(f"allocations must be (batch, H, H+1, 4, 2) = (batch, {horizon}, {horizon + 1}, 4, 2), got "
                         f"{n_columns} columns (a compact layout needs lems.execution.seed_columns to say which)")
    return _ACTIVE_COLUMNS[-1]


def column_weights(ops, horizon: int, n_columns: int, ref):
    """``(C,)`` weight of each column of a compact seed-layout array, as ``ref``'s dtype; ``None`` for the full
    layout (every column weighs 1: plain means apply)."""
    columns = layout_columns(horizon, n_columns)
    return None if columns is None else _cast_like(ops, columns.weight, ref)


def _seed_constants(ops, horizon: int, allocations) -> dict[str, Any]:
    """:func:`_seed_axes` as arrays like ``allocations`` (full or compact layout: the min durations of its
    columns)."""
    consts = {k: _cast_like(ops, v, allocations) for k, v in _seed_axes(horizon, np.float32).items()}
    columns = layout_columns(horizon, allocations.shape[2])
    if columns is not None:
        consts["min_duration"] = ops.take(consts["min_duration"], columns.index, axis=2)
    return consts


def _seed_targets_like(ops, y, allocations):
    """Targets for ``allocations``: a tiled ``y`` keeps the columns of a compact layout (compact ``y`` as is)."""
    if len(y.shape) != 5 or y.shape[2] == allocations.shape[2]:
        return y
    columns = layout_columns(allocations.shape[1], allocations.shape[2])
    return y if columns is None else ops.take(y, columns.index, axis=2)

