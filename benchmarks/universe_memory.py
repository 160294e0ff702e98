"""Peak memory and speed of training batches gathered on the fly from a universe of 4 vs 400 symbols.

Data: the built-in synthetic market (24/7, hourly bars, one year per symbol), written as a Parquet dataset
partitioned by symbol (``<root>/n<N>/symbol=S0000/part-0.parquet``; generated 4 symbols at a time, so the
generator never holds the whole universe; default root ``/tmp/lems_universe``, never inside the
repository). Each case runs in a fresh Python process that:

1. imports lems (JAX backend) and records its resident memory (the baseline);
2. opens the dataset (:class:`lems.data.universe.SymbolUniverse`) and splits it by time at fractions 0.7 / 0.85
   of the origin times (two passes over the symbols: validate, count windows; only counts are kept);
3. streams ``--batches`` training batches in order (shuffled across symbols, ``block_symbols`` per block):
   steady-state batches/s;
4. sweeps ``--batches`` batches spread evenly over the whole epoch, so every block of symbols is read, built and
   evicted (worst case for memory: every symbol passes through memory).

Peak RSS is ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after each phase. For comparison, the materialised
path (``make_windows``) of the same data is measured on the 4-symbol case and its array size computed for
400 symbols.

Usage: ``python -m benchmarks.universe_memory [--symbols 4 100 400] [--batches 300] [--out benchmarks/results/universe_memory/universe_memory.md]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import provenance_fields_md

# lems is imported inside the case functions: each case runs in a fresh process whose peak memory (imports
# included) is what is measured.

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("KERAS_BACKEND", "jax")

LOOKBACK, N_AHEAD, DAYS, CHUNK = 48, 12, 365, 4


def peak_mib() -> float:
    """Peak resident memory of this process so far [MiB] (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _status_mib(field: str) -> float:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(f"{field}:"))
    return int(line.split()[1]) / 1024.0


def rss_mib() -> float:
    """Current resident memory of this process [MiB] (Linux ``VmRSS``)."""
    return _status_mib("VmRSS")


