"""A trained model's volume forecast used alone as a schedule: :class:`ForecastSchedule` (the dynamic VWAP of
:meth:`lems.models.LargeExecutionModel.forecast_shares`, without the learned heads)."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np

from lems.data.windows import WindowSet
from lems.policies.base import _rates, _vwap_share_schedule

__all__ = ["ForecastSchedule"]


class ForecastSchedule:
    """The model's dynamic volume forecast used alone as a schedule (a :class:`lems.policies.Policy`).

    At the open of bar ``s`` it trades the forecast share of what remains
    (:meth:`lems.models.LargeExecutionModel.forecast_shares`; the last bar takes what is left) for the VWAP order
    types of every column, and the uniform schedule for the TWAP ones: the dynamic VWAP without the learned heads.
    Limits apply through :func:`lems.execution.allocate_step`. Both targets get the same allocations.

    Args:
        model: A :class:`lems.models.LargeExecutionModel` (or any object with its ``forecast_shares(X)``, returning
            ``(B, H - 1)`` shares of what remains at decisions ``0 .. H-2``).
        batch_size: Windows per forward pass.
        name: Label of the policy.
    """

    def __init__(self, model: Any, batch_size: int = 512, name: str = "dynamic_forecast") -> None:
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.model, self.batch_size, self.name = model, int(batch_size), str(name)

    def shares(self, windows: WindowSet) -> np.ndarray:
        """``(N, H)`` float64 forecast shares of what remains at every decision (1 at the last bar)."""
        x = np.asarray(windows.X, dtype=np.float32)
        parts = [np.asarray(keras.ops.convert_to_numpy(self.model.forecast_shares(x[i:i + self.batch_size])),
                            np.float64) for i in range(0, len(x), self.batch_size)]
        shares = np.concatenate(parts) if parts else np.zeros((0, int(windows.n_ahead) - 1))
        return np.concatenate([shares, np.ones((len(shares), 1))], axis=1)

    def allocate(self, windows: WindowSet, min_rate: Any = 0.0, max_rate: Any = 1.0) -> np.ndarray:
        """Allocations ``(N, H, H+1, 4, 2)`` float64 (see :class:`~lems.policies.Policy`).

        Raises:
            ValueError: infeasible rates (see :func:`lems.execution.check_rates`).
        """
        lo, hi = _rates(windows, min_rate, max_rate)
        return _vwap_share_schedule(self.shares(windows), lo, hi)

    def __repr__(self) -> str:
        return f"ForecastSchedule(model={getattr(self.model, 'name', self.model)!r}, name={self.name!r})"
