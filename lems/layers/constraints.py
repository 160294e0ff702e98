"""Weight constraints and initializers shared by the lems layers.

* `PositiveSumToOneConstraint`: projects a weight onto the simplex along an axis
  (allocation curves: fractions of the order per bar that sum to one).
* `ClipConstraint`: element-wise clipping to `[min_value, max_value]`.
* `EqualInitializer`: fills a weight with `1 / n` along an axis (a uniform,
  TWAP-like allocation curve when the axis is the bar axis).
* `FusedGlorotUniform`: Glorot-uniform for stacked kernels shaped
  `(..., d_in, d_out)`; every leading (branch) index gets an independent draw and
  the fans are those of a single branch (`d_in`, `d_out`).
"""

from __future__ import annotations

import math
import random as _py_random
from typing import Any

import keras
from keras import ops

from lems.layers.registry import register


def _check_int_axis(axis: Any) -> int:
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise ValueError(f"`axis` must be an int, got {axis!r}.")
    return axis


@register
class PositiveSumToOneConstraint(keras.constraints.Constraint):
    """Keeps a weight positive and summing to one along `axis`.

    The weight is clipped to `>= epsilon` and then divided by its sum along
    `axis`, so every slice along `axis` is a valid allocation (fractions of the
    order, summing to 1).

    Args:
        axis: Axis along which the weight must sum to one.
        epsilon: Floor applied before renormalising (fraction of the order);
            keeps every entry strictly positive and the division safe.
    """

    def __init__(self, axis: int = -1, epsilon: float = 1e-7) -> None:
        self.axis = _check_int_axis(axis)
        if not epsilon > 0:
            raise ValueError(f"`epsilon` must be > 0, got {epsilon!r}.")
        self.epsilon = float(epsilon)

    def __call__(self, w):
        w = ops.maximum(w, ops.cast(self.epsilon, w.dtype))
        return w / ops.sum(w, axis=self.axis, keepdims=True)

    def get_config(self) -> dict:
        return {"axis": self.axis, "epsilon": self.epsilon}


@register
class ClipConstraint(keras.constraints.Constraint):
    """Clips every entry of a weight to `[min_value, max_value]`.

    Args:
        min_value: Lower bound (same unit as the weight).
        max_value: Upper bound; must be `>= min_value`.
    """

    def __init__(self, min_value: float, max_value: float) -> None:
        if not min_value <= max_value:
            raise ValueError(
                f"`min_value` ({min_value!r}) must be <= `max_value` ({max_value!r})."
            )
        self.min_value = float(min_value)
        self.max_value = float(max_value)

    def __call__(self, w):
        return ops.clip(w, self.min_value, self.max_value)

    def get_config(self) -> dict:
        return {"min_value": self.min_value, "max_value": self.max_value}


@register
class EqualInitializer(keras.initializers.Initializer):
    """Fills a weight with `1 / shape[axis]` (an equal split along `axis`).

    Args:
        axis: Axis whose length `n` sets the value `1 / n`; slices along it sum to 1.
    """

    def __init__(self, axis: int = -1) -> None:
        self.axis = _check_int_axis(axis)

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        if not shape:
            raise ValueError("EqualInitializer needs a weight of rank >= 1.")
        n = shape[self.axis]
        return ops.full(shape, 1.0 / n, dtype=dtype or "float32")

    def get_config(self) -> dict:
        return {"axis": self.axis}


@register
class FusedGlorotUniform(keras.initializers.Initializer):
    """Glorot-uniform initializer for stacked (fused) kernels.

    For a kernel shaped `(n_models, n_fused, d_in, d_out)` (any number of leading
    branch axes), values are drawn i.i.d. from `U(-l, l)` with
    `l = sqrt(6 / (d_in + d_out))`: each branch gets its own independent draw with
    the scale of a single `(d_in, d_out)` Dense kernel. (Keras' own Glorot would
    fold the branch axes into the fans, like a convolution's receptive field, and
    shrink the scale.)

    Args:
        seed: Optional int for reproducible draws. When `None`, a seed is drawn
            once at construction (the Keras convention: one instance returns the
            same values on every call).
    """

    def __init__(self, seed: int | None = None) -> None:
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"`seed` must be an int or None, got {seed!r}.")
        self.seed = seed
        self._seed = seed if seed is not None else _py_random.randint(1, 10**9)

    def __call__(self, shape, dtype=None):
        shape = tuple(shape)
        if len(shape) < 2:
            raise ValueError(f"FusedGlorotUniform needs rank >= 2, got shape {shape}.")
        limit = math.sqrt(6.0 / max(1.0, float(shape[-2] + shape[-1])))
        return keras.random.uniform(
            shape, minval=-limit, maxval=limit, dtype=dtype, seed=self._seed
        )

    def get_config(self) -> dict:
        return {"seed": self.seed}


__all__ = [
    "ClipConstraint",
    "EqualInitializer",
    "FusedGlorotUniform",
    "PositiveSumToOneConstraint",
]
