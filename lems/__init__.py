"""lems: Large Execution Models, leak-free learned VWAP/TWAP execution on Keras 3."""

import os as _os

_os.environ.setdefault("KERAS_BACKEND", "jax")

__version__ = "0.2.0.dev0"
