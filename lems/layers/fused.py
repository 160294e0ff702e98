"""FusedMLP: many independent MLPs (models x fused branches) computed with one einsum per layer."""

from __future__ import annotations

import keras
from keras import ops

from lems.layers.constraints import FusedGlorotUniform
from lems.layers.registry import check_positive_int, fresh_initializer, register


@register
class FusedMLP(keras.layers.Layer):
    """`n_models * n_fused` independent MLPs evaluated together.

    Layer `l` holds a kernel `(n_models, n_fused, d_in, d_out)` and a bias
    `(n_models, n_fused, d_out)`; it is applied to all branches with one einsum.
    Each branch's kernel is an independent draw (see `FusedGlorotUniform`).

    Args:
        hidden_dims: Widths of the hidden layers (may be empty).
        output_dim: Width of each branch's output.
        n_models: Number of models (first branch axis).
        n_fused: Number of fused heads per model (second branch axis).
        activation: Activation of the hidden layers.
        output_activation: Activation of the output layer (None: linear).
        use_bias: Whether layers have biases.
        kernel_initializer: Kernel initializer; default `FusedGlorotUniform()`.
            Every layer gets its own instance (an int seed is offset per layer).
        bias_initializer: Bias initializer.
        output_kernel_initializer: Initializer of the last layer's kernel (default: `kernel_initializer`);
            "zeros" makes the MLP start silent.
        **kwargs: Base layer arguments.

    Input shape: `(batch, n_models, n_fused, D)` (one input per branch) or
    `(batch, D)` (shared by every branch).
    Output shape: `(batch, n_models, n_fused, output_dim)`.
    """

    def __init__(
        self,
        hidden_dims,
        output_dim: int,
        n_models: int,
        n_fused: int,
        activation="relu",
        output_activation=None,
        use_bias: bool = True,
        kernel_initializer=None,
        bias_initializer="zeros",
        output_kernel_initializer=None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(hidden_dims, int) or not isinstance(hidden_dims, (list, tuple)):
            raise ValueError(f"`hidden_dims` must be a list of ints, got {hidden_dims!r}.")
        self.hidden_dims = [check_positive_int("hidden_dims[...]", d) for d in hidden_dims]
        self.output_dim = check_positive_int("output_dim", output_dim)
        self.n_models = check_positive_int("n_models", n_models)
        self.n_fused = check_positive_int("n_fused", n_fused)
        self.activation = keras.activations.get(activation)
        self.output_activation = keras.activations.get(output_activation)
        self.use_bias = bool(use_bias)
        if kernel_initializer is None:
            kernel_initializer = FusedGlorotUniform()
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.output_kernel_initializer = (
            None if output_kernel_initializer is None else keras.initializers.get(output_kernel_initializer)
        )

    def _input_kind(self, input_shape) -> str:
        shape = tuple(input_shape)
        if len(shape) == 2:
            return "shared"
        if len(shape) == 4 and shape[1] in (None, self.n_models) and shape[2] in (None, self.n_fused):
            return "branched"
        raise ValueError(
            f"FusedMLP takes (batch, D) or (batch, {self.n_models}, {self.n_fused}, D), got {shape!r}."
        )

    def build(self, input_shape) -> None:
        self._input_kind(input_shape)
        if input_shape[-1] is None:
            raise ValueError("FusedMLP needs a known input width (last axis).")
        dims = [int(input_shape[-1])] + self.hidden_dims + [self.output_dim]
        branches = (self.n_models, self.n_fused)
        self.kernels, self.biases = [], []
        for index, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:])):
            self.kernels.append(
                self.add_weight(
                    name=f"kernel_{index}",
                    shape=branches + (d_in, d_out),
                    initializer=fresh_initializer(
                        self.output_kernel_initializer
                        if self.output_kernel_initializer is not None and index == len(dims) - 2
                        else self.kernel_initializer,
                        index,
                    ),
                )
            )
            if self.use_bias:
                self.biases.append(
                    self.add_weight(
                        name=f"bias_{index}",
                        shape=branches + (d_out,),
                        initializer=fresh_initializer(self.bias_initializer, index),
                    )
                )

    def call(self, inputs):
        shared = len(inputs.shape) == 2
        x = inputs
        last = len(self.kernels) - 1
        for index, kernel in enumerate(self.kernels):
            equation = "bd,mndo->bmno" if (shared and index == 0) else "bmnd,mndo->bmno"
            x = ops.einsum(equation, x, kernel)
            if self.use_bias:
                x = x + self.biases[index]
            x = self.output_activation(x) if index == last else self.activation(x)
        return x

    def compute_output_shape(self, input_shape):
        self._input_kind(input_shape)
        return (input_shape[0], self.n_models, self.n_fused, self.output_dim)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "hidden_dims": list(self.hidden_dims),
                "output_dim": self.output_dim,
                "n_models": self.n_models,
                "n_fused": self.n_fused,
                "activation": keras.activations.serialize(self.activation),
                "output_activation": keras.activations.serialize(self.output_activation),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "output_kernel_initializer": (
                    None
                    if self.output_kernel_initializer is None
                    else keras.initializers.serialize(self.output_kernel_initializer)
                ),
            }
        )
        return config


__all__ = ["FusedMLP"]
