"""Two-process data-parallel training on one machine (the multi-host recipe), checked against one process.

Data: the built-in synthetic market (24/7, hourly bars), ``--symbols`` symbols written as a Parquet dataset
partitioned by symbol under ``--root`` (default ``/tmp/lems_multihost``, never inside the repository).

1. Two Python processes start, each with 2 simulated CPU devices
   (``XLA_FLAGS=--xla_force_host_platform_device_count=2``); each calls
   ``lems.distributed.initialize("localhost:<free port>", num_processes=2, process_id=i, seed=0)``
   (``jax.distributed.initialize`` through ``keras.distribution.initialize``), sets ``DataParallel`` over the 4
   global devices, reads ITS OWN shard of the symbols (``shard_symbols``: every other symbol), splits it by
   time at a fixed timestamp, and trains ``--steps`` steps with ``model.fit`` on its local half of each global
   batch (``local_batch_size``; the step count agreed with ``agree_num_batches``).
2. Two reference runs, each one process: 4 simulated CPU devices with DataParallel, and 1 CPU device without
   distribution; each rebuilds the same global batches (process 0's rows, then process 1's) from both shards,
   starts from the same initial weights and trains the same steps.

Reported: each run's per-step loss (from Keras' running mean), the largest relative difference to the
1-device run, and throughput (windows/s after the first, compiling, step).

Usage: ``python -m benchmarks.multihost [--steps 12] [--global-batch 32] [--out benchmarks/results/multihost/multihost.md]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import provenance_fields_md

# lems is imported inside the functions: the coordinator and each worker are separate processes that set their
# JAX devices and distributed runtime before the first lems/Keras import.

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("KERAS_BACKEND", "jax")

MODEL = {"lookback": 24, "n_ahead": 6, "hidden_size": 16, "hidden_rnn_layer": 1, "num_heads": 2,
         "num_embedding": 4, "fused_mlp_hidden_dim": 16}
TRAIN_END = "2021-02-20"
N_PROCESSES = 2


def free_port() -> int:
    """A TCP port free on localhost now."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return int(s.getsockname()[1])


def make_data(root: Path, n_symbols: int, days: int) -> Path:
    from lems.data.synthetic import synthetic_market
    from lems.data.universe import write_partitioned

    folder = root / f"data_{n_symbols}_{days}"
    if not (folder / "_COMPLETE").exists():
        write_partitioned(synthetic_market(n_assets=n_symbols, n_days=days, seed=7), folder)
        (folder / "_COMPLETE").write_text("ok\n")
    return folder


def build_model():
    import keras

    from lems.loss import lem_loss
    from lems.models import LargeExecutionModel

    model = LargeExecutionModel(**MODEL)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), loss=lem_loss)
    model.build([(None, MODEL["lookback"] + MODEL["n_ahead"] - 1, 14), (None, 1), (None, 1)])
    return model


def shard_batches(data: Path, index: int, local_batch: int, steps: int | None = None):
    """Process ``index``'s training batches: its shard of the symbols, split at TRAIN_END."""
    from lems.data.universe import SymbolUniverse, open_symbols

    universe = SymbolUniverse(open_symbols(data).shard(index, N_PROCESSES), MODEL["lookback"], MODEL["n_ahead"])
    train, _ = universe.split(TRAIN_END)
    return train.batches(local_batch, shuffle=True, seed=0, drop_remainder=True, num_batches=steps)


