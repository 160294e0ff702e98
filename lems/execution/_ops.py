"""Array-namespace helpers shared by the execution modules (private: import the public names from
:mod:`lems.execution`).

The arithmetic of :mod:`lems.execution` is written once against an array namespace: ``keras.ops`` for backend
tensors (JAX, PyTorch, TensorFlow: loss and metrics, differentiable) and ``numpy`` when every input is a numpy
array or a Python number (backtests, in float64, exact).
"""

from __future__ import annotations

import types
from typing import Any

import keras
import numpy as np


def _is_numpy_like(x: Any) -> bool:
    return isinstance(x, (np.ndarray, np.generic, float, int, bool))


def array_namespace(*arrays: Any) -> types.ModuleType:
    """``numpy`` when every argument is a numpy array or Python number, else ``keras.ops``."""
    if all(_is_numpy_like(a) for a in arrays if a is not None):
        return np
    return keras.ops


def _step_index(ops, horizon: int, ndim: int, axis: int, dtype):
    """Step index 0..H-1 shaped to broadcast along ``axis`` of an ``ndim``-dimensional array."""
    shape = [1] * ndim
    shape[axis % ndim] = horizon
    return _cast_like(ops, np.arange(horizon).reshape(shape), dtype)


def _cast_like(ops, value, ref):
    """``value`` as an array of the floating dtype of ``ref`` (an array or a dtype)."""
    dtype = getattr(ref, "dtype", ref)
    if ops is np:
        return np.asarray(value, dtype=np.result_type(dtype, np.float32))
    return ops.cast(value, dtype)


def _positive_finite(name: str, value: Any, allowed: str) -> float:
    """``value`` as a float, or ``ValueError`` naming ``name`` and its allowed range."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number in {allowed}, got {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be in {allowed}, got {value!r}")
    return float(value)


def _non_negative_finite(name: str, value: Any, allowed: str = "[0, inf)") -> float:
    """``value`` as a float >= 0, or ``ValueError`` naming ``name`` and its allowed range."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number in {allowed}, got {value!r}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be in {allowed}, got {value!r}")
    return float(value)

