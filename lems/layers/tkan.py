"""Temporal Kolmogorov–Arnold Network (TKAN) recurrent layer, per docs/execution.md §7.

Per bar `t`, with input `x_t` and states `(h, c, s^1 … s^K)` from bar `t - 1`:

* LSTM gates `[f, i, g] = [sigmoid, sigmoid, tanh](W x_t + U h + b)`;
  `c_t = f * c + i * g`;
* KAN sub-layer `k`: `z^k = A_k x_t + B_k s^k (+ a_k)`, `phi_k = KANLinear_k(z^k)`,
  `s^k_t = alpha_k * phi_k + beta_k * s^k` (`alpha_k`, `beta_k` learnable per unit);
* output gate `o_t = sigmoid(W_o [phi_1 … phi_K] + b_o)`; `h_t = o_t * tanh(c_t)`.

`W` and all `A_k` (and their biases) share one input kernel, so `TKAN` projects the
whole sequence `(batch, bars, features)` with one matmul before the recurrence; the
recurrent step then only does `h U`, `s^k B_k`, the KAN transforms and the output gate.
The recurrence runs forward only, so `h_t` depends on `x_{<=t}` alone.
"""

from __future__ import annotations

import math
from typing import Any

import keras
from keras import ops

from lems.layers.kan import KANLinear
from lems.layers.registry import check_positive_int, fresh_initializer, register


def normalize_sub_kan_configs(units: int, sub_kan_configs: Any) -> list[dict]:
    """Resolves `sub_kan_configs` into a list of `KANLinear` keyword dicts.

    Args:
        units: Cell width.
        sub_kan_configs: `None` (two sub-layers) or a non-empty list whose entries
            are `None` (defaults), an int (the sub-layer width) or a dict of
            `KANLinear` arguments. A sub-layer without `"units"` gets
            `ceil(units / K)`, so the `K` sub-layers together are as wide as the cell.

    Returns:
        One dict per sub-layer, each with at least `"units"`.
    """
    entries = [None, None] if sub_kan_configs is None else sub_kan_configs
    if not isinstance(entries, (list, tuple)) or not entries:
        raise ValueError(f"`sub_kan_configs` must be None or a non-empty list, got {sub_kan_configs!r}.")
    default_units = max(1, math.ceil(units / len(entries)))
    resolved = []
    for entry in entries:
        if entry is None:
            config: dict = {}
        elif isinstance(entry, int) and not isinstance(entry, bool):
            config = {"units": entry}
        elif isinstance(entry, dict):
            config = dict(entry)
        else:
            raise ValueError(f"Each sub_kan_configs entry must be None, an int or a dict, got {entry!r}.")
        config.setdefault("units", default_units)
        check_positive_int("sub_kan_configs[...]['units']", config["units"])
        resolved.append(config)
    return resolved


def _as_config_list(sub_kan_configs: Any) -> list | None:
    if sub_kan_configs is None:
        return None
    if not isinstance(sub_kan_configs, (list, tuple)):
        raise ValueError(f"`sub_kan_configs` must be None or a non-empty list, got {sub_kan_configs!r}.")
    return [dict(e) if isinstance(e, dict) else e for e in sub_kan_configs]


