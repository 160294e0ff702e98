"""Small backend helpers shared by the package and the tests."""

from __future__ import annotations

import random
import sys
import types
import warnings

import keras
import numpy as np


def backend_name() -> str:
    """Name of the active Keras backend ("jax", "torch" or "tensorflow")."""
    return keras.backend.backend()


def gpu_available() -> bool:
    """True when the active backend sees at least one GPU.

    A backend that cannot be imported or cannot initialise its devices (``ImportError``, or the
    ``RuntimeError`` JAX raises when a platform fails to start) counts as "no GPU", with a warning
    that says why; any other error propagates.
    """
    name = backend_name()
    try:
        return _backend_sees_gpu(name)
    except (ImportError, RuntimeError) as exc:
        warnings.warn(
            f"could not query GPUs of the {name} backend ({type(exc).__name__}: {exc}); assuming no GPU",
            RuntimeWarning,
            stacklevel=2,
        )
        return False


def _backend_sees_gpu(name: str) -> bool:
    if name == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    if name == "torch":
        import torch

        return bool(torch.cuda.is_available())
    if name == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    return False


def set_random_seed(seed: int) -> None:
    """``keras.utils.set_random_seed`` without importing TensorFlow when another backend is in use.

    Seeds Python's ``random``, numpy, Keras' global seed generator, torch on the torch backend, and
    TensorFlow only when it is the backend or already imported. (Keras' own function imports TensorFlow
    whenever it is installed, only to seed it: ~400 MiB and seconds per process, benchmarks/PROFILE.md.)
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if backend_name() == "tensorflow" or "tensorflow" in sys.modules:
        keras.utils.set_random_seed(seed)
        return
    try:  # the state keras.utils.set_random_seed resets (Keras 3 internals; fall back if they move)
        from keras.src.backend.common import global_state
        from keras.src.random import seed_generator
        from keras.src.utils.rng_utils import GLOBAL_RANDOM_SEED
    except ImportError:  # pragma: no cover - a Keras without these internals
        keras.utils.set_random_seed(seed)
        return
    global_state.set_global_attribute(GLOBAL_RANDOM_SEED, seed)
    global_state.set_global_attribute(seed_generator.GLOBAL_SEED_GENERATOR, None)
    random.seed(seed)
    np.random.seed(seed)
    if backend_name() == "torch":
        import torch

        torch.manual_seed(seed)


class _ForwardingModule(types.ModuleType):
    """A re-export module whose attribute assignments also reach the modules that define the names, so that
    patching a re-exported setting (e.g. a test's ``monkeypatch.setattr(lems.backtest, "_ALLOCATION_CELLS", 7)``)
    changes the code that reads it."""

    def __setattr__(self, name: str, value) -> None:
        for source in self.__dict__.get("_reexported_from", ()):
            if name in vars(source):
                setattr(source, name, value)
        super().__setattr__(name, value)


def reexport(module_name: str, *sources: types.ModuleType, moved_to: str | None = None) -> None:
    """Make ``module_name`` re-export every name of ``sources`` (public and private, later sources win), forward
    assignments to them, and (with ``moved_to``) warn with a ``DeprecationWarning`` that the module moved.

    Used by the old flat modules (``lems.backtest``, ``lems.report``) and by package ``__init__`` files whose
    names live in sub-modules.
    """
    module = sys.modules[module_name]
    for source in sources:
        for name, value in vars(source).items():
            if not (name.startswith("__") and name.endswith("__")):
                module.__dict__[name] = value
    module.__dict__["_reexported_from"] = tuple(sources)
    module.__class__ = _ForwardingModule
    if moved_to is not None:
        warnings.warn(f"{module_name} is deprecated: import from {moved_to} instead (the old path works for one "
                      "release)", DeprecationWarning, stacklevel=3)
