"""Data-parallel training over every JAX device, on one host or several, with ``keras.distribution``.

One host, several devices (GPUs, TPU cores, or CPU devices simulated with
``XLA_FLAGS=--xla_force_host_platform_device_count=N``)::

    from lems.distributed import data_parallel
    data_parallel()                     # before building the model: weights replicated, batches split
    model = LargeExecutionModel(...)    # then compile / fit as usual; the batch size must be a multiple of
                                        # the device count (each device takes batch_size / n_devices rows)

Several processes (hosts), each with its devices: every process runs the same script with its own
``process_id``; each reads its own shard of the symbols and feeds its part of the global batch::

    from lems import distributed
    distributed.initialize("host0:12345", num_processes=2, process_id=i, seed=0)  # before any JAX computation
    distributed.data_parallel()
    universe = SymbolUniverse(distributed.shard_symbols("data/"), lookback, n_ahead)  # its own symbols
    train, val, test = universe.split("2024-01-01", "2024-07-01")   # timestamps: the same on every process
    steps = distributed.agree_num_batches(len(train) // distributed.local_batch_size(256))
    data = train.batches(distributed.local_batch_size(256), drop_remainder=True, num_batches=steps)
    model.fit(data, epochs=...)         # every process runs the same number of steps

Split by timestamps, not fractions: a fraction would be resolved on each process' own shard. The loss of a
step is the mean over the global batch (all processes), so the run follows the same trajectory
as one device fed the concatenated batch (process 0's rows first), up to float32 summation order
(``tests/test_distributed.py``, ``benchmarks/multihost.py``).

Only the JAX backend is supported: PyTorch and TensorFlow have their own distribution tools, and
:func:`data_parallel` raises a clear error there (or does nothing with ``strict=False``).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

import keras

__all__ = [
    "ProcessInfo",
    "agree_num_batches",
    "data_parallel",
    "initialize",
    "local_batch_size",
    "process_info",
    "shard_symbols",
]

_ADDRESS = re.compile(r"^[^\s:]+:\d{1,5}$")


@dataclass(frozen=True)
class ProcessInfo:
    """Where this process stands in a (possibly multi-process) JAX run.

    Attributes:
        process_id: This process' index, ``0 .. num_processes - 1``.
        num_processes: Processes in the run.
        local_devices: Devices of this process.
        global_devices: Devices of all processes.
    """

    process_id: int
    num_processes: int
    local_devices: int
    global_devices: int


def _require_jax(what: str) -> None:
    backend = keras.backend.backend()
    if backend != "jax":
        raise RuntimeError(f"{what} needs the JAX backend (set KERAS_BACKEND=jax before importing keras or lems); "
                           f"the active backend is {backend!r}")


def initialize(coordinator_address: str, num_processes: int, process_id: int, *, seed: int | None = None) -> ProcessInfo:
    """Join a multi-process run: ``jax.distributed.initialize`` through ``keras.distribution.initialize``.

    Call it first, before any JAX computation (building a model, creating arrays). On CPU, processes exchange
    gradients with JAX's gloo collectives.

    Args:
        coordinator_address: ``"host:port"`` of process 0 (e.g. ``"localhost:12345"`` on one machine).
        num_processes: Processes in the run, >= 1.
        process_id: This process' index in ``[0, num_processes)``.
        seed: Seed set on every process before anything is built (:func:`lems.utils.set_random_seed`), so that
            all processes initialise identical weights; ``None``: Keras agrees on a random seed across processes.

    Returns:
        This process' :class:`ProcessInfo`.

    Raises:
        ValueError: a malformed address or process numbers. RuntimeError: another backend than JAX.
    """
    _require_jax("multi-process training")
    if not isinstance(coordinator_address, str) or not _ADDRESS.match(coordinator_address):
        raise ValueError(f"coordinator_address must be 'host:port', got {coordinator_address!r}")
    if int(num_processes) < 1 or not 0 <= int(process_id) < int(num_processes):
        raise ValueError(f"need num_processes >= 1 and 0 <= process_id < num_processes, got {num_processes} and "
                         f"{process_id}")
    if seed is not None:
        from lems.utils import set_random_seed

        set_random_seed(int(seed))
    keras.distribution.initialize(job_addresses=coordinator_address, num_processes=int(num_processes),
                                  process_id=int(process_id))
    return process_info()


def process_info() -> ProcessInfo:
    """This process' :class:`ProcessInfo` (one process and its devices when :func:`initialize` was not called)."""
    _require_jax("process_info")
    import jax

    return ProcessInfo(jax.process_index(), jax.process_count(), jax.local_device_count(), jax.device_count())


def data_parallel(devices: Any = None, *, strict: bool = True) -> keras.distribution.DataParallel | None:
    """Make ``keras.distribution.DataParallel`` over all JAX devices the global Keras distribution.

    Call it before building the model: its weights are then replicated on every device and every batch is
    split along its first axis across the devices (of all processes). Datasets are not re-sharded by Keras
    (``auto_shard_dataset=False``): in a multi-process run each process serves its own rows (e.g. a
    :class:`lems.data.universe.UniverseDataset` over :func:`shard_symbols`). ``keras.distribution.
    set_distribution(None)`` undoes it.

    Args:
        devices: Devices to use (default: ``jax.devices()``, every device of every process).
        strict: On another backend than JAX, raise (True) or warn and do nothing (False).

    Returns:
        The distribution, or None (another backend, ``strict=False``).

    Raises:
        RuntimeError: another backend than JAX with ``strict``.
    """
    if keras.backend.backend() != "jax" and not strict:
        warnings.warn(f"lems.distributed.data_parallel: backend {keras.backend.backend()!r} is not JAX; "
                      "training stays on one device", UserWarning, stacklevel=2)
        return None
    _require_jax("keras.distribution data parallelism")
    import jax

    distribution = keras.distribution.DataParallel(devices=list(devices or jax.devices()), auto_shard_dataset=False)
    keras.distribution.set_distribution(distribution)
    return distribution


def local_batch_size(global_batch_size: int) -> int:
    """Rows each process feeds per step for a global batch of ``global_batch_size`` rows.

    Raises:
        ValueError: a global batch that does not split evenly over the devices of all processes.
    """
    info = process_info()
    if int(global_batch_size) < 1 or int(global_batch_size) % info.global_devices:
        raise ValueError(f"the global batch size ({global_batch_size}) must be a positive multiple of the device "
                         f"count ({info.global_devices}: {info.num_processes} process(es) x {info.local_devices})")
    return int(global_batch_size) // info.num_processes


def shard_symbols(source: Any) -> Any:
    """This process' shard of a symbol source (:meth:`lems.data.universe.SymbolSource.shard`).

    Args:
        source: A :class:`lems.data.universe.SymbolSource` or anything :func:`lems.data.universe.open_symbols`
            takes.
    """
    from lems.data.universe import open_symbols

    info = process_info()
    return open_symbols(source).shard(info.process_id, info.num_processes)


def agree_num_batches(n_batches: int) -> int:
    """The smallest of every process' ``n_batches``: the steps per epoch all processes can run together.

    Every process must call it (a collective); with one process it returns ``n_batches``.
    """
    info = process_info()
    if info.num_processes == 1:
        return int(n_batches)
    import numpy as np
    from jax.experimental import multihost_utils

    counts = multihost_utils.process_allgather(np.asarray(int(n_batches), dtype=np.int64))
    return int(np.min(counts))
