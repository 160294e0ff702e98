"""Process-wide backend switches: XLA's optimisation level (fast compile) and the on-disk compilation cache.

JAX only; on the other backends they do nothing. ``lems.training`` re-exports them (their old home).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import keras

__all__ = ["enable_compilation_cache", "fast_compile", "fast_compile_enabled", "set_fast_compile"]


def _jax():
    """The ``jax`` module when it is Keras' backend, else None (imported lazily: on the other backends it may not
    be installed, and importing it costs seconds)."""
    if keras.backend.backend() != "jax":
        return None
    import jax

    return jax


def set_fast_compile(enabled: bool = True) -> bool:
    """JAX only, process-wide: lower XLA's optimisation level (``jax_disable_most_optimizations``).

    Compilation of the model's train step is faster on CPU (seconds to tens of seconds saved); each step
    then runs about 3x slower, so it pays off for short runs only. No effect on other backends.

    Returns:
        The previous setting (False on other backends), to restore it later.
    """
    jax = _jax()
    if jax is None:
        return False
    previous = bool(jax.config.read("jax_disable_most_optimizations"))
    jax.config.update("jax_disable_most_optimizations", bool(enabled))
    return previous


def fast_compile_enabled() -> bool:
    """Whether :func:`set_fast_compile` is on (always False on backends other than JAX)."""
    jax = _jax()
    if jax is None:
        return False
    return bool(jax.config.read("jax_disable_most_optimizations"))


def enable_compilation_cache(path: str | Path | None = None) -> Path | None:
    """JAX only, process-wide: keep compiled XLA programs on disk and reuse them in later processes.

    The second run of the same model, batch size and backend skips most of its compilation (measured ~3x
    faster to the first trained batch, ``benchmarks/PROFILE.md``). Opt-in because the cache grows on disk.

    Args:
        path: Cache folder; default ``$LEMS_COMPILATION_CACHE`` or ``~/.cache/lems/jax``.

    Returns:
        The cache folder, or None on backends other than JAX (no effect there).
    """
    jax = _jax()
    if jax is None:
        return None
    folder = Path(path or os.environ.get("LEMS_COMPILATION_CACHE") or Path.home() / ".cache" / "lems" / "jax")
    folder = folder.expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder


@contextlib.contextmanager
def fast_compile(enabled: bool = True):
    """Context manager: :func:`set_fast_compile` inside, the previous setting restored on exit.

    ``enabled=False`` leaves the current setting alone (it never turns a process-wide choice off).
    """
    if not enabled:
        yield
        return
    previous = set_fast_compile(True)
    try:
        yield
    finally:
        set_fast_compile(previous)
