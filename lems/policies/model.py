"""A trained model as a policy: :class:`ModelPolicy` runs a :class:`lems.models.LargeExecutionModel` (or any Keras
model with its inputs) on windows."""

from __future__ import annotations

from typing import Any

import numpy as np

from lems.data.windows import WindowSet
from lems.policies.base import _N_TARGETS, _N_TYPES, _rates

__all__ = ["ModelPolicy"]


class ModelPolicy:
    """A trained :class:`lems.models.LargeExecutionModel` (or any Keras model with its inputs) as a policy.

    Args:
        model: Keras model taking ``[X, min_rate (N, 1), max_rate (N, 1)]`` and returning
            ``(N, H, H+1, 4, 2)`` allocations.
        batch_size: Windows per forward pass.
        name: Label of the policy.
    """

    def __init__(self, model: Any, batch_size: int = 256, name: str = "model") -> None:
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        self.model, self.batch_size, self.name = model, int(batch_size), str(name)

    def allocate(self, windows: WindowSet, min_rate: Any = 0.0, max_rate: Any = 1.0) -> np.ndarray:
        """The model's allocations ``(N, H, H+1, 4, 2)`` as float64 (see :class:`~lems.policies.Policy`).

        Raises:
            ValueError: infeasible rates, a model whose output has the wrong shape, or non-finite output.
        """
        lo, hi = _rates(windows, min_rate, max_rate)
        n, horizon = len(windows), int(windows.n_ahead)
        shape = (n, horizon, horizon + 1, _N_TYPES, _N_TARGETS)
        if n == 0:
            return np.zeros(shape)
        x = np.asarray(windows.X, dtype=np.float32)
        out = self.model.predict([x, lo.astype(np.float32), hi.astype(np.float32)], batch_size=self.batch_size,
                                 verbose=0)
        out = np.asarray(out, dtype=np.float64)
        if out.shape != shape:
            raise ValueError(f"model output has shape {out.shape}, expected {shape} (check n_ahead)")
        if not np.all(np.isfinite(out)):
            raise ValueError("model output contains NaN or inf")
        return out

    def __repr__(self) -> str:
        return f"ModelPolicy(model={getattr(self.model, 'name', self.model)!r}, name={self.name!r})"
