"""Kolmogorov–Arnold dense layer with B-spline or Gaussian radial-basis expansions.

`y = base_activation(x) @ W_base + basis(x) @ W_spline (+ b)` where `basis(x)` expands
every input feature into `G` univariate basis functions on a fixed uniform grid:

* `"bspline"`: B-splines of order `k = spline_order` on `grid_size` intervals of
  `grid_range`, the knot vector extended by `k` knots on each side
  (`G = grid_size + k` functions, computed by the Cox–de Boor recursion);
* `"rbf"`: FastKAN-style Gaussians `exp(-((x - c_g) / h)^2)` on `G = grid_size`
  centres spread evenly over `grid_range`, `h` the centre spacing.

`W_spline` is shaped `(d_in * G, units)`, so the spline term is a single matmul.
Only `keras.ops` are used: the arithmetic is the same on every backend.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from lems.layers.registry import check_positive_int, register

BASES = ("rbf", "bspline")


def _check_grid(basis: str, grid_size: int, spline_order: int, grid_range) -> tuple[float, float]:
    if basis not in BASES:
        raise ValueError(f"`basis` must be one of {BASES}, got {basis!r}.")
    if isinstance(spline_order, bool) or not isinstance(spline_order, int) or spline_order < 0:
        raise ValueError(f"`spline_order` must be an int >= 0, got {spline_order!r}.")
    if basis == "rbf" and grid_size < 2:
        raise ValueError(f"`grid_size` must be >= 2 for the rbf basis, got {grid_size!r}.")
    try:
        low, high = (float(v) for v in grid_range)
    except (TypeError, ValueError) as err:
        raise ValueError(f"`grid_range` must be a pair (low, high), got {grid_range!r}.") from err
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"`grid_range` must satisfy low < high (finite), got {grid_range!r}.")
    return low, high


@register
class KANLinear(keras.layers.Layer):
    """Kolmogorov–Arnold linear layer (KAN, Liu et al. 2024; FastKAN radial basis).

    Args:
        units: Output width.
        basis: `"rbf"` (Gaussian radial basis, cheap) or `"bspline"`.
        grid_size: Number of grid intervals (bspline) or of centres (rbf).
        spline_order: B-spline order `k` (ignored by the rbf basis).
        grid_range: `(low, high)` range of inputs covered by the grid; inputs
            outside fall back on the base term only (bspline) or on decaying
            Gaussian tails (rbf).
        base_activation: Activation of the residual base term (SiLU in KAN).
        use_bias: Whether to add a bias to the output.
        kernel_initializer: Initializer of `W_base`, shape `(d_in, units)`.
        spline_initializer: Initializer of `W_spline`, shape `(d_in * G, units)`.
        bias_initializer: Initializer of the bias.
        **kwargs: Base layer arguments.

    Input shape: `(..., d_in)`. Output shape: `(..., units)`.
    """

    def __init__(
        self,
        units: int,
        basis: str = "rbf",
        grid_size: int = 5,
        spline_order: int = 3,
        grid_range=(-2.0, 2.0),
        base_activation="silu",
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        spline_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.grid_size = check_positive_int("grid_size", grid_size)
        self.grid_range = _check_grid(basis, grid_size, spline_order, grid_range)
        self.basis = basis
        self.spline_order = int(spline_order)
        self.base_activation = keras.activations.get(base_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.spline_initializer = keras.initializers.get(spline_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    @property
    def num_basis(self) -> int:
        """Number `G` of basis functions per input feature."""
        if self.basis == "bspline":
            return self.grid_size + self.spline_order
        return self.grid_size

    def _grid(self) -> np.ndarray:
        """Knots (bspline, extended) or centres (rbf) as a float64 numpy vector."""
        low, high = self.grid_range
        if self.basis == "rbf":
            return np.linspace(low, high, self.grid_size)
        step = (high - low) / self.grid_size
        k = self.spline_order
        return low + step * np.arange(-k, self.grid_size + k + 1, dtype=np.float64)

    def build(self, input_shape) -> None:
        d_in = input_shape[-1]
        if d_in is None:
            raise ValueError("KANLinear needs a known input width (last axis).")
        self.base_kernel = self.add_weight(
            name="base_kernel", shape=(d_in, self.units), initializer=self.kernel_initializer
        )
        self.spline_kernel = self.add_weight(
            name="spline_kernel",
            shape=(d_in * self.num_basis, self.units),
            initializer=self.spline_initializer,
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(name="bias", shape=(self.units,), initializer=self.bias_initializer)

    def basis_functions(self, x):
        """Expands every feature into its `G` basis values: `(..., d_in) -> (..., d_in, G)`."""
        grid = ops.cast(ops.convert_to_tensor(self._grid().astype("float32")), x.dtype)
        x = ops.expand_dims(x, -1)
        if self.basis == "rbf":
            spacing = (self.grid_range[1] - self.grid_range[0]) / (self.grid_size - 1)
            return ops.exp(-ops.square((x - grid) / spacing))
        step = (self.grid_range[1] - self.grid_range[0]) / self.grid_size
        # Order 0: indicator of each knot interval [t_i, t_{i+1}).
        values = ops.cast(ops.logical_and(x >= grid[:-1], x < grid[1:]), x.dtype)
        for p in range(1, self.spline_order + 1):
            # Uniform knots: both Cox–de Boor denominators equal p * step.
            left = (x - grid[: -(p + 1)]) / (p * step)
            right = (grid[p + 1 :] - x) / (p * step)
            values = left * values[..., :-1] + right * values[..., 1:]
        return values

    def call(self, inputs):
        d_in = inputs.shape[-1]
        basis = self.basis_functions(inputs)
        basis = ops.reshape(basis, tuple(ops.shape(inputs)[:-1]) + (d_in * self.num_basis,))
        outputs = ops.matmul(self.base_activation(inputs), self.base_kernel)
        outputs = outputs + ops.matmul(basis, self.spline_kernel)
        if self.bias is not None:
            outputs = outputs + self.bias
        return outputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "basis": self.basis,
                "grid_size": self.grid_size,
                "spline_order": self.spline_order,
                "grid_range": list(self.grid_range),
                "base_activation": keras.activations.serialize(self.base_activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "spline_initializer": keras.initializers.serialize(self.spline_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config


__all__ = ["KANLinear"]
