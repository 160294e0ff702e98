"""Small backend helpers shared by the package and the tests."""

from __future__ import annotations

import keras


def backend_name() -> str:
    """Name of the active Keras backend ("jax", "torch" or "tensorflow")."""
    return keras.backend.backend()


def gpu_available() -> bool:
    """True when the active backend sees at least one GPU."""
    name = backend_name()
    try:
        if name == "jax":
            import jax

            return any(d.platform == "gpu" for d in jax.devices())
        if name == "torch":
            import torch

            return bool(torch.cuda.is_available())
        if name == "tensorflow":
            import tensorflow as tf

            return bool(tf.config.list_physical_devices("GPU"))
    except Exception:  # pragma: no cover - a broken backend install means "no GPU"
        return False
    return False
