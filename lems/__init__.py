"""lems: Large Execution Models, leak-free learned VWAP/TWAP execution on Keras 3.

Importing ``lems`` selects the JAX backend unless ``KERAS_BACKEND`` is already set (import ``lems`` before
``keras`` for that to take effect), and registers every layer, the model, the loss and the metrics so that
``keras.models.load_model(path)`` works on a ``.keras`` file written by lems.
"""

import os as _os

_os.environ.setdefault("KERAS_BACKEND", "jax")

__version__ = "0.2.0.dev0"


def _register_serializables() -> None:
    from lems import layers, loss, metrics, models  # noqa: F401  (registration side effects)


_register_serializables()
