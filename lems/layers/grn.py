"""Gated residual network blocks (Temporal Fusion Transformer style).

* `Gate`: gated linear unit, `sigmoid(x W_g + b_g) * (x W_v + b_v)`, one fused matmul.
* `AddAndNorm`: `LayerNorm(x + skip)` on a list of two tensors.
* `GRN`: `LayerNorm(skip(x) + GLU(W1 act(W2 x + b2 [+ W3 c]) + b1))`.

All three act on the last axis only, so they never mix bars (causal by construction).
"""

from __future__ import annotations

import keras
from keras import ops

from lems.layers.registry import (
    check_positive_int,
    check_rate,
    fresh_initializer,
    register,
)


def _serialize_initializers(layer: keras.layers.Layer) -> dict:
    return {
        "kernel_initializer": keras.initializers.serialize(layer.kernel_initializer),
        "bias_initializer": keras.initializers.serialize(layer.bias_initializer),
    }


@register
class Gate(keras.layers.Layer):
    """Gated linear unit: `act(x W_v + b_v) * sigmoid(x W_g + b_g)`.

    The value and gate projections share one kernel `(d_in, 2 * units)`, so the
    layer costs a single matmul.

    Args:
        units: Output width.
        activation: Activation of the value branch (None: linear, the GLU of TFT).
        kernel_initializer: Initializer of the fused kernel `(d_in, 2 * units)`.
        bias_initializer: Initializer of the fused bias `(2 * units,)`.
        **kwargs: Base layer arguments.

    Input shape: `(..., d_in)`. Output shape: `(..., units)`.
    """

    def __init__(
        self,
        units: int,
        activation=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape) -> None:
        self.kernel = self.add_weight(
            name="kernel", shape=(input_shape[-1], 2 * self.units), initializer=self.kernel_initializer
        )
        self.bias = self.add_weight(name="bias", shape=(2 * self.units,), initializer=self.bias_initializer)

    def call(self, inputs):
        projected = ops.matmul(inputs, self.kernel) + self.bias
        value, gate = projected[..., : self.units], projected[..., self.units :]
        return self.activation(value) * ops.sigmoid(gate)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {"units": self.units, "activation": keras.activations.serialize(self.activation)}
        )
        config.update(_serialize_initializers(self))
        return config


@register
class AddAndNorm(keras.layers.Layer):
    """`LayerNormalization(x + skip)` over the last axis.

    Args:
        epsilon: Variance floor of the layer normalisation.
        **kwargs: Base layer arguments.

    Input: a list `[x, skip]` of two tensors of the same shape `(..., d)`.
    Output shape: `(..., d)`.
    """

    def __init__(self, epsilon: float = 1e-3, **kwargs) -> None:
        super().__init__(**kwargs)
        if not epsilon > 0:
            raise ValueError(f"`epsilon` must be > 0, got {epsilon!r}.")
        self.epsilon = float(epsilon)

    def build(self, input_shape) -> None:
        _check_pair(input_shape)
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=self.epsilon, dtype=self.dtype_policy, name="layer_norm"
        )
        self.layer_norm.build(input_shape[0])

    def call(self, inputs):
        x, skip = inputs
        return self.layer_norm(x + skip)

    def compute_output_shape(self, input_shape):
        _check_pair(input_shape)
        return tuple(input_shape[0])

    def get_config(self) -> dict:
        config = super().get_config()
        config.update({"epsilon": self.epsilon})
        return config


def _check_pair(input_shape) -> None:
    if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2 or not isinstance(
        input_shape[0], (list, tuple)
    ):
        raise ValueError(f"AddAndNorm takes a list of two tensors [x, skip], got shapes {input_shape!r}.")
    if input_shape[0][-1] != input_shape[1][-1]:
        raise ValueError(f"AddAndNorm inputs must have the same width, got shapes {input_shape!r}.")