def reset_peak() -> None:
    """Reset the peak resident memory (``VmHWM``) to the current one (Linux >= 4.0: ``clear_refs`` 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def peak_since_reset_mib() -> float:
    """Peak resident memory since :func:`reset_peak` [MiB] (``VmHWM``)."""
    return _status_mib("VmHWM")


def generate(root: Path, n_symbols: int, days: int) -> tuple[Path, bool]:
    """Partitioned Parquet dataset of ``n_symbols`` synthetic symbols, and whether it was reused (complete)."""
    from lems.data.synthetic import synthetic_market
    from lems.data.universe import write_partitioned

    folder = root / f"n{n_symbols}_d{days}"
    done = folder / "_COMPLETE"
    if done.exists():
        return folder, True
    for first in range(0, n_symbols, CHUNK):
        k = min(CHUNK, n_symbols - first)
        bars = synthetic_market(n_assets=k, n_days=days, calendar="24/7", seed=1000 + first)
        names = {f"SYN{j}": f"S{first + j:04d}" for j in range(k)}
        bars["symbol"] = bars["symbol"].map(names)
        write_partitioned(bars, folder)
    done.write_text("ok\n")
    return folder, False


def worker(args: argparse.Namespace) -> dict:
    """One case, in this (fresh) process."""
    import numpy as np

    from lems.data.universe import SymbolUniverse

    result = {"symbols": args.symbols_case, "import_peak_mib": peak_mib()}
    reset_peak()
    result["baseline_mib"] = rss_mib()
    t0 = time.perf_counter()
    universe = SymbolUniverse(args.data, LOOKBACK, N_AHEAD)  # its own cache: 16 symbols (counting passes)
    train, val, test = universe.split(0.7, 0.85)
    result.update(split_s=time.perf_counter() - t0, train_windows=len(train), val_windows=len(val),
                  test_windows=len(test), rss_after_split_mib=rss_mib(), peak_after_split_mib=peak_since_reset_mib())
    ds = train.batches(args.batch_size, shuffle=True, seed=0, drop_remainder=True, block_symbols=args.block_symbols)
    result["batches_per_epoch"] = len(ds)
    t0 = time.perf_counter()
    ds[0]  # reads and builds the first block's symbols
    result["first_batch_s"] = time.perf_counter() - t0
    n_stream = min(args.batches, len(ds) - 1)
    t0 = time.perf_counter()
    for i in range(1, 1 + n_stream):
        ds[i]
    result.update(stream_batches_per_s=n_stream / (time.perf_counter() - t0),
                  rss_after_stream_mib=rss_mib(), peak_after_stream_mib=peak_since_reset_mib())
    sweep = np.unique(np.linspace(0, len(ds) - 1, min(args.batches, len(ds))).astype(int))
    loads = universe.loads
    t0 = time.perf_counter()
    for i in sweep:
        ds[int(i)]
    result.update(sweep_batches_per_s=len(sweep) / (time.perf_counter() - t0), sweep_loads=universe.loads - loads,
                  rss_after_sweep_mib=rss_mib(), peak_after_sweep_mib=peak_since_reset_mib())
    state = universe.state(universe.symbols[0])
    result["state_kib"] = state.nbytes / 1024
    if args.materialise:
        result.update(_materialised(universe))
    return result


def _materialised(universe) -> dict:
    """Peak memory of the materialised path (make_windows of all symbols, one frame) in this process."""
    import pandas as pd

    from lems.data.windows import make_states, make_windows

    bars = pd.concat([universe.source.read(s) for s in universe.symbols], ignore_index=True)
    full_state = next(iter(make_states(bars[bars["symbol"] == universe.symbols[0]], LOOKBACK, N_AHEAD).values()))
    t0 = time.perf_counter()
    ws = make_windows(bars, LOOKBACK, N_AHEAD)
    return {"materialised_s": time.perf_counter() - t0, "materialised_windows": len(ws),
            "materialised_x_mib": ws.X.nbytes / 2**20, "peak_after_materialise_mib": peak_since_reset_mib(),
            "full_state_kib": full_state.nbytes / 1024}


def run_case(data: Path, n: int, args: argparse.Namespace) -> dict:
    cmd = [sys.executable, "-m", f"benchmarks.{Path(__file__).stem}", "--worker", str(data), "--symbols-case", str(n), "--batches", str(args.batches),
           "--batch-size", str(args.batch_size), "--block-symbols", str(args.block_symbols)]
    if n == min(args.symbols):
        cmd.append("--materialise")
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "KERAS_BACKEND": "jax"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def report(results: list[dict], args: argparse.Namespace, gen_s: dict[int, str]) -> str:
    import keras

    rows = [
        "| symbols | train windows | split s | batches/epoch | first batch s | stream batches/s | "
        "sweep batches/s (loads) | RSS after import MiB | after split | after stream | after sweep | peak RSS | "
        "peak growth |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        rows.append(
            f"| {r['symbols']} | {r['train_windows']:,} | {r['split_s']:.1f} | {r['batches_per_epoch']:,} | "
            f"{r['first_batch_s']:.2f} | {r['stream_batches_per_s']:.1f} | {r['sweep_batches_per_s']:.1f} ({r['sweep_loads']}) | "
            f"{r['baseline_mib']:.0f} | {r['rss_after_split_mib']:.0f} | {r['rss_after_stream_mib']:.0f} | "
            f"{r['rss_after_sweep_mib']:.0f} | {r['peak_after_sweep_mib']:.0f} | "
            f"**{r['peak_after_sweep_mib'] - r['baseline_mib']:.0f}** |")
    small, big = results[0], results[-1]
    window_bytes = (LOOKBACK + N_AHEAD - 1) * 14 * 4 + N_AHEAD * 2 * 4
    big_windows = big["train_windows"] + big["val_windows"] + big["test_windows"]
    lines = [
        "# Universe streaming: peak memory, 4 vs 100 vs 400 symbols",
        "",
        f"Command: `KERAS_BACKEND=jax python -m benchmarks.universe_memory --symbols {' '.join(map(str, args.symbols))} "
        f"--batches {args.batches} --batch-size {args.batch_size} --block-symbols {args.block_symbols}`",
        "",
        *provenance_fields_md(),  # CPU seconds of the driver process (each case runs in its own process)
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores visible (shared), Python "
        f"{platform.python_version()}, keras {keras.__version__}, backend jax, CPU only.",
        "",
        f"Data: synthetic 24/7 market, hourly bars, {args.days} days per symbol, Parquet partitioned by symbol in "
        f"`{args.root}` (generation: " + ", ".join(f"{n} symbols {s}" for n, s in gen_s.items()) + "). "
        f"Windows: lookback {LOOKBACK}, H {N_AHEAD}; split at fractions 0.7 / 0.85 of the origin times "
        f"(purged); batch {args.batch_size}, shuffled across symbols in blocks of {args.block_symbols} symbols "
        "(at most two blocks resident, merged; the universe's counting cache holds 16 symbols). Each case runs in "
        "a fresh process: RSS is `VmRSS` "
        "after each phase; peak RSS is `VmHWM` at the end, reset after the imports (`/proc/self/clear_refs`; "
        f"importing lems, JAX, Keras, pandas and pyarrow peaks at {results[0]['import_peak_mib']:.0f} MiB on its "
        "own); peak growth = peak RSS minus the RSS after the imports.",
        "",
        *rows,
        "",
        "* first batch: reads and builds the first block's symbols (and merges them); stream: the next batches in order (steady "
        "state, one block resident); sweep: batches "
        "spread evenly over the whole epoch, so every block of symbols is read, built and evicted (loads = "
        "per-symbol states built during the sweep).",
        f"* Per-symbol state ({args.days} days of hourly bars): compact {small['state_kib']:.0f} KiB, with its calendar "
        f"frame {small['full_state_kib']:.0f} KiB (`SymbolState.compact`).",
        f"* Materialised path for comparison (`make_windows`, all windows of the {small['symbols']} symbols): "
        f"{small['materialised_windows']:,} windows, X {small['materialised_x_mib']:.0f} MiB, built in "
        f"{small['materialised_s']:.1f} s, peak RSS {small['peak_after_materialise_mib']:.0f} MiB "
        f"({small['peak_after_materialise_mib'] - small['baseline_mib']:.0f} MiB above the imports). For "
        f"{big['symbols']} symbols it would need {big_windows * window_bytes / 2**30:.1f} GiB for X and y alone.",
        f"* Peak growth: {small['peak_after_sweep_mib'] - small['baseline_mib']:.0f} MiB with "
        f"{small['symbols']} symbols, {big['peak_after_sweep_mib'] - big['baseline_mib']:.0f} MiB with "
        f"{big['symbols']}: bounded by the blocks, not by the number of symbols (the split keeps "
        "per-symbol counts only); 100 and 400 symbols both exceed two blocks, and need the same memory.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, nargs="+", default=[4, 100, 400])
    parser.add_argument("--days", type=int, default=DAYS)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--block-symbols", type=int, default=32)
    parser.add_argument("--root", type=Path, default=Path("/tmp/lems_universe"))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "universe_memory" / "universe_memory.md")
    parser.add_argument("--worker", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--symbols-case", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--materialise", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        args.data = args.worker
        print(json.dumps(worker(args)))
        return
    if ROOT in args.root.resolve().parents:
        raise SystemExit("--root must lie outside the repository")
    gen_s, results = {}, []
    for n in sorted(args.symbols):
        t0 = time.perf_counter()
        data, reused = generate(args.root, n, args.days)
        gen_s[n] = "reused" if reused else f"{time.perf_counter() - t0:.0f} s"
        results.append(run_case(data, n, args))
        print(json.dumps(results[-1]), flush=True)
    text = report(results, args, gen_s)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
