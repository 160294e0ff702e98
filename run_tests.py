"""Run the whole lems test suite: everything on JAX, then the fast backend tests on PyTorch and TensorFlow.

Usage: ``python run_tests.py [extra pytest args]``. Exits non-zero when any run fails. Backends that are not
installed are reported and count as a failure unless ``LEMS_ALLOW_MISSING_BACKENDS=1``.

What runs where:

- JAX (the default backend): every test, the ``slow`` ones included (learning tests, subprocess CLI runs,
  H = 390, training loops), once.
- PyTorch and TensorFlow: ``-m "backend and not slow"``, the tests of backend code (every layer, the model,
  losses and metrics, a tiny training loop, the live session) on small configurations.

With pytest-xdist installed (the ``test`` extra), each run spreads its test files over
``LEMS_TEST_WORKERS`` processes (default: the CPU count, at most 4; ``1`` runs serially). Files stay whole
(``--dist loadfile``), so a module's shared fixtures (a trained tiny model) are built once. Parallel workers
run single-threaded (BLAS, PyTorch, TensorFlow and XLA thread pools of one): on 2 cores, two workers with a
pool per core each ran the PyTorch tests 2.5x slower than single-threaded ones.

On JAX the run also lowers XLA's optimisation level (``lems.runtime.set_fast_compile``: the tests' tiny models
spend most of their time compiling) and shares one on-disk compilation cache between its workers and the CLI
subprocesses, in a temporary folder removed at the end (tests that build the same model reuse its programs).
Each of these settings can be overridden from the environment.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys
import tempfile
import time

FAST_BACKEND_TESTS = ["-m", "backend and not slow"]
RUNS = [("jax", []), ("torch", FAST_BACKEND_TESTS), ("tensorflow", FAST_BACKEND_TESTS)]
MODULES = {"jax": "jax", "torch": "torch", "tensorflow": "tensorflow"}
MAX_DEFAULT_WORKERS = 4


def parallel_args() -> list[str]:
    """pytest-xdist arguments, or none when it is not installed or one worker is asked for."""
    workers = int(os.environ.get("LEMS_TEST_WORKERS", min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS)))
    if workers <= 1 or importlib.util.find_spec("xdist") is None:
        return []
    return ["-n", str(workers), "--dist", "loadfile"]


#: One thread per parallel worker (setdefault: the environment wins).
SINGLE_THREADED = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                   "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}
XLA_SINGLE_THREADED = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def backend_env(backend: str, parallel: bool, cache_dir: str) -> dict[str, str]:
    """The environment of one backend's pytest run (see the module docstring)."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    if parallel:
        for name, value in SINGLE_THREADED.items():
            env.setdefault(name, value)
        if "intra_op_parallelism_threads" not in env.get("XLA_FLAGS", ""):
            env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {XLA_SINGLE_THREADED}".strip()
    if backend == "jax":
        env.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")
        env.setdefault("JAX_COMPILATION_CACHE_DIR", cache_dir)
        env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
        env.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    return env


def main(argv: list[str]) -> int:
    with tempfile.TemporaryDirectory(prefix="lems-test-jax-cache-") as cache_dir:
        return run_all(argv, cache_dir)


def run_all(argv: list[str], cache_dir: str) -> int:
    failures = []
    parallel = parallel_args()
    for backend, selection in RUNS:
        if importlib.util.find_spec(MODULES[backend]) is None:
            print(f"== {backend}: not installed", flush=True)
            if os.environ.get("LEMS_ALLOW_MISSING_BACKENDS") != "1":
                failures.append(backend)
            continue
        env = backend_env(backend, bool(parallel), cache_dir)
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *parallel, *selection, *argv]
        print(f"== {backend}: {shlex.join(cmd[1:])}", flush=True)
        start = time.time()
        code = subprocess.call(cmd, env=env)
        print(f"== {backend}: exit {code} in {time.time() - start:.0f} s", flush=True)
        if code != 0:
            failures.append(backend)
    if failures:
        print(f"FAILED on: {', '.join(failures)}")
        return 1
    print("All backends passed.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
