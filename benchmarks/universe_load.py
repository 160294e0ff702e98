"""Time and memory to the first training batch, and while serving batches and validation chunks, on a universe.

Data: a folder of one file per symbol (default ``shared/data/binance_5m_2024`` beside the checkout or above it:
102 Binance spot USDT pairs, 5-minute bars, 2024-01-01 to 2024-09-06); skipped with a message when absent. Never
copied into the repository.

Each case runs in a fresh Python process (so its peak RSS is its own) and reports process CPU seconds
(``resource.getrusage`` user + system, from the process start, imports included) and wall seconds since the
parent spawned it, with the peak resident memory ``ru_maxrss`` after each phase (a running maximum):

* ``train``: ``SymbolUniverse.split(train_end, val_end)`` with a progress callback (the per-symbol index: read
  and validate each symbol's bars, count its windows), then the first training batch
  (``train.batches(batch_size, block_symbols=32)``: the first block of 32 symbols read and built), then
  ``--batches`` batches spread evenly over the epoch (every block of symbols read, built and evicted).
  Run with the index cache off, cold (empty cache folder, filled by this run) and warm (a second run).
* ``validation``: the split, then every validation window served by ``val.chunks(65536)`` (with the calendar
  bars, as evaluation needs them): what scoring validation or test in chunks costs.
* ``before``: what the code before this change did, on ``--before-symbols`` symbols only (it holds every window):
  the split built each symbol's full state (``universe.state``), and validation was materialised by
  ``to_window_set``, which ran ``make_windows`` on each symbol's whole history and then kept the validation
  rows. Its per-symbol cost is scaled to the universe, and the bytes of the materialised validation arrays are
  computed exactly from the window count.

Usage: ``python -m benchmarks.universe_load [--data DIR] [--batches 300] [--before-symbols 6]
[--out benchmarks/results/universe_load/universe_load.md]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# lems is imported inside the case functions: each case runs in a fresh process whose import time and memory are
# part of what is measured.

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("KERAS_BACKEND", "jax")

_DATA_NAME = Path("shared") / "data" / "binance_5m_2024"
DEFAULT_DATA = next((p / _DATA_NAME for p in ROOT.parents if (p / _DATA_NAME).is_dir()), ROOT.parent / _DATA_NAME)
LOOKBACK, N_AHEAD, TRAIN_END, VAL_END, BATCH = 48, 12, "2024-06-30", "2024-08-01", 256


def cpu_s() -> float:
    """Process CPU seconds so far (user + system, all threads)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_mib() -> float:
    """Peak resident memory of this process so far [MiB] (Linux: ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Phases:
    """Records (phase, process CPU s, wall s since spawn, peak RSS MiB) marks."""

    def __init__(self, spawned: float) -> None:
        self.spawned, self.marks = spawned, []

    def mark(self, name: str, **extra) -> None:
        self.marks.append({"phase": name, "cpu_s": round(cpu_s(), 2), "wall_s": round(time.time() - self.spawned, 2),
                           "peak_rss_mib": round(peak_mib(), 1), **extra})
        print(json.dumps(self.marks[-1]), file=sys.stderr, flush=True)


def _progress(done: int, total: int, elapsed: float) -> None:
    if done % 20 == 0 or done == total:
        print(f"  split: {done}/{total} symbols, {elapsed:.1f} s", file=sys.stderr, flush=True)


def case_train(data: Path, cache_dir: str | None, n_batches: int, phases: Phases) -> None:
    import numpy as np

    from lems.data.universe import SymbolUniverse

    phases.mark("import")
    universe = SymbolUniverse(data, LOOKBACK, N_AHEAD, cache_dir=cache_dir)
    train, val, test = universe.split(TRAIN_END, VAL_END, progress=_progress)
    phases.mark("split", windows={"train": len(train), "val": len(val), "test": len(test)},
                symbols=len(universe.symbols), index_reads=universe.index_reads)
    ds = train.batches(BATCH, shuffle=True, seed=0, drop_remainder=True, block_symbols=32)
    (x, _, _), _, _ = ds[0]
    phases.mark("first_batch", batch_shape=list(x.shape), batches_per_epoch=len(ds))
    indices = np.unique(np.linspace(0, len(ds) - 1, n_batches).astype(int))
    start_cpu, start = cpu_s(), time.time()
    for i in indices:
        ds[int(i)]
    phases.mark("batches", served=int(indices.size), windows_per_s=round(indices.size * BATCH / (time.time() - start)),
                windows_per_cpu_s=round(indices.size * BATCH / (cpu_s() - start_cpu)))


def case_validation(data: Path, cache_dir: str | None, phases: Phases) -> None:
    from lems.data.universe import SymbolUniverse

    phases.mark("import")
    universe = SymbolUniverse(data, LOOKBACK, N_AHEAD, cache_dir=cache_dir)
    _, val, _ = universe.split(TRAIN_END, VAL_END, progress=_progress)
    phases.mark("split", windows=len(val))
    n_chunks, n_windows, start_cpu, start = 0, 0, cpu_s(), time.time()
    for chunk in val.chunks(65536):
        n_chunks, n_windows = n_chunks + 1, n_windows + len(chunk)
        float(chunk.X[:, -1, 0].sum())  # touch the chunk
    phases.mark("val_chunks", chunks=n_chunks, windows=n_windows,
                windows_per_s=round(n_windows / (time.time() - start)),
                windows_per_cpu_s=round(n_windows / (cpu_s() - start_cpu)))


def case_before(data: Path, n_symbols: int, phases: Phases) -> None:
    """The code path before this change, on the first ``n_symbols`` symbols (see the module docstring)."""
    import numpy as np

    from lems.data.features import FEATURE_NAMES
    from lems.data.universe import SymbolUniverse
    from lems.data.windows import make_windows

    phases.mark("import")
    full = SymbolUniverse(data, LOOKBACK, N_AHEAD)
    universe = SymbolUniverse(full.source.subset(full.symbols[:n_symbols]), LOOKBACK, N_AHEAD)
    c0 = cpu_s()
    for symbol in universe.symbols:  # the old split pass: one full state per symbol
        universe.state(symbol)
    split_cpu = cpu_s() - c0
    _, val, _ = universe.split(TRAIN_END, VAL_END)
    phases.mark("old_split", cpu_per_symbol_s=round(split_cpu / n_symbols, 3))
    c0 = cpu_s()
    sets = []
    for symbol in val.symbols:  # the old to_window_set: every window of the symbol, then the validation rows
        ws = make_windows(universe.source.read(symbol), LOOKBACK, N_AHEAD)
        sets.append(ws.subset(np.isin(ws.origin_index, val.origins(symbol))))
    x = np.concatenate([s.X for s in sets])
    phases.mark("old_to_window_set", windows=int(x.shape[0]), cpu_per_symbol_s=round((cpu_s() - c0) / n_symbols, 3),
                bytes_per_window=int((LOOKBACK + N_AHEAD - 1) * len(FEATURE_NAMES) * 4 + N_AHEAD * (2 * 4 + 2 * 8) + 8))


def run_case(args: list[str]) -> list[dict]:
    spawned = time.time()
    proc = subprocess.run([sys.executable, "-m", "benchmarks.universe_load", "--child", str(spawned), *args],
                          capture_output=True, text=True, cwd=ROOT)
    sys.stderr.write(proc.stderr[-3000:])
    if proc.returncode:
        raise RuntimeError(f"case {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def child(argv: list[str]) -> None:
    spawned, case, data = float(argv[0]), argv[1], Path(argv[2])
    phases = Phases(spawned)
    if case == "train":
        case_train(data, None if argv[3] == "off" else argv[3], int(argv[4]), phases)
    elif case == "validation":
        case_validation(data, None if argv[3] == "off" else argv[3], phases)
    else:
        case_before(data, int(argv[3]), phases)
    print(json.dumps(phases.marks))


def _commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT)
        dirty = subprocess.run(["git", "status", "--porcelain", "lems"], capture_output=True, text=True, cwd=ROOT)
        return head.stdout.strip() + (" (lems/ modified)" if dirty.stdout.strip() else "")
    except OSError:
        return "unknown"


def _table(marks: list[dict]) -> list[str]:
    lines = ["| phase | process CPU s (cumulative) | wall s since spawn | peak RSS MiB | detail |",
             "|---|---:|---:|---:|---|"]
    for m in marks:
        detail = ", ".join(f"{k}={v}" for k, v in m.items() if k not in ("phase", "cpu_s", "wall_s", "peak_rss_mib"))
        lines.append(f"| {m['phase']} | {m['cpu_s']} | {m['wall_s']} | {m['peak_rss_mib']} | {detail} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--before-symbols", type=int, default=6)
    parser.add_argument("--cases", nargs="+", default=["off", "cold", "warm", "validation", "before"])
    parser.add_argument("--out", type=Path,
                        default=ROOT / "benchmarks" / "results" / "universe_load" / "universe_load.md")
    args = parser.parse_args()
    if not args.data.is_dir():
        print(f"skipped: no data folder {args.data}")
        return
    results: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="lems_universe_cache_") as cache:
        for name in args.cases:
            print(f"case {name}", file=sys.stderr, flush=True)
            if name in ("off", "cold", "warm"):
                results[f"train, index cache {name}"] = run_case(
                    ["train", str(args.data), "off" if name == "off" else cache, str(args.batches)])
            elif name == "validation":
                results["validation chunks, index cache warm" if os.listdir(cache) else "validation chunks"] = \
                    run_case(["validation", str(args.data), cache if os.listdir(cache) else "off"])
            elif name == "before":
                results[f"before (old code path, first {args.before_symbols} symbols)"] = run_case(
                    ["before", str(args.data), str(args.before_symbols)])
    write(args, results)


def write(args, results: dict[str, list[dict]]) -> None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cmd = "python -m benchmarks.universe_load " + " ".join(sys.argv[1:])
    lines = [
        "# Universe load: time and memory to the first batch and while serving",
        "",
        f"- command: `{cmd.strip()}`",
        f"- commit: {_commit()}; date (UTC): {time.strftime('%Y-%m-%d %H:%M', time.gmtime())}",
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs (shared with other jobs: wall > CPU), "
        f"Python {platform.python_version()}, KERAS_BACKEND={os.environ.get('KERAS_BACKEND')}",
        f"- data: `{args.data.name}` ({len(list(args.data.iterdir()))} files); lookback {LOOKBACK}, H {N_AHEAD}, "
        f"train to {TRAIN_END}, validation to {VAL_END}, batch {BATCH}",
        "- every case is a fresh process; CPU = getrusage user + system from the process start (imports included); "
        "peak RSS = ru_maxrss (running maximum)",
        "",
    ]
    for name, marks in results.items():
        lines += [f"## {name}", "", *_table(marks), ""]
    marks = next((v for k, v in results.items() if k.startswith("before")), None)
    if marks is not None:
        split_m, tws = marks[1], marks[2]
        n_val = next((m["windows"]["val"] for v in results.values() for m in v
                      if isinstance(m.get("windows"), dict)), None)
        n_sym = next((m["symbols"] for v in results.values() for m in v if "symbols" in m), None)
        if n_val and n_sym:
            gb = n_val * tws["bytes_per_window"] / 1e9
            lines += ["## Before, scaled to the universe", "",
                      f"- old split pass: {split_m['cpu_per_symbol_s']} CPU s per symbol x {n_sym} = "
                      f"{split_m['cpu_per_symbol_s'] * n_sym:.0f} CPU s",
                      f"- old validation to_window_set: {tws['cpu_per_symbol_s']} CPU s per symbol x {n_sym} = "
                      f"{tws['cpu_per_symbol_s'] * n_sym:.0f} CPU s, before the first step (ValidationScores is built "
                      "before fit)",
                      f"- materialised validation arrays: {n_val} windows x {tws['bytes_per_window']} bytes = "
                      f"{gb:.2f} GB (X, y, prices, volumes, reference price), held for the whole run, plus a "
                      "transient copy while concatenating", ""]
    args.out.write_text("\n".join(lines) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
    else:
        main()