class StepLog:
    """Keras callback factory: per-step running-mean loss and wall-clock times."""

    @staticmethod
    def make():
        import keras

        class _Log(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.means, self.times = [], []

            def on_train_batch_end(self, batch, logs=None):
                self.means.append(float(logs["loss"]))
                self.times.append(time.perf_counter())

        return _Log()


def per_step(means: list[float]) -> list[float]:
    """Per-step losses from Keras' running means ``m_k = mean(l_0..l_k)``."""
    return [means[0]] + [(k + 1) * means[k] - k * means[k - 1] for k in range(1, len(means))]


def train(model, data, steps: int, rows: int) -> dict:
    """``fit`` one epoch of ``steps`` batches of ``rows`` global rows; per-step losses and throughput."""
    log = StepLog.make()
    model.fit(data, epochs=1, callbacks=[log], verbose=0, shuffle=False)
    if len(log.means) != steps:
        raise RuntimeError(f"fit ran {len(log.means)} steps, expected {steps}")
    after_first = log.times[-1] - log.times[0]
    return {"running_mean": log.means, "loss": per_step(log.means),
            "windows_per_s": (steps - 1) * rows / after_first if steps > 1 else float("nan")}


def worker(args: argparse.Namespace) -> dict:
    """One of the two processes."""
    from lems import distributed

    info = distributed.initialize(f"localhost:{args.port}", N_PROCESSES, args.process_id, seed=0)
    distributed.data_parallel()
    local = distributed.local_batch_size(args.global_batch)
    natural = len(shard_batches(args.data, info.process_id, local))
    steps = distributed.agree_num_batches(min(natural, args.steps))
    data = shard_batches(args.data, info.process_id, local, steps)
    model = build_model()
    if info.process_id == 0:
        import numpy as np

        np.savez(args.work / "initial.npz", *model.get_weights())
    t0 = time.perf_counter()
    result = train(model, data, steps, args.global_batch)
    result.update(process=info.__dict__, local_batch=local, steps=steps, fit_s=time.perf_counter() - t0,
                  symbols=list(data.windows.symbols), local_windows=len(data.windows))
    return result


def reference(args: argparse.Namespace, steps: int, parallel: bool = False) -> dict:
    """One process: the concatenated global batches, the same initial weights; one device, or DataParallel over
    this process' devices (``parallel``)."""
    import keras
    import numpy as np

    if parallel:
        from lems.distributed import data_parallel

        data_parallel()

    shards = [shard_batches(args.data, i, args.global_batch // N_PROCESSES, steps) for i in range(N_PROCESSES)]

    class GlobalBatches(keras.utils.PyDataset):
        def __len__(self):
            return steps

        def __getitem__(self, i):
            parts = [s[i] for s in shards]
            x = tuple(np.concatenate([p[0][k] for p in parts]) for k in range(3))
            return x, np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])

        def on_epoch_end(self):  # Keras also calls it before the first epoch: keep the shards' order in step
            for s in shards:
                s.on_epoch_end()

    from lems.utils import set_random_seed

    set_random_seed(0)
    model = build_model()
    with np.load(args.work / "initial.npz") as saved:
        model.set_weights([saved[f"arr_{k}"] for k in range(len(saved.files))])
    t0 = time.perf_counter()
    result = train(model, GlobalBatches(), steps, args.global_batch)
    result["fit_s"] = time.perf_counter() - t0
    return result


def reference_4_devices(args: argparse.Namespace, steps: int) -> dict:
    """:func:`reference` with DataParallel over 4 simulated CPU devices, in a fresh process."""
    cmd = [sys.executable, "-m", f"benchmarks.{Path(__file__).stem}", "--reference-devices", "4", "--steps", str(steps), "--data", str(args.data),
           "--work", str(args.work), "--global-batch", str(args.global_batch)]
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout, check=True, cwd=ROOT)
    return json.loads(next(x for x in reversed(out.stdout.splitlines()) if x.startswith("{")))


def launch(args: argparse.Namespace) -> list[dict]:
    port = free_port()
    env = {**os.environ, "KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    procs = []
    for i in range(N_PROCESSES):
        cmd = [sys.executable, "-m", f"benchmarks.{Path(__file__).stem}", "--worker", "--process-id", str(i), "--port", str(port), "--data",
               str(args.data), "--work", str(args.work), "--steps", str(args.steps), "--global-batch",
               str(args.global_batch)]
        log = open(args.work / f"process{i}.log", "w")
        procs.append((subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT), log))
    results = []
    for i, (proc, log) in enumerate(procs):
        rc = proc.wait(timeout=args.timeout)
        log.close()
        text = (args.work / f"process{i}.log").read_text()
        if rc != 0:
            raise SystemExit(f"process {i} failed (exit {rc}):\n{text[-3000:]}")
        results.append(json.loads(next(x for x in reversed(text.splitlines()) if x.startswith("{"))))
    return results


