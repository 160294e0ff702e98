"""Per-feature learned embedding of scalar inputs."""

from __future__ import annotations

import keras
from keras import ops

from lems.layers.registry import check_positive_int, register


@register
class EmbeddingLayer(keras.layers.Layer):
    """Embeds every scalar input feature into `num_embedding` dimensions.

    Each feature `f` gets its own affine map `e[..., f, :] = x[..., f] * W[f] + b[f]`
    (weights `(F, E)` and bias `(F, E)`), optionally followed by an activation.
    Cost: `2 * F * E` multiply-adds per bar; no mixing across features or bars
    (so it is causal by construction).

    Args:
        num_embedding: Embedding width `E` per feature.
        activation: Optional activation applied after the affine map.
        kernel_initializer: Initializer of `W`, shape `(F, E)`.
        bias_initializer: Initializer of `b`, shape `(F, E)`.
        **kwargs: Base `keras.layers.Layer` arguments (name, dtype, ...).

    Input shape: `(batch, bars, F)` (any rank >= 2; the last axis holds features).
    Output shape: `(batch, bars, F, num_embedding)`.
    """

    def __init__(
        self,
        num_embedding: int,
        activation=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.num_embedding = check_positive_int("num_embedding", num_embedding)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape) -> None:
        num_features = input_shape[-1]
        if num_features is None:
            raise ValueError("EmbeddingLayer needs a known number of features (last axis).")
        shape = (num_features, self.num_embedding)
        self.kernel = self.add_weight(name="kernel", shape=shape, initializer=self.kernel_initializer)
        self.bias = self.add_weight(name="bias", shape=shape, initializer=self.bias_initializer)

    def call(self, inputs):
        return self.activation(ops.expand_dims(inputs, -1) * self.kernel + self.bias)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape) + (self.num_embedding,)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "num_embedding": self.num_embedding,
                "activation": keras.activations.serialize(self.activation),
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
            }
        )
        return config


__all__ = ["EmbeddingLayer"]
