"""The single registration decorator used by every serializable object in `lems`.

Every layer, constraint and initializer of the package is decorated with
`register`, so that `.keras` files written by lems reload with
`keras.models.load_model` without `custom_objects`. Registered names read
`"lems>ClassName"`.
"""

from __future__ import annotations

import keras

register = keras.saving.register_keras_serializable(package="lems")

__all__ = ["check_positive_int", "check_rate", "fresh_initializer", "register"]


def check_positive_int(name: str, value: object) -> int:
    """Returns `value` as an int, or raises `ValueError` naming `name` if it is not an int >= 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"`{name}` must be a positive int, got {value!r}.")
    return int(value)


def check_rate(name: str, value: object) -> float:
    """Returns `value` as a float in `[0, 1)`, or raises `ValueError` naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be a float in [0, 1), got {value!r}.")
    return float(value)


def fresh_initializer(initializer, offset: int = 0):
    """A new instance of `initializer`, for one weight.

    Keras initializers return the same values on every call of one instance, so
    each weight gets its own instance: an unseeded initializer draws a new seed,
    and an int seed is shifted by `offset` (distinct weights of one layer pass
    distinct offsets, so same-shaped weights are not copies of each other).

    Args:
        initializer: Anything `keras.initializers.get` accepts.
        offset: Shift applied to an int seed.

    Returns:
        A `keras.initializers.Initializer` (or the callable itself for plain functions).
    """
    initializer = keras.initializers.get(initializer)
    if not isinstance(initializer, keras.initializers.Initializer):
        return initializer
    # get_config/from_config rather than keras.initializers.serialize: the latter goes through Keras'
    # serialization library, which imports TensorFlow when it is installed (+400 MiB, seconds per process).
    config = dict(initializer.get_config())
    if isinstance(config.get("seed"), int) and not isinstance(config["seed"], bool):
        config["seed"] = config["seed"] + offset
    return type(initializer).from_config(config)
