"""Variable selection network: soft attention over input variables (TFT style, cheap)."""

from __future__ import annotations

import keras
from keras import ops

from lems.layers.grn import GRN
from lems.layers.registry import (
    check_positive_int,
    check_rate,
    fresh_initializer,
    register,
)


@register
class VariableSelectionNetwork(keras.layers.Layer):
    """Weights `F` embedded variables with softmax scores and sums them.

    Selection weights `w = softmax(GRN(flatten(x)))` over the `F` variables are
    computed by one GRN on the flattened `(F * E)` input (hidden width
    `num_hidden`, output width `F`). Each variable is transformed separately and
    the output is `sum_f w_f * transformed_f`.

    The per-variable transform is cheap by default: an affine map `E -> num_hidden`
    per variable, with all `F` maps stacked into one kernel `(F, E, num_hidden)` and
    applied by a single einsum. With `per_variable_grn=True` each variable instead
    goes through its own small GRN (hidden width `per_variable_units`), still
    computed for all variables at once with stacked weights and einsums.

    Everything acts within a bar, so the layer is causal by construction.

    Args:
        num_hidden: Output width `H`.
        dropout: Dropout rate inside the GRNs, in `[0, 1)`.
        activation: Activation of the GRNs.
        per_variable_grn: Use a small GRN per variable instead of the affine map.
        per_variable_units: Hidden width of the per-variable GRNs.
        return_weights: Also return the selection weights `(batch, bars, F)`.
        kernel_initializer: Initializer of every kernel.
        bias_initializer: Initializer of every bias.
        **kwargs: Base layer arguments.

    Input shape: `(batch, bars, F, E)` (any leading axes). Output shape:
    `(batch, bars, num_hidden)`, or `[that, (batch, bars, F)]` with `return_weights`.
    """

    def __init__(
        self,
        num_hidden: int,
        dropout: float = 0.0,
        activation="elu",
        per_variable_grn: bool = False,
        per_variable_units: int = 16,
        return_weights: bool = False,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.num_hidden = check_positive_int("num_hidden", num_hidden)
        self.dropout = check_rate("dropout", dropout)
        self.activation = keras.activations.get(activation)
        self.per_variable_grn = bool(per_variable_grn)
        self.per_variable_units = check_positive_int("per_variable_units", per_variable_units)
        self.return_weights = bool(return_weights)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def _stacked_kernel(self, name: str, shape: tuple, offset: int):
        """A per-variable kernel `(F, d_in, d_out)`, each variable's slice drawn separately at Dense scale."""

        def initializer(full_shape, dtype=None):
            slices = [
                fresh_initializer(self.kernel_initializer, 100 * offset + f)(
                    tuple(full_shape[1:]), dtype=dtype
                )
                for f in range(full_shape[0])
            ]
            return ops.stack(slices)

        return self.add_weight(name=name, shape=shape, initializer=initializer)

    def _stacked_bias(self, name: str, shape: tuple, offset: int):
        initializer = fresh_initializer(self.bias_initializer, offset)
        return self.add_weight(name=name, shape=shape, initializer=initializer)

    def build(self, input_shape) -> None:
        if len(input_shape) < 3 or input_shape[-1] is None or input_shape[-2] is None:
            raise ValueError(
                f"VariableSelectionNetwork needs input (..., F, E) with known F and E, got {input_shape!r}."
            )
        n_var, n_emb = int(input_shape[-2]), int(input_shape[-1])
        self.selection_grn = GRN(
            self.num_hidden,
            dropout=self.dropout,
            activation=self.activation,
            output_units=n_var,
            kernel_initializer=fresh_initializer(self.kernel_initializer),
            bias_initializer=fresh_initializer(self.bias_initializer),
            dtype=self.dtype_policy,
            name="selection_grn",
        )
        self.selection_grn.build(tuple(input_shape[:-2]) + (n_var * n_emb,))
        h = self.num_hidden
        if not self.per_variable_grn:
            self.kernel = self._stacked_kernel("kernel", (n_var, n_emb, h), 0)
            self.bias = self._stacked_bias("bias", (n_var, h), 0)
            return
        w = self.per_variable_units
        self.hidden_kernel = self._stacked_kernel("hidden_kernel", (n_var, n_emb, w), 1)
        self.hidden_bias = self._stacked_bias("hidden_bias", (n_var, w), 1)
        self.intermediate_kernel = self._stacked_kernel("intermediate_kernel", (n_var, w, w), 2)
        self.intermediate_bias = self._stacked_bias("intermediate_bias", (n_var, w), 2)
        self.gate_kernel = self._stacked_kernel("gate_kernel", (n_var, w, 2 * h), 3)
        self.gate_bias = self._stacked_bias("gate_bias", (n_var, 2 * h), 3)
        self.skip_kernel = None
        if n_emb != h:
            self.skip_kernel = self._stacked_kernel("skip_kernel", (n_var, n_emb, h), 4)
        self.norm_gamma = self.add_weight(name="norm_gamma", shape=(n_var, h), initializer="ones")
        self.norm_beta = self.add_weight(name="norm_beta", shape=(n_var, h), initializer="zeros")
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="dropout")

    def _variable_grns(self, x, training=None):
        """All per-variable GRNs at once: (..., F, E) -> (..., F, H)."""
        h = self.num_hidden
        hidden = self.activation(ops.einsum("...fe,few->...fw", x, self.hidden_kernel) + self.hidden_bias)
        hidden = ops.einsum("...fv,fvw->...fw", hidden, self.intermediate_kernel) + self.intermediate_bias
        hidden = self.dropout_layer(hidden, training=training)
        gate = ops.einsum("...fw,fwo->...fo", hidden, self.gate_kernel) + self.gate_bias
        gated = gate[..., :h] * ops.sigmoid(gate[..., h:])
        skip = x if self.skip_kernel is None else ops.einsum("...fe,feh->...fh", x, self.skip_kernel)
        y = gated + skip
        mean = ops.mean(y, axis=-1, keepdims=True)
        var = ops.mean(ops.square(y - mean), axis=-1, keepdims=True)
        return (y - mean) * ops.rsqrt(var + 1e-3) * self.norm_gamma + self.norm_beta

    def call(self, inputs, training=None):
        shape = ops.shape(inputs)
        n_var, n_emb = inputs.shape[-2], inputs.shape[-1]
        flat = ops.reshape(inputs, tuple(shape[:-2]) + (n_var * n_emb,))
        weights = ops.softmax(self.selection_grn(flat, training=training), axis=-1)
        if self.per_variable_grn:
            transformed = self._variable_grns(inputs, training=training)
            output = ops.einsum("...f,...fh->...h", weights, transformed)
        else:
            # sum_f w_f (x_f K_f + b_f) as ONE (F*E, H) matmul of the weighted inputs: no (..., F, H) tensor.
            weighted = ops.reshape(weights[..., None] * inputs, tuple(shape[:-2]) + (n_var * n_emb,))
            output = (ops.matmul(weighted, ops.reshape(self.kernel, (n_var * n_emb, self.num_hidden)))
                      + ops.matmul(weights, self.bias))
        if self.return_weights:
            return output, weights
        return output

    def compute_output_shape(self, input_shape):
        out = tuple(input_shape[:-2]) + (self.num_hidden,)
        if self.return_weights:
            return out, tuple(input_shape[:-1])
        return out

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "num_hidden": self.num_hidden,
                "dropout": self.dropout,
                "activation": keras.activations.serialize(self.activation),
                "per_variable_grn": self.per_variable_grn,
                "per_variable_units": self.per_variable_units,
                "return_weights": self.return_weights,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config


__all__ = ["VariableSelectionNetwork"]