@register
class TKANCell(keras.layers.Layer):
    """One TKAN recurrent step, usable in `keras.layers.RNN` (states `[h, c, s^1 … s^K]`).

    Args:
        units: Hidden width (of `h`, `c` and the output).
        sub_kan_configs: KAN sub-layers (see `normalize_sub_kan_configs`); default:
            two RBF `KANLinear` sub-layers of width `ceil(units / 2)`.
        use_bias: Whether the input projection has a bias (LSTM gates and `z^k`).
        kernel_initializer: Initializer of the input kernel `[W | A_1 … A_K]` and `W_o`.
        recurrent_initializer: Initializer of `U` and the `B_k`.
        bias_initializer: Initializer of the biases.
        unit_forget_bias: Start the forget-gate bias at 1 (Jozefowicz et al.).
        **kwargs: Base layer arguments.

    Memory mixing `alpha_k` starts at 1 and `beta_k` at 0: at initialisation the memory
    is the last KAN output (a plain recurrent KAN, which is stable), and the cell learns
    how much older memory to keep (`beta_k`) from the data.
    """

    def __init__(
        self,
        units: int,
        sub_kan_configs=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias: bool = True,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.sub_kan_configs = _as_config_list(sub_kan_configs)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.unit_forget_bias = bool(unit_forget_bias)
        self._resolved = normalize_sub_kan_configs(self.units, self.sub_kan_configs)
        self.sub_units = [int(c["units"]) for c in self._resolved]
        self.state_size = [self.units, self.units] + self.sub_units
        self.output_size = self.units
        self.sub_kans = [
            KANLinear(**{**c, "dtype": self.dtype_policy, "name": f"sub_kan_{k}"})
            for k, c in enumerate(self._resolved)
        ]

    @property
    def projection_dim(self) -> int:
        """Width of the precomputed input projection: `3 * units + sum_k units_k`."""
        return 3 * self.units + sum(self.sub_units)

    def _bias_init(self, shape, dtype=None):
        bias = fresh_initializer(self.bias_initializer)(shape, dtype=dtype)
        if not self.unit_forget_bias:
            return bias
        u = self.units
        return ops.concatenate([bias[:u] + 1.0, bias[u:]])

    def build(self, input_shape) -> None:
        d_in = input_shape[-1]
        if d_in is None:
            raise ValueError("TKANCell needs a known number of input features.")
        u = self.units
        self.kernel = self.add_weight(
            name="kernel",
            shape=(d_in, self.projection_dim),
            initializer=fresh_initializer(self.kernel_initializer),
        )
        self.bias = None
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.projection_dim,), initializer=self._bias_init
            )
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel",
            shape=(u, 3 * u),
            initializer=fresh_initializer(self.recurrent_initializer),
        )
        self.sub_recurrent_kernels, self.alphas, self.betas = [], [], []
        for k, (kan, width) in enumerate(zip(self.sub_kans, self.sub_units)):
            self.sub_recurrent_kernels.append(
                self.add_weight(
                    name=f"sub_recurrent_kernel_{k}",
                    shape=(width, width),
                    initializer=fresh_initializer(self.recurrent_initializer, k + 1),
                )
            )
            self.alphas.append(self.add_weight(name=f"alpha_{k}", shape=(width,), initializer="ones"))
            self.betas.append(self.add_weight(name=f"beta_{k}", shape=(width,), initializer="zeros"))
            kan.build((None, width))
        self.output_kernel = self.add_weight(
            name="output_kernel",
            shape=(sum(self.sub_units), u),
            initializer=fresh_initializer(self.kernel_initializer, 1),
        )
        self.output_bias = self.add_weight(name="output_bias", shape=(u,), initializer="zeros")

    def project_inputs(self, inputs):
        """Input projection `x [W | A_1 … A_K] + b`: `(..., d_in) -> (..., projection_dim)`."""
        projected = ops.matmul(inputs, self.kernel)
        if self.bias is not None:
            projected = projected + self.bias
        return projected

    def step(self, projected, states):
        """One recurrent step from the precomputed input projection of bar `t`.

        Args:
            projected: `(batch, projection_dim)`, `project_inputs(x_t)`.
            states: `[h, c, s^1 … s^K]` of bar `t - 1`.

        Returns:
            `(h_t, [h_t, c_t, s^1_t … s^K_t])`.
        """
        h, c, memories = states[0], states[1], states[2:]
        u = self.units
        gates = projected[:, : 3 * u] + ops.matmul(h, self.recurrent_kernel)
        forget = ops.sigmoid(gates[:, :u])
        update = ops.sigmoid(gates[:, u : 2 * u])
        candidate = ops.tanh(gates[:, 2 * u :])
        c_new = forget * c + update * candidate
        phis, new_memories = [], []
        offset = 3 * u
        for k, kan in enumerate(self.sub_kans):
            width = self.sub_units[k]
            z = projected[:, offset : offset + width] + ops.matmul(memories[k], self.sub_recurrent_kernels[k])
            offset += width
            phi = kan(z)
            phis.append(phi)
            new_memories.append(self.alphas[k] * phi + self.betas[k] * memories[k])
        mixed = phis[0] if len(phis) == 1 else ops.concatenate(phis, axis=-1)
        out_gate = ops.sigmoid(ops.matmul(mixed, self.output_kernel) + self.output_bias)
        h_new = out_gate * ops.tanh(c_new)
        return h_new, [h_new, c_new] + new_memories

    def call(self, inputs, states):
        return self.step(self.project_inputs(inputs), list(states))

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "sub_kan_configs": _as_config_list(self.sub_kan_configs),
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "unit_forget_bias": self.unit_forget_bias,
            }
        )
        return config