@register
class GRN(keras.layers.Layer):
    """Gated residual network (Lim et al., Temporal Fusion Transformer).

    `eta2 = act(W2 x + b2 [+ W3 c])`, `eta1 = W1 eta2 + b1`, then
    `LayerNorm(skip(x) + GLU(dropout(eta1)))` where `skip` is the identity when the
    input width equals the output width and a linear projection otherwise.

    Args:
        units: Hidden width (and output width unless `output_units` is set).
        dropout: Dropout rate on `eta1` (training only), in `[0, 1)`.
        activation: Activation of the hidden layer (ELU in TFT).
        use_context: If True the layer takes `[x, context]`; the context is
            projected without bias and added before the activation. A context of
            lower rank than `x` (e.g. static `(batch, c)` with `x` of shape
            `(batch, bars, d)`) is broadcast over the extra axes.
        output_units: Output width; defaults to `units`.
        kernel_initializer: Initializer of every kernel.
        bias_initializer: Initializer of every bias.
        **kwargs: Base layer arguments.

    Input shape: `(..., d_in)` (or `[x, context]`). Output shape: `(..., output_units)`.
    """

    def __init__(
        self,
        units: int,
        dropout: float = 0.0,
        activation="elu",
        use_context: bool = False,
        output_units: int | None = None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.dropout = check_rate("dropout", dropout)
        self.activation = keras.activations.get(activation)
        self.use_context = bool(use_context)
        self.output_units = None if output_units is None else check_positive_int("output_units", output_units)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    @property
    def _out_units(self) -> int:
        return self.units if self.output_units is None else self.output_units

    def _split_shapes(self, input_shape):
        if self.use_context:
            if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
                raise ValueError(f"GRN(use_context=True) takes [x, context], got shapes {input_shape!r}.")
            return tuple(input_shape[0]), tuple(input_shape[1])
        return tuple(input_shape), None

    def _dense(self, units: int, name: str, offset: int, use_bias: bool = True) -> keras.layers.Dense:
        return keras.layers.Dense(
            units,
            use_bias=use_bias,
            kernel_initializer=fresh_initializer(self.kernel_initializer, offset),
            bias_initializer=fresh_initializer(self.bias_initializer, offset),
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, input_shape) -> None:
        x_shape, c_shape = self._split_shapes(input_shape)
        hidden_shape = x_shape[:-1] + (self.units,)
        self.hidden_dense = self._dense(self.units, "hidden_dense", 0)
        self.hidden_dense.build(x_shape)
        if c_shape is not None:
            self.context_dense = self._dense(self.units, "context_dense", 1, use_bias=False)
            self.context_dense.build(c_shape)
        self.intermediate_dense = self._dense(self.units, "intermediate_dense", 2)
        self.intermediate_dense.build(hidden_shape)
        self.dropout_layer = keras.layers.Dropout(self.dropout, dtype=self.dtype_policy, name="dropout")
        self.gate = Gate(
            self._out_units,
            kernel_initializer=fresh_initializer(self.kernel_initializer, 3),
            bias_initializer=fresh_initializer(self.bias_initializer, 3),
            dtype=self.dtype_policy,
            name="gate",
        )
        self.gate.build(hidden_shape)
        out_shape = x_shape[:-1] + (self._out_units,)
        self.skip_dense = None
        if x_shape[-1] != self._out_units:
            self.skip_dense = self._dense(self._out_units, "skip_dense", 4)
            self.skip_dense.build(x_shape)
        self.add_and_norm = AddAndNorm(dtype=self.dtype_policy, name="add_and_norm")
        self.add_and_norm.build([out_shape, out_shape])

    def call(self, inputs, training=None):
        x, context = (inputs[0], inputs[1]) if self.use_context else (inputs, None)
        hidden = self.hidden_dense(x)
        if context is not None:
            projected = self.context_dense(context)
            for _ in range(len(x.shape) - len(projected.shape)):
                projected = ops.expand_dims(projected, 1)
            hidden = hidden + projected
        hidden = self.intermediate_dense(self.activation(hidden))
        gated = self.gate(self.dropout_layer(hidden, training=training))
        skip = x if self.skip_dense is None else self.skip_dense(x)
        return self.add_and_norm([gated, skip])

    def compute_output_shape(self, input_shape):
        x_shape, _ = self._split_shapes(input_shape)
        return x_shape[:-1] + (self._out_units,)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "dropout": self.dropout,
                "activation": keras.activations.serialize(self.activation),
                "use_context": self.use_context,
                "output_units": self.output_units,
            }
        )
        config.update(_serialize_initializers(self))
        return config


__all__ = ["AddAndNorm", "GRN", "Gate"]
