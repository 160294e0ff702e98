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
(``--dist loadfile``), so a module's shared fixtures (a trained tiny model) are built once.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import subprocess
import sys
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


def main(argv: list[str]) -> int:
    failures = []
    parallel = parallel_args()
    for backend, selection in RUNS:
        if importlib.util.find_spec(MODULES[backend]) is None:
            print(f"== {backend}: not installed", flush=True)
            if os.environ.get("LEMS_ALLOW_MISSING_BACKENDS") != "1":
                failures.append(backend)
            continue
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
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
