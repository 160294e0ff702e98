"""Run the whole lems test suite: everything on JAX, then the backend tests on PyTorch and TensorFlow.

Usage: ``python run_tests.py [extra pytest args]``. Exits non-zero when any run fails. Backends that are not
installed are reported and count as a failure unless ``LEMS_ALLOW_MISSING_BACKENDS=1``.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time

RUNS = [("jax", []), ("torch", ["-m", "backend"]), ("tensorflow", ["-m", "backend"])]
MODULES = {"jax": "jax", "torch": "torch", "tensorflow": "tensorflow"}


def main(argv: list[str]) -> int:
    failures = []
    for backend, selection in RUNS:
        if importlib.util.find_spec(MODULES[backend]) is None:
            print(f"== {backend}: not installed", flush=True)
            if os.environ.get("LEMS_ALLOW_MISSING_BACKENDS") != "1":
                failures.append(backend)
            continue
        env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *selection, *argv]
        print(f"== {backend}: {' '.join(cmd[1:])}", flush=True)
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