def report(args, procs: list[dict], ref: dict, ref4: dict, wall_s: float) -> str:
    import keras
    import numpy as np

    steps = procs[0]["steps"]
    lines = [
        "# Multi-host recipe: 2 processes x 2 CPU devices vs 1 process",
        "",
        f"Command: `KERAS_BACKEND=jax python -m benchmarks.multihost --steps {args.steps} --global-batch "
        f"{args.global_batch} --symbols {args.symbols} --days {args.days}`",
        "",
        *provenance_fields_md(),  # CPU seconds of the driver process (the workers are separate processes)
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores visible (shared by other jobs), Python "
        f"{platform.python_version()}, keras {keras.__version__}, backend jax, CPU only; both processes on this "
        "machine, coordinator `localhost:<free port>`, gloo collectives.",
        "",
        f"Model: `LargeExecutionModel({', '.join(f'{k}={v}' for k, v in MODEL.items())})`, Adam 3e-3, lem_loss. "
        f"Data: synthetic 24/7 hourly market, {args.symbols} symbols, {args.days} days, Parquet partitioned by "
        f"symbol; training windows before {TRAIN_END} (purged). Global batch {args.global_batch} = "
        f"{N_PROCESSES} processes x {procs[0]['local_batch']} rows (each process: its own shard of the symbols, "
        f"{procs[0]['process']['local_devices']} devices x {procs[0]['local_batch'] // procs[0]['process']['local_devices']} rows); "
        f"{steps} steps of `model.fit`.",
        "",
        "| process | symbols (own shard) | training windows | devices (local / global) |",
        "|---|---|---:|---|",
    ]
    for p in procs:
        info = p["process"]
        lines.append(f"| {info['process_id']} | {', '.join(p['symbols'])} | {p['local_windows']:,} | "
                     f"{info['local_devices']} / {info['global_devices']} |")
    lines += ["", "| step | process 0 loss | process 1 loss | 1 process, 1 device | 1 process, 4 devices | "
              "max rel. diff to 1 device |", "|---:|---:|---:|---:|---:|---:|"]
    worst = 0.0
    for k in range(steps):
        a, b, r, r4 = procs[0]["loss"][k], procs[1]["loss"][k], ref["loss"][k], ref4["loss"][k]
        diff = max(abs(a - r), abs(b - r), abs(r4 - r)) / abs(r)
        worst = max(worst, diff)
        lines.append(f"| {k + 1} | {a:.7f} | {b:.7f} | {r:.7f} | {r4:.7f} | {diff:.1e} |")
    means = np.array([p["running_mean"] for p in procs] + [ref4["running_mean"], ref["running_mean"]])
    mean_diff = float(np.max(np.abs(means - means[-1]) / np.abs(means[-1])))
    lines += [
        "",
        f"Agreement: the largest relative difference of a per-step loss to the 1-process run is **{worst:.1e}** "
        f"(running means as logged by Keras: {mean_diff:.1e}); both processes log the same global loss. "
        "Differences come from float32 summation order (the global mean is reduced across 4 devices).",
        "",
        "| run | windows/s after the first (compiling) step | `fit` wall time s (with compilation) |",
        "|---|---:|---:|",
        f"| 2 processes x 2 CPU devices (gloo over localhost) | {procs[0]['windows_per_s']:.0f} | "
        f"{procs[0]['fit_s']:.1f} |",
        f"| 1 process x 4 CPU devices | {ref4['windows_per_s']:.0f} | {ref4['fit_s']:.1f} |",
        f"| 1 process x 1 CPU device | {ref['windows_per_s']:.0f} | {ref['fit_s']:.1f} |",
        "",
        f"Whole benchmark {wall_s:.0f} s. The simulated devices all share this machine's "
        f"{os.cpu_count()} cores (and other jobs), and the two processes exchange every gradient over "
        "localhost TCP (gloo) at every step, so these numbers show the recipe's correctness and its overhead on a "
        "small model, not a speed-up: on real hosts each process has its own accelerators and the per-step "
        "exchange is a small part of a large model's step.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--global-batch", type=int, default=32)
    parser.add_argument("--symbols", type=int, default=6)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--root", type=Path, default=Path("/tmp/lems_multihost"))
    parser.add_argument("--timeout", type=float, default=1200.0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "multihost" / "multihost.md")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--process-id", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--reference-devices", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args)), flush=True)
        return
    if args.reference_devices:
        print(json.dumps(reference(args, args.steps, parallel=True)), flush=True)
        return
    if ROOT in args.root.resolve().parents:
        raise SystemExit("--root must lie outside the repository")
    t0 = time.perf_counter()
    args.data = make_data(args.root, args.symbols, args.days)
    args.work = args.root / "work"
    args.work.mkdir(parents=True, exist_ok=True)
    procs = launch(args)
    ref4 = reference_4_devices(args, procs[0]["steps"])
    ref = reference(args, procs[0]["steps"])
    text = report(args, procs, ref, ref4, time.perf_counter() - t0)
    args.out.write_text(text)
    (args.work / "results.json").write_text(json.dumps({"processes": procs, "reference": ref, "reference_4": ref4}))
    print(text)


if __name__ == "__main__":
    main()