class _ProjectedStep(keras.layers.Layer):
    """Weightless RNN cell running `TKANCell.step` on precomputed projections (not serialized)."""

    def __init__(self, step_fn, state_size: list[int], output_size: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self._step_fn = step_fn
        self.state_size = list(state_size)
        self.output_size = output_size

    def call(self, inputs, states):
        return self._step_fn(inputs, list(states))


@register
class TKAN(keras.layers.Layer):
    """TKAN recurrent layer over `(batch, bars, features)`.

    The input projection of every bar is computed with one matmul over the whole
    sequence, then `keras.layers.RNN` runs the recurrent part of `TKANCell` forward
    in time (causal: `h_t` only depends on bars `<= t`).

    Args:
        units: Hidden width.
        sub_kan_configs: KAN sub-layers, see `TKANCell`.
        return_sequences: Return `(batch, bars, units)` instead of the last `(batch, units)`.
        use_bias: See `TKANCell`.
        kernel_initializer: See `TKANCell`.
        recurrent_initializer: See `TKANCell`.
        bias_initializer: See `TKANCell`.
        unit_forget_bias: See `TKANCell`.
        unroll: Unroll the recurrence (short sequences only).
        **kwargs: Base layer arguments.
    """

    def __init__(
        self,
        units: int,
        sub_kan_configs=None,
        return_sequences: bool = False,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias: bool = True,
        unroll: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.units = check_positive_int("units", units)
        self.sub_kan_configs = _as_config_list(sub_kan_configs)
        self.return_sequences = bool(return_sequences)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.unroll = bool(unroll)
        self.supports_masking = True
        self.cell = TKANCell(
            self.units,
            sub_kan_configs=self.sub_kan_configs,
            use_bias=self.use_bias,
            # Instances, not serialized configs: serializing in __init__ makes Keras import TensorFlow when it
            # is installed (+400 MiB and seconds per process); the cell copies them per weight anyway.
            kernel_initializer=self.kernel_initializer,
            recurrent_initializer=self.recurrent_initializer,
            bias_initializer=self.bias_initializer,
            unit_forget_bias=self.unit_forget_bias,
            dtype=self.dtype_policy,
            name="cell",
        )
        self.rnn = keras.layers.RNN(
            _ProjectedStep(
                self.cell.step, self.cell.state_size, self.units, dtype=self.dtype_policy, name="step"
            ),
            return_sequences=self.return_sequences,
            unroll=self.unroll,
            dtype=self.dtype_policy,
            name="rnn",
        )

    def build(self, input_shape) -> None:
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                f"TKAN needs input (batch, bars, features) with known features, got {input_shape!r}."
            )
        self.cell.build((input_shape[0], input_shape[-1]))
        self.rnn.build((input_shape[0], input_shape[1], self.cell.projection_dim))

    def call(self, inputs, mask=None, training=None):
        return self.rnn(self.cell.project_inputs(inputs), mask=mask, training=training)

    def compute_mask(self, inputs, mask=None):
        return mask if self.return_sequences else None

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            return (input_shape[0], input_shape[1], self.units)
        return (input_shape[0], self.units)

    def get_config(self) -> dict:
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "sub_kan_configs": _as_config_list(self.sub_kan_configs),
                "return_sequences": self.return_sequences,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": keras.initializers.serialize(self.recurrent_initializer),
                "bias_initializer": keras.initializers.serialize(self.bias_initializer),
                "unit_forget_bias": self.unit_forget_bias,
                "unroll": self.unroll,
            }
        )
        return config


__all__ = ["TKAN", "TKANCell", "normalize_sub_kan_configs"]
